"""`specloop audit RUN_DIR`: a verdict with evidence on any run directory, DEFT or create."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

if TYPE_CHECKING:
    from specloop.skills.audit import AuditResult

err_console = Console(stderr=True)
STYLE = {"pass": "green", "fail": "bold red", "warn": "yellow", "n/a": "dim"}


def _summary(result: AuditResult, report: Path) -> None:
    from specloop.skills.audit import CHECKS

    err_console.print(f"[bold]audit of {escape(result.run_dir)}[/]", highlight=False, soft_wrap=True)
    checks = Table(show_edge=False)
    checks.add_column("check")
    checks.add_column("status")
    checks.add_column("findings", justify="right")
    for name in CHECKS:
        status = result.status(name)
        n = sum(1 for f in result.findings if f.check == name)
        checks.add_row(name, f"[{STYLE[status]}]{status}[/]", str(n) if n else "")
    err_console.print(checks)
    for f in result.findings:
        failing = f.severity == "error" or result.strict
        mark = "[bold red]FAIL[/]" if failing else "[yellow]warn[/]"
        err_console.print(f"{mark} [bold]{f.check}[/] {escape(f.location)}", highlight=False, soft_wrap=True)
        err_console.print(f"     {escape(f.message)}", highlight=False)
        if f.expected is not None or f.found is not None:
            err_console.print(
                f"     expected {escape(str(f.expected))} · found {escape(str(f.found))}", highlight=False
            )
    facts = result.facts
    made = (
        f"project: {facts.get('project')}"
        if facts.get("pipeline") == "create"
        else f"best: {facts.get('best')}"
    )
    err_console.print(
        f"{facts.get('pipeline')} run · approval: {escape(str(facts.get('approval')))} · {escape(made)} · "
        f"{facts.get('stages')} stages · {result.seconds:.2f}s",
        highlight=False,
    )
    style = "red" if result.exit_code else "green"
    err_console.print(
        f"[{style}]verdict: {escape(result.verdict)}[/] · report: {escape(str(report))}", highlight=False
    )


def audit_command(
    run_dir: Path = typer.Argument(
        ..., help="The run directory (<workspace>/results/run_<timestamp>, or a create run's --out)."
    ),
    out: Path | None = typer.Option(
        None, "--out", help="Write AUDIT_REPORT.md and audit.json here instead of into the run directory."
    ),
    strict: bool = typer.Option(False, "--strict", help="Count warnings as findings (for CI)."),
    as_json: bool = typer.Option(False, "--json", help="Print audit.json to standard output."),
) -> None:
    """Audit a DEFT or create run: integrity, the gate, claims vs evidence, data and record hygiene.

    Exit 0 clean, 1 findings, 2 the directory is not a run.
    """
    from specloop.skills.audit import audit_run, write_reports

    result = audit_run(run_dir, strict=strict)
    report, _ = write_reports(result, out if out is not None else Path(result.run_dir))
    if as_json:
        typer.echo(json.dumps(result.to_dict(), indent=2, default=str))
    _summary(result, report)
    raise typer.Exit(result.exit_code)
