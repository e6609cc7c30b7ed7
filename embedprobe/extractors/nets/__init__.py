"""Torch ``nn.Module`` code of the checkpoint-based extractors, one file per architecture.

These modules import torch at module level: only import them inside an extractor's ``_load()``.
Parameter and buffer names follow the official checkpoints, so the published state dicts load
without renaming.
"""
