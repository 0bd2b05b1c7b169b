"""A per-run budget in tokens and US dollars, shared by every model call of the run."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from specloop.errors import SpecloopError

_RESUME_HINT = (
    "the run state is kept: resume it with a larger budget "
    "(budget_tokens / budget_usd in specloop.toml, or $SPECLOOP_BUDGET_TOKENS / $SPECLOOP_BUDGET_USD)"
)


class BudgetExceeded(SpecloopError):
    """A model call would exceed, or has exceeded, the run's budget (a clean, resumable stop)."""

    exit_code = 2


@dataclass
class Budget:
    """Limits (``None`` = unlimited) and what has been spent against them.

    A resumed run passes what it had already spent as ``spent_tokens`` / ``spent_usd``.
    """

    max_tokens: int | None = None
    max_usd: float | None = None
    spent_tokens: int = 0
    spent_usd: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def check(self, est_tokens: int, est_usd: float, *, agent: str, stage: str) -> None:
        """Raise before a call whose estimated input alone would go over a limit."""
        with self._lock:
            self._raise_if_over(
                self.spent_tokens + est_tokens,
                self.spent_usd + est_usd,
                f"the next call by agent '{agent}' at stage '{stage}' (~{est_tokens:,} input tokens) "
                "would exceed the LLM budget",
            )

    def charge(self, tokens: int, usd: float, *, agent: str, stage: str) -> None:
        """Add a finished call's usage; raise if the run is now over a limit."""
        with self._lock:
            self.spent_tokens += tokens
            self.spent_usd += usd
            self._raise_if_over(
                self.spent_tokens,
                self.spent_usd,
                f"the call by agent '{agent}' at stage '{stage}' went over the LLM budget",
            )

    def _raise_if_over(self, tokens: int, usd: float, what: str) -> None:
        if self.max_tokens is not None and tokens > self.max_tokens:
            raise BudgetExceeded(
                f"{what}: {tokens:,} of {self.max_tokens:,} tokens "
                f"(spent so far {self.spent_tokens:,}); {_RESUME_HINT}."
            )
        if self.max_usd is not None and usd > self.max_usd:
            raise BudgetExceeded(
                f"{what}: ${usd:.4f} of ${self.max_usd:.4f} (spent so far ${self.spent_usd:.4f}); "
                f"{_RESUME_HINT}."
            )
