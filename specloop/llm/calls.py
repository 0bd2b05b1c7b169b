"""The record of one model call, and a tally of tokens and cost per agent and stage."""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class LLMCall:
    """One model call as it goes into a transcript or cassette (secrets already redacted).

    ``messages`` are provider-agnostic records (``role``, ``content``, ``tool_calls``,
    ``tool_call_id``); ``response`` is the assistant message in the same form plus ``usage``.
    """

    agent: str
    stage: str
    provider: str
    model: str
    messages: list[dict[str, Any]]
    response: dict[str, Any]
    input_tokens: int
    output_tokens: int
    cost_usd: float
    latency_s: float
    attempt_count: int

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LLMCall:
        return cls(**{name: data[name] for name in cls.__dataclass_fields__})


@dataclass
class Usage:
    """Summed tokens and cost of a group of calls."""

    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def add(self, call: LLMCall) -> None:
        self.calls += 1
        self.input_tokens += call.input_tokens
        self.output_tokens += call.output_tokens
        self.cost_usd += call.cost_usd

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "total_tokens": self.total_tokens}


@dataclass
class UsageTally:
    """A recorder (pass it as ``recorder=``) that sums usage per ``(agent, stage)``."""

    by_agent_stage: dict[tuple[str, str], Usage] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def __call__(self, call: LLMCall) -> None:
        with self._lock:
            self.by_agent_stage.setdefault((call.agent, call.stage), Usage()).add(call)

    def total(self) -> Usage:
        out = Usage()
        for usage in self.by_agent_stage.values():
            out.calls += usage.calls
            out.input_tokens += usage.input_tokens
            out.output_tokens += usage.output_tokens
            out.cost_usd += usage.cost_usd
        return out
