"""Errors a user can act on.

A :class:`SpecloopError` is printed by the CLI as one sentence (no traceback) and turned into
the exit code it carries. Raise it for bad input; let real bugs propagate.
"""

from __future__ import annotations


class SpecloopError(Exception):
    """A problem with the user's input or environment, stated in one sentence."""

    exit_code: int = 2

    def __init__(self, message: str, *, exit_code: int | None = None) -> None:
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


class ContractError(SpecloopError):
    """Input data breaks the AOI data contract (file, row, rule)."""


class SpecError(SpecloopError):
    """An experiment spec cannot be loaded or validated."""


class HardStop(SpecloopError):
    """A loop check failed in a way retrying cannot fix (leakage, silent drop, mutated pool …).

    `check` names the failed check; the run records it in its state and stops with exit code 2.
    """

    def __init__(self, check: str, reason: str) -> None:
        super().__init__(f"hard stop [{check}]: {reason}")
        self.check = check
        self.reason = reason
