"""Executable stage contracts: the fenced ```yaml contract``` blocks inside specs and references.

A contract names a stage, its owning agent, inputs, outputs and done-when checks. The reviewer
runs the checks after the stage; a failed check stops the run with a message naming it. Paths
in checks are templates over the run directory (`{iter}` is the iteration label).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

_BLOCK = re.compile(r"```yaml contract\n(.*?)```", re.DOTALL)
SPEC_PACKAGES = ("specloop.specs", "specloop.references")


@dataclass(frozen=True)
class Contract:
    stage: str
    owner: str
    source: str
    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    done_when: list[dict[str, Any]] = field(default_factory=list)
    prose: str = ""


@dataclass(frozen=True)
class CheckResult:
    stage: str
    check: str
    ok: bool
    detail: str


def parse_contracts(text: str, source: str) -> list[Contract]:
    """Every contract block in one markdown file, with the prose of the section it sits in."""
    contracts = []
    for match in _BLOCK.finditer(text):
        data = yaml.safe_load(match.group(1))
        section_start = text.rfind("\n## ", 0, match.start())
        prose = text[section_start + 1 if section_start >= 0 else 0 : match.start()].strip()
        contracts.append(
            Contract(
                stage=data["stage"],
                owner=data["owner"],
                source=source,
                inputs=list(data.get("inputs", [])),
                outputs=list(data.get("outputs", [])),
                done_when=list(data.get("done_when", [])),
                prose=prose,
            )
        )
    return contracts


def load_contracts() -> dict[str, Contract]:
    """All contracts shipped with the package, by stage name."""
    found: dict[str, Contract] = {}
    for package in SPEC_PACKAGES:
        for entry in sorted(resources.files(package).iterdir(), key=lambda e: e.name):
            if entry.name.endswith(".md"):
                for c in parse_contracts(entry.read_text(encoding="utf-8"), f"{package}/{entry.name}"):
                    found[c.stage] = c
    return found


def _field(data: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        data = data[part]
    return data


def run_checks(contract: Contract, run_dir: Path, variables: dict[str, str]) -> list[CheckResult]:
    """Evaluate every done-when check of `contract` against files under `run_dir`."""
    results = []
    for check in contract.done_when:
        kind = check["check"]
        path = run_dir / check["path"].format(**variables) if "path" in check else None
        name = check.get("name", f"{kind} {check.get('path', '')}".strip())
        try:
            ok, detail = _evaluate(kind, check, path)
        except (OSError, KeyError, ValueError, TypeError, json.JSONDecodeError) as exc:
            ok, detail = False, f"{type(exc).__name__}: {exc}"
        results.append(CheckResult(contract.stage, name.format(**variables), ok, detail))
    return results


def missing_inputs(
    contract: Contract, run_dir: Path, workspace: Path, variables: dict[str, str]
) -> list[str]:
    """The contract's inputs that are not there. `<workspace>/…` is under the workspace; other
    paths are looked up in the run directory, then the workspace; `<name>` and `*` match any."""
    missing = []
    for pattern in contract.inputs:
        text = re.sub(r"<(?!workspace>)[^>]+>", "*", pattern.format(**variables))
        roots = [workspace] if text.startswith("<workspace>/") else [run_dir, workspace]
        rel = text.removeprefix("<workspace>/")
        if not any(any(root.glob(rel)) if "*" in rel else (root / rel).exists() for root in roots):
            missing.append(pattern.format(**variables))
    return missing


def _evaluate(kind: str, check: dict[str, Any], path: Path | None) -> tuple[bool, str]:
    assert path is not None
    if kind == "exists":
        return path.exists(), f"{path.name} {'exists' if path.exists() else 'is missing'}"
    if kind == "csv_rows":
        n = len(pd.read_csv(path))
        minimum = int(check.get("min", 1))
        return n >= minimum, f"{path.name} has {n} row(s), needs >= {minimum}"
    if kind == "json_field":
        value = _field(json.loads(path.read_text()), check["field"])
        if "equals" in check:
            return value == check["equals"], f"{check['field']} = {value!r}, expected {check['equals']!r}"
        if "min" in check:
            return float(value) >= float(
                check["min"]
            ), f"{check['field']} = {value!r}, needs >= {check['min']}"
        return value is not None, f"{check['field']} = {value!r}"
    raise ValueError(f"unknown check kind {kind!r}")
