"""`specloop changenet train|infer|evaluate -e SPEC [key=value …]` — TAO-launcher-style commands.

Trailing `key=value` arguments are OmegaConf dot-list overrides of the spec. Relative paths in the
spec resolve against the workspace root (the folder holding `specs/`). Works under
`torchrun --nproc_per_node N` (only rank 0 writes files and prints).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.table import Table

from specloop.errors import SpecloopError

if TYPE_CHECKING:
    from specloop.skills.aoi.spec import ExperimentSpec

app = typer.Typer(
    help="Train, run and evaluate ChangeNet classify models from a TAO-style spec.", no_args_is_help=True
)
console = Console()

SPEC_OPT = typer.Option(..., "-e", "--experiment-spec", help="The experiment spec YAML.")
RESULTS_OPT = typer.Option(None, "-r", "--results-dir", help="Where outputs go (default: from the spec).")
OVERRIDES_ARG = typer.Argument(None, help="Spec overrides as key=value (OmegaConf dot-list).")
QUIET_OPT = typer.Option(False, "--quiet", "-q", help="No progress bars.")


def _is_main() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def _load(spec_path: Path, overrides: list[str] | None) -> tuple[ExperimentSpec, Path]:
    from specloop.skills.aoi.spec import load_spec, spec_root

    return load_spec(spec_path, list(overrides or [])), spec_root(spec_path)


def _out_dir(
    explicit: Path | None, spec_value: str | None, spec: ExperimentSpec, root: Path, sub: str
) -> Path:
    from specloop.skills.aoi.spec import resolve_path

    if explicit is not None:
        return explicit
    return resolve_path(spec_value, root) or (resolve_path(spec.results_dir, root) or root / "results") / sub


def _data(spec: ExperimentSpec, root: Path, which: str) -> tuple[Path, Path]:
    from specloop.skills.changenet.train import dataset_paths

    paths = dataset_paths(spec, root, which)
    if paths is None:
        raise SpecloopError(f"dataset.classify.{which}.csv_path is not set in the spec.", rule="spec")
    return paths


def _checkpoint(spec_value: str | None, key: str, root: Path) -> Path:
    from specloop.skills.aoi.spec import resolve_path

    path = resolve_path(spec_value, root)
    if path is None:
        raise SpecloopError(f"{key} is not set; pass {key}=path/to/model.pth.", rule="spec")
    if not path.is_file():
        raise SpecloopError(
            f"{key} {path} does not exist; train first (`specloop changenet train -e SPEC`) or pass "
            f"{key}=path/to/model.pth.",
            rule="checkpoint-missing",
        )
    return path


@app.command()
def train(
    experiment_spec: Path = SPEC_OPT,
    overrides: list[str] | None = OVERRIDES_ARG,
    results_dir: Path | None = RESULTS_OPT,
    quiet: bool = QUIET_OPT,
    result_json: Path | None = typer.Option(
        None, "--result-json", help="Also write the result (rank 0) to this JSON file."
    ),
) -> None:
    """Train (or fine-tune / resume) a ChangeNet; writes checkpoints, status.json and train.log."""
    from specloop.ledger.files import atomic_write_json
    from specloop.skills.changenet.train import train as run_train

    spec, root = _load(experiment_spec, overrides)
    out = _out_dir(results_dir, spec.train.results_dir, spec, root, "train")
    result = run_train(spec, root, out, progress=not quiet)
    if _is_main():
        if result_json is not None:
            atomic_write_json(result_json, result.to_dict())
        console.print_json(json.dumps(result.to_dict()))


@app.command()
def infer(
    experiment_spec: Path = SPEC_OPT,
    overrides: list[str] | None = OVERRIDES_ARG,
    results_dir: Path | None = RESULTS_OPT,
    quiet: bool = QUIET_OPT,
) -> None:
    """Score `dataset.classify.infer_dataset` with `inference.checkpoint`; writes inference.csv."""
    from specloop.skills.changenet.infer import infer as run_infer

    spec, root = _load(experiment_spec, overrides)
    ckpt = _checkpoint(spec.inference.checkpoint, "inference.checkpoint", root)
    csv, images = _data(spec, root, "infer_dataset")
    out = _out_dir(results_dir, spec.inference.results_dir, spec, root, "inference")
    path = run_infer(spec, root, ckpt, csv, images, out / "inference.csv", progress=not quiet)
    if _is_main():
        console.print(f"inference.csv: {path}")


@app.command()
def evaluate(
    experiment_spec: Path = SPEC_OPT,
    overrides: list[str] | None = OVERRIDES_ARG,
    results_dir: Path | None = RESULTS_OPT,
    inference_csv: Path | None = typer.Option(
        None,
        "-i",
        "--inference-csv",
        help="Evaluate this inference.csv instead of running evaluate.checkpoint.",
    ),
    no_plots: bool = typer.Option(False, "--no-plots", help="Skip the PNG plots."),
    quiet: bool = QUIET_OPT,
) -> None:
    """KPI (FAR@100%recall) and metrics of an inference.csv, or of `evaluate.checkpoint` on
    `dataset.classify.test_dataset`."""
    from specloop.skills.changenet.evaluate import evaluate as run_evaluate
    from specloop.skills.changenet.infer import infer as run_infer

    spec, root = _load(experiment_spec, overrides)
    out = _out_dir(results_dir, spec.evaluate.results_dir, spec, root, "evaluate")
    if inference_csv is None:
        ckpt = _checkpoint(spec.evaluate.checkpoint, "evaluate.checkpoint", root)
        csv, images = _data(spec, root, "test_dataset")
        inference_csv = run_infer(spec, root, ckpt, csv, images, out / "inference.csv", progress=not quiet)
    if not _is_main():
        return
    metrics = run_evaluate(inference_csv, out, plots=not no_plots)
    table = Table(
        title=f"ChangeNet evaluation of {inference_csv.name} ({metrics['n_pass']} PASS, "
        f"{metrics['n_defect']} defect)"
    )
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key in ("far_at_100_recall", "threshold_at_100_recall", "auroc", "best_f1", "best_f1_threshold"):
        v = metrics[key]
        table.add_row(key, "n/a" if v is None else f"{v:.4f}")
    console.print(table)
    console.print(f"outputs: {out}")
