"""B3: the bug-fix report — issues, attempts with their diffs, final test results — as Markdown for
people and JSON for the check that every critical issue is closed."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Attempt:
    n: int
    signature: str
    rule: str | None
    action: str
    commit: str | None
    diff: str
    result: str  # what the next run showed: "passed", "new error", "same error", …
    key: str = ""  # the signature's key, to tell whether it came back
    model: str | None = None  # the model that drafted the diff, when no rule knew the error


@dataclass
class Issue:
    signature: str
    where: str
    rule: str | None
    summary: str
    severity: str
    status: str  # "fixed" or "open"


@dataclass
class BugfixReport:
    project: str
    command: str
    issues: list[Issue] = field(default_factory=list)
    attempts: list[Attempt] = field(default_factory=list)
    run_ok: bool = False
    stop_reason: str | None = None
    checkpoint: str | None = None
    final_tests: list[dict[str, Any]] = field(default_factory=list)

    @property
    def open_critical(self) -> list[Issue]:
        return [i for i in self.issues if i.severity == "critical" and i.status != "fixed"]

    @property
    def closed(self) -> bool:
        return self.run_ok and not self.open_critical and all(t["ok"] for t in self.final_tests)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "closed": self.closed, "open_critical": len(self.open_critical)}

    def render(self) -> str:
        lines = [
            f"# {self.project}: bug-fix report",
            "",
            f"- command: `{self.command}`",
            f"- 1-epoch run: {'passed' if self.run_ok else 'FAILED'}; checkpoint: {self.checkpoint or 'none'}",
            f"- critical issues open: {len(self.open_critical)}",
        ]
        if self.stop_reason:
            lines.append(f"- stopped: {self.stop_reason}")
        lines += ["", "## Issues", ""]
        if self.issues:
            lines += [
                "| # | signature | where | rule | severity | status | summary |",
                "|---|---|---|---|---|---|---|",
            ]
            lines += [
                f"| {n} | `{i.signature}` | {i.where or '-'} | {i.rule or 'none'} | {i.severity} | {i.status} | "
                f"{i.summary} |"
                for n, i in enumerate(self.issues, 1)
            ]
        else:
            lines.append("None: the 1-epoch run passed at the first attempt.")
        lines += ["", "## Attempts", ""]
        for a in self.attempts:
            lines += [
                f"### Attempt {a.n}: {a.rule or (f'diff by model {a.model}' if a.model else 'no rule')}",
                "",
                f"- error: `{a.signature}`",
                f"- fix: {a.action}",
                f"- commit: {a.commit or 'none'}",
                f"- result: {a.result}",
                "",
            ]
            if a.diff:
                lines += ["```diff", a.diff.rstrip("\n"), "```", ""]
        lines += ["## Final test results", "", "| check | command | exit | seconds |", "|---|---|---|---|"]
        lines += [
            f"| {t['name']} | `{t['command']}` | {t['exit_code']} | {t['seconds']:.1f} |"
            for t in self.final_tests
        ]
        return "\n".join(lines) + "\n"
