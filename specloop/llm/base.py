"""The one interface every provider implements, with budget, accounting and recording around it."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from langchain_core.messages import AIMessage, BaseMessage

from specloop.errors import SpecloopError
from specloop.ledger.redaction import redact_obj
from specloop.llm.budget import Budget
from specloop.llm.calls import LLMCall
from specloop.llm.messages import (
    ToolLike,
    estimate_tokens,
    message_record,
    request_key,
    response_record,
    tool_schemas,
)
from specloop.llm.prices import DEFAULT_PRICES, Price, call_cost

if TYPE_CHECKING:
    from specloop.llm.cassette import CassetteWriter

Recorder = Callable[[LLMCall], None]
Notify = Callable[[str], None]  # one status line for the person at the terminal (a retry, a wait)


def to_stderr(line: str) -> None:
    """The default `notify`: stderr, where the stages' status lines go; stdout stays for --json."""
    print(line, file=sys.stderr, flush=True)


class LLMError(SpecloopError):
    """A model call failed (after retries); the message names agent, stage and provider."""


class LLMUnavailable(LLMError):
    """``invoke`` on the offline provider: agents must check ``LLM.available`` first."""


@dataclass(frozen=True)
class Completion:
    """What a provider returns to :meth:`LLM.invoke`; replay also hands back the recorded call."""

    message: AIMessage
    attempt_count: int = 1
    recorded: LLMCall | None = None


class LLM:
    """A chat model behind one ``invoke``; subclasses implement :meth:`_complete`."""

    available: bool = True

    def __init__(
        self,
        *,
        name: str,
        provider: str,
        model: str,
        budget: Budget | None = None,
        recorders: Sequence[Recorder] = (),
        secrets: frozenset[str] = frozenset(),
        prices: Mapping[str, Price] = DEFAULT_PRICES,
        cassette: CassetteWriter | None = None,
        notify: Notify = to_stderr,
    ) -> None:
        self.name = name
        self.provider = provider
        self.model = model
        self.budget = budget if budget is not None else Budget()
        self.recorders = list(recorders)
        self.secrets = secrets
        self.prices = prices
        self.cassette = cassette
        self.notify = notify

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"

    def invoke(
        self,
        messages: Sequence[BaseMessage],
        *,
        agent: str,
        stage: str,
        tools: Sequence[ToolLike] | None = None,
    ) -> AIMessage:
        """Send ``messages`` (and ``tools``, if any) and return the model's reply.

        Raises :class:`BudgetExceeded` before the call if its estimated input would go over the
        budget, and after it if the actual usage did (the call is still recorded first);
        :class:`LLMError` if the provider failed after its retries.
        """
        records = [message_record(m) for m in messages]
        schemas = tool_schemas(tools)
        est_tokens = estimate_tokens(records, schemas)
        self.budget.check(est_tokens, self._cost(est_tokens, 0), agent=agent, stage=stage)
        key = request_key(records, schemas, agent, stage)
        started = time.perf_counter()
        completion = self._complete(list(messages), tools, agent=agent, stage=stage, key=key)
        latency = time.perf_counter() - started
        call = completion.recorded or self._make_call(completion, records, agent, stage, latency)
        if self.cassette is not None:
            self.cassette.append(key, call)
        for recorder in self.recorders:
            recorder(call)
        self.budget.charge(call.total_tokens, call.cost_usd, agent=agent, stage=stage)
        return completion.message

    def _complete(
        self,
        messages: list[BaseMessage],
        tools: Sequence[ToolLike] | None,
        *,
        agent: str,
        stage: str,
        key: str,
    ) -> Completion:
        raise NotImplementedError

    def _cost(self, input_tokens: int, output_tokens: int) -> float:
        return call_cost(self.model, input_tokens, output_tokens, self.prices) if self.model else 0.0

    def _make_call(
        self, completion: Completion, records: list[dict[str, Any]], agent: str, stage: str, latency: float
    ) -> LLMCall:
        usage = completion.message.usage_metadata or {}
        input_tokens = int(usage.get("input_tokens", 0))
        output_tokens = int(usage.get("output_tokens", 0))
        return LLMCall(
            agent=agent,
            stage=stage,
            provider=self.provider,
            model=self.model,
            messages=redact_obj(records, self.secrets),
            response=redact_obj(response_record(completion.message), self.secrets),
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cost_usd=self._cost(input_tokens, output_tokens),
            latency_s=round(latency, 6),
            attempt_count=completion.attempt_count,
        )


class OfflineLLM(LLM):
    """No model: agents use their rule-based policies. Invoking it is a programming error."""

    available = False

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(name="offline", provider="offline", model="", **kwargs)

    def invoke(
        self,
        messages: Sequence[BaseMessage],
        *,
        agent: str,
        stage: str,
        tools: Sequence[ToolLike] | None = None,
    ) -> AIMessage:
        raise LLMUnavailable(
            f"agent '{agent}' asked the offline LLM for a reply at stage '{stage}': no model is configured "
            "(set SPECLOOP_LLM or llm in specloop.toml), and agents must check LLM.available first."
        )
