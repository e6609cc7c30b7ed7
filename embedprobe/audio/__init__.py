"""Audio in: decoding and resampling (``decode``), chunks of long files (``chunking``)."""
