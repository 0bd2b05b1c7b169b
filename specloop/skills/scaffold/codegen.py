"""Render a target project from the versioned Jinja2 templates and an answers file.

The templates live in ``specloop/templates/target/``: ``common/`` is the skeleton every project
gets, and each family's folder (``Family.template``) is an overlay whose files are added to it or
replace the common file of the same path. A file or folder whose name starts with one ``_`` is a part:
it is only ever included by another template, never rendered on its own. ``__pkg__`` in a path
becomes the project's package name, a leading ``dot-`` in a file name becomes ``.`` (so package
data holds no hidden files), and the ``.j2`` suffix is dropped.

The answers (:func:`project_answers`) are plain JSON-able data with sorted keys; the same answers
and :data:`TEMPLATE_VERSION` render byte-identical files, and ``.specloop-answers.yml`` keeps them
so a project can be re-rendered (or later updated) from what made it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jinja2
import yaml

from specloop.errors import SpecloopError
from specloop.families.base import Candidate, Family

TEMPLATE_VERSION = "1.0.0"
ANSWERS_FILE = ".specloop-answers.yml"
TEMPLATE_ROOT = Path(__file__).resolve().parents[2] / "templates" / "target"

# what every generated project imports, whatever its family (pinned at least, resolved at install)
COMMON_REQUIREMENTS = (
    "fastapi>=0.110",
    "httpx>=0.27",
    "ipykernel>=6.25",
    "matplotlib>=3.7",
    "nbclient>=0.9",
    "nbformat>=5.9",
    "numpy>=1.24",
    "omegaconf>=2.3",
    "prometheus-client>=0.19",
    "pydantic>=2.5",
    "pytest>=8.0",
    "ruff>=0.6",
    "torch>=2.2",
    "uvicorn>=0.27",
)

TRAIN_DEFAULTS: dict[str, Any] = {
    "batch_size": 32,
    "device": "auto",
    "epochs": 5,
    "lr": 0.001,
    "num_workers": 0,
    "output_dir": "outputs",
    "seed": 0,
    "weight_decay": 0.0001,
}
INFER_DEFAULTS: dict[str, Any] = {"batch_size": 64, "device": "cpu"}
SERVE_DEFAULTS: dict[str, Any] = {"host": "127.0.0.1", "port": 8000}

_PROJECT_NAME = re.compile(r"^[a-z][a-z0-9]*(?:[-_][a-z0-9]+)*$")
MAX_PROJECT_NAME = 32  # keeps the generated imports within the line length


def package_name(project_name: str) -> str:
    """The Python identifier for a project slug: ``digit-recognizer`` → ``digit_recognizer``."""
    return project_name.replace("-", "_")


def _merge(*sections: Mapping[str, Any] | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for section in sections:
        out.update(section or {})
    return out


def _requirement_name(line: str) -> str:
    return re.split(r"[<>=!~\[; ]", line, maxsplit=1)[0].lower()


def project_answers(
    family: Family,
    candidate: Candidate,
    *,
    project_name: str,
    labels: list[str] | None = None,
    seed: int = 0,
    **extra: Any,
) -> dict[str, Any]:
    """Everything the templates need to render ``candidate`` of ``family`` as ``project_name``.

    ``labels`` rename the mini set's classes when there are as many as it has; otherwise the mini
    set keeps its own names and the requested ones are kept as ``requested_labels`` (they apply
    once the project trains on the user's data). ``extra`` is kept verbatim under ``extra``.
    """
    if not _PROJECT_NAME.match(project_name) or len(project_name) > MAX_PROJECT_NAME:
        raise SpecloopError(
            f"project name {project_name!r} breaks the rule: lowercase ASCII letters and digits, "
            f"words joined by '-' or '_', starting with a letter, at most {MAX_PROJECT_NAME} characters"
        )
    if candidate not in family.candidates:
        raise SpecloopError(f"candidate {candidate.name!r} is not one of family {family.name}'s candidates")
    requested = [str(label).strip() for label in labels] if labels else []
    bad = [label for label in requested if label in {"", ".", ".."} or "/" in label or "\\" in label]
    if bad:
        raise SpecloopError(
            f"label {bad[0]!r} breaks the rule: class names are non-empty, with no '/' or '\\'"
        )
    mini_labels = list(family.labels)
    if requested and len(requested) == len(mini_labels) and len(set(requested)) == len(requested):
        mini_labels = requested

    model = _merge(family.config.get("model"), candidate.model, candidate.config.get("model"))
    if mini_labels:
        model["num_classes"] = len(mini_labels)
    config = {
        "data": _merge(family.config.get("data"), candidate.config.get("data")),
        "model": model,
        "train": _merge(
            TRAIN_DEFAULTS, family.config.get("train"), candidate.config.get("train"), {"seed": seed}
        ),
        "infer": _merge(INFER_DEFAULTS, family.config.get("infer"), candidate.config.get("infer")),
        "serve": _merge(SERVE_DEFAULTS, family.config.get("serve"), candidate.config.get("serve")),
    }
    pins: dict[str, str] = {}
    for line in (*COMMON_REQUIREMENTS, *family.requirements, *candidate.requirements):
        pins[_requirement_name(line)] = line
    answers = {
        "template_version": TEMPLATE_VERSION,
        "family": family.name,
        "family_title": family.title,
        "template": family.template,
        "modality": family.modality,
        "task": family.task,
        "metric": family.metric,
        "candidate": candidate.name,
        "candidate_title": candidate.title,
        "candidate_description": candidate.description,
        "project_name": project_name,
        "package": package_name(project_name),
        "labels": mini_labels,
        "requested_labels": requested,
        "seed": seed,
        "mini_per_class": family.mini_per_class,
        "config": config,
        "requirements": [pins[k] for k in sorted(pins)],
        "mini_dataset": _dataset(family.mini_dataset),
        "full_dataset": _dataset(family.full_dataset),
        "extra": dict(extra),
    }
    try:
        return json.loads(json.dumps(answers, sort_keys=True, ensure_ascii=False))
    except TypeError as exc:
        raise SpecloopError(f"project answers must be plain JSON data: {exc}") from None


def _dataset(ref: Any) -> dict[str, Any]:
    return {k: getattr(ref, k) for k in ("name", "source", "size", "licence", "how_to_obtain", "offline")}


def _to_yaml(value: Any) -> str:
    return yaml.safe_dump(value, sort_keys=True, allow_unicode=True, default_flow_style=False, width=100)


def _py_list(items: list[Any], indent: int = 4) -> str:
    """A Python list literal that stays within the generated code's line length."""
    one_line = json.dumps(items, ensure_ascii=False)
    if len(one_line) <= 60:
        return one_line
    inner = "".join(f"{' ' * indent}{json.dumps(item, ensure_ascii=False)},\n" for item in items)
    return f"[\n{inner}]"


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATE_ROOT)),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
    )
    env.filters["to_yaml"] = _to_yaml
    env.filters["to_json"] = lambda v: json.dumps(v, sort_keys=True, ensure_ascii=False)
    env.filters["py_list"] = _py_list
    return env


def _is_part(rel: Path) -> bool:
    return any(part.startswith("_") and not part.startswith("__") for part in rel.parts)


def template_files(template: str) -> dict[str, str]:
    """Output path (``__pkg__`` unresolved) → template name, the family overlay winning."""
    files: dict[str, str] = {}
    for folder in ("common", template):
        base = TEMPLATE_ROOT / folder
        if not base.is_dir():
            raise SpecloopError(f"template folder {base} does not exist (family template {template!r})")
        for path in sorted(base.rglob("*.j2")):
            rel = path.relative_to(base)
            if not _is_part(rel):
                out = rel.with_suffix("")
                out = out.with_name("." + out.name[4:]) if out.name.startswith("dot-") else out
                files[out.as_posix()] = f"{folder}/{rel.as_posix()}"
    return files


def render_project(answers: Mapping[str, Any], out_dir: Path) -> list[Path]:
    """Render the project into ``out_dir`` (new or empty) and return the files written, sorted.

    The tree is built in a hidden sibling and renamed into place, so a kill leaves either no
    project or a whole one.
    """
    out_dir = Path(out_dir)
    if answers.get("template_version") != TEMPLATE_VERSION:
        raise SpecloopError(
            f"answers were made for template version {answers.get('template_version')!r}; "
            f"this specloop renders {TEMPLATE_VERSION}"
        )
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise SpecloopError(f"{out_dir} already exists and is not empty; choose another --out or remove it")
    data = json.loads(json.dumps(dict(answers), sort_keys=True, ensure_ascii=False))
    env = _environment()
    rendered: dict[str, str] = {}
    try:
        for rel, name in template_files(data["template"]).items():
            rendered[rel.replace("__pkg__", data["package"])] = env.get_template(name).render(**data)
    except jinja2.UndefinedError as exc:
        raise SpecloopError(f"template {name} needs an answer that is missing: {exc.message}") from None
    rendered[ANSWERS_FILE] = _to_yaml(data)

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_dir.parent / f".{out_dir.name}.rendering-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        for rel, text in sorted(rendered.items()):
            target = tmp / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(text.encode("utf-8"))
        if out_dir.exists():
            out_dir.rmdir()
        tmp.rename(out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return sorted(out_dir / rel for rel in rendered)


def read_answers(project_dir: Path) -> dict[str, Any]:
    """The answers a project was rendered from (its ``.specloop-answers.yml``)."""
    path = Path(project_dir) / ANSWERS_FILE
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SpecloopError(f"{path} does not exist; the project was not rendered by specloop") from None
    except yaml.YAMLError as exc:
        line = getattr(getattr(exc, "problem_mark", None), "line", -1) + 1
        raise SpecloopError(f"{path}, line {line}: not valid YAML") from None
    if not isinstance(data, dict) or "template_version" not in data:
        raise SpecloopError(f"{path}, line 1: an answers file must be a mapping with template_version")
    return data
