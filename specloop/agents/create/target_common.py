"""What part B's agents share: the target venv the env_check stage made, and the project's family."""

from __future__ import annotations

from pathlib import Path

from specloop.agents.create.common import CreateAgent
from specloop.errors import SpecloopError
from specloop.families import get_family
from specloop.families.base import Family
from specloop.skills.target.env import venv_python

MINI_COMMAND = ("scripts/make_mini.py", "--out", "data/mini", "--seed", "0")
ENV_REPORT_JSON = "env_check_report.json"


class TargetAgent(CreateAgent):
    """A create-flow agent acting inside the target project."""

    def target_venv(self) -> Path:
        record = self.ctx.state().get("stages", {}).get("env_check")
        if not record or not record.get("venv"):
            raise SpecloopError(
                "the target project has no venv yet; the env_check stage makes it", rule="venv"
            )
        return self.project_dir() / record["venv"]

    def target_python(self) -> Path:
        return venv_python(self.target_venv())

    def family(self) -> Family:
        return get_family(str(self.ctx.state()["family"]))
