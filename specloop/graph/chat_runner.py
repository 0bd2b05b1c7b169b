"""The background thread that runs a DEFT graph while the person keeps talking.

The graph of the run's thread (`thread_id` = run dir name) is streamed node by node with
`durability="sync"`, so it can pause between stages when the chat closes. It stops at the gate
like any run. Where it stops becomes one event for the session's `notify`.
"""

from __future__ import annotations

import os
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from langgraph.graph.state import CompiledStateGraph

from specloop.errors import SpecloopError
from specloop.graph.run import Outcome, outcome_of, thread_config
from specloop.llm import BudgetExceeded

GATE_QUESTION = "Approve this DEFT run? Say “go” to start it."


@dataclass(frozen=True)
class GateReached:
    run_dir: Path
    summary: str
    question: str


@dataclass(frozen=True)
class RunEnded:
    outcome: Outcome


@dataclass(frozen=True)
class RunPaused:
    run_dir: Path
    next_stage: str


@dataclass(frozen=True)
class RunFailed:
    run_dir: Path
    message: str


ChatEvent = GateReached | RunEnded | RunPaused | RunFailed


def gate_reached(run_dir: Path, payload: dict[str, Any]) -> GateReached:
    """The event for a run waiting at the gate with this interrupt payload."""
    return GateReached(run_dir, payload["summary"], GATE_QUESTION)


def where_it_stopped(graph: CompiledStateGraph, run_dir: Path) -> GateReached | RunPaused | RunEnded:
    snapshot = graph.get_state(thread_config(run_dir))
    if snapshot.interrupts:
        return gate_reached(run_dir, snapshot.interrupts[0].value)
    if snapshot.next:
        return RunPaused(run_dir, snapshot.next[0])
    return RunEnded(outcome_of(run_dir))


def failure(run_dir: Path, exc: Exception) -> RunFailed:
    """A stop by error as one event; a bug is reported to the person instead of dying in a thread."""
    if isinstance(exc, BudgetExceeded):
        return RunFailed(run_dir, f"{exc} Continue with: specloop chat --resume {run_dir}")
    if isinstance(exc, SpecloopError):
        return RunFailed(run_dir, str(exc))
    detail = (
        traceback.format_exc()
        if os.environ.get("SPECLOOP_DEBUG")
        else "set SPECLOOP_DEBUG=1 for the traceback"
    )
    return RunFailed(run_dir, f"unexpected error: {type(exc).__name__}: {exc} ({detail})")


class RunThread:
    """At most one DEFT graph running in the background at a time.

    `lock` is the session's: `between_stages` is called with it held after every stage and once
    more when the run stops, and `running` turns False under it, so that a record made while a
    stage runs waits for a stage boundary (one writer at a time keeps the hash chain intact).
    """

    def __init__(
        self,
        lock: threading.Lock,
        between_stages: Callable[[], None],
        notify: Callable[[ChatEvent], None],
    ) -> None:
        self._lock = lock
        self._between_stages = between_stages
        self._notify = notify
        self._pause = threading.Event()
        self._thread: threading.Thread | None = None
        self.running = False

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self, graph: CompiledStateGraph, run_dir: Path, first: Any) -> None:
        """Stream `graph` on the run's thread from `first` (an input, None, or a resume Command)."""
        with self._lock:
            self.running = True
        self._pause.clear()
        self._thread = threading.Thread(
            target=self._run, args=(graph, run_dir, first), name="deft-run", daemon=True
        )
        self._thread.start()

    def pause(self) -> None:
        """Stop after the current stage."""
        self._pause.set()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the graph to reach a stop (gate, end, pause); True when it has."""
        if self._thread is not None:
            self._thread.join(timeout)
        return not self.alive

    def _run(self, graph: CompiledStateGraph, run_dir: Path, first: Any) -> None:
        event: ChatEvent
        try:
            for _ in graph.stream(first, thread_config(run_dir), durability="sync", stream_mode="updates"):
                with self._lock:
                    self._between_stages()  # nothing else writes the transcript now
                if self._pause.is_set():
                    break
            event = where_it_stopped(graph, run_dir)
        except Exception as exc:
            event = failure(run_dir, exc)
        finally:
            with self._lock:
                self._between_stages()
                self.running = False
        self._notify(event)
