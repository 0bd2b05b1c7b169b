"""Chat-model providers behind one interface (see ``docs/llm.md``).

``get_llm()`` returns an :class:`LLM`: OpenAI, Anthropic, any OpenAI-compatible server, a
replayed cassette, or ``offline`` (``available`` is False; agents use their rule-based policy).
"""

from specloop.ledger.redaction import redact, redact_obj
from specloop.llm.base import LLM, Completion, LLMError, LLMUnavailable, OfflineLLM
from specloop.llm.budget import Budget, BudgetExceeded
from specloop.llm.calls import LLMCall, Usage, UsageTally
from specloop.llm.cassette import ReplayLLM, read_cassette
from specloop.llm.config import LLMSettings, ProviderSpec, load_settings, parse_llm_spec
from specloop.llm.factory import get_llm
from specloop.llm.prices import DEFAULT_PRICES, Price

__all__ = [
    "DEFAULT_PRICES",
    "LLM",
    "Budget",
    "BudgetExceeded",
    "Completion",
    "LLMCall",
    "LLMError",
    "LLMSettings",
    "LLMUnavailable",
    "OfflineLLM",
    "Price",
    "ProviderSpec",
    "ReplayLLM",
    "Usage",
    "UsageTally",
    "get_llm",
    "load_settings",
    "parse_llm_spec",
    "read_cassette",
    "redact",
    "redact_obj",
]
