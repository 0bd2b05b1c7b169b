"""Route the selected weak samples: labels the mining pool holds go to k-NN mining, the rest to
the pre-generated synthetic pool."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from specloop.ledger.files import atomic_write_json


def route(gaps_parquet: Path, pool_labels: set[str], out_dir: Path) -> dict[str, Any]:
    gaps = pd.read_parquet(gaps_parquet)
    targets = gaps[gaps["selected"]]
    to_mining = targets[targets["label"].isin(pool_labels)]
    to_synth = targets[~targets["label"].isin(pool_labels)]
    out_dir.mkdir(parents=True, exist_ok=True)
    to_mining.to_parquet(out_dir / "routing_mining.parquet", index=False)
    to_synth.to_parquet(out_dir / "routing_anomalygen.parquet", index=False)
    summary = {
        "targets": len(targets),
        "to_mining": len(to_mining),
        "to_anomalygen": len(to_synth),
        "mining_labels": sorted(to_mining["label"].unique().tolist()),
        "anomalygen_labels": sorted(to_synth["label"].unique().tolist()),
    }
    atomic_write_json(out_dir / "routing_summary.json", summary)
    return summary
