"""`specloop create "REQUIREMENT"`, `specloop create resume DIR`, `specloop create status DIR`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.markdown import Markdown
from rich.markup import escape
from rich.prompt import Prompt

from specloop.errors import SpecloopError

console = Console(stderr=True)
ACTIONS = ("resume", "status")


def _approver(request: dict[str, Any]) -> dict[str, Any] | None:
    """At a terminal: show requirements.md, ask each open question (recommended option first), then go."""
    console.print(Markdown(request["summary"]))
    answers = {}
    for q in request["questions"]:
        choices = [o["id"] for o in q["options"]]
        console.print(f"[bold]{escape(q['id'])}[/] {escape(q['text'])}", highlight=False)
        for o in q["options"]:
            mark = " (recommended)" if o["id"] == q["recommended"] else ""
            console.print(f"   {o['id']}) {escape(o['text'])}{mark}", highlight=False)
        answers[q["id"]] = Prompt.ask("answer", choices=choices, default=q["recommended"], console=console)
    go = Prompt.ask("Create this project? Type [bold]go[/] or [bold]yes[/]", console=console)
    return {"answers": answers} if go.strip().lower() in ("go", "yes", "y") else None


def _finish(outcome: Any, as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps({**outcome.to_dict(), "project": _project(outcome.run_dir)}, indent=2))
    style = {0: "green", 4: "cyan"}.get(outcome.exit_code, "red")
    console.print(f"[{style}]{escape(outcome.message)}[/]", highlight=False, soft_wrap=True)
    raise typer.Exit(outcome.exit_code)


def _project(run_dir: Path) -> str | None:
    from specloop.ledger import state as ledger_state

    name = ledger_state.load(run_dir).get("project_dir")
    return str(run_dir / name) if name else None


def _requirement(text: str | None, file: Path | None) -> str:
    if file is not None:
        if not file.is_file():
            raise SpecloopError(f"{file}: no such requirement file.", rule="requirement-file")
        text = file.read_text(encoding="utf-8")
    if not text or not text.strip():
        raise SpecloopError(
            "the requirement is empty; pass it as text or with -f requirement.md", rule="requirement"
        )
    return text


def create_command(
    requirement: str = typer.Argument(
        None, help='The requirement, e.g. "帮我做一个手写数字识别的小模型" — or `resume DIR` / `status DIR`.'
    ),
    run_dir: Path = typer.Argument(None, help="With resume/status: the create run's output directory."),
    file: Path | None = typer.Option(None, "--file", "-f", help="Read the requirement from this file."),
    out: Path | None = typer.Option(
        None, "--out", "-o", help="Output directory (default ./<project>_create)."
    ),
    answers: Path | None = typer.Option(None, "--answers", help="answers.yaml: question id → option id."),
    yes: bool = typer.Option(
        False, "--yes", "-y", help="Approve; unanswered questions take their recommended option."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print a machine-readable summary on stdout."),
    llm: str | None = typer.Option(
        None, "--llm", help="Chat model to word drafts (see docs/llm.md); default offline."
    ),
    markdown: bool = typer.Option(False, "--markdown", help="With status: a Markdown summary."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show progress bars."),
    stop_after: str | None = typer.Option(
        None, "--stop-after", help="End the run after this stage, e.g. venv (part A only)."
    ),
) -> None:
    """Create a target ML project that runs, from a vague requirement (English or Chinese).

    Exit codes: 0 created, 2 stopped (bad input, an infeasible requirement, a failed check),
    4 waiting for approval at the gate, 1 unexpected error.
    """
    from specloop.graph.create_start import start_create
    from specloop.graph.run import drive, stdin_is_interactive

    if requirement in ACTIONS and run_dir is not None:
        if requirement == "status":
            _status(run_dir, as_json=as_json, markdown=markdown)
            return
        _existing(run_dir)
        approver = _approver if (not yes and stdin_is_interactive()) else None
        _finish(drive(run_dir, yes=yes, approver=approver), as_json)
    text = _requirement(requirement, file)
    directory = start_create(
        text, out=out, answers=answers, llm=llm, progress=progress, stop_after=stop_after
    )
    console.print(f"create run: {directory}", highlight=False)
    approver = _approver if (not yes and stdin_is_interactive()) else None
    _finish(drive(directory, yes=yes, approver=approver), as_json)


def _existing(run_dir: Path) -> dict[str, Any]:
    from specloop.ledger import state as ledger_state

    path = run_dir / ledger_state.CREATE_STATE_FILE
    if not path.is_file():
        raise SpecloopError(
            f"{run_dir}: not a create run (no {ledger_state.CREATE_STATE_FILE}).", rule="run-dir"
        )
    return ledger_state.load(run_dir)


def _status(run_dir: Path, *, as_json: bool, markdown: bool) -> None:
    from specloop.ledger import loop_log
    from specloop.ledger.layout import RunLayout

    st = _existing(run_dir)
    entries = loop_log.read_entries(RunLayout(run_dir).log)
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "status": st["status"],
                    "stop": st.get("stop"),
                    "project": st.get("project_dir"),
                    "stages": st.get("stages", {}),
                    "log": entries,
                },
                indent=2,
            )
        )
        return
    if markdown:
        lines = [
            f"## Create run `{run_dir.name}`: {st['status']}",
            "",
            "| stage | status | summary |",
            "|---|---|---|",
        ]
        lines += [f"| {e['stage']} | {e['status']} | {e['summary']} |" for e in entries]
        typer.echo("\n".join(lines) + "\n", nl=False)
        return
    out = Console()
    out.print(
        f"[bold]{escape(run_dir.name)}[/] status {st['status']}, project {st.get('project_dir') or 'not yet named'}"
    )
    for e in entries:
        out.print(
            f"  #{e['seq']:>3} {e['stage']:<13} {e['status']:<5} {escape(e['summary'])}", highlight=False
        )
    if st.get("stop"):
        out.print(f"stopped: {escape(str(st['stop']))}", highlight=False)
