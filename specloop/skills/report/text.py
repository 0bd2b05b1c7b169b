"""Numbers as the report prints them, the neutral status phrase, and the iteration summaries."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from specloop.errors import SpecloopError
from specloop.skills.report.run import Iteration, Run, load_run, number

MAX_SUMMARY_WORDS = 300
MAX_LISTED = 8


def pct(value: float | None, decimals: int = 1) -> str:
    """A fraction as a percentage (`0.044` → `4.4%`); tiny non-zero values keep a visible digit."""
    v = number(value)
    if v is None:
        return "n/a"
    shown = v * 100
    while decimals < 4 and shown != 0 and round(shown, decimals) == 0:
        decimals += 1
    return f"{shown:.{decimals}f}%"


def _decimals(*values: float) -> int:
    """The fewest decimals (1–3) at which the given percentages print differently."""
    for d in (1, 2, 3):
        if len({f"{v * 100:.{d}f}" for v in values}) == len(set(values)):
            return d
    return 3


def final_status_phrase(far: float, target: float) -> str:
    """Neutral outcome: `KPI met: 0.4% < 1.0%` or `0.4 pp from target (1.4% vs < 1.0%)`."""
    f, t = number(far), number(target)
    if t is None:
        return f"KPI FAR {pct(f)} (no target set)" if f is not None else "KPI not measured yet"
    if f is None:
        return f"KPI not measured yet (target < {pct(t)})"
    d = _decimals(f, t)
    if f < t:
        return f"KPI met: {f * 100:.{d}f}% < {t * 100:.{d}f}%"
    gap = (f - t) * 100
    gd = d
    while gd < 4 and gap != 0 and round(gap, gd) == 0:
        gd += 1
    return f"{gap:.{gd}f} pp from target ({f * 100:.{d}f}% vs < {t * 100:.{d}f}%)"


def count_list(counts: Mapping[str, int], limit: int = MAX_LISTED) -> str:
    """`bridge 3, shift 2` (largest first, then by name), at most `limit` entries."""
    items = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    text = ", ".join(f"{k} {v}" for k, v in items[:limit])
    if len(items) > limit:
        text += f" and {len(items) - limit} more"
    return text or "none"


SOURCE_NAMES = {"mining_pool": "mined from the pool", "synthetic": "synthetic", "sdg": "synthetic"}


def source_name(source: str) -> str:
    return SOURCE_NAMES.get(source, source.replace("_", " "))


def word_count(text: str) -> int:
    return len(text.split())


def _result_line(run: Run, it: Iteration) -> str | None:
    if it.kpi_far is None:
        return None
    prev = run.iteration(it.previous) if it.previous else None
    target = run.far_target
    tgt = f" (target < {pct(target)})" if target is not None else ""
    if prev is not None and prev.kpi_far is not None:
        text = f"KPI FAR@100%R {pct(prev.kpi_far)} → {pct(it.kpi_far)}{tgt}"
    else:
        text = f"KPI FAR@100%R {pct(it.kpi_far)}{tgt}"
    if it.holdout_far is not None:
        if prev is not None and prev.holdout_far is not None:
            text += f"; holdout {pct(prev.holdout_far)} → {pct(it.holdout_far)}"
        else:
            text += f"; holdout {pct(it.holdout_far)}"
    return text + "."


def _checkpoint_line(it: Iteration) -> str | None:
    if not it.chosen:
        return None
    cands = it.candidates
    text = f"Kept the `{it.chosen}` checkpoint"
    if cands:
        text += " (" + ", ".join(f"{name} {pct(far)}" for name, far in cands.items()) + ")"
    return text + "."


def _lines(run: Run, it: Iteration) -> list[tuple[int, str]]:
    """(priority, line): lower priority numbers survive the word limit first."""
    lines: list[tuple[int, str]] = []
    if it.previous is None:
        epochs = (run.state.get("config") or {}).get("baseline_epochs")
        trained = "Trained ChangeNet on the base training set"
        if number(epochs) is not None:
            trained += f" for {int(number(epochs))} epochs"
        if it.training_rows:
            trained += f" ({it.training_rows} rows)"
        lines.append((1, f"**Baseline.** {trained}."))
    else:
        targets = it.targets_by_label
        if targets:
            lines.append(
                (
                    1,
                    f"**Targeted.** {sum(targets.values())} weak KPI rows from the {it.previous} RCA: "
                    f"{count_list(targets)}.",
                )
            )
        r = it.routing
        if number(r.get("to_mining")) is not None or number(r.get("to_anomalygen")) is not None:
            lines.append(
                (
                    3,
                    f"**Routed.** {int(number(r.get('to_mining')) or 0)} to k-NN mining, "
                    f"{int(number(r.get('to_anomalygen')) or 0)} to the synthetic pool.",
                )
            )
        m = it.mining
        if m:
            parts = [
                f"{m[k]} {name}"
                for k, name in (
                    ("candidates", "candidates"),
                    ("kept", "kept"),
                    ("rejected", "below the similarity threshold"),
                    ("duplicates", "duplicates"),
                    ("excluded", "excluded (already trained on or leakage)"),
                )
                if k in m
            ]
            lines.append((2, "**Mined.** " + ", ".join(parts) + "."))
        added = it.rows_added
        if added:
            text = "**Added.** " + ", ".join(f"{n} {source_name(s)}" for s, n in added.items()) + " rows"
            if it.training_rows:
                text += f"; the training set now holds {it.training_rows} rows"
            lines.append((1, text + "."))
    result = _result_line(run, it)
    if result:
        lines.append((0, f"**Result.** {result}"))
    ckpt = _checkpoint_line(it)
    if ckpt:
        lines.append((2, ckpt))
    if it.kpi_auroc is not None:
        auroc = f"KPI AUROC {it.kpi_auroc:.3f}"
        if it.holdout_auroc is not None:
            auroc += f", holdout AUROC {it.holdout_auroc:.3f}"
        lines.append((4, auroc + "."))
    if it.rca_selected:
        lines.append(
            (
                3,
                f"**Next.** This model's RCA selected {sum(it.rca_selected.values())} weak rows: "
                f"{count_list(it.rca_selected)}.",
            )
        )
    if it.unreachable:
        lines.append(
            (
                3,
                "No threshold that keeps every defect flagged reaches the target (see `unreachable_kpi.txt`).",
            )
        )
    if it.kpi_far is not None and run.far_target is not None:
        lines.append((0, f"**Status.** {final_status_phrase(it.kpi_far, run.far_target)}."))
    elif it.kpi_far is None:
        done = it.stage_completed or "no stage"
        lines.append((0, f"**Status.** Not evaluated yet (last completed stage: {done})."))
    return lines


def iteration_summary(run_dir: Path, iter_label: str) -> str:
    """Markdown of at most 300 words: what was targeted, what was added, what changed.

    Every number is read from the run directory (state, stage files); nothing is estimated.
    """
    run = load_run(Path(run_dir))
    it = run.iteration(iter_label)
    if it is None:
        raise SpecloopError(
            f"{Path(run_dir) / 'deft_state.json'}: no iteration {iter_label!r} "
            f"(known: {', '.join(i.label for i in run.iterations) or 'none'})."
        )
    lines = _lines(run, it)
    title = f"# {iter_label} summary"
    while True:
        text = "\n\n".join([title, *(line for _, line in lines)]) + "\n"
        if word_count(text) <= MAX_SUMMARY_WORDS or len(lines) <= 1:
            break
        drop = max(range(len(lines)), key=lambda i: (lines[i][0], i))
        lines.pop(drop)
    return text
