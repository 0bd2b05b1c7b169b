"""Executable stage contracts: the fenced ```yaml contract``` blocks inside specs and references.

A contract names its pipeline and stage, the owning agent, the inputs the stage needs, the outputs
it writes, and its done-when checks, each with a stable id. Contracts are validated when they load
(:mod:`.load`); the reviewer checks inputs before a stage acts and outputs and done-when after it
(:mod:`.evaluate`). Check kinds live in a closed registry (:mod:`.checks`).
"""

from specloop.skills.contracts.checks import CHECK_KINDS, Check, CheckEnv, check_kind
from specloop.skills.contracts.evaluate import CheckResult, missing_inputs, output_check_id, run_checks
from specloop.skills.contracts.load import (
    Contract,
    ContractLoadError,
    ContractSet,
    Problem,
    lint,
    load_contracts,
)
from specloop.skills.target import checks as _target_checks  # noqa: F401  (part B's check kinds)

__all__ = [
    "CHECK_KINDS",
    "Check",
    "CheckEnv",
    "CheckResult",
    "Contract",
    "ContractLoadError",
    "ContractSet",
    "Problem",
    "check_kind",
    "lint",
    "load_contracts",
    "missing_inputs",
    "output_check_id",
    "run_checks",
]
