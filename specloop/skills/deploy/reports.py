"""The Markdown reports a deployment leaves at the project root, and the README's measured section."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from specloop.skills.deploy.render import write_atomic
from specloop.skills.deploy.smoke import Check, SmokeResult
from specloop.skills.deploy.target import Target

README_START = "<!-- specloop:deploy:start -->"
README_END = "<!-- specloop:deploy:end -->"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def next_error_report(root: Path) -> Path:
    numbers = [
        int(m.group(1))
        for p in root.glob("docker_error_report_*.md")
        if (m := re.search(r"_(\d+)\.md$", p.name))
    ]
    return root / f"docker_error_report_{max(numbers, default=0) + 1}.md"


def write_error_report(
    root: Path,
    *,
    step: str,
    message: str,
    log: str,
    tried: list[str],
    removed: list[str],
    still_serving: str | None,
) -> Path:
    """``docker_error_report_N.md``: what failed, its output, what was tried and what was cleaned up."""
    lines = [
        f"# Docker error report — {step}",
        "",
        f"- time: {_now()}",
        f"- failed step: {step}",
        f"- error: {message}",
        f"- containers stopped and removed: {', '.join(c[:12] for c in removed) or 'none were left'}",
        f"- still serving: {still_serving or 'nothing (the deployment was rolled back completely)'}",
        "",
        "## What was tried",
        "",
        *[f"{i}. {t}" for i, t in enumerate(tried, start=1)],
        "",
        "## Output (tail)",
        "",
        "```text",
        log.strip() or "(no output)",
        "```",
        "",
    ]
    return write_atomic(next_error_report(root), "\n".join(lines))


def _check_rows(checks: list[Check]) -> list[str]:
    rows = ["| request | status | ms | ok | answer |", "| --- | --- | --- | --- | --- |"]
    rows += [
        f"| {c.method} {c.path} | {c.status} | {c.ms} | {'yes' if c.ok else 'NO'} | "
        f"{c.detail.replace('|', '/')[:100]} |"
        for c in checks
    ]
    return rows


def _smoke_rows(name: str, s: SmokeResult) -> str:
    res = s.resources
    return (
        f"| {name} | {s.requests} @ {s.concurrency} | {s.p50_ms} | {s.p95_ms} | {s.p99_ms} | {s.throughput_per_s} | "
        f"{s.error_rate:.2%} | {res.get('memory_mb', '—')} | {res.get('cpu_percent', '—')} |"
    )


def sla_verdicts(target: Target, smoke: SmokeResult) -> list[tuple[str, str, str, str]]:
    """(SLA, target, measured, verdict) rows."""
    sla = target.sla
    rows = []
    if sla.latency_ms is not None:
        rows.append(
            (
                "p95 latency",
                f"≤ {sla.latency_ms:g} ms",
                f"{smoke.p95_ms} ms",
                "met" if smoke.p95_ms <= sla.latency_ms else "NOT met",
            )
        )
    else:
        rows.append(("p95 latency", "none stated", f"{smoke.p95_ms} ms", "measured"))
    if sla.throughput_per_s is not None:
        rows.append(
            (
                "throughput",
                f"≥ {sla.throughput_per_s:g}/s",
                f"{smoke.throughput_per_s}/s",
                "met" if smoke.throughput_per_s >= sla.throughput_per_s else "NOT met",
            )
        )
    else:
        rows.append(("throughput", "none stated", f"{smoke.throughput_per_s}/s", "measured"))
    rows.append(("error rate", "0", f"{smoke.error_rate:.2%}", "met" if smoke.errors == 0 else "NOT met"))
    return rows


def write_deploy_report(
    target: Target, info: dict[str, Any], checks: list[Check], smokes: dict[str, SmokeResult], curl: str
) -> Path:
    """``deploy_report.md``: deploy time, endpoints, health, smoke results and resources, SLAs."""
    public = smokes["public"]
    lines = [
        f"# Deploy report — {target.name}",
        "",
        f"- time: {_now()}",
        f"- mode: {info['mode']}",
        f"- image: {info.get('image', '—')} ({info.get('image_size_mb', '—')} MB, {info.get('layers', '—')} layers, "
        f"built in {info.get('build_seconds', '—')} s from {info.get('base_image', '—')})",
        f"- wheelhouse: {info.get('wheelhouse') or 'none (pip resolved every package from the index)'}",
        f"- active version: {info['color']} on port {info['color_port']}, behind the router on port {info['port']}",
        f"- deploy time: {info['deploy_seconds']} s (healthy after {info.get('healthy_seconds', '—')} s, "
        f"ready after {info.get('ready_seconds', '—')} s)",
        "",
        "## Endpoints",
        "",
        *[
            f"- `http://127.0.0.1:{info['port']}{p}`"
            for p in ("/health", "/ready", "/predict", "/metrics", "/info", "/docs", "/openapi.json")
        ],
        "",
        "## Health and API checks",
        "",
        *_check_rows(checks),
        "",
        "Call it yourself (one image from data/mini):",
        "",
        "```bash",
        curl,
        "```",
        "",
        "## Smoke test (POST /predict, batch 1)",
        "",
        "| path | requests @ concurrency | p50 ms | p95 ms | p99 ms | req/s | errors | peak memory MB | peak CPU % |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        *[_smoke_rows(name, s) for name, s in smokes.items()],
        "",
        "`direct` is the new version on its own port, before it took traffic; `public` is through the router.",
        "",
        "## SLAs (requirements.md)",
        "",
        "| SLA | target | measured | verdict |",
        "| --- | --- | --- | --- |",
        *[f"| {a} | {b} | {c} | {d} |" for a, b, c, d in sla_verdicts(target, public)],
        "",
    ]
    return write_atomic(target.root / "deploy_report.md", "\n".join(lines))


def requirement_review(
    target: Target, info: dict[str, Any], smoke: SmokeResult, checks: list[Check]
) -> list[tuple[str, str, str, str]]:
    """(id, item, measured, verdict) for every requirement item."""
    ok = {c.path: c.ok for c in checks}
    verdicts = {row[0]: row for row in sla_verdicts(target, smoke)}
    rows = []
    for item in target.requirement_items:
        key, value = item["key"], item["value"]
        if key == "sla.latency":
            measured, verdict = verdicts["p95 latency"][2:]
        elif key == "sla.throughput":
            measured, verdict = verdicts["throughput"][2:]
        elif key == "compat.deployment":
            measured = f"service answers /health, /ready, /predict ({info['mode']})"
            verdict = "met" if ok.get("/health") and ok.get("/ready") and ok.get("/predict") else "NOT met"
        elif key == "constraint.hardware":
            measured = f"served on {info.get('device', 'cpu')}"
            verdict = "met" if (value != "gpu") == (info.get("device", "cpu") == "cpu") else "NOT met"
        elif key == "labels":
            wanted = {str(v).strip() for v in (value if isinstance(value, list) else str(value).split(","))}
            served = sorted(smoke.predicted)
            measured = f"classes served in the smoke test: {', '.join(served)} (of {len(target.labels)})"
            verdict = "met" if set(served) <= wanted | set(target.labels) else "NOT met"
        elif key == "constraint.memory":
            measured = f"peak container memory {smoke.resources.get('memory_mb', '—')} MB in the smoke test"
            verdict = "measured"
        elif key == "constraint.privacy":
            measured = "the service listens on 127.0.0.1 only (host network, SERVICE_HOST=127.0.0.1)"
            verdict = "met"
        elif key == "compat.python":
            measured = f"image python {info.get('python', '—')}"
            verdict = "met" if str(info.get("python", "")).startswith(str(value)) else "differs"
        else:
            measured, verdict = "not measured by deployment", "recorded"
        rows.append((item["id"], f"{key} = {value if value is not None else '—'}", measured, verdict))
    return rows


def write_running_report(
    target: Target,
    info: dict[str, Any],
    smoke: SmokeResult,
    checks: list[Check],
    monitoring: dict[str, str],
    drift_md: str,
) -> Path:
    """``docker_running_report.md``: monitoring in place, every requirement item reviewed, drift."""
    review = requirement_review(target, info, smoke, checks)
    lines = [
        f"# Running report — {target.name}",
        "",
        f"- time: {_now()}",
        f"- mode: {info['mode']}; serving {info['color']} behind `http://127.0.0.1:{info['port']}`",
        f"- monitoring: {', '.join(f'`{v}`' for v in monitoring.values())}",
        f"- promtool: {info.get('promtool', '—')}",
        "- rollback: blue-green; the next `specloop deploy` starts the other colour beside this one and switches "
        "only after it is healthy and its smoke test passes",
        "",
        "## Requirement review",
        "",
        "| id | item | measured | verdict |",
        "| --- | --- | --- | --- |",
        *[f"| {a} | {b} | {c} | {d} |" for a, b, c, d in review],
        "",
        drift_md,
    ]
    return write_atomic(target.root / "docker_running_report.md", "\n".join(lines))


def update_readme(target: Target, info: dict[str, Any], smoke: SmokeResult) -> Path:
    """Replace (or add) the README's measured-SLA section between its markers."""
    readme = target.root / "README.md"
    text = readme.read_text(encoding="utf-8") if readme.is_file() else f"# {target.name}\n"
    section = "\n".join(
        [
            README_START,
            "## Deployment: measured SLAs",
            "",
            f"Measured by `specloop deploy` on {_now()} ({info['mode']}, {smoke.requests} requests at concurrency "
            f"{smoke.concurrency}, batch 1, through `http://127.0.0.1:{info['port']}`).",
            "",
            "| SLA | target | measured | verdict |",
            "| --- | --- | --- | --- |",
            *[f"| {a} | {b} | {c} | {d} |" for a, b, c, d in sla_verdicts(target, smoke)],
            "",
            "See deploy_report.md and docker_running_report.md.",
            README_END,
        ]
    )
    if README_START in text and README_END in text:
        head, rest = text.split(README_START, 1)
        text = head + section + rest.split(README_END, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    return write_atomic(readme, text)
