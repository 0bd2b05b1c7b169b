"""Session fixtures for the create flow: one finished `specloop create --yes` run per task family,
made on first use and shared by every test module (creating a project takes minutes)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from specloop.families import get_family

# One requirement per family, as a user would type it (one in Chinese at least).
REQUESTS = {
    "image_classification": "帮我做一个手写数字识别的小模型，能在笔记本CPU上跑就行。",
    "tabular": "Predict the wine cultivar from the chemical analysis in our CSV table; it must answer within 100 ms.",
    "text_classification": "对电商评论做情感分类，正面和负面",
    "timeseries": "Forecast hourly sensor readings for the next 24 hours from our time series.",
    "aoi_change_detection": "PCB AOI false alarms are too high; classify solder defects against golden images.",
}
CREATE_TIMEOUT = 1800
CPU_TORCH = "torch==2.13.0\n"  # this machine's CPU wheel (/opt/wheels): a small, fast venv install


def cpu_torch_constraint(family: str, root: Path) -> dict[str, str]:
    """PIP_CONSTRAINT for a family whose recommended candidate needs torch alone (no torchvision):
    the target venv then takes the CPU wheel. A constraint changes no project file."""
    fam = get_family(family)
    needs = [*fam.requirements, *fam.candidates[0].requirements]
    if any(r.startswith("torchvision") for r in needs):
        return {}
    path = root / "cpu-torch-constraint.txt"
    path.write_text(CPU_TORCH, encoding="utf-8")
    return {"PIP_CONSTRAINT": str(path)}


def create_env(**extra: str) -> dict[str, str]:
    """The environment a create subprocess runs with: no pytest variables, fixed clarification dates."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    return {**env, "COLUMNS": "200", "SOURCE_DATE_EPOCH": "1796083200", **extra}


@pytest.fixture(scope="session")
def create_run(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """family → the output directory of a finished `specloop create REQUESTS[family] --yes`.
    Read-only: copy it (with symlinks) to change anything."""
    made: dict[str, Path] = {}

    def get(family: str) -> Path:
        if family not in made:
            out = tmp_path_factory.mktemp(f"create_{family}") / "out"
            argv = [sys.executable, "-m", "specloop", "create", REQUESTS[family], "--out", str(out), "--yes"]
            proc = subprocess.run(
                [*argv, "--json", "--no-progress"],
                capture_output=True,
                text=True,
                cwd=out.parent,
                env=create_env(**cpu_torch_constraint(family, out.parent)),
                stdin=subprocess.DEVNULL,
                timeout=CREATE_TIMEOUT,
                check=False,
            )
            assert proc.returncode == 0, proc.stderr[-4000:]
            made[family] = out
        return made[family]

    return get
