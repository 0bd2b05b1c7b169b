"""A short Markdown summary of one run, from its directory alone: the outcome, the best model, the
stop reason and the KPI trajectory. It is what CI writes to `$GITHUB_STEP_SUMMARY` and what the
chat shows for "show me the report"."""

from __future__ import annotations

from pathlib import Path

from specloop.skills.report.render import REPORT_FILE, STOP_REASONS
from specloop.skills.report.run import Run, load_run
from specloop.skills.report.text import final_status_phrase, pct, source_name


def _headline(run: Run) -> str:
    st = run.state
    stop = st.get("stop") or {}
    reason = stop.get("reason")
    if reason == "kpi_met":
        return "KPI met"
    if reason == "hard_stop":
        return f"hard stop at {stop.get('iter')} · {stop.get('stage')} [{stop.get('check')}]"
    if reason:
        return f"finished without meeting the KPI ({STOP_REASONS.get(reason, reason.replace('_', ' '))})"
    if not st.get("approval"):
        return "waiting for approval at the gate"
    last = run.log[-1] if run.log else None
    where = f" (last finished stage: {last['iter']} · {last['stage']})" if last else ""
    return f"in progress{where}"


def run_summary_markdown(run_dir: Path) -> str:
    """Outcome headline, KPI target, best model, stop reason and one table row per iteration."""
    run = load_run(Path(run_dir))
    st = run.state
    target = run.far_target
    best = run.best()
    lines = [f"## DEFT run `{run.dir.name}`: {_headline(run)}", ""]
    lines.append(
        f"- KPI: FAR at 100 % defect recall on `kpi/testing_set.csv`, target {st.get('kpi_target') or 'not set yet'}"
    )
    if best is not None and best.kpi_far is not None:
        ckpt = f", checkpoint `{best.checkpoint}`" if best.checkpoint else ""
        lines.append(f"- Best model: {best.label}, KPI FAR {pct(best.kpi_far, 2)}{ckpt}")
    else:
        lines.append("- Best model: none yet")
    stop = st.get("stop") or {}
    if stop.get("reason"):
        detail = f": {stop['detail']}" if stop.get("detail") else ""
        phrase = STOP_REASONS.get(stop["reason"], stop["reason"].replace("_", " "))
        lines.append(f"- Stop reason: `{stop['reason']}` — {phrase}{detail}")
    approval = st.get("approval") or {}
    if approval.get("by"):
        lines.append(f"- Approved by: {approval['by']}")
    lines.append(f"- Workspace: `{st.get('workspace', '')}`")
    evaluated = run.evaluated()
    if evaluated:
        lines += [
            "",
            "| iteration | KPI FAR@100%R | vs target | holdout FAR | KPI AUROC | rows added |",
            "|---|---:|---|---:|---:|---|",
        ]
        for it in evaluated:
            assert it.kpi_far is not None
            name = f"**{it.label}** (best)" if best is not None and it.label == best.label else it.label
            status = final_status_phrase(it.kpi_far, target) if target is not None else "no target"
            auroc = f"{it.kpi_auroc:.3f}" if it.kpi_auroc is not None else "n/a"
            added = ", ".join(f"{n} {source_name(s)}" for s, n in it.rows_added.items()) or "–"
            lines.append(
                f"| {name} | {pct(it.kpi_far, 2)} | {status} | {pct(it.holdout_far, 2)} | {auroc} | {added} |"
            )
    report = run.dir / REPORT_FILE
    if report.is_file():
        lines += ["", f"Full report: `{report}`"]
    return "\n".join(lines) + "\n"
