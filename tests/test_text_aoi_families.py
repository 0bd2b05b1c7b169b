"""What is specific to the text (English and Chinese) and AOI change-detection families.

Generated modules are loaded from rendered projects (they never import specloop); scripts run as
subprocesses from the project root, as a user would run them.
"""

from __future__ import annotations

import csv
import hashlib
import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import torch

from specloop.families import get_family
from specloop.families.aoi_change_detection import DEFECT_TYPES
from specloop.families.text_classification import LANGUAGES
from specloop.skills.changenet.kpi import far_at_full_recall as specloop_far
from specloop.skills.scaffold.codegen import project_answers, render_project

PY = sys.executable
CJK = re.compile(r"[\u4e00-\u9fff]")


def _render(root: Path, family: str, name: str, **extra: str) -> Path:
    fam = get_family(family)
    render_project(project_answers(fam, fam.candidates[0], project_name=name, **extra), root / name)
    return root / name


def _module(project: Path, name: str) -> ModuleType:
    """A generated module that imports nothing from its own package (data.py, task.py)."""
    (package,) = [p for p in (project / "src").iterdir() if p.is_dir()]
    spec = importlib.util.spec_from_file_location(f"{package.name}_{name}", package / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run(argv: list[str], cwd: Path, ok: bool = True) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    proc = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=600, env=env, check=False)
    if ok:
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return proc


def _digest(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="session")
def projects(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("families")
    return {
        "zh": _render(
            root, "text_classification", "zh-reviews", requirement="帮我做一个酒店评论情感分类的小模型"
        ),
        "en": _render(root, "text_classification", "en-reviews"),
        "aoi": _render(root, "aoi_change_detection", "pcb-check"),
    }


# --- text: Chinese tokenisation, vocabulary, checkpoint -------------------------------------------


def test_chinese_is_split_into_characters_and_english_into_words(projects: dict[str, Path]) -> None:
    data = _module(projects["zh"], "data")
    assert data.tokenize("这家酒店的服务很好。", "auto") == [
        "这",
        "家",
        "酒",
        "店",
        "的",
        "服",
        "务",
        "很",
        "好",
        "。",
    ]
    assert data.tokenize("这个App很好用", "auto") == ["这", "个", "app", "很", "好", "用"]
    assert data.tokenize("The room wasn't clean!", "auto") == ["the", "room", "wasn't", "clean"]
    assert data.tokenize("好 评", "word") == []  # word mode has no CJK tokens
    with pytest.raises(ValueError, match=r"data\.tokenizer"):
        data.tokenize("x", "bpe")


def test_chinese_vocabulary_round_trip(projects: dict[str, Path], tmp_path: Path) -> None:
    data = _module(projects["zh"], "data")
    manifest = data.make_mini(tmp_path / "mini", seed=0, per_class=6)
    assert manifest["language"] == "zh"
    rows = data.read_jsonl(tmp_path / "mini" / "train.jsonl")
    assert rows and all(CJK.search(r["text"]) for r in rows)
    vocab = data.build_vocab([r["text"] for r in rows], "auto", max_size=5000, min_freq=1)
    assert vocab[:2] == ["<pad>", "<unk>"] and len(set(vocab)) == len(vocab)
    index = {t: i for i, t in enumerate(vocab)}
    text = rows[0]["text"]
    ids = data.encode(text, index, "auto", max_len=64)
    assert len(ids) == 64
    assert [vocab[i] for i in ids if i] == data.tokenize(text, "auto")  # decodes to the same characters
    unseen = data.encode("龘", index, "auto", max_len=3)
    assert unseen == [1, 0, 0]  # unknown, then padding
    capped = data.build_vocab([r["text"] for r in rows], "auto", max_size=10, min_freq=1)
    assert len(capped) == 10


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_language_answer_overrides_the_requirement_text(language: str, tmp_path: Path) -> None:
    other = "reviews" if language == "zh" else "中文评论分类"
    project = _render(
        tmp_path, "text_classification", f"asked-{language}", language=language, requirement=other
    )
    assert language == _module(project, "data").LANGUAGE
    name = {"zh": "Chinese", "en": "English"}[language]
    assert f"The mini set is {name}" in (project / "README.md").read_text(encoding="utf-8")


def test_english_project_writes_english_texts(projects: dict[str, Path], tmp_path: Path) -> None:
    data = _module(projects["en"], "data")
    assert data.make_mini(tmp_path / "mini", seed=0, per_class=4)["language"] == "en"
    texts = [r["text"] for r in data.read_jsonl(tmp_path / "mini" / "val.jsonl")]
    assert texts and all(t.isascii() for t in texts)


def test_chinese_checkpoint_carries_its_vocabulary_and_predicts(projects: dict[str, Path]) -> None:
    project = projects["zh"]
    _run([PY, "scripts/make_mini.py", "--out", "data/mini", "--per-class", "8"], project)
    out = json.loads(_run([PY, "scripts/train.py", "--data", "data/mini", "--fast-dev-run"], project).stdout)
    state = torch.load(project / out["checkpoint"], map_location="cpu", weights_only=True)
    vocab = state["info"]["vocab"]
    assert state["info"]["language"] == "zh"
    assert sum(bool(CJK.fullmatch(t)) for t in vocab) > 20  # characters of the training texts
    assert all(len(t) == 1 or t.isascii() or t.startswith("<") for t in vocab)
    (project / "texts.txt").write_text("这家酒店的服务非常好。\n电影太糟糕，不推荐。\n", encoding="utf-8")
    argv = [PY, "scripts/infer.py", "--checkpoint", out["checkpoint"], "--input", "texts.txt"]
    predictions = json.loads(_run(argv, project).stdout)["predictions"]
    assert [p["input"] for p in predictions] == ["texts.txt:1", "texts.txt:2"]
    assert all(p["label"] in ("negative", "positive") for p in predictions)


def test_a_bare_string_is_not_a_text_input(projects: dict[str, Path]) -> None:
    data = _module(projects["en"], "data")
    info = {"vocab": ["<pad>", "<unk>", "good"], "tokenizer": "auto"}
    cfg = type("Cfg", (), {"data": type("D", (), {"max_len": 4})})()
    assert data.to_batch([{"text": "good movie"}], cfg, info).tolist() == [[2, 1, 0, 0]]
    with pytest.raises(ValueError, match="input 0"):
        data.to_batch(["good movie"], cfg, info)


# --- AOI: the KPI, the CSV contract, sampling a DEFT workspace ------------------------------------


def test_far_at_full_recall_by_hand(projects: dict[str, Path]) -> None:
    task = _module(projects["aoi"], "task")
    defects = [0.9, 0.6, 0.7]
    goods = [0.1, 0.6, 0.65, 0.3, 0.8]
    scores = np.array(defects + goods)
    is_defect = np.array([True] * 3 + [False] * 5)
    # threshold = lowest defect score 0.6; goods at or above it: 0.6 (a tie counts), 0.65, 0.8 → 3 of 5
    assert task.far_at_full_recall(scores, is_defect) == (pytest.approx(0.6), 0.6)
    assert task.far_at_full_recall(np.array([0.2, 0.3]), np.array([False, False])) == (0.0, None)
    assert task.far_at_full_recall(np.array([0.2, 0.3]), np.array([True, True])) == (0.0, 0.2)
    # each defect against the 5 goods: 0.9 beats 5; 0.6 beats 0.1, 0.3 and ties 0.6 (2.5); 0.7 beats 4
    assert task.auroc(scores, is_defect) == pytest.approx((5 + 2.5 + 4) / 15)


def test_the_project_kpi_agrees_with_specloops(projects: dict[str, Path]) -> None:
    task = _module(projects["aoi"], "task")
    rng = np.random.default_rng(0)
    for _ in range(20):
        scores = rng.integers(0, 10, 30) / 10  # ties on purpose
        is_defect = rng.random(30) < 0.3
        ours, threshold = task.far_at_full_recall(scores, is_defect)
        theirs, their_threshold = specloop_far(scores, is_defect)
        assert ours == pytest.approx(theirs)
        assert threshold == (None if not is_defect.any() else their_threshold)


def test_drawn_mini_set_is_a_changenet_csv(projects: dict[str, Path], tmp_path: Path) -> None:
    data = _module(projects["aoi"], "data")
    manifest = data.make_mini(tmp_path / "mini", seed=1, per_class=4)
    assert data.DEFECTS == DEFECT_TYPES  # the declaration says what the template draws
    assert manifest["counts"]["val"] == {"PASS": 1, "bridge": 1, "missing": 1, "shift": 1}
    with (tmp_path / "mini" / "train.csv").open(newline="") as fh:
        reader = csv.DictReader(fh)
        rows = list(reader)
    assert tuple(reader.fieldnames) == data.COLUMNS and len(data.COLUMNS) == 14
    for row in rows:
        for side in ("input_path", "golden_path"):
            for light in manifest["lights"]:
                assert (
                    tmp_path / "mini" / "images" / row[side] / f"{row['object_name']}_{light}.png"
                ).is_file()
    assert {r["mpass_mfail"] for r in rows if r["label"] == "PASS"} == {"MPASS"}


def test_lowercase_pass_is_an_input_error(projects: dict[str, Path], tmp_path: Path) -> None:
    data = _module(projects["aoi"], "data")
    path = tmp_path / "bad.csv"
    path.write_text(
        "input_path,golden_path,label,object_name\ntest/a,golden/a,PASS,o1\ntest/a,golden/a,pass,o2\n"
    )
    with pytest.raises(ValueError, match=r"bad.csv:3: label 'pass' must be exactly PASS"):
        data.read_rows(path)
    path.write_text("input_path,golden_path,label,object_name\n../up,golden/a,PASS,o1\n")
    with pytest.raises(ValueError, match=r"bad.csv:2: path '../up' must be relative"):
        data.read_rows(path)


def test_source_workspace_is_sampled_by_label_and_left_untouched(
    projects: dict[str, Path], tiny_workspace: Path
) -> None:
    project = projects["aoi"]
    before = _digest(tiny_workspace)
    argv = [
        PY,
        "scripts/make_mini.py",
        "--source",
        str(tiny_workspace),
        "--out",
        "data/ws",
        "--per-class",
        "3",
    ]
    manifest = json.loads(_run(argv, project).stdout)
    assert _digest(tiny_workspace) == before
    assert manifest["lights"] == ["SolderLight", "UniformLight"]

    with (tiny_workspace / "train/base/training_set.csv").open(newline="") as fh:
        source = list(csv.DictReader(fh))
    available = {label: sum(r["label"] == label for r in source) for label in {r["label"] for r in source}}
    assert manifest["counts"]["train"] == {label: min(3, n) for label, n in sorted(available.items())}
    with (project / "data/ws/train.csv").open(newline="") as fh:
        sampled = list(csv.DictReader(fh))
    keys = {(r["input_path"], r["object_name"]) for r in source}
    assert all((r["input_path"], r["object_name"]) in keys for r in sampled)
    assert all(r["boardname"] for r in sampled)  # optional columns kept as they came

    dry = _run([PY, "scripts/train.py", "--data", "data/ws", "--dry-run"], project)
    result = json.loads(dry.stdout.splitlines()[-1])
    assert result["input_shape"][1:] == [2, 3, 2 * 48, 48] and result["output_shape"][1] == 2


def test_a_source_that_is_no_workspace_is_one_line(projects: dict[str, Path], tmp_path: Path) -> None:
    argv = [PY, "scripts/make_mini.py", "--source", str(tmp_path), "--out", "data/none"]
    proc = _run(argv, projects["aoi"], ok=False)
    assert proc.returncode == 2
    assert "--source must be a DEFT workspace" in proc.stderr and "Traceback" not in proc.stderr
    assert not (projects["aoi"] / "data" / "none").exists()
