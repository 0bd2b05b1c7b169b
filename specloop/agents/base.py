"""The common shape of an agent: its role text, the contracts of its stages, its record, and the
one result type every stage method returns."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, ClassVar, TypeVar

from langchain_core.messages import HumanMessage, SystemMessage

from specloop.agents.context import RunContext
from specloop.llm import BudgetExceeded, LLMError
from specloop.skills.number_check import check_text

T = TypeVar("T")


@dataclass(frozen=True)
class StageResult:
    """What a stage method returns: its one-line summary and the record merged into the state."""

    summary: str
    record: dict[str, Any] = field(default_factory=dict)


class Agent:
    role: ClassVar[str]

    def __init__(self, ctx: RunContext) -> None:
        self.ctx = ctx

    def role_text(self) -> str:
        return resources.files("specloop.agents").joinpath(f"{self.role}.md").read_text(encoding="utf-8")

    def instructions(self, stage: str) -> str:
        """What a chat model would be told for `stage`: the role file plus that stage's spec section."""
        contract = self.ctx.contracts.get(self.ctx.pipeline, stage)
        section = f"\n\n## Stage spec ({contract.source})\n\n{contract.prose}" if contract else ""
        return self.role_text() + section

    def draft(
        self,
        stage: str,
        iter_label: str,
        *,
        task: str,
        facts: dict[str, Any],
        offline: str,
        max_words: int | None = None,
    ) -> str:
        """Text for a person: the model's draft when there is a model and every number in it is
        one the tools computed (in `facts` or the offline text), else the offline text.

        The model only words what the tools decided; a rejected or failed draft is recorded in
        the transcript with the reason, and the offline text is used instead.
        """
        llm = self.ctx.llm
        if llm is None:
            return offline
        reference = f"The tools' own wording, which you may improve:\n{offline}\n\n" if offline else ""
        prompt = (
            f"{task}\n\nFacts from the run's ledger (JSON):\n{json.dumps(facts, sort_keys=True, default=str)}"
            f"\n\n{reference}State only numbers that appear above; write plain Markdown without a title."
            + (f" Stay under {max_words} words." if max_words else "")
        )
        messages = [SystemMessage(self.instructions(stage)), HumanMessage(prompt)]
        try:
            text = llm.invoke(messages, agent=self.role, stage=stage).text.strip()
        except BudgetExceeded:
            raise
        except LLMError as exc:
            self.record("model_text_rejected", stage, iter_label, reasons=[str(exc)], used="offline")
            return offline
        problems = check_text(text, facts, reference_texts=[offline], max_words=max_words)
        if problems:
            self.record("model_text_rejected", stage, iter_label, reasons=problems, text=text, used="offline")
            return offline
        self.record("model_text_accepted", stage, iter_label, chars=len(text))
        return text

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
