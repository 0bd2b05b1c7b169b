"""k-nearest-neighbour search over L2-normalised vectors with faiss (cosine = inner product).

`flat` is exact (`IndexFlatIP`). `hnsw` and `ivf` are approximate indexes for pools in the
millions; `recall_at_k` measures them against exact search.
"""

from __future__ import annotations

import math

import faiss
import numpy as np

from specloop.errors import SpecloopError

INDEXES = ("flat", "hnsw", "ivf")

# faiss computes exact inner products in (query block × database block) matrix products; its
# default database block (1024) makes each product too thin to run at full speed. 16384 brings
# IndexFlatIP search close to the plain matrix-multiply floor (see benchmarks/mining.py).
FLAT_DATABASE_BLOCK = 16384


def build_index(
    vectors: np.ndarray,
    kind: str = "flat",
    *,
    nlist: int | None = None,
    nprobe: int | None = None,
    hnsw_m: int = 32,
    ef_search: int = 128,
    seed: int = 0,
) -> faiss.Index:
    """An inner-product index over `vectors` ([n, d] float32, L2-normalised).

    hnsw: `IndexHNSWFlat` (M=`hnsw_m`, efConstruction=80, efSearch=`ef_search`).
    ivf: `IndexIVFFlat` with `nlist` lists (default √n, at least 39 vectors per list), trained by
    k-means on at most 64 vectors per list, probing `nprobe` lists (default max(16, nlist/16)).
    Fewer than 78 vectors (two lists' worth) get an exact flat index instead: nothing to cluster.
    """
    x = np.ascontiguousarray(vectors, dtype=np.float32)
    n, d = x.shape
    if kind == "flat" or (kind == "ivf" and n < 2 * 39):
        index = faiss.IndexFlatIP(d)
    elif kind == "hnsw":
        index = faiss.IndexHNSWFlat(d, hnsw_m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = 80
        index.hnsw.efSearch = ef_search
    elif kind == "ivf":
        nlist = max(1, min(nlist or round(math.sqrt(max(n, 1))), n // 39))
        quantizer = faiss.IndexFlatIP(d)
        index = faiss.IndexIVFFlat(quantizer, d, nlist, faiss.METRIC_INNER_PRODUCT)
        rng = np.random.default_rng(seed)
        sample = x if n <= nlist * 64 else x[np.sort(rng.choice(n, nlist * 64, replace=False))]
        index.cp.seed = seed
        index.train(sample)
        index.nprobe = min(nlist, nprobe or max(16, nlist // 16))
    else:
        raise SpecloopError(f"unknown index {kind!r}; use one of {', '.join(INDEXES)}.")
    if n:
        index.add(x)
    return index


def search(index: faiss.Index, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(similarities [q, k], pool indices [q, k]); index -1 (similarity -inf) where the pool is short."""
    q = np.ascontiguousarray(queries, dtype=np.float32)
    if index.ntotal == 0 or k <= 0 or not len(q):
        return np.full((len(q), max(k, 0)), -np.inf, np.float32), np.full((len(q), max(k, 0)), -1, np.int64)
    saved = faiss.cvar.distance_compute_blas_database_bs
    faiss.cvar.distance_compute_blas_database_bs = max(saved, FLAT_DATABASE_BLOCK)
    try:
        sims, idx = index.search(q, min(k, index.ntotal))
    finally:
        faiss.cvar.distance_compute_blas_database_bs = saved
    if idx.shape[1] < k:
        pad = k - idx.shape[1]
        sims = np.concatenate([sims, np.full((len(q), pad), -np.inf, np.float32)], axis=1)
        idx = np.concatenate([idx, np.full((len(q), pad), -1, np.int64)], axis=1)
    sims = np.where(idx < 0, -np.inf, sims).astype(np.float32)
    return sims, idx


def knn(pool: np.ndarray, queries: np.ndarray, k: int, kind: str = "flat") -> tuple[np.ndarray, np.ndarray]:
    return search(build_index(pool, kind), queries, k)


def recall_at_k(exact_idx: np.ndarray, approx_idx: np.ndarray) -> float:
    """Share of the exact top-k neighbours the approximate search also returned (ignoring order)."""
    hits = total = 0
    for e, a in zip(exact_idx, approx_idx, strict=True):
        want = {int(i) for i in e if i >= 0}
        hits += len(want & {int(i) for i in a if i >= 0})
        total += len(want)
    return hits / total if total else 1.0


def numpy_topk(pool: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k by a plain matrix product and argpartition (the benchmark's reference)."""
    sims = queries @ pool.T
    part = np.argpartition(-sims, kth=min(k, sims.shape[1]) - 1, axis=1)[:, :k]
    part_sims = np.take_along_axis(sims, part, axis=1)
    order = np.argsort(-part_sims, axis=1)
    return np.take_along_axis(part_sims, order, axis=1), np.take_along_axis(part, order, axis=1)
