"""The TAO-style experiment spec loader: key names, notes, warnings and type errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from specloop.errors import SpecError
from specloop.skills.aoi.spec import load_spec, load_spec_with_problems, resolve_path, spec_root

# Written in the shape of NVIDIA's published DEFT baseline_spec.yaml template: C-RADIO backbone,
# learnable difference module, a single light, container paths and TAO-only sections.
NVIDIA_LIKE = """
encryption_key: tlt_encode
task: classify
train:
  resume_training_checkpoint_path: null
  pretrained_model_path: null
  classify:
    loss: "ce"
    cls_weight: [1.0, 10.0]
  num_epochs: 10
  num_nodes: 1
  validation_interval: 10
  checkpoint_interval: 5
  optim: {lr: 1e-5, optim: "adamw", policy: "linear", momentum: 0.9, weight_decay: 0.01}
  results_dir: "${results_dir}/train"
  tensorboard: {enabled: True, infrequent_logging_frequency: 1}
results_dir: /results
model:
  backbone:
    type: "c_radio_v2_vit_base_patch16_224"
    pretrained_backbone_path: /data/pretrained_models/C-RADIOv2_B.pth
    freeze_backbone: False
  classify:
    train_margin_euclid: 2.0
    eval_margin: 0.3
    embedding_vectors: 5
    embed_dec: 30
    difference_module: 'learnable'
    learnable_difference_modules: 4
  decode_head: {use_summary_token: True, feature_strides: [4, 8, 16, 32]}
dataset:
  classify:
    train_dataset: {csv_path: /data/csv/training_set.csv, images_dir: /data/images}
    validation_dataset: {csv_path: /data/csv/validation_set.csv, images_dir: /data/images}
    test_dataset: {csv_path: /data/csv/validation_set.csv, images_dir: /data/images}
    infer_dataset: {csv_path: /data/kpi/testing_set.csv, images_dir: /data/images}
    image_ext: .jpg
    batch_size: 16
    workers: 2
    fpratio_sampling: 0.2
    num_input: 1
    input_map: {SolderLight: 0}
    concat_type: linear
    grid_map: {x: 2, y: 2}
    image_width: 224
    image_height: 224
    augmentation_config:
      rgb_input_mean: [0.485, 0.456, 0.406]
      rgb_input_std: [0.229, 0.224, 0.225]
      random_flip: {vflip_probability: 0.5, hflip_probability: 0.5, enable: True}
      random_rotate: {rotate_probability: 0.5, angle_list: [90, 180, 270], enable: True}
      random_color: {brightness: 0.3, contrast: 0.3, saturation: 0.3, hue: 0.3, enable: True}
      with_scale_random_crop: {enable: True}
      with_random_crop: True
      with_random_blur: True
      augment: True
    num_classes: 2
evaluate:
  checkpoint: ''
  trt_engine: "${results_dir}/gen_trt_engine/changenet-classify.trt"
  batch_size: ${dataset.classify.batch_size}
inference:
  checkpoint: ''
  trt_engine: "${results_dir}/gen_trt_engine/changenet-classify.trt"
  batch_size: ${dataset.classify.batch_size}
export:
  gpu_id: 0
  checkpoint: ''
  onnx_file: "${results_dir}/export/changenet-classify.onnx"
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "spec.yaml"
    path.write_text(text)
    return path


def test_nvidia_like_spec_loads_with_tao_keys_noted(tmp_path: Path) -> None:
    spec, problems = load_spec_with_problems(_write(tmp_path, NVIDIA_LIKE))
    assert spec is not None
    assert [p for p in problems if p.severity != "note"] == []
    noted = {p.message.split()[2] for p in problems}
    assert {
        "encryption_key",
        "train.tensorboard",
        "model.decode_head",
        "export",
        "evaluate.trt_engine",
    } <= noted
    assert spec.model.backbone.type == "c_radio_v2_vit_base_patch16_224"
    assert spec.lights() == ["SolderLight"]
    assert spec.train.results_dir == "/results/train"  # ${results_dir} interpolation resolved
    assert spec.evaluate.batch_size == 16  # interpolation into another section
    assert spec.train.optim.lr == pytest.approx(1e-5)


def test_unknown_key_is_a_warning_naming_it(tmp_path: Path) -> None:
    text = NVIDIA_LIKE.replace("  num_nodes: 1\n", "  num_nodes: 1\n  num_epoch: 3\n")
    spec, problems = load_spec_with_problems(_write(tmp_path, text))
    assert spec is not None
    warnings = [p for p in problems if p.severity == "warning"]
    assert len(warnings) == 1 and "train.num_epoch" in warnings[0].message
    assert warnings[0].rule == "spec-unknown-key"


@pytest.mark.parametrize(
    ("old", "new", "key", "expected"),
    [
        ("num_epochs: 10", "num_epochs: ten", "train.num_epochs", "an integer"),
        ("workers: 2", "workers: [2]", "dataset.classify.workers", "an integer"),
        (
            "freeze_backbone: False",
            "freeze_backbone: maybe",
            "model.backbone.freeze_backbone",
            "true or false",
        ),
        ("lr: 1e-5", "lr: fast", "train.optim.lr", "a number"),
    ],
)
def test_wrong_type_is_an_error_naming_key_and_type(
    tmp_path: Path, old: str, new: str, key: str, expected: str
) -> None:
    assert old in NVIDIA_LIKE
    spec, problems = load_spec_with_problems(_write(tmp_path, NVIDIA_LIKE.replace(old, new, 1)))
    assert spec is None
    errors = [p for p in problems if p.severity == "error"]
    assert len(errors) == 1
    assert key in errors[0].message and expected in errors[0].message
    assert errors[0].file.endswith("spec.yaml")


def test_invalid_choice_names_allowed_values(tmp_path: Path) -> None:
    _, problems = load_spec_with_problems(
        _write(tmp_path, NVIDIA_LIKE.replace('optim: "adamw"', 'optim: "lion"'))
    )
    (err,) = [p for p in problems if p.severity == "error"]
    assert "train.optim.optim" in err.message and "adamw" in err.message and "lion" in err.message


@pytest.mark.parametrize(
    ("diff", "loss"),
    [("learnable", "contrastive"), ("euclidean", "ce")],
)
def test_mismatched_head_and_loss_are_rejected(tmp_path: Path, diff: str, loss: str) -> None:
    text = NVIDIA_LIKE.replace("difference_module: 'learnable'", f"difference_module: '{diff}'").replace(
        'loss: "ce"', f'loss: "{loss}"'
    )
    with pytest.raises(SpecError, match=f"difference_module '{diff}' must be trained with"):
        load_spec(_write(tmp_path, text))


def test_unresolvable_interpolation_is_one_sentence(tmp_path: Path) -> None:
    text = NVIDIA_LIKE.replace("${dataset.classify.batch_size}", "${dataset.classify.batch}", 1)
    with pytest.raises(SpecError) as exc:
        load_spec(_write(tmp_path, text))
    assert "cannot resolve the spec" in str(exc.value) and "\n" not in str(exc.value)


def test_not_yaml_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="not a readable YAML"):
        load_spec(_write(tmp_path, "model: [unclosed\n"))
    with pytest.raises(SpecError, match="spec file not found"):
        load_spec(tmp_path / "nope.yaml")


def test_overrides_use_omegaconf_dotlist(tmp_path: Path) -> None:
    spec = load_spec(_write(tmp_path, NVIDIA_LIKE), ["train.num_epochs=3", "dataset.classify.batch_size=4"])
    assert spec.train.num_epochs == 3 and spec.dataset.classify.batch_size == 4
    assert spec.evaluate.batch_size == 4  # interpolations see the override


def test_relative_paths_resolve_against_the_workspace_root(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    (ws / "specs").mkdir(parents=True)
    spec_file = ws / "specs" / "baseline_spec.yaml"
    spec_file.write_text("task: classify\n")
    assert spec_root(spec_file) == ws.resolve()
    assert resolve_path("kpi/testing_set.csv", ws) == ws / "kpi/testing_set.csv"
    assert resolve_path("/abs/x.csv", ws) == Path("/abs/x.csv")
    assert resolve_path(None, ws) is None
