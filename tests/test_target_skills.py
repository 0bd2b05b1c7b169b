"""Part B's deterministic tools, alone: the fix-rule table and error signatures, the fixes on a small
project, the rules record, the guidance's numbers against tech.json, notebooks, reports."""

from __future__ import annotations

import datetime as dt
import json
import math
from pathlib import Path

import pytest

from specloop.errors import SpecloopError
from specloop.skills.contracts import CHECK_KINDS, CheckEnv
from specloop.skills.target.bugfix import Attempt, BugfixReport, Issue
from specloop.skills.target.env import pip_failure
from specloop.skills.target.fixes import FIXES, FixContext, FixNotApplicable, apply_fix, read_config
from specloop.skills.target.fixrules import match, parse_rules, shipped_rules, signature_of
from specloop.skills.target.guidance import disagreements, numbers, read_numbers, render_guidance
from specloop.skills.target.notebook import errors, image_outputs
from specloop.skills.target.rules import key_rules, read_org_rules, render_inherited, render_local

RULE_IDS = {
    "missing-module", "cuda-absent", "out-of-memory", "worker-crash",
    "data-path", "class-count", "nan-loss", "shape",
}  # fmt: skip

# (what a failed run printed, exit code) → the rule that must match
ERRORS = [
    ("Traceback (most recent call last):\nModuleNotFoundError: No module named 'tqdm'", 1, "missing-module"),
    ("train.py: RuntimeError: device 'cuda' was asked for but torch sees no CUDA device", 2, "cuda-absent"),
    ("AssertionError: Torch not compiled with CUDA enabled", 1, "cuda-absent"),
    ("torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB", 1, "out-of-memory"),
    ("train.py: RuntimeError: DefaultCPUAllocator: can't allocate memory: you tried 8589934592 bytes", 2, "out-of-memory"),
    ("train.py: RuntimeError: DataLoader worker (pid 4242) is killed by signal: Killed. ", 2, "worker-crash"),
    ("train.py: FileNotFoundError: data/mini has no train/ and val/ folders; build it", 2, "data-path"),
    ("train.py: ValueError: data/mini/train has 10 class folders but model.num_classes is 5", 2, "class-count"),
    ("IndexError: Target 7 is out of bounds.", 1, "class-count"),
    ('{"train_loss": NaN, "epoch": 1}', 0, "nan-loss"),
    ("train.py: RuntimeError: mat1 and mat2 shapes cannot be multiplied (32x128 and 512x10)", 2, "shape"),
    ("RuntimeError: Given input size: (32x1x1). Calculated output size: (32x0x0). Output size is too small", 1, "shape"),
]  # fmt: skip


def test_the_shipped_table_has_every_rule_and_each_names_a_fix() -> None:
    rules = shipped_rules()
    assert {r.id for r in rules} == RULE_IDS
    assert all(r.fix in FIXES for r in rules)
    assert {r.severity for r in rules} <= {"critical", "major"}


@pytest.mark.parametrize(("output", "code", "rule"), ERRORS)
def test_signature_finds_the_rule(output: str, code: int, rule: str, tmp_path: Path) -> None:
    sig = signature_of(output, tmp_path, exit_code=code)
    assert sig is not None
    found = match(list(shipped_rules()), sig)
    assert found is not None and found.id == rule, sig


def test_signature_normalises_and_locates_inside_the_project(tmp_path: Path) -> None:
    src = tmp_path / "src" / "pkg"
    src.mkdir(parents=True)
    out = (
        "Traceback (most recent call last):\n"
        '  File "/usr/lib/python3.11/runpy.py", line 198, in _run_module_as_main\n'
        f'  File "{src / "train.py"}", line 42, in train\n'
        "    x = model(inputs)\n"
        "RuntimeError: size mismatch, m1: [32 x 128] at 0x7ffd1234\n"
    )
    a = signature_of(out, tmp_path, exit_code=1)
    b = signature_of(
        out.replace("32 x 128", "16 x 64").replace("0x7ffd1234", "0xdead"), tmp_path, exit_code=1
    )
    assert a is not None and b is not None
    assert a.where == "src/pkg/train.py:42"
    assert a.key == b.key and "ADDR" in a.message
    assert signature_of('{"train_loss": 0.5}', tmp_path, exit_code=0) is None
    unknown = signature_of("something odd happened", tmp_path, exit_code=3)
    assert unknown is not None and match(list(shipped_rules()), unknown) is None


def test_a_malformed_table_names_file_line_and_rule() -> None:
    text = "# x\n\n```yaml fix-rules\n- id: a\n  error: '('\n  looks_like: x\n  fix: device_cpu\n  does: y\n  severity: critical\n```\n"
    with pytest.raises(SpecloopError, match=r"D.md:4: rule 1 \(error\)"):
        parse_rules(text, "D.md")
    with pytest.raises(SpecloopError, match="unknown fix 'reboot'"):
        parse_rules(text.replace("'('", "x").replace("device_cpu", "reboot"), "D.md")
    with pytest.raises(SpecloopError, match="no ```yaml fix-rules``` block"):
        parse_rules("# nothing", "D.md")


@pytest.fixture
def small_project(tmp_path: Path) -> FixContext:
    root = tmp_path / "proj"
    (root / "configs").mkdir(parents=True)
    (root / "configs" / "default.yaml").write_text(
        "# header kept\ndata:\n  image_size: 3\n  root: elsewhere\nmodel:\n  num_classes: 5\n"
        "train:\n  batch_size: 32\n  device: cuda\n  lr: 0.01\n  num_workers: 4\n"
    )
    (root / ".specloop-answers.yml").write_text("config:\n  data:\n    image_size: 16\n")
    for split in ("train", "val"):
        for c in "abc":
            (root / "data" / "mini" / split / c).mkdir(parents=True)
    (root / "data" / "mini" / "manifest.json").write_text(json.dumps({"image_size": [8, 8]}))
    src = root / "src" / "pkg"
    src.mkdir(parents=True)
    (src / "train.py").write_text(
        "def step(net, loss, optimizer):\n    net = net\n    loss.backward()\n    optimizer.step()\n"
    )
    return FixContext(root, Path("/nonexistent/python"), ("scripts/make_mini.py",))


def test_config_fixes_change_exactly_their_key(small_project: FixContext) -> None:
    ctx = small_project
    sig = signature_of("RuntimeError: x", ctx.project, exit_code=1)
    assert sig is not None
    assert apply_fix("device_cpu", ctx, sig) == "configs/default.yaml: train.device 'cuda' → 'cpu'"
    apply_fix("halve_batch", ctx, sig)
    apply_fix("workers_zero", ctx, sig)
    apply_fix("num_classes_from_data", ctx, sig)
    apply_fix("image_size_from_data", ctx, sig)
    apply_fix("data_path", ctx, sig)  # data/mini is all there: only the config changes
    cfg = read_config(ctx)
    assert cfg["train"] == {"batch_size": 16, "device": "cpu", "lr": 0.01, "num_workers": 0}
    assert cfg["model"]["num_classes"] == 3 and cfg["data"] == {"image_size": 16, "root": "data/mini"}
    assert (ctx.project / "configs" / "default.yaml").read_text().startswith("# header kept\n")
    with pytest.raises(FixNotApplicable):
        apply_fix("device_cpu", ctx, sig)


def test_nan_fix_lowers_lr_and_clips_once(small_project: FixContext) -> None:
    ctx = small_project
    sig = signature_of('{"train_loss": NaN}', ctx.project, exit_code=0)
    assert sig is not None
    apply_fix("lower_lr_clip", ctx, sig)
    apply_fix("lower_lr_clip", ctx, sig)
    assert math.isclose(read_config(ctx)["train"]["lr"], 0.0001)
    code = (ctx.project / "src" / "pkg" / "train.py").read_text()
    assert code.count("clip_grad_norm_(net.parameters(), 1.0)") == 1
    assert code.index("loss.backward()") < code.index("clip_grad_norm_") < code.index("optimizer.step()")
    compile(code, "train.py", "exec")


def test_rules_record_inherited_and_local(tmp_path: Path) -> None:
    base = "# Rules\n\n## Code\n- Small modules. More text\n  continued here.\n- Typed functions.\n"
    assert key_rules(base) == ["Code: Small modules.", "Code: Typed functions."]
    org = tmp_path / "org.md"
    org.write_text("## Security\n- Never log customer IDs.\n- Typed functions.\n")
    text, changes = render_local(base, read_org_rules(org), "org.md", dt.date(2026, 1, 2))
    assert [c.rule for c in changes] == ["Never log customer IDs."]
    assert "| 1 | added | Never log customer IDs. | org.md | 2026-01-02 |" in text
    check = CHECK_KINDS["rules_recorded"](id="r", check="rules_recorded", name="n", dir=".")
    env = CheckEnv(tmp_path, {})
    assert not check.evaluate(env)[0]
    (tmp_path / "CLAUDE.local.md").write_text(text)
    assert check.evaluate(env)[0]
    (tmp_path / "CLAUDE.local.md").unlink()
    (tmp_path / "CLAUDE.inherited.md").write_text(render_inherited(base, dt.date(2026, 1, 2)))
    assert check.evaluate(env) == (
        True,
        "CLAUDE.inherited.md: 1 change-log row(s), each with rule, source and date",
    )
    org.write_text("just prose\n")
    with pytest.raises(SpecloopError, match=r"org\.md:1"):
        read_org_rules(org)


TECH = {
    "chosen": "small_cnn",
    "measurements": {"small_cnn": {"params": 19658, "batch_size": 32, "train_rss_delta_mb": 269.5}},
    "estimates": {
        "small_cnn": {
            "gpu_memory_mb": {"value": 769.6},
            "cpu_train_seconds": {"value": 243.1},
            "gpu_train_seconds": {"value": 12.2},
        }
    },
}


def test_guidance_numbers_follow_tech_json_and_the_check_catches_drift(tmp_path: Path) -> None:
    n = numbers(TECH, base_lr=0.001, train_samples=60000)
    b = n["batches"]
    assert [b[g]["batch_size"] for g in ("24", "48", "80")] == sorted(
        b[g]["batch_size"] for g in ("24", "48", "80")
    )
    for gb in ("24", "48", "80"):
        assert b[gb]["memory_mb"] <= int(gb) * 1024 * 0.8
        assert math.isclose(b[gb]["lr"], 0.001 * b[gb]["batch_size"] / 32, rel_tol=1e-6)
    static_plus_context = 19658 * 16 / 2**20 + 500
    assert abs(static_plus_context + n["per_sample_mb"] * 32 - 769.6) < 1.0  # agrees with tech.json
    text = render_guidance(
        "p",
        n,
        one_epoch={"epoch_seconds": 1.5},
        ddp_check={"ok": True, "exit_code": 0, "seconds": 9},
        metric="accuracy",
    )
    path = tmp_path / "full_train_guidance.md"
    path.write_text(text)
    assert read_numbers(path) == n
    assert "torchrun --standalone --nproc_per_node 2" in text and "--nnodes 2" in text
    (tmp_path / "tech.json").write_text(json.dumps(TECH))
    check = CHECK_KINDS["guidance_agrees"](
        id="g", check="guidance_agrees", name="n", path=path.name, tech="tech.json"
    )
    assert check.evaluate(CheckEnv(tmp_path, {})) == (True, "every number agrees with tech.json")
    drifted = json.loads(json.dumps(TECH))
    drifted["measurements"]["small_cnn"]["train_rss_delta_mb"] = 2000.0
    assert disagreements(n, drifted)
    (tmp_path / "tech.json").write_text(json.dumps(drifted))
    ok, detail = check.evaluate(CheckEnv(tmp_path, {}))
    assert not ok and "tech.json gives" in detail


def test_notebook_outputs_are_counted(tmp_path: Path) -> None:
    nb = {
        "cells": [
            {"cell_type": "markdown", "source": "x"},
            {
                "cell_type": "code",
                "outputs": [{"output_type": "display_data", "data": {"image/png": "iVBOR"}}],
            },
            {
                "cell_type": "code",
                "outputs": [{"output_type": "error", "ename": "KeyError", "evalue": "'x'"}],
            },
        ]
    }
    path = tmp_path / "n.ipynb"
    path.write_text(json.dumps(nb))
    assert image_outputs(path) == 1 and errors(path) == ["KeyError: 'x'"]
    check = CHECK_KINDS["notebook_images"](id="n", check="notebook_images", name="n", path="n.ipynb")
    assert check.evaluate(CheckEnv(tmp_path, {}))[0] is False  # an error output fails it


def test_pip_failure_names_the_package() -> None:
    out = "Collecting nosuchpkg\nERROR: Could not find a version that satisfies the requirement nosuchpkg>=9 (from -r r.txt)\n"
    package, message = pip_failure(out)
    assert package == "nosuchpkg" and message.startswith("Could not find a version")


def test_bugfix_report_closes_only_with_every_critical_fixed(tmp_path: Path) -> None:
    r = BugfixReport("p", "python scripts/train.py")
    r.issues.append(Issue("RuntimeError: x", "", "cuda-absent", "cpu", "critical", "open"))
    r.attempts.append(Attempt(1, "RuntimeError: x", "cuda-absent", "set cpu", "abc", "-a\n+b\n", "passed"))
    r.run_ok = True
    r.final_tests = [{"name": "t", "command": "c", "exit_code": 0, "seconds": 1.0, "ok": True}]
    assert not r.closed
    r.issues[0].status = "fixed"
    assert r.closed and "```diff" in r.render()
    (tmp_path / "b.json").write_text(json.dumps(r.to_dict()))
    check = CHECK_KINDS["bugfix_closed"](id="b", check="bugfix_closed", name="n", path="b.json")
    assert check.evaluate(CheckEnv(tmp_path, {}))[0]


@pytest.fixture
def patched_repo(tmp_path: Path) -> Path:
    """A small git project with a traceback's worth of files."""
    import git

    project = tmp_path / "proj"
    (project / "src").mkdir(parents=True)
    (project / "configs").mkdir()
    (project / "src" / "train.py").write_text("".join(f"line {i}\n" for i in range(1, 21)))
    (project / "configs" / "default.yaml").write_text("train: {lr: 0.1}\n")
    (project / "other.py").write_text("x = 1\n")
    repo = git.Repo.init(project)
    repo.git.add(A=True)
    repo.index.commit("start")
    return project


def _diff(project: Path, path: str, *edits: tuple[str, str]) -> str:
    """A real diff of the edits (old, new), made by git, with the file then restored."""
    import git

    file = project / path
    text = new = file.read_text()
    for old, changed in edits:
        new = new.replace(old, changed)
    file.write_text(new)
    diff = git.Repo(project).git.diff("--", path) + "\n"
    file.write_text(text)
    return diff


def test_a_model_diff_applies_whole_or_is_refused_naming_file_and_hunk(patched_repo: Path) -> None:
    from specloop.skills.target.patch import PatchRejected, apply_diff, diff_of, failure_view

    out = f'Traceback (most recent call last):\n  File "{patched_repo}/src/train.py", line 3, in main\nKeyError: sk-secret-0123456789abcdef'
    view = failure_view(out, patched_repo, frozenset({"sk-secret-0123456789abcdef"}))
    assert list(view.files) == ["src/train.py", "configs/default.yaml"]
    assert "sk-secret" not in view.output and "[REDACTED]" in view.prompt("KeyError: X")
    good = _diff(patched_repo, "src/train.py", ("line 3\n", "line three\n"))
    assert diff_of(f"Here it is:\n```diff\n{good}```\nDone.") == good and diff_of("no diff here") is None
    two = _diff(patched_repo, "src/train.py", ("line 3\n", "line three\n"), ("line 15\n", "line fifteen\n"))
    stale = two.replace(" line 16\n", " line sixteen\n")  # hunk 2's context no longer matches
    with pytest.raises(PatchRejected, match=r"does not apply to src/train.py: hunk 2 \(at line 12\)"):
        apply_diff(patched_repo, stale, list(view.files))
    assert "line 3\n" in (patched_repo / "src" / "train.py").read_text()  # hunk 1 was not applied either
    outside = _diff(patched_repo, "other.py", ("x = 1", "x = 2"))
    with pytest.raises(PatchRejected, match=r"changes other\.py, which is not one of the files it was shown"):
        apply_diff(patched_repo, outside, list(view.files))
    assert apply_diff(patched_repo, good, list(view.files)) == ["src/train.py"]
    assert "line three\n" in (patched_repo / "src" / "train.py").read_text()
