"""The DEFT report: rendered from a run directory alone, self-contained, neutral, and robust to
runs that stopped early. The run directory is built the way the loop writes it: real KPI and
mining-pool rows of the tiny workspace, RCA through `skills.rca.gaps`, the stage log through the
ledger."""

from __future__ import annotations

import base64
import io
import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from cli_helpers import CHROMIUM, chromium
from PIL import Image

from specloop.errors import SpecloopError
from specloop.ledger import loop_log
from specloop.ledger.files import atomic_write_json, disk_bytes
from specloop.ledger.state import new_state, save
from specloop.skills.aoi.schema import read_csv
from specloop.skills.rca.gaps import analyze_gaps
from specloop.skills.report import (
    MAX_SUMMARY_WORDS,
    REPORT_FILE,
    final_status_phrase,
    iteration_summary,
    render_report,
)

FAR_TARGET = 0.01
# False alarms at 100 % recall per iteration on the KPI set (45 PASS rows) and the holdout set.
KPI_FP = {"baseline": 3, "iter1": 1, "iter2": 1}
HOLDOUT_FAR = {"baseline": 0.0889, "iter1": 0.0444, "iter2": 0.0222}
TOP_K = 2


def _scores(kpi: pd.DataFrame, false_alarms: int, seed: int) -> np.ndarray:
    """Defects score in [0.6, 1]; exactly `false_alarms` PASS rows score above the lowest defect."""
    rng = np.random.default_rng(seed)
    is_defect = (kpi["label"] != "PASS").to_numpy()
    scores = np.where(is_defect, rng.uniform(0.6, 1.0, len(kpi)), rng.uniform(0.05, 0.5, len(kpi)))
    scores[np.flatnonzero(is_defect)[0]] = 0.6
    for j, i in enumerate(np.flatnonzero(~is_defect)[:false_alarms]):
        scores[i] = 0.65 + 0.05 * j
    return scores


def _metrics(far: float, auroc: float, kpi: pd.DataFrame) -> dict[str, Any]:
    defects = kpi[kpi["label"] != "PASS"]["label"].value_counts()
    return {
        "far_at_100_recall": far,
        "threshold_at_100_recall": 0.6,
        "auroc": auroc,
        "best_f1": 0.81,
        "best_f1_threshold": 0.62,
        "n_pass": int((kpi["label"] == "PASS").sum()),
        "n_defect": int(defects.sum()),
        "per_defect_type": {
            str(k): {"count": int(v), "recall_at_100_threshold": 1.0} for k, v in defects.items()
        },
    }


def _plot_png(path: Path, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (120, 160, 3), dtype=np.uint8)).save(path)


def _evaluate(run: Path, label: str, kpi: pd.DataFrame, seed: int) -> dict[str, Any]:
    """Inference, evaluate and RCA outputs of one iteration; returns its state record."""
    n_pass = int((kpi["label"] == "PASS").sum())
    scores = _scores(kpi, KPI_FP[label], seed)
    inference = run / label / "inference" / "kpi" / "best_val" / "inference.csv"
    inference.parent.mkdir(parents=True, exist_ok=True)
    kpi.assign(siamese_score=scores).to_csv(inference, index=False)
    rca = analyze_gaps(inference, run / label / "rca_results", far_target=FAR_TARGET, top_k_per_label=TOP_K)
    far = rca["far_at_100_recall"]
    assert far == pytest.approx(KPI_FP[label] / n_pass)
    latest_far = far + 1 / n_pass
    ev = run / label / "evaluate"
    ckpt = f"{run}/{label}/train/best_val.pth"
    atomic_write_json(
        ev / "selection.json",
        {
            "chosen": "best_val",
            "candidates": {
                "best_val": {"far_at_100_recall": far, "checkpoint": ckpt},
                "latest": {"far_at_100_recall": latest_far, "checkpoint": f"{run}/{label}/train/latest.pth"},
            },
        },
    )
    atomic_write_json(ev / "kpi" / "metrics.json", _metrics(far, 0.9 + 0.02 * seed, kpi))
    atomic_write_json(ev / "holdout" / "metrics.json", _metrics(HOLDOUT_FAR[label], 0.88, kpi))
    _plot_png(ev / "kpi" / "roc.png", seed)
    return {
        "status": "complete",
        "stage_completed": "rca",
        "best_ckpt_path": ckpt,
        "best_ckpt_sha256": "0" * 64,
        "chosen": "best_val",
        "kpi_far": far,
        "kpi_threshold": 0.6,
        "kpi_auroc": 0.9 + 0.02 * seed,
        "holdout_far": HOLDOUT_FAR[label],
        "holdout_auroc": 0.88,
        "candidates": {"best_val": {"kpi_far": far}, "latest": {"kpi_far": latest_far}},
    }


def _mine(run: Path, label: str, prev: str, pool: pd.DataFrame, base_rows: int) -> dict[str, Any]:
    """Routing, mining, ingest and assembly outputs of iteration `label` (targets from `prev`)."""
    gaps = pd.read_parquet(run / prev / "rca_results" / "kpi_gaps.parquet")
    targets = gaps[gaps["selected"]]
    pool_labels = set(pool["label"])
    to_mining = targets[targets["label"].isin(pool_labels)]
    atomic_write_json(
        run / label / "routing_results" / "routing_summary.json",
        {
            "targets": len(targets),
            "to_mining": len(to_mining),
            "to_anomalygen": len(targets) - len(to_mining),
        },
    )
    mined = []
    for t in to_mining.itertuples():
        same = pool[pool["label"] == t.label].head(2)
        for j, row in enumerate(same.to_dict("records")):
            mined.append(
                {
                    **row,
                    "best_similarity": 0.97 - 0.02 * j,
                    "matched_targets": f"{t.input_path}/{t.object_name}",
                }
            )
    mined_df = pd.DataFrame(mined).drop_duplicates(subset=["input_path", "object_name"])
    out = run / label / "mining_filter"
    out.mkdir(parents=True, exist_ok=True)
    mined_df.to_csv(out / "mined_rows.csv", index=False)
    kept = len(mined_df)
    mining = {"candidates": kept + 7, "kept": kept, "rejected": 5, "duplicates": 2, "excluded": 3}
    pd.DataFrame(
        [
            {
                "candidate_count": kept + 7,
                "kept_count": kept,
                "rejected_count": 5,
                "duplicate_count": 2,
                "excluded_training": 3,
            }
        ]
    ).to_csv(out / "knn_summary.csv", index=False)
    atomic_write_json(run / label / "anomalygen" / "ingest_summary.json", {"pool_unchanged": True, "rows": 2})
    head = "base_train" if prev == "baseline" else "previous_iter_train"
    sources = [head] * base_rows + ["mining_pool"] * kept + ["synthetic"] * 2
    prov = run / label / "dataset" / f"train_combined_{label}_provenance.csv"
    prov.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"source": sources}).to_csv(prov, index=False)
    return {
        "rows_added": {"mining_pool": kept, "synthetic": 2},
        "targets_by_label": {str(k): int(v) for k, v in targets["label"].value_counts().items()},
        "mining": mining,
    }


def _log(run: Path, stages: list[tuple[str, str, float, str]]) -> None:
    for it, stage, seconds, summary in stages:
        loop_log.append(
            run / "loop_log.jsonl",
            iter_label=it,
            stage=stage,
            status="ok",
            summary=summary,
            duration_sec=seconds,
        )


def _new_run(root: Path, ws: Path) -> tuple[Path, dict[str, Any]]:
    run = root / "run_20260101_120000"
    run.mkdir(parents=True)
    state = new_state(
        run_dir=run,
        workspace=ws,
        kpi_target="FAR < 1%",
        max_iterations=2,
        config={
            "far_target": FAR_TARGET,
            "top_k_per_target": TOP_K,
            "min_similarity": 0.9,
            "embedder": "pixel-stats",
            "embedder_reason": "SigLIP weights not found; using pixel statistics.",
            "device": "cpu",
            "baseline_epochs": 3,
            "finetune_epochs": 2,
        },
    )
    state["approval"] = {"by": "--yes", "at": "2026-01-01T12:00:05+00:00"}
    state["status"] = "in_progress"
    return run, state


@pytest.fixture(scope="module")
def full_run(tiny_workspace: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Baseline + two iterations, finished at max_iterations without meeting the target."""
    kpi = read_csv(tiny_workspace / "kpi" / "testing_set.csv")
    pool = read_csv(tiny_workspace / "augmentation" / "mining_pool" / "mining_pool.csv")
    base_rows = len(read_csv(tiny_workspace / "train" / "base" / "training_set.csv"))
    run, state = _new_run(tmp_path_factory.mktemp("report"), tiny_workspace)
    state["iterations"]["baseline"] = _evaluate(run, "baseline", kpi, 0)
    rows = base_rows
    for n, (label, prev) in enumerate((("iter1", "baseline"), ("iter2", "iter1")), start=1):
        record = _mine(run, label, prev, pool, rows)
        rows += sum(record["rows_added"].values())
        state["iterations"][label] = {**_evaluate(run, label, kpi, n), **record}
        state["current_iteration"] = n
    state["status"] = "complete"
    state["stop"] = {"reason": "max_iterations", "check": None, "detail": "2 of 2 iterations run"}
    save(run, state)
    _log(
        run,
        [
            ("baseline", "train", 41.2, "3 epochs"),
            ("baseline", "inference", 3.1, "KPI scored"),
            ("baseline", "evaluate", 0.8, "FAR 6.7%"),
            ("baseline", "rca", 0.5, "weak rows selected"),
        ]
        + [
            (f"iter{n}", s, d, f"{s} done")
            for n in (1, 2)
            for s, d in (
                ("routing", 0.2),
                ("anomalygen", 0.4),
                ("data_mining", 12.5),
                ("assemble", 0.3),
                ("validate", 1.1),
                ("train", 30.0),
                ("evaluate", 0.9),
                ("report", 0.6),
                ("rca", 0.4),
            )
        ],
    )
    return run


def _copy(run: Path, tmp_path: Path) -> Path:
    dst = tmp_path / run.name
    shutil.copytree(run, dst)
    return dst


def _img_sources(html: str) -> list[str]:
    return re.findall(r"<img[^>]*\ssrc=\"([^\"]*)\"", html)


def _decode(uri: str) -> Image.Image:
    assert uri.startswith("data:image/png;base64,"), uri[:60]
    img = Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1], validate=True)))
    img.load()
    return img


def _assert_self_contained(html: str) -> None:
    assert "http://" not in html and "https://" not in html
    assert not re.search(r"(src|href)=\"(?!data:)", html), "a reference that is not a data URI"
    assert "<link" not in html and "<script" not in html and "@import" not in html and "url(" not in html


def test_full_report_is_self_contained_and_shows_the_trajectory(full_run: Path, tmp_path: Path) -> None:
    run = _copy(full_run, tmp_path)
    out = render_report(run)
    assert out == run / REPORT_FILE
    html = out.read_text(encoding="utf-8")
    _assert_self_contained(html)
    assert "KPI trajectory" in html and "Stage timeline" in html and "Problem and approach" in html
    for label in ("baseline", "iter1", "iter2"):
        assert f'id="card-{label}"' in html
    # the trajectory table and the cards carry the ledger's numbers
    for text in ("6.7%", "2.2%", "8.9%", "4.4%", "-4.4 pp"):
        assert text in html, text
    assert "1.2 pp from target (2.2% vs &lt; 1.0%)" in html
    assert "FAILED" not in html.upper()
    state = json.loads((run / "deft_state.json").read_text())
    kept = state["iterations"]["iter1"]["mining"]["kept"]
    assert f"mined from the pool <b>{kept}</b>" in html
    assert "Stopped: the iteration limit was reached" in html
    assert not [p for p in run.iterdir() if p.name.startswith(f".{REPORT_FILE}")], "temp file left behind"


def test_every_embedded_image_decodes_and_thumbnails_are_shown(full_run: Path, tmp_path: Path) -> None:
    run = _copy(full_run, tmp_path)
    html = render_report(run).read_text(encoding="utf-8")
    sources = _img_sources(html)
    images = [_decode(uri) for uri in sources]
    plot = images[0]
    assert plot.width > 400 and len(np.unique(np.asarray(plot.convert("RGB")).reshape(-1, 3), axis=0)) > 20
    thumbs = re.findall(r"alt=\"(target|neighbour) ", html)
    assert thumbs.count("target") >= 2 and thumbs.count("neighbour") >= 2
    # golden | test side by side: wider than tall (two lights stacked per side)
    thumb_uri = re.search(r"<img src=\"([^\"]+)\" alt=\"neighbour ", html).group(1)
    thumb = _decode(thumb_uri)
    assert thumb.width > thumb.height / 2 and thumb.getextrema() != ((255, 255),) * 3


def test_rendering_is_deterministic(full_run: Path, tmp_path: Path) -> None:
    run = _copy(full_run, tmp_path)
    first = render_report(run).read_bytes()
    assert render_report(run).read_bytes() == first


def test_report_shows_the_runs_disk_use(full_run: Path, tmp_path: Path) -> None:
    run = _copy(full_run, tmp_path)
    train = run / "iter1" / "train"
    train.mkdir(parents=True, exist_ok=True)
    (train / "latest.pth").write_bytes(b"x" * 2_000_000)
    os.link(train / "latest.pth", train / "best_val.pth")  # one file under two names
    pruned = {"file": "epoch_001.pth", "epoch": 1, "sha256": "0" * 64, "bytes": 9, "pruned": True}
    (train / "checkpoints.json").write_text(json.dumps({"checkpoints": [pruned]}))
    html = render_report(run).read_text(encoding="utf-8")
    assert "<td>Checkpoints on disk</td><td>2.0 MB in 1 file(s), 1 pruned</td>" in html
    used = disk_bytes(run, frozenset({REPORT_FILE}))
    assert f"<td>Disk used</td><td>{used / 1e6:.1f} MB</td>" in html


def test_narrative_is_escaped_and_placed(full_run: Path, tmp_path: Path) -> None:
    run = _copy(full_run, tmp_path)
    narrative = {
        "summary": "Mining helped most on <script>alert(1)</script> bridge.\n\nSecond paragraph.",
        "iter1": "Iteration one & its neighbours.",
        "Caveats": "Holdout is small.",
    }
    html = render_report(run, narrative=narrative).read_text(encoding="utf-8")
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<p>Second paragraph.</p>" in html
    card = html.split('id="card-iter1"', 1)[1].split("</section>", 1)[0]
    assert "Iteration one &amp; its neighbours." in card
    assert "<h2>Caveats</h2>" in html


def test_baseline_only_run_renders(tiny_workspace: Path, tmp_path: Path) -> None:
    kpi = read_csv(tiny_workspace / "kpi" / "testing_set.csv")
    run, state = _new_run(tmp_path, tiny_workspace)
    state["iterations"]["baseline"] = _evaluate(run, "baseline", kpi, 0)
    save(run, state)
    _log(run, [("baseline", "train", 40.0, "3 epochs"), ("baseline", "evaluate", 1.0, "FAR 6.7%")])
    html = render_report(run).read_text(encoding="utf-8")
    _assert_self_contained(html)
    assert 'id="card-baseline"' in html and "In progress" in html
    assert "5.7 pp from target (6.7% vs &lt; 1.0%)" in html
    assert "After baseline" in html  # the baseline RCA's weak targets, shown before any mining
    for uri in _img_sources(html):
        _decode(uri)


def test_run_before_any_evaluation_renders(tmp_path: Path) -> None:
    run, state = _new_run(tmp_path, tmp_path / "gone")
    state["status"] = "pending"
    save(run, state)
    html = render_report(run).read_text(encoding="utf-8")
    _assert_self_contained(html)
    assert "Awaiting approval" in html and "No iteration has been evaluated yet." in html
    assert "Thumbnails need the workspace" in html and _img_sources(html) == []


def test_hard_stop_mid_iteration_renders(full_run: Path, tmp_path: Path) -> None:
    run = _copy(full_run, tmp_path)
    state = json.loads((run / "deft_state.json").read_text())
    del state["iterations"]["iter2"]
    state["iterations"]["iter2"] = {"status": "stopped", "stage_completed": "assemble"}
    state["status"] = "stopped"
    state["stop"] = {
        "reason": "hard_stop",
        "check": "no leakage against KPI or holdout",
        "detail": "3 rows of train_combined_iter2.csv share a leakage key with kpi/testing_set.csv",
    }
    save(run, state)
    shutil.rmtree(run / "iter2" / "evaluate")
    shutil.rmtree(run / "iter2" / "rca_results")
    (run / "iter2" / "mining_filter" / "knn_summary.csv").unlink()
    html = render_report(run).read_text(encoding="utf-8")
    _assert_self_contained(html)
    assert 'id="card-iter2"' in html and "Stopped: a check stopped the run" in html
    assert "no leakage against KPI or holdout" in html and "share a leakage key" in html
    assert "1.2 pp from target (2.2% vs &lt; 1.0%)" in html  # best so far is iter1
    summary = iteration_summary(run, "iter2")
    assert "Not evaluated yet (last completed stage: assemble)" in summary


def test_missing_state_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SpecloopError, match=r"deft_state\.json"):
        render_report(tmp_path)
    (tmp_path / "deft_state.json").write_text("{not json")
    with pytest.raises(SpecloopError, match="not valid JSON"):
        render_report(tmp_path)
    assert not (tmp_path / REPORT_FILE).exists()


def test_iteration_summaries_hold_the_ledgers_numbers(full_run: Path) -> None:
    state = json.loads((full_run / "deft_state.json").read_text())
    for label in ("baseline", "iter1", "iter2"):
        text = iteration_summary(full_run, label)
        assert len(text.split()) <= MAX_SUMMARY_WORDS
        assert "FAILED" not in text.upper()
    rec = state["iterations"]["iter1"]
    text = iteration_summary(full_run, "iter1")
    assert "KPI FAR@100%R 6.7% → 2.2% (target < 1.0%)" in text
    assert "holdout 8.9% → 4.4%" in text
    assert f"{sum(rec['targets_by_label'].values())} weak KPI rows from the baseline RCA" in text
    assert f"{rec['mining']['candidates']} candidates, {rec['mining']['kept']} kept" in text
    assert f"{rec['rows_added']['mining_pool']} mined from the pool, 2 synthetic rows" in text
    assert "Kept the `best_val` checkpoint (best_val 2.2%, latest 4.4%)" in text
    assert "1.2 pp from target (2.2% vs < 1.0%)" in text
    base = iteration_summary(full_run, "baseline")
    assert "for 3 epochs" in base and "KPI FAR@100%R 6.7%" in base
    with pytest.raises(SpecloopError, match="iter9"):
        iteration_summary(full_run, "iter9")


def test_summary_stays_within_300_words_with_many_labels(full_run: Path, tmp_path: Path) -> None:
    run = _copy(full_run, tmp_path)
    state = json.loads((run / "deft_state.json").read_text())
    many = {f"defect_type_number_{i}": i + 1 for i in range(60)}
    state["iterations"]["iter1"]["targets_by_label"] = many
    state["iterations"]["iter1"]["rows_added"] = {f"source_{i}": i for i in range(60)}
    save(run, state)
    text = iteration_summary(run, "iter1")
    assert len(text.split()) <= MAX_SUMMARY_WORDS
    assert "**Result.**" in text and "**Status.**" in text


@pytest.mark.parametrize(
    ("far", "target", "phrase"),
    [
        (0.004, 0.01, "KPI met: 0.4% < 1.0%"),
        (0.014, 0.01, "0.4 pp from target (1.4% vs < 1.0%)"),
        (0.0099, 0.01, "KPI met: 0.99% < 1.00%"),
        (0.01, 0.01, "0.0 pp from target (1.0% vs < 1.0%)"),
        (0.0633, 0.005, "5.8 pp from target (6.3% vs < 0.5%)"),
        (0.0, 0.01, "KPI met: 0.0% < 1.0%"),
    ],
)
def test_final_status_phrase_is_neutral(far: float, target: float, phrase: str) -> None:
    assert final_status_phrase(far, target) == phrase
    assert "fail" not in phrase.lower()


@pytest.mark.skipif(not CHROMIUM.exists(), reason="chromium is not installed at /usr/bin/chromium")
def test_report_renders_in_headless_chromium(full_run: Path, tmp_path: Path) -> None:
    run = _copy(full_run, tmp_path)
    report = render_report(run)
    shot = tmp_path / "report.png"
    profile = tmp_path / "chromium-profile"
    proc = chromium(report.as_uri(), profile, f"--screenshot={shot}", "--window-size=1200,3000")
    assert proc.returncode == 0 and shot.is_file(), proc.stderr[-2000:]
    with Image.open(shot) as img:
        rgb = np.asarray(img.convert("RGB"))
    assert rgb.shape[:2] == (3000, 1200)
    colours = {tuple(c) for c in rgb[::3, ::3].reshape(-1, 3)}
    assert len(colours) > 200, f"only {len(colours)} colours: the page looks blank"
    # the trajectory plot's KPI line (#2563eb) and the holdout line (#d97706) were painted
    for colour in ((37, 99, 235), (217, 119, 6)):
        near = np.abs(rgb.astype(int) - np.array(colour)).sum(axis=2) < 30
        assert near.sum() > 200, f"plot colour {colour} not found on screen"
