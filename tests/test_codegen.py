"""Rendering target projects, and running them: every registered family, no family listed by hand.

The static checks render every candidate; the run checks take each family's default (first)
candidate, render it once per session and run its scripts, its own tests and ruff as subprocesses
with the current interpreter, from the project root.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from functools import cache
from importlib import metadata
from pathlib import Path

import pytest
import yaml

from specloop.errors import SpecloopError
from specloop.families import Candidate, Family, get_family, list_families
from specloop.skills.scaffold.codegen import (
    ANSWERS_FILE,
    TEMPLATE_VERSION,
    project_answers,
    read_answers,
    render_project,
)

PY = sys.executable
FAMILIES = list_families()
CANDIDATES = [(f, c) for f in FAMILIES for c in f.candidates]
LAYOUT = [
    "README.md",
    "pyproject.toml",
    "requirements-cpu.txt",
    "requirements-gpu.txt",
    "configs/default.yaml",
    ".gitignore",
    ANSWERS_FILE,
    "notebooks/mini_dataset.ipynb",
    "scripts/train.py",
    "scripts/infer.py",
    "scripts/make_mini.py",
    "scripts/benchmark.py",
    "tests/conftest.py",
    "tests/test_data.py",
    "tests/test_train.py",
    "tests/test_infer.py",
    "tests/test_serve.py",
]
MODULES = ["__init__", "config", "data", "model", "train", "infer", "serve"]


distributions = cache(metadata.packages_distributions)


def _slug(family: Family, candidate: Candidate) -> str:
    return re.sub(r"[-_]+", "-", f"{family.name}-{candidate.name}")[:32].strip("-")


def _digest(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def run(argv: list[str], cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    proc = subprocess.run(
        argv, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env, check=False
    )
    assert proc.returncode == 0, (
        f"{' '.join(argv)} exited {proc.returncode}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    )
    return proc


def last_json(proc: subprocess.CompletedProcess[str]) -> dict:
    return json.loads([line for line in proc.stdout.splitlines() if line.strip()][-1])


@pytest.fixture(scope="session")
def rendered_all(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every candidate of every family, rendered once (no data, nothing run)."""
    root = tmp_path_factory.mktemp("rendered")
    out = {}
    for family, candidate in CANDIDATES:
        slug = _slug(family, candidate)
        render_project(project_answers(family, candidate, project_name=slug), root / slug)
        out[slug] = root / slug
    return out


@pytest.fixture(scope="session")
def made(tmp_path_factory: pytest.TempPathFactory) -> Callable[[Family], Path]:
    """A family's default candidate rendered and its mini set built with scripts/make_mini.py (cached)."""
    root = tmp_path_factory.mktemp("made")
    cache: dict[str, Path] = {}

    def get(family: Family) -> Path:
        if family.name not in cache:
            slug = _slug(family, family.candidates[0])
            render_project(project_answers(family, family.candidates[0], project_name=slug), root / slug)
            run([PY, "scripts/make_mini.py", "--out", "data/mini"], root / slug)
            cache[family.name] = root / slug
        return cache[family.name]

    return get


def _ids(pairs: list[tuple[Family, Candidate]]) -> list[str]:
    return [f"{f.name}/{c.name}" for f, c in pairs]


# --- static checks on every candidate -------------------------------------------------------------


@pytest.mark.parametrize(("family", "candidate"), CANDIDATES, ids=_ids(CANDIDATES))
def test_layout_is_complete(family: Family, candidate: Candidate, rendered_all: dict[str, Path]) -> None:
    project = rendered_all[_slug(family, candidate)]
    package = project_answers(family, candidate, project_name=_slug(family, candidate))["package"]
    for rel in LAYOUT + [f"src/{package}/{m}.py" for m in MODULES]:
        assert (project / rel).is_file(), rel
    nb = json.loads((project / "notebooks" / "mini_dataset.ipynb").read_text())
    assert nb["nbformat"] == 4 and any(c["cell_type"] == "code" for c in nb["cells"])
    assert not [p for p in project.rglob("*.j2")]


@pytest.mark.parametrize(("family", "candidate"), CANDIDATES, ids=_ids(CANDIDATES))
def test_rendering_is_byte_identical(family: Family, candidate: Candidate, tmp_path: Path) -> None:
    answers = project_answers(family, candidate, project_name="same", seed=3)
    first = render_project(answers, tmp_path / "a")
    render_project(answers, tmp_path / "b")
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
    assert len(first) == len(_digest(tmp_path / "a"))
    # the answers file alone re-renders the same project
    render_project(read_answers(tmp_path / "a"), tmp_path / "c")
    assert _digest(tmp_path / "a") == _digest(tmp_path / "c")


def _leaves(node: dict, prefix: str = "") -> list[str]:
    out = []
    for key, value in node.items():
        path = f"{prefix}{key}"
        out += _leaves(value, path + ".") if isinstance(value, dict) else [path]
    return out


def _code(project: Path) -> str:
    return "\n".join(
        p.read_text() for p in sorted([*project.glob("src/*/*.py"), *project.glob("scripts/*.py")])
    )


@pytest.mark.parametrize(("family", "candidate"), CANDIDATES, ids=_ids(CANDIDATES))
def test_every_config_key_is_read_and_every_read_key_exists(
    family: Family, candidate: Candidate, rendered_all: dict[str, Path]
) -> None:
    project = rendered_all[_slug(family, candidate)]
    config = yaml.safe_load((project / "configs" / "default.yaml").read_text())
    assert set(config) == {"data", "model", "train", "infer", "serve"}
    code = _code(project)
    unused = [k for k in _leaves(config) if not re.search(rf"\b{re.escape(k)}\b", code)]
    assert not unused, f"config keys no code reads: {unused}"
    leaves = set(_leaves(config))
    read = set(re.findall(r"\bcfg\.(\w+\.\w+)", code))
    assert read <= leaves, f"code reads keys the config lacks: {sorted(read - leaves)}"


def _imports(project: Path, package: str) -> set[str]:
    sources = [p.read_text() for p in project.rglob("*.py")]
    nb = json.loads((project / "notebooks" / "mini_dataset.ipynb").read_text())
    sources += ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"]
    names = set()
    for source in sources:
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.Import):
                names |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names.add(node.module.split(".")[0])
    return {n for n in names if n not in sys.stdlib_module_names and n not in {package, "__future__"}}


@pytest.mark.parametrize(("family", "candidate"), CANDIDATES, ids=_ids(CANDIDATES))
def test_every_imported_distribution_is_in_the_requirements(
    family: Family, candidate: Candidate, rendered_all: dict[str, Path]
) -> None:
    project = rendered_all[_slug(family, candidate)]
    package = project_answers(family, candidate, project_name=_slug(family, candidate))["package"]

    def norm(name: str) -> str:
        return re.sub(r"[-_.]+", "-", name).lower()

    for name in ("requirements-cpu.txt", "requirements-gpu.txt"):
        lines = [ln for ln in (project / name).read_text().splitlines() if ln and not ln.startswith("#")]
        required = {norm(re.split(r"[<>=!~\[; ]", ln)[0]) for ln in lines}
        dists = distributions()
        missing = {
            mod: dists.get(mod)
            for mod in _imports(project, package)
            if not {norm(d) for d in dists.get(mod, [mod])} & required
        }
        assert not missing, f"{name} lacks the distributions of {missing}"


def _network_uses(source: str) -> list[str]:
    """Calls that would download (download=True, pretrained=True without a local file, hub
    from_pretrained without local_files_only=True) and URLs in code (docstrings aside)."""
    tree = ast.parse(source)
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.FunctionDef | ast.ClassDef | ast.AsyncFunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            kw = {k.arg: k.value for k in node.keywords if k.arg}

            def true(name: str, kw: dict = kw) -> bool:
                return isinstance(kw.get(name), ast.Constant) and kw[name].value is True

            name = getattr(node.func, "attr", getattr(node.func, "id", ""))
            if true("download"):
                found.append(f"line {node.lineno}: download=True")
            if true("pretrained") and "pretrained_cfg_overlay" not in kw:
                found.append(f"line {node.lineno}: pretrained=True without a local file")
            if name == "from_pretrained" and not true("local_files_only"):
                found.append(f"line {node.lineno}: from_pretrained without local_files_only=True")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            found += [f"line {node.lineno}: URL {node.value[:60]!r}"] * bool(
                re.search(r"https?://", node.value)
            )
    return found


@pytest.mark.parametrize(("family", "candidate"), CANDIDATES, ids=_ids(CANDIDATES))
def test_generated_code_reaches_no_network(
    family: Family, candidate: Candidate, rendered_all: dict[str, Path]
) -> None:
    project = rendered_all[_slug(family, candidate)]
    found = {str(p.relative_to(project)): _network_uses(p.read_text()) for p in project.rglob("*.py")}
    assert not {k: v for k, v in found.items() if v}


def test_the_network_scan_finds_what_it_looks_for() -> None:
    bad = "import timm\nm = timm.create_model('resnet18', pretrained=True)\nu = 'https://example.com'\n"
    assert len(_network_uses(bad)) == 2
    ok = "m = create_model('r', pretrained=True, pretrained_cfg_overlay=dict(file='w.bin'))\n"
    assert _network_uses(ok) == []


# --- render errors --------------------------------------------------------------------------------


def test_render_refuses_a_non_empty_dir(tmp_path: Path) -> None:
    image = get_family("image_classification")
    answers = project_answers(image, image.candidates[0], project_name="taken")
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "mine.txt").write_text("the user's")
    with pytest.raises(SpecloopError, match="not empty"):
        render_project(answers, tmp_path / "taken")
    assert [p.name for p in (tmp_path / "taken").iterdir()] == ["mine.txt"]
    (tmp_path / "empty").mkdir()
    assert render_project(answers, tmp_path / "empty")


def test_a_failed_render_leaves_nothing(tmp_path: Path) -> None:
    image = get_family("image_classification")
    answers = project_answers(image, image.candidates[0], project_name="broken")
    del answers["labels"]
    with pytest.raises(SpecloopError, match="missing"):
        render_project(answers, tmp_path / "broken")
    assert list(tmp_path.iterdir()) == []
    stale = dict(answers, template_version="0.0.1")
    with pytest.raises(SpecloopError, match="template version"):
        render_project(stale, tmp_path / "broken")
    assert TEMPLATE_VERSION != "0.0.1"


def test_read_answers_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(SpecloopError, match="does not exist"):
        read_answers(tmp_path)
    (tmp_path / ANSWERS_FILE).write_text("family: [unclosed\n")
    with pytest.raises(SpecloopError, match=r"line \d+"):
        read_answers(tmp_path)


# --- the generated projects run -------------------------------------------------------------------


@pytest.mark.parametrize("family", FAMILIES, ids=[f.name for f in FAMILIES])
def test_generated_project_trains_and_predicts(family: Family, made: Callable[[Family], Path]) -> None:
    project = made(family)
    manifest = json.loads((project / "data" / "mini" / "manifest.json").read_text())
    assert manifest["seed"] == 0

    dry = last_json(run([PY, "scripts/train.py", "--dry-run"], project))
    assert dry["dry_run"] and dry["params"] > 0
    assert not (project / "outputs").exists(), "--dry-run wrote outputs"

    trained = last_json(run([PY, "scripts/train.py", "--data", "data/mini", "--epochs", "1"], project))
    checkpoint = project / trained["checkpoint"]
    assert checkpoint.is_file() and (project / "outputs" / "metrics.json").is_file()
    assert trained["epoch"] == 1

    out = last_json(
        run([PY, "scripts/infer.py", "--checkpoint", str(checkpoint), "--data", "data/mini"], project)
    )
    assert out["predictions"] and all("input" in p for p in out["predictions"])


# Each family's own tests and ruff run inside `specloop create` (tasks T06 and review) for every
# family: tests/test_create.py.


OTHER = [(f, c) for f, c in CANDIDATES if c is not f.candidates[0]]


@pytest.mark.parametrize(("family", "candidate"), OTHER, ids=_ids(OTHER))
def test_other_candidates_build_on_the_mini_set(
    family: Family, candidate: Candidate, rendered_all: dict[str, Path], made: Callable[[Family], Path]
) -> None:
    project = rendered_all[_slug(family, candidate)]
    dry = last_json(
        run([PY, "scripts/train.py", "--dry-run", f"data.root={made(family) / 'data' / 'mini'}"], project)
    )
    assert dry["params"] > 0 and dry["output_shape"][0] == dry["input_shape"][0]


def test_ddp_with_gloo_on_two_cpu_processes(made: Callable[[Family], Path]) -> None:
    project = made(get_family("tabular"))
    torchrun = Path(PY).with_name("torchrun")
    launcher = [str(torchrun)] if torchrun.exists() else [PY, "-m", "torch.distributed.run"]
    argv = [*launcher, "--standalone", "--nproc_per_node", "2", "scripts/train.py"]
    argv += ["--data", "data/mini", "--epochs", "1", "--device", "cpu", "--output", "outputs/ddp"]
    result = last_json(run(argv, project))
    assert result["world_size"] == 2
    assert (project / "outputs" / "ddp" / "best.pt").is_file()


def test_every_readme_command_runs_as_written(tmp_path: Path) -> None:
    """The README's bash blocks, in order, from the project root."""
    family = get_family("tabular")
    project = tmp_path / "readme"
    render_project(project_answers(family, family.candidates[0], project_name="readme"), project)
    blocks = re.findall(r"```bash\n(.*?)```", (project / "README.md").read_text(), re.S)
    # the install block aside; pytest and ruff on this same project run in the test above
    install = ("venv", "debug-cpu", "pip install", "pytest", "ruff check")
    commands = [ln for b in blocks for ln in b.strip().splitlines() if not any(w in ln for w in install)]
    assert len(commands) >= 8
    env_path = f"{Path(PY).parent}{os.pathsep}{os.environ['PATH']}"
    for command in commands:
        argv = ["bash", "-c", f"PATH={env_path!r}; {command}"]
        run(argv, project)
    assert (project / "outputs" / "best.pt").is_file()
