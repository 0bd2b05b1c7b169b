"""What the chat says about a run, composed from the run's ledger alone (deft_state.json,
loop_log.jsonl, the iteration files, kpi_gaps.parquet): status, the report, and why an
iteration went the way it did. Every number here is one the tools wrote down."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from specloop.ledger.requests import stop_request
from specloop.skills.report.markdown import run_summary_markdown
from specloop.skills.report.render import REPORT_FILE, STOP_REASONS
from specloop.skills.report.run import Iteration, Run, load_run, weak_targets
from specloop.skills.report.text import count_list, final_status_phrase, pct, source_name

# What the session knows about the graph that the ledger does not: is a thread running it now?
AT_GATE = "at_gate"
RUNNING = "running"
IDLE = "idle"  # started, not finished, and no thread is running it (closed mid-run, or it failed)
FINISHED = "finished"


def _trajectory(run: Run) -> str:
    return " → ".join(f"{it.label} {pct(it.kpi_far, 2)}" for it in run.evaluated())


def run_status(run_dir: Path, activity: str) -> str:
    """One short paragraph: where the run is, the KPI so far, and what happens next."""
    run = load_run(run_dir)
    st = run.state
    target = st.get("kpi_target") or "not set yet"
    head = f"Run {run.dir.name} on {st.get('workspace')}"
    if activity == AT_GATE:
        return (
            f"{head} is waiting for your approval at the gate (target {target}, up to "
            f"{st.get('max_iterations')} iteration(s) after the baseline). Say “go” to start it."
        )
    last = run.log[-1] if run.log else None
    done = (
        f"last finished stage {last['iter']} · {last['stage']}: {last['summary']}"
        if last
        else "no stage finished yet"
    )
    parts = []
    if activity == FINISHED:
        stop = st.get("stop") or {}
        reason = stop.get("reason", "")
        parts.append(f"{head} has finished ({STOP_REASONS.get(reason, reason.replace('_', ' '))}).")
    elif activity == RUNNING:
        n, total = st.get("current_iteration", 0), st.get("max_iterations")
        where = "the baseline" if n == 0 else f"iteration {n} of {total}"
        parts.append(f"{head} is running {where}; {done}.")
    else:
        parts.append(f"{head} is not running now; {done}. Continue it with: specloop deft resume {run.dir}")
    if run.evaluated():
        best = run.best()
        assert best is not None and best.kpi_far is not None
        parts.append(
            f"KPI FAR@100%R so far: {_trajectory(run)}; best {best.label} "
            f"({final_status_phrase(best.kpi_far, run.far_target) if run.far_target is not None else pct(best.kpi_far, 2)})."
        )
    else:
        parts.append(f"No model evaluated yet (target {target}).")
    request = stop_request(run.dir)
    if request is not None and activity != FINISHED:
        parts.append(f"A stop after the current iteration was requested in {request['by']}.")
    return " ".join(parts)


def report_text(run_dir: Path) -> str:
    """Where the HTML report is, and the run's Markdown summary (no browser is launched)."""
    report = Path(run_dir) / REPORT_FILE
    if report.is_file():
        head = f"The report is {report} — open it in a browser."
    else:
        head = "There is no report yet: the first one is written once the baseline has been evaluated."
    return head + "\n\n" + run_summary_markdown(Path(run_dir))


def _label(run: Run, which: str) -> str | None:
    """`latest`, `baseline`, `2` or `iter2` → the iteration label, or None if there is none."""
    if which in ("latest", "last", ""):
        evaluated = run.evaluated()
        return evaluated[-1].label if evaluated else None
    if which == "baseline" or which == "0":
        return "baseline"
    return f"iter{which.removeprefix('iter')}"


def _boards(run: Run, it: Iteration) -> str:
    rows = weak_targets(run, it)
    if rows is None or "boardname" not in rows.columns or rows.empty:
        return ""
    counts = Counter(str(b) or "unknown" for b in rows["boardname"])
    return f"; by board: {count_list(dict(counts))}"


def _weak_changes(prev: Iteration, it: Iteration) -> str:
    before, after = prev.rca_weak, it.rca_weak
    labels = sorted(set(before) | set(after))
    worse = [
        f"{lab} {before.get(lab, 0)} → {after.get(lab, 0)}"
        for lab in labels
        if after.get(lab, 0) > before.get(lab, 0)
    ]
    better = [
        f"{lab} {before.get(lab, 0)} → {after.get(lab, 0)}"
        for lab in labels
        if after.get(lab, 0) < before.get(lab, 0)
    ]
    parts = []
    if worse:
        parts.append("more weak KPI rows now in " + ", ".join(worse))
    if better:
        parts.append("fewer in " + ", ".join(better))
    return ("Weak rows by label (this RCA vs the previous): " + "; ".join(parts) + ".") if parts else ""


def explain_iteration(run_dir: Path, which: str) -> str:
    """Why an iteration went the way it did, in the ledger's numbers: FAR before and after, what
    the previous RCA targeted (by defect type and board), what was added, which checkpoint was kept
    and how the weak rows moved. Causes are not claimed; the numbers say where to look."""
    run = load_run(run_dir)
    label = _label(run, which.strip().lower())
    known = ", ".join(it.label for it in run.iterations if it.label != "final") or "none"
    if label is None:
        return f"No iteration of {run.dir.name} has been evaluated yet (iterations so far: {known})."
    it = run.iteration(label)
    if it is None:
        return f"There is no {label} in {run.dir.name} (iterations so far: {known})."
    if it.kpi_far is None:
        return f"{label} is not evaluated yet (last finished stage: {it.stage_completed or 'none'})."
    target = run.far_target
    tgt = f" (target < {pct(target)})" if target is not None else ""
    prev = run.iteration(it.previous) if it.previous else None
    lines = []
    if prev is None or prev.kpi_far is None:
        rows = f" on {it.training_rows} rows" if it.training_rows else ""
        lines.append(f"The baseline was trained{rows} and scored KPI FAR@100%R {pct(it.kpi_far, 2)}{tgt}.")
    else:
        delta = (it.kpi_far - prev.kpi_far) * 100
        verdict = "got worse" if delta > 0 else "improved" if delta < 0 else "did not change"
        lines.append(
            f"{label} {verdict}: KPI FAR@100%R {pct(prev.kpi_far, 2)} → {pct(it.kpi_far, 2)} "
            f"({delta:+.2f} pp){tgt}."
        )
        if prev.holdout_far is not None and it.holdout_far is not None:
            lines.append(f"Holdout FAR {pct(prev.holdout_far, 2)} → {pct(it.holdout_far, 2)}.")
        if it.targets_by_label:
            lines.append(
                f"It targeted {sum(it.targets_by_label.values())} weak KPI rows from the {prev.label} RCA — "
                f"by defect type: {count_list(it.targets_by_label)}{_boards(run, it)}."
            )
        if it.rows_added:
            added = ", ".join(f"{n} {source_name(s)}" for s, n in it.rows_added.items())
            total = f" (training set now {it.training_rows} rows)" if it.training_rows else ""
            lines.append(f"It added {added} rows{total}.")
        m = it.mining
        if m.get("candidates") is not None:
            lines.append(
                f"Mining kept {m.get('kept', 0)} of {m['candidates']} candidates "
                f"({m.get('rejected', 0)} below the similarity threshold, {m.get('duplicates', 0)} duplicates)."
            )
        changes = _weak_changes(prev, it)
        if changes:
            lines.append(changes)
    if it.candidates:
        cands = ", ".join(f"{name} {pct(far, 2)}" for name, far in it.candidates.items())
        lines.append(f"Checkpoint kept: {it.chosen} ({cands}).")
    if it.rca_selected:
        lines.append(
            f"Its RCA selected {sum(it.rca_selected.values())} weak rows next: {count_list(it.rca_selected)}."
        )
    best = run.best()
    if best is not None and best.label != label and best.kpi_far is not None:
        lines.append(
            f"The loop keeps the best model, {best.label} ({pct(best.kpi_far, 2)}); a worse iteration does not replace it."
        )
    stop = run.state.get("stop") or {}
    if stop.get("reason") and stop.get("iter", label) == label and run.evaluated()[-1].label == label:
        reason = stop["reason"]
        lines.append(f"The loop stopped here: {STOP_REASONS.get(reason, reason.replace('_', ' '))}.")
    return " ".join(lines)
