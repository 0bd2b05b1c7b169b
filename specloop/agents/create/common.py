"""What the create flow's agents share: the run's files, the requirement, and running a command in
the sandbox with its record in the transcript."""

from __future__ import annotations

import datetime as dt
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from specloop.agents.base import Agent
from specloop.errors import SpecloopError
from specloop.ledger.files import atomic_write_text
from specloop.sandbox import CommandRecord, run
from specloop.skills.scaffold.requirements_md import read_requirements_md
from specloop.skills.scaffold.requirements_schema import Requirements
from specloop.skills.scaffold.tasks import BuildLog, BuildRecord, Task

REQUIREMENTS = "requirements.md"
TECH_MD = "tech.md"
TECH_JSON = "tech.json"
TASKS_MD = "tasks.md"
TASKS_JSON = "tasks.json"
BUILD_LOG = "PROJECT_BUILD_LOG.md"
REVIEW_REPORT = "REVIEW_REPORT.md"
SCRATCH = ".scratch"
LOGS = "logs"
SANDBOX_MEMORY_MB = 6144


def today() -> dt.date:
    """The date written into clarifications; SOURCE_DATE_EPOCH pins it for reproducible output."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    return dt.datetime.fromtimestamp(int(epoch), dt.UTC).date() if epoch else dt.date.today()


def python() -> str:
    """The interpreter that runs a generated project's commands before its own venv exists."""
    return sys.executable


class CreateAgent(Agent):
    """An agent of the create flow: its run directory is the create run's output directory."""

    @property
    def out(self) -> Path:
        return self.ctx.run_dir

    def read_requirements(self) -> Requirements:
        return read_requirements_md(self.out / REQUIREMENTS)

    def project_dir(self) -> Path:
        name = self.ctx.state().get("project_dir")
        if not name:
            raise SpecloopError("the create run names no project yet; the requirements stage sets it")
        return self.out / name

    def run_command(
        self,
        stage: str,
        label: str,
        argv: list[str],
        *,
        cwd: Path,
        timeout_s: float,
        name: str,
        env: Mapping[str, str] | None = None,
    ) -> CommandRecord:
        """Run `argv` in the local sandbox (no network, limits) and record what ran where."""
        log = self.out / LOGS / f"{stage}_{name}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        record = run(argv, cwd=cwd, timeout_s=timeout_s, memory_mb=SANDBOX_MEMORY_MB, log_path=log, env=env)
        data: dict[str, Any] = {
            k: v for k, v in record.to_dict().items() if k not in ("stdout_tail", "stderr_tail")
        }
        data["log_path"] = log.relative_to(self.out).as_posix()
        self.record("command", stage, label, **data)
        return record

    def run_tasks(
        self, stage: str, label: str, tasks: list[Task], log: BuildLog, *, phase: str, keep_going: bool
    ) -> tuple[Task, CommandRecord] | None:
        """Run each task's acceptance command in the project, record it in the build log (written
        once at the end) and return the first failure, if any."""
        failed = None
        for task in tasks:
            rec = self.run_command(
                stage,
                label,
                task.argv(python()),
                cwd=self.project_dir(),
                timeout_s=task.timeout_s,
                name=task.id,
            )
            log.records.append(
                BuildRecord(
                    task.id,
                    task.shown(),
                    rec.exit_code,
                    round(rec.seconds, 2),
                    rec.output_sha256,
                    rec.sandbox,
                    phase,
                )
            )
            if not rec.ok and failed is None:
                failed = (task, rec)
                if not keep_going:
                    break
        atomic_write_text(self.out / BUILD_LOG, log.render())
        return failed
