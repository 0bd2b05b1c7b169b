"""Spec drift: live ``/metrics`` against requirements.md's SLAs and the training class distribution."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from specloop.errors import SpecloopError
from specloop.skills.deploy.target import Sla

DRIFT_SHARE = 0.25  # a class predicted this far from its training share is drift
MIN_PREDICTIONS = 50  # fewer predictions than this say nothing about the distribution


@dataclass
class DriftResult:
    predictions: int
    p95_ms: float | None
    error_rate: float | None
    shares: dict[str, float]
    expected: dict[str, float]
    max_share_gap: float | None
    mean_score: float | None
    findings: list[str] = field(default_factory=list)

    @property
    def drifted(self) -> bool:
        return bool(self.findings)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "drifted": self.drifted}


def scrape(base_url: str) -> str:
    try:
        r = httpx.get(f"{base_url}/metrics", timeout=10)
    except httpx.HTTPError as exc:
        raise SpecloopError(
            f"{base_url}/metrics does not answer ({type(exc).__name__}); is the service up?", rule="drift"
        ) from None
    if r.status_code != 200:
        raise SpecloopError(f"{base_url}/metrics answered {r.status_code}", rule="drift")
    return r.text


def histogram_quantile(q: float, buckets: list[tuple[float, float]]) -> float | None:
    """Prometheus' interpolation over cumulative ``(upper bound, count)`` buckets."""
    buckets = sorted(buckets)
    if not buckets or buckets[-1][1] == 0:
        return None
    rank = q * buckets[-1][1]
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if math.isinf(bound):
                return lower_bound
            return lower_bound + (bound - lower_bound) * (rank - lower_count) / max(
                count - lower_count, 1e-12
            )
        lower_bound, lower_count = bound, count
    return lower_bound


def measure(
    text: str, *, sla: Sla, expected: dict[str, float], drift_share: float = DRIFT_SHARE
) -> DriftResult:
    """Read latency, errors, class shares and scores from a /metrics text and name what drifted."""
    buckets: list[tuple[float, float]] = []
    total = errors = 0.0
    by_label: dict[str, float] = {}
    score_sum = score_count = 0.0
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == "request_latency_seconds_bucket" and s.labels.get("path") == "/predict":
                buckets.append((float(s.labels["le"]), s.value))
            elif s.name == "requests_total" and s.labels.get("path") == "/predict":
                total += s.value
                errors += s.value if s.labels.get("status", "").startswith("5") else 0
            elif s.name == "predictions_total":
                by_label[s.labels.get("label", "")] = s.value
            elif s.name == "prediction_score_sum":
                score_sum = s.value
            elif s.name == "prediction_score_count":
                score_count = s.value
    p95 = histogram_quantile(0.95, buckets)
    n = int(sum(by_label.values()))
    shares = {k: round(v / n, 4) for k, v in sorted(by_label.items())} if n else {}
    gap = max((abs(shares.get(k, 0.0) - e) for k, e in expected.items()), default=None) if n else None
    result = DriftResult(
        predictions=n,
        p95_ms=round(p95 * 1000, 2) if p95 is not None else None,
        error_rate=round(errors / total, 4) if total else None,
        shares=shares,
        expected=dict(expected),
        max_share_gap=round(gap, 4) if gap is not None else None,
        mean_score=round(score_sum / score_count, 4) if score_count else None,
    )
    if sla.latency_ms is not None and result.p95_ms is not None and result.p95_ms > sla.latency_ms:
        result.findings.append(f"p95 latency {result.p95_ms} ms is over the {sla.latency_ms:g} ms SLA")
    if result.error_rate:
        result.findings.append(f"{result.error_rate:.2%} of /predict requests failed")
    if n >= MIN_PREDICTIONS and gap is not None and gap > drift_share:
        worst = max(expected, key=lambda k: abs(shares.get(k, 0.0) - expected[k]))
        result.findings.append(
            f"class {worst} is {shares.get(worst, 0.0):.0%} of predictions against {expected[worst]:.0%} in training"
        )
    return result


def render_drift_report(result: DriftResult, *, base_url: str, sla: Sla) -> str:
    lines = [
        "# Spec-drift report",
        "",
        f"Live metrics from `{base_url}/metrics`, compared with requirements.md's SLAs ({sla.source}) and the "
        "class distribution of the training split (data/mini/train).",
        "",
        "| measure | live | expected |",
        "| --- | --- | --- |",
        f"| predictions | {result.predictions} | ≥ {MIN_PREDICTIONS} to judge the distribution |",
        f"| /predict p95 (histogram) | {result.p95_ms} ms | {f'≤ {sla.latency_ms:g} ms' if sla.latency_ms else 'no SLA'} |",
        f"| error rate | {result.error_rate} | 0 |",
        f"| largest class-share gap | {result.max_share_gap} | ≤ {DRIFT_SHARE} |",
        f"| mean top score | {result.mean_score} | — |",
        "",
        f"**Verdict: {'DRIFT — ' + '; '.join(result.findings) if result.drifted else 'no drift'}**",
        "",
    ]
    return "\n".join(lines)
