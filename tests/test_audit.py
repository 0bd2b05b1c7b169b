"""`specloop audit` on a real tiny DEFT run, and on copies of it tampered with one way at a time:
each tamper must be reported by name at its location, and nothing unrelated may fail."""

from __future__ import annotations

import filecmp
import json
import os
import random
import re
import shutil
import string
import sys
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
from test_cli_startup import HELP, loaded_heavy

from specloop.cli import main
from specloop.graph.run import EXIT_AWAITING, create_run, drive
from specloop.ledger.transcript import GENESIS, entry_hash
from specloop.skills.aoi.schema import LEAKAGE_KEY, leakage_keys, read_csv
from specloop.skills.audit import JSON_FILE, REPORT_FILE, AuditResult, audit_run
from specloop.skills.changenet.kpi import far_at_full_recall


def _audit_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """`specloop audit ARGS` through the real entry point, in this process (no second torch import)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(sys, "argv", ["specloop", "audit", *args])
        with pytest.raises(SystemExit) as exited:
            main()
    captured = capsys.readouterr()
    return int(exited.value.code or 0), captured.out, captured.err


@pytest.fixture(scope="module")
def real_run(finished_tiny_run: Path) -> Path:
    """The session's finished tiny run (baseline + one iteration). Read-only: tamper with a copy."""
    (run,) = sorted((finished_tiny_run / "results").glob("run_*"))
    return run


def _copy(run: Path, dst: Path) -> Path:
    """A copy of the run elsewhere; checkpoints are hard links (replace them, never write into them)."""

    def copy(src: str, target: str) -> None:
        if src.endswith(".pth"):
            os.link(src, target)
        else:
            shutil.copy2(src, target)

    shutil.copytree(run, dst, copy_function=copy)
    return dst


@pytest.fixture
def copy_run(real_run: Path, tmp_path: Path) -> Path:
    return _copy(real_run, tmp_path / real_run.name)


def _lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


def _write(path: Path, lines: list[str]) -> None:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _rechain(path: Path, entries: list[dict]) -> None:
    """Rewrite the transcript with a valid hash chain, as a careful forger would."""
    prev = GENESIS
    for n, entry in enumerate(entries, start=1):
        entry["n"], entry["prev_hash"] = n, prev
        entry["hash"] = entry_hash(entry)
        prev = entry["hash"]
    _write(path, [json.dumps(e) for e in entries])


def _failing(result: AuditResult) -> set[str]:
    return {f.check for f in result.failing()}


def _at(result: AuditResult, check: str) -> list[str]:
    return [f.location for f in result.findings if f.check == check]


def test_clean_run_audits_clean(real_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "audit_out"
    code, stdout, stderr = _audit_cli(capsys, str(real_run), "--json", "--out", str(out))
    assert code == 0, stderr[-3000:]
    report = json.loads(stdout)
    assert report["exit_code"] == 0 and report["verdict"].startswith("clean")
    assert [f for f in report["findings"] if f["severity"] == "error"] == []
    assert report["facts"]["approval"] == "headless, approved by the --yes flag"
    statuses = {name: c["status"] for name, c in report["checks"].items()}
    assert "fail" not in statuses.values()
    for name in (
        "integrity.transcript-chain",
        "integrity.log-seq",
        "gate.approval",
        "gate.order",
        "claims.far",
        "claims.threshold",
        "claims.selection",
        "claims.best",
        "claims.checkpoint",
        "claims.files",
        "data.leakage",
        "data.provenance",
        "data.synth-pool",
        "record.secret",
    ):
        assert statuses[name] == "pass", (name, statuses[name])
    assert json.loads((out / JSON_FILE).read_text()) == report
    assert "Audit report" in (out / REPORT_FILE).read_text()
    assert not (real_run / REPORT_FILE).exists(), "--out must leave the run directory alone"
    assert "verdict: clean" in stderr


def test_auditing_a_real_run_loads_no_framework(real_run: Path, tmp_path: Path) -> None:
    """`specloop audit` in a fresh interpreter on a finished run: no torch, no model SDK."""
    assert loaded_heavy(HELP.format(args=["audit", str(real_run), "--out", str(tmp_path)])) == []
    assert (tmp_path / JSON_FILE).is_file()


def test_copied_run_audits_like_the_original(copy_run: Path) -> None:
    result = audit_run(copy_run)
    assert result.exit_code == 0, [f.to_dict() for f in result.failing()]
    assert "best_val" in result.facts["best"] or "latest" in result.facts["best"]


# Each tamper changes a copy of the real run and returns (check, location, checks allowed to fail).
Tamper = Callable[[Path], tuple[str, str, set[str]]]


def edit_transcript_entry(run: Path) -> tuple[str, str, set[str]]:
    path = run / "transcript.jsonl"
    lines = _lines(path)
    entry = json.loads(lines[9])
    entry["data"]["forged"] = True
    lines[9] = json.dumps(entry)
    _write(path, lines)
    return "integrity.transcript-chain", "transcript.jsonl:line 10", {"integrity.transcript-chain"}


def delete_log_line(run: Path) -> tuple[str, str, set[str]]:
    path = run / "loop_log.jsonl"
    lines = _lines(path)
    del lines[9]
    _write(path, lines)
    allowed = {"integrity.log-seq", "integrity.log-stages", "integrity.transcript-log"}
    return "integrity.log-seq", "loop_log.jsonl:line 10", allowed


def change_far_in_summary(run: Path) -> tuple[str, str, set[str]]:
    path = run / "iter1_summary.md"
    lines = _lines(path)
    (i,) = [i for i, line in enumerate(lines) if line.startswith("**Result.**")]
    head, _, tail = lines[i].partition("→ ")
    lines[i] = head + "→ 0.1" + tail[tail.index("%") :]
    _write(path, lines)
    return "claims.far", f"iter1_summary.md:line {i + 1}", {"claims.far"}


def change_far_in_best_model(run: Path) -> tuple[str, str, set[str]]:
    path = run / "best_model.json"
    data = json.loads(path.read_text())
    data["kpi_far"] = data["kpi_far"] / 2
    path.write_text(json.dumps(data, indent=2))
    return "claims.far", "best_model.json:kpi_far", {"claims.far"}


def swap_best_checkpoint(run: Path) -> tuple[str, str, set[str]]:
    best = json.loads((run / "best_model.json").read_text())["checkpoint"]
    target = run / best
    # retention keeps one file per training when the last epoch was the best: take another training's
    other = next(p for p in sorted(run.glob("*/train/*.pth")) if not filecmp.cmp(p, target, shallow=False))
    target.unlink()  # a hard link to the original run: replace it, never write into it
    shutil.copyfile(other, target)
    return "claims.checkpoint", best, {"claims.checkpoint", "claims.files"}


def change_far_in_report_page(run: Path) -> tuple[str, str, set[str]]:
    """The page people read: the baseline's KPI FAR cell of the iterations table, "37.78%" → "0.78%"."""
    path = run / "DEFT_Loop_Report.html"
    lines = _lines(path)
    row = next(i for i, line in enumerate(lines) if line.strip() == "<td><b>baseline</b></td>")
    cell = next(
        i for i in range(row, row + 5) if re.fullmatch(r'\s*<td class="num">\d+(\.\d+)?%</td>', lines[i])
    )
    lines[cell] = re.sub(r">\d+(\.\d+)?%<", ">0.78%<", lines[cell])
    _write(path, lines)
    return "claims.far", f"DEFT_Loop_Report.html:line {cell + 1}", {"claims.far"}


def change_auroc_in_summary(run: Path) -> tuple[str, str, set[str]]:
    path = run / "iter1_summary.md"
    lines = _lines(path)
    (i,) = [i for i, line in enumerate(lines) if "KPI AUROC " in line]
    shown = re.search(r"KPI AUROC (\d\.\d+)", lines[i]).group(1)
    lines[i] = lines[i].replace(f"KPI AUROC {shown}", f"KPI AUROC {(float(shown) + 0.5) % 1:.3f}")
    _write(path, lines)
    return "claims.auroc", f"iter1_summary.md:line {i + 1}", {"claims.auroc"}


def replace_the_checkpoint_not_kept(run: Path) -> tuple[str, str, set[str]]:
    """The candidate evaluate did not keep has no hash in the state; the transcript's record has."""
    chosen = json.loads((run / "deft_state.json").read_text())["iterations"]["iter1"]["chosen"]
    other = "latest" if chosen == "best_val" else "best_val"
    target = run / "iter1" / "train" / f"{other}.pth"
    target.unlink()
    shutil.copyfile(run / "baseline" / "train" / "latest.pth", target)
    return "claims.files", f"iter1/train/{other}.pth", {"claims.files"}


def far_neutral_score_edit(run: Path) -> tuple[str, str, set[str]]:
    """One PASS score moved away from the threshold: FAR, threshold and recall all stay the same."""
    rel = "iter1/inference/kpi/best_val/inference.csv"
    path = run / rel
    before = pd.read_csv(path, dtype=str, keep_default_na=False)
    scores = before["siamese_score"].astype(float).to_numpy()
    defect = (before["label"] != "PASS").to_numpy()
    far, threshold = far_at_full_recall(scores, defect)
    i = int(next(j for j in range(len(before)) if not defect[j]))
    moved = scores[i] / 2 if scores[i] < threshold else (scores[i] + 1) / 2
    after = before.copy()
    after.loc[i, "siamese_score"] = repr(float(moved))
    after.to_csv(path, index=False)
    assert far_at_full_recall(after["siamese_score"].astype(float).to_numpy(), defect) == (far, threshold)
    return "claims.files", rel, {"claims.files"}


def add_validation_row_to_training(run: Path) -> tuple[str, str, set[str]]:
    state = json.loads((run / "deft_state.json").read_text())
    ws = Path(state["workspace"])
    val = read_csv(ws / "train" / "base" / "validation_set.csv").iloc[[3]].copy()
    for col in ("input_path", "golden_path"):
        val[col] = "train/images/" + val[col]
    csv = run / "iter1" / "dataset" / "train_combined_iter1.csv"
    df = read_csv(csv)
    pd.concat([df, val[df.columns]]).to_csv(csv, index=False, lineterminator="\n")
    return (
        "data.leakage",
        f"iter1/dataset/train_combined_iter1.csv:line {len(df) + 2}",
        {
            "data.leakage",
            "data.provenance",
        },
    )


FAKE_KEY = "sk-proj-" + "".join(random.Random(7).choices(string.ascii_letters + string.digits, k=40))


def plant_fake_key(run: Path) -> tuple[str, str, set[str]]:
    log = run / "iter1" / "train" / "train.log"
    n = len(_lines(log))
    log.write_text(log.read_text() + f"debug: client ready with {FAKE_KEY}\n")
    return "record.secret", f"iter1/train/train.log:line {n + 1}", {"record.secret"}


def remove_approval_entry(run: Path) -> tuple[str, str, set[str]]:
    path = run / "transcript.jsonl"
    lines = _lines(path)
    (i,) = [i for i, line in enumerate(lines) if json.loads(line)["kind"] == "approval"]
    del lines[i]
    _write(path, lines)
    return "gate.approval", "transcript.jsonl", {"gate.approval", "integrity.transcript-chain"}


def remove_approval_entry_and_rechain(run: Path) -> tuple[str, str, set[str]]:
    path = run / "transcript.jsonl"
    entries = [json.loads(line) for line in _lines(path)]
    _rechain(path, [e for e in entries if e["kind"] != "approval"])
    return "gate.approval", "transcript.jsonl", {"gate.approval"}


def approve_after_training(run: Path) -> tuple[str, str, set[str]]:
    path = run / "transcript.jsonl"
    entries = [json.loads(line) for line in _lines(path)]
    (approval,) = [e for e in entries if e["kind"] == "approval"]
    entries.remove(approval)
    end = next(i for i, e in enumerate(entries) if e["kind"] == "stage_end" and e["stage"] == "train")
    entries.insert(end + 1, approval)
    _rechain(path, entries)
    first_train = next(n for n, e in enumerate(entries, 1) if e["stage"] == "train")
    return "gate.order", f"transcript.jsonl:line {first_train}", {"gate.order"}


def hard_stop_without_reason(run: Path) -> tuple[str, str, set[str]]:
    path = run / "deft_state.json"
    state = json.loads(path.read_text())
    state["stop"] = {"reason": "hard_stop", "stage": "train", "iter": "iter1"}
    path.write_text(json.dumps(state, indent=2))
    allowed = {"record.hard-stop", "integrity.state-log"}
    return "record.hard-stop", "deft_state.json:stop", allowed


def keep_the_worse_checkpoint(run: Path) -> tuple[str, str, set[str]]:
    path = run / "deft_state.json"
    state = json.loads(path.read_text())
    record = state["iterations"]["iter1"]
    record["chosen"] = "latest" if record["chosen"] == "best_val" else "best_val"
    path.write_text(json.dumps(state, indent=2))
    return "claims.selection", "deft_state.json:iterations.iter1.chosen", {"claims.selection"}


def _model_call(entries: list[dict], **override: object) -> None:
    """Add one model call (the shape `LLMCall.to_dict()` records) inside the iter1 report stage."""
    start = next(
        i
        for i, e in enumerate(entries)
        if (e["kind"], e["iter"], e["stage"]) == ("stage_start", "iter1", "report")
    )
    data = {
        "provider": "openai",
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": "summarise"}],
        "response": {"role": "assistant", "content": "ok", "usage": {}},
        "input_tokens": 120,
        "output_tokens": 30,
        "cost_usd": 0.0004,
        "latency_s": 0.2,
        "attempt_count": 1,
    } | override
    call = {"ts": entries[start]["ts"], "agent": "reporter", "kind": "model_call", "iter": "iter1"}
    entries.insert(start + 1, call | {"stage": "report", "data": data})


def model_call_without_cost(run: Path) -> tuple[str, str, set[str]]:
    path = run / "transcript.jsonl"
    entries = [json.loads(line) for line in _lines(path)]
    _model_call(entries, cost_usd=None)
    _rechain(path, entries)
    line = next(n for n, e in enumerate(entries, 1) if e["kind"] == "model_call")
    return "record.model-call", f"transcript.jsonl:line {line}", {"record.model-call"}


def model_call_missing_from_tally(run: Path) -> tuple[str, str, set[str]]:
    path = run / "transcript.jsonl"
    entries = [json.loads(line) for line in _lines(path)]
    _model_call(entries)
    _rechain(path, entries)
    log = [json.loads(line) for line in _lines(run / "loop_log.jsonl")]
    line = next(n for n, e in enumerate(log, 1) if (e["iter"], e["stage"]) == ("iter1", "report"))
    return "record.tokens", f"loop_log.jsonl:line {line}", {"record.tokens"}


TAMPERS: list[Tamper] = [
    edit_transcript_entry,
    delete_log_line,
    change_far_in_summary,
    change_far_in_best_model,
    swap_best_checkpoint,
    change_far_in_report_page,
    change_auroc_in_summary,
    replace_the_checkpoint_not_kept,
    far_neutral_score_edit,
    add_validation_row_to_training,
    plant_fake_key,
    remove_approval_entry,
    remove_approval_entry_and_rechain,
    approve_after_training,
    hard_stop_without_reason,
    keep_the_worse_checkpoint,
    model_call_without_cost,
    model_call_missing_from_tally,
]


@pytest.mark.parametrize("tamper", TAMPERS, ids=[t.__name__ for t in TAMPERS])
def test_tampering_is_found_and_located(copy_run: Path, tamper: Tamper) -> None:
    check, location, allowed = tamper(copy_run)
    result = audit_run(copy_run)
    assert result.exit_code == 1
    located = _at(result, check)
    assert any(loc.startswith(location) for loc in located), (location, located)
    assert check in _failing(result) and _failing(result) <= allowed, _failing(result)


def test_a_planted_key_never_reaches_the_reports(copy_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plant_fake_key(copy_run)
    with (copy_run / "loop_log.jsonl").open("a") as log:  # a corrupted line quotes its text in a finding
        log.write(f'{{"seq": 19, "summary": "{FAKE_KEY}\n')
    code, stdout, stderr = _audit_cli(capsys, str(copy_run), "--json")
    assert code == 1, stderr[-2000:]
    assert "record.secret" in stderr and "integrity.unreadable" in stderr
    for text in (stdout, stderr, (copy_run / REPORT_FILE).read_text(), (copy_run / JSON_FILE).read_text()):
        assert FAKE_KEY not in text and FAKE_KEY[8:] not in text


def test_a_secret_from_the_environment_is_found_and_not_shown(
    copy_run: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "correct-horse-battery-staple-42"
    monkeypatch.setenv("VENDOR_API_TOKEN", secret)
    summary = copy_run / "preflight_summary.md"
    summary.write_text(summary.read_text() + f"token used: {secret}\n")
    result = audit_run(copy_run)
    (finding,) = [f for f in result.findings if f.check == "record.secret"]
    assert finding.file == "preflight_summary.md" and finding.found == "a secret value (not shown)"
    assert secret not in json.dumps(result.to_dict())


def test_strict_turns_warnings_into_findings(copy_run: Path) -> None:
    path = copy_run / "deft_state.json"
    state = json.loads(path.read_text())
    state["counts"]["validation"]["rows"] += 1  # as if the workspace's validation set had changed since
    path.write_text(json.dumps(state, indent=2))
    lenient, strict = audit_run(copy_run), audit_run(copy_run, strict=True)
    assert any(f.check == "data.workspace" and f.severity == "warning" for f in lenient.findings)
    assert lenient.exit_code == 0
    assert strict.exit_code == 1 and "data.workspace" in _failing(strict)


def test_a_run_waiting_at_the_gate_audits_clean(tiny_workspace: Path, tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    shutil.copytree(tiny_workspace, ws)
    run = create_run(ws, {"max_iterations": 1, "epochs": 2, "progress": False})
    assert drive(run, yes=False, approver=None).exit_code == EXIT_AWAITING
    result = audit_run(run)
    assert result.exit_code == 0, [f.to_dict() for f in result.findings]
    assert result.facts["approval"].startswith("not given yet")


def test_not_a_run_is_one_sentence_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    code, _, stderr = _audit_cli(capsys, str(tmp_path))
    assert code == 2
    assert "is not a DEFT or create run" in stderr and "Traceback" not in stderr
    assert len(stderr.strip().splitlines()) <= 2
    assert not (tmp_path / REPORT_FILE).exists()


def test_leakage_keys_join_each_rows_key_columns(real_run: Path) -> None:
    df = read_csv(real_run / "iter1" / "dataset" / "train_combined_iter1.csv")
    rows = ["\x1f".join(row) for row in df[list(LEAKAGE_KEY)].itertuples(index=False)]
    assert len(rows) > 0 and leakage_keys(df).tolist() == rows
    assert leakage_keys(df.iloc[0:0]).tolist() == []
