"""The DEFT loop's graph, built from its declaration in :mod:`specloop.pipelines.deft`."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph.state import CompiledStateGraph

from specloop.graph.build import Node, build_graph, nodes
from specloop.pipelines.deft import DEFT


def build_deft_graph(
    checkpointer: BaseCheckpointSaver, *, specs: Sequence[Path] | None = None
) -> CompiledStateGraph:
    return build_graph(DEFT, checkpointer, specs=specs)


def node(stage: str) -> Node:
    """One stage's node function (tests drive single nodes on a rewound run)."""
    return nodes(DEFT)[stage]
