"""The planner's task list for a generated project, and the build log that records each task's
acceptance command as it ran.

A task is ticked (`[x]`) in `PROJECT_BUILD_LOG.md` only next to the record of a passing run of its
acceptance command: command, exit code, seconds, output hash and sandbox. `verify_build_log`
re-reads a log and finds every tick with no passing record behind it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from specloop.errors import SpecloopError

PYTHON = "{python}"  # replaced by the interpreter that runs the acceptance commands
_RECORDS = re.compile(r"```yaml build-records\n(.*?)```", re.DOTALL)
_TICK = re.compile(r"^- \[(?P<mark>[ xX])\] (?P<id>T\d{2})\b", re.MULTILINE)


@dataclass(frozen=True)
class Task:
    id: str
    title: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    command: tuple[str, ...]  # the acceptance command, run from the project root
    estimate_s: float
    timeout_s: float = 600

    def argv(self, python: str) -> list[str]:
        return [python if part == PYTHON else part for part in self.command]

    def shown(self) -> str:
        return " ".join("python" if p == PYTHON else p for p in self.command)


def plan_tasks(*, package: str, epoch_seconds: float, test_seconds: float = 60.0) -> list[Task]:
    """The tasks that build and prove a target project, in order, with measured estimates."""
    train = epoch_seconds + 10
    return [
        Task(
            "T01",
            "Render the code skeleton (README, configs, src, scripts, tests, notebook)",
            ("tech.md", "requirements.md"),
            ("README.md", f"src/{package}/", "scripts/", "tests/"),
            (PYTHON, "-m", "compileall", "-q", "src", "scripts", "tests"),
            2,
        ),
        Task(
            "T02",
            "Build the mini dataset offline",
            ("scripts/make_mini.py",),
            ("data/mini/",),
            (PYTHON, "scripts/make_mini.py", "--out", "data/mini", "--seed", "0"),
            10,
        ),
        Task(
            "T03",
            "Dry run: config, data and model build; one forward pass",
            ("configs/default.yaml", "data/mini/"),
            (),
            (
                PYTHON,
                "scripts/train.py",
                "--config",
                "configs/default.yaml",
                "--data",
                "data/mini",
                "--dry-run",
            ),
            10,
        ),
        Task(
            "T04",
            "Train one epoch on the mini set and write a checkpoint",
            ("data/mini/",),
            ("outputs/last.pt", "outputs/best.pt", "outputs/metrics.json"),
            (PYTHON, "scripts/train.py", "--data", "data/mini", "--epochs", "1", "--output", "outputs"),
            round(train, 1),
        ),
        Task(
            "T05",
            "Inference reads the checkpoint",
            ("outputs/last.pt", "data/mini/"),
            (),
            (PYTHON, "scripts/infer.py", "--checkpoint", "outputs/last.pt", "--data", "data/mini"),
            10,
        ),
        Task(
            "T06",
            "The project's own tests pass (data, one training step, inference, service)",
            ("tests/",),
            (),
            (PYTHON, "-m", "pytest", "-q", "-p", "no:cacheprovider"),
            round(test_seconds, 1),
        ),
    ]


def render_tasks_md(project: str, tasks: Sequence[Task]) -> str:
    lines = [
        f"# Tasks: {project}",
        "",
        "Each task is done when its acceptance command, run from the project root, exits 0. The build log",
        "(`PROJECT_BUILD_LOG.md`) ticks a task only next to the record of that run.",
        "",
    ]
    for t in tasks:
        lines += [
            f"- [ ] **{t.id}** {t.title}",
            f"  - inputs: {', '.join(f'`{i}`' for i in t.inputs) or 'none'}",
            f"  - outputs: {', '.join(f'`{o}`' for o in t.outputs) or 'none'}",
            f"  - acceptance: `{t.shown()}`",
            f"  - estimate: {t.estimate_s:g} s",
        ]
    return "\n".join(lines) + "\n"


@dataclass
class BuildRecord:
    task: str
    command: str
    exit_code: int
    seconds: float
    output_sha256: str
    sandbox: str
    phase: str = "build"  # build | verify

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


@dataclass
class BuildLog:
    project: str
    tasks: list[Task]
    records: list[BuildRecord] = field(default_factory=list)

    def passed(self, task_id: str) -> bool:
        return any(r.task == task_id and r.ok for r in self.records)

    def render(self) -> str:
        lines = [f"# Project build log: {self.project}", ""]
        for t in self.tasks:
            mine = [r for r in self.records if r.task == t.id]
            mark = "x" if any(r.ok for r in mine) else " "
            lines.append(f"- [{mark}] {t.id} {t.title}")
            for r in mine:
                verdict = "passed" if r.ok else "FAILED"
                lines.append(
                    f"  - {r.phase}: `{r.command}` · exit {r.exit_code} · {r.seconds:.1f}s · "
                    f"sha256 {r.output_sha256[:12]} · {r.sandbox} · {verdict}"
                )
        data = [r.__dict__ for r in self.records]
        lines += [
            "",
            "## Records",
            "",
            "```yaml build-records",
            yaml.safe_dump(data, sort_keys=True).rstrip(),
            "```",
        ]
        return "\n".join(lines) + "\n"


def read_build_records(path: Path) -> list[BuildRecord]:
    text = path.read_text(encoding="utf-8")
    match = _RECORDS.search(text)
    if match is None:
        raise SpecloopError(f"{path}: no ```yaml build-records block; the build log cannot be checked")
    raw: Any = yaml.safe_load(match.group(1)) or []
    try:
        return [BuildRecord(**r) for r in raw]
    except TypeError as exc:
        raise SpecloopError(f"{path}: a build record is malformed ({exc})") from None


def verify_build_log(path: Path) -> list[str]:
    """Every `[x]` in the build log that has no passing record: one sentence each (empty: all true)."""
    text = path.read_text(encoding="utf-8")
    records = read_build_records(path)
    problems = []
    for m in _TICK.finditer(text):
        if m["mark"].lower() == "x" and not any(r.task == m["id"] and r.ok for r in records):
            line = text.count("\n", 0, m.start()) + 1
            problems.append(
                f"{path.name}:{line}: {m['id']} is ticked but no passing record of its command exists"
            )
    return problems
