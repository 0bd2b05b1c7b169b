"""The command line starts at once: loading it, its help texts and the audit's import path load no
ML framework and no model SDK. Checked by what is in `sys.modules` of a fresh interpreter, not by
a timing (timings are in benchmarks/cli_startup.py and docs/benchmarks.md)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import typer
from typer.core import TyperGroup

from specloop.cli import app

HEAVY = (
    "torch",
    "timm",
    "torchvision",
    "transformers",
    "faiss",
    "anthropic",
    "openai",
    "langchain",
    "langchain_core",
    "langchain_openai",
    "langchain_anthropic",
    "langgraph",
    "matplotlib",
)

# Runs `code`, then prints the top-level names of every loaded module that is in HEAVY.
PROBE = """
import json, sys
{code}
heavy = {heavy!r}
print(json.dumps(sorted({{m.split(".")[0] for m in sys.modules}} & set(heavy))))
"""

# `specloop ARGS` through the real entry point; --help ends in SystemExit(0).
HELP = """
sys.argv = ["specloop", *{args!r}]
from specloop.cli import main
try:
    main()
except SystemExit as exc:
    assert not exc.code, exc.code
"""


def loaded_heavy(code: str) -> list[str]:
    """The heavy packages a fresh interpreter has loaded after running `code`."""
    proc = subprocess.run(
        [sys.executable, "-c", PROBE.format(code=code, heavy=HEAVY)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def command_paths() -> list[list[str]]:
    """Every command and sub-command the `specloop` app registers, from the app itself."""
    paths: list[list[str]] = [[]]

    def walk(group: TyperGroup, prefix: list[str]) -> None:
        for name, cmd in group.commands.items():
            paths.append([*prefix, name])
            if isinstance(cmd, TyperGroup):
                walk(cmd, [*prefix, name])

    root = typer.main.get_command(app)
    assert isinstance(root, TyperGroup)
    walk(root, [])
    return paths


def test_the_probe_sees_a_heavy_import() -> None:
    assert loaded_heavy("import matplotlib") == ["matplotlib"]


def test_importing_the_cli_loads_nothing_heavy() -> None:
    assert loaded_heavy("import specloop.cli") == []


@pytest.mark.parametrize("path", command_paths(), ids=lambda p: " ".join(p) or "specloop")
def test_help_loads_nothing_heavy(path: list[str]) -> None:
    assert loaded_heavy(HELP.format(args=[*path, "--help"])) == []


def test_the_audit_import_path_loads_nothing_heavy() -> None:
    code = "import specloop.cli.audit, specloop.skills.audit\nfrom specloop.skills.audit import audit_run"
    assert loaded_heavy(code) == []
