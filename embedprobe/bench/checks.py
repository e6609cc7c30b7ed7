"""Checks for bench configs: errors that name the file, the table, the key and the allowed values."""

from __future__ import annotations

import difflib
from typing import Any

from embedprobe.errors import BadValueError, EmbedprobeError


class ConfigError(BadValueError):
    """A bad key or value in a bench config: ``"<file> [table]: bad <what> <value>, expected ..."``."""

    def __init__(self, where: str, what: str, value: object, allowed: Any = None, fix: str = ""):
        msg = f"{where}: bad {what} {value!r}"
        if allowed is not None:
            msg += f", expected one of {sorted(map(str, allowed))}"
        if fix:
            msg += f". {fix}"
        EmbedprobeError.__init__(self, msg)
        self.value = value


class Checker:
    """Type and key checks whose errors name the file, the table and the key."""

    def __init__(self, source: str):
        self.source = source

    def where(self, sec: str) -> str:
        return f"{self.source} [{sec}]" if sec else self.source

    def bad_key(self, key: str, allowed: Any, sec: str, extra: str = "") -> None:
        close = difflib.get_close_matches(key, list(allowed), n=1)
        hint = f"Did you mean {close[0]!r}?" if close else "Remove it or rename it."
        raise ConfigError(self.where(sec), "key", key, allowed, fix=hint + extra)

    def keys(self, table: dict[str, Any], allowed: Any, sec: str) -> None:
        for k in table:
            if k not in allowed:
                self.bad_key(k, allowed, sec)

    def table(self, raw: dict[str, Any], sec: str) -> dict[str, Any]:
        t = raw.get(sec, {})
        if not isinstance(t, dict):
            raise ConfigError(self.where(sec), "table", t, fix=f"Write [{sec}] as a table.")
        return t

    def choice(self, value: Any, allowed: Any, sec: str, key: str) -> None:
        if value not in allowed:
            close = difflib.get_close_matches(str(value), [str(a) for a in allowed], n=1)
            raise ConfigError(self.where(sec), key, value, allowed,
                                fix=f"Did you mean {close[0]!r}?" if close else "")

    def _typed(self, t: dict[str, Any], sec: str, key: str, default: Any, types: Any, what: str) -> Any:
        if key not in t:
            return default
        v = t[key]
        if not isinstance(v, types) or (isinstance(v, bool) and bool not in _tuple(types)):
            raise ConfigError(self.where(sec), key, v, fix=f"Give {what}.")
        return v

    def str_(self, t, sec, key, default):
        return self._typed(t, sec, key, default, str, "a string")

    def bool_(self, t, sec, key, default):
        return self._typed(t, sec, key, default, bool, "true or false")

    def int_(self, t, sec, key, default, low: int | None = None):
        v = self._typed(t, sec, key, default, int, "an integer")
        if v is not None and low is not None and v < low:
            raise ConfigError(self.where(sec), key, v, fix=f"Give an integer >= {low}.")
        return v

    def dict_(self, t, sec, key) -> dict[str, Any]:
        return dict(self._typed(t, sec, key, {}, dict, "a table"))

    def str_list(self, t, sec, key, default) -> tuple[str, ...]:
        v = t.get(key, list(default))
        if isinstance(v, str):
            v = [v]
        if not isinstance(v, list) or not all(isinstance(s, str) for s in v):
            raise ConfigError(self.where(sec), key, v, fix="Give a list of strings.")
        return tuple(v)


def _tuple(types: Any) -> tuple[type, ...]:
    return types if isinstance(types, tuple) else (types,)
