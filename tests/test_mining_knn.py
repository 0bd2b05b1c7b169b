"""k-NN mining on constructed vectors: exact neighbours, threshold, dedupe, exclusions, outputs."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from specloop.errors import ContractError, SpecloopError
from specloop.skills.aoi.schema import check_rows, read_csv
from specloop.skills.mining import (
    EmbeddingCache,
    build_index,
    knn,
    mine,
    numpy_topk,
    recall_at_k,
    search,
    select,
)

D = 16


def _unit(**parts: float) -> np.ndarray:
    """A unit vector with given weights on named axes e0…e15; the rest goes on the `rest` axis."""
    v = np.zeros(D, np.float32)
    rest = parts.pop("rest")
    for axis, w in parts.items():
        v[int(axis[1:])] = w
    v[rest] = np.sqrt(max(0.0, 1.0 - float(np.sum(v**2))))
    return v


class VectorTable:
    """An embedder whose vector for an item is looked up by its file's stem (the object_name)."""

    name = "table"
    version = "v1"
    dim = D

    def __init__(self, vectors: dict[str, np.ndarray]) -> None:
        self.vectors = vectors
        self.calls = 0

    def embed(self, items: Sequence[Sequence[Path]]) -> np.ndarray:
        self.calls += 1
        return np.stack([self.vectors[Path(files[0]).stem] for files in items]).astype(np.float32)


# pool rows: (object_name, label, vector); target T0 is e0, T1 is e1
POOL = [
    ("P0", "missing", _unit(e0=0.99, rest=3)),
    ("P1", "missing", _unit(e0=0.90, rest=4)),
    ("P2", "PASS", _unit(e0=0.70, e1=0.70, rest=5)),
    ("P3", "solder", _unit(e1=0.95, rest=6)),
    ("P4", "solder", _unit(e1=0.50, rest=7)),
    ("P5", "missing", _unit(e0=1.0, rest=8)),  # already in training
    ("P6", "solder", _unit(e1=0.98, rest=9)),  # leakage-key collision with a KPI row
    ("P8", "PASS", _unit(rest=10)),
]
TARGETS = [("T0", "missing", _unit(e0=1.0, rest=2)), ("T1", "solder", _unit(e1=1.0, rest=2))]


def _row(obj: str, label: str, side: str) -> dict[str, str]:
    return {
        "input_path": f"{side}/{obj}",
        "golden_path": "golden/g0",
        "label": label,
        "object_name": obj,
        "boardname": "B1",
        "comp_type_1": "R",
    }


@pytest.fixture
def setup(tmp_path: Path) -> dict:
    images = tmp_path / "images"
    for i, (obj, _, _) in enumerate(POOL + TARGETS):
        side = "kpi" if obj.startswith("T") else "pool"
        f = images / side / obj / f"{obj}.png"
        f.parent.mkdir(parents=True)
        Image.fromarray(np.full((4, 4, 3), i * 9, np.uint8)).save(f)
    pool = pd.DataFrame([_row(o, lab, "pool") for o, lab, _ in POOL])
    pool = pd.concat([pool, pool.iloc[[1]]], ignore_index=True)  # P1 listed twice
    targets = pd.DataFrame([_row(o, lab, "kpi") for o, lab, _ in TARGETS])
    exclude = {
        "training": pd.DataFrame([_row("P5", "missing", "pool")]),
        "validation": pd.DataFrame([_row("X9", "PASS", "pool")]),
        "kpi": pd.DataFrame([_row("P6", "solder", "pool")]),
    }
    vectors = {o: v for o, _, v in POOL + TARGETS}
    return {"images": images, "pool": pool, "targets": targets, "exclude": exclude, "vectors": vectors}


def _mine(s: dict, out: Path, **kw):
    args = dict(
        targets_images=s["images"],
        pool_images=s["images"],
        embedder=VectorTable(s["vectors"]),
        cache=None,
        out_dir=out,
        top_k=3,
        min_similarity=0.65,
        exclude=s["exclude"],
        lights=[],
        image_ext=".png",
    )
    args.update(kw)
    return mine(s["targets"], s["pool"], **args)


def test_exact_neighbours_threshold_dedupe_and_exclusions(setup: dict, tmp_path: Path) -> None:
    res = _mine(setup, tmp_path / "out")
    # T0 → P0 .99, P1 .90, P2 .70 ; T1 → P3 .95, P2 .70 (duplicate), P4 .50 (rejected)
    assert res.rows["object_name"].tolist() == ["P0", "P3", "P1", "P2"]
    np.testing.assert_allclose(res.rows["best_similarity"], [0.99, 0.95, 0.90, 0.70], atol=1e-5)
    assert (res.candidates, res.kept, res.rejected, res.duplicates) == (6, 4, 1, 1)
    assert res.candidates == res.kept + res.rejected + res.duplicates
    assert res.excluded == {"training": 1, "validation": 0, "kpi": 1, "pool_repeats": 1}
    p2 = res.rows.set_index("object_name").loc["P2"]
    assert p2["matched_targets"] == "kpi/T0/T0;kpi/T1/T1" and p2["matched_count"] == 2
    assert res.rows.set_index("object_name").loc["P0", "matched_targets"] == "kpi/T0/T0"

    # the mined CSV is a contract CSV whose rows pass the workspace row rules; paths are directories
    mined = read_csv(res.files["mined_rows"])
    assert check_rows(mined, "mined_rows.csv") == []
    assert mined["input_path"].tolist() == ["pool/P0", "pool/P3", "pool/P1", "pool/P2"]
    assert all((setup["images"] / p).is_dir() for p in mined["input_path"])
    summary = pd.read_csv(res.files["knn_summary"]).iloc[0]
    assert (summary["candidate_count"], summary["kept_count"], summary["rejected_count"]) == (6, 4, 1)
    assert summary["similarity_threshold"] == 0.65 and summary["duplicate_count"] == 1
    assert summary["excluded_training"] == 1 and summary["excluded_kpi"] == 1
    pairs = pd.read_csv(res.files["knn_pairs"])
    assert pairs["status"].value_counts().to_dict() == {"kept": 4, "rejected": 1, "duplicate": 1}
    text = res.files["mining_summary"].read_text()
    assert "per target label" in text and "missing" in text and "solder" in text
    emb = pd.read_parquet(res.files["target_embeddings"])
    assert emb["target"].tolist() == ["kpi/T0/T0", "kpi/T1/T1"] and len(emb["vector"][0]) == D


def test_threshold_moves_the_cut(setup: dict, tmp_path: Path) -> None:
    res = _mine(setup, tmp_path / "a", min_similarity=0.92)
    assert res.rows["object_name"].tolist() == ["P0", "P3"]
    assert (res.candidates, res.kept, res.rejected, res.duplicates) == (6, 2, 4, 0)
    none = _mine(setup, tmp_path / "b", min_similarity=0.999)
    assert none.kept == 0 and any("min_similarity" in w for w in none.warnings)


def test_without_exclusions_the_leaking_rows_come_back(setup: dict, tmp_path: Path) -> None:
    res = _mine(setup, tmp_path / "out", exclude=None)
    assert {"P5", "P6"} <= set(res.rows["object_name"])
    assert res.excluded == {"pool_repeats": 1}


def test_filter_by_label_searches_same_label_only(setup: dict, tmp_path: Path) -> None:
    res = _mine(setup, tmp_path / "out", filter_by_label=True)
    assert res.rows["object_name"].tolist() == ["P0", "P3", "P1"]
    assert (res.candidates, res.kept, res.rejected, res.duplicates) == (4, 3, 1, 0)
    assert (res.rows["label"] == ["missing", "solder", "missing"]).all()


def test_prechecks_warn_on_missing_label_and_falling_yield(setup: dict, tmp_path: Path) -> None:
    targets = pd.concat([setup["targets"], pd.DataFrame([_row("T1", "bridge", "kpi")])], ignore_index=True)
    res = _mine({**setup, "targets": targets}, tmp_path / "out", previous_kept=20)
    assert any("'bridge'" in w and "no same-label candidates" in w for w in res.warnings)
    assert any("yield fell from 20" in w for w in res.warnings)
    assert not any("yield" in w for w in _mine(setup, tmp_path / "o2", previous_kept=6).warnings)


def test_second_call_embeds_no_pool_sample(setup: dict, tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path / "cache.parquet")
    emb = VectorTable(setup["vectors"])
    first = _mine(setup, tmp_path / "a", cache=cache, embedder=emb)
    assert first.pool_embedded == 6 and first.targets_embedded == 2
    calls = emb.calls
    second = _mine(setup, tmp_path / "b", cache=EmbeddingCache(tmp_path / "cache.parquet"), embedder=emb)
    assert second.pool_embedded == 0 and second.targets_embedded == 0 and emb.calls == calls
    pd.testing.assert_frame_equal(first.rows, second.rows)


def test_bad_input_is_one_sentence(setup: dict, tmp_path: Path) -> None:
    (setup["images"] / "pool" / "P3" / "P3.png").unlink()
    with pytest.raises(ContractError, match=r"pool, line 5: image file .*P3.png not found"):
        _mine(setup, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    bad = setup["targets"].copy()
    bad.loc[0, "input_path"] = "../../etc"
    with pytest.raises(ContractError, match="targets, line 2"):
        _mine({**setup, "targets": bad}, tmp_path / "out")
    with pytest.raises(SpecloopError, match="top_k"):
        _mine(setup, tmp_path / "out", top_k=0)


def test_select_counts_on_handmade_results() -> None:
    sims = np.array([[0.95, 0.91, 0.80], [0.97, 0.93, -np.inf]], np.float32)
    idx = np.array([[4, 7, 2], [7, 1, -1]])
    sel = select(sims, idx, 0.9)
    assert sel.kept == [4, 7, 1]
    assert sel.best == pytest.approx({4: 0.95, 7: 0.97, 1: 0.93})
    assert sel.answered[7] == [0, 1]
    assert (sel.candidates, sel.rejected, sel.duplicates) == (5, 1, 1)


def test_faiss_exact_matches_numpy_and_pads_short_pools() -> None:
    rng = np.random.default_rng(0)
    pool = rng.standard_normal((500, 32)).astype(np.float32)
    pool /= np.linalg.norm(pool, axis=1, keepdims=True)
    q = pool[:7] + 0.1 * rng.standard_normal((7, 32)).astype(np.float32)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    s1, i1 = knn(pool, q, 5)
    s2, i2 = numpy_topk(pool, q, 5)
    np.testing.assert_array_equal(i1, i2)
    np.testing.assert_allclose(s1, s2, atol=1e-5)
    assert (i1[:, 0] == np.arange(7)).all()
    s, i = search(build_index(pool[:3]), q, 5)
    assert (i[:, 3:] == -1).all() and np.isneginf(s[:, 3:]).all()


@pytest.mark.parametrize("kind", ["hnsw", "ivf"])
def test_approximate_indexes_recall_against_exact(kind: str, setup: dict, tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    centres = rng.standard_normal((50, 32)).astype(np.float32)
    pool = centres[rng.integers(0, 50, 4000)] + 0.3 * rng.standard_normal((4000, 32)).astype(np.float32)
    pool /= np.linalg.norm(pool, axis=1, keepdims=True)
    q = pool[rng.choice(4000, 100, replace=False)]
    _, exact = knn(pool, q, 5)
    _, approx = knn(pool, q, 5, kind)
    assert recall_at_k(exact, approx) >= 0.9
    assert recall_at_k(exact, exact) == 1.0
    res = _mine(setup, tmp_path / "out", index=kind)
    assert res.recall is not None and res.recall >= 0.9
    assert res.rows["object_name"].tolist() == ["P0", "P3", "P1", "P2"]


def test_typed_columns_from_parquet_are_read_as_strings(setup: dict, tmp_path: Path) -> None:
    targets = setup["targets"].assign(number_of_pins=[2, 8], score=[0.7, 0.9])
    targets.to_parquet(tmp_path / "t.parquet")
    res = _mine({**setup, "targets": pd.read_parquet(tmp_path / "t.parquet")}, tmp_path / "out")
    assert res.rows["object_name"].tolist() == ["P0", "P3", "P1", "P2"]


def test_unified_pool_mines_both_sources_under_one_cutoff_and_counts_each(
    setup: dict, tmp_path: Path
) -> None:
    synthetic = {"P1", "P3", "P4"}
    pool = setup["pool"].assign(
        source=["synthetic" if o in synthetic else "mining_pool" for o in setup["pool"]["object_name"]]
    )
    res = _mine({**setup, "pool": pool}, tmp_path / "out")
    # the same neighbours as a pool without provenance: synthetic rows compete on similarity alone
    assert res.rows["object_name"].tolist() == ["P0", "P3", "P1", "P2"]
    assert res.rows["source"].tolist() == ["mining_pool", "synthetic", "synthetic", "mining_pool"]
    # T0 → P0 real .99, P1 synth .90, P2 real .70; T1 → P3 synth .95, P2 duplicate, P4 synth .50 rejected
    assert res.per_source == {
        "mining_pool": {"searched": 3, "candidates": 3, "rejected": 0, "duplicates": 1, "kept": 2},
        "synthetic": {"searched": 3, "candidates": 3, "rejected": 1, "duplicates": 0, "kept": 2},
    }
    for key in ("candidates", "rejected", "duplicates", "kept"):
        assert sum(n[key] for n in res.per_source.values()) == getattr(res, key)
    summary = pd.read_csv(res.files["knn_summary"]).iloc[0]
    assert (summary["candidate_count_synthetic"], summary["kept_count_synthetic"]) == (3, 2)
    assert (summary["candidate_count_mining_pool"], summary["kept_count_mining_pool"]) == (3, 2)
    pairs = pd.read_csv(res.files["knn_pairs"])
    assert pairs.loc[pairs["pool_object_name"] == "P4", ["pool_source", "status"]].values.tolist() == [
        ["synthetic", "rejected"]
    ]
    assert "per pool source" in res.files["mining_summary"].read_text()
    assert pd.read_csv(_mine(setup, tmp_path / "plain").files["knn_summary"]).filter(like="_synthetic").empty
