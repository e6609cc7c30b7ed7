"""Extractors: one module per model family; variants are registered specs.

Importing this package registers every family; no family imports its heavy
dependencies (torch models, opensmile, transformers) before ``load()``.
"""

from embedprobe.extractors import registry as _registry
from embedprobe.extractors.base import Extractor, ExtractorSpec
from embedprobe.extractors.registry import EXTRACTORS, create, get_spec, register

# Family modules register their specs on import. Keep this list sorted.
_FAMILIES = ("cdpam", "clap_laion", "cnn14", "codecs", "egemaps", "ge2e", "hf_ssl", "logmel", "msclap", "phi4", "vggish")

for _name in _FAMILIES:
    __import__(f"embedprobe.extractors.{_name}")

__all__ = ["EXTRACTORS", "Extractor", "ExtractorSpec", "create", "get_spec", "register", "_registry"]
