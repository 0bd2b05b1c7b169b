"""The stage registry: each pipeline declared once, as data.

A :class:`Stage` names its owning agent and the agent method that runs it, the label scope it runs
in, and the stage that follows. The graph's nodes and edges, the status line's "next:", the audit's
expected stage lists and the documentation's order are all derived from one :class:`Pipeline`.
Shape mistakes (an edge to an unknown stage, two gates, an unreachable stage) fail when the
pipeline is registered, not while it runs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from specloop.ledger.layout import iteration_label
from specloop.registry import Registry

ROLES = ("planner", "coder", "dataset", "reviewer", "ops", "reporter")
GATE = "approval_gate"

# After a stage (run now or finished before a kill), what the graph state becomes: e.g. the next
# iteration number, or {"halt": reason} to go to the pipeline's final stage.
AfterStage = Callable[[Mapping[str, Any], str], dict[str, Any]]
# The values of a pipeline's template variables for one stage: (run state, label) → {name: value}.
Variables = Callable[[Mapping[str, Any], str], dict[str, str]]


class PipelineError(ValueError):
    """A pipeline declaration is malformed (a bug in a declaration, found at import)."""


@dataclass(frozen=True)
class Stage:
    name: str
    agent: str  # one of ROLES
    method: str  # the agent's method: (self, label: str) -> StageResult
    next: str | None  # the stage after this one; None ends the pipeline
    scope: str  # the label scope it runs in, e.g. "baseline", "iteration", "final"
    scopes: tuple[str, ...] = ()  # further scopes (DEFT's train runs in baseline and every iteration)
    gate: bool = False  # the run's one approval interrupt
    after: AfterStage | None = None
    doc: str = ""

    @property
    def all_scopes(self) -> tuple[str, ...]:
        return (self.scope, *self.scopes)


@dataclass(frozen=True)
class Pipeline:
    name: str
    title: str
    stages: tuple[Stage, ...]  # in the order the documentation lists them
    entry: str
    final: str | None  # where a halt goes; None: a halt ends the run
    variables: tuple[str, ...]  # the template variables its contracts may use
    values: Variables  # their values at a stage
    iterative: bool = False  # labels come from the iteration number (baseline, iter1, …)
    scope_order: tuple[str, ...] = ()
    _by_name: dict[str, Stage] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for s in self.stages:
            if s.name in self._by_name:
                raise PipelineError(f"pipeline {self.name}: stage {s.name!r} is declared twice")
            self._by_name[s.name] = s
        self._validate()

    def _validate(self) -> None:
        names = set(self._by_name)
        problems = []
        if self.entry not in names:
            problems.append(f"entry {self.entry!r} is not a stage")
        if self.final is not None and self.final not in names:
            problems.append(f"final {self.final!r} is not a stage")
        for s in self.stages:
            if s.agent not in ROLES:
                problems.append(f"stage {s.name!r} is owned by {s.agent!r}, not one of {', '.join(ROLES)}")
            if s.next is not None and s.next not in names:
                problems.append(f"stage {s.name!r} goes to unknown stage {s.next!r}")
            for scope in s.all_scopes:
                if self.scope_order and scope not in self.scope_order:
                    problems.append(f"stage {s.name!r} has undeclared scope {scope!r}")
        gates = [s.name for s in self.stages if s.gate]
        if len(gates) != 1:
            problems.append(f"a pipeline has exactly one approval gate, found {gates or 'none'}")
        reachable, todo = set(), [self.entry]
        while todo:
            name = todo.pop()
            if name in reachable or name not in names:
                continue
            reachable.add(name)
            nxt = self._by_name[name].next
            todo += [n for n in (nxt, self.final) if n]
        if unreachable := [s.name for s in self.stages if s.name not in reachable]:
            problems.append(f"stages {unreachable} cannot be reached from {self.entry!r}")
        if problems:
            raise PipelineError(f"pipeline {self.name}: " + "; ".join(problems))

    def stage(self, name: str) -> Stage:
        try:
            return self._by_name[name]
        except KeyError:
            raise KeyError(f"pipeline {self.name} has no stage {name!r}") from None

    @property
    def gate(self) -> Stage:
        return next(s for s in self.stages if s.gate)

    def order(self, scope: str) -> tuple[str, ...]:
        """The stages that run in `scope`, in the order they run (following `next`)."""
        members = [s for s in self.stages if scope in s.all_scopes]
        if not members:
            return ()
        starts = [s for s in members if s.name == self.entry] or members
        out: list[str] = []
        current: Stage | None = starts[0]
        while current is not None and scope in current.all_scopes and current.name not in out:
            out.append(current.name)
            current = self._by_name.get(current.next) if current.next else None
        return tuple(out)

    def label(self, stage: Stage, iteration: int) -> str:
        """The label `stage` runs under: its scope, or for an iterative pipeline the iteration's
        label (`baseline`, `iter1`, …) except in the final scope."""
        if not self.iterative or stage.scope == "final":
            return stage.scope
        return iteration_label(iteration)

    def next_hint(self, stage: str) -> str:
        """What the status line says comes next."""
        s = self.stage(stage)
        if s.next is None:
            return "done"
        if s.after is not None and self.final is not None and s.next != self.final:
            return f"{s.next} or {self.final}"
        return s.next


def _load_shipped() -> None:
    from specloop import pipelines  # noqa: F401  (importing the package registers the shipped ones)


PIPELINES: Registry[Pipeline] = Registry("pipeline", _load_shipped)


def register_pipeline(pipeline: Pipeline) -> Pipeline:
    return PIPELINES.register(pipeline.name, pipeline)


def get_pipeline(name: str) -> Pipeline:
    return PIPELINES.get(name)


def list_pipelines() -> list[Pipeline]:
    return PIPELINES.all()
