"""`specloop audit` on a real finished `specloop create` run (the digits request), and on copies of
it tampered with one way at a time: each tamper is reported by name at its location, and nothing
unrelated fails. The DEFT-only checks are `n/a` on a create run, never findings."""

from __future__ import annotations

import json
import re
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from test_cli_startup import HELP, loaded_heavy

from specloop.cli import main
from specloop.cli.target import prepare_target_run
from specloop.graph.create_start import start_create
from specloop.graph.run import EXIT_AWAITING, EXIT_HARD_STOP, drive
from specloop.ledger.transcript import GENESIS, entry_hash
from specloop.pipelines import get_pipeline
from specloop.skills.audit import JSON_FILE, REPORT_FILE, AuditResult, audit_run
from specloop.skills.audit.gate import approver_in, before_gate
from specloop.skills.audit.integrity import scope_of, stages_of

CREATE_CHECKS = ("claims.build-log", "claims.commands", "claims.tech", "claims.review", "claims.answers")
DEFT_ONLY = (
    "claims.evidence",
    "claims.far",
    "claims.threshold",
    "claims.recall",
    "claims.selection",
    "claims.best",
    "claims.checkpoint",
    "data.workspace",
    "data.leakage",
    "data.provenance",
    "data.synth-pool",
    "data.outside-workspace",
)


@pytest.fixture(scope="module")
def digits_run(create_run: Callable[[str], Path]) -> Path:
    """The session's finished create run for the digits request. Read-only: tamper with a copy."""
    return create_run("image_classification")


def _no_venvs(directory: str, names: list[str]) -> list[str]:
    """The target project's virtual environment (gigabytes of installed packages) is not copied."""
    return [n for n in names if (Path(directory) / n / "pyvenv.cfg").is_file()]


@pytest.fixture
def copy_run(digits_run: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "run"
    shutil.copytree(digits_run, dst, symlinks=True, ignore=_no_venvs)
    return dst


def _audit_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """`specloop audit ARGS` through the real entry point, in this process."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(sys, "argv", ["specloop", "audit", *args])
        with pytest.raises(SystemExit) as exited:
            main()
    captured = capsys.readouterr()
    return int(exited.value.code or 0), captured.out, captured.err


def _lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


def _write(path: Path, lines: list[str]) -> None:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _line_of(path: Path, pattern: str) -> int:
    """The 1-based number of the first line of `path` matching `pattern`."""
    return next(i for i, line in enumerate(_lines(path), start=1) if re.search(pattern, line))


def test_the_registry_decides_scopes_gate_and_approver() -> None:
    create, deft = get_pipeline("create"), get_pipeline("deft")
    assert before_gate(create) == {"requirements", "approval_gate"}
    assert before_gate(deft) == {"preflight", "approval_gate"}
    assert scope_of(create, "framework") == "framework" and scope_of(create, "baseline") is None
    assert scope_of(deft, "iter3") == "iteration" and scope_of(deft, "framework") is None
    assert stages_of(create, "framework") == create.order("framework")
    assert stages_of(deft, "final") == ("loop_stop",)
    assert approver_in("approved by --yes flag; 0 answer(s); family tabular") == "--yes flag"
    assert approver_in("approved by chat") == "chat"
    assert approver_in("done in /tmp/x") is None


def test_a_finished_create_run_audits_clean(
    digits_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "audit_out"
    code, stdout, stderr = _audit_cli(capsys, str(digits_run), "--json", "--out", str(out))
    assert code == 0, stderr[-3000:]
    report = json.loads(stdout)
    assert report["verdict"] == "clean", report["findings"]
    assert report["facts"]["pipeline"] == "create"
    assert report["facts"]["state_file"] == "create_state.json"
    assert report["facts"]["approval"] == "headless, approved by the --yes flag"
    statuses = {name: c["status"] for name, c in report["checks"].items()}
    for name in (
        *CREATE_CHECKS,
        "integrity.log-stages",
        "integrity.state-log",
        "gate.approval",
        "gate.order",
    ):
        assert statuses[name] == "pass", (name, statuses[name])
    for name in DEFT_ONLY:
        assert statuses[name] == "n/a", (name, statuses[name])
    assert "Pipeline: create" in (out / REPORT_FILE).read_text(encoding="utf-8")
    assert json.loads((out / JSON_FILE).read_text(encoding="utf-8")) == report
    assert not (digits_run / REPORT_FILE).exists(), "--out must leave the run directory alone"


def test_auditing_a_create_run_loads_no_framework(digits_run: Path, tmp_path: Path) -> None:
    """`specloop audit` on a create run in a fresh interpreter: no torch, no model SDK."""
    assert loaded_heavy(HELP.format(args=["audit", str(digits_run), "--out", str(tmp_path)])) == []
    assert (tmp_path / JSON_FILE).is_file()


# --- tampering: each function edits a copy and returns (check, location) the audit must report.


def _tick_without_record(run: Path) -> tuple[str, str]:
    path = run / "PROJECT_BUILD_LOG.md"
    lines = _lines(path)
    at = next(i for i, line in enumerate(lines) if line.startswith("## Records"))
    lines[at:at] = ["- [x] T07 Deploy to production", ""]
    _write(path, lines)
    return "claims.build-log", f"PROJECT_BUILD_LOG.md:line {at + 1}"


def _record_hash_edited(run: Path) -> tuple[str, str]:
    path = run / "PROJECT_BUILD_LOG.md"
    text = path.read_text(encoding="utf-8")
    block = re.search(r"```yaml build-records\n(.*?)```", text, re.DOTALL)
    assert block is not None
    records = yaml.safe_load(block.group(1))
    i = next(i for i, r in enumerate(records) if r["task"] == "T04" and r["phase"] == "build")
    old = records[i]["output_sha256"]
    new = ("0" if old[0] != "0" else "1") + old[1:]
    path.write_text(text.replace(f"output_sha256: {old}", f"output_sha256: {new}", 1), encoding="utf-8")
    return "claims.commands", f"PROJECT_BUILD_LOG.md:build record {i + 1} (build T04)"


def _tech_number_edited(run: Path) -> tuple[str, str]:
    path = run / "tech.md"
    lines = _lines(path)
    i = next(i for i, line in enumerate(lines) if line.startswith("| train_samples_per_sec |"))
    cells = lines[i].split("|")
    value = float(cells[2].strip().replace(",", ""))
    cells[2] = f" {value * 2 + 1:.1f} "
    lines[i] = "|".join(cells)
    _write(path, lines)
    return "claims.tech", f"tech.md:line {i + 1}"


def _log_line_deleted(run: Path) -> tuple[str, str]:
    path = run / "loop_log.jsonl"
    lines = _lines(path)
    i = next(i for i, line in enumerate(lines) if json.loads(line)["stage"] == "tasks")
    del lines[i]
    _write(path, lines)
    return "integrity.log-seq", f"loop_log.jsonl:line {i + 1}"


def _transcript_entry_edited(run: Path) -> tuple[str, str]:
    path = run / "transcript.jsonl"
    lines = _lines(path)
    i = next(i for i, line in enumerate(lines) if json.loads(line)["kind"] == "command")
    entry = json.loads(lines[i])
    entry["data"]["exit_code"] = 0 if entry["data"]["exit_code"] else 1
    lines[i] = json.dumps(entry)
    _write(path, lines)
    return "integrity.transcript-chain", f"transcript.jsonl:line {i + 1}"


def _command_hash_forged(run: Path) -> tuple[str, str]:
    """A careful forger edits a command's output hash and re-chains the transcript: the kept log
    no longer matches it."""
    path = run / "transcript.jsonl"
    entries = [json.loads(line) for line in _lines(path)]
    entry = next(e for e in reversed(entries) if e["kind"] == "command" and e["stage"] == "review")
    entry["data"]["output_sha256"] = "f" * 64
    prev = GENESIS
    for n, e in enumerate(entries, start=1):
        e["n"], e["prev_hash"] = n, prev
        e["hash"] = prev = entry_hash(e)
    _write(path, [json.dumps(e) for e in entries])
    return "claims.commands", f"{entry['data']['log_path']}:recorded in transcript.jsonl line {entry['n']}"


def _kept_log_edited(run: Path) -> tuple[str, str]:
    log = run / "logs" / "codegen_T06.log"
    log.write_text(log.read_text(encoding="utf-8") + "all green, trust me\n", encoding="utf-8")
    entries = [json.loads(line) for line in _lines(run / "transcript.jsonl")]
    n = next(e["n"] for e in reversed(entries) if e["data"].get("log_path") == "logs/codegen_T06.log")
    return "claims.commands", f"logs/codegen_T06.log:recorded in transcript.jsonl line {n}"


def _review_report_edited(run: Path) -> tuple[str, str]:
    path = run / "REVIEW_REPORT.md"
    lines = _lines(path)
    i = next(i for i, line in enumerate(lines) if line.startswith("| `") and "| pass |" in line)
    name = lines[i].split("`")[1]
    lines[i] = lines[i].replace("| pass |", "| FAIL |", 1)
    _write(path, lines)
    return "claims.review", f"REVIEW_REPORT.md:`{name}`"


def _answers_edited(run: Path) -> tuple[str, str]:
    state = json.loads((run / "create_state.json").read_text(encoding="utf-8"))
    path = run / state["project_dir"] / ".specloop-answers.yml"
    answers = yaml.safe_load(path.read_text(encoding="utf-8"))
    answers["config"]["train"]["epochs"] += 10
    path.write_text(yaml.safe_dump(answers, sort_keys=True, allow_unicode=True), encoding="utf-8")
    return "claims.answers", f"{state['project_dir']}/.specloop-answers.yml:config.train.epochs"


def _stage_record_removed(run: Path) -> tuple[str, str]:
    path = run / "create_state.json"
    state = json.loads(path.read_text(encoding="utf-8"))
    del state["stages"]["review"]
    path.write_text(json.dumps(state, indent=2), encoding="utf-8")
    return "integrity.state-log", "create_state.json:stages.review"


Tamper = Callable[[Path], tuple[str, str]]
TAMPERS: dict[str, tuple[Tamper, set[str]]] = {
    # name: (tamper, every check allowed to fail besides the named one)
    "tick-without-record": (_tick_without_record, set()),
    "record-hash-edited": (_record_hash_edited, set()),
    "tech-number-edited": (_tech_number_edited, set()),
    "log-line-deleted": (
        _log_line_deleted,
        {"integrity.log-stages", "integrity.transcript-log", "integrity.state-log"},
    ),
    "transcript-entry-edited": (_transcript_entry_edited, set()),
    "command-hash-forged": (_command_hash_forged, set()),
    "kept-log-edited": (_kept_log_edited, set()),
    "review-report-edited": (_review_report_edited, set()),
    "answers-edited": (_answers_edited, set()),
    "stage-record-removed": (_stage_record_removed, set()),
}


def _failing(result: AuditResult) -> set[str]:
    return {f.check for f in result.failing()}


@pytest.mark.parametrize("name", list(TAMPERS))
def test_tampering_a_create_run_is_found_and_located(copy_run: Path, name: str) -> None:
    tamper, also = TAMPERS[name]
    check, location = tamper(copy_run)
    result = audit_run(copy_run)
    assert result.exit_code == 1
    assert check in _failing(result), [f.to_dict() for f in result.findings]
    assert location in [f.location for f in result.findings if f.check == check], [
        f.to_dict() for f in result.findings if f.check == check
    ]
    assert _failing(result) <= {check} | also, [f.to_dict() for f in result.failing()]


def test_a_create_run_without_its_state_is_still_audited_as_create(copy_run: Path) -> None:
    (copy_run / "create_state.json").unlink()
    result = audit_run(copy_run)
    assert result.facts["pipeline"] == "create"
    missing = [f for f in result.findings if f.check == "integrity.unreadable"]
    assert [f.file for f in missing] == ["create_state.json"]
    assert all(result.status(name) == "n/a" for name in DEFT_ONLY)


def test_a_stage_before_the_approval_is_a_gate_finding(copy_run: Path) -> None:
    """The tech stage's log line moved before the gate's: only requirements may run first."""
    path = copy_run / "loop_log.jsonl"
    entries = [json.loads(line) for line in _lines(path)]
    gate = next(i for i, e in enumerate(entries) if e["stage"] == "approval_gate")
    tech = next(i for i, e in enumerate(entries) if e["stage"] == "tech")
    entries.insert(gate, entries.pop(tech))
    for seq, e in enumerate(entries, start=1):
        e["seq"] = seq
    _write(path, [json.dumps(e) for e in entries])
    result = audit_run(copy_run)
    assert "loop_log.jsonl:line 2" in [f.location for f in result.findings if f.check == "gate.order"]
    assert _failing(result) <= {"gate.order", "integrity.log-stages"}


@pytest.mark.parametrize(
    ("requirement", "yes", "exit_code", "approval"),
    [
        ("帮我做一个手写数字识别的小模型，能在笔记本CPU上跑就行。", False, EXIT_AWAITING, "not given yet"),
        (
            "Fine-tune a ChatGPT-like model on our company docs and deploy it by Friday",
            True,
            EXIT_HARD_STOP,
            "headless",
        ),
    ],
    ids=["waiting-at-the-gate", "infeasible-stops-at-the-gate"],
)
def test_a_create_run_stopped_at_the_gate_audits_clean(
    tmp_path: Path, requirement: str, yes: bool, exit_code: int, approval: str
) -> None:
    run = start_create(requirement, out=tmp_path / "out", answers=None, llm=None, progress=False)
    assert drive(run, yes=yes, approver=None).exit_code == exit_code
    result = audit_run(run)
    assert result.exit_code == 0, [f.to_dict() for f in result.findings]
    assert result.facts["approval"].startswith(approval)
    assert all(result.status(name) == "n/a" for name in CREATE_CHECKS)


def test_a_target_run_audits_its_part_a_as_done_in_the_create_run(copy_run: Path) -> None:
    """`specloop target run` starts a run whose part-A lines are done in the create run: their records
    live there, and its approval is that run's."""
    state = json.loads((copy_run / "create_state.json").read_text(encoding="utf-8"))
    options = {"llm": "offline", "record": None, "progress": False, "checkpointer": None, "specs": None}
    target = prepare_target_run(copy_run / state["project_dir"], options)
    result = audit_run(target)
    assert result.exit_code == 0, [f.to_dict() for f in result.findings]
    assert result.facts["approval"] == f"the create run {copy_run} (headless, approved by the --yes flag)"
    assert all(result.status(name) == "n/a" for name in CREATE_CHECKS)
    source = json.loads((target / "create_state.json").read_text(encoding="utf-8"))
    source["approval"]["by"] = "someone else"
    (target / "create_state.json").write_text(json.dumps(source), encoding="utf-8")
    assert _failing(audit_run(target)) == {"gate.approval"}
