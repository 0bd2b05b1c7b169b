"""The graphs' state: small, plain JSON. Everything large lives on disk under the run dir."""

from __future__ import annotations

from typing import Any, TypedDict


class GraphState(TypedDict, total=False):
    run_dir: str
    workspace: str
    options: dict[str, Any]
    iteration: int
    halt: str | None
