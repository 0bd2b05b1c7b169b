"""`specloop target run PROJECT_DIR`: part B of the create flow on a project `specloop create` made.

Design: a target run is a create run of its own, in `<project>_target/run_<timestamp>/` beside the
project. Its state points at the existing project, and its log marks part A's stages done only
when the create run the project came from holds PROJECT_BUILD_LOG.md and REVIEW_REPORT.md (their
tech.json and requirements.md are copied in as the part-B inputs). The graph then skips part A and
runs part B. The latest target run is resumed while it is unfinished (a kill); after it finished or
stopped, a new run re-runs part B, whose stages reuse what is still valid (the venv's recorded
install) and redo the rest.
"""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape

from specloop.errors import SpecloopError

app = typer.Typer(help="Part B of the create flow, inside a target project.", no_args_is_help=True)
console = Console(stderr=True)
PART_A = ("requirements.md", "tech.md", "tech.json", "PROJECT_BUILD_LOG.md", "REVIEW_REPORT.md")


def source_run(project: Path) -> tuple[Path, dict[str, Any]]:
    """The create run that made `project` (its parent directory), with part A finished."""
    from specloop.ledger import state as ledger_state

    if not (project / ".specloop-answers.yml").is_file():
        raise SpecloopError(f"{project}: not a project made by `specloop create` (no .specloop-answers.yml).")
    parent = project.parent
    state_file = parent / ledger_state.CREATE_STATE_FILE
    if not state_file.is_file():
        raise SpecloopError(f"{project}: no create run beside it ({state_file} is missing).", rule="part-a")
    st = ledger_state.load(parent)
    if st.get("project_dir") != project.name:
        raise SpecloopError(f"{state_file}: names project {st.get('project_dir')!r}, not {project.name!r}.")
    missing = [name for name in PART_A if not (parent / name).is_file()]
    if missing:
        raise SpecloopError(
            f"{parent}: part A is not finished ({', '.join(missing)} missing); "
            f"continue it with `specloop create resume {parent}`",
            rule="part-a",
        )
    return parent, st


def _unfinished(run_dir: Path) -> bool:
    from specloop.ledger import state as ledger_state

    st = ledger_state.load(run_dir)
    return st.get("stop") is None and st.get("status") != "complete"


def prepare_target_run(project: Path, options: dict[str, Any]) -> Path:
    """The target run to drive: the latest unfinished one, or a new one with part A logged done."""
    from specloop.ledger import loop_log
    from specloop.ledger import state as ledger_state
    from specloop.ledger.layout import RunLayout
    from specloop.pipelines import get_pipeline
    from specloop.pipelines.create import FRAMEWORK

    project = project.resolve()
    source, st = source_run(project)
    root = project.parent / f"{project.name}_target"
    runs = sorted(p for p in root.glob("run_*") if (p / ledger_state.CREATE_STATE_FILE).is_file())
    if runs and _unfinished(runs[-1]):
        return runs[-1]
    stamp = datetime.now(UTC).strftime("%Y%m%d_%H%M%S")
    run_dir = root / f"run_{stamp}"
    n = 1
    while run_dir.exists():
        run_dir, n = root / f"run_{stamp}_{n}", n + 1
    tmp = root / f".{run_dir.name}.partial"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for name in PART_A:
        shutil.copy2(source / name, tmp / name)
    now = datetime.now(UTC).isoformat(timespec="seconds")
    ledger_state.save(
        tmp,
        {
            "version": 1,
            "pipeline": "create",
            "started_at": now,
            "status": "in_progress",
            "results_dir": str(run_dir),
            "workspace": str(run_dir),
            "config": {"options": options, "requirement": st["config"]["requirement"]},
            "approval": {"approved": True, "by": f"the create run {source}", "at": now},
            "project_name": st.get("project_name"),
            "project_dir": str(project),
            "family": st.get("family"),
            "candidate": st.get("candidate"),
            "source_run": str(source),
            "stages": {},
            "stop": None,
        },
    )
    for stage in get_pipeline("create").order(FRAMEWORK):
        loop_log.append(
            RunLayout(tmp).log,
            iter_label=FRAMEWORK,
            stage=stage,
            status="ok",
            summary=f"done in {source} (PROJECT_BUILD_LOG.md and REVIEW_REPORT.md there)",
            duration_sec=0.0,
        )
    tmp.rename(run_dir)
    return run_dir


@app.command("run")
def run_command(
    project: Path = typer.Argument(..., help="The target project a `specloop create` run made."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Run headless: install the venv without asking."),
    env: str | None = typer.Option(None, "--env", help="cpu or gpu (default: gpu when CUDA is usable)."),
    rules: Path | None = typer.Option(
        None, "--rules", help="Organisation rules to merge into CLAUDE.local.md."
    ),
    constraint: Path | None = typer.Option(
        None, "--constraint", help="A pip constraints file for the venv install (recorded in the report)."
    ),
    llm: str | None = typer.Option(
        None,
        "--llm",
        help="Chat model for the bug-fix loop's diffs when no fix rule knows an error (see docs/llm.md); "
        "default offline.",
    ),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show progress bars."),
) -> None:
    """Rules, a real venv, the mini dataset and notebook, 1 epoch with the bug-fix loop, guidance.

    Exit codes: 0 done, 2 stopped (bad input, a failed install, an open critical bug), 1 unexpected.
    """
    from rich.prompt import Confirm

    from specloop.graph.run import drive, stdin_is_interactive
    from specloop.skills.contracts import load_contracts

    if env is not None and env not in ("cpu", "gpu"):
        raise SpecloopError(f"--env {env!r}: use cpu or gpu.", rule="env")
    for given, what in ((rules, "rules"), (constraint, "constraint")):
        if given is not None and not given.is_file():
            raise SpecloopError(f"{given}: no such {what} file.", rule=f"{what}-file")
    if not project.is_dir():
        raise SpecloopError(f"{project}: no such project directory.", rule="project-dir")
    if not yes:
        if not stdin_is_interactive():
            raise SpecloopError(
                "part B installs a venv and runs the project's code; pass --yes to run it headless."
            )
        if not Confirm.ask(f"Install the venv and run part B in {project}?", console=console):
            raise typer.Exit(4)
    load_contracts()
    options = {
        "llm": llm or "offline",
        "record": None,
        "progress": progress,
        "checkpointer": None,
        "specs": None,
        "env": env,
        "rules": str(rules.resolve()) if rules else None,
        "constraint": str(constraint.resolve()) if constraint else None,
    }
    run_dir = prepare_target_run(project, options)
    console.print(f"target run: {run_dir}", highlight=False)
    outcome = drive(run_dir, yes=True, approver=None)
    style = "green" if outcome.exit_code == 0 else "red"
    message = outcome.message if outcome.exit_code else f"part B done in {project.resolve()}"
    console.print(f"[{style}]{escape(message)}[/]", highlight=False, soft_wrap=True)
    raise typer.Exit(outcome.exit_code)
