"""Spec-driven project creation, declared once (CREATE_FLOW.md parts A and B).

requirements → approval_gate → tech → tasks → codegen → verify_tasks → review → venv (label
`framework`, in the framework), then inherit_rules → env_check → mini_dataset → one_epoch →
full_train_guidance (label `target`, inside the target project). A hard stop ends the run: there
is no final stage.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

from specloop.pipelines.registry import GATE, Pipeline, Stage, register_pipeline

FRAMEWORK = "framework"
TARGET = "target"


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
        scope_order=(FRAMEWORK, TARGET),
        stages=(
            Stage("requirements", "planner", "requirements", GATE, FRAMEWORK, doc="scored items, questions"),
            Stage(GATE, "planner", "approve", "tech", FRAMEWORK, gate=True, doc="answers and one approval"),
            Stage("tech", "coder", "tech", "tasks", FRAMEWORK, doc="measured candidates, tech.md"),
            Stage("tasks", "planner", "tasks", "codegen", FRAMEWORK, doc="tasks with acceptance commands"),
            Stage("codegen", "coder", "codegen", "verify_tasks", FRAMEWORK, doc="render, run every task"),
            Stage("verify_tasks", "planner", "verify_tasks", "review", FRAMEWORK, doc="re-run every task"),
            Stage("review", "reviewer", "review", "venv", FRAMEWORK, doc="static and run checks, fixes"),
            Stage("venv", "ops", "venv", "inherit_rules", FRAMEWORK, doc="venv.md and spec copies"),
            Stage(
                "inherit_rules",
                "planner",
                "inherit_rules",
                "env_check",
                TARGET,
                doc="CLAUDE.local/inherited.md",
            ),
            Stage(
                "env_check", "ops", "env_check", "mini_dataset", TARGET, doc="real venv install, env report"
            ),
            Stage(
                "mini_dataset", "dataset", "mini_dataset", "one_epoch", TARGET, doc="data/mini, notebook run"
            ),
            Stage(
                "one_epoch", "coder", "one_epoch", "full_train_guidance", TARGET, doc="1 epoch, bug-fix loop"
            ),
            Stage(
                "full_train_guidance", "coder", "full_train_guidance", None, TARGET, doc="guidance, torchrun"
            ),
        ),
    )
)
