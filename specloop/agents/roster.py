"""The six roles by name, per pipeline, as the stage registry names them."""

from __future__ import annotations

from specloop.agents.base import Agent
from specloop.agents.coder import Coder
from specloop.agents.context import RunContext
from specloop.agents.create.coder import CreateCoder
from specloop.agents.create.ops import CreateOps
from specloop.agents.create.planner import CreatePlanner
from specloop.agents.create.reviewer import CreateReviewer
from specloop.agents.create.target_coder import TargetCoder
from specloop.agents.create.target_dataset import TargetDataset
from specloop.agents.create.target_ops import TargetOps
from specloop.agents.create.target_planner import TargetPlanner
from specloop.agents.dataset import Dataset
from specloop.agents.ops import Ops
from specloop.agents.planner import Planner
from specloop.agents.reporter import Reporter
from specloop.agents.reviewer import Reviewer


class CreatePlannerAll(CreatePlanner, TargetPlanner):
    """Part A's and part B's planner stages."""


class CreateCoderAll(CreateCoder, TargetCoder):
    """Part A's and part B's coder stages."""


class CreateOpsAll(CreateOps, TargetOps):
    """Part A's and part B's ops stages."""


AGENTS: dict[tuple[str, str], type[Agent]] = {
    **{("deft", cls.role): cls for cls in (Planner, Coder, Dataset, Reviewer, Ops, Reporter)},
    **{
        ("create", cls.role): cls
        for cls in (CreatePlannerAll, CreateCoderAll, CreateReviewer, CreateOpsAll, TargetDataset)
    },
}


def agent_for(role: str, ctx: RunContext) -> Agent:
    try:
        return AGENTS[(ctx.pipeline, role)](ctx)
    except KeyError:
        raise KeyError(f"pipeline {ctx.pipeline} has no {role} agent") from None
