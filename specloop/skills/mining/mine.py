"""k-NN mining: the pool samples nearest to a set of targets (weak samples), as ChangeNet CSV rows.

A sample is represented by the embedding of its TEST side (`input_path`, lights joined as the spec
joins them); see `embedders.base` for why the golden side is left out.

Counting, so that `candidates == rejected + duplicates + kept`:
- a candidate is one (target, pool sample) pair among a target's `top_k` nearest;
- rejected: its cosine similarity is below `min_similarity`;
- duplicate: the pool sample was already kept for an earlier pair (it is kept once, with the best
  similarity and every target it answered);
- kept: a distinct pool sample.
Pool rows already in the training set, or whose leakage key collides with another protected set
(validation, KPI, holdout), are removed before the search and counted per set; so are repeated pool
rows (same leakage key). With `filter_by_label`, each target searches only the pool rows of its own
label, so its `top_k` candidates are all same-label.

A pool with a `source` column (the DEFT loop's unified pool: `mining_pool` and `synthetic` rows)
is searched as one pool; the counts are also given per source, and each per-source count sums to
its total.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from specloop.errors import ContractError, SpecloopError
from specloop.skills.aoi.images import image_files
from specloop.skills.aoi.schema import (
    COLUMNS,
    FIRST_DATA_LINE,
    check_rows,
    leakage_keys,
    pad_columns,
    write_csv,
)
from specloop.skills.mining.cache import EmbeddingCache, embedder_id
from specloop.skills.mining.embedders.base import Embedder, Item
from specloop.skills.mining.knn import INDEXES, build_index, recall_at_k, search
from specloop.skills.mining.precheck import label_precheck, yield_check

RECALL_SAMPLE = 64
RECALL_TARGET = 0.95


@dataclass
class MiningResult:
    """What one mining call found, and how it got there (all counts are exact)."""

    rows: pd.DataFrame
    kept: int
    candidates: int
    rejected: int
    duplicates: int
    excluded: dict[str, int]
    warnings: list[str]
    embedder: str = ""
    index: str = "flat"
    recall: float | None = None
    targets_embedded: int = 0
    pool_embedded: int = 0
    embed_seconds: float = 0.0
    search_seconds: float = 0.0
    per_label: pd.DataFrame = field(default_factory=pd.DataFrame)
    per_source: dict[str, dict[str, int]] = field(default_factory=dict)
    files: dict[str, Path] = field(default_factory=dict)


@dataclass
class Selection:
    """The outcome of thresholding and de-duplicating k-NN candidates (indices into the pool)."""

    kept: list[int]
    best: dict[int, float]
    answered: dict[int, list[int]]
    pairs: pd.DataFrame
    candidates: int
    rejected: int
    duplicates: int


def select(sims: np.ndarray, idx: np.ndarray, min_similarity: float) -> Selection:
    """Threshold and de-duplicate k-NN results ([targets, k] similarities and pool indices, -1 = none).

    Targets are visited in order, each target's neighbours best first; a pool sample is kept on its
    first passing pair, later passing pairs add to its targets and may raise its best similarity.
    """
    kept: list[int] = []
    best: dict[int, float] = {}
    answered: dict[int, list[int]] = {}
    records = []
    rejected = duplicates = candidates = 0
    for t in range(idx.shape[0]):
        for rank in range(idx.shape[1]):
            j = int(idx[t, rank])
            if j < 0:
                continue
            s = float(sims[t, rank])
            candidates += 1
            if s < min_similarity:
                status = "rejected"
                rejected += 1
            elif j in best:
                status = "duplicate"
                duplicates += 1
                best[j] = max(best[j], s)
                answered[j].append(t)
            else:
                status = "kept"
                kept.append(j)
                best[j] = s
                answered[j] = [t]
            records.append((t, rank + 1, j, s, status))
    pairs = pd.DataFrame(records, columns=["target", "rank", "pool", "similarity", "status"])
    return Selection(kept, best, answered, pairs, candidates, rejected, duplicates)


def _side_items(
    df: pd.DataFrame, images_dir: Path, lights: Sequence[str], image_ext: str, name: str
) -> list[Item]:
    """The test-side light files of every row; a missing file is an error naming file, line and path."""
    items: list[Item] = []
    for i, (rel, obj) in enumerate(zip(df["input_path"], df["object_name"], strict=True)):
        files = image_files(images_dir, rel, obj, lights, image_ext)
        for f in files:
            if not f.is_file():
                line = int(df.index[i]) + FIRST_DATA_LINE
                raise ContractError(f"{name}, line {line}: image file {f} not found.", rule="image-missing")
        items.append(files)
    return items


def _as_rows(df: pd.DataFrame) -> pd.DataFrame:
    """Contract columns first and as strings (rows may come from parquet with typed columns)."""
    out = pad_columns(df).reset_index(drop=True)
    for col in COLUMNS:
        out[col] = out[col].map(
            lambda v: "" if v is None or (isinstance(v, float) and np.isnan(v)) else str(v)
        )
    return out


def _check(df: pd.DataFrame, name: str) -> None:
    problems = check_rows(pad_columns(df), name)
    if problems:
        raise ContractError(problems[0].sentence())


def _embed(
    items: list[Item], embedder: Embedder, cache: EmbeddingCache | None, progress: bool
) -> tuple[np.ndarray, int, float]:
    """(vectors, how many were actually embedded, seconds)."""
    t0 = time.perf_counter()
    if cache is None:
        vecs = embedder.embed(items) if items else np.zeros((0, embedder.dim), np.float32)
        return vecs, len(items), time.perf_counter() - t0
    vecs = cache.embed(items, embedder, progress=progress)
    return vecs, cache.misses, time.perf_counter() - t0


def _exclusions(pool: pd.DataFrame, exclude: Mapping[str, pd.DataFrame] | None) -> tuple[np.ndarray, dict]:
    """Mask of pool rows to keep, and per-set counts of rows removed (a row may count in several)."""
    keys = leakage_keys(pool) if len(pool) else pd.Series([], dtype=str)
    keep = np.ones(len(pool), dtype=bool)
    counts: dict[str, int] = {}
    for name, df in (exclude or {}).items():
        if df is None or not len(df):
            counts[name] = 0
            continue
        hit = keys.isin(set(leakage_keys(_as_rows(df)))).to_numpy()
        counts[name] = int(hit.sum())
        keep &= ~hit
    repeated = keys.duplicated().to_numpy() & keep
    counts["pool_repeats"] = int(repeated.sum())
    keep &= ~repeated
    return keep, counts


def _search(
    target_vecs: np.ndarray,
    pool_vecs: np.ndarray,
    target_labels: np.ndarray,
    pool_labels: np.ndarray,
    *,
    top_k: int,
    index: str,
    filter_by_label: bool,
) -> tuple[np.ndarray, np.ndarray, float | None]:
    """k-NN over the pool (per label group when filtering); indices are into `pool_vecs`."""
    sims = np.full((len(target_vecs), top_k), -np.inf, np.float32)
    idx = np.full((len(target_vecs), top_k), -1, np.int64)
    groups: list[tuple[np.ndarray, np.ndarray]] = []
    if filter_by_label:
        for label in dict.fromkeys(target_labels):
            groups.append((np.flatnonzero(target_labels == label), np.flatnonzero(pool_labels == label)))
    else:
        groups.append((np.arange(len(target_vecs)), np.arange(len(pool_vecs))))
    hits = total = 0
    measured = False
    for t_rows, p_rows in groups:
        if not len(t_rows) or not len(p_rows):
            continue
        sub = pool_vecs[p_rows]
        s, i = search(build_index(sub, index), target_vecs[t_rows], top_k)
        sims[t_rows] = s
        idx[t_rows] = np.where(i >= 0, p_rows[np.maximum(i, 0)], -1)
        if index != "flat":
            probe = t_rows[:RECALL_SAMPLE]
            _, exact = search(build_index(sub, "flat"), target_vecs[probe], top_k)
            r = recall_at_k(exact, i[: len(probe)])
            n = int((exact >= 0).sum())
            hits += r * n
            total += n
            measured = True
    recall = (hits / total if total else 1.0) if measured else None
    return sims, idx, recall


def _atomic_write(path: Path, writer: Callable[[Path], None]) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        writer(Path(tmp))
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def mine(
    targets: pd.DataFrame,
    pool: pd.DataFrame,
    *,
    targets_images: Path,
    pool_images: Path,
    embedder: Embedder,
    cache: EmbeddingCache | None,
    out_dir: Path,
    top_k: int = 5,
    min_similarity: float = 0.9,
    filter_by_label: bool = False,
    exclude: Mapping[str, pd.DataFrame] | None = None,
    index: str = "flat",
    previous_kept: int | None = None,
    lights: Sequence[str] = (),
    image_ext: str = ".jpg",
    concat_type: str | None = "linear",
    grid_map: Mapping[str, int] | None = None,
    progress: bool = False,
) -> MiningResult:
    """Mine the pool around `targets`; write out_dir/{mined_rows.csv, knn_summary.csv,
    knn_pairs.csv, mining_summary.txt, target_embeddings.parquet}.

    `exclude` maps a set name to its rows: `training` rows are already trained on, the others
    (validation, kpi, holdout …) must not leak into training. `concat_type`/`grid_map` are recorded
    in the summary; the join itself is the embedder's (its version names it). `progress` shows a
    bar while image files are hashed for the cache (the embedder shows its own).
    """
    if top_k < 1:
        raise SpecloopError(f"top_k must be at least 1, got {top_k}.")
    if not -1.0 <= min_similarity <= 1.0:
        raise SpecloopError(f"min_similarity is a cosine similarity in [-1, 1], got {min_similarity}.")
    if index not in INDEXES:
        raise SpecloopError(f"unknown index {index!r}; use one of {', '.join(INDEXES)}.")
    targets = _as_rows(targets)
    pool = _as_rows(pool)
    _check(targets, "targets")
    _check(pool, "pool")
    out_dir = Path(out_dir)
    warnings: list[str] = []

    keep_mask, excluded = _exclusions(pool, exclude)
    searchable = pool[keep_mask].reset_index()  # column "index" = row in the pool CSV
    warnings += label_precheck(targets, searchable, filter_by_label=filter_by_label)

    target_items = _side_items(targets, targets_images, lights, image_ext, "targets")
    pool_items = _side_items(pool[keep_mask], pool_images, lights, image_ext, "pool")
    target_vecs, targets_embedded, t_embed = _embed(target_items, embedder, cache, progress)
    pool_vecs, pool_embedded, p_embed = _embed(pool_items, embedder, cache, progress)
    if cache is not None:
        warnings += cache.warnings

    t0 = time.perf_counter()
    sims, idx, recall = _search(
        target_vecs,
        pool_vecs,
        targets["label"].to_numpy(),
        searchable["label"].to_numpy(),
        top_k=top_k,
        index=index,
        filter_by_label=filter_by_label,
    )
    sel = select(sims, idx, min_similarity)
    search_seconds = time.perf_counter() - t0
    if recall is not None and recall < RECALL_TARGET:
        warnings.append(
            f"approximate index {index!r} recalled {recall:.3f} of the exact top-{top_k} "
            f"(below {RECALL_TARGET}); use index 'flat' for this pool."
        )

    target_ids = (targets["input_path"] + "/" + targets["object_name"]).tolist()
    rows = searchable.loc[sel.kept].drop(columns="index").copy()
    rows["best_similarity"] = [round(sel.best[j], 6) for j in sel.kept]
    rows["matched_targets"] = [
        ";".join(dict.fromkeys(target_ids[t] for t in sel.answered[j])) for j in sel.kept
    ]
    rows["matched_count"] = [len(sel.answered[j]) for j in sel.kept]
    rows = rows.sort_values("best_similarity", ascending=False, kind="stable").reset_index(drop=True)
    kept = len(rows)
    warnings += yield_check(kept, previous_kept)
    if kept == 0 and sel.candidates:
        best = float(np.max(sims[np.isfinite(sims)])) if np.isfinite(sims).any() else float("nan")
        warnings.append(
            f"no candidate reached min_similarity {min_similarity} (best was {best:.3f}); "
            "lower the threshold or check the embedder."
        )

    per_label = _per_label(targets, searchable, sel)
    per_source = _per_source(searchable, sel)
    result = MiningResult(
        rows=rows,
        kept=kept,
        candidates=sel.candidates,
        rejected=sel.rejected,
        duplicates=sel.duplicates,
        excluded=excluded,
        warnings=warnings,
        embedder=embedder_id(embedder),
        index=index,
        recall=recall,
        targets_embedded=targets_embedded,
        pool_embedded=pool_embedded,
        embed_seconds=t_embed + p_embed,
        search_seconds=search_seconds,
        per_label=per_label,
        per_source=per_source,
    )
    _write_outputs(
        result,
        out_dir,
        targets=targets,
        target_ids=target_ids,
        target_vecs=target_vecs,
        searchable=searchable,
        sel=sel,
        settings={
            "top_k": top_k,
            "similarity_threshold": min_similarity,
            "filter_by_label": filter_by_label,
            "lights": ",".join(lights) or "(single image)",
            "image_ext": image_ext,
            "concat_type": concat_type or "linear",
            "grid_map": dict(grid_map) if grid_map else "",
            "targets_images": str(targets_images),
            "pool_images": str(pool_images),
        },
    )
    return result


def _per_label(targets: pd.DataFrame, searchable: pd.DataFrame, sel: Selection) -> pd.DataFrame:
    """Per target label: targets, candidates, rejected, duplicates, kept (kept = first found by it)."""
    labels = targets["label"].to_numpy()
    pairs = sel.pairs.assign(label=labels[sel.pairs["target"].to_numpy(dtype=np.int64)])
    out = []
    for label in sorted(dict.fromkeys(labels)):
        p = pairs[pairs["label"] == label]
        kept_rows = searchable.loc[p.loc[p["status"] == "kept", "pool"].to_list()]
        out.append(
            {
                "target_label": label,
                "targets": int((labels == label).sum()),
                "candidates": len(p),
                "rejected": int((p["status"] == "rejected").sum()),
                "duplicates": int((p["status"] == "duplicate").sum()),
                "kept": len(kept_rows),
                "kept_same_label": int((kept_rows["label"] == label).sum()),
                "pool_rows_with_label": int((searchable["label"] == label).sum()),
            }
        )
    return pd.DataFrame(out)


def _per_source(searchable: pd.DataFrame, sel: Selection) -> dict[str, dict[str, int]]:
    """Per pool `source` (when the pool has one): candidates, rejected, duplicates, kept."""
    if "source" not in searchable.columns:
        return {}
    sources = searchable["source"].to_numpy()
    status = sel.pairs["status"].to_numpy()
    pair_source = sources[sel.pairs["pool"].to_numpy(dtype=np.int64)] if len(sel.pairs) else sources[:0]
    out = {}
    for src in sorted(dict.fromkeys(sources)):
        hit = pair_source == src
        out[str(src)] = {
            "searched": int((sources == src).sum()),
            "candidates": int(hit.sum()),
            "rejected": int((hit & (status == "rejected")).sum()),
            "duplicates": int((hit & (status == "duplicate")).sum()),
            "kept": int((hit & (status == "kept")).sum()),
        }
    return out


def _similarity_spread(sims: np.ndarray) -> dict[str, float | str]:
    """Min / median / max candidate similarity: how to read the threshold for this embedder."""
    if not len(sims):
        return {"similarity_min": "", "similarity_median": "", "similarity_max": ""}
    lo, mid, hi = np.quantile(sims, [0.0, 0.5, 1.0])
    return {
        "similarity_min": round(lo, 4),
        "similarity_median": round(mid, 4),
        "similarity_max": round(hi, 4),
    }


def _write_outputs(
    result: MiningResult,
    out_dir: Path,
    *,
    targets: pd.DataFrame,
    target_ids: list[str],
    target_vecs: np.ndarray,
    searchable: pd.DataFrame,
    sel: Selection,
    settings: dict,
) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    files = {
        "mined_rows": out_dir / "mined_rows.csv",
        "knn_summary": out_dir / "knn_summary.csv",
        "knn_pairs": out_dir / "knn_pairs.csv",
        "mining_summary": out_dir / "mining_summary.txt",
        "target_embeddings": out_dir / "target_embeddings.parquet",
    }
    summary = {
        "candidate_count": result.candidates,
        "kept_count": result.kept,
        "rejected_count": result.rejected,
        "similarity_threshold": settings["similarity_threshold"],
        "duplicate_count": result.duplicates,
        **{f"excluded_{k}": v for k, v in result.excluded.items()},
        "top_k": settings["top_k"],
        "filter_by_label": settings["filter_by_label"],
        "target_count": len(targets),
        "pool_searched": len(searchable),
        "embedder": result.embedder,
        "index": result.index,
        "index_recall": "" if result.recall is None else round(result.recall, 4),
        "pool_embedded": result.pool_embedded,
        "targets_embedded": result.targets_embedded,
        **_similarity_spread(sel.pairs["similarity"].to_numpy(dtype=np.float64)),
        **{
            f"{count}_count_{src}": n[key]
            for src, n in result.per_source.items()
            for key, count in (
                ("searched", "searched"),
                ("candidates", "candidate"),
                ("rejected", "rejected"),
                ("duplicates", "duplicate"),
                ("kept", "kept"),
            )
        },
    }
    pairs = sel.pairs.copy()
    if len(pairs):
        pairs["target"] = [target_ids[t] for t in pairs["target"]]
        pairs["target_label"] = targets["label"].to_numpy()[sel.pairs["target"].to_numpy()]
        pool_rows = searchable.loc[sel.pairs["pool"].to_numpy()]
        pairs["pool_line"] = pool_rows["index"].to_numpy() + 2
        pairs["pool_input_path"] = pool_rows["input_path"].to_numpy()
        pairs["pool_object_name"] = pool_rows["object_name"].to_numpy()
        pairs["pool_label"] = pool_rows["label"].to_numpy()
        if "source" in pool_rows.columns:
            pairs["pool_source"] = pool_rows["source"].to_numpy()
        pairs = pairs.drop(columns="pool")

    def text(path: Path) -> None:
        lines = [f"k-NN mining summary ({result.embedder}, index {result.index})", ""]
        lines += [f"{k}: {v}" for k, v in {**settings, **summary}.items()]
        lines += ["", "per target label:"]
        lines += (
            result.per_label.to_string(index=False) if len(result.per_label) else "(no targets)"
        ).splitlines()
        if result.per_source:
            lines += ["", "per pool source:"]
            lines += pd.DataFrame(result.per_source).T.rename_axis("source").to_string().splitlines()
        if len(result.rows):
            lines += ["", "kept rows per pool label:"]
            lines += result.rows["label"].value_counts().sort_index().to_string().splitlines()
        lines += ["", "warnings:"] + ([f"- {w}" for w in result.warnings] or ["(none)"])
        path.write_text("\n".join(lines) + "\n")

    def embeddings(path: Path) -> None:
        table = pa.table(
            {
                "target": target_ids,
                "label": targets["label"].tolist(),
                "embedder": [result.embedder] * len(target_ids),
                "vector": pa.array(list(target_vecs.astype(np.float32)), type=pa.list_(pa.float32())),
            }
        )
        pq.write_table(table, path)

    _atomic_write(files["mined_rows"], lambda p: write_csv(result.rows, p))
    _atomic_write(files["knn_summary"], lambda p: pd.DataFrame([summary]).to_csv(p, index=False))
    _atomic_write(files["knn_pairs"], lambda p: pairs.to_csv(p, index=False))
    _atomic_write(files["target_embeddings"], embeddings)
    _atomic_write(files["mining_summary"], text)
    result.files = files


def random_draw(
    pool: pd.DataFrame, n: int, *, exclude: Mapping[str, pd.DataFrame] | None = None, seed: int = 0
) -> pd.DataFrame:
    """`n` pool rows drawn uniformly at random from those `mine` could have kept (the same
    exclusions and de-duplication): the control arm of a mined-vs-random ablation."""
    keep, _ = _exclusions(pool, exclude)
    eligible = np.flatnonzero(keep)
    picked = np.random.default_rng(seed).choice(eligible, size=min(n, len(eligible)), replace=False)
    return pool.iloc[np.sort(picked)].reset_index(drop=True)
