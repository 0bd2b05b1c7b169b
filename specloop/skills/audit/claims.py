"""Claims against evidence: every FAR, threshold and recall the run states is recomputed from the
`inference.csv` files on disk with the loop's own KPI function, and every kept checkpoint is
re-hashed and compared with the ledger."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from specloop.errors import SpecloopError
from specloop.skills.audit.findings import Findings
from specloop.skills.audit.run_records import BEST_MODEL_FILE, STATE_FILE, RunRecords
from specloop.skills.changenet.kpi import confusion_at, far_at_full_recall
from specloop.skills.changenet.scores import read_scores

CANDIDATES = ("best_val", "latest")  # ties keep the first: the loop prefers best_val

# One stated number to hold against the evidence: (check, dotted key in the record, recomputed
# value, what the number is in a finding's words).
Claim = tuple[str, str, float | int | None, str]


@dataclass(frozen=True)
class Kpi:
    """The KPI recomputed from one inference.csv."""

    source: str
    far: float
    threshold: float
    recall: float
    fp: int
    tn: int
    n_pass: int
    n_defect: int
    recall_by_type: dict[str, float]


@dataclass
class Truth:
    """What one iteration's evidence says, next to what the ledger says it kept."""

    label: str
    candidates: dict[str, Kpi] = field(default_factory=dict)
    holdout: Kpi | None = None

    @property
    def chosen(self) -> str | None:
        if len(self.candidates) < len(CANDIDATES):
            return None
        return min(CANDIDATES, key=lambda n: (self.candidates[n].far, CANDIDATES.index(n)))

    @property
    def kpi(self) -> Kpi | None:
        return self.candidates[self.chosen] if self.chosen else None


def kpi_from_csv(path: Path, source: str) -> Kpi:
    df, scores, defect = read_scores(path)
    far, threshold = far_at_full_recall(scores, defect)
    at = confusion_at(scores, defect, threshold)
    labels = df["label"].to_numpy()
    by_type = {
        str(label): float((scores[labels == label] >= threshold).mean())
        for label in sorted(set(labels[defect]))
    }
    return Kpi(
        source,
        far,
        threshold,
        float(at["recall"]),
        int(at["fp"]),
        int(at["tn"]),
        int((~defect).sum()),
        int(defect.sum()),
        by_type,
    )


def same(claimed: Any, actual: float | int | None) -> bool:
    """A stated number equals a recomputed one (JSON null stands for +inf or a missing value)."""
    if claimed is None or isinstance(claimed, bool):
        return actual is None or (isinstance(actual, float) and math.isinf(actual))
    try:
        value = float(claimed)
    except (TypeError, ValueError):
        return False
    if actual is None:
        return False
    if math.isinf(actual) or math.isinf(value):
        return value == actual
    return math.isclose(value, actual, rel_tol=1e-9, abs_tol=1e-12)


def dig(data: Any, key: str) -> Any:
    """`data["a"]["b"]` for the key "a.b"; None where a level is missing or not a mapping."""
    for part in key.split("."):
        data = data.get(part) if isinstance(data, dict) else None
    return data


def at_full_recall(kpi: Kpi, what: str) -> list[Claim]:
    """The FAR and threshold as `changenet evaluate` names them (metrics, selection, RCA)."""
    return [
        ("claims.far", "far_at_100_recall", kpi.far, f"{what} FAR"),
        ("claims.threshold", "threshold_at_100_recall", kpi.threshold, f"{what} threshold"),
    ]


def evaluated(record: dict[str, Any]) -> bool:
    return "kpi_far" in record or "chosen" in record


class ClaimChecker:
    """Recomputes the evidence of each iteration once and compares every stated number with it."""

    def __init__(self, run: RunRecords, out: Findings) -> None:
        self.run = run
        self.out = out
        self.truths: dict[str, Truth] = {}

    def expect(
        self, check: str, claimed: Any, actual: float | int | None, *, file: str, where: str, what: str
    ) -> None:
        if not same(claimed, actual):
            self.out.add(
                check,
                f"{what} stated in the record differs from the evidence",
                file=file,
                where=where,
                expected=_show(actual),
                found=_show(claimed),
            )

    def expect_equal(
        self, check: str, message: str, expected: Any, found: Any, *, file: str, where: str
    ) -> None:
        """A stated name or path is the one the evidence points to."""
        if found != expected:
            self.out.add(check, message, file=file, where=where, expected=expected, found=found)

    def expect_each(self, data: Any, claims: Iterable[Claim], *, file: str, prefix: str = "") -> None:
        """Every claim's key looked up in `data` and held against its recomputed value."""
        for check, key, actual, what in claims:
            self.expect(check, dig(data, key), actual, file=file, where=f"{prefix}{key}", what=what)

    def run_all(self) -> dict[str, Truth]:
        for label, record in self.run.iterations.items():
            if evaluated(record):
                self.truths[label] = self._recompute(label, record)
        for label, truth in self.truths.items():
            self._iteration(label, self.run.iterations[label], truth)
        self._best()
        return self.truths

    def _recompute(self, label: str, record: dict[str, Any]) -> Truth:
        truth = Truth(label)
        base = self.run.dir / label / "inference"
        for name in CANDIDATES:
            kpi = self._load(base / "kpi" / name / "inference.csv")
            if kpi is not None:
                truth.candidates[name] = kpi
        hold = base / "holdout" / "inference.csv"
        if hold.is_file() or record.get("holdout_far") is not None:
            truth.holdout = self._load(hold)
        self.out.saw("claims.evidence", f"{label}: {len(truth.candidates)} KPI inference file(s)")
        return truth

    def _load(self, path: Path) -> Kpi | None:
        rel = self.run.rel(path)
        if not path.is_file():
            self.out.add(
                "claims.evidence",
                "the inference file behind an evaluated iteration is missing",
                file=rel,
                expected="the file",
                found="missing",
            )
            return None
        try:
            return kpi_from_csv(path, rel)
        except SpecloopError as exc:
            self.out.add("claims.evidence", f"the inference file cannot be scored: {exc}", file=rel)
            return None

    def _iteration(self, label: str, record: dict[str, Any], truth: Truth) -> None:
        where = f"iterations.{label}."
        kpi = truth.kpi
        evaluate_dir = self.run.dir / label / "evaluate"
        for name, cand in truth.candidates.items():
            claim = ("claims.far", f"candidates.{name}.kpi_far", cand.far, f"{label} {name} KPI FAR")
            self.expect_each(record, [claim], file=STATE_FILE, prefix=where)
            self._metrics(evaluate_dir / "candidates" / name / "metrics.json", cand)
        if kpi is not None:
            self.out.saw("claims.far", f"{label}: state, selection.json, metrics.json, rca_results")
            self.out.saw("claims.threshold", f"{label}: state, selection.json, metrics.json, threshold.txt")
            claims: list[Claim] = [
                ("claims.far", "kpi_far", kpi.far, f"{label} KPI FAR"),
                ("claims.threshold", "kpi_threshold", kpi.threshold, f"{label} KPI threshold"),
            ]
            self.expect_each(record, claims, file=STATE_FILE, prefix=where)
            self._metrics(evaluate_dir / "kpi" / "metrics.json", kpi)
            self._selection(label, record, truth)
            self._rca(label, record, kpi)
        if truth.holdout is not None:
            claim = ("claims.far", "holdout_far", truth.holdout.far, f"{label} holdout FAR")
            self.expect_each(record, [claim], file=STATE_FILE, prefix=where)
            self._metrics(evaluate_dir / "holdout" / "metrics.json", truth.holdout)
        self._checkpoint(label, record)

    def _metrics(self, path: Path, kpi: Kpi) -> None:
        """A metrics.json written by `changenet evaluate`: every KPI number in it."""
        data = self.run.json(path)
        if data is None or "far_at_100_recall" not in data:
            return
        rel = self.run.rel(path)
        self.out.saw("claims.recall", rel)
        counts = {"fp": kpi.fp, "tn": kpi.tn}
        claims: list[Claim] = [
            ("claims.far", "far_at_100_recall", kpi.far, "FAR@100%recall"),
            ("claims.threshold", "threshold_at_100_recall", kpi.threshold, "the 100%-recall threshold"),
            ("claims.recall", "recall_at_100_recall", kpi.recall, "recall"),
            *[
                ("claims.far", f"confusion_at_100_recall.{k}", v, f"the {k} count behind the FAR")
                for k, v in counts.items()
            ],
            *[
                ("claims.far", k, v, f"the {k} count")
                for k, v in (("n_pass", kpi.n_pass), ("n_defect", kpi.n_defect))
            ],
            *[
                (
                    "claims.recall",
                    f"per_defect_type.{label}.recall_at_100_threshold",
                    recall,
                    f"{label} recall",
                )
                for label, recall in kpi.recall_by_type.items()
            ],
        ]
        self.expect_each(data, claims, file=rel)

    def _selection(self, label: str, record: dict[str, Any], truth: Truth) -> None:
        chosen = truth.chosen
        fars = ", ".join(f"{n} {truth.candidates[n].far:.4%}" for n in CANDIDATES)
        self.out.saw("claims.selection", f"{label}: {fars}")
        sel_path = self.run.dir / label / "evaluate" / "selection.json"
        selection = self.run.json(sel_path) or {}
        sel_rel = self.run.rel(sel_path)
        claims = [(STATE_FILE, f"iterations.{label}.chosen", record.get("chosen"))]
        if selection:
            claims.append((sel_rel, "chosen", selection.get("chosen")))
        ckpt = str(record.get("best_ckpt_path") or "")
        claims.append((STATE_FILE, f"iterations.{label}.best_ckpt_path", Path(ckpt).stem if ckpt else None))
        for file, where, claimed in claims:
            message = f"{label} kept {claimed!r}, but the lower recomputed FAR is {chosen!r} ({fars})"
            self.expect_equal("claims.selection", message, chosen, claimed, file=file, where=where)
        for name, cand in truth.candidates.items():
            entry = (selection.get("candidates") or {}).get(name)
            if entry is not None:
                self.expect_each(
                    entry, at_full_recall(cand, name), file=sel_rel, prefix=f"candidates.{name}."
                )

    def _rca(self, label: str, record: dict[str, Any], kpi: Kpi) -> None:
        target = (self.run.state.get("config") or {}).get("far_target")
        rca_dir = self.run.dir / label / "rca_results"
        sources = [(STATE_FILE, f"iterations.{label}.rca.", record.get("rca"))]
        rca_json = rca_dir / "metrics.json"
        sources.append((self.run.rel(rca_json), "", self.run.json(rca_json)))
        for file, prefix, rca in sources:
            if not isinstance(rca, dict):
                continue
            self.expect_each(rca, at_full_recall(kpi, f"{label} RCA"), file=file, prefix=prefix)
            if isinstance(target, int | float) and "kpi_met" in rca and rca["kpi_met"] != (kpi.far < target):
                self.out.add(
                    "claims.far",
                    f"{label}: whether the KPI was met contradicts the recomputed FAR {kpi.far:.4%} "
                    f"against the target {target:.4%}",
                    file=file,
                    where=f"{prefix}kpi_met",
                    expected=kpi.far < target,
                    found=rca["kpi_met"],
                )
        txt = rca_dir / "threshold.txt"
        if txt.is_file():
            raw = txt.read_text(encoding="utf-8").strip()
            try:
                value = float(raw)
            except ValueError:
                value = math.nan
            ok = value == kpi.threshold or abs(value - kpi.threshold) <= 5e-9
            if not ok:
                self.out.add(
                    "claims.threshold",
                    f"{label} RCA threshold file differs from the recomputed threshold",
                    file=self.run.rel(txt),
                    where="line 1",
                    expected=f"{kpi.threshold:.8f}",
                    found=raw,
                )

    def _checkpoint(self, label: str, record: dict[str, Any]) -> None:
        path = record.get("best_ckpt_path")
        if not path:
            return
        file = self.run.local(str(path))
        recorded = [(STATE_FILE, f"iterations.{label}.best_ckpt_sha256", record.get("best_ckpt_sha256"))]
        sel_path = self.run.dir / label / "evaluate" / "selection.json"
        selection = self.run.json(sel_path)
        if selection and "checkpoint_sha256" in selection:
            recorded.append((self.run.rel(sel_path), "checkpoint_sha256", selection["checkpoint_sha256"]))
        self.verify_checkpoint(file, recorded)

    def verify_checkpoint(self, file: Path, recorded: list[tuple[str, str, Any]]) -> None:
        """`file` exists and hashes to every sha256 the ledger records for it (hashed once per file)."""
        rel = self.run.rel(file)
        if not file.is_file():
            src, where, _ = recorded[0]
            self.out.add(
                "claims.checkpoint",
                f"the kept checkpoint {rel} does not exist",
                file=rel,
                where=f"named in {src} {where}",
                expected="the checkpoint file",
                found="missing",
            )
            return
        actual = self.run.sha256(file)
        self.out.saw("claims.checkpoint", f"{rel} sha256 {actual[:12]}")
        for src, where, sha in recorded:
            if sha is None:
                self.out.add(
                    "claims.checkpoint",
                    f"the ledger records no sha256 for {rel}",
                    file=src,
                    where=where,
                    expected=actual,
                    found="none",
                    severity="warning",
                )
            elif sha != actual:
                self.out.add(
                    "claims.checkpoint",
                    f"{rel} is not the file the ledger recorded (replaced or modified after the run)",
                    file=rel,
                    where=f"recorded in {src} {where}",
                    expected=sha,
                    found=actual,
                )

    def _best(self) -> None:
        ranked = [(label, t.kpi) for label, t in self.truths.items() if t.kpi is not None]
        best_state = self.run.state.get("best") if isinstance(self.run.state.get("best"), dict) else None
        if not ranked:
            return
        # The loop replaces its best only on a strictly lower FAR, so the earliest minimum wins.
        true_label, true_kpi = min(ranked, key=lambda lk: lk[1].far)
        trajectory = ", ".join(f"{label} {k.far:.4%}" for label, k in ranked)
        self.out.saw("claims.best", trajectory)
        model = self.run.best_model
        claims: list[tuple[str, str, Any]] = []
        if best_state is None:
            self.out.add(
                "claims.best",
                "iterations were evaluated but the state names no best model",
                file=STATE_FILE,
                where="best",
                expected=true_label,
                found="none",
            )
        else:
            claims.append((STATE_FILE, "best.iter", best_state.get("iter")))
            self.expect(
                "claims.far",
                best_state.get("kpi_far"),
                true_kpi.far,
                file=STATE_FILE,
                where="best.kpi_far",
                what="the best model's FAR",
            )
        if model is not None:
            claims.append((BEST_MODEL_FILE, "iteration", model.get("iteration")))
        for file, where, claimed in claims:
            message = (
                f"the best model is named as {claimed!r}, but the lowest recomputed KPI FAR is "
                f"{true_label}'s ({trajectory})"
            )
            self.expect_equal("claims.best", message, true_label, claimed, file=file, where=where)
        record = self.run.iterations.get(true_label, {})
        if best_state is not None:
            self.expect_equal(
                "claims.best",
                "the state's best checkpoint is not the one its iteration kept",
                record.get("best_ckpt_path"),
                best_state.get("checkpoint"),
                file=STATE_FILE,
                where="best.checkpoint",
            )
        if model is not None:
            self._best_model(model, true_label, true_kpi, record)

    def _best_model(self, model: dict[str, Any], label: str, kpi: Kpi, record: dict[str, Any]) -> None:
        truth = self.truths[label]
        claims: list[Claim] = [
            ("claims.far", "kpi_far", kpi.far, "the best model's KPI FAR"),
            ("claims.threshold", "threshold", kpi.threshold, "the best model's threshold"),
        ]
        if truth.holdout is not None:
            claims.append(("claims.far", "holdout_far", truth.holdout.far, "the best model's holdout FAR"))
        self.expect_each(model, claims, file=BEST_MODEL_FILE)
        for check, key, expected, message in (
            (
                "claims.selection",
                "chosen",
                truth.chosen,
                "names a different candidate than the lower recomputed FAR",
            ),
            (
                "claims.best",
                "checkpoint",
                record.get("best_ckpt_path"),
                "points at a different checkpoint than the best iteration kept",
            ),
        ):
            found = model.get(key)
            self.expect_equal(
                check, f"best_model.json {message}", expected, found, file=BEST_MODEL_FILE, where=key
            )
        ckpt = model.get("checkpoint")
        if ckpt:
            self.verify_checkpoint(
                self.run.local(str(ckpt)),
                [(BEST_MODEL_FILE, "checkpoint_sha256", model.get("checkpoint_sha256"))],
            )


def _show(value: Any) -> str:
    if isinstance(value, float | np.floating) and math.isfinite(value) and not float(value).is_integer():
        return f"{float(value):.10g}"
    return "null (+inf)" if isinstance(value, float) and math.isinf(value) else str(value)


def check_claims(run: RunRecords, out: Findings) -> dict[str, Truth]:
    """Run every claims check; return the recomputed evidence per iteration (prose checks use it)."""
    return ClaimChecker(run, out).run_all()
