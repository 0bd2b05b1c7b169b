"""A problem found in user input, located by file, row and rule."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

Severity = Literal["error", "warning", "note"]


@dataclass(frozen=True)
class Problem:
    """One finding: `rule` is a short stable id, `message` one sentence for a person.

    `line` is the 1-based line in the file (the CSV header is line 1), or None for file-level findings.
    """

    file: str
    rule: str
    message: str
    severity: Severity = "error"
    line: int | None = None

    def sentence(self) -> str:
        where = f"{self.file}, line {self.line}" if self.line is not None else self.file
        return f"{where}: {self.message} [{self.rule}]"

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def errors(problems: list[Problem]) -> list[Problem]:
    return [p for p in problems if p.severity == "error"]
