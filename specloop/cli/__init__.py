"""The `specloop` command. Sub-commands live in sibling modules, one per subject."""

from __future__ import annotations

import os
import sys

import typer
from rich.console import Console
from rich.markup import escape

from specloop import __version__
from specloop.cli import (
    audit,
    changenet,
    chat,
    create,
    deft,
    deploy,
    mine,
    models,
    specs,
    target,
    watch,
    workspace,
)
from specloop.cli.dashboard import dashboard_command
from specloop.errors import SpecloopError, render

app = typer.Typer(
    name="specloop",
    help="Spec-driven multi-agent loops for ML engineering (DEFT loop for AOI change classifiers).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(workspace.app, name="workspace")
app.add_typer(changenet.app, name="changenet")
app.add_typer(deft.app, name="deft")
app.command("mine")(mine.mine_command)
app.command("audit")(audit.audit_command)
app.command("chat")(chat.chat_command)
app.add_typer(specs.app, name="specs")
app.command("create")(create.create_command)
app.command("deploy")(deploy.deploy_command)
app.add_typer(target.app, name="target")
app.add_typer(models.app, name="models")
app.command("watch")(watch.watch_command)
app.command("dashboard")(dashboard_command)

err_console = Console(stderr=True)


@app.callback(invoke_without_command=True)
def _root(
    version: bool = typer.Option(False, "--version", help="Print the version and exit."),
) -> None:
    if version:
        typer.echo(f"specloop {__version__}")
        raise typer.Exit(0)


def main() -> None:
    """Entry point: user errors become one sentence and their exit code, never a traceback."""
    try:
        _main()
    except SystemExit as done:
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:
            # A torchrun worker: after DDP, torch leaves gloo's worker threads alive past
            # destroy_process_group, and one still releasing the last collective while the interpreter
            # shuts down aborts the rank (SIGABRT). Everything is written by now: skip the shutdown.
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(done.code if isinstance(done.code, int) else (0 if done.code is None else 1))
        raise


def _main() -> None:
    try:
        app()
    except SpecloopError as exc:
        err_console.print(f"[bold red]error:[/] {escape(render(exc))}", highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except Exception as exc:  # a bug, not bad input: say so briefly, full trace on request
        if os.environ.get("SPECLOOP_DEBUG"):
            raise
        err_console.print(
            f"[bold red]unexpected error:[/] {escape(f'{type(exc).__name__}: {exc}')} "
            "(set SPECLOOP_DEBUG=1 for the traceback)",
            highlight=False,
            soft_wrap=True,
        )
        sys.exit(1)
