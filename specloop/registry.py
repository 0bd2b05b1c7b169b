"""One small registry for what specloop declares by name (pipelines, task families).

Declarations register themselves when their module is imported; a second registration of the same
name warns and wins (as timm's does); a lookup of an unknown name says what is registered.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, what: str, load: Callable[[], None]) -> None:
        self.what = what
        self._load = load  # imports the modules that hold the shipped declarations
        self._items: dict[str, T] = {}

    def register(self, name: str, item: T) -> T:
        if name in self._items:
            warnings.warn(f"{self.what} {name!r} registered twice; the later one wins", stacklevel=3)
        self._items[name] = item
        return item

    def get(self, name: str) -> T:
        self._load()
        try:
            return self._items[name]
        except KeyError:
            known = ", ".join(sorted(self._items)) or "none"
            raise KeyError(f"unknown {self.what} {name!r}; registered: {known}") from None

    def all(self) -> list[T]:
        self._load()
        return [self._items[k] for k in sorted(self._items)]
