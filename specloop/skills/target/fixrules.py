"""B3: the bug-fix rule table of DEBUG_CODE.md (its ```yaml fix-rules``` block, the same table the
prose shows) and the signature of an error: exception type, normalised message, file:line."""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from specloop.errors import SpecloopError

_BLOCK = re.compile(r"```yaml fix-rules\n(.*?)```", re.DOTALL)
_ERROR_LINE = re.compile(r"^(?:[\w.]+\.py: )?([A-Za-z_][\w.]*(?:Error|Exception|Exit|Interrupt)): (.*)$")
_FRAME = re.compile(r'^\s*File "([^"]+)", line (\d+)')
NAN_LOSS = "NanLoss"


class FixRule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    error: str  # a regular expression searched in "Type: message"
    looks_like: str
    fix: str  # the name of the fix action (skills.target.fixes.FIXES)
    does: str
    severity: Literal["critical", "major", "minor"]

    @field_validator("error")
    @classmethod
    def _regex(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"not a regular expression: {exc}") from None
        return value

    def matches(self, signature: Signature) -> bool:
        return re.search(self.error, f"{signature.type}: {signature.raw}") is not None


def parse_rules(text: str, source: str) -> list[FixRule]:
    """The rules of the fenced block; a malformed table names the file, line and rule."""
    from specloop.skills.target.fixes import FIXES

    match = _BLOCK.search(text)
    if match is None:
        raise SpecloopError(f"{source}: holds no ```yaml fix-rules``` block.", rule="fix-rules")
    line = text.count("\n", 0, match.start(1)) + 1
    try:
        raw = yaml.safe_load(match.group(1))
    except yaml.YAMLError as exc:
        raise SpecloopError(
            f"{source}:{line}: the fix-rules block is not YAML: {exc}", rule="fix-rules"
        ) from None
    if not isinstance(raw, list):
        raise SpecloopError(f"{source}:{line}: the fix-rules block is a list of rules.", rule="fix-rules")
    rules, ids = [], set()
    for i, item in enumerate(raw):
        try:
            rule = FixRule.model_validate(item)
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(p) for p in err["loc"])
            raise SpecloopError(
                f"{source}:{line}: rule {i + 1} ({where}): {err['msg']}", rule="fix-rules"
            ) from None
        if rule.fix not in FIXES:
            raise SpecloopError(
                f"{source}:{line}: rule {rule.id!r} names unknown fix {rule.fix!r}; known: {', '.join(sorted(FIXES))}",
                rule="fix-rules",
            )
        if rule.id in ids:
            raise SpecloopError(f"{source}:{line}: rule id {rule.id!r} is used twice.", rule="fix-rules")
        ids.add(rule.id)
        rules.append(rule)
    return rules


@cache
def shipped_rules() -> tuple[FixRule, ...]:
    text = resources.files("specloop.specs").joinpath("DEBUG_CODE.md").read_text(encoding="utf-8")
    return tuple(parse_rules(text, "specloop/specs/DEBUG_CODE.md"))


def load_rules(path: Path | None = None) -> tuple[list[FixRule], str]:
    """The rules in `path` (a project's DEBUG_CODE.md copy) and where they came from; the shipped
    table when the copy is missing or predates the table (a project made by an older specloop)."""
    if path is not None and path.is_file():
        text = path.read_text(encoding="utf-8")
        if _BLOCK.search(text):
            return parse_rules(text, str(path)), str(path)
    return list(shipped_rules()), "specloop/specs/DEBUG_CODE.md"


@dataclass(frozen=True)
class Signature:
    type: str
    message: str  # normalised: numbers, addresses and paths replaced
    where: str  # innermost file:line inside the project, or "" when the output names none
    raw: str  # the message as printed

    @property
    def key(self) -> str:
        return f"{self.type}|{self.message}|{self.where}"

    def short(self) -> str:
        return f"{self.type}: {self.message}" + (f" at {self.where}" if self.where else "")


def normalise(message: str) -> str:
    text = re.sub(r"0x[0-9a-fA-F]+", "ADDR", message)
    text = re.sub(r"(?:/[\w.\-]+)+/?", "PATH", text)
    text = re.sub(r"\d+(?:\.\d+)?(?:e[+-]?\d+)?", "N", text)
    return re.sub(r"\s+", " ", text).strip()[:240]


def signature_of(output: str, project: Path, *, exit_code: int) -> Signature | None:
    """The signature of the failure in a run's output; None when it succeeded cleanly. A run that
    exits 0 but reports a NaN or infinite training loss is a failure too."""
    lines = output.splitlines()
    if exit_code == 0:
        loss = _final_loss(lines)
        if loss is not None and not math.isfinite(loss):
            return Signature(NAN_LOSS, f"train_loss is {loss}", "", f"train_loss is {loss}")
        return None
    error = next((m for ln in reversed(lines) if (m := _ERROR_LINE.match(ln.strip()))), None)
    where = ""
    root = str(project.resolve())
    for ln in lines:
        if (m := _FRAME.match(ln)) and str(Path(m.group(1)).resolve()).startswith(root):
            where = f"{Path(m.group(1)).resolve().relative_to(root).as_posix()}:{m.group(2)}"
    if error is None:
        tail = next((ln.strip() for ln in reversed(lines) if ln.strip()), f"exit code {exit_code}")
        return Signature("UnknownError", normalise(tail), where, tail)
    return Signature(error.group(1).rsplit(".", 1)[-1], normalise(error.group(2)), where, error.group(2))


def _final_loss(lines: list[str]) -> float | None:
    for ln in reversed(lines):
        if ln.startswith("{"):
            try:
                value = json.loads(ln).get("train_loss")
            except (ValueError, AttributeError):
                continue
            return float(value) if isinstance(value, int | float) else None
    return None


def match(rules: list[FixRule], signature: Signature) -> FixRule | None:
    """The first rule whose pattern matches (the table's order is its priority)."""
    return next((r for r in rules if r.matches(signature)), None)
