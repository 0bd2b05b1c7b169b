"""`specloop deploy PROJECT_DIR`: docker_env → image → deploy_smoke → monitoring, `--down`, `--drift`."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.prompt import Confirm

from specloop.errors import SpecloopError

console = Console(stderr=True)
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
EXIT_DRIFT = 3


def _say(line: str) -> None:
    console.print(escape(line), highlight=False, soft_wrap=True)


def deploy_command(
    project_dir: Path = typer.Argument(..., help="A project made by `specloop create` (with outputs/*.pt)."),
    gpu: bool = typer.Option(
        False, "--gpu", help="Build the CUDA image; needs GPU passthrough in the engine."
    ),
    base_image: str | None = typer.Option(
        None, "--base-image", help="FROM this image instead of python:3.11-slim / the CUDA runtime (offline)."
    ),
    port: int = typer.Option(8000, "--port", help="Public port on 127.0.0.1 (versions use port+1, port+2)."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Deploy without asking."),
    down: bool = typer.Option(False, "--down", help="Stop and remove this project's deployment."),
    drift: bool = typer.Option(
        False, "--drift", help="Compare live /metrics with the SLAs and training data."
    ),
    wheelhouse: Path | None = typer.Option(
        None, "--wheelhouse", help="Local wheels (e.g. a CPU torch) copied into the build and preferred."
    ),
    ca_bundle: Path | None = typer.Option(
        HOST_CA_BUNDLE if HOST_CA_BUNDLE.is_file() else None,
        "--ca-bundle",
        help="CA bundle for pip inside the build (default: the host's, where it exists).",
    ),
    use_existing: bool = typer.Option(
        False, "--use-existing", help="Use deploy/docker/Dockerfile and docker-compose.yml as they are."
    ),
    requests: int = typer.Option(200, "--requests", min=1, help="Smoke-test requests."),
    concurrency: int = typer.Option(4, "--concurrency", min=1, help="Smoke-test concurrency."),
    image: str | None = typer.Option(None, "--image", help="Deploy this already-built image (no build)."),
    no_docker: bool = typer.Option(
        False, "--no-docker", help="Run the service as a local process even where Docker answers."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print a machine-readable summary on stdout."),
) -> None:
    """Deploy a generated project: image, compose (host network), health, smoke test, monitoring.

    Exit codes: 0 deployed (or stopped / no drift), 2 a failure (one sentence, and a
    docker_error_report_N.md where a deployment was attempted), 3 drift found, 4 waiting for --yes.
    """
    from specloop.skills.deploy import flow

    if down:
        stopped = flow.down(project_dir)
        _say(f"stopped: {', '.join(stopped) or 'nothing was running'}")
        if as_json:
            typer.echo(json.dumps({"stopped": stopped}))
        return
    if drift:
        result, path = flow.drift_check(project_dir)
        if as_json:
            typer.echo(json.dumps(result.to_dict(), indent=2))
        _say(f"{path}: {'DRIFT — ' + '; '.join(result.findings) if result.drifted else 'no drift'}")
        raise typer.Exit(EXIT_DRIFT if result.drifted else 0)
    if not yes:
        if not console.is_terminal:
            raise SpecloopError(
                f"deploying {project_dir} starts containers on port {port}; pass --yes to confirm",
                rule="approval",
                exit_code=4,
            )
        if not Confirm.ask(f"Deploy {project_dir} on 127.0.0.1:{port}?", console=console):
            raise typer.Exit(4)
    options = flow.Options(
        port=port,
        gpu=gpu,
        base_image=base_image,
        wheelhouse=wheelhouse,
        ca_bundle=ca_bundle,
        use_existing=use_existing,
        requests=requests,
        concurrency=concurrency,
        image=image,
        force_process=no_docker,
    )
    outcome = flow.deploy(project_dir, options, say=_say)
    if as_json:
        typer.echo(json.dumps(outcome.to_dict(), indent=2))
    _say(f"deployed {outcome.color} at http://127.0.0.1:{outcome.port} ({outcome.mode}); stop it with --down")
