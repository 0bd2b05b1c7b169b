"""Route the selected weak samples: the pre-generated single bucket, every selected gap to k-NN mining.

A customer's pre-generated NG/OK pairs are staged with the real mining pool into one source pool
(`synth_pool/source_pool.parquet`, each row tagged `mining_pool` or `synthetic`), so there is no
AnomalyGen fan-out to decide: all targets go to mining, and synthetic rows reach training only by
being among a target's nearest neighbours, under the same cutoff as real rows. The AnomalyGen
routing file is still written (empty), as NVIDIA's layout has it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from specloop.ledger.files import atomic_write_json

ROUTING = "single_bucket"


def route(gaps_parquet: Path, out_dir: Path) -> dict[str, Any]:
    """Write routing_mining.parquet (every selected gap), routing_anomalygen.parquet (none) and a summary."""
    gaps = pd.read_parquet(gaps_parquet)
    targets = gaps[gaps["selected"]]
    out_dir.mkdir(parents=True, exist_ok=True)
    targets.to_parquet(out_dir / "routing_mining.parquet", index=False)
    targets.iloc[0:0].to_parquet(out_dir / "routing_anomalygen.parquet", index=False)
    summary = {
        "routing": ROUTING,
        "targets": len(targets),
        "to_mining": len(targets),
        "to_anomalygen": 0,
        "mining_labels": sorted(targets["label"].unique().tolist()),
        "by_label": {str(k): int(v) for k, v in targets.groupby("label").size().items()},
    }
    atomic_write_json(out_dir / "routing_summary.json", summary)
    return summary
