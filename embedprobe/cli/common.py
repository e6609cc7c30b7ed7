"""Shared CLI helpers: one console, turning library errors into one red line and exit code 2."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import inspect
import json
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from embedprobe.errors import BadValueError, EmbedprobeError
from embedprobe.extractors.safeload import UntrustedPickleWarning

console = Console(stderr=True, highlight=False)
out = Console(highlight=False, soft_wrap=True)

F = TypeVar("F", bound=Callable[..., Any])

CACHE_DIR = Path("cache")  # where extract writes caches and probe/domain read them by default


def default(source: Any, name: str) -> Any:
    """The default of field ``name`` of a config dataclass (or parameter ``name`` of a function).

    Options read their defaults from the config they fill, so each default is written once
    and ``--help`` shows the value the library would use.

    Example:
        >>> @dataclasses.dataclass(frozen=True)
        ... class Cfg:
        ...     probe: str = "mlp"
        ...     seeds: tuple = dataclasses.field(default_factory=lambda: (0,))
        >>> default(Cfg, "probe"), default(Cfg, "seeds")
        ('mlp', (0,))
        >>> def run(*, seed: int = 3) -> None: ...
        >>> default(run, "seed")
        3
    """
    if dataclasses.is_dataclass(source):
        fields = {f.name: f for f in dataclasses.fields(source)}
        if name not in fields:
            raise KeyError(f"{source.__name__} has no field {name!r}; fields: {sorted(fields)}")
        f = fields[name]
        if f.default is not dataclasses.MISSING:
            return f.default
        if f.default_factory is not dataclasses.MISSING:
            return f.default_factory()
    else:
        params = inspect.signature(source).parameters
        if name not in params:
            raise KeyError(f"{source.__name__} has no parameter {name!r}; parameters: {sorted(params)}")
        if params[name].default is not inspect.Parameter.empty:
            return params[name].default
    raise KeyError(f"{name!r} of {source.__name__} has no default; the option must be required")


def friendly(fn: F) -> F:
    """Print an ``EmbedprobeError`` as one line (no traceback) and exit with code 2.

    A Ctrl-C that the command does not handle itself (while it imports its libraries, say)
    prints the "interrupted" line and exits with code 130.
    """

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except EmbedprobeError as e:
            console.print(f"[bold red]error:[/] {escape(str(e))}")  # messages may hold [brackets]
            raise typer.Exit(2) from None
        except KeyboardInterrupt:
            console.print(f"[yellow]interrupted[/]: {fn.__name__.rstrip('_')} stopped before it finished; run "
                          "the same command again.")
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]


def parse_options(items: list[str] | None) -> dict[str, Any]:
    """``["seed=3", "excited_as_happy=true"]`` -> ``{"seed": 3, "excited_as_happy": True}``."""
    opts: dict[str, Any] = {}
    for item in items or []:
        if "=" not in item:
            raise BadValueError("option", item, None, fix="Write options as KEY=VALUE.")
        key, raw = item.split("=", 1)
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        opts[key.strip().replace("-", "_")] = value
    return opts


def csv_list(text: str | None) -> tuple[str, ...] | None:
    if not text:
        return None
    return tuple(s.strip() for s in text.split(",") if s.strip())


@contextlib.contextmanager
def warnings_as_lines() -> Iterator[None]:
    """Show embedprobe's own warnings (e.g. ``--trust-pickle`` ran untrusted code) as one yellow
    line each; other warnings keep Python's format."""
    original = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):  # noqa: ANN001
        if issubclass(category, UntrustedPickleWarning):
            console.print(f"[bold yellow]warning:[/] {escape(str(message))}")
        else:
            original(message, category, filename, lineno, file, line)

    warnings.showwarning = show
    try:
        yield
    finally:
        warnings.showwarning = original
