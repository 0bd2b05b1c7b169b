"""Loading contracts: the fenced ```yaml contract``` blocks inside spec markdown files.

Contracts are validated when they load, the way LangGraph validates a graph when it compiles:
the block's schema (pydantic, unknown keys rejected), the check kind and the fields it requires,
the template variables the pipeline declares, one contract per stage, the owner the stage registry
names, and a contract for every stage of a pipeline (the approval gate may go without). Every
problem names the file and line, the rule and the offending value.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from specloop.errors import SpecloopError
from specloop.pipelines.registry import ROLES, Pipeline, get_pipeline, list_pipelines
from specloop.skills.contracts.checks import CHECK_KINDS, Check
from specloop.skills.contracts.templates import TemplateError, variables

_BLOCK = re.compile(r"```yaml contract\n(.*?)```", re.DOTALL)
SPEC_PACKAGES = ("specloop.specs", "specloop.references")
SCHEMA_VERSION = 1


@dataclass(frozen=True)
class Problem:
    file: str
    line: int
    rule: str
    message: str

    def sentence(self) -> str:
        return f"{self.file}:{self.line}: [{self.rule}] {self.message}"


class ContractLoadError(SpecloopError):
    """The specs a run would use have contract problems: nothing runs."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        first = problems[0]
        more = f" ({len(problems) - 1} more; run `specloop specs check`)" if len(problems) > 1 else ""
        super().__init__(f"{first.file}:{first.line}: {first.message}{more}", rule=first.rule)


class _Block(BaseModel):
    model_config = ConfigDict(extra="forbid")

    schema_version: Literal[1] = SCHEMA_VERSION
    pipeline: str
    stage: str
    owner: str
    inputs: list[str] = []
    outputs: list[str] = []
    done_when: list[dict[str, Any]]


@dataclass(frozen=True)
class Contract:
    pipeline: str
    stage: str
    owner: str
    source: str
    line: int
    inputs: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()
    checks: tuple[Check, ...] = ()
    prose: str = ""

    @property
    def where(self) -> str:
        return f"{self.source}:{self.line}"


@dataclass
class ContractSet:
    contracts: dict[tuple[str, str], Contract] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)

    def get(self, pipeline: str, stage: str) -> Contract | None:
        return self.contracts.get((pipeline, stage))

    def pipelines(self) -> set[str]:
        return {p for p, _ in self.contracts}


def _node_line(root: yaml.Node | None, loc: Iterable[Any]) -> int:
    """The 0-based line of the YAML node at `loc` (pydantic's error location) inside the block."""
    node = root
    line = root.start_mark.line if root is not None else 0
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            node = next((v for k, v in node.value if k.value == part), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
        else:
            break
        if node is None:
            break
        line = node.start_mark.line
    return line


def _parse_block(body: str, source: str, first_line: int) -> tuple[Contract | None, list[Problem]]:
    def at(offset: int) -> int:
        return first_line + offset

    try:
        root = yaml.compose(body)
        data = yaml.safe_load(body)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        reason = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        return None, [
            Problem(source, at(mark.line if mark else 0), "yaml", f"the contract is not YAML: {reason}")
        ]
    if not isinstance(data, dict):
        return None, [Problem(source, first_line, "schema", "a contract block is a mapping of keys")]
    try:
        block = _Block.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = tuple(err["loc"])
            what = ".".join(str(p) for p in loc) or "block"
            msg = f"{what}: {err['msg']}"
            if err["type"] == "extra_forbidden":
                known = ", ".join(_Block.model_fields)
                msg = f"unknown key {what!r} (a contract has {known})"
            problems.append(Problem(source, at(_node_line(root, loc)), "schema", msg))
        return None, problems
    problems, checks, ids = [], [], set()
    for i, raw in enumerate(block.done_when):
        line = at(_node_line(root, ("done_when", i)))
        kind = raw.get("check")
        cls = CHECK_KINDS.get(kind) if isinstance(kind, str) else None
        if cls is None:
            near = difflib.get_close_matches(str(kind), CHECK_KINDS, n=1)
            hint = (
                f"; did you mean {near[0]!r}?" if near else f"; known kinds: {', '.join(sorted(CHECK_KINDS))}"
            )
            problems.append(Problem(source, line, "check-kind", f"unknown check kind {kind!r}{hint}"))
            continue
        try:
            check = cls.model_validate(raw)
        except ValidationError as exc:
            for err in exc.errors():
                where = ".".join(str(p) for p in err["loc"])
                msg = (
                    f"a {kind!r} check needs {where!r}"
                    if err["type"] == "missing"
                    else f"{kind!r} check field {where!r}: {err['msg']}"
                )
                if err["type"] == "extra_forbidden":
                    msg = f"a {kind!r} check has no field {where!r} (it takes {', '.join(cls.model_fields)})"
                problems.append(
                    Problem(source, at(_node_line(root, ("done_when", i, *err["loc"]))), "check", msg)
                )
            continue
        if check.id in ids:
            problems.append(Problem(source, line, "check-id", f"check id {check.id!r} is used twice"))
        ids.add(check.id)
        checks.append(check)
    if problems:
        return None, problems
    contract = Contract(
        pipeline=block.pipeline,
        stage=block.stage,
        owner=block.owner,
        source=source,
        line=first_line,
        inputs=tuple(block.inputs),
        outputs=tuple(block.outputs),
        checks=tuple(checks),
    )
    return contract, []


def _declared(body: str) -> tuple[str, str] | None:
    """(pipeline, stage) a block means to declare, even when it is otherwise broken."""
    try:
        data = yaml.safe_load(body)
    except yaml.YAMLError:
        return None
    if (
        isinstance(data, dict)
        and isinstance(data.get("pipeline"), str)
        and isinstance(data.get("stage"), str)
    ):
        return data["pipeline"], data["stage"]
    return None


def declared_stages(text: str) -> set[tuple[str, str]]:
    return {d for m in _BLOCK.finditer(text) if (d := _declared(m.group(1))) is not None}


def parse_contracts(text: str, source: str) -> tuple[list[Contract], list[Problem]]:
    """Every contract block in one markdown file, each with the prose of the section it sits in."""
    found, problems = [], []
    for match in _BLOCK.finditer(text):
        first_line = text.count("\n", 0, match.start(1)) + 1
        contract, errs = _parse_block(match.group(1), source, first_line)
        problems += errs
        if contract is not None:
            section_start = text.rfind("\n## ", 0, match.start())
            prose = text[section_start + 1 if section_start >= 0 else 0 : match.start()].strip()
            found.append(Contract(**{**contract.__dict__, "prose": prose}))
    return found, problems


def _validate(contract: Contract, pipeline: Pipeline, text: str) -> list[Problem]:
    problems = []
    lines = text.splitlines()

    def line_of(needle: str) -> int:
        for n in range(contract.line - 1, len(lines)):
            if needle in lines[n]:
                return n + 1
            if lines[n].startswith("```"):
                break
        return contract.line

    def bad(rule: str, msg: str, line: int = contract.line) -> None:
        problems.append(Problem(contract.source, line, rule, msg))

    if contract.stage not in {s.name for s in pipeline.stages}:
        near = difflib.get_close_matches(contract.stage, [s.name for s in pipeline.stages], n=1)
        bad(
            "stage",
            f"pipeline {pipeline.name} has no stage {contract.stage!r}"
            + (f"; did you mean {near[0]!r}?" if near else ""),
        )
        return problems
    stage = pipeline.stage(contract.stage)
    if contract.owner not in ROLES:
        bad("owner", f"owner {contract.owner!r} is not one of {', '.join(ROLES)}", line_of("owner:"))
    elif contract.owner != stage.agent:
        bad(
            "owner",
            f"owner {contract.owner!r}, but the stage registry runs {stage.name} by the {stage.agent}",
            line_of("owner:"),
        )
    templates = [*contract.inputs, *contract.outputs]
    templates += [t for c in contract.checks for t in c.templates().values()]
    templates += [c.name for c in contract.checks]
    for template in templates:
        try:
            names = variables(template)
        except TemplateError as exc:
            bad("template", str(exc), line_of(template))
            continue
        for name in names:
            if name not in pipeline.variables:
                bad(
                    "template",
                    f"{template!r} uses {{{name}}}, which pipeline {pipeline.name} does not declare "
                    f"({', '.join(pipeline.variables)})",
                    line_of(template),
                )
    return problems


def _md_files(paths: Sequence[Path] | None) -> list[tuple[str, str]]:
    """(source name, text) of each spec file: the shipped ones, or those under `paths`."""
    out = []
    if paths is None:
        for package in SPEC_PACKAGES:
            for entry in sorted(resources.files(package).iterdir(), key=lambda e: e.name):
                if entry.name.endswith(".md"):
                    out.append(
                        (f"{package.replace('.', '/')}/{entry.name}", entry.read_text(encoding="utf-8"))
                    )
        return out
    for path in paths:
        if not path.exists():
            raise SpecloopError(f"{path}: no such spec file or folder.", rule="spec-path")
        files = sorted(path.rglob("*.md")) if path.is_dir() else [path]
        out += [(str(f), f.read_text(encoding="utf-8")) for f in files]
    return out


def lint(paths: Sequence[Path] | None = None) -> tuple[ContractSet, list[Problem]]:
    """Load every contract under `paths` (the shipped specs by default) and all their problems."""
    found = ContractSet()
    problems: list[Problem] = []
    known = {p.name: p for p in list_pipelines()}
    declared: set[tuple[str, str]] = set()
    for source, text in _md_files(paths):
        found.files.append(source)
        declared |= declared_stages(text)
        contracts, errs = parse_contracts(text, source)
        problems += errs
        for c in contracts:
            key = (c.pipeline, c.stage)
            if key in found.contracts:
                first = found.contracts[key]
                problems.append(
                    Problem(
                        c.source,
                        c.line,
                        "duplicate-stage",
                        f"stage {c.stage!r} of pipeline {c.pipeline} is already defined at {first.where}",
                    )
                )
                continue
            if c.pipeline not in known:
                problems.append(
                    Problem(
                        c.source,
                        c.line,
                        "pipeline",
                        f"unknown pipeline {c.pipeline!r}; known: {', '.join(sorted(known))}",
                    )
                )
                continue
            problems += _validate(c, known[c.pipeline], text)
            found.contracts[key] = c
    for name in sorted(found.pipelines()):
        pipeline = get_pipeline(name)
        for stage in pipeline.stages:
            if not stage.gate and (name, stage.name) not in declared:
                anchor = next(c for (p, _), c in found.contracts.items() if p == name)
                problems.append(
                    Problem(
                        anchor.source,
                        1,
                        "missing-contract",
                        f"pipeline {name} runs stage {stage.name!r}, which has no contract",
                    )
                )
    return found, problems


@cache
def _load(paths: tuple[Path, ...] | None) -> ContractSet:
    found, problems = lint(list(paths) if paths is not None else None)
    if problems:
        raise ContractLoadError(problems)
    return found


def load_contracts(paths: Sequence[Path] | None = None) -> ContractSet:
    """The validated contracts (shipped, or under `paths`); a ContractLoadError on any problem."""
    return _load(tuple(Path(p).resolve() for p in paths) if paths is not None else None)
