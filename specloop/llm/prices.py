"""USD prices per million tokens for a few well-known models, and the cost of a call.

The table is a convenience, dated by ``PRICES_AS_OF``; override or extend it with
``[llm_prices]`` in ``specloop.toml``. Models not in it (local servers, new models) cost 0.0.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

log = logging.getLogger("specloop.llm")

PRICES_AS_OF = "2025-06"


@dataclass(frozen=True)
class Price:
    input_per_mtok: float
    output_per_mtok: float


DEFAULT_PRICES: dict[str, Price] = {
    "gpt-4o": Price(2.50, 10.00),
    "gpt-4o-mini": Price(0.15, 0.60),
    "gpt-4.1": Price(2.00, 8.00),
    "gpt-4.1-mini": Price(0.40, 1.60),
    "gpt-4.1-nano": Price(0.10, 0.40),
    "o3-mini": Price(1.10, 4.40),
    "claude-3-haiku": Price(0.25, 1.25),
    "claude-3-5-haiku": Price(0.80, 4.00),
    "claude-3-5-sonnet": Price(3.00, 15.00),
    "claude-3-7-sonnet": Price(3.00, 15.00),
    "claude-sonnet-4": Price(3.00, 15.00),
    "claude-opus-4": Price(15.00, 75.00),
}

_noted_unknown: set[str] = set()


def price_for(model: str, prices: Mapping[str, Price]) -> Price | None:
    """The price of the longest table entry that ``model`` starts with (dated names match)."""
    matches = [name for name in prices if model == name or model.startswith(name + "-")]
    return prices[max(matches, key=len)] if matches else None


def call_cost(model: str, input_tokens: int, output_tokens: int, prices: Mapping[str, Price]) -> float:
    """Cost in USD; an unknown model costs 0.0 and is noted once per process."""
    price = price_for(model, prices)
    if price is None:
        if model not in _noted_unknown:
            _noted_unknown.add(model)
            log.info(
                "no price known for model %r: its calls are counted as $0 (add it under [llm_prices])",
                model,
            )
        return 0.0
    return (input_tokens * price.input_per_mtok + output_tokens * price.output_per_mtok) / 1_000_000
