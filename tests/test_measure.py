"""Measuring candidates with the generated project's own benchmark, and what is derived from it."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from specloop.errors import SpecloopError
from specloop.families import Family, get_family, list_families
from specloop.skills.scaffold.codegen import read_answers
from specloop.skills.scaffold.measure import (
    Measurement,
    extrapolate,
    measure_candidate,
    predict_epoch_seconds,
    render_candidate,
)

FAMILIES = list_families()


@pytest.fixture(scope="session")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("measure")


@pytest.fixture(scope="session")
def measured() -> dict[str, Measurement]:
    """Each family's default candidate measured once at batch 8, filled in by ``_measure``."""
    return {}


def _measure(family: Family, scratch: Path, cache: dict[str, Measurement]) -> Measurement:
    if family.name not in cache:
        cache[family.name] = measure_candidate(
            family, family.candidates[0], scratch_dir=scratch, batch_size=8, steps=3
        )
    return cache[family.name]


def _real_param_count(project: Path) -> int:
    """Build the model from the rendered project's own code, in this process."""
    package = read_answers(project)["package"]
    sys.path.insert(0, str(project / "src"))
    try:
        config = importlib.import_module(f"{package}.config")
        model = importlib.import_module(f"{package}.model")
        cfg = config.load_config(project / "configs" / "default.yaml")
        return sum(p.numel() for p in model.build_model(cfg).parameters())
    finally:
        sys.path.remove(str(project / "src"))


@pytest.mark.parametrize("family", FAMILIES, ids=[f.name for f in FAMILIES])
def test_measurement_is_plausible(family: Family, scratch: Path, measured: dict[str, Measurement]) -> None:
    m = _measure(family, scratch, measured)
    project = render_candidate(family, family.candidates[0], scratch)
    assert m.params == _real_param_count(project) > 0
    assert 0 < m.trainable_params <= m.params
    assert m.train_samples_per_sec > 0 and m.latency_ms_b1 > 0
    assert 50 < m.peak_rss_mb < 16_000
    assert (m.batch_size, m.steps, m.device, m.exit_code) == (8, 3, "cpu", 0)
    assert m.input_shape[0] == 8 and m.torch_version[0].isdigit()
    assert m.command[1] == "scripts/benchmark.py" and len(m.output_sha256) == 64
    assert json.loads(json.dumps(m.to_dict())) == m.to_dict()


def test_predicted_epoch_time_is_within_a_sane_factor_of_a_timed_epoch(scratch: Path) -> None:
    family = get_family("image_classification")
    project = render_candidate(family, family.candidates[0], scratch)
    batch = 32
    m = measure_candidate(family, family.candidates[0], scratch_dir=scratch, batch_size=batch)
    py = sys.executable
    subprocess.run(
        [py, "scripts/make_mini.py", "--out", "data/mini"], cwd=project, check=True, capture_output=True
    )
    proc = subprocess.run(
        [py, "scripts/train.py", "--data", "data/mini", "--epochs", "1", f"--batch-size={batch}"],
        cwd=project,
        check=True,
        capture_output=True,
        text=True,
    )
    epoch = json.loads(proc.stdout.splitlines()[-1])
    predicted = predict_epoch_seconds(m, epoch["train_samples"])
    ratio = predicted / epoch["train_seconds"]
    assert 0.25 < ratio < 4, (predicted, epoch["train_seconds"])


def test_extrapolations_carry_labels_and_formulas(scratch: Path, measured: dict[str, Measurement]) -> None:
    m = _measure(get_family("tabular"), scratch, measured)
    out = extrapolate(m, samples=10_000, epochs=3)
    assert {"cpu_train_seconds", "gpu_memory_mb", "gpu_train_seconds", "params"} <= set(out)
    for name, value in out.items():
        assert value["label"] in {"measured", "extrapolated", "cited"}, name
        assert value["formula"], name
    assert out["cpu_train_seconds"]["value"] == pytest.approx(
        30_000 / m.train_samples_per_sec, rel=1e-2, abs=0.1
    )
    assert out["gpu_memory_mb"]["value"] >= m.params * 16 / 2**20
    assumption = out["gpu_train_seconds"]["assumption"]
    assert assumption["label"] == "assumed" and out["gpu_train_seconds"]["hardware"]
    faster = extrapolate(
        m, samples=10_000, epochs=3, gpu={**assumption, "hardware": "X", "cuda_context_mb": 0}
    )
    assert faster["gpu_memory_mb"]["value"] < out["gpu_memory_mb"]["value"]


def test_a_benchmark_that_times_out_names_the_candidate(scratch: Path) -> None:
    family = get_family("timeseries")
    with pytest.raises(SpecloopError, match=r"timeseries/gru failed \(exit 124\): timed out"):
        measure_candidate(family, family.candidates[0], scratch_dir=scratch, batch_size=4, timeout_s=0.05)


def test_the_runner_is_pluggable_and_its_output_is_checked(scratch: Path) -> None:
    family = get_family("tabular")
    calls = []

    def runner(argv: list[str], cwd: Path, timeout_s: float) -> tuple[int, str, str, float]:
        calls.append((argv, cwd))
        return 0, "warming up\nnot json\n", "", 0.1

    with pytest.raises(SpecloopError, match="printed no result"):
        measure_candidate(family, family.candidates[0], scratch_dir=scratch, batch_size=4, runner=runner)
    assert calls and (calls[0][1] / "scripts" / "benchmark.py").is_file()

    def crashing(argv: list[str], cwd: Path, timeout_s: float) -> tuple[int, str, str, float]:
        return 1, "", "Traceback ...\nRuntimeError: out of memory\n", 0.1

    with pytest.raises(SpecloopError, match=r"tabular/mlp failed \(exit 1\): RuntimeError: out of memory"):
        measure_candidate(family, family.candidates[0], scratch_dir=scratch, batch_size=4, runner=crashing)
