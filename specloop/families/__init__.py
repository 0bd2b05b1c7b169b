"""Task families, one declaration module each, collected in a registry (like timm's models).

Adding a family is one module here that calls :func:`register_family`, plus its template folder.
"""

from __future__ import annotations

import importlib
import pkgutil
import warnings
from functools import cache

from specloop.families.base import Candidate, DatasetRef, Family

__all__ = ["Candidate", "DatasetRef", "Family", "get_family", "list_families", "register_family"]

_REGISTRY: dict[str, Family] = {}


def register_family(family: Family) -> Family:
    if family.name in _REGISTRY:
        warnings.warn(f"task family {family.name!r} registered twice; the later one wins", stacklevel=2)
    _REGISTRY[family.name] = family
    return family


@cache
def _load_all() -> None:
    for info in pkgutil.iter_modules(__path__):
        if info.name != "base" and not info.name.startswith("_"):
            importlib.import_module(f"{__name__}.{info.name}")


def list_families() -> list[Family]:
    _load_all()
    return [_REGISTRY[k] for k in sorted(_REGISTRY)]


def get_family(name: str) -> Family:
    _load_all()
    try:
        return _REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY))
        raise KeyError(f"unknown task family {name!r}; known: {known}") from None
