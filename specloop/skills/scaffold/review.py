"""The reviewer's checks on a generated target project (create flow, stage A4).

Each check is one function registered with :func:`_check`; :func:`review_project` runs them in
declaration order and :func:`render_review_report` derives ``REVIEW_REPORT.md`` from the results.
A check states what it ran or found (command, exit code, ``file:line``) as its evidence. Two
checks repair what can be repaired offline — a missing requirement line, an unused config key —
and then look again; whatever still fails stays failed.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shlex
import socket
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import yaml
from markdown_it import MarkdownIt
from omegaconf import OmegaConf
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from pydantic import BaseModel, Field

from specloop.ledger.files import atomic_write_text

__all__ = [
    "ReviewItem",
    "RunResult",
    "Runner",
    "list_checks",
    "render_review_report",
    "review_project",
    "subprocess_runner",
]

DEFAULT_TIMEOUT_S = 600.0
_SKIP_DIRS = {"data", "outputs", "debug-cpu", "debug-gpu", "venv", "build", "dist", "node_modules"}
# import names whose distribution is named differently, for when the package is not installed
_DIST_OF_IMPORT = {
    "PIL": "pillow",
    "attr": "attrs",
    "bs4": "beautifulsoup4",
    "cv2": "opencv-python",
    "dateutil": "python-dateutil",
    "google.protobuf": "protobuf",
    "sklearn": "scikit-learn",
    "skimage": "scikit-image",
    "yaml": "pyyaml",
}
_CFG_ROOTS = {"cfg", "config", "conf"}
# DictConfig methods that read a whole node rather than name a key
_NODE_METHODS = {"items", "keys", "values"}
_LOOPBACK = re.compile(r"https?://(localhost|127\.0\.0\.1|0\.0\.0\.0|testserver)([:/]|$)")
_NETWORK_MODULES = ("requests", "urllib.request", "urllib3", "socket", "http.client", "ftplib", "aiohttp")
_HUB_CALLS = {"hf_hub_download", "snapshot_download", "load_state_dict_from_url", "download_url_to_file"}


class ReviewItem(BaseModel):
    """One check's verdict with what it ran or found."""

    id: str
    title: str
    ok: bool
    evidence: str
    fixed: list[str] = Field(default_factory=list)


@dataclass(frozen=True)
class RunResult:
    returncode: int
    output: str  # stdout and stderr together
    timed_out: bool = False


class Runner(Protocol):
    """Runs one command to completion; the sandbox can stand in for :func:`subprocess_runner`."""

    def __call__(
        self, argv: Sequence[str], *, cwd: Path, env: Mapping[str, str], timeout: float
    ) -> RunResult: ...


def subprocess_runner(argv: Sequence[str], *, cwd: Path, env: Mapping[str, str], timeout: float) -> RunResult:
    try:
        proc = subprocess.run(
            list(argv), cwd=cwd, env=dict(env), timeout=timeout, capture_output=True, text=True, check=False
        )
    except subprocess.TimeoutExpired as exc:
        out = (exc.stdout or b"") + (exc.stderr or b"")
        text = out.decode(errors="replace") if isinstance(out, bytes) else str(out)
        return RunResult(124, text, timed_out=True)
    return RunResult(proc.returncode, proc.stdout + proc.stderr)


@dataclass
class _Review:
    """What every check sees: the project, the interpreter that runs it, and how to run things."""

    root: Path
    python: str
    fix: bool
    runner: Runner
    timeout: float

    def run(self, argv: Sequence[str], *, extra_env: Mapping[str, str] | None = None) -> RunResult:
        # the project's commands run in its own setting, not in the caller's pytest session
        env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
        env.update({"PYTHONDONTWRITEBYTECODE": "1", **(extra_env or {})})
        return self.runner(argv, cwd=self.root, env=env, timeout=self.timeout)

    def code_files(self) -> list[Path]:
        return sorted(_walk(self.root, ".py"))

    def notebooks(self) -> list[Path]:
        return sorted(_walk(self.root, ".ipynb"))

    def rel(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()


CheckFn = Callable[[_Review], ReviewItem]
_CHECKS: dict[str, tuple[str, CheckFn]] = {}


def _check(check_id: str, title: str) -> Callable[[CheckFn], CheckFn]:
    def register(fn: CheckFn) -> CheckFn:
        if check_id in _CHECKS:
            raise ValueError(f"review check {check_id!r} declared twice")
        _CHECKS[check_id] = (title, fn)
        return fn

    return register


def list_checks() -> list[tuple[str, str]]:
    """(id, title) of every check, in the order they run."""
    return [(cid, title) for cid, (title, _) in _CHECKS.items()]


def review_project(
    project_dir: Path,
    *,
    python: str = sys.executable,
    fix: bool = True,
    runner: Runner | None = None,
    only: Sequence[str] | None = None,
    timeout: float = DEFAULT_TIMEOUT_S,
) -> list[ReviewItem]:
    """Run every check (or the ids in `only`) on the project; fixes are applied in place when `fix`."""
    unknown = sorted(set(only or ()) - set(_CHECKS))
    if unknown:
        raise ValueError(f"unknown review checks {unknown}; known: {sorted(_CHECKS)}")
    review = _Review(Path(project_dir).resolve(), python, fix, runner or subprocess_runner, timeout)
    items = []
    for cid, (title, fn) in _CHECKS.items():
        if only is None or cid in only:
            item = fn(review)
            items.append(item.model_copy(update={"id": cid, "title": title}))
    return items


def render_review_report(items: Sequence[ReviewItem]) -> str:
    """REVIEW_REPORT.md: a pass/fail summary, then one section per check with its evidence."""
    passed = sum(i.ok for i in items)
    verdict = "PASS" if passed == len(items) else "FAIL"
    lines = [
        "# Review report",
        "",
        f"**{verdict}**: {passed} of {len(items)} checks pass.",
        "",
        "| check | result | fixed |",
        "|---|---|---|",
    ]
    lines += [f"| `{i.id}` | {'pass' if i.ok else 'FAIL'} | {len(i.fixed)} |" for i in items]
    for i in items:
        lines += ["", f"## `{i.id}` — {i.title}: {'pass' if i.ok else 'FAIL'}", "", "```text"]
        lines += [i.evidence.rstrip() or "(nothing to report)", "```"]
        if i.fixed:
            lines += ["", "Fixed by the reviewer:", ""] + [f"- {f}" for f in i.fixed]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- helpers


def _walk(root: Path, suffix: str) -> Iterator[Path]:
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        dirnames[:] = [
            d
            for d in dirnames
            if not d.startswith(".")
            and d != "__pycache__"
            and not (here == root and d in _SKIP_DIRS)
            and not (here / d / "pyvenv.cfg").exists()
        ]
        yield from (here / f for f in filenames if f.endswith(suffix))


def _tail(text: str, n: int = 15) -> str:
    return "\n".join(text.strip().splitlines()[-n:])


def _package_dirs(root: Path) -> list[Path]:
    src = root / "src"
    return sorted(p.parent for p in src.glob("*/__init__.py")) if src.is_dir() else []


def _sources(review: _Review) -> Iterator[tuple[str, str]]:
    """(location, source) for every .py file and every notebook code cell."""
    for path in review.code_files():
        yield review.rel(path), path.read_text(encoding="utf-8")
    for nb_path in review.notebooks():
        try:
            cells = json.loads(nb_path.read_text(encoding="utf-8")).get("cells", [])
        except (json.JSONDecodeError, AttributeError):
            continue
        for n, cell in enumerate(cells, start=1):
            if cell.get("cell_type") == "code":
                src = cell.get("source", "")
                yield f"{review.rel(nb_path)} cell {n}", "".join(src) if isinstance(src, list) else src


def _parse(where: str, source: str, problems: list[str]) -> ast.Module | None:
    try:
        return ast.parse(source)
    except SyntaxError as exc:
        problems.append(f"{where}:{exc.lineno}: syntax error: {exc.msg}")
        return None


def _dotted(node: ast.expr) -> str | None:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    return None


# --------------------------------------------------------------------------- ruff


@_check("ruff", "ruff on the generated code")
def _ruff(review: _Review) -> ReviewItem:
    ruff = [review.python, "-m", "ruff"]
    if review.run([*ruff, "--version"]).returncode != 0:
        ruff = [sys.executable, "-m", "ruff"]  # the project's venv has no ruff: use the reviewer's own
    argv = [*ruff, "check", "--no-cache", "--output-format", "concise", "."]
    res = review.run(argv)
    evidence = f"$ {shlex.join(argv)}\nexit {res.returncode}\n{_tail(res.output, 40)}"
    return ReviewItem(id="ruff", title="", ok=res.returncode == 0, evidence=evidence)


# --------------------------------------------------------------------------- imports

_IMPORT_PROBE = r"""
import importlib, importlib.util, json, pathlib, sys, traceback
root = pathlib.Path.cwd().resolve()
sys.path.insert(0, str(root / "src"))
out = []
for kind, target in json.loads(sys.argv[1]):
    try:
        if kind == "module":
            importlib.import_module(target)
        else:
            path = root / target
            spec = importlib.util.spec_from_file_location("_reviewed_" + path.stem, path)
            spec.loader.exec_module(importlib.util.module_from_spec(spec))
    except BaseException as exc:
        where = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename.startswith(str(root))]
        frame = where[-1] if where else None
        loc = f"{pathlib.Path(frame.filename).relative_to(root)}:{frame.lineno}" if frame else target
        out.append({"target": target, "where": loc, "error": f"{type(exc).__name__}: {exc}"})
print("@@IMPORTS@@" + json.dumps(out))
"""


@_check("imports", "every module under src/ and scripts/ imports")
def _imports(review: _Review) -> ReviewItem:
    targets: list[tuple[str, str]] = []
    for pkg in _package_dirs(review.root):
        for path in sorted(pkg.rglob("*.py")):
            parts = path.relative_to(pkg.parent).with_suffix("").parts
            targets.append(("module", ".".join(parts[:-1] if parts[-1] == "__init__" else parts)))
    targets += [("script", review.rel(p)) for p in sorted((review.root / "scripts").glob("*.py"))]
    if not targets:
        return ReviewItem(id="", title="", ok=False, evidence="no package under src/ and no scripts/*.py")
    res = review.run([review.python, "-c", _IMPORT_PROBE, json.dumps(targets)])
    marker = res.output.rfind("@@IMPORTS@@")
    if marker < 0:
        return ReviewItem(
            id="", title="", ok=False, evidence=f"import probe exit {res.returncode}\n{_tail(res.output)}"
        )
    failures = json.loads(res.output[marker + len("@@IMPORTS@@") :].splitlines()[0])
    lines = [f"imported {len(targets) - len(failures)} of {len(targets)} modules with {review.python}"]
    lines += [f"{f['where']}: {f['target']}: {f['error']}" for f in failures]
    return ReviewItem(id="", title="", ok=not failures, evidence="\n".join(lines))


# --------------------------------------------------------------------------- requirements

_DIST_PROBE = r"""
import importlib.metadata as md, json, sys
names, table = json.loads(sys.argv[1])
known = md.packages_distributions()
out = {}
for name in names:
    top = name.split(".")[0]
    dists = [table[name]] if name in table else [table[top]] if top in table else sorted(set(known.get(top, [])))
    found = []
    for dist in dists or [top]:
        try:
            found.append([dist, md.version(dist)])
        except md.PackageNotFoundError:
            found.append([dist, None])
    out[name] = found
print("@@DISTS@@" + json.dumps(out))
"""


def _imported_names(review: _Review, problems: list[str]) -> dict[str, str]:
    """Third-party top-level import name → first place it is imported."""
    local = {p.name for p in _package_dirs(review.root)}
    local |= {p.stem for p in review.code_files()}
    seen: dict[str, str] = {}
    for where, source in _sources(review):
        tree = _parse(where, source, problems)
        for node in ast.walk(tree) if tree else ():
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                key = name if name in _DIST_OF_IMPORT else top
                if top in sys.stdlib_module_names or top in local or top == "__future__":
                    continue
                seen.setdefault(key, f"{where}:{node.lineno}")
    return seen


def _requirement_names(path: Path, problems: list[str], _seen: set[Path] | None = None) -> set[str]:
    seen = _seen if _seen is not None else set()
    if path in seen or not path.exists():
        return set()
    seen.add(path)
    names: set[str] = set()
    for n, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.split(" #")[0].strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith(("-r ", "--requirement ")):
            names |= _requirement_names(path.parent / line.split(maxsplit=1)[1], problems, seen)
        elif line.startswith("-"):
            continue
        else:
            try:
                names.add(canonicalize_name(Requirement(line).name))
            except InvalidRequirement:
                problems.append(f"{path.name}:{n}: not a requirement line: {raw.strip()}")
    return names


def _requirements_files(root: Path) -> list[Path]:
    return [p for p in (root / "requirements-cpu.txt", root / "requirements-gpu.txt") if p.exists()]


def _missing_requirements(review: _Review) -> tuple[list[str], list[tuple[Path, str, str | None, str]]]:
    """(problems, [(requirements file, distribution, installed version, where imported)])."""
    problems: list[str] = []
    imported = _imported_names(review, problems)
    files = _requirements_files(review.root)
    if not (review.root / "requirements-cpu.txt").exists():
        problems.append("requirements-cpu.txt is missing")
    if not imported:
        return problems, []
    res = review.run([review.python, "-c", _DIST_PROBE, json.dumps([sorted(imported), _DIST_OF_IMPORT])])
    marker = res.output.rfind("@@DISTS@@")
    if marker < 0:
        problems.append(f"distribution probe exit {res.returncode}: {_tail(res.output, 5)}")
        return problems, []
    dists = json.loads(res.output[marker + len("@@DISTS@@") :].splitlines()[0])
    missing = []
    for req_file in files:
        included: set[Path] = set()
        listed = _requirement_names(req_file, problems, included)
        for name, where in sorted(imported.items()):
            options = dists.get(name) or [[name, None]]
            dist, version = canonicalize_name(options[0][0]), options[0][1]
            blamed = any(m[0] in included and m[1] == dist for m in missing)  # reported in an -r file
            if not blamed and not any(canonicalize_name(d) in listed for d, _ in options):
                missing.append((req_file, dist, version, where))
    return problems, missing


@_check("requirements", "every imported distribution is in the requirements")
def _requirements(review: _Review) -> ReviewItem:
    problems, missing = _missing_requirements(review)
    fixed = []
    if review.fix and missing:
        for req_file in sorted({m[0] for m in missing}):
            add = sorted({(d, v) for f, d, v, _ in missing if f == req_file and v})
            if add:
                text = req_file.read_text(encoding="utf-8")
                text = (text if text.endswith("\n") or not text else text + "\n") + "".join(
                    f"{d}>={v}\n" for d, v in add
                )
                atomic_write_text(req_file, text)
                fixed += [f"{req_file.name}: added {d}>={v}" for d, v in add]
        problems, missing = _missing_requirements(review)
    lines = problems + [
        f"{where}: imports {dist} ({'installed ' + v if v else 'not installed'}), not listed in {f.name}"
        for f, dist, v, where in missing
    ]
    ok = not lines
    checked = ", ".join(p.name for p in _requirements_files(review.root)) or "no requirements file"
    evidence = "\n".join([f"checked {checked} against the imports of the generated code", *lines])
    return ReviewItem(id="", title="", ok=ok, evidence=evidence, fixed=fixed)


# --------------------------------------------------------------------------- config keys


@dataclass
class _YamlKeys:
    leaves: dict[str, tuple[Path, int, int]]  # dotted key → (file, first line, last line), 1-based
    nodes: set[str]  # interior keys (mappings)
    interpolated: set[str]  # keys named by ${...} interpolations


def _scalars(node: yaml.Node) -> Iterator[str]:
    if isinstance(node, yaml.ScalarNode):
        yield str(node.value)
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            yield from _scalars(item)
    elif isinstance(node, yaml.MappingNode):
        for _, item in node.value:
            yield from _scalars(item)


def _yaml_keys(files: Sequence[Path], problems: list[str], root: Path) -> _YamlKeys:
    keys = _YamlKeys({}, set(), set())

    def walk(node: yaml.Node, prefix: str, path: Path) -> None:
        for key_node, value in node.value:
            key = f"{prefix}{key_node.value}"
            if isinstance(value, yaml.MappingNode) and value.value:
                keys.nodes.add(key)
                walk(value, key + ".", path)
            else:
                end = value.end_mark.line + (1 if value.end_mark.column > 0 else 0)
                keys.leaves.setdefault(
                    key, (path, key_node.start_mark.line + 1, max(end, key_node.start_mark.line + 1))
                )
            for scalar in _scalars(value):
                keys.interpolated |= set(re.findall(r"\$\{([A-Za-z0-9_.]+)\}", scalar))

    for path in files:
        try:
            doc = yaml.compose(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            problems.append(f"{path.relative_to(root)}:{mark.line + 1 if mark else 1}: not valid YAML")
            continue
        if isinstance(doc, yaml.MappingNode):
            walk(doc, "", path)
    return keys


class _KeyReads(ast.NodeVisitor):
    """Collects config key paths the code reads: ``cfg.a.b``, ``cfg["a"]["b"]``, ``cfg.a.get("b")``,
    ``OmegaConf.select(cfg, "a.b")``, aliases (``m = cfg.model``) and whole-node reads (``**cfg.model``)."""

    def __init__(self) -> None:
        self.reads: dict[str, int] = {}  # dotted path → first line
        self.whole: dict[str, int] = {}  # node read as a whole (all keys under it count as read)
        self.aliases: dict[str, str] = {}

    def _chain(self, node: ast.expr) -> tuple[list[str], ast.expr] | None:
        parts: list[str] = []
        while True:
            if isinstance(node, ast.Attribute) and node.attr in _CFG_ROOTS:  # self.cfg, predictor.cfg
                return list(reversed(parts)), node.value
            if isinstance(node, ast.Attribute):
                parts.append(node.attr)
                node = node.value
            elif isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant):
                if not isinstance(node.slice.value, str):
                    return None
                parts.append(node.slice.value)
                node = node.value
            else:
                break
        root = _dotted(node) if isinstance(node, ast.Name | ast.Attribute) else None
        if root is None:
            return None
        base = root.split(".")[-1]
        if base in _CFG_ROOTS:
            prefix: list[str] = []
        elif root in self.aliases:
            prefix = self.aliases[root].split(".")
        else:
            return None
        return prefix + list(reversed(parts)), node

    def _record(self, path: list[str], line: int, *, whole: bool = False) -> None:
        if path:
            target = self.whole if whole else self.reads
            target.setdefault(".".join(path), line)

    def visit_Assign(self, node: ast.Assign) -> None:
        found = self._chain(node.value)
        if found and found[0] and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            self.aliases[node.targets[0].id] = ".".join(found[0])
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        if _dotted(func) in {"OmegaConf.select", "omegaconf.OmegaConf.select"} and len(node.args) >= 2:
            key = node.args[1]
            if isinstance(key, ast.Constant) and isinstance(key.value, str):
                base = self._chain(node.args[0])
                self._record([*(base[0] if base else []), *key.value.split(".")], node.lineno)
        elif _dotted(func) in {"OmegaConf.to_container", "OmegaConf.to_object", "dict"} and node.args:
            found = self._chain(node.args[0])
            if found:
                self._record(found[0], node.lineno, whole=True)
        elif isinstance(func, ast.Attribute):
            found = self._chain(func.value)
            if found and func.attr == "get" and node.args and isinstance(node.args[0], ast.Constant):
                self._record([*found[0], str(node.args[0].value)], node.lineno)
                for arg in node.args[1:]:
                    self.visit(arg)
                return
            if found and func.attr in _NODE_METHODS:
                self._record(found[0], node.lineno, whole=True)
                for arg in node.args:
                    self.visit(arg)
                return
            if found:  # a method on a leaf value, e.g. cfg.train.output_dir.rstrip("/")
                self._record(found[0], node.lineno)
                self.generic_visit(node)
                return
        for kw in node.keywords:
            if kw.arg is None and (found := self._chain(kw.value)):
                self._record(found[0], node.lineno, whole=True)
        self.generic_visit(node)

    def _visit_chain(self, node: ast.Attribute | ast.Subscript) -> None:
        found = self._chain(node)
        if found is None:
            self.generic_visit(node)
            return
        self._record(found[0], node.lineno)
        inner = found[1]
        if not isinstance(inner, ast.Name):
            self.visit(inner)
        for sub in ast.walk(node):  # index expressions inside the chain, e.g. cfg.x[other.y]
            if isinstance(sub, ast.Subscript) and not isinstance(sub.slice, ast.Constant):
                self.visit(sub.slice)

    visit_Attribute = _visit_chain
    visit_Subscript = _visit_chain


def _config_findings(review: _Review) -> tuple[list[str], list[str], _YamlKeys]:
    """(problems incl. missing keys, unused leaf keys, yaml keys)."""
    problems: list[str] = []
    files = sorted((review.root / "configs").glob("*.yaml"))
    if not files:
        return [f"no configs/*.yaml in {review.root.name}"], [], _YamlKeys({}, set(), set())
    keys = _yaml_keys(files, problems, review.root)
    present = set(keys.leaves) | keys.nodes
    read: dict[str, str] = {}
    whole: set[str] = set()
    code = [review.root / "scripts", *_package_dirs(review.root)]
    for path in review.code_files():
        if not any(path.is_relative_to(d) for d in code):
            continue
        tree = _parse(review.rel(path), path.read_text(encoding="utf-8"), problems)
        if tree is None:
            continue
        visitor = _KeyReads()
        visitor.visit(tree)
        for dotted, line in visitor.reads.items():
            read.setdefault(dotted, f"{review.rel(path)}:{line}")
        for dotted, line in visitor.whole.items():
            whole.add(dotted)
            read.setdefault(dotted, f"{review.rel(path)}:{line}")
    used: set[str] = set(keys.interpolated)
    for dotted, where in sorted(read.items()):
        parts = dotted.split(".")
        prefixes = [".".join(parts[: n + 1]) for n in range(len(parts))]
        leaf = next((p for p in prefixes if p in keys.leaves), None)
        if leaf:
            used.add(leaf)
        elif dotted in keys.nodes:
            if dotted in whole:
                used |= {k for k in keys.leaves if k.startswith(dotted + ".")}
        elif dotted not in present:
            problems.append(f"{where}: reads config key {dotted}, which no configs/*.yaml defines")
    unused = sorted(k for k in keys.leaves if k not in used)
    return problems, unused, keys


def _remove_keys(keys: _YamlKeys, unused: Sequence[str]) -> list[str]:
    """Delete the lines of each unused key; fall back to an OmegaConf round trip if the text edit
    does not give exactly the config minus those keys."""
    fixed = []
    by_file: dict[Path, list[str]] = {}
    for key in unused:
        by_file.setdefault(keys.leaves[key][0], []).append(key)
    for path, dead in sorted(by_file.items()):
        text = path.read_text(encoding="utf-8")
        expected = OmegaConf.create(yaml.safe_load(text) or {})
        for key in dead:
            parent, _, leaf = key.rpartition(".")
            node = OmegaConf.select(expected, parent) if parent else expected
            node.pop(leaf)
        lines = text.splitlines(keepends=True)
        drop = {n for key in dead for n in range(keys.leaves[key][1] - 1, keys.leaves[key][2])}
        edited = "".join(line for n, line in enumerate(lines) if n not in drop)
        if OmegaConf.create(yaml.safe_load(edited) or {}) != expected:
            edited = OmegaConf.to_yaml(expected)
        atomic_write_text(path, edited)
        fixed += [f"{path.parent.name}/{path.name}: removed unused key {key}" for key in dead]
    return fixed


@_check("config-keys", "config keys read in code vs keys present in configs/*.yaml")
def _config_keys(review: _Review) -> ReviewItem:
    problems, unused, keys = _config_findings(review)
    fixed: list[str] = []
    for _ in range(5):  # removing a section's last key leaves an empty section, itself unused
        if not (review.fix and unused and not problems):
            break
        fixed += _remove_keys(keys, unused)
        problems, unused, keys = _config_findings(review)
    lines = problems + [
        f"{keys.leaves[k][0].relative_to(review.root).as_posix()}:{keys.leaves[k][1]}: key {k} is never read"
        for k in unused
    ]
    summary = f"{len(keys.leaves)} keys in configs/*.yaml"
    return ReviewItem(id="", title="", ok=not lines, evidence="\n".join([summary, *lines]), fixed=fixed)


# --------------------------------------------------------------------------- no network


def _docstrings(tree: ast.Module) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                ids.add(id(body[0].value))
    return ids


def _kw(call: ast.Call, name: str) -> object:
    for kw in call.keywords:
        if kw.arg == name and isinstance(kw.value, ast.Constant):
            return kw.value.value
    return None


def _network_findings(tree: ast.Module) -> Iterator[tuple[int, str]]:
    docs = _docstrings(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs:
            urls = [u for u in re.findall(r"https?://\S+", node.value) if not _LOOPBACK.match(u)]
            if urls:
                yield node.lineno, f"URL in code: {urls[0]}"
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            if isinstance(node, ast.ImportFrom):
                names += [f"{node.module}.{a.name}" for a in node.names]
            for name in names:
                if any(name == m or name.startswith(m + ".") for m in _NETWORK_MODULES):
                    yield node.lineno, f"imports {name}"
                    break
        elif isinstance(node, ast.Call):
            dotted = _dotted(node.func) or ""
            last = dotted.rsplit(".", 1)[-1]
            if _kw(node, "download") is True:
                yield node.lineno, f"{dotted or 'call'}(download=True)"
            if _kw(node, "pretrained") is True and not any(
                k.arg == "pretrained_cfg_overlay" for k in node.keywords
            ):
                yield node.lineno, f"{dotted}(pretrained=True) fetches weights from a hub"
            if last == "from_pretrained" and _kw(node, "local_files_only") is not True:
                first = node.args[0] if node.args else None
                local = isinstance(first, ast.Constant) and str(first.value).startswith(
                    ("/", "./", "../", "~")
                )
                if not local:
                    yield node.lineno, f"{dotted}(...) without a local path or local_files_only=True"
            if last in _HUB_CALLS:
                yield node.lineno, f"{dotted}(...) downloads"
            if dotted.startswith("torch.hub.") and _kw(node, "source") != "local":
                yield node.lineno, f"{dotted}(...) without source='local'"


@_check("no-network", "no network access in generated code (static scan)")
def _no_network(review: _Review) -> ReviewItem:
    problems: list[str] = []
    scanned = 0
    for where, source in _sources(review):
        tree = _parse(where, source, problems)
        if tree is None:
            continue
        scanned += 1
        problems += [f"{where}:{line}: {what}" for line, what in sorted(set(_network_findings(tree)))]
    evidence = "\n".join([f"scanned {scanned} code files and notebook cells", *problems])
    return ReviewItem(id="", title="", ok=not problems, evidence=evidence)


# --------------------------------------------------------------------------- README commands

_NOT_RUN = (
    (
        re.compile(r"^(python3?|\S*/python3?) -m venv\b|^virtualenv\b|^(source|\.) \S*activate"),
        "creates or activates a venv",
    ),
    (
        re.compile(r"(^|\s|/)pip3? install\b|^uv\b|^conda\b"),
        "installs packages (needs the package registry)",
    ),
    (re.compile(r"^(sudo )?docker(-compose)?\b"), "needs a Docker engine"),
    (re.compile(r"^(curl|wget|http)\b"), "calls a running service (started by another command)"),
    (re.compile(r"^cd\b"), "changes directory; every command is run from the project root"),
)
_SERVER = re.compile(r"(^|\s)(-m )?uvicorn\s")
_SERVE_PROBE = r"""
import subprocess, sys, time, urllib.request
port, argv = sys.argv[1], sys.argv[2:]
proc = subprocess.Popen(argv)
ok = False
try:
    for _ in range(120):
        if proc.poll() is not None:
            break
        try:
            ok = urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2).status == 200
        except OSError:
            time.sleep(0.5)
        if ok:
            break
finally:
    proc.terminate()
    proc.wait(timeout=30)
print("GET /health", "200" if ok else "no answer")
sys.exit(0 if ok else 1)
"""


def _readme_commands(readme: Path) -> list[tuple[int, str]]:
    """(line, command) for every command in the README's ```bash blocks, continuations joined."""
    commands = []
    for token in MarkdownIt().parse(readme.read_text(encoding="utf-8")):
        if token.type != "fence" or token.info.strip().split(" ")[0] not in {"bash", "sh", "shell"}:
            continue
        first = token.map[0] + 2 if token.map else 1
        pending, start = "", first
        for n, raw in enumerate(token.content.splitlines(), start=first):
            line = raw.strip()
            if not pending:
                start = n
            if not line or (line.startswith("#") and not pending):
                continue
            if line.endswith("\\"):
                pending += line[:-1].strip() + " "
                continue
            commands.append((start, (pending + line).removeprefix("$ ").strip()))
            pending = ""
    return commands


def _shim(python: str, where: Path) -> Path:
    """A bin folder whose `python`/`python3` run the reviewed interpreter (a venv's stays a venv's)."""
    where.mkdir(parents=True, exist_ok=True)
    for name in ("python", "python3"):
        shim = where / name
        shim.write_text(f'#!/bin/sh\nexec {shlex.quote(python)} "$@"\n', encoding="utf-8")
        shim.chmod(0o755)
    return where


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _missing_file(root: Path, words: list[str]) -> str | None:
    for n, word in enumerate(words):
        if word.endswith((".py", ".ipynb")) and not (n and words[n - 1].startswith("--")):
            if not (root / word).exists():
                return word
            return None
    return None


@_check("readme-commands", "every README command exists and passes (training with --dry-run)")
def _readme(review: _Review) -> ReviewItem:
    readme = review.root / "README.md"
    if not readme.exists():
        return ReviewItem(id="", title="", ok=False, evidence="README.md is missing")
    commands = _readme_commands(readme)
    if not commands:
        return ReviewItem(id="", title="", ok=False, evidence="README.md has no ```bash command blocks")
    lines, ok = [], True
    trains: list[str] = []  # training commands so far; one may have to make a checkpoint
    with tempfile.TemporaryDirectory(prefix="specloop-review-") as tmp:
        bin_dir = _shim(review.python, Path(tmp) / "bin")
        path_env = os.pathsep.join(
            [str(bin_dir), str(Path(review.python).parent), os.environ.get("PATH", "")]
        )
        env = {"PATH": path_env}
        for line, cmd in commands:
            where = f"README.md:{line}"
            reason = next((why for pattern, why in _NOT_RUN if pattern.search(cmd)), None)
            if reason:
                lines.append(f"{where}: not run here ({reason}): {cmd}")
                continue
            try:
                words = shlex.split(cmd)
            except ValueError as exc:
                ok = False
                lines.append(f"{where}: cannot parse: {cmd} ({exc})")
                continue
            missing = _missing_file(review.root, words)
            if missing:
                ok = False
                lines.append(f"{where}: {missing} does not exist: {cmd}")
                continue
            run_cmd, note = cmd, ""
            if any(w.endswith("train.py") for w in words):
                trains.append(cmd)
                if "--dry-run" not in words:
                    run_cmd, note = f"{cmd} --dry-run", " (with --dry-run)"
            if "--checkpoint" in words and words.index("--checkpoint") + 1 < len(words):
                ckpt = review.root / words[words.index("--checkpoint") + 1]
                if not ckpt.exists() and trains:
                    real = [t for t in trains if "--dry-run" not in t]
                    plain = [t for t in real if "--output" not in t and not t.startswith("torchrun")]
                    maker = f"{(plain or real or trains)[0]} --fast-dev-run"
                    made = review.run(["bash", "-c", maker], extra_env=env)
                    lines.append(f"{where}: made {ckpt.name} first: {maker} → exit {made.returncode}")
            if _SERVER.search(cmd):
                port = _free_port()
                served = re.sub(r"--port[ =]\d+", f"--port {port}", cmd)
                if "--port" not in served:
                    served += f" --port {port}"
                argv = ["python", "-c", _SERVE_PROBE, str(port), "bash", "-c", f"exec {served}"]
                run_cmd, note = (
                    shlex.join(argv),
                    " (served on a free loopback port, probed GET /health, stopped)",
                )
            res = review.run(["bash", "-c", run_cmd], extra_env=env)
            status = "timed out" if res.timed_out else f"exit {res.returncode}"
            passed = res.returncode == 0
            ok &= passed
            lines.append(f"{where}: {status}{note}: {cmd}")
            if not passed:
                lines += ["    " + t for t in _tail(res.output, 12).splitlines()]
    return ReviewItem(id="", title="", ok=ok, evidence="\n".join(lines))
