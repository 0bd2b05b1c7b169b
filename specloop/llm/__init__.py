"""Chat-model providers behind one interface (see ``docs/llm.md``).

``get_llm()`` returns an :class:`LLM`: OpenAI, Anthropic, any OpenAI-compatible server, a
replayed cassette, or ``offline`` (``available`` is False; agents use their rule-based policy).

Names load on first use (PEP 562), so ``from specloop.llm import BudgetExceeded`` does not import
the provider SDKs; ``get_llm`` does.
"""

from __future__ import annotations

import importlib
from typing import Any

_HOME = {
    "base": ("LLM", "Completion", "LLMError", "LLMUnavailable", "OfflineLLM"),
    "budget": ("Budget", "BudgetExceeded"),
    "calls": ("LLMCall", "Usage", "UsageTally"),
    "cassette": ("ReplayLLM", "read_cassette"),
    "config": ("LLMSettings", "ProviderSpec", "load_settings", "parse_llm_spec"),
    "factory": ("get_llm",),
    "prices": ("DEFAULT_PRICES", "Price"),
}
_MODULE_OF = {name: module for module, names in _HOME.items() for name in names}

__all__ = sorted(_MODULE_OF)


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_MODULE_OF])
