"""Typed errors a user can cause. Each message names the bad value, what was expected and the fix."""

from __future__ import annotations

from collections.abc import Iterable


class EmbedprobeError(Exception):
    """Base class of every error embedprobe raises on purpose."""


class BadValueError(EmbedprobeError, ValueError):
    """A user-supplied value is not one of the allowed ones."""

    def __init__(self, what: str, value: object, allowed: Iterable[object] | None = None, fix: str = ""):
        msg = f"Bad {what} {value!r}"
        if allowed is not None:
            msg += f", expected one of {sorted(map(str, allowed))}"
        if fix:
            msg += f". {fix}"
        super().__init__(msg)
        self.value = value


class MissingDependencyError(EmbedprobeError, ImportError):
    """An optional dependency is not installed."""

    def __init__(self, package: str, extra: str, what: str = ""):
        who = f" for {what}" if what else ""
        super().__init__(
            f"The package '{package}' is needed{who} but is not installed: "
            f"run pip install 'embedprobe[{extra}]'."
        )


class MissingWeightsError(EmbedprobeError, FileNotFoundError):
    """A model checkpoint is not on this machine."""


class CorpusError(EmbedprobeError):
    """A corpus root does not have the layout its reader expects."""


class AudioError(EmbedprobeError):
    """One audio file cannot be used; the run records it and goes on."""

    def __init__(self, path: object, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason


class CacheError(EmbedprobeError):
    """An embedding cache cannot be used as asked."""


class CacheMismatchError(CacheError):
    """A cache was made with another extractor, revision or configuration."""


class CacheLockedError(CacheError):
    """Another process is writing the same cache (or the same shard)."""


class CacheIncompleteError(CacheError):
    """A cache does not hold every clip of its corpus yet (and ``--allow-incomplete`` was not given)."""
