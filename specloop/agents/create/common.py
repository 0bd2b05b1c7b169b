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
from specloop.sandbox import CommandRecord, run
from specloop.skills.scaffold.requirements_md import read_requirements_md
from specloop.skills.scaffold.requirements_schema import Requirements

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
