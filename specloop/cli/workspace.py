"""`specloop workspace synth|check`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

if TYPE_CHECKING:
    from specloop.skills.aoi.check import CheckReport

app = typer.Typer(help="Create and validate DEFT workspaces.", no_args_is_help=True)
console = Console()
err_console = Console(stderr=True)

_STYLE = {"error": "bold red", "warning": "yellow", "note": "dim"}


@app.command()
def synth(
    directory: Path = typer.Argument(..., help="Where to create the workspace (must not exist or be empty)."),
    size: str = typer.Option("small", "--size", help="tiny | small | medium"),
    seed: int = typer.Option(0, "--seed", help="Random seed; the same seed and size give identical files."),
    preview: Path | None = typer.Option(None, "--preview", help="Also write a contact-sheet PNG here."),
) -> None:
    """Synthesize a complete DEFT workspace of PCB component crops."""
    from specloop.skills.aoi.synth import SIZES, contact_sheet, synthesize_workspace

    if size not in SIZES:
        raise typer.BadParameter(f"size must be one of {', '.join(SIZES)}", param_hint="--size")
    report = synthesize_workspace(directory, size=size, seed=seed, progress=True)
    table = Table(title=f"workspace {directory} ({size}, seed {seed})")
    table.add_column("split")
    table.add_column("rows", justify="right")
    table.add_column("PASS", justify="right")
    table.add_column("defects", justify="right")
    for split, labels in report.counts.items():
        rows = sum(sum(boards.values()) for boards in labels.values())
        good = sum(labels.get("PASS", {}).values())
        table.add_row(split, str(rows), str(good), str(rows - good))
    console.print(table)
    console.print(
        f"generated in {report.seconds:.1f}s, {report.bytes_on_disk / 1e6:.1f} MB on disk; "
        f"data card: {directory / 'DATASET.md'}"
    )
    if preview is not None:
        console.print(f"contact sheet: {contact_sheet(directory, preview)}")


@app.command()
def check(
    directory: Path = typer.Argument(..., help="The workspace folder."),
    as_json: bool = typer.Option(False, "--json", help="Print a machine-readable report on stdout."),
) -> None:
    """Validate a workspace against the AOI data contract; exit 0 when clean, 2 otherwise."""
    from specloop.skills.aoi.check import check_workspace

    report = check_workspace(directory)
    if as_json:
        typer.echo(json.dumps(report.to_dict(), indent=2))
    else:
        _print_report(report)
    if not report.ok:
        raise typer.Exit(2)


def _print_report(report: CheckReport) -> None:
    table = Table(title=f"workspace {report.workspace}")
    for col, justify in (("split", "left"), ("rows", "right"), ("PASS", "right"), ("defects", "right")):
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    table.add_column("defect types")
    table.add_column("boards", justify="right")
    for name, s in report.splits.items():
        good = s.labels.get("PASS", 0)
        types = ", ".join(k for k in s.labels if k != "PASS")
        table.add_row(name, str(s.rows), str(good), str(s.rows - good), types, str(len(s.boards)))
    if report.synthetic_pairs:
        table.add_row("synthetic pool", str(report.synthetic_pairs), "", "", "", "")
    console.print(table)
    for p in report.problems:
        err_console.print(
            f"[{_STYLE[p.severity]}]{p.severity}[/] {escape(p.sentence())}", highlight=False, soft_wrap=True
        )
    n_err, n_warn = len(report.by_severity("error")), len(report.by_severity("warning"))
    if report.ok:
        console.print(f"[green]workspace OK[/] ({n_warn} warning(s))")
    else:
        err_console.print(f"[bold red]workspace has {n_err} error(s)[/] and {n_warn} warning(s)")
