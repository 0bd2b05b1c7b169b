"""The closed registry of check kinds a contract's `done_when` may use.

A kind is one pydantic model: its fields are what the kind requires (a missing or unknown field
fails when the contract loads), `templates()` names the fields that are path templates, and
`evaluate()` says whether the check holds. Adding a kind is one decorated class.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from specloop.skills.contracts.templates import render

CHECK_KINDS: dict[str, type[Check]] = {}


@dataclass
class CheckEnv:
    """What a check sees: the run directory, the template values, and (for the create flow) a
    way to run a command."""

    run_dir: Path
    values: dict[str, str]
    run_command: Callable[..., Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def path(self, template: str) -> Path:
        text = render(template, self.values)
        p = Path(text)
        return p if p.is_absolute() else self.run_dir / p


class Check(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]*$")
    check: str
    name: str
    # "FILE.json:dotted.field": the check applies only when that field is there and truthy
    only_when: str | None = Field(default=None, pattern=r"^[^:]+\.json:[\w.]+$")
    template_fields: ClassVar[tuple[str, ...]] = ("path", "only_when")

    def templates(self) -> dict[str, str]:
        return {f: getattr(self, f) for f in self.template_fields if isinstance(getattr(self, f, None), str)}

    def applies(self, env: CheckEnv) -> bool:
        if self.only_when is None:
            return True
        file, _, dotted = self.only_when.rpartition(":")
        path = env.path(file)
        try:
            return bool(_field(json.loads(path.read_text(encoding="utf-8")), dotted))
        except (OSError, KeyError, TypeError, ValueError):
            return False

    def evaluate(self, env: CheckEnv) -> tuple[bool, str]:
        raise NotImplementedError


def check_kind(name: str) -> Callable[[type[Check]], type[Check]]:
    def register(cls: type[Check]) -> type[Check]:
        if name in CHECK_KINDS:
            raise ValueError(f"check kind {name!r} registered twice")
        CHECK_KINDS[name] = cls
        return cls

    return register


def _field(data: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        data = data[part]
    return data


@check_kind("exists")
class Exists(Check):
    path: str

    def evaluate(self, env: CheckEnv) -> tuple[bool, str]:
        p = env.path(self.path)
        return p.exists(), f"{p.name} {'exists' if p.exists() else 'is missing'}"


@check_kind("csv_rows")
class CsvRows(Check):
    path: str
    min: int = 1

    def evaluate(self, env: CheckEnv) -> tuple[bool, str]:
        import pandas as pd  # only when a CSV is checked: `specloop specs check` stays light

        p = env.path(self.path)
        n = len(pd.read_csv(p))
        return n >= self.min, f"{p.name} has {n} row(s), needs >= {self.min}"


@check_kind("json_field")
class JsonField(Check):
    path: str
    field: str
    equals: Any = None
    min: float | None = None

    def evaluate(self, env: CheckEnv) -> tuple[bool, str]:
        value = _field(json.loads(env.path(self.path).read_text(encoding="utf-8")), self.field)
        if "equals" in self.model_fields_set:
            return value == self.equals, f"{self.field} = {value!r}, expected {self.equals!r}"
        if self.min is not None:
            return float(value) >= self.min, f"{self.field} = {value!r}, needs >= {self.min}"
        return value is not None, f"{self.field} = {value!r}"
