"""``promtool check rules`` and ``promtool test rules`` on the rendered monitoring files."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from specloop.errors import SpecloopError
from specloop.skills.deploy.image import StageFailed


def promtool_bin() -> str:
    binary = shutil.which("promtool")
    if binary is None:
        raise SpecloopError(
            "checking the alert rules needs promtool (apt-get install prometheus)", rule="promtool"
        )
    return binary


def _sentence(output: str) -> str:
    """promtool's own words for the first problem (it prints a FAILED block, then the reasons)."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    reasons = [
        line for line in lines if not line.startswith(("Checking", "Unit Testing", "FAILED", "SUCCESS"))
    ]
    return (reasons or lines or ["no output"])[0]


def _promtool(*args: str, cwd: Path) -> str:
    done = subprocess.run(
        [promtool_bin(), *args], capture_output=True, text=True, cwd=cwd, timeout=120, check=False
    )
    output = done.stdout + done.stderr
    if done.returncode != 0:
        raise StageFailed(
            f"promtool {args[0]} {args[1]} {args[2]} failed: {_sentence(output)}",
            step="monitoring",
            log=output[-4000:],
            rule="promtool",
        )
    return output


def check_rules(rules: Path) -> str:
    """promtool's report on ``rules``; StageFailed carrying promtool's sentence when they are broken."""
    return _promtool("check", "rules", rules.name, cwd=rules.parent)


def test_rules(tests: Path) -> str:
    """promtool's unit tests of the rules (``tests`` names the rule files it loads)."""
    return _promtool("test", "rules", tests.name, cwd=tests.parent)


def check_config(config: Path) -> str:
    return _promtool("check", "config", config.name, cwd=config.parent)
