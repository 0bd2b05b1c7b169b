"""Where a run keeps each of its files, and the iteration labels (`baseline`, `iter1`, … `final`).

One place that knows the run directory's layout (NVIDIA's DEFT layout plus specloop's own
records), beside :class:`specloop.skills.aoi.layout.Workspace` for the inputs. Agents, the report
and the audit ask it for paths instead of joining strings.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

BASELINE = "baseline"
FINAL = "final"  # the label of the one stage after the iterations, loop_stop
_ITER = re.compile(r"iter([1-9]\d*)")

STATE_FILE = "deft_state.json"
LOG_FILE = "loop_log.jsonl"
TRANSCRIPT_FILE = "transcript.jsonl"
CHECKPOINTS_FILE = "checkpoints.sqlite"
REPORT_FILE = "DEFT_Loop_Report.html"
BEST_MODEL_FILE = "best_model.json"
BEST_MODEL_SPEC_FILE = "best_model_inference_spec.yaml"
STOP_REQUEST_FILE = "stop_request.json"
PREFLIGHT_SUMMARY_FILE = "preflight_summary.md"
CANDIDATES = ("best_val", "latest")  # the two checkpoints every training stage leaves


def iteration_label(n: int) -> str:
    """0 → `baseline`, n → `iter{n}`."""
    if n < 0:
        raise ValueError(f"an iteration number is 0 or more, not {n}")
    return BASELINE if n == 0 else f"iter{n}"


def iteration_number(label: str) -> int:
    """`baseline` → 0, `iter{n}` → n; anything else is a ValueError."""
    if label == BASELINE:
        return 0
    m = _ITER.fullmatch(label)
    if m is None:
        raise ValueError(f"{label!r} is not an iteration label (baseline, iter1, iter2, …)")
    return int(m.group(1))


def is_iteration_label(label: str) -> bool:
    return label == BASELINE or _ITER.fullmatch(label) is not None


def previous_label(label: str) -> str | None:
    """The iteration before `label` (None for the baseline)."""
    n = iteration_number(label)
    return None if n == 0 else iteration_label(n - 1)


def next_label(label: str) -> str:
    return iteration_label(iteration_number(label) + 1)


def label_order(label: str) -> tuple[int, str]:
    """Sort key: `baseline`, `iter1`, `iter2`, … by number; anything else after them."""
    return (iteration_number(label), label) if is_iteration_label(label) else (10**6, label)


@dataclass(frozen=True)
class IterationLayout:
    """The files of one iteration, `<run>/<label>/…` (NVIDIA's per-iteration folders)."""

    run_dir: Path
    label: str

    @property
    def root(self) -> Path:
        return self.run_dir / self.label

    # train
    @property
    def train_dir(self) -> Path:
        return self.root / "train"

    @property
    def train_spec(self) -> Path:
        return self.train_dir / "spec.yaml"

    def checkpoint(self, kind: str) -> Path:
        return self.train_dir / f"{kind}.pth"

    # inference and evaluate
    def inference_csv(self, kind: str) -> Path:
        return self.root / "inference" / "kpi" / kind / "inference.csv"

    @property
    def holdout_inference_csv(self) -> Path:
        return self.root / "inference" / "holdout" / "inference.csv"

    @property
    def evaluate_dir(self) -> Path:
        return self.root / "evaluate"

    def candidate_eval_dir(self, kind: str) -> Path:
        return self.evaluate_dir / "candidates" / kind

    @property
    def selection(self) -> Path:
        return self.evaluate_dir / "selection.json"

    # rca, routing, anomalygen, mining, dataset
    @property
    def rca_dir(self) -> Path:
        return self.root / "rca_results"

    @property
    def kpi_gaps(self) -> Path:
        return self.rca_dir / "kpi_gaps.parquet"

    @property
    def rca_explanation(self) -> Path:
        return self.rca_dir / "rca_explanation.md"

    @property
    def routing_dir(self) -> Path:
        return self.root / "routing_results"

    @property
    def routing_mining(self) -> Path:
        return self.routing_dir / "routing_mining.parquet"

    @property
    def routing_anomalygen(self) -> Path:
        return self.routing_dir / "routing_anomalygen.parquet"

    @property
    def anomalygen_dir(self) -> Path:
        return self.root / "anomalygen"

    @property
    def mining_dir(self) -> Path:
        return self.root / "mining_filter"

    @property
    def mined_rows(self) -> Path:
        return self.mining_dir / "mined_rows.csv"

    @property
    def dataset_dir(self) -> Path:
        return self.root / "dataset"

    @property
    def combined_csv(self) -> Path:
        return self.dataset_dir / f"train_combined_{self.label}.csv"

    @property
    def provenance_csv(self) -> Path:
        return self.dataset_dir / f"train_combined_{self.label}_provenance.csv"

    @property
    def merge_validation(self) -> Path:
        return self.dataset_dir / "merge_validation.json"

    @property
    def summary_md(self) -> Path:
        return self.run_dir / f"{self.label}_summary.md"


@dataclass(frozen=True)
class RunLayout:
    """The files of one run directory, `<workspace>/results/run_<ts>/`."""

    run_dir: Path

    def iteration(self, label: str) -> IterationLayout:
        return IterationLayout(self.run_dir, label)

    def rel(self, path: Path) -> str:
        """`path` relative to the run directory, POSIX style (how the state and records name files)."""
        return path.relative_to(self.run_dir).as_posix()

    @property
    def state(self) -> Path:
        return self.run_dir / STATE_FILE

    @property
    def log(self) -> Path:
        return self.run_dir / LOG_FILE

    @property
    def transcript(self) -> Path:
        return self.run_dir / TRANSCRIPT_FILE

    @property
    def checkpoints(self) -> Path:
        return self.run_dir / CHECKPOINTS_FILE

    @property
    def preflight_summary(self) -> Path:
        return self.run_dir / PREFLIGHT_SUMMARY_FILE

    @property
    def synth_pool(self) -> Path:
        return self.run_dir / "synth_pool"

    @property
    def synth_manifest(self) -> Path:
        return self.synth_pool / "manifest.json"

    @property
    def source_pool(self) -> Path:
        return self.synth_pool / "source_pool.parquet"

    @property
    def sdg_rows(self) -> Path:
        return self.synth_pool / "sdg_rows.csv"

    @property
    def report(self) -> Path:
        return self.run_dir / REPORT_FILE

    @property
    def best_model(self) -> Path:
        return self.run_dir / BEST_MODEL_FILE

    @property
    def best_model_spec(self) -> Path:
        return self.run_dir / BEST_MODEL_SPEC_FILE

    @property
    def best_model_inference_dir(self) -> Path:
        return self.run_dir / "best_model_inference"

    @property
    def stop_request(self) -> Path:
        return self.run_dir / STOP_REQUEST_FILE
