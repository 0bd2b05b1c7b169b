"""`DEFT_Loop_Report.html`: one self-contained page rendered from the run directory alone.

Plots and thumbnails are PNG data URIs, the CSS is inline, nothing refers to the network. The
output depends only on the files on disk (no clock), so re-rendering an unchanged run gives the
same bytes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2
import pandas as pd

from specloop.ledger.files import atomic_write_text
from specloop.skills.report.images import ImageLayout, scaled_png, trajectory_plot
from specloop.skills.report.run import Iteration, Run, disk_use, load_run, mined_rows, number, weak_targets
from specloop.skills.report.text import count_list, final_status_phrase, pct, source_name

REPORT_FILE = "DEFT_Loop_Report.html"
TEMPLATE = "report.html.j2"
KPI_IMAGES = ("kpi/images",)
POOL_IMAGES = ("augmentation/mining_pool/images",)
SAMPLE_TARGETS = 3
SAMPLE_NEIGHBOURS = 3
MAX_EVAL_PLOTS = 4

STOP_REASONS = {
    "kpi_met": "the KPI target was met",
    "max_iterations": "the iteration limit was reached",
    "hard_stop": "a check stopped the run",
}


def _env() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("specloop", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["pct"] = pct
    env.filters["count_list"] = count_list
    env.filters["source_name"] = source_name
    env.filters["paragraphs"] = _paragraphs
    env.filters["seconds"] = _seconds
    return env


def _paragraphs(text: Any) -> list[str]:
    return [p.strip() for p in str(text).replace("\r\n", "\n").split("\n\n") if p.strip()]


def _seconds(value: Any) -> str:
    s = number(value)
    if s is None:
        return "–"
    if s < 60:
        return f"{s:.1f} s"
    m, sec = divmod(round(s), 60)
    return f"{m} min {sec:02d} s" if m < 60 else f"{m // 60} h {m % 60:02d} min"


def _delta(before: float | None, after: float | None) -> dict[str, Any] | None:
    if before is None or after is None:
        return None
    pp = round((after - before) * 100, 1)
    return {"pp": f"{pp:+.1f} pp" if pp else "no change", "better": pp < 0, "worse": pp > 0}


def _why_chosen(it: Iteration) -> str:
    cands = {k: v for k, v in it.candidates.items() if v is not None}
    if not it.chosen:
        return ""
    if len(cands) == 2:
        other = next(k for k in cands if k != it.chosen)
        if cands[it.chosen] < cands[other]:
            return f"lower KPI FAR than {other}"
        if cands[it.chosen] == cands[other]:
            return "equal FAR; ties keep best_val"
    return "chosen by the evaluate stage"


def _card(run: Run, it: Iteration, narrative: dict[str, str]) -> dict[str, Any]:
    prev = run.iteration(it.previous) if it.previous else None
    plots = []
    for path in sorted((it.dir / "evaluate").glob("*/*.png"))[:MAX_EVAL_PLOTS]:
        uri = scaled_png(path)
        if uri:
            plots.append({"name": f"{path.parent.name}/{path.stem}", "uri": uri})
    routing = {
        k: int(number(it.routing.get(k)) or 0)
        for k in ("targets", "to_mining", "to_anomalygen")
        if k in it.routing
    }
    return {
        "label": it.label,
        "previous": it.previous,
        "status": it.status,
        "stage_completed": it.stage_completed,
        "kpi_before": prev.kpi_far if prev else None,
        "kpi_after": it.kpi_far,
        "kpi_delta": _delta(prev.kpi_far if prev else None, it.kpi_far),
        "holdout_before": prev.holdout_far if prev else None,
        "holdout_after": it.holdout_far,
        "holdout_delta": _delta(prev.holdout_far if prev else None, it.holdout_far),
        "auroc": it.kpi_auroc,
        "holdout_auroc": it.holdout_auroc,
        "threshold": it.threshold,
        "best_f1": number(it.kpi.get("best_f1")),
        "chosen": it.chosen,
        "why": _why_chosen(it),
        "candidates": it.candidates,
        "checkpoint": it.checkpoint,
        "targets": (it.routing.get("by_label") or it.targets_by_label) if prev else {},
        "routing": routing,
        "pool_unchanged": it.ingest.get("pool_unchanged") if it.ingest else None,
        "mining": it.mining,
        "rows_added": it.rows_added,
        "training_rows": it.training_rows,
        "rca_selected": it.rca_selected,
        "rca_weak": it.rca_weak,
        "unreachable": it.unreachable,
        "per_defect": _per_defect(it),
        "plots": plots,
        "narrative": narrative.get(it.label),
    }


def _per_defect(it: Iteration) -> list[dict[str, Any]]:
    out = []
    for name, row in sorted(it.per_defect_type.items()):
        if not isinstance(row, dict):
            continue
        recall = number(row.get("recall_at_100_threshold", row.get("recall")))
        out.append({"type": name, "count": number(row.get("count")), "recall": recall})
    return out


def _row_id(row: dict[str, Any]) -> str:
    return f"{row.get('input_path', '')}/{row.get('object_name', '')}"


def _thumb_row(layout: ImageLayout, row: dict[str, Any], dirs: tuple[str, ...]) -> dict[str, Any] | None:
    uri = layout.pair(row, dirs)
    if uri is None:
        return None
    return {
        "uri": uri,
        "label": str(row.get("label", "")),
        "board": str(row.get("boardname", "")),
        "object": str(row.get("object_name", "")),
        "score": number(row.get("siamese_score")),
        "weakness": number(row.get("weakness")),
        "similarity": number(row.get("best_similarity")),
    }


def _pick_targets(targets: pd.DataFrame, mined: pd.DataFrame | None) -> list[dict[str, Any]]:
    """Up to SAMPLE_TARGETS weak rows, preferring ones with mined neighbours and distinct labels."""
    rows = targets.to_dict("records")
    matched: set[str] = set()
    if mined is not None and "matched_targets" in mined.columns:
        for cell in mined["matched_targets"]:
            matched.update(t for t in str(cell).split(";") if t)
    rows.sort(key=lambda r: (_row_id(r) not in matched,))
    picked, labels = [], set()
    for r in rows:
        if r.get("label") not in labels:
            picked.append(r)
            labels.add(r.get("label"))
    for r in rows:
        if r not in picked:
            picked.append(r)
    return picked


def _samples(run: Run, layout: ImageLayout | None) -> list[dict[str, Any]]:
    """Weak targets and their mined neighbours, one group per iteration that mined."""
    if layout is None:
        return []
    groups = []
    for it in run.iterations:
        targets = weak_targets(run, it)
        if targets is None or not len(targets):
            continue
        mined = mined_rows(it)
        items = []
        for row in _pick_targets(targets, mined):
            target = _thumb_row(layout, row, KPI_IMAGES)
            if target is None:
                continue
            neighbours = []
            if mined is not None and "matched_targets" in mined.columns:
                tid = _row_id(row)
                hits = mined[mined["matched_targets"].str.split(";").apply(lambda ids, tid=tid: tid in ids)]
                if "best_similarity" in hits.columns:
                    hits = hits.assign(_s=pd.to_numeric(hits["best_similarity"], errors="coerce"))
                    hits = hits.sort_values("_s", ascending=False, kind="stable")
                for hit in hits.head(SAMPLE_NEIGHBOURS).to_dict("records"):
                    thumb = _thumb_row(layout, hit, POOL_IMAGES)
                    if thumb is not None:
                        neighbours.append(thumb)
            items.append({"target": target, "neighbours": neighbours})
            if len(items) >= SAMPLE_TARGETS:
                break
        if items:
            groups.append(
                {
                    "title": it.label,
                    "note": f"targets from the {it.previous} RCA and the pool rows k-NN mined for them",
                    "mined": True,
                    "rows": items,
                }
            )
    last = run.iterations[-1] if run.iterations else None
    if last is not None and last.rca_selected:
        nxt = _next_targets(run, last, layout)
        if nxt:
            ended = run.state.get("status") in ("complete", "stopped")
            note = f"weak rows the {last.label} RCA selected, " + (
                "left when the loop ended" if ended else "to be mined next"
            )
            groups.append({"title": f"After {last.label}", "note": note, "mined": False, "rows": nxt})
    return groups


def _next_targets(run: Run, last: Iteration, layout: ImageLayout) -> list[dict[str, Any]]:
    """Weak rows the last RCA selected for a round that has not run (yet)."""
    probe = Iteration(label="next", dir=run.dir / "next", record={}, previous=last.label)
    targets = weak_targets(run, probe)
    if targets is None:
        return []
    items = []
    for row in _pick_targets(targets, None):
        thumb = _thumb_row(layout, row, KPI_IMAGES)
        if thumb is not None:
            items.append({"target": thumb, "neighbours": []})
        if len(items) >= SAMPLE_TARGETS:
            break
    return items


def _timeline(run: Run) -> dict[str, Any]:
    entries = []
    longest = max((number(e.get("duration_sec")) or 0.0 for e in run.log), default=0.0)
    total = 0.0
    for e in run.log:
        d = number(e.get("duration_sec")) or 0.0
        total += d
        tokens = e.get("tokens") if isinstance(e.get("tokens"), dict) else {}
        entries.append(
            {
                "seq": e.get("seq"),
                "ts": str(e.get("ts", "")),
                "iter": str(e.get("iter", "")),
                "stage": str(e.get("stage", "")),
                "status": str(e.get("status", "")),
                "summary": str(e.get("summary", "")),
                "duration": d,
                "bar": round(100 * d / longest, 1) if longest > 0 else 0.0,
                "tokens": int((number(tokens.get("input")) or 0) + (number(tokens.get("output")) or 0)),
            }
        )
    return {"entries": entries, "total": total, "any_tokens": any(e["tokens"] for e in entries)}


def _final(run: Run) -> dict[str, Any]:
    state = run.state
    best = run.best()
    target = run.far_target
    stop = state.get("stop") if isinstance(state.get("stop"), dict) else None
    status = str(state.get("status") or "pending")
    done = [it for it in run.iterations if it.label != "baseline" and it.kpi_far is not None]
    if stop:
        reason = str(stop.get("reason") or "")
        headline = f"Stopped: {STOP_REASONS.get(reason, reason.replace('_', ' ') or 'reason not recorded')}"
    elif status == "complete":
        headline = "Loop finished"
    elif status == "pending":
        headline = "Awaiting approval"
    else:
        headline = "In progress"
    phrase = final_status_phrase(best.kpi_far, target) if best is not None and target is not None else None
    return {
        "headline": headline,
        "status": status,
        "phrase": phrase,
        "met": best is not None and target is not None and best.kpi_far < target,
        "stop": stop,
        "best": best.label if best else None,
        "best_far": best.kpi_far if best else None,
        "best_holdout": best.holdout_far if best else None,
        "best_checkpoint": str(run.best_model.get("checkpoint") or (best.checkpoint if best else "") or ""),
        "iterations_done": len(done),
        "max_iterations": state.get("max_iterations"),
    }


def _config_rows(state: dict[str, Any]) -> list[tuple[str, str]]:
    config = state.get("config") if isinstance(state.get("config"), dict) else {}
    rows = [
        ("KPI target", str(state.get("kpi_target") or "–")),
        ("Max iterations", str(state.get("max_iterations", "–"))),
    ]
    for key, name in (
        ("top_k_per_target", "Top-k per target"),
        ("min_similarity", "Min. cosine similarity"),
        ("embedder", "Embedder"),
        ("device", "Device"),
        ("baseline_epochs", "Baseline epochs"),
        ("finetune_epochs", "Fine-tune epochs"),
    ):
        if config.get(key) not in (None, ""):
            rows.append((name, str(config[key])))
    approval = state.get("approval") if isinstance(state.get("approval"), dict) else None
    if approval:
        rows.append(("Approved", f"by {approval.get('by', '?')} at {approval.get('at', '?')}"))
    return rows


def _disk_rows(run: Run) -> list[tuple[str, str]]:
    """The run's disk use (this page left out, so a re-render gives the same bytes)."""
    d = disk_use(run.dir, frozenset({REPORT_FILE}))
    return [
        ("Disk used", f"{d.run_bytes / 1e6:.1f} MB"),
        ("Checkpoints on disk", f"{d.checkpoint_bytes / 1e6:.1f} MB in {d.kept} file(s), {d.pruned} pruned"),
    ]


def build_context(run: Run, narrative: dict[str, str] | None = None) -> dict[str, Any]:
    """Everything the template shows, as plain values."""
    narrative = {str(k): str(v) for k, v in (narrative or {}).items() if str(v).strip()}
    labels = [it.label for it in run.iterations]
    evaluated = run.evaluated()
    trajectory = []
    for it in run.iterations:
        prev = run.iteration(it.previous) if it.previous else None
        trajectory.append(
            {
                "label": it.label,
                "status": it.status,
                "kpi": it.kpi_far,
                "holdout": it.holdout_far,
                "auroc": it.kpi_auroc,
                "chosen": it.chosen,
                "delta": _delta(prev.kpi_far if prev else None, it.kpi_far),
                "met": it.kpi_far is not None and run.far_target is not None and it.kpi_far < run.far_target,
            }
        )
    plot = trajectory_plot(
        [it.label for it in evaluated],
        [it.kpi_far for it in evaluated],
        [it.holdout_far for it in evaluated],
        run.far_target,
    )
    ws = run.workspace
    layout = ImageLayout.from_workspace(ws) if ws is not None and ws.is_dir() else None
    config = run.state.get("config") if isinstance(run.state.get("config"), dict) else {}
    extra = {k: v for k, v in narrative.items() if k != "summary" and k not in labels}
    last_ts = next((str(e.get("ts")) for e in reversed(run.log) if e.get("ts")), None)
    return {
        "run_id": run.dir.name,
        "started_at": str(run.state.get("started_at") or "–"),
        "updated_at": last_ts,
        "workspace": str(ws) if ws else "–",
        "kpi_target": str(run.state.get("kpi_target") or "–"),
        "far_target": run.far_target,
        "embedder_reason": str(config.get("embedder_reason") or ""),
        "config_rows": _config_rows(run.state) + _disk_rows(run),
        "final": _final(run),
        "plot": plot,
        "trajectory": trajectory,
        "cards": [_card(run, it, narrative) for it in run.iterations],
        "samples": _samples(run, layout),
        "thumbs_possible": layout is not None,
        "timeline": _timeline(run),
        "narrative_summary": narrative.get("summary"),
        "narrative_extra": extra,
    }


def render_report(run_dir: Path, *, narrative: dict[str, str] | None = None) -> Path:
    """Render `run_dir/DEFT_Loop_Report.html` from the run's files; return its path.

    `narrative` holds optional prose (key `summary`, or an iteration label, or any other heading);
    it is escaped and shown as paragraphs. Written atomically.
    """
    run = load_run(Path(run_dir))
    html = _env().get_template(TEMPLATE).render(**build_context(run, narrative))
    out = run.dir / REPORT_FILE
    atomic_write_text(out, html)
    out.chmod(0o644)  # a report is for reading; the temp file it came from was private
    return out
