"""Starting a create run, shared by `specloop create` and the chat: the requirement is parsed and
the answers file checked before anything is written; then the output directory gets its
`create_state.json` (nothing else). The graph runs it from there (`graph.run.drive`, or the
chat's background thread)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

from specloop.errors import SpecloopError
from specloop.ledger import state as ledger_state
from specloop.pipelines import get_pipeline
from specloop.skills.contracts import load_contracts
from specloop.skills.scaffold.requirements import apply_answers, parse_requirement
from specloop.skills.scaffold.requirements_md import load_answers


def project_slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_") or "project"


def start_create(
    text: str,
    *,
    out: Path | None,
    answers: Path | None,
    llm: str | None,
    progress: bool,
    stop_after: str | None = None,
) -> Path:
    """Create the run directory of a create run for requirement `text` and return it.

    `out` defaults to `./<project name>_create`; it must not exist with files in it. `llm` is a
    model spec (None: offline). `stop_after` names the stage the run ends with (default: the last)."""
    load_contracts()
    stages = [s.name for s in get_pipeline("create").stages]
    if stop_after is not None and stop_after not in stages:
        raise SpecloopError(
            f"--stop-after {stop_after!r} is not a stage of the create flow; use one of {', '.join(stages)}",
            rule="stop-after",
        )
    req = parse_requirement(text)
    if answers is not None:
        if not answers.is_file():
            raise SpecloopError(f"{answers}: no such answers file.", rule="answers-file")
        apply_answers(req, load_answers(answers), source=str(answers), today=datetime.now(UTC).date())
    name = project_slug(str(req.item("project_name").value))
    run_dir = (out or Path(f"{name}_create")).expanduser().resolve()
    if run_dir.exists() and any(run_dir.iterdir()):
        raise SpecloopError(
            f"{run_dir} exists and is not empty; pass another --out, or continue it with "
            f"`specloop create resume {run_dir}`",
            rule="out-dir",
        )
    setting = "offline"
    if llm is not None:
        from specloop.llm import get_llm, load_settings

        setting = load_settings(llm, workspace=run_dir.parent).llm
        get_llm(setting, workspace=run_dir.parent)
    run_dir.mkdir(parents=True, exist_ok=True)
    options = {
        "llm": setting,
        "record": None,
        "answers": str(answers.resolve()) if answers else None,
        "progress": progress,
        "checkpointer": None,
        "specs": None,
        "stop_after": stop_after,
    }
    ledger_state.save(
        run_dir,
        {
            "version": 1,
            "pipeline": "create",
            "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "status": "pending",
            "results_dir": str(run_dir),
            "workspace": str(run_dir),
            "config": {"options": options, "requirement": text.strip()},
            "approval": None,
            "stages": {},
            "stop": None,
        },
    )
    return run_dir
