"""TAO-style Visual ChangeNet classify experiment specs, loaded with OmegaConf, typed with pydantic.

Key names follow TAO's experiment spec (`model.backbone`, `model.classify`, `dataset.classify.*`,
`train.*`, `evaluate`, `inference`, `export`) so a TAO user's spec loads unchanged. Keys TAO knows
but specloop does not use are accepted with a note; unknown keys get a warning; wrong types an
error naming the key and the expected type. Relative paths in a spec are relative to the
workspace root (the folder that holds `specs/`).
"""

from __future__ import annotations

import difflib
import re
import types
import typing
from pathlib import Path
from typing import Any, Literal

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from yaml import MarkedYAMLError, YAMLError

from specloop.errors import SpecError
from specloop.skills.aoi.problems import Problem


class _Section(BaseModel):
    model_config = ConfigDict(extra="ignore", validate_assignment=True)


class BackboneConfig(_Section):
    type: str = "resnet18"
    pretrained_backbone_path: str | None = None
    freeze_backbone: bool = False


class ModelClassifyConfig(_Section):
    train_margin_euclid: float = Field(2.0, ge=0)
    eval_margin: float = Field(0.005, ge=0)
    embedding_vectors: int = Field(5, ge=1)
    embed_dec: int = Field(30, ge=1)
    difference_module: Literal["learnable", "euclidean"] = "learnable"
    learnable_difference_modules: int = Field(4, ge=1, le=4)


class ModelConfig(_Section):
    backbone: BackboneConfig = BackboneConfig()
    classify: ModelClassifyConfig = ModelClassifyConfig()


class DataPath(_Section):
    csv_path: str | None = None
    images_dir: str | None = None


class RandomFlip(_Section):
    vflip_probability: float = Field(0.5, ge=0, le=1)
    hflip_probability: float = Field(0.5, ge=0, le=1)
    enable: bool = True


class RandomRotate(_Section):
    rotate_probability: float = Field(0.5, ge=0, le=1)
    angle_list: list[float] = [90, 180, 270]
    enable: bool = True


class RandomColor(_Section):
    brightness: float = Field(0.3, ge=0)
    contrast: float = Field(0.3, ge=0)
    saturation: float = Field(0.3, ge=0)
    hue: float = Field(0.3, ge=0, le=0.5)
    enable: bool = True
    color_probability: float = Field(0.5, ge=0, le=1)


class ScaleRandomCrop(_Section):
    scale_range: list[float] = [1.0, 1.2]
    enable: bool = True


class AugmentationConfig(_Section):
    rgb_input_mean: list[float] = [0.485, 0.456, 0.406]
    rgb_input_std: list[float] = [0.229, 0.224, 0.225]
    random_flip: RandomFlip = RandomFlip()
    random_rotate: RandomRotate = RandomRotate()
    random_color: RandomColor = RandomColor()
    with_scale_random_crop: ScaleRandomCrop = ScaleRandomCrop()
    with_random_blur: bool = True
    with_random_crop: bool = True
    augment: bool = False


class DatasetClassifyConfig(_Section):
    train_dataset: DataPath = DataPath()
    validation_dataset: DataPath = DataPath()
    test_dataset: DataPath = DataPath()
    infer_dataset: DataPath = DataPath()
    image_ext: str = ".jpg"
    batch_size: int = Field(32, ge=1)
    workers: int = Field(2, ge=0)
    fpratio_sampling: float = Field(0.1, ge=0, le=1)
    num_input: int = Field(4, ge=1)
    input_map: dict[str, int] | None = None
    grid_map: dict[str, int] | None = None
    concat_type: Literal["linear", "grid"] | None = None
    image_width: int = Field(128, ge=8)
    image_height: int = Field(128, ge=8)
    augmentation_config: AugmentationConfig = AugmentationConfig()
    num_classes: int = Field(2, ge=1, le=2)


class DatasetConfig(_Section):
    classify: DatasetClassifyConfig = DatasetClassifyConfig()


class OptimConfig(_Section):
    optim: Literal["adamw", "adam", "sgd"] = "adamw"
    lr: float = Field(1e-4, gt=0)
    policy: Literal["linear", "step"] = "linear"
    momentum: float = Field(0.9, ge=0)
    weight_decay: float = Field(0.01, ge=0)
    monitor_name: str = "val_loss"


class TrainClassifyConfig(_Section):
    loss: Literal["ce", "contrastive"] = "ce"
    cls_weight: list[float] = [1.0, 10.0]


class TrainConfig(_Section):
    num_epochs: int = Field(20, ge=1)
    num_nodes: int = Field(1, ge=1)
    num_gpus: int = Field(1, ge=1)  # > 1: the DEFT loop trains under torchrun with this many processes
    seed: int = 1234
    validation_interval: int = Field(1, ge=1)
    checkpoint_interval: int = Field(1, ge=1)
    keep_checkpoints: Literal["best_latest", "all"] = "best_latest"  # older epoch_NNN.pth pruned or kept
    pretrained_model_path: str | None = None
    resume_training_checkpoint_path: str | None = None
    results_dir: str | None = None
    device: Literal["auto", "cpu", "cuda"] = "auto"
    optim: OptimConfig = OptimConfig()
    classify: TrainClassifyConfig = TrainClassifyConfig()


# What `evaluate.checkpoint` and `inference.checkpoint` default to, under the train results folder.
DEFAULT_CHECKPOINT = "best_val.pth"


class EvaluateConfig(_Section):
    checkpoint: str | None = None
    batch_size: int | None = Field(None, ge=1)
    results_dir: str | None = None


class InferenceConfig(_Section):
    checkpoint: str | None = None
    batch_size: int | None = Field(None, ge=1)
    results_dir: str | None = None


class ExperimentSpec(_Section):
    """The typed spec. Everything specloop reads from a spec is a field here."""

    results_dir: str = "results"
    task: Literal["classify"] = "classify"
    model: ModelConfig = ModelConfig()
    dataset: DatasetConfig = DatasetConfig()
    train: TrainConfig = TrainConfig()
    evaluate: EvaluateConfig = EvaluateConfig()
    inference: InferenceConfig = InferenceConfig()

    @model_validator(mode="after")
    def _pairings(self) -> ExperimentSpec:
        diff = self.model.classify.difference_module
        loss = self.train.classify.loss
        wanted = {"learnable": "ce", "euclidean": "contrastive"}[diff]
        if loss != wanted:
            raise ValueError(
                f"model.classify.difference_module {diff!r} must be trained with train.classify.loss "
                f"{wanted!r}, not {loss!r}"
            )
        if len(self.train.classify.cls_weight) != 2:
            raise ValueError("train.classify.cls_weight must list 2 weights (PASS, defect)")
        ds = self.dataset.classify
        if ds.input_map is not None and not ds.input_map:
            raise ValueError(
                "dataset.classify.input_map is empty: name each light with its index (e.g. "
                "{SolderLight: 0, UniformLight: 1}), or remove the key for one image per side"
            )
        if ds.input_map and len(ds.input_map) != ds.num_input:
            raise ValueError(
                f"dataset.classify.num_input is {ds.num_input} but input_map names {len(ds.input_map)} "
                "light(s)"
            )
        if ds.concat_type == "grid" and ds.input_map and ds.grid_map:
            x, y = ds.grid_map.get("x", 0), ds.grid_map.get("y", 0)
            if x * y < len(ds.input_map):
                raise ValueError(
                    f"dataset.classify.grid_map {x}x{y} has fewer cells than the {len(ds.input_map)} lights"
                )
        return self

    @model_validator(mode="after")
    def _launcher_defaults(self) -> ExperimentSpec:
        """As TAO's launcher specs do: evaluate and inference read the trained model under the train
        results folder, so one spec runs train → evaluate → inference."""
        trained = f"{self.train.results_dir or f'{self.results_dir}/train'}/{DEFAULT_CHECKPOINT}"
        for section in (self.evaluate, self.inference):
            if not section.checkpoint:
                section.checkpoint = trained
        return self

    def lights(self) -> list[str]:
        from specloop.skills.aoi.images import light_names

        return light_names(self.dataset.classify.input_map)


# Keys TAO's launcher accepts that specloop reads no meaning from. Listed by dotted path; a
# section name covers everything below it.
TAO_ONLY_KEYS: frozenset[str] = frozenset(
    {
        "encryption_key",
        "wandb",
        "export",
        "gen_trt_engine",
        "quantize",
        "distill",
        "model.backbone.feat_downsample",
        "model.decode_head",
        "dataset.segment",
        "dataset.classify.num_golden",
        "train.gpu_ids",
        "train.cudnn",
        "train.tensorboard",
        "train.use_amp",
        "train.segment",
        "train.optim.lr_steps",
        "evaluate.num_gpus",
        "evaluate.gpu_ids",
        "evaluate.trt_engine",
        "evaluate.vis_after_n_batches",
        "inference.num_gpus",
        "inference.gpu_ids",
        "inference.trt_engine",
        "inference.vis_after_n_batches",
    }
)

_FREE_FORM = {"dataset.classify.input_map", "dataset.classify.grid_map"}


def _submodel(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            found = _submodel(arg)
            if found:
                return found
    return None


def _walk_keys(raw: Any, model: type[BaseModel], prefix: str, out: list[tuple[str, str]]) -> None:
    """Collect (dotted key, kind) for keys the model does not define: kind is 'tao' or 'unknown'."""
    if not isinstance(raw, dict):
        return
    for key, value in raw.items():
        dotted = f"{prefix}{key}"
        if dotted in TAO_ONLY_KEYS:
            out.append((dotted, "tao"))
            continue
        field = model.model_fields.get(str(key))
        if field is None:
            out.append((dotted, "unknown"))
            continue
        if dotted in _FREE_FORM:
            continue
        sub = _submodel(field.annotation)
        if sub is not None:
            _walk_keys(value, sub, dotted + ".", out)


_EXPECTED = {
    "int_parsing": "an integer",
    "int_type": "an integer",
    "int_from_float": "an integer",
    "float_parsing": "a number",
    "float_type": "a number",
    "bool_parsing": "true or false",
    "bool_type": "true or false",
    "string_type": "a string",
    "list_type": "a list",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
}


def _type_problems(exc: ValidationError, file: str) -> list[Problem]:
    problems = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"])
        kind = err["type"]
        if kind in _EXPECTED:
            msg = f"key {loc} expects {_EXPECTED[kind]}, got {err['input']!r}"
        elif kind == "value_error":
            msg = str(err["msg"]).removeprefix("Value error, ")
        elif loc:
            msg = f"key {loc}: {err['msg'][0].lower()}{err['msg'][1:]}, got {err['input']!r}"
        else:
            msg = err["msg"]
        problems.append(Problem(file, "spec-type", msg))
    return problems


def schema_keys(model: type[BaseModel] = ExperimentSpec, prefix: str = "") -> list[str]:
    """Every dotted key the typed spec defines, sections included (`train`, `train.num_epochs`, …)."""
    keys = []
    for name, field in model.model_fields.items():
        dotted = f"{prefix}{name}"
        keys.append(dotted)
        sub = _submodel(field.annotation)
        if sub is not None:
            keys.extend(schema_keys(sub, dotted + "."))
    return keys


_DOTTED_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")


def _known_override_key(key: str, keys: set[str]) -> bool:
    """A key of the schema, a light under a free-form map, or a TAO key specloop accepts unused."""
    if key in keys:
        return True
    prefixes = _FREE_FORM | TAO_ONLY_KEYS
    return any(key == p or key.startswith(p + ".") for p in prefixes)


def override_problems(overrides: list[str], file: str) -> list[Problem]:
    """Each `key=value` override checked against the schema before it is merged: an unparsable or
    unknown key is an error naming it and the nearest valid key, never silently dropped."""
    keys = set(schema_keys())
    problems = []
    for item in overrides:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not _DOTTED_KEY.fullmatch(key):
            problems.append(
                Problem(
                    file,
                    "override-key",
                    f"override {item!r} is not key=value with a dotted key (e.g. train.num_epochs=5)",
                )
            )
            continue
        if not _known_override_key(key, keys):
            near = difflib.get_close_matches(key, sorted(keys), n=1, cutoff=0.6)
            hint = f"; did you mean {near[0]}?" if near else "; see the keys of a TAO classify spec"
            problems.append(Problem(file, "override-key", f"override {item!r}: unknown key {key}{hint}"))
            continue
        try:
            OmegaConf.from_dotlist([item])
        except (YAMLError, OmegaConfBaseException) as exc:
            first = str(exc).strip().splitlines()[0]
            problems.append(
                Problem(
                    file, "override-value", f"override {item!r}: value {value!r} does not parse ({first})"
                )
            )
    return problems


def _yaml_problem(exc: Exception, name: str) -> Problem:
    """A YAML error as one sentence with the line it was found on."""
    if isinstance(exc, MarkedYAMLError) and exc.problem_mark is not None:
        what = exc.problem or exc.context or type(exc).__name__
        return Problem(
            name, "spec-yaml", f"not a readable YAML file ({what})", line=exc.problem_mark.line + 1
        )
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return Problem(name, "spec-yaml", f"not a readable YAML file ({first})")


def spec_root(spec_path: Path) -> Path:
    """The folder relative spec paths resolve against: the workspace root for `<ws>/specs/*.yaml`."""
    parent = spec_path.resolve().parent
    return parent.parent if parent.name == "specs" else parent


def load_spec_with_problems(
    path: Path, overrides: list[str] | None = None, *, display: str | None = None
) -> tuple[ExperimentSpec | None, list[Problem]]:
    """Load, resolve interpolations, validate. Returns the spec (None on error) and every finding."""
    name = display or str(path)
    if not path.is_file():
        return None, [Problem(name, "spec-missing", "spec file not found")]
    if overrides:
        bad = override_problems(list(overrides), name)
        if bad:
            return None, bad
    try:
        conf = OmegaConf.load(path)
        if not conf:
            return None, [
                Problem(
                    name,
                    "spec-empty",
                    "the spec is empty; a run needs at least dataset.classify's image_ext and input_map "
                    "(start from a TAO classify spec)",
                )
            ]
        if overrides:
            conf = OmegaConf.merge(conf, OmegaConf.from_dotlist(list(overrides)))
        raw = OmegaConf.to_container(conf, resolve=True)
    except OmegaConfBaseException as exc:
        first = str(exc).strip().splitlines()[0]
        return None, [Problem(name, "spec-interpolation", f"cannot resolve the spec: {first}")]
    except Exception as exc:  # yaml.YAMLError and friends: the file is not YAML at all
        return None, [_yaml_problem(exc, name)]
    if not isinstance(raw, dict):
        return None, [Problem(name, "spec-yaml", "the spec must be a YAML mapping")]

    problems: list[Problem] = []
    extra: list[tuple[str, str]] = []
    _walk_keys(raw, ExperimentSpec, "", extra)
    for key, kind in extra:
        if kind == "tao":
            problems.append(
                Problem(name, "spec-tao-only", f"TAO key {key} is accepted but not used by specloop", "note")
            )
        else:
            problems.append(Problem(name, "spec-unknown-key", f"unknown key {key} is ignored", "warning"))
    try:
        spec = ExperimentSpec.model_validate(raw)
    except ValidationError as exc:
        return None, problems + _type_problems(exc, name)
    return spec, problems


def load_spec(path: Path, overrides: list[str] | None = None) -> ExperimentSpec:
    """Load a spec or raise SpecError with one sentence per error."""
    spec, problems = load_spec_with_problems(path, overrides)
    errs = [p for p in problems if p.severity == "error"]
    if spec is None or errs:
        raise SpecError(" ".join(p.sentence() for p in errs))
    return spec


def resolve_path(value: str | None, root: Path) -> Path | None:
    """A spec path as an absolute Path: relative values are taken from the workspace root."""
    if value in (None, ""):
        return None
    p = Path(value).expanduser()
    return p if p.is_absolute() else (root / p)
