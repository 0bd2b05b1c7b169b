"""`specloop specs check [PATH ...]`: lint spec files' executable contracts."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape

app = typer.Typer(help="Lint the executable contracts in spec files.", no_args_is_help=True)
err_console = Console(stderr=True)


@app.command()
def check(
    paths: list[Path] = typer.Argument(
        None, help="Spec files or folders (default: the specs shipped with specloop)."
    ),
) -> None:
    """One sentence per problem (file:line, rule, offending value); exit 2 on any, 0 when clean."""
    from specloop.skills.contracts import lint

    found, problems = lint(paths or None)
    for p in problems:
        err_console.print(escape(p.sentence()), highlight=False, soft_wrap=True)
    if problems:
        err_console.print(
            f"[bold red]{len(problems)} problem(s)[/] in {len(found.files)} spec file(s)", highlight=False
        )
        raise typer.Exit(2)
    pipelines = ", ".join(sorted(found.pipelines())) or "none"
    err_console.print(
        f"{len(found.contracts)} contract(s) in {len(found.files)} spec file(s) are valid (pipelines: {pipelines})",
        highlight=False,
    )
