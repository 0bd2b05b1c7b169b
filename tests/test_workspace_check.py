"""`specloop workspace check`: every contract rule, each fed an input that breaks it."""

from __future__ import annotations

import hashlib
import json
import shutil
from functools import partial
from pathlib import Path

import pytest
from cli_helpers import specloop_cli
from PIL import Image

from specloop.skills.aoi.check import check_workspace
from specloop.skills.aoi.layout import Workspace
from specloop.skills.aoi.schema import read_csv, write_csv
from specloop.skills.aoi.spec import load_spec


@pytest.fixture
def ws(tiny_workspace: Path, tmp_path: Path) -> Workspace:
    """A private copy of the tiny synthetic workspace that a test may break."""
    root = tmp_path / "ws"
    shutil.copytree(tiny_workspace, root, symlinks=True)
    return Workspace(root)


def _errors(ws: Workspace, rule: str) -> list:
    report = check_workspace(ws.root)
    assert not report.ok
    found = [p for p in report.problems if p.rule == rule and p.severity == "error"]
    assert found, f"no {rule} error in {[p.sentence() for p in report.problems]}"
    return found


def _edit(ws: Workspace, split: str, row: int, **values: str) -> str:
    csv = ws.split(split).csv
    df = read_csv(csv)
    for col, value in values.items():
        df.loc[row, col] = value
    write_csv(df, csv)
    return ws.rel(csv)


def _row_images(ws: Workspace, split: str, row: int, side: str = "input_path") -> list[Path]:
    spec = load_spec(ws.spec)
    df = read_csv(ws.split(split).csv)
    base = ws.split(split).images_dir / df.loc[row, side]
    return [
        base / f"{df.loc[row, 'object_name']}_{light}{spec.dataset.classify.image_ext}"
        for light in spec.lights()
    ]


def test_synthetic_workspace_is_clean(tiny_workspace: Path) -> None:
    report = check_workspace(tiny_workspace)
    assert report.ok, [p.sentence() for p in report.problems]
    assert [p for p in report.problems if p.severity == "warning"] == []
    assert {"training", "validation", "kpi", "holdout", "mining_pool"} <= set(report.splits)
    assert report.synthetic_pairs > 0


def test_missing_mandatory_column_names_file_and_columns(ws: Workspace) -> None:
    csv = ws.split("training").csv
    read_csv(csv).drop(columns=["label"]).to_csv(csv, index=False)
    (err,) = _errors(ws, "csv-schema")
    assert err.file == "train/base/training_set.csv" and "label" in err.message


def test_extra_columns_are_kept_and_accepted(ws: Workspace) -> None:
    csv = ws.split("training").csv
    df = read_csv(csv)
    df["operator_note"] = "ok"
    write_csv(df, csv)
    assert check_workspace(ws.root).ok
    assert list(read_csv(csv).columns)[-1] == "operator_note"


def test_lowercase_pass_is_an_error_with_line(ws: Workspace) -> None:
    file = _edit(ws, "kpi", 3, label="pass")
    (err,) = _errors(ws, "label-pass-case")
    assert (err.file, err.line) == (file, 5)
    assert "'pass'" in err.message and "exactly 'PASS'" in err.message


def test_empty_mandatory_value(ws: Workspace) -> None:
    file = _edit(ws, "validation", 0, object_name="")
    (err,) = _errors(ws, "empty-value")
    assert (err.file, err.line) == (file, 2) and "object_name" in err.message


@pytest.mark.parametrize("bad", ["/etc/golden", "a/../../outside", "../x"])
def test_paths_escaping_the_workspace_are_rejected(ws: Workspace, bad: str) -> None:
    file = _edit(ws, "training", 1, golden_path=bad)
    errs = _errors(ws, "path-outside-workspace")
    assert any(e.file == file and e.line == 3 and "golden_path" in e.message for e in errs)


def test_symlinked_image_leaving_the_workspace_is_rejected(ws: Workspace, tmp_path: Path) -> None:
    target = _row_images(ws, "training", 2)[0]
    outside = tmp_path / "outside.png"
    shutil.copy(target, outside)
    target.unlink()
    target.symlink_to(outside)
    (err,) = _errors(ws, "path-outside-workspace")
    assert err.line == 4 and "outside the workspace" in err.message


def test_missing_image_names_the_file_and_line(ws: Workspace) -> None:
    missing = _row_images(ws, "holdout", 4)[1]
    missing.unlink()
    errs = _errors(ws, "image-unreadable")
    assert any(e.file == "kpi/holdout_set.csv" and e.line == 6 and missing.name in e.message for e in errs)


def test_corrupt_image_does_not_decode(ws: Workspace) -> None:
    _row_images(ws, "training", 0)[0].write_bytes(b"not a png at all")
    errs = _errors(ws, "image-unreadable")
    assert any(e.line == 2 and "does not decode" in e.message for e in errs)


def test_implausible_image_size(ws: Workspace) -> None:
    for f in _row_images(ws, "training", 0) + _row_images(ws, "training", 0, "golden_path"):
        Image.new("RGB", (4, 4)).save(f)
    errs = _errors(ws, "image-unreadable")
    assert any(e.line == 2 and "implausible size 4x4" in e.message for e in errs)


def test_golden_and_test_of_a_row_must_match_in_size(ws: Workspace) -> None:
    f = _row_images(ws, "kpi", 1)[0]
    with Image.open(f) as img:
        img.resize((img.width + 6, img.height)).save(f)
    (err,) = _errors(ws, "image-size-mismatch")
    assert (err.file, err.line) == ("kpi/testing_set.csv", 3)


def test_leakage_between_training_and_kpi(ws: Workspace) -> None:
    kpi = read_csv(ws.split("kpi").csv)
    train_csv = ws.split("training").csv
    train = read_csv(train_csv)
    import pandas as pd

    write_csv(pd.concat([train, kpi.iloc[[2]]], ignore_index=True), train_csv)
    errs = _errors(ws, "leakage")
    assert any(e.file == "kpi/testing_set.csv" and e.line == 4 and "training" in e.message for e in errs)


def test_unpaired_synthetic_image(ws: Workspace) -> None:
    victim = sorted(ws.original_dir.iterdir())[0]
    victim.unlink()
    (err,) = _errors(ws, "synthetic-unpaired")
    assert err.file == f"augmentation/anomalygen/reconstructed_image/{victim.name}"


def test_kpi_defect_type_absent_from_mining_pool_is_a_warning(ws: Workspace) -> None:
    pool_csv = ws.split("mining_pool").csv
    pool = read_csv(pool_csv)
    kpi_types = sorted(set(read_csv(ws.split("kpi").csv)["label"]) - {"PASS"})
    write_csv(pool[pool["label"] != kpi_types[0]], pool_csv)
    report = check_workspace(ws.root)
    assert report.ok
    (warn,) = [p for p in report.problems if p.rule == "mining-coverage"]
    assert warn.severity == "warning" and repr(kpi_types[0]) in warn.message


def test_spec_errors_surface_in_the_check(ws: Workspace) -> None:
    text = ws.spec.read_text()
    ws.spec.write_text(text.replace("num_epochs:", "num_epochs: not-a-number\n  old_num_epochs:", 1))
    errs = _errors(ws, "spec-type")
    assert errs[0].file == "specs/baseline_spec.yaml" and "train.num_epochs" in errs[0].message


def _tree_digest(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        h.update(str(p.relative_to(root)).encode())
        if p.is_file():
            h.update(p.read_bytes())
    return h.hexdigest()


_cli = partial(specloop_cli, timeout=600)


def test_cli_clean_workspace_exits_0_and_changes_nothing(ws: Workspace) -> None:
    before = _tree_digest(ws.root)
    proc = _cli("workspace", "check", str(ws.root))
    assert proc.returncode == 0, proc.stderr
    assert "workspace OK" in proc.stdout
    assert _tree_digest(ws.root) == before


def test_cli_bad_workspace_exits_2_with_sentences_and_json(ws: Workspace) -> None:
    _edit(ws, "kpi", 0, label="pass")
    proc = _cli("workspace", "check", str(ws.root))
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "kpi/testing_set.csv, line 2: label 'pass' must be exactly 'PASS'" in proc.stderr
    assert "[label-pass-case]" in proc.stderr
    proc = _cli("workspace", "check", str(ws.root), "--json")
    assert proc.returncode == 2
    report = json.loads(proc.stdout)
    assert report["ok"] is False
    assert any(p["rule"] == "label-pass-case" and p["line"] == 2 for p in report["problems"])


def test_cli_missing_workspace_is_one_sentence(tmp_path: Path) -> None:
    proc = _cli("workspace", "check", str(tmp_path / "nope"))
    assert proc.returncode == 2
    assert "workspace folder not found" in proc.stderr and "Traceback" not in proc.stderr
