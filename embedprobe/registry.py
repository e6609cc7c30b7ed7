"""One name -> object registry pattern for every plugin kind, and how plugins are found.

A plugin registers itself in its own module (``EXTRACTORS.add(...)`` through the kind's
``register`` helper). A registry made with ``package="embedprobe.corpora"`` imports every
module of that package the first time it is asked for a name, so a new built-in plugin is one
new file. Plugins outside the package are found the same way, from

- the ``embedprobe.plugins`` entry-point group of installed distributions (``module`` or
  ``module:attr`` values; importing the module registers its plugins), and
- ``EMBEDPROBE_PLUGINS``: a comma-separated list of module names or ``.py`` files to import.

Every registry is listed in :data:`REGISTRIES` under its plural (``"extractors"``,
``"corpora"``...), which is what ``embedprobe list KIND`` shows: each registry carries a
``describe(name, item) -> row`` function (made next to the registry, by the package that owns
the kind), so a new kind needs no edit to the CLI.

Example:
    >>> reg = Registry[int]("thing", listed=False)
    >>> reg.add("one", 1)
    >>> reg.get("one"), reg.names()
    (1, ['one'])
    >>> [row["name"] for row in reg.rows()]
    ['one']
    >>> "things" in REGISTRIES
    False
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import pkgutil
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, Generic, TypeVar

from embedprobe.errors import BadValueError, EmbedprobeError

T = TypeVar("T")

PLUGINS_ENV = "EMBEDPROBE_PLUGINS"
ENTRY_POINT_GROUP = "embedprobe.plugins"

REGISTRIES: dict[str, Registry] = {}
"""Every registry by its plural, in creation order (what ``embedprobe list KIND`` accepts)."""

_lock = threading.RLock()
_external_loaded = False


class PluginImportError(EmbedprobeError):
    """A plugin module named by ``EMBEDPROBE_PLUGINS`` or an entry point could not be imported."""


Row = dict[str, Any]
"""One row of ``embedprobe list KIND``: column -> JSON-able value; ``"name"`` first."""


def describe_by_doc(name: str, item: object) -> Row:
    """The default row: the name and the first line of the item's (or its class's) docstring."""
    doc = getattr(item, "__doc__", None) or getattr(type(item), "__doc__", None) or ""
    lines = doc.strip().splitlines()
    return {"name": name, "about": lines[0] if lines else ""}


class Registry(Generic[T]):
    """A name -> item mapping whose unknown-name error lists the valid names.

    Args:
        kind: singular name used in messages ("extractor").
        plural: the ``embedprobe list`` kind (default ``kind + "s"``).
        package: dotted package whose modules are imported on first lookup, so that each
            module's own registration runs (``None``: nothing to discover).
        listed: add it to :data:`REGISTRIES` (what ``embedprobe list`` shows).
        skip: modules of ``package`` that discovery does not import: machinery that registers
            nothing and is expensive to import (torch at module level). Keep it short; a test
            should check that these modules register nothing.
        describe: ``(name, item) -> row`` for ``embedprobe list`` (default: the name and the
            first docstring line of the item).
        about: one line saying what the kind is (``embedprobe list`` without a kind shows it).
    """

    def __init__(self, kind: str, plural: str | None = None, *, package: str | None = None,
                 listed: bool = True, skip: Iterable[str] = (),
                 describe: Callable[[str, T], Row] | None = None, about: str = ""):
        self.kind = kind
        self.plural = plural or f"{kind}s"
        self.package = package
        self.skip = frozenset(skip)
        self.describe = describe or describe_by_doc
        self.about = about
        self._items: dict[str, T] = {}
        self._discovered = False
        if listed:
            REGISTRIES[self.plural] = self

    # -- registration -------------------------------------------------------------------
    def add(self, name: str, item: T) -> None:
        if name in self._items:
            raise ValueError(f"{self.kind} {name!r} is registered twice")
        self._items[name] = item

    def remove(self, name: str) -> T:
        """Unregister ``name`` (tests that register temporary plugins clean up with this)."""
        return self._items.pop(name)

    # -- discovery ----------------------------------------------------------------------
    def discover(self) -> None:
        """Import every module of ``package`` (if any) and the external plugins (once)."""
        if self._discovered:
            return
        with _lock:
            if self._discovered:
                return
            self._discovered = True
            if self.package is not None:
                import_package_modules(self.package, skip=self.skip)
            load_external_plugins()

    # -- lookup -------------------------------------------------------------------------
    def get(self, name: str) -> T:
        self.discover()
        try:
            return self._items[name]
        except KeyError:
            raise BadValueError(
                self.kind, name, self._items, fix=f"Run 'embedprobe list {self.plural}' to see them."
            ) from None

    def names(self) -> list[str]:
        self.discover()
        return list(self._items)

    def items(self) -> list[tuple[str, T]]:
        self.discover()
        return list(self._items.items())

    def rows(self) -> list[Row]:
        """One ``describe`` row per registered item (what ``embedprobe list KIND`` prints)."""
        return [self.describe(name, item) for name, item in self.items()]

    def __contains__(self, name: object) -> bool:
        self.discover()
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        self.discover()
        return iter(list(self._items))

    def __len__(self) -> int:
        self.discover()
        return len(self._items)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {len(self._items)} registered)"


def import_package_modules(package: str, *, skip: Iterable[str] = ()) -> list[str]:
    """Import every module of ``package`` (not sub-packages, not ``_private`` ones, not ``skip``); their names."""
    pkg = importlib.import_module(package)
    skip = set(skip)
    names = []
    for info in pkgutil.iter_modules(pkg.__path__):
        if info.ispkg or info.name.startswith("_") or info.name in skip:
            continue
        importlib.import_module(f"{package}.{info.name}")
        names.append(info.name)
    return names


def load_external_plugins(*, force: bool = False) -> list[str]:
    """Import the modules named by ``EMBEDPROBE_PLUGINS`` and the entry points (once per process)."""
    global _external_loaded
    with _lock:
        if _external_loaded and not force:
            return []
        _external_loaded = True
        loaded = []
        for value in _entry_point_values():
            loaded.append(_import_plugin(value, source=f"entry point group {ENTRY_POINT_GROUP!r}"))
        for value in [v.strip() for v in os.environ.get(PLUGINS_ENV, "").split(",") if v.strip()]:
            loaded.append(_import_plugin(value, source=PLUGINS_ENV))
        return loaded


def _entry_point_values() -> list[str]:
    from importlib.metadata import entry_points

    return [ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)]


def _import_plugin(value: str, *, source: str) -> str:
    """Import ``module``, ``module:attr`` or a ``path/to/file.py``; return the module name."""
    module = value.partition(":")[0]
    try:
        if module.endswith(".py"):
            path = Path(module).expanduser().resolve()
            name = f"embedprobe_plugin_{path.stem}"
            if name in sys.modules:
                return name
            spec = importlib.util.spec_from_file_location(name, path)
            if spec is None or spec.loader is None or not path.is_file():
                raise FileNotFoundError(f"no such file: {path}")
            mod = importlib.util.module_from_spec(spec)
            sys.modules[name] = mod
            try:
                spec.loader.exec_module(mod)
            except BaseException:
                sys.modules.pop(name, None)
                raise
            return name
        importlib.import_module(module)
        return module
    except Exception as exc:  # noqa: BLE001 - any failure of user code becomes one sentence
        raise PluginImportError(
            f"The plugin {value!r} named by {source} could not be imported ({type(exc).__name__}: {exc}). "
            f"Fix: correct or remove it from {source}."
        ) from exc
