"""Extractors: one module per model family; variants are registered specs.

Each family module registers its specs itself (``register(spec, cls)``); the registry imports
every module of this package on its first lookup, so a new family is one new file. No family
imports its heavy dependencies (torch models, opensmile, transformers) before ``load()``.
"""

from embedprobe.extractors import registry as _registry
from embedprobe.extractors.base import Extractor, ExtractorSpec
from embedprobe.extractors.registry import (
           EXTRACTORS,
           PREFIXES,
           create,
           get_spec,
           register,
           register_prefix,
)

__all__ = ["EXTRACTORS", "PREFIXES", "Extractor", "ExtractorSpec", "create", "get_spec", "register",
           "register_prefix", "_registry"]
