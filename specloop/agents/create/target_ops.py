"""Part B's ops (B2): the environment venv.md describes, installed for real, and its report."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from specloop.agents.base import StageResult
from specloop.agents.create.common import LOGS
from specloop.agents.create.target_common import ENV_REPORT_JSON, TargetAgent
from specloop.errors import SpecloopError
from specloop.ledger.files import atomic_write_json, atomic_write_text
from specloop.skills.target.env import env_report, host_facts, install_venv, probe_venv, render_env_md


def cuda_usable() -> bool:
    """A GPU answers `nvidia-smi -L` (cheap; torch is not imported here)."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return False
    out = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=30)
    return out.returncode == 0 and "GPU" in out.stdout


class TargetOps(TargetAgent):
    def env_check(self, label: str) -> StageResult:
        options = self.ctx.config()["options"]
        env = options.get("env") or ("gpu" if cuda_usable() else "cpu")
        if env not in ("cpu", "gpu"):
            raise SpecloopError(f"--env {env!r}: use cpu or gpu", rule="env")
        constraint = options.get("constraint") or os.environ.get("PIP_CONSTRAINT") or None
        if constraint and not Path(constraint).is_file():
            raise SpecloopError(f"{constraint}: no such constraint file.", rule="constraint")
        project = self.project_dir()
        install = self.tool(
            "target.install_venv",
            "env_check",
            label,
            install_venv,
            project=project,
            venv_name=f"debug-{env}",
            requirements=f"requirements-{env}.txt",
            constraint=Path(constraint) if constraint else None,
            log_path=self.out / LOGS / "env_check_install.log",
        )
        probe = probe_venv(project / install.venv)
        report = env_report(install, probe, host_facts(project), env)
        atomic_write_json(project / ENV_REPORT_JSON, report)
        atomic_write_text(project / "env_check_report.md", render_env_md(report))
        gpu = ", ".join(g["name"] for g in report["gpu"]) if report["gpu"] else "no GPU"
        how = (
            f"reused (installed in {install.seconds:.0f}s)"
            if install.reused
            else f"installed in {install.seconds:.0f}s"
        )
        return StageResult(
            f"{install.venv} {how}: Python {report['python_version']}, "
            f"{len(report['packages_installed'])} packages, torch {report['torch_version']}, {gpu}",
            {
                "venv": install.venv,
                "env": env,
                "install_seconds": install.seconds,
                "reused": install.reused,
                "constraint": install.constraint,
            },
        )
