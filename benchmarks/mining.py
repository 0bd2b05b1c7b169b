"""Mining benchmark: exact and approximate k-NN, embedding speed, and the cache on a second call.

    .venv/bin/python benchmarks/mining.py [--sizes 100000 1000000] [--workspace WS] [--out FILE.md]

1. k-NN over n × 768 L2-normalised pool vectors for 500 targets, top-5:
   - faiss `IndexFlatIP` (exact; what `mine(index="flat")` uses),
   - NumPy: matrix product in pool chunks + argpartition top-k (exact),
   - the arithmetic floor: 2·n·d·q FLOP at the machine's measured float32 matrix-multiply rate,
   - approximate indexes (IVF at every size, HNSW up to --hnsw-max) with build time, search time
     and recall@5 against exact.
   The vectors are clustered (like real embeddings: many near-duplicates around parts and boards),
   and every target is a noisy copy of a pool vector.
2. Embedding images/s on the CPU for each embedder, on the workspace's KPI images: pixels,
   timm resnet18, a ChangeNet checkpoint's backbone (random weights; the speed does not depend on
   the weights), and SigLIP base-patch16-224 architecture with random weights (no weights are
   downloaded; again the speed is the architecture's).
3. `mine()` twice over the workspace pool with one cache: the second call embeds no pool sample.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import tempfile
import time
from functools import partial
from pathlib import Path

import faiss
import numpy as np

D = 768
Q = 500
K = 5


def clustered(n: int, d: int, *, seed: int, centres: int = 4096, noise: float = 0.6) -> np.ndarray:
    """n unit vectors around `centres` random directions, generated in float32 chunks."""
    rng = np.random.default_rng(seed)
    c = rng.standard_normal((centres, d), dtype=np.float32)
    out = np.empty((n, d), np.float32)
    step = 100_000
    for s in range(0, n, step):
        m = min(step, n - s)
        block = c[rng.integers(0, centres, m)] + noise * rng.standard_normal((m, d), dtype=np.float32)
        block /= np.linalg.norm(block, axis=1, keepdims=True)
        out[s : s + m] = block
    return out


def targets_from(pool: np.ndarray, q: int, *, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = pool[rng.choice(len(pool), q, replace=False)] + 0.05 * rng.standard_normal(
        (q, pool.shape[1]), dtype=np.float32
    )
    return (t / np.linalg.norm(t, axis=1, keepdims=True)).astype(np.float32)


def best_of(fn, repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def matmul_rate(d: int = D, q: int = Q, n: int = 50_000) -> float:
    """FLOP/s of a float32 (q×d)·(d×n) product, the shape of the exact search."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((q, d), dtype=np.float32)
    b = rng.standard_normal((n, d), dtype=np.float32)
    a @ b.T
    return 2 * n * d * q / best_of(lambda: a @ b.T, 5)


def numpy_topk_chunked(pool: np.ndarray, queries: np.ndarray, k: int, chunk: int = 100_000):
    best_s = np.full((len(queries), k), -np.inf, np.float32)
    best_i = np.full((len(queries), k), -1, np.int64)
    for s in range(0, len(pool), chunk):
        sims = queries @ pool[s : s + chunk].T
        part = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        cs = np.concatenate([best_s, np.take_along_axis(sims, part, axis=1)], axis=1)
        ci = np.concatenate([best_i, part + s], axis=1)
        top = np.argpartition(-cs, k - 1, axis=1)[:, :k]
        best_s, best_i = np.take_along_axis(cs, top, axis=1), np.take_along_axis(ci, top, axis=1)
    order = np.argsort(-best_s, axis=1)
    return np.take_along_axis(best_s, order, axis=1), np.take_along_axis(best_i, order, axis=1)


def knn_rows(sizes: list[int], hnsw_max: int, nprobes: list[int]) -> list[list[str]]:
    """One block of rows per pool size; the matmul rate is measured right before each block."""
    from specloop.skills.mining.knn import build_index, recall_at_k, search

    rows = []
    for n in sizes:
        t0 = time.perf_counter()
        pool = clustered(n, D, seed=n)
        queries = targets_from(pool, Q, seed=1)
        gen = time.perf_counter() - t0
        repeat = 3 if n <= 200_000 else 1
        rate = matmul_rate()
        floor = 2 * n * D * Q / rate
        flat = build_index(pool, "flat")
        t_flat = best_of(partial(search, flat, queries, K), repeat)
        _, exact = search(flat, queries, K)
        del flat
        gc.collect()
        t_np = best_of(partial(numpy_topk_chunked, pool, queries, K), repeat)
        _, np_idx = numpy_topk_chunked(pool, queries, K)
        agree = recall_at_k(exact, np_idx)
        size = f"{n:,}"
        rows.append(
            [size, "faiss IndexFlatIP (exact)", "—", f"{t_flat:.3f}", f"{t_flat / floor:.2f}×", "1.000"]
        )
        rows.append(
            [size, "NumPy matmul + argpartition", "—", f"{t_np:.3f}", f"{t_np / floor:.2f}×", f"{agree:.3f}"]
        )
        rows.append([size, f"floor: 2·n·d·q at {rate / 1e9:.0f} GFLOP/s", "—", f"{floor:.3f}", "1.00×", "—"])
        for kind in ["ivf"] + (["hnsw"] if n <= hnsw_max else []):
            t0 = time.perf_counter()
            index = build_index(pool, kind)
            build = f"{time.perf_counter() - t0:.1f}"
            if kind == "ivf":
                default = index.nprobe
                settings = sorted({*(p for p in nprobes if p <= index.nlist), default})
            else:
                settings = [index.hnsw.efSearch]
            for value in settings:
                if kind == "ivf":
                    index.nprobe = value
                    mark = " (default)" if value == default else ""
                    what = f"IVF-Flat nlist {index.nlist}, nprobe {value}{mark}"
                else:
                    what = f"HNSW-Flat M 32, efSearch {value} (default)"
                t_search = best_of(partial(search, index, queries, K), repeat)
                _, approx = search(index, queries, K)
                rec = recall_at_k(exact, approx)
                rows.append([size, what, build, f"{t_search:.3f}", f"{t_search / floor:.2f}×", f"{rec:.3f}"])
                build = "″"
            del index
            gc.collect()
        print(f"  n={size}: vectors generated in {gen:.1f}s", flush=True)
        del pool
        gc.collect()
    return rows


def embed_rows(ws: Path, n_images: int) -> list[list[str]]:
    import torch
    from transformers import SiglipImageProcessor, SiglipVisionConfig, SiglipVisionModel
    from transformers.utils import logging as hf_logging

    from specloop.skills.aoi.images import image_files
    from specloop.skills.aoi.layout import Workspace
    from specloop.skills.aoi.schema import read_csv
    from specloop.skills.aoi.spec import load_spec
    from specloop.skills.changenet.checkpoint import save_checkpoint
    from specloop.skills.changenet.model import build_model
    from specloop.skills.mining import get_embedder

    w = Workspace(ws)
    spec = load_spec(w.spec)
    ds = spec.dataset.classify
    kpi = read_csv(w.split("kpi").csv)
    items = [
        image_files(w.kpi_images, r.input_path, r.object_name, spec.lights(), ds.image_ext)
        for r in kpi.itertuples()
    ][:n_images]
    tmp = Path(tempfile.mkdtemp(prefix="mining-bench-"))
    hf_logging.disable_progress_bar()
    torch.manual_seed(0)
    SiglipVisionModel(SiglipVisionConfig()).save_pretrained(tmp / "siglip-base-random")
    SiglipImageProcessor(size={"height": 224, "width": 224}).save_pretrained(tmp / "siglip-base-random")
    ckpt = save_checkpoint(
        tmp / "cn.pth", {"state_dict": build_model(spec).state_dict(), "spec": spec.model_dump()}
    )
    cases = [
        ("pixels", "pixels", n_images),
        ("timm:resnet18", "timm:resnet18 (224 px)", n_images),
        (
            f"changenet:{ckpt}",
            f"changenet ({spec.model.backbone.type}, {ds.image_height} px per light)",
            n_images,
        ),
        ("siglip", "siglip base-patch16-224 architecture", min(n_images, 32)),
    ]
    rows = []
    for name, label, n in cases:
        emb = get_embedder(
            name,
            lights_join=(ds.concat_type, ds.grid_map),
            device="cpu",
            siglip_path=tmp / "siglip-base-random",
            progress=False,
        )
        emb.embed(items[:8])  # warm-up
        t = best_of(partial(emb.embed, items[:n]), 2)
        rows.append([label, str(emb.dim), str(n), f"{n / t:.1f}"])
        print(f"  {label}: {n / t:.1f} images/s", flush=True)
    return rows


def cache_rows(ws: Path, embedder: str) -> list[list[str]]:
    from specloop.skills.aoi.layout import Workspace
    from specloop.skills.aoi.schema import read_csv
    from specloop.skills.aoi.spec import load_spec
    from specloop.skills.mining import EmbeddingCache, get_embedder, mine

    w = Workspace(ws)
    spec = load_spec(w.spec)
    ds = spec.dataset.classify
    kpi = read_csv(w.split("kpi").csv)
    pool = read_csv(w.split("mining_pool").csv)
    targets = kpi[kpi["label"] != "PASS"]
    tmp = Path(tempfile.mkdtemp(prefix="mining-cache-"))
    emb = get_embedder(embedder, lights_join=(ds.concat_type, ds.grid_map), device="cpu", progress=False)
    rows = []
    for call in (1, 2):
        t0 = time.perf_counter()
        res = mine(
            targets,
            pool,
            targets_images=w.kpi_images,
            pool_images=w.split("mining_pool").images_dir,
            embedder=emb,
            cache=EmbeddingCache(tmp / "embeddings.parquet"),
            out_dir=tmp / f"call{call}",
            top_k=K,
            min_similarity=0.5,
            lights=spec.lights(),
            image_ext=ds.image_ext,
        )
        total = time.perf_counter() - t0
        rows.append(
            [
                str(call),
                f"{len(pool):,}",
                str(res.pool_embedded),
                f"{res.embed_seconds:.2f}",
                f"{total:.2f}",
                str(res.kept),
            ]
        )
    return rows


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    ap.add_argument("--hnsw-max", type=int, default=100_000, help="build HNSW only up to this pool size")
    ap.add_argument("--workspace", type=Path, help="a synthetic workspace (default: synthesize a small one)")
    ap.add_argument("--images", type=int, default=256, help="images per embedder speed run")
    ap.add_argument("--cache-embedder", default="changenet-random", help="embedder of the cache run")
    ap.add_argument("--nprobe", type=int, nargs="+", default=[8, 16, 32], help="IVF nprobe values to try")
    ap.add_argument("--skip-knn", action="store_true")
    ap.add_argument("--skip-embed", action="store_true", help="only the k-NN table")
    ap.add_argument("--out", type=Path, help="also write the tables (markdown) here")
    args = ap.parse_args()

    threads = faiss.omp_get_max_threads()
    header = (
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU(s), faiss {faiss.__version__} "
        f"({threads} threads), numpy {np.__version__}"
    )
    print(header)
    parts = [f"Machine: {header}.", ""]
    if not args.skip_knn:
        rows = knn_rows(args.sizes, args.hnsw_max, args.nprobe)
        t = table(["pool", "method", "build s", "search s (500 q, top-5)", "÷ floor", "recall@5"], rows)
        print(t)
        parts += [
            f"k-NN, d = {D}, {Q} targets, top-{K}; floor = 2·n·d·q at the float32 matmul rate measured",
            "",
        ]
        parts += [t, ""]
    if args.skip_embed:
        if args.out:
            args.out.write_text("\n".join(parts) + "\n")
        return

    ws = args.workspace
    if ws is None:
        from specloop.skills.aoi.synth import synthesize_workspace

        ws = Path(tempfile.mkdtemp(prefix="mining-ws-")) / "ws"
        synthesize_workspace(ws, size="small", seed=0, progress=False)
    t = table(["embedder (CPU)", "dim", "images", "images/s"], embed_rows(ws, args.images))
    print(t)
    parts += [
        "Embedding speed on the CPU (KPI images of the small synthetic workspace, 2 lights joined):",
        "",
        t,
        "",
    ]

    embedder = args.cache_embedder
    if embedder == "changenet-random":
        from specloop.skills.aoi.spec import load_spec
        from specloop.skills.changenet.checkpoint import save_checkpoint
        from specloop.skills.changenet.model import build_model

        spec = load_spec(ws / "specs" / "baseline_spec.yaml")
        ckpt = Path(tempfile.mkdtemp(prefix="mining-cn-")) / "cn.pth"
        save_checkpoint(ckpt, {"state_dict": build_model(spec).state_dict(), "spec": spec.model_dump()})
        embedder = f"changenet:{ckpt}"
    t = table(
        ["mining call", "pool", "pool samples embedded", "embed s", "total s", "kept"],
        cache_rows(ws, embedder),
    )
    print(t)
    parts += [
        f"Two `mine()` calls over an unchanged pool with one cache ({embedder.split(':')[0]} embedder):",
        "",
        t,
    ]
    if args.out:
        args.out.write_text("\n".join(parts) + "\n")


if __name__ == "__main__":
    main()
