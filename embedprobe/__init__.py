"""embedprobe: how much emotion does a frozen audio embedding carry across corpora?"""

__version__ = "0.1.0"

__all__ = ["__version__"]
