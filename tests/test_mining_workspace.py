"""Mining on the tiny synthetic workspace: the CLI end to end, and neighbours that make sense."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from specloop.cli import app
from specloop.skills.aoi.images import image_files
from specloop.skills.aoi.layout import Workspace
from specloop.skills.aoi.schema import check_rows, read_csv
from specloop.skills.aoi.spec import load_spec
from specloop.skills.mining import EmbeddingCache, get_embedder, mine


def _weak_kpi(ws: Path, out: Path) -> Path:
    kpi = read_csv(Workspace(ws).split("kpi").csv)
    path = out / "weak.csv"
    out.mkdir(parents=True, exist_ok=True)
    kpi[kpi["label"] != "PASS"].to_csv(path, index=False)
    return path


def test_cli_mines_the_pool_and_reuses_the_cache(tiny_workspace: Path, tmp_path: Path) -> None:
    weak = _weak_kpi(tiny_workspace, tmp_path)
    cache = tmp_path / "cache" / "embeddings.parquet"
    args = ["mine", "--targets", str(weak), "--workspace", str(tiny_workspace), "--embedder", "pixels"]
    args += ["--min-similarity", "0.5", "--cache", str(cache), "--json"]
    runner = CliRunner()
    first = runner.invoke(app, [*args, "--out", str(tmp_path / "a")])
    assert first.exit_code == 0, first.output
    second = runner.invoke(app, [*args, "--out", str(tmp_path / "b")])
    assert second.exit_code == 0, second.output
    s1 = pd.read_csv(tmp_path / "a" / "knn_summary.csv").iloc[0]
    s2 = pd.read_csv(tmp_path / "b" / "knn_summary.csv").iloc[0]
    assert s1["pool_embedded"] > 0 and s2["pool_embedded"] == 0 and s2["targets_embedded"] == 0
    assert s1["kept_count"] == s2["kept_count"] > 0
    assert s1["candidate_count"] == s1["kept_count"] + s1["rejected_count"] + s1["duplicate_count"]

    mined = read_csv(tmp_path / "a" / "mined_rows.csv")
    assert check_rows(mined, "mined_rows.csv") == []
    ws = Workspace(tiny_workspace)
    spec = load_spec(ws.spec)
    lights, ext = spec.lights(), spec.dataset.classify.image_ext
    pool_images = ws.split("mining_pool").images_dir
    for row in mined.itertuples():
        for side in (row.input_path, row.golden_path):
            assert all(f.is_file() for f in image_files(pool_images, side, row.object_name, lights, ext))
    pool_keys = set(read_csv(ws.split("mining_pool").csv)["object_name"])
    assert set(mined["object_name"]) <= pool_keys
    assert not (ws.results / ".cache").exists()  # --cache put it elsewhere; the workspace is untouched


def test_cli_refuses_to_write_into_workspace_inputs(tiny_workspace: Path, tmp_path: Path) -> None:
    weak = _weak_kpi(tiny_workspace, tmp_path)
    out = tiny_workspace / "kpi" / "mined"
    cmd = [
        sys.executable,
        "-m",
        "specloop",
        "mine",
        "--targets",
        str(weak),
        "--workspace",
        str(tiny_workspace),
    ]
    proc = subprocess.run(
        [*cmd, "--embedder", "pixels", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2 and "read-only" in proc.stderr and "Traceback" not in proc.stderr
    assert not out.exists()


def test_neighbours_share_board_and_defect_type_far_more_than_random(
    tiny_workspace: Path, tmp_path: Path
) -> None:
    """Around weak KPI samples, mined rows match the target's board, package and defect type far
    more often than random pool rows would; a miner returning arbitrary rows stays at the base rate."""
    ws = Workspace(tiny_workspace)
    spec = load_spec(ws.spec)
    ds = spec.dataset.classify
    kpi = read_csv(ws.split("kpi").csv)
    pool = read_csv(ws.split("mining_pool").csv)
    targets = kpi[kpi["label"] != "PASS"].reset_index(drop=True)
    res = mine(
        targets,
        pool,
        targets_images=ws.kpi_images,
        pool_images=ws.split("mining_pool").images_dir,
        embedder=get_embedder("pixels", lights_join=(ds.concat_type, ds.grid_map), progress=False),
        cache=EmbeddingCache(tmp_path / "e.parquet"),
        out_dir=tmp_path / "out",
        top_k=5,
        min_similarity=-1.0,
        lights=spec.lights(),
        image_ext=ds.image_ext,
    )
    pairs = pd.read_csv(res.files["knn_pairs"], dtype=str, keep_default_na=False)
    assert len(pairs) == 5 * len(targets)
    t = targets.assign(key=targets["input_path"] + "/" + targets["object_name"]).set_index("key")
    p = pool.set_index(pool.index + 2)
    lines = pairs["pool_line"].astype(int)
    for column, factor in (("boardname", 3.0), ("comp_type_2", 2.5), ("label", 1.5)):
        mined_rate = float(
            np.mean(t.loc[pairs["target"], column].to_numpy() == p.loc[lines, column].to_numpy())
        )
        base_rate = float(targets[column].map(pool[column].value_counts(normalize=True)).fillna(0).mean())
        assert mined_rate >= factor * base_rate, (column, mined_rate, base_rate)
    board_rate = np.mean(
        t.loc[pairs["target"], "boardname"].to_numpy() == p.loc[lines, "boardname"].to_numpy()
    )
    assert board_rate >= 0.9


@pytest.mark.parametrize("embedder", ["timm:resnet18", "changenet"])
def test_model_embedders_run_on_workspace_images(embedder: str, tiny_workspace: Path, tmp_path: Path) -> None:
    ws = Workspace(tiny_workspace)
    spec = load_spec(ws.spec)
    ds = spec.dataset.classify
    if embedder == "changenet":
        from specloop.skills.changenet.checkpoint import save_checkpoint
        from specloop.skills.changenet.model import build_model

        ckpt = save_checkpoint(
            tmp_path / "cn.pth", {"state_dict": build_model(spec).state_dict(), "spec": spec.model_dump()}
        )
        embedder = f"changenet:{ckpt}"
    emb = get_embedder(embedder, lights_join=(ds.concat_type, ds.grid_map), device="cpu", progress=False)
    kpi = read_csv(ws.split("kpi").csv).head(6)
    items = [
        image_files(ws.kpi_images, r.input_path, r.object_name, spec.lights(), ds.image_ext)
        for r in kpi.itertuples()
    ]
    vecs = emb.embed(items)
    assert vecs.shape == (6, emb.dim) and vecs.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, rtol=1e-5)
    assert np.linalg.matrix_rank(vecs) > 1
    assert "linear" in emb.version
