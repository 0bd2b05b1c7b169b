"""Dataset agent: stages the unified source pool (real mining pool + pre-generated synthetic pairs),
routes weak samples to it, mines it and assembles the next training set."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
from rich.markup import escape

from specloop.agents.base import Agent, StageResult
from specloop.errors import ContractError, HardStop
from specloop.ledger import state as ledger_state
from specloop.ledger.files import atomic_write_json, read_json
from specloop.ledger.layout import iteration_number, previous_label
from specloop.skills.aoi.assemble import assemble
from specloop.skills.aoi.pool import require_unchanged, stage_pool, to_workspace_paths
from specloop.skills.aoi.schema import LEAKAGE_KEY, read_csv, write_csv
from specloop.skills.aoi.spec import load_spec
from specloop.skills.mining import EmbeddingCache, get_embedder, mine, random_draw
from specloop.skills.routing import route

EMBED_CACHE = ".cache/embeddings.parquet"
SOURCES = ("mining_pool", "synthetic")  # the source pool's provenance values, in report order
PROTECTED = ("validation", "kpi", "holdout")


class Dataset(Agent):
    role = "dataset"

    def stage_pool(self) -> dict[str, Any]:
        """Stage the source pool at pre-flight (an allocation mismatch stops here) and record what
        it holds, with the workspace inputs of NVIDIA's v2 config, in the state."""
        ws = self.ctx.workspace
        spec = load_spec(ws.spec)
        manifest = self.tool(
            "aoi.stage_pool",
            "preflight",
            "baseline",
            stage_pool,
            ws=ws,
            out_dir=self.ctx.layout.synth_pool,
            lights=spec.lights(),
            image_ext=spec.dataset.classify.image_ext,
        )
        train = ws.split("training")
        inputs = ledger_state.v2_inputs(
            training_csv=train.csv,
            validation_csv=ws.split("validation").csv,
            kpi_test_csv=ws.split("kpi").csv,
            images_dir=train.images_dir,
            num_gpus=getattr(spec.train, "num_gpus", None) or 1,
            batch_size=spec.dataset.classify.batch_size,
        )
        pool = {
            "synthetic_pairs": manifest["synthetic_rows"],
            "mining_pool_rows": manifest["mining_pool_rows"],
            "synthetic_by_defect_type": manifest.get("synthetic_by_defect_type", {}),
            "declared_allocation": manifest.get("declared_allocation"),
        }

        def apply(st: dict[str, Any]) -> None:
            st["config"].update(inputs)
            st["source_pool"] = pool

        ledger_state.update(self.ctx.run_dir, apply)
        return manifest

    def routing(self, iter_label: str) -> StageResult:
        n = iteration_number(iter_label)
        ledger_state.update(self.ctx.run_dir, lambda st: st.__setitem__("current_iteration", n))
        pool = pd.read_parquet(self.ctx.layout.source_pool)
        if pool.empty:
            raise HardStop("empty-mining-pool", "neither the mining pool nor the synthetic pool has any rows")
        prev = previous_label(iter_label) or "baseline"
        s = self.tool(
            "rca.route",
            "routing",
            iter_label,
            route,
            gaps_parquet=self.ctx.layout.iteration(prev).kpi_gaps,
            out_dir=self.ctx.layout.iteration(iter_label).routing_dir,
        )
        by_source = pool["source"].value_counts()
        shown = ", ".join(f"{int(by_source.get(src, 0))} {src}" for src in SOURCES)
        return StageResult(
            f"{s['targets']} target(s) to one bucket: k-NN over the source pool ({shown})",
            # the targets belong to the iteration that sets out to fix them, not to the RCA that chose them
            {"routing": s, "targets_by_label": s["by_label"]},
        )

    def anomalygen(self, iter_label: str) -> StageResult:
        """No generator runs and nothing bypasses k-NN: the staged synthetic pool is checked against
        its manifest (a change is a hard stop) and its pairs are mined with the real pool."""
        ws = self.ctx.workspace
        it = self.ctx.layout.iteration(iter_label)
        manifest = read_json(self.ctx.layout.synth_manifest)
        try:
            require_unchanged(ws, manifest)
        except ContractError as exc:
            raise HardStop("synthetic-pool-mutated", str(exc)) from None
        out = it.anomalygen_dir
        out.mkdir(parents=True, exist_ok=True)
        write_csv(read_csv(self.ctx.layout.sdg_rows).iloc[0:0], out / "sdg_rows.csv")
        summary = {
            "pool_unchanged": True,
            "routed_targets": len(pd.read_parquet(it.routing_anomalygen)),
            "rows_ingested": 0,
            "synthetic_pairs_in_source_pool": manifest["synthetic_rows"],
            "skipped": True,
        }
        atomic_write_json(out / "ingest_summary.json", summary)
        return StageResult(
            f"synthetic pool unchanged ({manifest['synthetic_rows']} pairs); mined with the real pool",
            {"anomalygen": summary},
        )

    def _protected(self) -> dict[str, pd.DataFrame]:
        """Rows mining must never take, in source-pool coordinates (workspace-relative paths).

        Each set is keyed both under its own images dir and as if under the mining pool's, so a
        pool row naming the same image path as a protected row is caught as before the pools were
        unified; `training` adds the latest combined training set (mined and synthetic rows)."""
        ws = self.ctx.workspace
        pool_images = ws.rel(ws.split("mining_pool").images_dir)
        out = {}
        for name in ("training", *PROTECTED):
            split = ws.split(name)
            if split.csv.is_file():
                raw = read_csv(split.csv)
                out[name] = pd.concat(
                    [to_workspace_paths(raw, ws.rel(split.images_dir)), to_workspace_paths(raw, pool_images)],
                    ignore_index=True,
                )
        prev = self.ctx.state().get("training_csv")
        if prev:
            out["training"] = pd.concat(
                [out["training"], read_csv(self.ctx.run_dir / prev)], ignore_index=True
            )
        return out

    def data_mining(self, iter_label: str) -> StageResult:
        s = self._mine(iter_label)
        if s.get("skipped"):
            return StageResult("no targets to mine: skipped", {"mining": s})
        per = ", ".join(
            f"{src} {s['by_source'][src]['kept']} of {s['by_source'][src]['candidates']}" for src in SOURCES
        )
        return StageResult(
            f"kept {s['kept']} of {s['candidates']} neighbour(s) ({per}; rejected {s['rejected']}, "
            f"duplicates {s['duplicates']})",
            {"mining": s},
        )

    def _mine(self, iter_label: str) -> dict[str, Any]:
        """k-NN over the unified source pool: the same embedder, top-k and cutoff for both sources."""
        ws = self.ctx.workspace
        it = self.ctx.layout.iteration(iter_label)
        cfg = self.ctx.config()
        spec = load_spec(ws.spec)
        ds = spec.dataset.classify
        targets = pd.read_parquet(it.routing_mining)
        out_dir = it.mining_dir
        pool = pd.read_parquet(self.ctx.layout.source_pool)
        pool_csv = ws.split("mining_pool").csv
        if pool_csv.is_file() and read_csv(pool_csv).empty:  # the real pool emptied since it was staged
            raise HardStop("empty-mining-pool", f"{ws.rel(pool_csv)} has no rows")
        if targets.empty:
            out_dir.mkdir(parents=True, exist_ok=True)
            empty = pool.iloc[0:0][[*LEAKAGE_KEY, "source"]]
            write_csv(empty, out_dir / "mined_rows.csv")
            write_csv(empty, out_dir / "mining_pool.csv")
            pd.DataFrame(
                [
                    {
                        "candidate_count": 0,
                        "kept_count": 0,
                        "rejected_count": 0,
                        "similarity_threshold": cfg["min_similarity"],
                    }
                ]
            ).to_csv(out_dir / "knn_summary.csv", index=False)
            (out_dir / "mining_summary.txt").write_text("no targets to mine: skipped\n")
            return {"kept": 0, "skipped": True}
        embedder = get_embedder(
            self._embedder_name(), lights_join=(ds.concat_type, ds.grid_map), progress=self.ctx.progress
        )
        exclude = self._protected()
        result = self.tool(
            "mining.mine",
            "data_mining",
            iter_label,
            mine,
            targets=targets,
            pool=pool,
            targets_images=ws.split("kpi").images_dir,
            pool_images=ws.root,
            embedder=embedder,
            cache=EmbeddingCache(ws.results / EMBED_CACHE),
            out_dir=out_dir,
            top_k=cfg["top_k_per_target"],
            min_similarity=cfg["min_similarity"],
            exclude=exclude,
            previous_kept=self._previous_kept(iter_label),
            lights=spec.lights(),
            image_ext=ds.image_ext,
            concat_type=ds.concat_type,
            grid_map=ds.grid_map,
        )
        for w in result.warnings:
            self.record("warning", "data_mining", iter_label, message=w)
            self.ctx.console.print(f"[yellow]warning:[/] {escape(w)}", highlight=False)
        strategy = cfg.get("mining_strategy", "knn")
        if strategy == "random":
            self._random_control(iter_label, pool, result.kept, exclude, out_dir / "mined_rows.csv")
        survivors = read_csv(out_dir / "mined_rows.csv")
        write_csv(survivors, out_dir / "mining_pool.csv")
        by_source = {src: {"candidates": 0, "kept": 0, **result.per_source.get(src, {})} for src in SOURCES}
        rows = survivors["source"].value_counts() if len(survivors) else pd.Series(dtype=int)
        return {
            "strategy": strategy,
            "kept": result.kept,
            "candidates": result.candidates,
            "rejected": result.rejected,
            "duplicates": result.duplicates,
            "excluded": result.excluded,
            "by_source": by_source,
            "rows_by_source": {src: int(rows.get(src, 0)) for src in SOURCES},
            "embedder": result.embedder,
            "warnings": result.warnings,
        }

    def _random_control(
        self, iter_label: str, pool: pd.DataFrame, n: int, exclude: dict[str, pd.DataFrame], out: Path
    ) -> None:
        """Replace the mined rows by as many rows drawn at random from the eligible pool."""
        seed = iteration_number(iter_label)
        rows = self.tool(
            "mining.random_draw",
            "data_mining",
            iter_label,
            random_draw,
            pool=pool,
            n=n,
            exclude=exclude,
            seed=seed,
        )
        write_csv(rows, out)

    def _embedder_name(self) -> str:
        cfg = self.ctx.config()
        if cfg["embedder"] != "changenet:baseline":
            return cfg["embedder"]
        # In-domain fallback: one fixed model for the whole run, so the pool is embedded once.
        baseline = ledger_state.iteration(self.ctx.state(), "baseline")
        return f"changenet:{self.ctx.run_dir / baseline['best_ckpt_path']}"

    def _previous_kept(self, iter_label: str) -> int | None:
        if iteration_number(iter_label) <= 1:
            return None
        prev = ledger_state.iteration(self.ctx.state(), previous_label(iter_label) or "").get("mining", {})
        return prev.get("kept")

    def assemble(self, iter_label: str) -> StageResult:
        s = self._assemble(iter_label)
        added = {k: v for k, v in s["by_source"].items() if k in ("mining_pool", "synthetic")}
        return StageResult(
            f"{s['rows_out']} rows ({', '.join(f'+{v} {k}' for k, v in added.items()) or 'nothing new'})",
            {"assembled": s, "rows_added": added},
        )

    def _assemble(self, iter_label: str) -> dict[str, Any]:
        ws = self.ctx.workspace
        state = self.ctx.state()
        it = self.ctx.layout.iteration(iter_label)
        train = ws.split("training")
        base = to_workspace_paths(read_csv(train.csv), ws.rel(train.images_dir))
        mined = read_csv(it.mined_rows)  # workspace-relative already: rows of the source pool
        sdg = read_csv(it.anomalygen_dir / "sdg_rows.csv")
        source = mined["source"] if len(mined) else pd.Series([], dtype=str)
        additions = [
            ("mining_pool", mined[source == "mining_pool"]),
            ("synthetic", pd.concat([mined[source == "synthetic"], sdg], ignore_index=True)),
        ]
        prev = state.get("training_csv")
        return self.tool(
            "aoi.assemble",
            "assemble",
            iter_label,
            assemble,
            previous=(self.ctx.run_dir / prev) if prev else None,
            base=base,
            additions=additions,
            out_csv=it.combined_csv,
            provenance_csv=it.provenance_csv,
        )
