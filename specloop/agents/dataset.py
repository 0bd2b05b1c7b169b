"""Dataset agent: stages the synthetic pool, routes weak samples, ingests synthetic pairs, mines
the production pool and assembles the next training set."""

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
from specloop.skills.aoi.schema import LEAKAGE_KEY, leakage_keys, read_csv, write_csv
from specloop.skills.aoi.spec import load_spec
from specloop.skills.mining import EmbeddingCache, get_embedder, mine, random_draw
from specloop.skills.routing import route

EMBED_CACHE = ".cache/embeddings.parquet"


class Dataset(Agent):
    role = "dataset"

    def stage_pool(self) -> dict[str, Any]:
        spec = load_spec(self.ctx.workspace.spec)
        return self.tool(
            "aoi.stage_pool",
            "preflight",
            "baseline",
            stage_pool,
            ws=self.ctx.workspace,
            out_dir=self.ctx.layout.synth_pool,
            lights=spec.lights(),
            image_ext=spec.dataset.classify.image_ext,
        )

    def _pool_rows(self) -> pd.DataFrame:
        return pd.read_parquet(self.ctx.layout.source_pool)

    def routing(self, iter_label: str) -> StageResult:
        n = iteration_number(iter_label)
        ledger_state.update(self.ctx.run_dir, lambda st: st.__setitem__("current_iteration", n))
        s = self._route(iter_label, previous_label(iter_label) or "baseline")
        return StageResult(
            f"{s['to_mining']} target(s) to mining, {s['to_anomalygen']} to the synthetic pool",
            {"routing": s},
        )

    def _route(self, iter_label: str, prev_label: str) -> dict[str, Any]:
        pool = self._pool_rows()
        pool_labels = set(pool.loc[pool["source"] == "mining_pool", "label"])
        if not pool_labels and not (pool["source"] == "synthetic").any():
            raise HardStop("empty-mining-pool", "neither the mining pool nor the synthetic pool has any rows")
        return self.tool(
            "rca.route",
            "routing",
            iter_label,
            route,
            gaps_parquet=self.ctx.layout.iteration(prev_label).kpi_gaps,
            pool_labels=pool_labels,
            out_dir=self.ctx.layout.iteration(iter_label).routing_dir,
        )

    def anomalygen(self, iter_label: str) -> StageResult:
        s = self._ingest(iter_label)
        if s["skipped"]:
            return StageResult("no targets routed to the synthetic pool: skipped", {"anomalygen": s})
        return StageResult(
            f"ingested {s['rows_ingested']} synthetic pair(s) for {', '.join(s['routed_labels'])}",
            {"anomalygen": s},
        )

    def _ingest(self, iter_label: str) -> dict[str, Any]:
        """Ingest pre-generated pairs for the labels routed here, each pair once per run."""
        ws = self.ctx.workspace
        it = self.ctx.layout.iteration(iter_label)
        manifest = read_json(self.ctx.layout.synth_manifest)
        try:
            require_unchanged(ws, manifest)
        except ContractError as exc:
            raise HardStop("synthetic-pool-mutated", str(exc)) from None
        routed = pd.read_parquet(it.routing_anomalygen)
        sdg = read_csv(self.ctx.layout.sdg_rows)
        used = self._already_trained_keys()
        fresh = sdg[~leakage_keys(sdg).isin(used)]
        top_k = self.ctx.config()["top_k_per_target"]
        picked = []
        for label, group in routed.groupby("label"):
            budget = len(group) * top_k
            picked.append(fresh[fresh["label"] == str(label).strip().lower()].head(budget))
        rows = pd.concat(picked, ignore_index=True) if picked else sdg.iloc[0:0]
        out = it.anomalygen_dir
        out.mkdir(parents=True, exist_ok=True)
        write_csv(rows, out / "sdg_rows.csv")
        summary = {
            "pool_unchanged": True,
            "routed_targets": len(routed),
            "routed_labels": sorted(routed["label"].unique().tolist()),
            "rows_ingested": len(rows),
            "by_label": {str(k): int(v) for k, v in rows.groupby("label").size().items()},
            "skipped": len(routed) == 0,
        }
        atomic_write_json(out / "ingest_summary.json", summary)
        self.record("tool_result", "anomalygen", iter_label, tool="ingest", result=summary)
        return summary

    def _already_trained_keys(self) -> set[str]:
        """Leakage keys (workspace coordinates) of every row in the latest training set."""
        state = self.ctx.state()
        prev = state.get("training_csv")
        if prev:
            return set(leakage_keys(read_csv(self.ctx.run_dir / prev)))
        return set()

    def _training_raw(self) -> pd.DataFrame:
        """Rows trained on so far, in the mining pool's own coordinates (for exclusion)."""
        ws = self.ctx.workspace
        frames = [read_csv(ws.split("training").csv)]
        prev = self.ctx.state().get("training_csv")
        if prev:
            combined = read_csv(self.ctx.run_dir / prev)
            prefix = ws.rel(ws.split("mining_pool").images_dir) + "/"
            mined = combined[combined["input_path"].str.startswith(prefix)].copy()
            for col in ("input_path", "golden_path"):
                mined[col] = mined[col].str.removeprefix(prefix)
            frames.append(mined)
        return pd.concat(frames, ignore_index=True)

    def data_mining(self, iter_label: str) -> StageResult:
        s = self._mine(iter_label)
        if s.get("skipped"):
            return StageResult("no targets routed to mining: skipped", {"mining": s})
        return StageResult(
            f"kept {s['kept']} of {s['candidates']} neighbour(s) (rejected {s['rejected']}, "
            f"duplicates {s['duplicates']})",
            {"mining": s},
        )

    def _mine(self, iter_label: str) -> dict[str, Any]:
        ws = self.ctx.workspace
        it = self.ctx.layout.iteration(iter_label)
        cfg = self.ctx.config()
        spec = load_spec(ws.spec)
        ds = spec.dataset.classify
        targets = pd.read_parquet(it.routing_mining)
        out_dir = it.mining_dir
        pool_split = ws.split("mining_pool")
        if targets.empty or not pool_split.csv.is_file():
            out_dir.mkdir(parents=True, exist_ok=True)
            write_csv(targets.iloc[0:0][list(LEAKAGE_KEY)], out_dir / "mined_rows.csv")
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
            (out_dir / "mining_summary.txt").write_text("no targets routed to mining: skipped\n")
            return {"kept": 0, "skipped": True}
        pool = read_csv(pool_split.csv)
        if pool.empty:
            raise HardStop("empty-mining-pool", f"{ws.rel(pool_split.csv)} has no rows")
        embedder_name = self._embedder_name()
        embedder = get_embedder(
            embedder_name, lights_join=(ds.concat_type, ds.grid_map), progress=self.ctx.progress
        )
        exclude = {"training": self._training_raw()}
        for name in ("validation", "kpi", "holdout"):
            if ws.split(name).csv.is_file():
                exclude[name] = read_csv(ws.split(name).csv)
        previous = self._previous_kept(iter_label)
        result = self.tool(
            "mining.mine",
            "data_mining",
            iter_label,
            mine,
            targets=targets,
            pool=pool,
            targets_images=ws.split("kpi").images_dir,
            pool_images=pool_split.images_dir,
            embedder=embedder,
            cache=EmbeddingCache(ws.results / EMBED_CACHE),
            out_dir=out_dir,
            top_k=cfg["top_k_per_target"],
            min_similarity=cfg["min_similarity"],
            exclude=exclude,
            previous_kept=previous,
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
        return {
            "strategy": strategy,
            "kept": result.kept,
            "candidates": result.candidates,
            "rejected": result.rejected,
            "duplicates": result.duplicates,
            "excluded": result.excluded,
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
        mined = read_csv(it.mined_rows)
        mined = to_workspace_paths(mined, ws.rel(ws.split("mining_pool").images_dir)) if len(mined) else mined
        sdg = read_csv(it.anomalygen_dir / "sdg_rows.csv")
        prev = state.get("training_csv")
        return self.tool(
            "aoi.assemble",
            "assemble",
            iter_label,
            assemble,
            previous=(self.ctx.run_dir / prev) if prev else None,
            base=base,
            additions=[("mining_pool", mined), ("synthetic", sdg)],
            out_csv=it.combined_csv,
            provenance_csv=it.provenance_csv,
        )
