"""Evaluating a loaded contract against a run: inputs before a stage, outputs and done-when after."""

from __future__ import annotations

import json
from dataclasses import dataclass

from specloop.skills.contracts.checks import CheckEnv
from specloop.skills.contracts.load import Contract
from specloop.skills.contracts.templates import TemplateError, render


@dataclass(frozen=True)
class CheckResult:
    stage: str
    check: str  # the check's stable id
    name: str
    ok: bool
    detail: str


def _present(env: CheckEnv, template: str) -> bool:
    path = env.path(template)
    if "*" in path.name or any("*" in part for part in path.parts):
        anchor = next(i for i, part in enumerate(path.parts) if "*" in part)
        root = type(path)(*path.parts[:anchor])
        return any(root.glob("/".join(path.parts[anchor:])))
    return path.exists()


def missing_inputs(contract: Contract, env: CheckEnv) -> list[str]:
    """The contract's inputs that are not there, rendered (`*` matches anything)."""
    return [render(t, env.values) for t in contract.inputs if not _present(env, t)]


def output_check_id(template: str) -> str:
    """The stable id of the implicit check that an output was written."""
    return f"output:{template}"


def run_checks(contract: Contract, env: CheckEnv) -> list[CheckResult]:
    """Every done-when check, then one check per declared output (was it written?)."""
    results = []
    for check in contract.checks:
        if not check.applies(env):
            results.append(
                CheckResult(contract.stage, check.id, render(check.name, env.values), True, "not applicable")
            )
            continue
        try:
            ok, detail = check.evaluate(env)
        except (OSError, KeyError, ValueError, TypeError, TemplateError, json.JSONDecodeError) as exc:
            ok, detail = False, f"{type(exc).__name__}: {exc}"
        results.append(CheckResult(contract.stage, check.id, render(check.name, env.values), ok, detail))
    for template in contract.outputs:
        ok = _present(env, template)
        rendered = render(template, env.values)
        detail = f"{rendered} {'written' if ok else 'was not written'}"
        results.append(
            CheckResult(contract.stage, output_check_id(template), f"writes {rendered}", ok, detail)
        )
    return results
