"""The background thread that runs a run's graph (DEFT or create) while the person keeps talking.

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

from specloop.agents.chat_create_answers import gate_question, gate_text
from specloop.errors import SpecloopError
from specloop.graph.run import Outcome, outcome_of, thread_config
from specloop.ledger import state as ledger_state
from specloop.llm import BudgetExceeded

GATE_QUESTION = "Approve this DEFT run? Say “go” to start it."
DEFT_NEXT = "Ask for “the report”, or “why did iteration N get worse”."
CREATE_NEXT = "Ask for “the report” or “status” (build log and review results)."


@dataclass(frozen=True)
class GateReached:
    run_dir: Path
    summary: str  # Markdown
    question: str
    title: str = "Pre-flight summary"


@dataclass(frozen=True)
class RunEnded:
    outcome: Outcome
    next_hint: str = DEFT_NEXT


@dataclass(frozen=True)
class RunPaused:
    run_dir: Path
    next_stage: str


@dataclass(frozen=True)
class RunFailed:
    run_dir: Path
    message: str


ChatEvent = GateReached | RunEnded | RunPaused | RunFailed


def is_create(run_dir: Path) -> bool:
    return ledger_state.load(run_dir).get("pipeline") == "create"


def gate_reached(run_dir: Path, payload: dict[str, Any]) -> GateReached:
    """The event for a run waiting at the gate with this interrupt payload: a DEFT run's pre-flight
    summary, or a create run's requirements and open questions."""
    if is_create(run_dir):
        return GateReached(run_dir, gate_text(run_dir, payload), gate_question(payload), "Requirements")
    return GateReached(run_dir, payload["summary"], GATE_QUESTION)


def run_ended(run_dir: Path) -> RunEnded:
    return RunEnded(outcome_of(run_dir), CREATE_NEXT if is_create(run_dir) else DEFT_NEXT)


def where_it_stopped(graph: CompiledStateGraph, run_dir: Path) -> GateReached | RunPaused | RunEnded:
    snapshot = graph.get_state(thread_config(run_dir))
    if snapshot.interrupts:
        return gate_reached(run_dir, snapshot.interrupts[0].value)
    if snapshot.next:
        return RunPaused(run_dir, snapshot.next[0])
    return run_ended(run_dir)


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
    """At most one run's graph running in the background at a time.

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
            target=self._run, args=(graph, run_dir, first), name="chat-run", daemon=True
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
