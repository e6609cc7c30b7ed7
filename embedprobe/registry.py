"""One small name -> object registry, used once per plugin kind (extractors, corpora, probes)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Generic, TypeVar

from embedprobe.errors import BadValueError

T = TypeVar("T")


class Registry(Generic[T]):
    """A name -> item mapping whose unknown-name error lists the valid names.

    Example:
        >>> reg = Registry[int]("thing")
        >>> reg.add("one", 1)
        >>> reg.get("one")
        1
    """

    def __init__(self, kind: str, plural: str | None = None):
        self.kind = kind
        self.plural = plural or f"{kind}s"  # the ``embedprobe list`` kind that shows them
        self._items: dict[str, T] = {}

    def add(self, name: str, item: T) -> None:
        if name in self._items:
            raise ValueError(f"{self.kind} {name!r} is registered twice")
        self._items[name] = item

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            raise BadValueError(
                self.kind, name, self._items, fix=f"Run 'embedprobe list {self.plural}' to see them."
            ) from None

    def names(self) -> list[str]:
        return list(self._items)

    def items(self) -> list[tuple[str, T]]:
        return list(self._items.items())

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)
