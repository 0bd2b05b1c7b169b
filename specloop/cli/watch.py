"""`specloop watch WS`: train on new mining-pool rows, gate, promote or roll back; `--once` for cron."""

from __future__ import annotations

from pathlib import Path

import typer

from specloop.errors import SpecloopError


def watch_command(
    workspace: Path = typer.Argument(Path("."), help="The DEFT workspace to watch."),
    once: bool = typer.Option(False, "--once", help="Process what is new, then exit (for cron and CI)."),
    window: str | None = typer.Option(None, "--window", help="Train only between HH:MM-HH:MM (local time)."),
    min_new_rows: int = typer.Option(10, "--min-new-rows", min=1, help="New rows a round needs."),
    epochs: int | None = typer.Option(
        None, "--epochs", min=1, help="Epochs per round (default: half the spec's)."
    ),
    baseline_epochs: int | None = typer.Option(
        None, "--baseline-epochs", min=1, help="Epochs of the first champion (default: the spec's)."
    ),
    lr: float | None = typer.Option(None, "--lr", help="Learning rate per round (default: half the spec's)."),
    replay: float = typer.Option(1.0, "--replay", min=0.0, help="Earlier rows replayed per new row."),
    margin: float = typer.Option(0.01, "--margin", min=0.0, help="Relative golden-FAR gain the gate needs."),
    min_improvement: float = typer.Option(
        0.01, "--min-improvement", min=0.0, help="Three rounds under this gain in a row: wait for more data."
    ),
    max_mem_pct: float = typer.Option(85.0, "--max-mem-pct", help="Pause while memory use is above this."),
    min_free_gb: float = typer.Option(5.0, "--min-free-gb", help="Pause while free disk is below this."),
    poll: float = typer.Option(2.0, "--poll", min=0.05, help="Seconds between looks."),
    debounce: float = typer.Option(2.0, "--debounce", min=0.0, help="Seconds the pool must stay unchanged."),
    registry: str | None = typer.Option(
        None, "--registry", help="MLflow tracking URI (default: SQLite in results/)."
    ),
) -> None:
    """Watch the mining pool: fine-tune the champion on new rows, gate on the golden set, roll back."""
    from specloop.graph.watch import Watcher, WatchOptions
    from specloop.skills.registry.gate import GateRule
    from specloop.skills.registry.limits import Limits, parse_window

    parsed = parse_window(window)
    if not _is_workspace(workspace):
        raise SpecloopError(
            f"{workspace}: no specs/baseline_spec.yaml; not a DEFT workspace.", rule="workspace"
        )
    opts = WatchOptions(
        once=once,
        window=parsed,
        min_new_rows=min_new_rows,
        poll_s=poll,
        debounce_s=debounce,
        epochs=epochs,
        baseline_epochs=baseline_epochs,
        lr=lr,
        replay=replay,
        min_improvement=min_improvement,
        gate=GateRule(margin=margin),
        limits=Limits(max_mem_pct=max_mem_pct, min_free_gb=min_free_gb),
        registry_uri=registry,
    )
    raise typer.Exit(Watcher(workspace, opts).run())


def _is_workspace(path: Path) -> bool:
    return (path / "specs" / "baseline_spec.yaml").is_file()
