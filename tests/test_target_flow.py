"""Part B end to end on one family (digits, small_cnn): `specloop create` continues into the target
project — rules record, a real venv install, data/mini and the executed notebook, one epoch, the
guidance and its 2-process torchrun check — then the seeded-bug suite on copies of that project
(sharing its venv): each rule of DEBUG_CODE.md fixes its bug offline as a commit and the project's
tests pass afterwards; a bug no rule knows stops with a report and a non-zero exit."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import git
import pytest
import yaml
from create_fixtures import create_env

from specloop.agents.context import RunContext
from specloop.agents.roster import agent_for
from specloop.errors import HardStop
from specloop.ledger import loop_log
from specloop.ledger.transcript import read_entries, verify_chain
from specloop.pipelines import get_pipeline
from specloop.skills.contracts import CHECK_KINDS, CheckEnv

PROJECT = "handwritten_digit_recognizer"
PKG = PROJECT
TIMEOUT = 1800
PART_B = get_pipeline("create").order("target")


@pytest.fixture(scope="session")
def digits_run(create_run: Callable[[str], Path]) -> Path:
    """The session's `specloop create --yes` run of the digits requirement, through parts A and B
    (read-only: the seeded tests copy it)."""
    return create_run("image_classification")


@pytest.fixture(scope="session")
def constraint(digits_run: Path) -> Path:
    """The constraint that run installed with (this machine's CPU torch wheel)."""
    return digits_run.parent / "cpu-torch-constraint.txt"


@pytest.mark.slow
def test_create_continues_through_part_b(digits_run: Path, constraint: Path) -> None:
    project = digits_run / PROJECT
    log = loop_log.read_entries(digits_run / "loop_log.jsonl")
    assert [e["stage"] for e in log if e["iter"] == "target"] == list(PART_B)
    assert all(e["status"] == "ok" for e in log)
    assert [e["seq"] for e in log] == list(range(1, len(log) + 1))
    assert verify_chain(read_entries(digits_run / "transcript.jsonl")) == []
    # B1
    inherited = (project / "CLAUDE.inherited.md").read_text()
    assert "inherited unchanged" in inherited
    # B2: a real install, reported from the venv itself
    report = json.loads((project / "env_check_report.json").read_text())
    names = {p["name"].lower(): p["version"] for p in report["packages_installed"]}
    assert report["python_version"].startswith("3.") and names["torch"].startswith("2.13.0")
    assert {"nbclient", "ipykernel", "matplotlib", "omegaconf"} <= set(names)
    assert report["install_seconds"] > 0 and report["constraint"] == str(constraint.resolve())
    assert report["gpu"] is None and report["ram_mb"] > 0 and report["disk_free_gb"] > 0
    assert (digits_run / "logs" / "env_check_install.log").stat().st_size > 0
    manifest = json.loads((project / "data" / "mini" / "manifest.json").read_text())
    assert manifest["seed"] == 0 and len(manifest["classes"]) == 10
    assert "| 9 |" in (project / "mini_dataset.md").read_text()
    nb = json.loads((project / "notebooks" / "mini_dataset.ipynb").read_text())
    assert any("image/png" in o.get("data", {}) for c in nb["cells"] for o in c.get("outputs", []))
    # B3
    bugfix = json.loads((project / "bugfix_report.json").read_text())
    assert bugfix["closed"] and bugfix["run_ok"] and (project / "outputs" / "one_epoch" / "best.pt").is_file()
    assert [t["ok"] for t in bugfix["final_tests"]] == [True, True]
    # B4: the guidance's numbers agree with tech.json, and its torchrun command ran on 2 CPU processes
    guidance = (project / "full_train_guidance.md").read_text()
    check = CHECK_KINDS["guidance_agrees"](
        id="g", check="guidance_agrees", name="g", path=f"{PROJECT}/full_train_guidance.md", tech="tech.json"
    )
    assert check.evaluate(CheckEnv(digits_run, {})) == (True, "every number agrees with tech.json")
    assert "torchrun --standalone --nproc_per_node 2" in guidance and "passed (exit 0" in guidance
    ddp = torch_load(project, project / "outputs" / "ddp_check" / "best.pt")
    assert ddp["epoch"] == 1
    commits = [c.message.splitlines()[0] for c in git.Repo(project).iter_commits()]
    for stage in ("inherit_rules", "mini_dataset", "one_epoch", "full_train_guidance"):
        assert any(m.startswith(f"specloop {stage}") for m in commits), stage
    ran = [e for e in read_entries(digits_run / "transcript.jsonl") if e["kind"] == "command"]
    assert any("torch.distributed.run" in " ".join(e["data"]["command"]) for e in ran)


def torch_load(project: Path, path: Path) -> dict[str, Any]:
    code = f"import torch, json; c = torch.load({str(path)!r}, weights_only=False); print(json.dumps({{'epoch': c['epoch']}}))"
    out = subprocess.run(
        [str(project / "debug-cpu" / "bin" / "python"), "-c", code],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout)


def _copy(digits_run: Path, dest: Path) -> Path:
    """A copy of the finished create run whose project shares the session's venv."""
    shutil.copytree(
        digits_run,
        dest,
        symlinks=True,
        ignore=shutil.ignore_patterns("debug-cpu", "outputs", "checkpoints.sqlite*"),
    )
    (dest / PROJECT / "debug-cpu").symlink_to(digits_run / PROJECT / "debug-cpu", target_is_directory=True)
    return dest


def _set(project: Path, key: str, value: Any) -> None:
    path = project / "configs" / "default.yaml"
    cfg = yaml.safe_load(path.read_text())
    section, name = key.split(".")
    cfg[section][name] = value
    path.write_text(yaml.safe_dump(cfg, sort_keys=True))


def _insert(project: Path, module: str, after: str, code: str) -> None:
    path = project / "src" / PKG / module
    text = path.read_text()
    m = re.search(rf"^(\s*){re.escape(after)}.*\n", text, re.M)
    assert m is not None, after
    indent = m.group(1).lstrip("\n")
    lines = "".join(f"{indent}{line}\n" for line in code.splitlines())
    path.write_text(text[: m.end()] + lines + text[m.end() :])


# rule → how to break a generated project that way (each a real failure of the real code)
BREAKS: dict[str, Callable[[Path], None]] = {
    "missing-module": lambda p: _insert(p, "train.py", "import numpy as np", "import tqdm  # noqa: F401"),
    "cuda-absent": lambda p: _set(p, "train.device", "cuda"),
    "out-of-memory": lambda p: _insert(
        p,
        "train.py",
        "model = build_model(cfg)",
        "torch.empty(2 ** (int(cfg.train.batch_size) + 15), dtype=torch.uint8)",
    ),
    "worker-crash": lambda p: (
        _set(p, "train.num_workers", 2),
        _insert(
            p,
            "data.py",
            "path, label = self.items[index]",
            "if torch.utils.data.get_worker_info() is not None:\n    import os\n\n    os.kill(os.getpid(), 9)",
        ),
    ),
    "data-path": lambda p: shutil.rmtree(p / "data" / "mini" / "val"),
    "class-count": lambda p: _set(p, "model.num_classes", 7),
    "nan-loss": lambda p: (
        _set(p, "train.lr", 0.1),
        _insert(
            p, "train.py", "loss = task.loss(", "loss = loss * (float('nan') if cfg.train.lr > 0.05 else 1.0)"
        ),
    ),
    "shape": lambda p: _set(p, "data.image_size", 1),
}


def _commit_break(project: Path, rule: str) -> str:
    repo = git.Repo(project)
    repo.git.add(A=True)
    repo.index.commit(f"seeded bug: {rule}")
    return repo.head.commit.hexsha


def _one_epoch(run_dir: Path) -> Any:
    st = json.loads((run_dir / "create_state.json").read_text())
    ctx = RunContext.open(run_dir, run_dir, progress=False, options=st["config"]["options"])
    return agent_for("coder", ctx).one_epoch("target")


def test_the_seeded_suite_covers_every_rule() -> None:
    from specloop.skills.target.fixrules import shipped_rules

    assert set(BREAKS) == {r.id for r in shipped_rules()}, "add a seeded bug for the new rule"


@pytest.mark.slow
@pytest.mark.parametrize("rule", list(BREAKS))
def test_seeded_bug_is_fixed_offline(rule: str, digits_run: Path, tmp_path: Path) -> None:
    run_dir = _copy(digits_run, tmp_path / "run")
    project = run_dir / PROJECT
    BREAKS[rule](project)
    broken = _commit_break(project, rule)
    result = _one_epoch(run_dir)
    report = json.loads((project / "bugfix_report.json").read_text())
    assert report["closed"], report
    assert report["issues"][0]["rule"] == rule and report["issues"][0]["status"] == "fixed"
    first = report["attempts"][0]
    assert first["rule"] == rule and first["result"] == "passed"
    if rule == "data-path":  # data/ is git-ignored: the fix rebuilds it, the config already points there
        assert "rebuilt data/mini" in first["action"]
    else:
        assert first["commit"] and first["diff"].startswith("diff --git")
        assert git.Repo(project).commit(first["commit"]).parents[0].hexsha == broken
    assert [t["ok"] for t in report["final_tests"]] == [True, True]  # infer and the project's own tests
    assert (project / "outputs" / "one_epoch" / "best.pt").is_file()
    assert result.record["attempts"] == len(report["attempts"])
    assert "```diff" in (project / "bugfix_report.md").read_text() or rule == "data-path"


@pytest.mark.slow
def test_unknown_bug_stops_with_a_report(digits_run: Path, tmp_path: Path, constraint: Path) -> None:
    run_dir = _copy(digits_run, tmp_path / "run")
    project = run_dir / PROJECT
    _insert(
        project, "train.py", "model = build_model(cfg)", "raise KeyError('seeded: no rule knows this one')"
    )
    _commit_break(project, "unknown")
    with pytest.raises(HardStop, match="no fix rule matches"):
        _one_epoch(run_dir)
    report = json.loads((project / "bugfix_report.json").read_text())
    assert not report["closed"] and report["open_critical"] == 1 and report["attempts"] == []
    assert "KeyError" in report["issues"][0]["signature"]
    # the same through the command: a new target run beside the project stops with exit 2
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "specloop",
            "target",
            "run",
            str(project),
            "--yes",
            "--constraint",
            str(constraint),
        ],
        capture_output=True,
        text=True,
        env=create_env(),
        stdin=subprocess.DEVNULL,
        timeout=TIMEOUT,
        check=False,
    )
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "bugfix-open" in proc.stderr and "no fix rule matches" in proc.stderr
    (target_run,) = (run_dir / f"{PROJECT}_target").glob("run_*")
    log = loop_log.read_entries(target_run / "loop_log.jsonl")
    assert [e["stage"] for e in log][-4:] == ["inherit_rules", "env_check", "mini_dataset", "one_epoch"]
    assert log[-1]["status"] == "error" and "reused" in log[-3]["summary"]
