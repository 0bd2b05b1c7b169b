"""Task families, one declaration module each, collected in a registry (like timm's models).

Adding a family is one module here that calls :func:`register_family`, plus its template folder.
"""

from __future__ import annotations

import importlib
import pkgutil
from functools import cache

from specloop.families.base import Candidate, DatasetRef, Family
from specloop.registry import Registry

__all__ = ["Candidate", "DatasetRef", "Family", "get_family", "list_families", "register_family"]


@cache
def _load_all() -> None:
    for info in pkgutil.iter_modules(__path__):
        if info.name != "base" and not info.name.startswith("_"):
            importlib.import_module(f"{__name__}.{info.name}")


FAMILIES: Registry[Family] = Registry("task family", _load_all)


def register_family(family: Family) -> Family:
    return FAMILIES.register(family.name, family)


def list_families() -> list[Family]:
    return FAMILIES.all()


def get_family(name: str) -> Family:
    return FAMILIES.get(name)
