"""Quality checks on a training's history and on the sequence of watcher rounds."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any

RISING_EVALS = 3  # validation loss rising this many evaluations in a row -> warn
OSCILLATION = 0.5  # a one-epoch training-loss change above this fraction -> flagged
WORSE_ROUNDS = 2  # this many worse rounds in a row -> roll back
KEEP_VERSIONS = 3  # on low disk, keep the best this many versions' files


def _finite(x: Any) -> bool:
    return isinstance(x, int | float) and math.isfinite(x)


def non_finite_epoch(history: Sequence[dict[str, Any]]) -> int | None:
    """The first epoch whose training or validation loss is NaN or infinite."""
    for rec in history:
        for key in ("train_loss", "val_loss"):
            if key in rec and rec[key] is not None and not _finite(rec[key]):
                return int(rec["epoch"])
    return None


def warnings(history: Sequence[dict[str, Any]]) -> list[str]:
    """Rising validation loss and oscillating training loss, one sentence each."""
    out = []
    vals = [(r["epoch"], r["val_loss"]) for r in history if _finite(r.get("val_loss"))]
    run = 0
    for (_, a), (epoch, b) in itertools.pairwise(vals):
        run = run + 1 if b > a else 0
        if run == RISING_EVALS:
            out.append(
                f"validation loss rose {RISING_EVALS} evaluations in a row (to {b:.4f} at epoch {epoch})"
            )
    losses = [(r["epoch"], r["train_loss"]) for r in history if _finite(r.get("train_loss"))]
    for (_, a), (epoch, b) in itertools.pairwise(losses):
        if a > 0 and abs(b - a) / a > OSCILLATION:
            out.append(
                f"oscillation: training loss changed {abs(b - a) / a:.0%} in epoch {epoch} ({a:.4f} → {b:.4f})"
            )
    return out


def worse_streak(rounds: Sequence[dict[str, Any]], champion: str) -> int:
    """How many of the latest rounds in a row, all fine-tuned from `champion`, were worse (a diverged
    training or a candidate below the champion); skipped rounds do not break a streak."""
    n = 0
    for r in reversed(rounds):
        if r.get("outcome") == "skipped":
            continue
        if not r.get("worse") or r.get("champion") != champion:
            break
        n += 1
    return n


def plateau(rounds: Sequence[dict[str, Any]], threshold: float, n: int = 3) -> bool:
    """True when each of the last `n` finished rounds improved the golden FAR by less than `threshold`."""
    done = [r for r in rounds if r.get("outcome") in ("promoted", "rejected")][-n:]
    return len(done) == n and all((r.get("improvement") or 0.0) < threshold for r in done)


def versions_to_prune(versions: Sequence[dict[str, Any]], keep: int = KEEP_VERSIONS) -> list[str]:
    """Version ids whose files may go on low disk: all but the champion and the best `keep` by golden FAR."""

    def score(v: dict[str, Any]) -> float:
        far = v["metrics"].get("golden_far")
        return far if far is not None else math.inf

    ranked = sorted((v for v in versions if v["status"] != "champion"), key=score)
    return [v["version"] for v in ranked[keep:]]
