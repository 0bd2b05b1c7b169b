"""B3: the offline fixes the rule table names. Each changes the target project (its config, its
requirements, its code) so that the change is a reviewable commit, and says what it did."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from omegaconf import OmegaConf

from specloop.skills.target.fixrules import Signature

CONFIG = "configs/default.yaml"
MINI = "data/mini"
REQUIREMENTS = ("requirements-cpu.txt", "requirements-gpu.txt")
# Import names whose distribution has another name.
DISTRIBUTIONS = {
    "PIL": "pillow",
    "sklearn": "scikit-learn",
    "yaml": "PyYAML",
    "cv2": "opencv-python-headless",
    "skimage": "scikit-image",
    "prometheus_client": "prometheus-client",
}


class FixNotApplicable(Exception):
    """The rule matched but its fix cannot change anything here (the loop then stops)."""


@dataclass(frozen=True)
class FixContext:
    project: Path
    python: Path  # the target venv's interpreter
    mini_command: tuple[str, ...]  # rebuilds data/mini, run with `python`
    timeout_s: float = 600


Fix = Callable[[FixContext, Signature], str]
FIXES: dict[str, Fix] = {}


def fix(name: str) -> Callable[[Fix], Fix]:
    def register(fn: Fix) -> Fix:
        FIXES[name] = fn
        return fn

    return register


def _config_path(ctx: FixContext) -> Path:
    return ctx.project / CONFIG


def read_config(ctx: FixContext) -> dict[str, Any]:
    return OmegaConf.to_container(OmegaConf.load(_config_path(ctx)), resolve=False)  # type: ignore[return-value]


def set_config(ctx: FixContext, key: str, value: Any) -> str:
    """Set `key` (dotted) in the project's config, keeping its header comments; 'old → new'."""
    path = _config_path(ctx)
    text = path.read_text(encoding="utf-8")
    header = "".join(ln for ln in text.splitlines(keepends=True) if ln.startswith("#"))
    cfg = OmegaConf.load(path)
    old = OmegaConf.select(cfg, key)
    if old == value:
        raise FixNotApplicable(f"{CONFIG} already has {key}: {value!r}")
    OmegaConf.update(cfg, key, value, force_add=True)
    body = yaml.safe_dump(OmegaConf.to_container(cfg), sort_keys=True, allow_unicode=True)
    path.write_text(header + body, encoding="utf-8")
    return f"{CONFIG}: {key} {old!r} → {value!r}"


def _has(cfg: dict[str, Any], dotted: str) -> bool:
    node: Any = cfg
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


@fix("add_requirement")
def add_requirement(ctx: FixContext, sig: Signature) -> str:
    m = re.search(r"No module named '?([\w.]+)'?", sig.raw)
    if m is None:
        raise FixNotApplicable("the message names no module")
    module = m.group(1).split(".")[0]
    dist = DISTRIBUTIONS.get(module, module.replace("_", "-"))
    pip = [str(ctx.python), "-m", "pip", "install", "--no-input", dist]
    out = subprocess.run(pip, capture_output=True, text=True, timeout=ctx.timeout_s)
    if out.returncode != 0:
        raise FixNotApplicable(f"`pip install {dist}` failed: {(out.stderr or out.stdout).strip()[-200:]}")
    version = subprocess.run(
        [str(ctx.python), "-c", f"import importlib.metadata as m; print(m.version({dist!r}))"],
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout.strip()
    line = f"{dist}>={version}" if version else dist
    for name in REQUIREMENTS:
        path = ctx.project / name
        if path.is_file() and not re.search(rf"^{re.escape(dist)}\b", path.read_text(), re.M | re.I):
            path.write_text(path.read_text(encoding="utf-8").rstrip("\n") + f"\n{line}\n", encoding="utf-8")
    return f"added `{line}` to {' and '.join(REQUIREMENTS)} and installed it in the venv"


@fix("device_cpu")
def device_cpu(ctx: FixContext, sig: Signature) -> str:
    return set_config(ctx, "train.device", "cpu")


@fix("halve_batch")
def halve_batch(ctx: FixContext, sig: Signature) -> str:
    batch = int(read_config(ctx)["train"]["batch_size"])
    if batch <= 1:
        raise FixNotApplicable("train.batch_size is already 1")
    return set_config(ctx, "train.batch_size", max(1, batch // 2))


@fix("workers_zero")
def workers_zero(ctx: FixContext, sig: Signature) -> str:
    cfg = read_config(ctx)
    key = next((k for k in ("data.num_workers", "train.num_workers") if _has(cfg, k)), "data.num_workers")
    return set_config(ctx, key, 0)


@fix("data_path")
def data_path(ctx: FixContext, sig: Signature) -> str:
    """Point the config at data/mini, rebuilding it (by the venv.md rule) when it is not all there."""
    done = []
    mini = ctx.project / MINI
    if not ((mini / "train").is_dir() and (mini / "val").is_dir() and (mini / "manifest.json").is_file()):
        out = subprocess.run(
            [str(ctx.python), *ctx.mini_command],
            cwd=ctx.project,
            capture_output=True,
            text=True,
            timeout=ctx.timeout_s,
        )
        if out.returncode != 0:
            raise FixNotApplicable(f"rebuilding {MINI} failed: {out.stderr.strip()[-200:]}")
        done.append(f"rebuilt {MINI} with `{' '.join(ctx.mini_command)}`")
    try:
        done.append(set_config(ctx, "data.root", MINI))
    except FixNotApplicable:
        if not done:
            raise
    return "; ".join(done)


@fix("num_classes_from_data")
def num_classes_from_data(ctx: FixContext, sig: Signature) -> str:
    train = ctx.project / MINI / "train"
    if not train.is_dir():
        raise FixNotApplicable(f"{MINI}/train does not exist")
    n = sum(1 for p in train.iterdir() if p.is_dir())
    return set_config(ctx, "model.num_classes", n)


_CLIP = "torch.nn.utils.clip_grad_norm_({params}, 1.0)  # specloop bug-fix: clip gradients"


@fix("lower_lr_clip")
def lower_lr_clip(ctx: FixContext, sig: Signature) -> str:
    lr = float(read_config(ctx)["train"]["lr"])
    done = [set_config(ctx, "train.lr", lr / 10)]
    for path in sorted((ctx.project / "src").rglob("train.py")):
        text = path.read_text(encoding="utf-8")
        if "clip_grad_norm_" in text:
            continue
        m = re.search(r"^(\s*)loss\.backward\(\)\n", text, re.M)
        if m is None:
            continue
        params = "net.parameters()" if re.search(r"^\s*net = ", text, re.M) else "model.parameters()"
        text = text[: m.end()] + f"{m.group(1)}{_CLIP.format(params=params)}\n" + text[m.end() :]
        path.write_text(text, encoding="utf-8")
        done.append(f"{path.relative_to(ctx.project).as_posix()}: clip gradients at norm 1.0")
    return "; ".join(done)


@fix("image_size_from_data")
def image_size_from_data(ctx: FixContext, sig: Signature) -> str:
    """The image size the template rendered (the answers file), else the mini set's own."""
    answers = ctx.project / ".specloop-answers.yml"
    size = None
    if answers.is_file():
        rendered = yaml.safe_load(answers.read_text(encoding="utf-8")) or {}
        size = ((rendered.get("config") or {}).get("data") or {}).get("image_size")
    if size is None:
        import json

        manifest = json.loads((ctx.project / MINI / "manifest.json").read_text(encoding="utf-8"))
        size = max(manifest.get("image_size") or [0]) or None
    if size is None:
        raise FixNotApplicable("neither the answers file nor the manifest names an image size")
    return set_config(ctx, "data.image_size", size)


def apply_fix(name: str, ctx: FixContext, sig: Signature) -> str:
    return FIXES[name](ctx, sig)
