"""The common shape of an agent: its role text, the contracts of its stages, and its record."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from importlib import resources
from typing import Any, ClassVar, TypeVar

from specloop.agents.context import RunContext
from specloop.skills.contracts import Contract, load_contracts

T = TypeVar("T")


@cache
def contracts() -> dict[str, Contract]:
    return load_contracts()


class Agent:
    role: ClassVar[str]

    def __init__(self, ctx: RunContext) -> None:
        self.ctx = ctx

    def role_text(self) -> str:
        return resources.files("specloop.agents").joinpath(f"{self.role}.md").read_text(encoding="utf-8")

    def instructions(self, stage: str) -> str:
        """What a chat model would be told for `stage`: the role file plus that stage's spec section."""
        contract = contracts().get(stage)
        section = f"\n\n## Stage spec ({contract.source})\n\n{contract.prose}" if contract else ""
        return self.role_text() + section

    def record(self, kind: str, stage: str, iter_label: str, **data: Any) -> None:
        self.ctx.transcript.record(self.role, kind, stage, iter_label, **data)

    def tool(self, name: str, stage: str, iter_label: str, fn: Callable[..., T], /, **kwargs: Any) -> T:
        """Call a deterministic skill and record the call (arguments and a short result)."""
        self.record("tool_call", stage, iter_label, tool=name, args={k: _short(v) for k, v in kwargs.items()})
        result = fn(**kwargs)
        self.record("tool_result", stage, iter_label, tool=name, result=_short(result))
        return result


def _short(value: Any, limit: int = 400) -> Any:
    if isinstance(value, str | int | float | bool) or value is None:
        return value if not isinstance(value, str) or len(value) <= limit else value[:limit] + "…"
    if isinstance(value, dict):
        return {str(k): _short(v, limit) for k, v in list(value.items())[:40]}
    if isinstance(value, list | tuple):
        return [_short(v, limit) for v in list(value)[:20]]
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "…"
