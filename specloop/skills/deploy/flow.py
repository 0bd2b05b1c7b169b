"""The four deployment stages on one project: docker_env → image → deploy_smoke → monitoring.

A first deployment starts the ``blue`` colour on ``port + 1`` and the router on ``port``; a later
one starts the other colour beside the running one and switches the router to it only after it is
healthy, ready, answers every endpoint and passes its smoke test (blue-green). A failure before the
switch removes only the new colour (the old one keeps serving) and writes docker_error_report_N.md;
on a first deployment nothing is left running.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from specloop.errors import SpecloopError
from specloop.skills.deploy import docker_env, drift, image, promtool, render, reports, service, smoke
from specloop.skills.deploy.backends import DockerBackend, ProcessBackend
from specloop.skills.deploy.image import StageFailed
from specloop.skills.deploy.target import Target, load_target

STATE_FILE = service.STATE_DIR / "deployment.json"
COLORS = ("blue", "green")
IMAGE_FILES = ("Dockerfile", "requirements-serve.txt", "constraints.txt", "check_env.py")
DEFAULT_P95_MS = 500.0  # the alert threshold when requirements.md states no latency SLA


@dataclass(frozen=True)
class Options:
    port: int = 8000
    gpu: bool = False
    base_image: str | None = None
    wheelhouse: Path | None = None
    ca_bundle: Path | None = None
    use_existing: bool = False
    requests: int = 200
    concurrency: int = 4
    timeout_s: float = 180
    image: str | None = None  # deploy this already-built image (skips the build)
    force_process: bool = False


@dataclass
class Outcome:
    project: Path
    mode: str
    color: str
    port: int
    reports: dict[str, str] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "project": str(self.project),
            "mode": self.mode,
            "color": self.color,
            "port": self.port,
            "reports": self.reports,
            "info": self.info,
        }


def read_state(root: Path) -> dict[str, Any] | None:
    path = root / STATE_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def _save_state(root: Path, data: dict[str, Any]) -> None:
    render.write_atomic(root / STATE_FILE, json.dumps(data, indent=2) + "\n")


def image_tag(target: Target) -> str:
    """``<slug>:<version>-<12 hex>`` over everything the image copies (weights, code, config, the
    rendered Dockerfile and requirements): a new model or code is a new tag, the same ones reuse it."""
    root = target.root
    paths = [
        root / target.checkpoint,
        root / "scripts" / "serve.py",
        *sorted((root / "src").rglob("*.py")),
        *sorted((root / "configs").rglob("*.yaml")),
        *(root / render.DOCKER_DIR / name for name in IMAGE_FILES),
        *sorted((root / render.DOCKER_DIR / "wheelhouse").glob("*")),
    ]
    digest = hashlib.sha256()
    for path in paths:
        if path.is_file():
            digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return f"{target.slug}:{target.version}-{digest.hexdigest()[:12]}"


def _backend(target: Target, env: docker_env.DockerEnv, options: Options) -> DockerBackend | ProcessBackend:
    if env.engine_ok and not options.force_process:
        assert env.compose is not None
        return DockerBackend(target.root, slug=target.deploy_id, compose=env.compose)
    return ProcessBackend(target.root)


def deploy(project_dir: Path, options: Options, *, say: Callable[[str], None] = print) -> Outcome:
    """Run the four stages; see the module docstring. SpecloopError for bad input before anything ran."""
    started = time.monotonic()
    target = load_target(project_dir)
    root = target.root
    env = docker_env.detect()
    mode = "docker" if env.engine_ok and not options.force_process else ProcessBackend.mode
    render.write_atomic(
        root / "docker_env_report.md", docker_env.render_report(env, gpu=options.gpu, mode=mode)
    )
    if options.gpu and not env.engine_ok:
        raise SpecloopError(
            "a GPU deployment needs a Docker engine with GPU passthrough, and none answers", rule="docker-env"
        )
    docker_env.require(env, gpu=options.gpu)
    say(
        f"[docker_env] {mode}; docker {env.server_version or '—'}, compose {env.compose_version or '—'}, "
        f"gpu passthrough {env.gpu_passthrough or 'none'}"
    )
    backend = _backend(target, env, options)
    previous = read_state(root)
    if previous is not None and previous.get("mode") != backend.mode:
        raise SpecloopError(
            f"{root / STATE_FILE}: a {previous.get('mode')} deployment runs; stop it with --down first",
            rule="deploy-state",
        )
    live = previous is not None and backend.alive(previous["colors"][previous["active"]]["handle"])
    if previous is not None and not live:
        _stop_everything(root, backend, previous)
        previous = None
    color = COLORS[1 - COLORS.index(previous["active"])] if previous else COLORS[0]
    color_port = options.port + 1 + COLORS.index(color)
    if previous is None:
        service.require_port(options.port)
    elif previous["port"] != options.port:
        raise SpecloopError(
            f"the running deployment serves port {previous['port']}; pass --port {previous['port']} "
            "or stop it with --down",
            rule="port",
        )
    service.require_port(color_port)

    info: dict[str, Any] = {
        "mode": backend.mode,
        "color": color,
        "color_port": color_port,
        "port": options.port,
        "wheelhouse": str(options.wheelhouse) if options.wheelhouse else None,
    }
    compose_file = root / render.DOCKER_DIR / "docker-compose.yml"
    if isinstance(backend, DockerBackend):
        if options.use_existing:
            if not (root / render.DOCKER_DIR / "Dockerfile").is_file():
                raise SpecloopError(
                    f"{root / render.DOCKER_DIR / 'Dockerfile'} does not exist, and --use-existing "
                    "was asked for",
                    rule="use-existing",
                )
        else:
            render.render_docker(
                target,
                port=options.port,
                gpu=options.gpu,
                base_image=options.base_image,
                wheelhouse=options.wheelhouse,
                ca_bundle=options.ca_bundle,
            )
        render.check_compose(compose_file)
        tag = options.image or image_tag(target)
    tried: list[str] = []
    handle: str | None = None
    try:
        if isinstance(backend, DockerBackend):
            if options.image is None and not image.exists(tag):
                tried.append(f"docker build -f deploy/docker/Dockerfile -t {tag} . (network host)")
                built = image.build_image(
                    root, tag=tag, base_image=options.base_image or "(Dockerfile's FROM)"
                )
                info.update(
                    image=built.tag,
                    image_size_mb=built.size_mb,
                    layers=built.layers,
                    build_seconds=built.build_seconds,
                    base_image=built.base_image,
                )
                say(
                    f"[image] {tag}: {built.size_mb} MB, {built.layers} layers, built in {built.build_seconds} s"
                )
            else:
                info.update(image=tag, **image.facts(tag))
                say(
                    f"[image] {tag}: up to date, reused ({info['image_size_mb']} MB, {info['layers']} layers)"
                )
            tried.append(f"docker run --network none {tag} python /app/deploy/check_env.py")
            checked = image.check_image(root, tag, gpu=options.gpu, log_path=root / "container_env_check.log")
            info.update(
                python=checked.get("python"),
                torch=checked.get("torch"),
                device=checked.get("device"),
                cuda_available=checked.get("cuda_available"),
            )
            payload_source: str = tag
        else:
            payload_source = str(root / target.checkpoint)
            info.update(device="cpu", image="none (local process)")
        tried.append(f"start {color} on 127.0.0.1:{color_port}")
        handle = backend.start(color, artifact=payload_source, port=color_port)
        info["healthy_seconds"] = backend.wait(handle, timeout_s=options.timeout_s)
        base = f"http://127.0.0.1:{color_port}"
        tried.append(f"wait for {base}/ready")
        info["ready_seconds"] = _ready(base, backend, handle, options.timeout_s)
        samples = smoke.mini_samples(root)
        checks = smoke.check_endpoints(base, samples[0][1])
        if bad := [c for c in checks if not c.ok]:
            raise StageFailed(
                f"{bad[0].method} {bad[0].path} on the new version answered {bad[0].status}: {bad[0].detail}",
                step="endpoint checks",
                log=backend.logs(handle),
                rule="endpoints",
            )
        tried.append(f"smoke test: {options.requests} × POST /predict at concurrency {options.concurrency}")
        direct = smoke.load_test(
            base,
            [s for _, s in samples],
            requests=options.requests,
            concurrency=options.concurrency,
            sample_resources=lambda: backend.stats(handle),
        )
        _gate(target, direct, backend.logs(handle))
    except (StageFailed, SpecloopError) as exc:
        removed = _roll_back(root, backend, color, handle, previous)
        step = exc.step if isinstance(exc, StageFailed) else "deploy"
        log = exc.log if isinstance(exc, StageFailed) else (backend.logs(handle) if handle else "")
        still = f"{previous['active']} on port {previous['port']} (unchanged)" if previous else None
        path = reports.write_error_report(
            root, step=step, message=exc.message, log=log, tried=tried, removed=removed, still_serving=still
        )
        raise SpecloopError(f"{exc.message} (see {path.name})", rule=exc.rule) from None

    colors = dict(previous["colors"]) if previous else {}
    colors[color] = {"port": color_port, "handle": handle, "image": info.get("image")}
    state = {
        "mode": backend.mode,
        "port": options.port,
        "active": color,
        "colors": colors,
        "router": previous["router"] if previous else None,
        "project": target.name,
    }
    public = f"http://127.0.0.1:{options.port}"
    try:
        service.write_upstream(root, color_port)
        if previous is None:
            tried.append(f"start the router on 127.0.0.1:{options.port}")
            state["router"] = backend.start_router(artifact=payload_source, port=options.port)
        _save_state(root, state)
        _ready(public, backend, state["router"], options.timeout_s)
    except (StageFailed, SpecloopError) as exc:
        removed = _stop_everything(root, backend, state) if previous is None else []
        if previous is not None:
            service.write_upstream(root, previous["colors"][previous["active"]]["port"])
            removed = _roll_back(root, backend, color, handle, previous)
            _save_state(root, previous)
        log = exc.log if isinstance(exc, StageFailed) else ""
        path = reports.write_error_report(
            root,
            step="switch",
            message=exc.message,
            log=log,
            tried=tried,
            removed=removed,
            still_serving=None,
        )
        raise SpecloopError(f"{exc.message} (see {path.name})", rule=exc.rule) from None
    if previous is not None:
        old = previous["active"]
        _drain(f"http://127.0.0.1:{previous['colors'][old]['port']}")
        backend.stop(old, previous["colors"][old]["handle"])
        colors.pop(old)
        _save_state(root, state)
        say(f"[deploy_smoke] switched {old} → {color}; {old} stopped")
    checks = smoke.check_endpoints(public, samples[0][1])
    through = smoke.load_test(
        public,
        [s for _, s in samples],
        requests=options.requests,
        concurrency=options.concurrency,
        sample_resources=lambda: backend.stats(handle),
    )
    info["deploy_seconds"] = round(time.monotonic() - started, 1)
    sample_path = next((root / "data" / "mini").rglob("*.png"), root / "data" / "mini" / "IMAGE.png")
    curl = smoke.curl_command(public, str(sample_path.relative_to(root)))
    written = {"docker_env": str(root / "docker_env_report.md")}
    written["deploy"] = str(
        reports.write_deploy_report(target, info, checks, {"direct": direct, "public": through}, curl)
    )
    say(
        f"[deploy_smoke] {color} healthy on {public}: p95 {through.p95_ms} ms, {through.throughput_per_s} req/s, "
        f"errors {through.errors}"
    )
    try:
        written.update(_monitoring(target, info, through, checks, public))
    except SpecloopError as exc:  # the service passed its smoke test and keeps serving; monitoring did not
        log = exc.log if isinstance(exc, StageFailed) else ""
        path = reports.write_error_report(
            root,
            step="monitoring",
            message=exc.message,
            log=log,
            tried=["render deploy/monitoring", "promtool check rules / test rules / check config"],
            removed=[],
            still_serving=f"{color} on port {options.port} (it passed its smoke test; stop it with --down)",
        )
        raise SpecloopError(f"{exc.message} (see {path.name})", rule=exc.rule) from None
    say(f"[monitoring] rules checked and tested with promtool; {info.get('drift')}")
    if isinstance(backend, DockerBackend):
        written["container_env_check"] = str(root / "container_env_check.log")
    info["smoke"] = through.to_dict()
    return Outcome(root, backend.mode, color, options.port, written, info)


def _ready(base: str, backend: DockerBackend | ProcessBackend, handle: str, timeout_s: float) -> float:
    try:
        return smoke.wait_ready(base, timeout_s=timeout_s, alive=lambda: backend.alive(handle))
    except SpecloopError as exc:
        raise StageFailed(exc.message, step="ready", log=backend.logs(handle), rule="ready") from None


def _gate(target: Target, result: smoke.SmokeResult, log: str) -> None:
    """The new version takes traffic only with no errors and its p95 within the SLA (when one is stated)."""
    if result.errors:
        raise StageFailed(
            f"the smoke test had {result.errors} errors in {result.requests} requests "
            f"({result.error_samples[0]})",
            step="smoke test",
            log=log,
            rule="smoke",
        )
    sla = target.sla.latency_ms
    if sla is not None and result.p95_ms > sla:
        raise StageFailed(
            f"the smoke test's p95 {result.p95_ms} ms is over the {sla:g} ms SLA",
            step="smoke test",
            log=log,
            rule="sla",
        )


def _drain(base: str, timeout_s: float = 10) -> None:
    """Wait until the old version serves nothing but this scrape (its in-progress gauge reads 1)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            text = drift.scrape(base)
        except SpecloopError:
            return
        gauge = next((line for line in text.splitlines() if line.startswith("requests_in_progress ")), "x 0")
        if float(gauge.split()[1]) <= 1:
            return
        time.sleep(0.2)


def _roll_back(
    root: Path,
    backend: DockerBackend | ProcessBackend,
    color: str,
    handle: str | None,
    previous: dict[str, Any] | None,
) -> list[str]:
    """Remove the new colour; with no earlier deployment, everything this project started."""
    backend.stop(color, handle)
    removed = [handle] if handle else []
    if previous is None and isinstance(backend, DockerBackend):
        removed += backend.stop_all()
    return removed


def _stop_everything(
    root: Path, backend: DockerBackend | ProcessBackend, state: dict[str, Any] | None
) -> list[str]:
    stopped = []
    if state:
        for color, entry in state.get("colors", {}).items():
            backend.stop(color, entry.get("handle"))
            stopped.append(f"{color} ({entry.get('handle', '')[:12]})")
        if isinstance(backend, ProcessBackend) and state.get("router"):
            backend.stop("router", state["router"])
            stopped.append("router")
    if isinstance(backend, DockerBackend):
        stopped += [f"container {c[:12]}" for c in backend.stop_all()]
    (root / STATE_FILE).unlink(missing_ok=True)
    return stopped


def down(project_dir: Path) -> list[str]:
    """Stop and remove every version and the router of this project's deployment."""
    root = Path(project_dir).resolve()
    target = load_target(root)
    state = read_state(root)
    env = docker_env.detect()
    if state is not None and state.get("mode") != "docker":
        return _stop_everything(root, ProcessBackend(root), state)
    if not env.engine_ok or env.compose is None:
        if state is None:
            return []
        raise SpecloopError(
            f"{root / STATE_FILE} records a docker deployment, and no Docker engine answers",
            rule="docker-env",
        )
    return _stop_everything(root, DockerBackend(root, slug=target.deploy_id, compose=env.compose), state)


def _monitoring(
    target: Target, info: dict[str, Any], through: smoke.SmokeResult, checks: list[smoke.Check], public: str
) -> dict[str, str]:
    """Render and check the monitoring files, measure drift, write the running report and README section."""
    p95_sla = target.sla.latency_ms or DEFAULT_P95_MS
    files = render.render_monitoring(target, port=info["port"], job=target.slug, sla_p95_ms=p95_sla)
    promtool.check_rules(files["rules"])
    promtool.test_rules(files["rules_test"])
    promtool.check_config(files["prometheus"])
    info["promtool"] = "check rules, test rules and check config pass"
    measured = drift.measure(drift.scrape(public), sla=target.sla, expected=target.training_shares)
    info["drift"] = "drift: " + ("; ".join(measured.findings) if measured.drifted else "none")
    drift_md = drift.render_drift_report(measured, base_url=public, sla=target.sla)
    monitoring = {k: str(v.relative_to(target.root)) for k, v in files.items()}
    running = reports.write_running_report(target, info, through, checks, monitoring, drift_md)
    reports.update_readme(target, info, through)
    return {
        "running": str(running),
        "readme": str(target.root / "README.md"),
        **{k: str(v) for k, v in files.items()},
    }


def drift_check(project_dir: Path) -> tuple[drift.DriftResult, Path]:
    """Read the live deployment's /metrics, compare with the SLAs and training shares, write drift_report.md."""
    target = load_target(project_dir)
    state = read_state(target.root)
    if state is None:
        raise SpecloopError(
            f"{target.root}: nothing is deployed (no {STATE_FILE}); run `specloop deploy` first", rule="drift"
        )
    base = f"http://127.0.0.1:{state['port']}"
    result = drift.measure(drift.scrape(base), sla=target.sla, expected=target.training_shares)
    path = render.write_atomic(
        target.root / "drift_report.md", drift.render_drift_report(result, base_url=base, sla=target.sla)
    )
    return result, path
