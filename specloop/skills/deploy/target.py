"""What `specloop deploy` needs to know about a project made by `specloop create`."""

from __future__ import annotations

import ast
import hashlib
import re
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from specloop.errors import SpecloopError
from specloop.skills.scaffold.codegen import read_answers
from specloop.skills.scaffold.requirements_md import read_requirements_md

CHECKPOINTS = ("outputs/best.pt", "outputs/last.pt")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*")


@dataclass(frozen=True)
class Sla:
    """The service-level targets from requirements.md; None where none was stated."""

    latency_ms: float | None = None
    throughput_per_s: float | None = None
    source: str = "none stated"

    def to_dict(self) -> dict[str, Any]:
        return {
            "latency_ms": self.latency_ms,
            "throughput_per_s": self.throughput_per_s,
            "source": self.source,
        }


@dataclass(frozen=True)
class Target:
    root: Path
    name: str
    package: str
    version: str
    checkpoint: str  # relative to root
    labels: list[str]
    requirements: list[str]  # the requirement lines the serving code needs
    sla: Sla
    requirement_items: list[dict[str, Any]] = field(default_factory=list)
    training_shares: dict[str, float] = field(default_factory=dict)

    @property
    def slug(self) -> str:
        return re.sub(r"[^a-z0-9]+", "-", self.name.lower()).strip("-")

    @property
    def deploy_id(self) -> str:
        """Names this copy's containers: two copies of one project never share a deployment."""
        return f"{self.slug}-{hashlib.sha256(str(self.root).encode()).hexdigest()[:6]}"


def _imports(path: Path, *, nested: bool) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    nodes = ast.walk(tree) if nested else iter(tree.body)
    names: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def serving_requirements(root: Path, package: str) -> list[str]:
    """The lines of requirements-cpu.txt that the service imports (module level of the package, and
    anything in scripts/serve.py), so the image carries no notebook, test or lint tools."""
    req_file = root / "requirements-cpu.txt"
    if not req_file.is_file():
        raise SpecloopError(f"{req_file} does not exist; the image installs the service's packages from it")
    modules = _imports(root / "scripts" / "serve.py", nested=True)
    for path in sorted((root / "src" / package).glob("*.py")):
        modules |= _imports(path, nested=False)
    dists = metadata.packages_distributions()
    wanted = {_norm(d) for m in modules for d in dists.get(m, [m])}
    lines = []
    for number, raw in enumerate(req_file.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        match = _NAME.match(line)
        if match is None:
            raise SpecloopError(f"{req_file}, line {number}: {line!r} is not a requirement line")
        if _norm(match.group(0)) in wanted:
            lines.append(line)
    return lines


def _sla(items: dict[str, Any]) -> Sla:
    latency = items.get("sla.latency") or {}
    throughput = items.get("sla.throughput") or {}
    ms = latency.get("max_ms") if isinstance(latency, dict) else None
    per_s = throughput.get("min_per_s") if isinstance(throughput, dict) else None
    source = "requirements.md" if (ms or per_s) else "none stated in requirements.md"
    return Sla(latency_ms=ms, throughput_per_s=per_s, source=source)


def _requirements_md(root: Path) -> Path | None:
    for candidate in (root / "requirements.md", root.parent / "requirements.md"):
        if candidate.is_file():
            return candidate
    return None


def training_shares(root: Path, labels: list[str]) -> dict[str, float]:
    """Each class's share of the training split in data/mini: what drift is measured against."""
    train = root / "data" / "mini" / "train"
    counts = {
        label: sum(1 for p in (train / label).iterdir() if p.is_file())
        for label in labels
        if (train / label).is_dir()
    }
    total = sum(counts.values())
    return {label: round(n / total, 4) for label, n in counts.items()} if total else {}


def load_target(project_dir: Path) -> Target:
    """Read the project's answers, requirements.md, checkpoint and serving requirements."""
    root = Path(project_dir).resolve()
    if not root.is_dir():
        raise SpecloopError(f"{root} is not a directory; pass a project made by `specloop create`")
    answers = read_answers(root)
    package = str(answers["package"])
    checkpoint = next((c for c in CHECKPOINTS if (root / c).is_file()), None)
    if checkpoint is None:
        raise SpecloopError(
            f"{root}: no trained checkpoint ({' or '.join(CHECKPOINTS)}); run scripts/train.py --epochs 1 first"
        )
    if not (root / "scripts" / "serve.py").is_file():
        raise SpecloopError(
            f"{root / 'scripts' / 'serve.py'} does not exist; the image serves the model with it"
        )
    req_md = _requirements_md(root)
    items: list[dict[str, Any]] = []
    values: dict[str, Any] = {}
    if req_md is not None:
        req = read_requirements_md(req_md)
        items = [{"id": i.id, "key": i.key, "value": i.value} for i in req.items]
        values = {i.key: i.value for i in req.items}
    labels = [str(label) for label in answers.get("labels", [])]
    return Target(
        root=root,
        name=str(answers["project_name"]),
        package=package,
        version=str(answers.get("template_version", "0")),
        checkpoint=checkpoint,
        labels=labels,
        requirements=serving_requirements(root, package),
        sla=_sla(values),
        requirement_items=items,
        training_shares=training_shares(root, labels),
    )
