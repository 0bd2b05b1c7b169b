"""Errors a user can act on.

A :class:`SpecloopError` is printed by the CLI as one sentence (no traceback) and turned into
the exit code it carries. Raise it for bad input; let real bugs propagate.

Every error carries one `rule`: a short stable name of the rule that was broken (`leakage`,
`data-contract`, `spec`, …). It is shown as ``[rule]`` in exactly one place, :func:`render`, and a
run that stops on the error records the rule as its check.
"""

from __future__ import annotations


class SpecloopError(Exception):
    """A problem with the user's input or environment, stated in one sentence."""

    exit_code: int = 2
    default_rule: str = "input"

    def __init__(self, message: str, *, rule: str | None = None, exit_code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.rule = rule or self.default_rule
        if exit_code is not None:
            self.exit_code = exit_code


class ContractError(SpecloopError):
    """Input data breaks the AOI data contract (file, row, rule)."""

    default_rule = "data-contract"


class SpecError(SpecloopError):
    """An experiment spec cannot be loaded or validated."""

    default_rule = "spec"


class HardStop(SpecloopError):
    """A loop check failed in a way retrying cannot fix (leakage, silent drop, mutated pool …).

    The rule names the failed check; the run records it in its state and stops with exit code 2.
    """

    def __init__(self, check: str, reason: str) -> None:
        super().__init__(reason, rule=check)

    @property
    def check(self) -> str:
        return self.rule

    @property
    def reason(self) -> str:
        return self.message


def render(exc: SpecloopError) -> str:
    """The one way an error is shown to a person: ``[rule] sentence``."""
    return f"[{exc.rule}] {exc.message}"
