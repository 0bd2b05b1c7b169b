"""The synthetic workspace generator: determinism, coverage, leakage, file rule, spec, safety."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from specloop.errors import SpecloopError
from specloop.skills.aoi.images import image_files
from specloop.skills.aoi.layout import Workspace
from specloop.skills.aoi.schema import COLUMNS, leakage_keys, read_csv
from specloop.skills.aoi.spec import load_spec, load_spec_with_problems
from specloop.skills.aoi.synth import SIZES, contact_sheet, synthesize_workspace
from specloop.skills.aoi.synth.boards import BOARD_NAMES
from specloop.skills.aoi.synth.defects import DEFECT_TYPES

LABELLED = ("training", "validation", "kpi", "holdout", "mining_pool")


def _frames(root: Path) -> dict[str, pd.DataFrame]:
    ws = Workspace(root)
    return {name: read_csv(ws.split(name).csv) for name in LABELLED}


def _files(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != "DATASET.md"
    }


def test_same_seed_gives_identical_bytes_another_seed_differs_and_report_counts(
    tiny_workspace: Path, tmp_path: Path
) -> None:
    again = tmp_path / "again"
    synthesize_workspace(again, size="tiny", seed=0, progress=False, workers=2)  # same bytes in parallel
    first, second = _files(tiny_workspace), _files(again)
    assert first.keys() == second.keys()
    assert [k for k in first if first[k] != second[k]] == []

    other = tmp_path / "other"
    other.mkdir()  # an existing empty directory is accepted
    report = synthesize_workspace(other, size="tiny", seed=1, progress=False)
    csv = "train/base/training_set.csv"
    assert (other / csv).read_bytes() != first[csv]
    assert report.root == other and report.size == "tiny" and report.seed == 1
    assert report.seconds > 0 and report.bytes_on_disk > 0
    for name, df in _frames(other).items():
        expected = df.groupby(["label", "boardname"]).size().to_dict()
        got = {(lab, b): n for lab, by_b in report.counts[name].items() for b, n in by_b.items()}
        assert got == expected, name


def test_csvs_have_the_contract_columns_and_labels(tiny_workspace: Path) -> None:
    for name, df in _frames(tiny_workspace).items():
        assert tuple(df.columns) == COLUMNS, name
        assert set(df["label"]) <= {"PASS", *DEFECT_TYPES}, name
        assert (df[list(COLUMNS)] != "").all().all(), f"{name} has empty cells"
        assert set(df["mpass_mfail"]) <= {"MPASS", "MFAIL"}
        assert ((df["label"] == "PASS") == (df["mpass_mfail"] == "MPASS")).all()


def test_base_set_under_represents_what_kpi_and_pool_cover(tiny_workspace: Path) -> None:
    f = _frames(tiny_workspace)
    sizes = SIZES["tiny"]
    for name in LABELLED:
        assert len(f[name]) == sizes.rows(name)
    train = f["training"]
    board_share = train["boardname"].value_counts(normalize=True)
    rare_boards = {"line3_black", "line4_red"}
    assert all(board_share.get(b, 0.0) < 0.1 for b in rare_boards)
    assert {"polarity", "scratch"}.isdisjoint(set(train["label"]) | set(f["validation"]["label"]))
    for name in ("kpi", "holdout", "mining_pool"):
        assert set(f[name]["boardname"]) == set(BOARD_NAMES), name
        assert set(f[name]["label"]) == {"PASS", *DEFECT_TYPES}, name
        for board in rare_boards:  # the rare boards carry defects and passes where the loop looks
            labels = set(f[name].loc[f[name]["boardname"] == board, "label"])
            assert "PASS" in labels and len(labels) > 1, (name, board)
    assert len(f["mining_pool"]) >= 2.5 * len(train)
    pool = f["mining_pool"]
    assert pool["boardname"].isin(rare_boards).mean() > 0.4


def test_no_leakage_and_unique_object_names_by_construction(tiny_workspace: Path) -> None:
    f = _frames(tiny_workspace)
    seen_keys: set[str] = set()
    seen_names: set[str] = set()
    for name in LABELLED:
        keys = set(leakage_keys(f[name]))
        names = set(f[name]["object_name"])
        assert len(names) == len(f[name]), f"duplicate object_name in {name}"
        assert not keys & seen_keys, f"{name} leaks into an earlier split"
        assert not names & seen_names
        seen_keys |= keys
        seen_names |= names


def test_every_row_resolves_to_64px_images_per_light(tiny_workspace: Path) -> None:
    ws = Workspace(tiny_workspace)
    spec = load_spec(ws.spec)
    lights, ext = spec.lights(), spec.dataset.classify.image_ext
    assert lights == ["SolderLight", "UniformLight"] and ext == ".png"
    assert spec.dataset.classify.concat_type == "linear"
    for split in ws.splits():
        df = read_csv(split.csv)
        for row in df.itertuples(index=False):
            for rel in (row.input_path, row.golden_path):
                for path in image_files(split.images_dir, rel, row.object_name, lights, ext):
                    assert path.is_file() and not path.is_symlink(), path
                    with Image.open(path) as img:
                        assert img.size == (64, 64) and img.mode == "RGB", path


def test_lights_look_different(tiny_workspace: Path) -> None:
    ws = Workspace(tiny_workspace)
    row = read_csv(ws.split("kpi").csv).iloc[0]
    files = image_files(
        ws.kpi_images, row.input_path, row.object_name, ["SolderLight", "UniformLight"], ".png"
    )
    solder, uniform = (np.asarray(Image.open(f).convert("L"), dtype=np.float32) for f in files)
    assert np.abs(solder - uniform).mean() > 20


def test_anomalygen_pool_pairs_and_spec_lines(tiny_workspace: Path) -> None:
    ws = Workspace(tiny_workspace)
    ng = sorted(p.name for p in ws.reconstructed_dir.iterdir())
    ok = sorted(p.name for p in ws.original_dir.iterdir())
    assert ng == ok and len(ng) == 2 * SIZES["tiny"].anomalygen
    lines = [json.loads(line) for line in ws.defect_spec.read_text().splitlines()]
    stems = {line["stem"] for line in lines}
    assert {n.rsplit("_", 1)[0] for n in ng} == stems
    for line in lines:
        assert line["defect_type"] in DEFECT_TYPES and line["boardname"] in BOARD_NAMES
        assert line["lights"] == ["SolderLight", "UniformLight"] and line["comp_type"]
    train_types = set(read_csv(ws.split("training").csv)["label"])
    assert {"polarity", "scratch"} <= {line["defect_type"] for line in lines} - train_types


def test_spec_loads_without_errors_or_warnings(tiny_workspace: Path) -> None:
    spec, problems = load_spec_with_problems(Workspace(tiny_workspace).spec)
    assert spec is not None and problems == []
    ds = spec.dataset.classify
    assert ds.train_dataset.csv_path == "train/base/training_set.csv"
    assert ds.test_dataset.images_dir == "kpi/images"
    assert (ds.image_width, ds.image_height) == (64, 64)
    assert spec.model.backbone.type == "resnet18"


def test_data_card_counts_match_the_report(tmp_path: Path, tiny_workspace: Path) -> None:
    card = (tiny_workspace / "DATASET.md").read_text()
    assert "seed: **0**" in card and "size: **tiny**" in card
    for name in ("training", "kpi", "holdout", "mining_pool", "anomalygen"):
        assert f"### {name} —" in card
    assert not (tiny_workspace / "results").exists()


def test_refuses_a_non_empty_target_and_leaves_it_alone(tmp_path: Path) -> None:
    target = tmp_path / "ws"
    target.mkdir()
    (target / "keep.txt").write_text("mine")
    with pytest.raises(SpecloopError, match="not empty"):
        synthesize_workspace(target, size="tiny", progress=False)
    assert [p.name for p in target.iterdir()] == ["keep.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ws"]
    with pytest.raises(SpecloopError, match="size"):
        synthesize_workspace(tmp_path / "new", size="huge", progress=False)


def test_contact_sheet_is_written(tiny_workspace: Path, tmp_path: Path) -> None:
    out = contact_sheet(tiny_workspace, tmp_path / "sheets" / "sheet.png", per_class=2)
    with Image.open(out) as img:
        w, h = img.size
    # rows: PASS + 7 defect types + the synthetic pool; 2 cells of golden|test at 2x
    assert w >= 2 * 256 and h >= 9 * 128
