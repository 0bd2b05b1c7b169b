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


@check_kind("command")
class Command(Check):
    """A command exits 0 in the local sandbox (no network, limits)."""

    argv: list[str] = Field(min_length=1)
    cwd: str
    timeout_s: float = 300

    def templates(self) -> dict[str, str]:
        out = super().templates()
        out |= {"cwd": self.cwd} | {f"argv[{i}]": a for i, a in enumerate(self.argv)}
        return out

    def evaluate(self, env: CheckEnv) -> tuple[bool, str]:
        from specloop.sandbox import run

        argv = [render(a, env.values) for a in self.argv]
        rec = run(argv, cwd=env.path(self.cwd), timeout_s=self.timeout_s)
        shown = " ".join(argv[1:] if argv[0].endswith("python") or "python" in Path(argv[0]).name else argv)
        return (
            rec.ok,
            f"`{shown}` exit {rec.exit_code} in {rec.seconds:.1f}s ({rec.sandbox}); {rec.message}".rstrip(
                "; "
            ),
        )


@check_kind("requirements_done")
class RequirementsDone(Check):
    """CREATE_FLOW A1: every item and question scores > 0.6 or carries a clarification with a follow-up."""

    path: str

    def evaluate(self, env: CheckEnv) -> tuple[bool, str]:
        from specloop.skills.scaffold.requirements import done_when
        from specloop.skills.scaffold.requirements_md import read_requirements_md

        problems = done_when(read_requirements_md(env.path(self.path)))
        return not problems, problems[0] if problems else "every item and question is settled"


@check_kind("build_log_verified")
class BuildLogVerified(Check):
    """Every `[x]` in a build log stands next to a passing record of its acceptance command."""

    path: str

    def evaluate(self, env: CheckEnv) -> tuple[bool, str]:
        from specloop.skills.scaffold.tasks import verify_build_log

        problems = verify_build_log(env.path(self.path))
        return not problems, problems[0] if problems else "every tick has a passing record"
