"""`specloop models list|show|promote|rollback`: the workspace's model registry (MLflow)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from specloop.skills.registry.store import ModelRegistry

app = typer.Typer(
    help="The model registry: versions, the champion, promotion and rollback.", no_args_is_help=True
)
console = Console()

WS_OPT = typer.Option(Path("."), "--workspace", "-w", help="The DEFT workspace.")
REGISTRY_OPT = typer.Option(None, "--registry", help="MLflow tracking URI (default: SQLite in results/).")
JSON_OPT = typer.Option(False, "--json", help="Print JSON.")


def _registry(ws: Path, uri: str | None) -> ModelRegistry:
    from specloop.skills.registry.store import ModelRegistry

    return ModelRegistry(ws.resolve(), uri)


def _far(x: float | None) -> str:
    return "—" if x is None else f"{x:.2%}"


@app.command("list")
def list_command(
    workspace: Path = typer.Argument(Path("."), help="The DEFT workspace."),
    registry: str | None = REGISTRY_OPT,
    as_json: bool = JSON_OPT,
) -> None:
    """Every version, newest first, with its status and FAR@100%R on each set."""
    versions = _registry(workspace, registry).versions()
    if as_json:
        console.print_json(json.dumps(versions))
        return
    table = Table(box=None)
    for name in ("version", "status", "created (UTC)", "golden", "KPI", "holdout", "val"):
        table.add_column(name, no_wrap=True)
    for v in versions:
        m = v["metrics"]
        created = v["created"][:16].replace("T", " ")
        far = (_far(m[k]) for k in ("golden_far", "kpi_far", "holdout_far", "val_far"))
        table.add_row(v["version"], v["status"], created, *far)
    console.print(table if versions else "no model versions yet")


@app.command("show")
def show_command(version: str, workspace: Path = WS_OPT, registry: str | None = REGISTRY_OPT) -> None:
    """One version's record (files, hashes, command line, metrics, status)."""
    console.print_json(json.dumps(_registry(workspace, registry).get(version)))


def _said(action: str, rec: dict[str, Any], ws: Path) -> None:
    console.print(
        f"[bold]\\[models · {action}][/] champion is {rec['version']} "
        f"(golden FAR@100%R {_far(rec['metrics']['golden_far'])}); {ws / 'results' / 'best_model.json'} points at it",
        highlight=False,
        soft_wrap=True,
    )


@app.command("promote")
def promote_command(version: str, workspace: Path = WS_OPT, registry: str | None = REGISTRY_OPT) -> None:
    """Make VERSION the champion by hand (the gate is the watcher's; this is the operator's override)."""
    from specloop.skills.registry.journal import log_event

    rec = _registry(workspace, registry).promote(version)
    log_event(workspace.resolve(), "promoted", f"{version} promoted by hand")
    _said("promote", rec, workspace)


@app.command("rollback")
def rollback_command(
    version: str | None = typer.Argument(
        None, help="The version to return to (default: the previous champion)."
    ),
    workspace: Path = WS_OPT,
    registry: str | None = REGISTRY_OPT,
) -> None:
    """Return the champion to VERSION or the previous healthy champion; the current one is rolled_back."""
    from specloop.skills.registry.journal import log_event

    rec = _registry(workspace, registry).rollback(version)
    log_event(workspace.resolve(), "rolled_back", f"rolled back by hand to {rec['version']}")
    _said("rollback", rec, workspace)
