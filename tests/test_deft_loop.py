"""The DEFT loop end to end on the tiny workspace: headless run, the gate, hard stops, kill + resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
from cli_helpers import specloop_cli

from specloop.ledger import loop_log
from specloop.ledger.transcript import read_entries, verify_chain

FAST = ["--epochs", "2", "--max-iterations", "1", "--no-progress"]


_cli = specloop_cli


def _run_dir(ws: Path) -> Path:
    (run,) = sorted((ws / "results").glob("run_*"))
    return run


def _assert_log_sound(run: Path) -> list[dict]:
    entries = loop_log.read_entries(run / "loop_log.jsonl")
    assert [e["seq"] for e in entries] == list(range(1, len(entries) + 1))
    twice = [k for k, n in Counter((e["iter"], e["stage"]) for e in entries).items() if n > 1]
    assert twice == [], f"stages logged twice: {twice}"
    assert all("\n" not in e["summary"] for e in entries), "a stage summary must be one line"
    assert verify_chain(read_entries(run / "transcript.jsonl")) == []
    return entries


@pytest.fixture
def finished_run(finished_tiny_run: Path) -> tuple[Path, dict]:
    return _run_dir(finished_tiny_run), json.loads((finished_tiny_run / "run_stdout.json").read_text())


def test_headless_run_completes_with_full_record(finished_run: tuple[Path, dict]) -> None:
    run, summary = finished_run
    assert summary["exit_code"] in (0, 3) and summary["best"]["checkpoint"]
    entries = _assert_log_sound(run)
    stages = [(e["iter"], e["stage"]) for e in entries]
    assert stages[:7] == [
        ("baseline", "preflight"),
        ("baseline", "approval_gate"),
        ("baseline", "train"),
        ("baseline", "inference"),
        ("baseline", "evaluate"),
        ("baseline", "report"),
        ("baseline", "rca"),
    ]
    if summary["stop"]["reason"] != "kpi_met":
        for stage in (
            "routing",
            "anomalygen",
            "data_mining",
            "assemble",
            "validate",
            "train",
            "evaluate",
            "rca",
        ):
            assert ("iter1", stage) in stages
    assert stages[-1] == ("final", "loop_stop")
    for name in (
        "deft_state.json",
        "preflight_summary.md",
        "best_model.json",
        "best_model_inference_spec.yaml",
        "DEFT_Loop_Report.html",
        "checkpoints.sqlite",
        "synth_pool/manifest.json",
        "baseline/evaluate/selection.json",
        "baseline/rca_results/kpi_gaps.parquet",
    ):
        assert (run / name).exists(), name
    state = json.loads((run / "deft_state.json").read_text())
    assert state["approval"]["by"] == "--yes flag"
    assert state["status"] == "complete"
    # an iteration's targets are the ones the previous RCA selected, recorded on the iteration itself
    its = state["iterations"]
    assert "targets_by_label" not in its["baseline"]
    if "iter1" in its:
        assert its["iter1"]["targets_by_label"] == its["baseline"]["rca"]["selected_by_label"]
    best = json.loads((run / "best_model.json").read_text())
    assert (run / best["checkpoint"]).is_file()


def test_one_bucket_mines_real_and_synthetic_rows_alike(finished_run: tuple[Path, dict]) -> None:
    """Every target goes to k-NN over the unified pool; synthetic pairs are kept where they are among
    a target's nearest, under the same top-k and cutoff, and are counted per source everywhere."""
    run, _ = finished_run
    routing = json.loads((run / "iter1/routing_results/routing_summary.json").read_text())
    assert routing["to_mining"] == routing["targets"] > 0 and routing["to_anomalygen"] == 0
    assert pd.read_parquet(run / "iter1/routing_results/routing_anomalygen.parquet").empty
    ingest = json.loads((run / "iter1/anomalygen/ingest_summary.json").read_text())
    assert ingest["pool_unchanged"] is True and ingest["rows_ingested"] == 0
    mining = run / "iter1/mining_filter"
    knn = pd.read_csv(mining / "knn_summary.csv").iloc[0]
    for count in ("candidate", "rejected", "duplicate", "kept"):
        assert knn[f"{count}_count"] == knn[f"{count}_count_mining_pool"] + knn[f"{count}_count_synthetic"]
    assert knn["kept_count_synthetic"] >= 1, "no synthetic pair was among the nearest"
    survivors = pd.read_csv(mining / "mining_pool.csv", dtype=str, keep_default_na=False)
    assert survivors["source"].value_counts().to_dict() == {
        src: int(knn[f"kept_count_{src}"]) for src in ("mining_pool", "synthetic") if knn[f"kept_count_{src}"]
    }
    pairs = pd.read_csv(mining / "knn_pairs.csv", dtype={"pool_object_name": str})
    kept = pairs[pairs["status"] == "kept"].set_index("pool_object_name")
    for obj in survivors.loc[survivors["source"] == "synthetic", "object_name"]:
        row = kept.loc[obj]
        assert row["pool_source"] == "synthetic" and row["rank"] <= knn["top_k"]
        assert row["similarity"] >= knn["similarity_threshold"]
    provenance = pd.read_csv(run / "iter1/dataset/train_combined_iter1_provenance.csv")
    added = provenance["source"].value_counts()
    assert added["synthetic"] == knn["kept_count_synthetic"]
    assert added.get("mining_pool", 0) == knn["kept_count_mining_pool"]
    (line,) = [e for e in loop_log.read_entries(run / "loop_log.jsonl") if e["stage"] == "data_mining"]
    per_source = f"synthetic {knn['kept_count_synthetic']} of {knn['candidate_count_synthetic']}"
    assert per_source in line["summary"]
    html = (run / "DEFT_Loop_Report.html").read_text()
    assert per_source in html
    assert "Targets from None" not in html and f"Targets from baseline RCA ({routing['targets']})" in html


def test_best_model_inference_spec_runs(finished_run: tuple[Path, dict], tmp_path: Path) -> None:
    run, _ = finished_run
    spec = run / "best_model_inference_spec.yaml"
    proc = _cli("changenet", "infer", "-e", str(spec), f"inference.results_dir={tmp_path}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = pd.read_csv(next(tmp_path.rglob("inference.csv")))
    assert "siamese_score" in out.columns and len(out) > 0


def test_without_yes_and_without_a_terminal_waits_with_exit_4(ws: Path) -> None:
    proc = _cli("deft", "run", "--workspace", str(ws), *FAST)
    assert proc.returncode == 4, proc.stderr[-2000:]
    run = _run_dir(ws)
    assert f"specloop deft resume {run} --yes" in proc.stderr.replace("\n", "")
    # nothing with side effects before approval
    assert not (run / "baseline").exists()
    assert not list(run.glob("iter*"))
    entries = _assert_log_sound(run)
    assert [e["stage"] for e in entries] == ["preflight"]
    state = json.loads((run / "deft_state.json").read_text())
    assert state["approval"] is None and state["status"] == "pending"


def test_mutated_synthetic_pool_is_a_hard_stop(ws: Path) -> None:
    proc = _cli(
        "deft",
        "run",
        "--workspace",
        str(ws),
        "--max-iterations",
        "1",
        "--epochs",
        "1",
        "--kpi-target",
        "0.0001%",
        "--no-progress",
    )
    assert proc.returncode == 4
    run = _run_dir(ws)
    victim = sorted((ws / "augmentation/anomalygen/reconstructed_image").iterdir())[0]
    victim.write_bytes(victim.read_bytes() + b"\0")
    proc = _cli("deft", "resume", str(run), "--yes")
    assert proc.returncode == 2, proc.stderr[-2000:]
    state = json.loads((run / "deft_state.json").read_text())
    assert state["stop"]["check"] == "synthetic-pool-mutated"
    assert state["stop"]["stage"] == "anomalygen"
    assert victim.name in state["stop"]["detail"]
    _assert_log_sound(run)


def test_bad_workspace_is_refused_before_a_run_exists(ws: Path) -> None:
    csv = ws / "kpi" / "testing_set.csv"
    csv.write_text(csv.read_text().replace(",PASS,", ",pass,", 1))
    proc = _cli("deft", "run", "--workspace", str(ws), "--yes", *FAST)
    assert proc.returncode == 2
    assert "label-pass-case" in proc.stderr and "Traceback" not in proc.stderr
    assert not (ws / "results").exists()


@pytest.mark.parametrize(
    ("flags", "sentence"),
    [
        (["--mining", "nearest"], "--mining 'nearest' is not one of knn, random."),
        (["--finetune-epochs", "0"], "--finetune-epochs must be at least 1, not 0."),
        (["--llm", "gpt4"], "LLM setting 'gpt4' is not understood"),
        (["--llm", "offline", "--record", "c.jsonl"], "--record needs a model"),
    ],
)
def test_bad_run_options_are_one_sentence_before_a_run_exists(
    ws: Path, flags: list[str], sentence: str
) -> None:
    proc = _cli("deft", "run", "--workspace", str(ws), "--yes", *flags)
    assert proc.returncode == 2 and sentence in proc.stderr and "Traceback" not in proc.stderr
    assert not (ws / "results").exists()


def test_kill_during_training_then_resume(ws: Path, finished_run: tuple[Path, dict]) -> None:
    """Killed after the baseline's first epoch checkpoint and resumed, the run ends where the
    session's uninterrupted run with the same options and seed ends."""
    env = {**os.environ, "COLUMNS": "200"}
    cmd = [
        sys.executable,
        "-m",
        "specloop",
        "deft",
        "run",
        "--workspace",
        str(ws),
        "--yes",
        "--epochs",
        "2",
        "--max-iterations",
        "1",
        "--no-progress",
    ]
    proc = subprocess.Popen(
        cmd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    deadline = time.time() + 240
    killed = False
    while time.time() < deadline and proc.poll() is None:
        runs = list((ws / "results").glob("run_*/baseline/train/epoch_*.pth"))
        if runs:
            proc.send_signal(signal.SIGKILL)
            killed = True
            break
        time.sleep(0.2)
    proc.wait(timeout=60)
    assert killed, "training never wrote an epoch checkpoint"
    run = _run_dir(ws)
    before = loop_log.read_entries(run / "loop_log.jsonl")
    assert ("baseline", "train") not in {(e["iter"], e["stage"]) for e in before}
    done = _cli("deft", "resume", str(run), "--yes")
    assert done.returncode in (0, 3), done.stderr[-3000:]
    entries = _assert_log_sound(run)
    assert entries[: len(before)] == before  # nothing rewritten
    assert ("final", "loop_stop") in {(e["iter"], e["stage"]) for e in entries}
    resumed = [e for e in read_entries(run / "transcript.jsonl") if e["kind"] == "resume"]
    assert resumed and resumed[0]["stage"] == "train"
    uninterrupted = json.loads((finished_run[0] / "deft_state.json").read_text())["iterations"]
    after_kill = json.loads((run / "deft_state.json").read_text())["iterations"]
    assert set(after_kill) == set(uninterrupted)
    for label, record in uninterrupted.items():
        for key in ("kpi_far", "holdout_far", "threshold"):
            assert after_kill[label].get(key) == record.get(key), (label, key)
