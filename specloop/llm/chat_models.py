"""OpenAI, OpenAI-compatible and Anthropic providers on the maintained LangChain integrations.

Retries are ours (tenacity), not the SDKs': the SDK's internal retries are invisible through
LangChain, and every :class:`LLMCall` must say how many attempts it took. The SDK retry is
therefore switched off (``max_retries=0``) and the same policy applies to every provider:
retry on 408/409/429/5xx, connection errors and timeouts, honouring ``Retry-After``.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import anthropic
import openai
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt

from specloop.ledger.redaction import redact
from specloop.llm.base import LLM, Completion, LLMError
from specloop.llm.messages import ToolLike

_PROVIDER_ERRORS = (openai.OpenAIError, anthropic.AnthropicError)
_STATUS_ERRORS = (openai.APIStatusError, anthropic.APIStatusError)
_CONNECTION_ERRORS = (openai.APIConnectionError, anthropic.APIConnectionError)


def is_retryable(exc: BaseException) -> bool:
    """Rate limits, timeouts, dropped connections and server errors are worth another try."""
    if isinstance(exc, _CONNECTION_ERRORS):
        return True
    if isinstance(exc, _STATUS_ERRORS):
        return exc.status_code in (408, 409, 429) or exc.status_code >= 500
    return False


def retry_after_s(exc: BaseException | None) -> float | None:
    """The server's ``Retry-After``/``retry-after-ms`` hint in seconds, if it sent a number."""
    headers = getattr(getattr(exc, "response", None), "headers", None)
    if headers is None:
        return None
    for header, scale in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        try:
            return float(headers[header]) / scale
        except (KeyError, ValueError, TypeError):
            continue
    return None


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int = 4
    initial_s: float = 1.0
    max_s: float = 30.0

    def wait(self, state: RetryCallState) -> float:
        """Exponential backoff with jitter, or the server's hint when it gives one (capped)."""
        hint = retry_after_s(state.outcome.exception() if state.outcome else None)
        if hint is not None:
            return min(max(hint, 0.0), self.max_s)
        return min(self.initial_s * 2 ** (state.attempt_number - 1), self.max_s) * random.uniform(0.75, 1.0)


class ChatModelLLM(LLM):
    """Any LangChain chat model with tool binding (``ChatOpenAI``, ``ChatAnthropic``)."""

    def __init__(self, chat_model: BaseChatModel, *, retry: RetryPolicy, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.chat_model = chat_model
        self.retry = retry
        self._unreachable: str | None = None  # set once every attempt of a call failed to connect

    def _complete(
        self,
        messages: list[BaseMessage],
        tools: Sequence[ToolLike] | None,
        *,
        agent: str,
        stage: str,
        key: str,
    ) -> Completion:
        if self._unreachable is not None:  # each later call would wait out the same retries again
            raise LLMError(
                f"the {self.name} call by agent '{agent}' at stage '{stage}' was not sent: {self._unreachable}"
            )
        runnable = self.chat_model.bind_tools(list(tools)) if tools else self.chat_model
        retrying = Retrying(
            stop=stop_after_attempt(self.retry.max_retries + 1),
            wait=self.retry.wait,
            retry=retry_if_exception(is_retryable),
            before_sleep=lambda state: self._say_retry(state, agent, stage),
            reraise=True,
        )
        try:
            reply = retrying(runnable.invoke, messages)
        except _PROVIDER_ERRORS as exc:
            attempts = retrying.statistics.get("attempt_number", 1)
            detail = redact(f"{type(exc).__name__}: {exc}", self.secrets)
            if isinstance(exc, _CONNECTION_ERRORS):
                self._unreachable = (
                    f"the model did not answer any of {attempts} attempt(s) earlier ({detail})"
                )
            raise LLMError(
                f"the {self.name} call by agent '{agent}' at stage '{stage}' failed after "
                f"{attempts} attempt(s): {detail}"
            ) from None
        if not isinstance(reply, AIMessage):
            raise LLMError(f"the {self.name} call by agent '{agent}' at stage '{stage}' returned no message.")
        return Completion(reply, attempt_count=retrying.statistics.get("attempt_number", 1))

    def _say_retry(self, state: RetryCallState, agent: str, stage: str) -> None:
        """One status line per failed attempt that will be retried: which attempt, the wait, why."""
        exc = state.outcome.exception() if state.outcome else None
        wait = state.next_action.sleep if state.next_action else 0.0
        status = getattr(exc, "status_code", None)
        why = type(exc).__name__ + (f" {status}" if status is not None else "")
        self.notify(
            f"[{stage} · model] {self.name} for {agent}: attempt {state.attempt_number}/"
            f"{self.retry.max_retries + 1} failed ({why}); retrying in {wait:.1f}s"
        )


def openai_chat_model(
    model: str, *, api_key: str, base_url: str | None, timeout_s: float, max_output_tokens: int
) -> BaseChatModel:
    from langchain_openai import ChatOpenAI

    return ChatOpenAI(
        model=model,
        api_key=api_key,
        base_url=base_url,
        timeout=timeout_s,
        max_retries=0,
        max_tokens=max_output_tokens,
        use_responses_api=False,
    )


def anthropic_chat_model(
    model: str, *, api_key: str, base_url: str | None, timeout_s: float, max_output_tokens: int
) -> BaseChatModel:
    from langchain_anthropic import ChatAnthropic

    return ChatAnthropic(
        model=model,
        api_key=api_key,
        base_url=base_url,
        timeout=timeout_s,
        max_retries=0,
        max_tokens=max_output_tokens,
    )
