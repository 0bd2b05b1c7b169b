"""`specloop deft run|resume|status|demo`: the DEFT loop from the command line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console
from rich.markdown import Markdown
from rich.markup import escape
from rich.prompt import Prompt

from specloop.errors import SpecloopError

if TYPE_CHECKING:
    from specloop.graph.run import Outcome

app = typer.Typer(
    help="Run the DEFT loop: improve a ChangeNet until the FAR@100%-recall KPI is met.", no_args_is_help=True
)
console = Console(stderr=True)
DEMO_DIR = Path("demo_workspace")


def _far_target(text: str | None) -> float | None:
    """'1%', '0.5%', '0.01' or 'FAR < 1%' → a fraction."""
    if text is None:
        return None
    raw = text.replace("FAR", "").replace("<", "").strip()
    try:
        value = float(raw.rstrip("%")) / 100 if raw.endswith("%") else float(raw)
    except ValueError:
        raise SpecloopError(f"--kpi-target {text!r} is not a rate; write it like '1%' or '0.01'.") from None
    if not 0 < value < 1:
        raise SpecloopError(f"--kpi-target {text!r} must be between 0% and 100%.")
    return value


def _approver(request: dict[str, Any]) -> bool:
    console.print(Markdown(request["summary"]))
    answer = Prompt.ask("Approve this DEFT run? Type [bold]go[/] or [bold]yes[/] to start", console=console)
    return answer.strip().lower() in ("go", "yes", "y")


def _stops_logged(run_dir: Path) -> int:
    from specloop.ledger import loop_log

    return sum(e["status"] == "error" for e in loop_log.read_entries(run_dir / "loop_log.jsonl"))


def _finish(outcome: Outcome, as_json: bool, stops_before: int) -> None:
    """Print the outcome; a hard stop this process just printed (the stage's own line) is not
    repeated, so each failure is one sentence on the terminal."""
    if as_json:
        typer.echo(json.dumps(outcome.to_dict(), indent=2))
    style = {0: "green", 3: "yellow", 4: "cyan"}.get(outcome.exit_code, "red")
    message = outcome.message
    if outcome.status == "hard_stop" and _stops_logged(outcome.run_dir) > stops_before:
        message = f"the run stopped at the hard stop above; its record is in {outcome.run_dir}"
    console.print(f"[{style}]{escape(message)}[/]", highlight=False, soft_wrap=True)
    report = outcome.run_dir / "DEFT_Loop_Report.html"
    if report.is_file():
        console.print(f"report: {report}", highlight=False)
    raise typer.Exit(outcome.exit_code)


def _llm_options(workspace: Path, llm: str | None, record: Path | None) -> dict[str, Any]:
    """Resolve the model once, at the start, so a resumed run uses the same one; a bad setting or
    a missing key is reported here, before anything is created."""
    from specloop.llm import get_llm, load_settings

    setting = load_settings(llm, workspace=workspace).llm
    get_llm(setting, workspace=workspace)
    if record is not None and setting == "offline":
        raise SpecloopError(
            "--record needs a model: pass --llm or set SPECLOOP_LLM (the run would be offline)."
        )
    return {"llm": setting, "record": str(record.resolve()) if record is not None else None}


def _run(
    workspace: Path,
    *,
    max_iterations: int | None,
    kpi_target: str | None,
    epochs: int | None,
    embedder: str | None,
    yes: bool,
    as_json: bool,
    progress: bool,
    checkpointer: str | None,
    llm: str | None = None,
    record: Path | None = None,
    finetune_epochs: int | None = None,
    mining: str = "knn",
    specs: list[Path] | None = None,
    no_synthetic_pool: bool = False,
) -> None:
    for flag, value in (("--epochs", epochs), ("--finetune-epochs", finetune_epochs)):
        if value is not None and value < 1:
            raise SpecloopError(f"{flag} must be at least 1, not {value}.")
    if mining not in ("knn", "random"):
        raise SpecloopError(f"--mining {mining!r} is not one of knn, random.")
    if embedder is not None:
        _check_embedder(embedder, "--embedder")
    options: dict[str, Any] = {
        **_llm_options(workspace, llm, record),
        "max_iterations": max_iterations,
        "far_target": _far_target(kpi_target),
        "epochs": epochs,
        "finetune_epochs": finetune_epochs,
        "mining_strategy": mining,
        "embedder": embedder,
        "progress": progress,
        "checkpointer": checkpointer,
        "specs": [str(p.resolve()) for p in specs] if specs else None,
        "no_synthetic_pool": no_synthetic_pool,
    }
    if max_iterations is not None and max_iterations < 1:
        raise SpecloopError("--max-iterations must be at least 1.")
    from specloop.graph.run import create_run, drive, stdin_is_interactive

    run_dir = create_run(workspace, options)
    console.print(f"run directory: {run_dir}", highlight=False)
    approver = _approver if (not yes and stdin_is_interactive()) else None
    _finish(drive(run_dir, yes=yes, approver=approver, checkpointer_url=checkpointer), as_json, 0)


def _check_embedder(embedder: str, where: str) -> None:
    from specloop.skills.mining.embedders import check_embedder

    try:
        check_embedder(embedder)
    except SpecloopError as exc:
        raise SpecloopError(f"{where}: {exc.message}", rule="embedder") from None


_WS = typer.Option(..., "--workspace", "-w", help="The DEFT workspace folder.")
_MAXIT = typer.Option(None, "--max-iterations", help="Iterations after the baseline (default 3).")
_KPI = typer.Option(None, "--kpi-target", help="FAR@100%-recall target, e.g. '1%' (default 1%).")
_EPOCHS = typer.Option(None, "--epochs", help="Baseline epochs (default: the spec's num_epochs).")
_EMB = typer.Option(
    None, "--embedder", help="siglip (default), timm:<name>[@weights], changenet:<ckpt>, pixels."
)
_YES = typer.Option(
    False, "--yes", "-y", help="Approve at the gate without asking (recorded as approved by flag)."
)
_JSON = typer.Option(False, "--json", help="Print a machine-readable summary on stdout (logs go to stderr).")
_PROGRESS = typer.Option(True, "--progress/--no-progress", help="Show progress bars.")
_CKPT = typer.Option(None, "--checkpointer", help="A postgresql:// URL; default SQLite in the run directory.")
_LLM = typer.Option(
    None,
    "--llm",
    help="Chat model: offline (default), openai:<model>, anthropic:<model>, "
    "openai-compatible:<base_url>:<model>, replay:<cassette.jsonl> (see docs/llm.md).",
)
_RECORD = typer.Option(None, "--record", help="Append every model call to this cassette (for replay).")
_FT_EPOCHS = typer.Option(
    None, "--finetune-epochs", help="Epochs per iteration (default: half the baseline's)."
)
_SPECS = typer.Option(
    None,
    "--specs",
    help="Read the stage contracts from these spec files or folders (default: the shipped specs).",
)
_NO_POOL = typer.Option(
    False,
    "--no-synthetic-pool",
    help="Run without a pre-generated pool (augmentation/anomalygen/); without this flag its absence "
    "is a hard stop at pre-flight.",
)
_MINING = typer.Option(
    "knn", "--mining", help="knn (default), or random: as many rows drawn at random (an ablation control)."
)


@app.command()
def run(
    workspace: Path = _WS,
    max_iterations: int | None = _MAXIT,
    kpi_target: str | None = _KPI,
    epochs: int | None = _EPOCHS,
    embedder: str | None = _EMB,
    yes: bool = _YES,
    as_json: bool = _JSON,
    progress: bool = _PROGRESS,
    checkpointer: str | None = _CKPT,
    llm: str | None = _LLM,
    record: Path | None = _RECORD,
    finetune_epochs: int | None = _FT_EPOCHS,
    mining: str = _MINING,
    specs: list[Path] | None = _SPECS,
    no_synthetic_pool: bool = _NO_POOL,
) -> None:
    """Start a DEFT run on a workspace (pre-flight, one approval, baseline, iterations, report)."""
    _run(
        workspace,
        max_iterations=max_iterations,
        kpi_target=kpi_target,
        epochs=epochs,
        embedder=embedder,
        yes=yes,
        as_json=as_json,
        progress=progress,
        checkpointer=checkpointer,
        llm=llm,
        record=record,
        finetune_epochs=finetune_epochs,
        mining=mining,
        specs=specs,
        no_synthetic_pool=no_synthetic_pool,
    )


@app.command()
def demo(
    directory: Path = typer.Option(
        DEMO_DIR, "--dir", help="Where the demo workspace lives (created if missing)."
    ),
    max_iterations: int | None = _MAXIT,
    kpi_target: str | None = _KPI,
    yes: bool = _YES,
    as_json: bool = _JSON,
    progress: bool = _PROGRESS,
    llm: str | None = _LLM,
    record: Path | None = _RECORD,
) -> None:
    """Synthesize the small demo workspace if needed, then run the DEFT loop on it."""
    from specloop.skills.aoi.synth import synthesize_workspace

    if not (directory / "specs" / "baseline_spec.yaml").is_file():
        console.print(f"synthesizing the small demo workspace in {directory} …", highlight=False)
        synthesize_workspace(directory, size="small", seed=0, progress=progress)
    _run(
        directory,
        max_iterations=max_iterations,
        kpi_target=kpi_target,
        epochs=None,
        embedder=None,
        yes=yes,
        as_json=as_json,
        progress=progress,
        checkpointer=None,
        llm=llm,
        record=record,
    )


def _existing_run(run_dir: Path, *, resumable: bool = False) -> dict[str, Any]:
    from specloop.ledger import state as ledger_state

    if not ledger_state.state_path(run_dir).is_file():
        raise SpecloopError(f"{run_dir}: not a DEFT run directory (no deft_state.json).")
    st = ledger_state.load(run_dir)
    ledger_state.check_deft(run_dir, st, resumable=resumable)
    return st


@app.command()
def resume(
    run_dir: Path = typer.Argument(..., help="The run directory (results/run_<timestamp>)."),
    yes: bool = _YES,
    as_json: bool = _JSON,
) -> None:
    """Continue a run after a stop at the gate or a kill, without repeating finished stages."""
    from specloop.graph.run import drive, stdin_is_interactive

    st = _existing_run(run_dir, resumable=True)
    if st["config"]["options"].get("embedder") is not None:
        _check_embedder(st["config"]["options"]["embedder"], f"{run_dir} was started with --embedder")
    approver = _approver if (not yes and stdin_is_interactive()) else None
    url = st["config"]["options"].get("checkpointer")
    before = _stops_logged(run_dir)
    _finish(drive(run_dir, yes=yes, approver=approver, checkpointer_url=url), as_json, before)


@app.command()
def status(
    run_dir: Path = typer.Argument(..., help="The run directory."),
    lines: int = typer.Option(5, "--lines", "-n", help="How many log lines to show."),
    as_json: bool = _JSON,
    markdown: bool = typer.Option(
        False,
        "--markdown",
        help="Print a Markdown summary (outcome, best model, stop reason, KPI trajectory), e.g. for "
        "$GITHUB_STEP_SUMMARY.",
    ),
) -> None:
    """Show where a run stands and its last log lines."""
    st = _existing_run(run_dir)
    if markdown:
        from specloop.skills.report.markdown import run_summary_markdown

        typer.echo(run_summary_markdown(run_dir), nl=False)
        return
    from specloop.ledger import loop_log

    entries = loop_log.read_entries(run_dir / "loop_log.jsonl")
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "status": st["status"],
                    "stop": st.get("stop"),
                    "best": st.get("best"),
                    "current_iteration": st["current_iteration"],
                    "log": entries[-lines:],
                },
                indent=2,
            )
        )
        return
    out = Console()
    out.print(
        f"[bold]{escape(run_dir.name)}[/] "
        + escape(
            f"status {st['status']}, iteration {st['current_iteration']}/{st['max_iterations']}, "
            f"target {st['kpi_target'] or 'not set yet'}"
        )
    )
    for e in entries[-lines:]:
        out.print(
            escape(f"  #{e['seq']:>3} {e['iter']:<8} {e['stage']:<13} {e['status']:<5} {e['summary']}"),
            highlight=False,
        )
    if st.get("stop"):
        out.print(escape(f"stopped: {st['stop']}"), highlight=False)
