"""tech.md: the family's candidates measured on this machine, compared, and one chosen.

Every number in tech.md comes from :mod:`specloop.skills.scaffold.measure` and is printed with its
label (measured, extrapolated, assumed, cited) and formula. The choice is a rule over the
requirement's constraints, stated in the file: a latency SLA the candidate misses rules it out; a
CPU-only target prefers CPU-friendly candidates; then the family's own order (its recommendation).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from specloop.families.base import Family
from specloop.skills.scaffold.measure import Measurement

FULL_EPOCHS = 20
CPU_TARGETS = {"laptop_cpu", "cpu", "edge_cpu"}


def dataset_samples(size: str) -> int:
    """The first number in a dataset's size text ("70,000 images …" → 70000)."""
    m = re.search(r"\d[\d,]*", size)
    return int(m.group(0).replace(",", "")) if m else 0


def choose(
    family: Family, measured: dict[str, Measurement], *, hardware: str | None, latency_ms: float | None
) -> tuple[str, list[str]]:
    """(chosen candidate, the reasons, one per rule applied)."""
    names = [c.name for c in family.candidates]
    reasons = []
    if latency_ms is not None:
        fits = [n for n in names if measured[n].latency_ms_b1 <= latency_ms]
        if fits:
            dropped = [n for n in names if n not in fits]
            if dropped:
                reasons.append(f"{', '.join(dropped)} miss(es) the {latency_ms:g} ms latency SLA at batch 1")
            names = fits
        else:
            reasons.append(f"no candidate meets the {latency_ms:g} ms latency SLA; keeping the fastest first")
            names = sorted(names, key=lambda n: measured[n].latency_ms_b1)
    if hardware in CPU_TARGETS:
        cpu = [n for n in names if family.candidate(n).cpu_friendly]
        if cpu and cpu != names:
            reasons.append(f"the target is a CPU ({hardware}): CPU-friendly candidates first")
            names = cpu + [n for n in names if n not in cpu]
    reasons.append(f"{names[0]} is the first remaining in the family's recommended order")
    return names[0], reasons


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.1f}" if value >= 10 else f"{value:.3g}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def render_tech_md(
    family: Family,
    measured: dict[str, Measurement],
    estimates: dict[str, dict[str, dict[str, Any]]],
    chosen: str,
    reasons: Sequence[str],
    *,
    rationale: str,
) -> str:
    full = family.full_dataset
    mini = family.mini_dataset
    lines = [
        f"# Technology choice: {family.title}",
        "",
        f"Task family `{family.name}` ({family.modality}, {family.task}); metric: **{family.metric}**.",
        "",
        "Every number below is labelled: *measured* on this machine by the generated project's own",
        "`scripts/benchmark.py` (a few real training steps on inputs shaped like the data), *extrapolated*",
        "from measured numbers by the formula given, or *assumed* with its basis.",
        "",
        "## Datasets",
        "",
        f"- **Mini (offline)**: {mini.name} — {mini.size}. Source: {mini.source}. Licence: {mini.licence}. "
        f"How: {mini.how_to_obtain}.",
        f"- **Full**: {full.name} — {full.size}. Source: {full.source}. Licence: {full.licence}. "
        f"How: {full.how_to_obtain}.",
        "",
        "## Candidates",
        "",
    ]
    for c in family.candidates:
        m = measured[c.name]
        needs = ", ".join(c.requirements) or "nothing beyond the family's base requirements"
        lines += [
            f"### {c.title} (`{c.name}`){' — chosen' if c.name == chosen else ''}",
            "",
            c.description,
            "",
            f"- Constraints: {c.constraints}",
            f"- Needs: {needs}",
            f"- Dataset needs: trains on the mini set offline; the full set ({full.name}) for real accuracy",
            f"- Pros: {'; '.join(c.pros)}",
            f"- Cons: {'; '.join(c.cons)}",
            "",
            "| quantity | value | label | how |",
            "|---|---:|---|---|",
        ]
        for key, e in estimates[c.name].items():
            how = e["formula"] + (f" ({e['hardware']})" if e.get("hardware") else "")
            lines.append(f"| {key} | {_fmt(e['value'])} | {e['label']} | {how} |")
        lines.append(
            f"| benchmark command | `{' '.join(m.command[1:])}` | measured | exit {m.exit_code}, "
            f"{m.seconds:.1f}s, output sha256 {m.output_sha256[:12]} |"
        )
        lines.append("")
    lines += [
        "## Comparison",
        "",
        "| candidate | params (measured) | train samples/s (measured) | latency b1 ms (measured) | "
        f"full training on this CPU, s (extrapolated, {FULL_EPOCHS} epochs) | GPU memory MB (extrapolated) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for c in family.candidates:
        e = estimates[c.name]
        lines.append(
            f"| {c.name} | {_fmt(e['params']['value'])} | {_fmt(e['train_samples_per_sec']['value'])} | "
            f"{_fmt(e['latency_ms_b1']['value'])} | {_fmt(e['cpu_train_seconds']['value'])} | "
            f"{_fmt(e['gpu_memory_mb']['value'])} |"
        )
    lines += ["", "## Choice", "", f"**{chosen}**, by these rules in order:", ""]
    lines += [f"{i}. {r}" for i, r in enumerate(reasons, 1)]
    lines += ["", rationale.strip(), ""]
    return "\n".join(lines)
