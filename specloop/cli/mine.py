"""`specloop mine`: k-NN mining of a labelled pool around target samples."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.table import Table

from specloop.errors import SpecloopError

if TYPE_CHECKING:
    import pandas as pd

    from specloop.skills.aoi.layout import Workspace

console = Console()
err_console = Console(stderr=True)

EXCLUDED_SETS = ("training", "validation", "kpi", "holdout")


def _same_file(a: Path, b: Path) -> bool:
    return a.resolve() == b.resolve()


def _images_dir_for(
    csv: Path, df: pd.DataFrame, ws: Workspace, lights: list[str], ext: str, what: str
) -> Path:
    """The images dir a workspace CSV's paths are relative to; else the first dir where its rows resolve."""
    from specloop.skills.aoi.images import image_files

    for split in ws.splits():
        if split.csv.is_file() and _same_file(csv, split.csv):
            return split.images_dir
    if len(df):
        first = df.iloc[0]
        for split in ws.splits():
            files = image_files(split.images_dir, first["input_path"], first["object_name"], lights, ext)
            if all(f.is_file() for f in files):
                return split.images_dir
    raise SpecloopError(
        f"{csv}: cannot tell which images directory its paths are relative to (it is not a workspace "
        f"CSV and its first row resolves in none of them); pass --{what}-images DIR."
    )


def _check_out(out: Path, ws: Workspace) -> None:
    """A run writes only under <workspace>/results/ when it writes inside the workspace at all."""
    if out.exists() and not out.is_dir():
        raise SpecloopError(
            f"--out {out} is an existing file; name a folder (it is created when missing).", rule="out"
        )
    root, target = ws.root.resolve(), out.resolve()
    if target.is_relative_to(root) and not target.is_relative_to(ws.results.resolve()):
        raise SpecloopError(
            f"--out {out} is inside the workspace but not under {ws.results}; workspace inputs are "
            "read-only, write results under results/ or outside the workspace."
        )


def mine_command(
    targets: Path = typer.Option(
        ..., "--targets", help="CSV of the samples to mine around (e.g. weak KPI rows)."
    ),
    workspace: Path = typer.Option(..., "--workspace", help="The DEFT workspace (spec, layout, exclusions)."),
    out: Path = typer.Option(..., "--out", help="Output folder for mined_rows.csv and the summaries."),
    pool: Path | None = typer.Option(
        None, "--pool", help="Pool CSV (default: augmentation/mining_pool/mining_pool.csv)."
    ),
    embedder: str = typer.Option(
        "auto",
        "--embedder",
        help="auto (SigLIP if its weights are here, else --fallback-checkpoint, else pixels), siglip, "
        "timm:<name> or timm:<name>@<weights file>, changenet:<checkpoint>, pixels.",
    ),
    siglip_path: Path | None = typer.Option(None, "--siglip-path", help="Folder with SigLIP weights."),
    fallback_checkpoint: Path | None = typer.Option(
        None,
        "--fallback-checkpoint",
        help="ChangeNet checkpoint used by --embedder auto when SigLIP is absent.",
    ),
    top_k: int = typer.Option(5, "--top-k", min=1, help="Neighbours per target."),
    min_similarity: float = typer.Option(0.9, "--min-similarity", help="Keep neighbours with cosine ≥ this."),
    filter_by_label: bool = typer.Option(
        False, "--filter-by-label", help="Search only pool rows with the target's label."
    ),
    index: str = typer.Option("flat", "--index", help="flat (exact), hnsw or ivf (approximate)."),
    targets_images: Path | None = typer.Option(None, "--targets-images", help="Images dir of the targets."),
    pool_images: Path | None = typer.Option(None, "--pool-images", help="Images dir of the pool."),
    cache: Path | None = typer.Option(
        None, "--cache", help="Embedding cache (default: <workspace>/results/.cache/embeddings.parquet)."
    ),
    no_cache: bool = typer.Option(False, "--no-cache", help="Embed everything, store nothing."),
    no_exclude: bool = typer.Option(
        False,
        "--no-exclude",
        help="Do not drop pool rows found in training or colliding with val/KPI/holdout.",
    ),
    previous_kept: int | None = typer.Option(None, "--previous-kept", help="Kept count of the last call."),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
    as_json: bool = typer.Option(False, "--json", help="Print a machine-readable summary on stdout."),
) -> None:
    """Mine the pool for the nearest neighbours of each target by image embedding (faiss k-NN)."""
    from specloop.skills.aoi.layout import Workspace
    from specloop.skills.aoi.schema import read_csv
    from specloop.skills.aoi.spec import load_spec
    from specloop.skills.mining import EmbeddingCache, get_embedder, mine, resolve_embedder

    ws = Workspace(workspace)
    if not ws.root.is_dir():
        raise SpecloopError(f"workspace {workspace} is not a folder.")
    _check_out(out, ws)
    spec = load_spec(ws.spec)
    ds = spec.dataset.classify
    lights = spec.lights()
    pool_csv = pool or ws.split("mining_pool").csv
    target_df = read_csv(targets)
    pool_df = read_csv(pool_csv)
    t_images = targets_images or _images_dir_for(targets, target_df, ws, lights, ds.image_ext, "targets")
    p_images = pool_images or _images_dir_for(pool_csv, pool_df, ws, lights, ds.image_ext, "pool")

    exclude: dict[str, pd.DataFrame] = {}
    if not no_exclude:
        for split in ws.splits():
            if split.name in EXCLUDED_SETS and split.csv.is_file():
                exclude[split.name] = read_csv(split.csv)

    chosen, reason = resolve_embedder(
        "siglip" if embedder == "auto" else embedder,
        fallback_checkpoint=fallback_checkpoint,
        siglip_path=siglip_path,
    )
    err_console.print(f"[bold]embedder[/] {chosen}: {reason}", highlight=False)
    emb = get_embedder(
        chosen,
        lights_join=(ds.concat_type, ds.grid_map),
        device=device,
        siglip_path=siglip_path,
        progress=True,
    )
    store = None if no_cache else EmbeddingCache(cache or ws.results / ".cache" / "embeddings.parquet")
    result = mine(
        target_df,
        pool_df,
        targets_images=t_images,
        pool_images=p_images,
        embedder=emb,
        cache=store,
        out_dir=out,
        top_k=top_k,
        min_similarity=min_similarity,
        filter_by_label=filter_by_label,
        exclude=exclude,
        index=index,
        previous_kept=previous_kept,
        lights=lights,
        image_ext=ds.image_ext,
        concat_type=ds.concat_type,
        grid_map=ds.grid_map,
        progress=True,
    )
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "embedder": result.embedder,
                    "embedder_reason": reason,
                    "candidates": result.candidates,
                    "kept": result.kept,
                    "rejected": result.rejected,
                    "duplicates": result.duplicates,
                    "excluded": result.excluded,
                    "index_recall": result.recall,
                    "pool_embedded": result.pool_embedded,
                    "warnings": result.warnings,
                    "files": {k: str(v) for k, v in result.files.items()},
                },
                indent=2,
            )
        )
        return
    table = Table(title=f"k-NN mining · {len(target_df)} targets · top-{top_k} · cosine ≥ {min_similarity}")
    for col in ("candidates", "rejected", "duplicates", "kept", "excluded"):
        table.add_column(col, justify="right")
    excluded = ", ".join(f"{k} {v}" for k, v in result.excluded.items() if v) or "0"
    table.add_row(
        str(result.candidates), str(result.rejected), str(result.duplicates), str(result.kept), excluded
    )
    console.print(table)
    console.print(
        f"embedded {result.targets_embedded} target(s) and {result.pool_embedded} pool sample(s) "
        f"in {result.embed_seconds:.1f}s; search {result.search_seconds:.2f}s"
        + (f"; index recall@{top_k} {result.recall:.3f}" if result.recall is not None else ""),
        highlight=False,
    )
    for w in result.warnings:
        console.print(f"[yellow]warning:[/] {w}", highlight=False)
    console.print(f"mined rows: {result.files['mined_rows']}", highlight=False)
