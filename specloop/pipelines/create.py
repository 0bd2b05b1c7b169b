"""Spec-driven project creation, declared once (CREATE_FLOW.md part A).

requirements → approval_gate → tech → tasks → codegen → verify_tasks → review → venv.
Every stage runs under the label `framework` (part A happens in the framework; the target
project's own stages follow in later parts). A hard stop ends the run: there is no final stage.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

from specloop.pipelines.registry import GATE, Pipeline, Stage, register_pipeline

FRAMEWORK = "framework"


def _values(state: Mapping[str, Any], label: str) -> dict[str, str]:
    values = {"label": label, "python": sys.executable}
    project = state.get("project_dir")
    if project:
        values["project"] = str(project)
    return values


CREATE = register_pipeline(
    Pipeline(
        name="create",
        title="Spec-driven project creation",
        entry="requirements",
        final=None,
        variables=("label", "project", "python"),
        values=_values,
        scope_order=(FRAMEWORK,),
        stages=(
            Stage("requirements", "planner", "requirements", GATE, FRAMEWORK, doc="scored items, questions"),
            Stage(GATE, "planner", "approve", "tech", FRAMEWORK, gate=True, doc="answers and one approval"),
            Stage("tech", "coder", "tech", "tasks", FRAMEWORK, doc="measured candidates, tech.md"),
            Stage("tasks", "planner", "tasks", "codegen", FRAMEWORK, doc="tasks with acceptance commands"),
            Stage("codegen", "coder", "codegen", "verify_tasks", FRAMEWORK, doc="render, run every task"),
            Stage("verify_tasks", "planner", "verify_tasks", "review", FRAMEWORK, doc="re-run every task"),
            Stage("review", "reviewer", "review", "venv", FRAMEWORK, doc="static and run checks, fixes"),
            Stage("venv", "ops", "venv", None, FRAMEWORK, doc="venv.md and spec copies"),
        ),
    )
)
