"""Every bad input of issue 17, one case each, through the `specloop` entry point: exit 2, one error
sentence, no approval asked, no run directory left half-written, the workspace's input files
unchanged. Each case fails before anything trains (pre-flight needs no training).

The entry point runs in-process (`specloop.cli.main`, the same function the console script calls),
so a case costs a workspace check, not a Python start-up.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from specloop.cli import main
from specloop.ledger import loop_log
from specloop.ledger import state as ledger_state
from specloop.skills.aoi.check import check_workspace
from specloop.skills.aoi.schema import read_csv, write_csv

APPROVAL_QUESTION = "Approve this DEFT run"


def _hashes(root: Path) -> dict[str, str]:
    """sha256 of every workspace input (everything outside results/)."""
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.relative_to(root).parts[0] != "results"
    }


def _cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    """Run `specloop ARGV` with no terminal on stdin; return its exit code and stdout + stderr."""
    monkeypatch.setattr(sys, "argv", ["specloop", *argv])
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    monkeypatch.setenv("COLUMNS", "250")
    with pytest.raises(SystemExit) as info:
        main()
    out = capsys.readouterr()
    code = info.value.code
    return (code if isinstance(code, int) else 0), out.out + out.err


def _one_sentence(output: str) -> str:
    lines = [line for line in output.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, output
    assert "Traceback" not in output and "unexpected error" not in output, output
    return lines[0]


def _no_half_written_run(ws: Path) -> None:
    """Either no run directory, or one whose state records the stop and whose log ends on it."""
    for run in (ws / "results").glob("run_*") if (ws / "results").is_dir() else []:
        state = json.loads((run / "deft_state.json").read_text())
        assert state["approval"] is None, "approved despite a bad input"
        assert state["stop"] and state["stop"]["reason"] == "hard_stop", f"{run} left without a stop"
        assert loop_log.read_entries(run / "loop_log.jsonl")[0]["status"] == "error"


# --- the workspace's inputs, each broken one way ---------------------------------------------------


def _only(label_is_pass: bool) -> Callable[[Path], None]:
    def edit(ws: Path) -> None:
        csv = ws / "kpi" / "testing_set.csv"
        df = read_csv(csv)
        write_csv(df[(df["label"] == "PASS") == label_is_pass], csv)

    return edit


def _bomb(ws: Path) -> None:
    from test_image_decode import _bomb_png

    df = read_csv(ws / "kpi" / "testing_set.csv")
    row = df.iloc[0]
    target = next((ws / "kpi" / "images" / row["input_path"]).glob(f"{row['object_name']}_*"))
    _bomb_png(target, 100_000, 100_000)


def _results_file(ws: Path) -> None:
    (ws / "results").write_text("not a folder\n")


def _empty_spec(ws: Path) -> None:
    (ws / "specs" / "baseline_spec.yaml").write_text("")


def _edit_spec(old: str, new: str) -> Callable[[Path], None]:
    def edit(ws: Path) -> None:
        spec = ws / "specs" / "baseline_spec.yaml"
        text = spec.read_text()
        assert old in text
        spec.write_text(text.replace(old, new, 1))

    return edit


_INPUT_MAP = "    input_map:\n      SolderLight: 0\n      UniformLight: 1\n"

WORKSPACE_CASES: dict[str, tuple[Callable[[Path], None], list[str], str]] = {
    # id: (break the workspace, extra `deft run` arguments, what the sentence must say)
    "kpi-without-defects": (_only(True), [], "kpi set has no defect rows"),
    "kpi-without-pass": (_only(False), [], "kpi set has no PASS rows"),
    "decompression-bomb": (_bomb, [], "more pixels than the limit"),
    "results-is-a-file": (_results_file, [], "results: is a file"),
    "empty-spec": (_empty_spec, [], "the spec is empty"),
    "empty-input-map": (_edit_spec(_INPUT_MAP, "    input_map: {}\n"), [], "input_map is empty"),
    "yaml-error": (_edit_spec("  backbone:\n", "  backbone: [\n"), [], "line "),
    "unknown-backbone": (_edit_spec("type: resnet18", "type: resnet_18"), [], "not a timm model name"),
    "embedder-bogus": (lambda ws: None, ["--embedder", "bogus"], "unknown embedder 'bogus'"),
    "embedder-bad-timm": (lambda ws: None, ["--embedder", "timm:resnet_18"], "did you mean resnet18"),
    "bad-checkpointer": (lambda ws: None, ["--checkpointer", "mysql://db/x"], "checkpointer"),
}


@pytest.mark.parametrize("case", list(WORKSPACE_CASES))
def test_deft_run_refuses_bad_input_before_the_gate(
    case: str, ws: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    breaks, extra, says = WORKSPACE_CASES[case]
    breaks(ws)
    before = _hashes(ws)
    code, output = _cli(monkeypatch, capsys, "deft", "run", "-w", str(ws), "--no-progress", *extra)
    assert code == 2, output
    assert says in _one_sentence(output)
    assert APPROVAL_QUESTION not in output
    assert not (ws / "results").is_dir() or not list((ws / "results").glob("run_*")), "a run dir was left"
    assert _hashes(ws) == before


def test_workspace_check_names_a_decompression_bomb(
    ws: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _bomb(ws)
    code, output = _cli(monkeypatch, capsys, "workspace", "check", str(ws))
    assert code == 2, output
    (line,) = [line for line in output.splitlines() if "image-too-large" in line]
    assert "kpi/images/test/" in line and "decompression bomb" in line


# --- a run directory broken afterwards -------------------------------------------------------------


def _new_run(ws: Path, options: dict[str, object]) -> Path:
    """A run directory as `deft run` creates it before pre-flight (its initial state only)."""
    run = ws / "results" / "run_20261201_120000"
    run.mkdir(parents=True)
    state = ledger_state.new_state(
        run_dir=run, workspace=ws, kpi_target="", max_iterations=0, config={"options": options}
    )
    ledger_state.save(run, state)
    return run


@pytest.fixture
def run_dir(ws: Path) -> Path:
    return _new_run(ws, {"embedder": None, "progress": False})


@pytest.mark.parametrize(
    ("content", "says"),
    [("{not json", "is not valid JSON (line 1"), ("", "is empty"), ("[]", "holds a JSON list")],
    ids=["corrupt", "empty", "list"],
)
@pytest.mark.parametrize("command", ["resume", "status"])
def test_an_unreadable_state_is_one_sentence(
    command: str,
    content: str,
    says: str,
    run_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    (run_dir / "deft_state.json").write_text(content)
    before = _hashes(run_dir)
    code, output = _cli(monkeypatch, capsys, "deft", command, str(run_dir))
    assert code == 2, output
    assert says in _one_sentence(output) and "deft_state.json" in output
    assert _hashes(run_dir) == before


def test_a_state_missing_what_resume_reads_is_one_sentence(
    run_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    state = json.loads((run_dir / "deft_state.json").read_text())
    del state["config"]
    (run_dir / "deft_state.json").write_text(json.dumps(state))
    code, output = _cli(monkeypatch, capsys, "deft", "resume", str(run_dir))
    assert code == 2 and "key 'config' is missing or malformed" in _one_sentence(output)


def test_resume_of_a_run_started_with_a_bogus_embedder(
    ws: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    run = _new_run(ws, {"embedder": "bogus", "progress": False})  # as an older specloop allowed
    before = _hashes(run)
    code, output = _cli(monkeypatch, capsys, "deft", "resume", str(run))
    assert code == 2, output
    assert "was started with --embedder: unknown embedder 'bogus'" in _one_sentence(output)
    assert _hashes(run) == before


def test_status_shows_bracketed_text(
    run_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    loop_log.append(
        run_dir / "loop_log.jsonl",
        iter_label="baseline",
        stage="preflight",
        status="error",
        summary="hard stop [input]: unknown embedder 'x' [bold]",
        duration_sec=0.1,
    )
    code, output = _cli(monkeypatch, capsys, "deft", "status", str(run_dir))
    assert code == 0, output
    assert "hard stop [input]: unknown embedder 'x' [bold]" in output


# --- other commands ---------------------------------------------------------------------------------


def test_mine_out_naming_an_existing_file(
    ws: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "mined.csv"
    out.write_text("keep me\n")
    argv = ["mine", "--targets", str(ws / "kpi" / "testing_set.csv"), "--workspace", str(ws)]
    code, output = _cli(monkeypatch, capsys, *argv, "--out", str(out), "--embedder", "pixels")
    assert code == 2 and "is an existing file" in _one_sentence(output)
    assert out.read_text() == "keep me\n"


@pytest.mark.parametrize(
    ("override", "says"),
    [
        ("train..x==][", "is not key=value with a dotted key"),
        ("train.num_epoch=1", "unknown key train.num_epoch; did you mean train.num_epochs?"),
        ("train.num_epochs=[1,", "does not parse"),
    ],
)
def test_changenet_override_is_checked_against_the_schema(
    override: str, says: str, ws: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    before = _hashes(ws)
    spec = str(ws / "specs" / "baseline_spec.yaml")
    code, output = _cli(monkeypatch, capsys, "changenet", "train", "-e", spec, override, "--quiet")
    assert code == 2, output
    assert says in _one_sentence(output)
    assert _hashes(ws) == before and not (ws / "results").exists()


def _read_only_run(ws: Path) -> subprocess.CompletedProcess[str]:
    """`deft run` on `ws` where it cannot write: a read-only bind mount when root (root ignores
    permission bits), else the permission bits themselves."""
    cmd = [sys.executable, "-m", "specloop", "deft", "run", "-w", str(ws), "--no-progress"]
    env = {**os.environ, "COLUMNS": "250"}
    if os.geteuid() != 0:
        for p in [ws, *ws.rglob("*")]:
            p.chmod(p.stat().st_mode & ~0o222)
        return subprocess.run(
            cmd, capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL, timeout=300
        )
    if shutil.which("unshare") is None:
        pytest.skip("running as root without unshare: no way to make the workspace read-only")
    mount = f'mount --bind {ws} {ws} && mount -o remount,bind,ro {ws} && exec "$@"'
    proc = subprocess.run(
        ["unshare", "-m", "sh", "-c", mount, "sh", *cmd],
        capture_output=True,
        text=True,
        env=env,
        stdin=subprocess.DEVNULL,
        timeout=300,
    )
    if "mount:" in proc.stderr or "unshare:" in proc.stderr:
        pytest.skip(f"cannot make a read-only mount here: {proc.stderr.strip()[:200]}")
    return proc


def test_a_read_only_workspace(ws: Path) -> None:
    before = _hashes(ws)
    proc = _read_only_run(ws)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 2, output
    assert "is not writable by this user" in _one_sentence(output)
    assert not (ws / "results").exists()
    for p in [ws, *ws.rglob("*")]:
        p.chmod(p.stat().st_mode | 0o200)
    assert _hashes(ws) == before


# --- warnings by name (the run may go on) ------------------------------------------------------------


def _set_label(label: str) -> Callable[[Path], None]:
    def edit(ws: Path) -> None:
        csv = ws / "train" / "base" / "training_set.csv"
        df = read_csv(csv)
        df.loc[df.index[df["label"] != "PASS"][0], "label"] = label
        write_csv(df, csv)

    return edit


def _duplicate_row(ws: Path) -> None:
    csv = ws / "train" / "base" / "training_set.csv"
    df = read_csv(csv)
    write_csv(pd.concat([df, df.iloc[[0]]], ignore_index=True), csv)


def _no_training_defects(ws: Path) -> None:
    csv = ws / "train" / "base" / "training_set.csv"
    df = read_csv(csv)
    write_csv(df[df["label"] == "PASS"], csv)


WARNING_CASES = {
    "cyrillic-pass": (_set_label("P\u0410SS"), "label-lookalike", "U+0410 CYRILLIC CAPITAL LETTER A"),
    "nan-label": (_set_label("NaN"), "label-lookalike", "label 'NaN' looks like a missing value"),
    "duplicate-row": (_duplicate_row, "duplicate-row", "row repeats line 2"),
    "training-without-defects": (_no_training_defects, "training-no-defects", "no defect rows"),
}


@pytest.mark.parametrize("case", list(WARNING_CASES))
def test_suspicious_rows_warn_by_name(case: str, ws: Path) -> None:
    breaks, rule, says = WARNING_CASES[case]
    breaks(ws)
    report = check_workspace(ws, plan=False)
    found = [p for p in report.problems if p.rule == rule]
    assert found and found[0].severity == "warning" and says in found[0].sentence(), report.problems


def test_a_sixteen_bit_workspace_image_checks_clean(ws: Path) -> None:
    """16-bit greys are read (scaled), so the checker accepts them rather than seeing a white image."""
    df = read_csv(ws / "kpi" / "testing_set.csv")
    row = df.iloc[0]
    for f in (ws / "kpi" / "images" / row["input_path"]).glob(f"{row['object_name']}_*"):
        with Image.open(f) as img:
            grey = img.convert("L")
        Image.fromarray(np.asarray(grey).astype(np.uint16) * 257).save(f)
    report = check_workspace(ws, plan=False)
    assert report.ok, [p.sentence() for p in report.problems]
