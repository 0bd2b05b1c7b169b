"""The six roles by name, as the stage registry names them."""

from __future__ import annotations

from specloop.agents.base import Agent
from specloop.agents.coder import Coder
from specloop.agents.context import RunContext
from specloop.agents.dataset import Dataset
from specloop.agents.ops import Ops
from specloop.agents.planner import Planner
from specloop.agents.reporter import Reporter
from specloop.agents.reviewer import Reviewer

AGENTS: dict[str, type[Agent]] = {cls.role: cls for cls in (Planner, Coder, Dataset, Reviewer, Ops, Reporter)}


def agent_for(role: str, ctx: RunContext) -> Agent:
    return AGENTS[role](ctx)
