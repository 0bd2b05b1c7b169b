"""The promotion gate: a candidate replaces the champion only when it is measurably better.

Measured on the golden set (`kpi/golden_set.csv` when the workspace has one, else the KPI set),
never on the holdout, which stays an honest measure of what was promoted.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class GateRule:
    margin: float = 0.01  # FAR@100%R lower by at least this fraction of the champion's
    require_val: bool = True  # and not worse on the validation set

    def describe(self) -> str:
        tail = ", not worse on validation" if self.require_val else ""
        return f"golden FAR@100%R at least {self.margin:.0%} lower (relative){tail}"


@dataclass(frozen=True)
class GateDecision:
    promote: bool
    reason: str
    improvement: float | None  # relative golden-FAR improvement over the champion (0.1 = 10 % lower)

    def to_dict(self) -> dict[str, Any]:
        return {"promote": self.promote, "reason": self.reason, "improvement": self.improvement}


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.2%}"


def decide(candidate: dict[str, Any], champion: dict[str, Any] | None, rule: GateRule) -> GateDecision:
    """Compare metric dicts (`golden_far`, `val_far`); the reason carries both sides' numbers."""
    if champion is None:
        return GateDecision(True, "first model: no champion to beat", None)
    cand, champ = candidate.get("golden_far"), champion.get("golden_far")
    if cand is None:
        return GateDecision(False, "candidate has no golden-set FAR", None)
    if champ is None:
        return GateDecision(True, "champion has no golden-set FAR", None)
    improvement = (champ - cand) / champ if champ > 0 else (0.0 if cand == 0 else -1.0)
    numbers = f"golden FAR@100%R {_pct(cand)} vs champion {_pct(champ)} ({improvement:+.1%} relative)"
    if champ == 0 or cand > champ * (1 - rule.margin):
        return GateDecision(False, f"{numbers}; needs at least {rule.margin:.0%} lower", improvement)
    cv, pv = candidate.get("val_far"), champion.get("val_far")
    if rule.require_val and cv is not None and pv is not None and cv > pv:
        return GateDecision(
            False, f"{numbers}, but validation FAR {_pct(cv)} is worse than {_pct(pv)}", improvement
        )
    return GateDecision(True, f"{numbers}; validation FAR {_pct(cv)} vs {_pct(pv)}", improvement)
