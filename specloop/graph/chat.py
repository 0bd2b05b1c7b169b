"""The chat session: at most one current run, the person's conversation about it, and the actions
the chat policies choose from.

- A run is a DEFT run (`start_run`) or a create run (`create_project`); its graph comes from its
  pipeline. What a message means is the router's job (`graph.chat_router`); running the graph while
  the person keeps talking is the background thread's (`graph.chat_runner`).
- The conversation is checkpointed in the run's own checkpointer, on the thread
  `<run dir name>:chat` next to the run's thread. `reopen` restores both. Every turn also goes
  into the run's transcript (`kind: chat`).
- A run started from the chat stops at the gate like any run; "go" resumes it with
  `{"approved": True, "by": "chat"}`. At a create run's gate the person first answers its questions
  ("Q1 a"); "go" sends those answers, and with questions still open `assume: True`, so that those
  take their recommended options as recorded assumptions.
- No terminal I/O here: `say` returns the new turns and background events go to `notify`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import Command

from specloop.agents.chat import ChatContext, ModelPolicy, OfflinePolicy, Turn
from specloop.agents.chat_answers import (
    AT_GATE,
    FINISHED,
    IDLE,
    RUNNING,
    explain_iteration,
    report_text,
    run_status,
)
from specloop.agents.chat_create_answers import (
    answers_noted,
    check_answers,
    create_report,
    create_status,
    go_refusal,
)
from specloop.agents.context import MODEL_CALL, RunContext
from specloop.errors import SpecloopError
from specloop.graph.build import build_graph
from specloop.graph.chat_router import LOBBY, build_chat_graph, chat_thread
from specloop.graph.chat_runner import ChatEvent, GateReached, RunEnded, RunThread, gate_reached, run_ended
from specloop.graph.create_start import start_create
from specloop.graph.run import create_run, open_run, specs_of, thread_config
from specloop.ledger import loop_log
from specloop.ledger import state as ledger_state
from specloop.ledger.layout import LOG_FILE
from specloop.ledger.requests import STOP_REQUEST, request_stop
from specloop.llm import LLMCall, get_llm, load_settings
from specloop.pipelines import get_pipeline

APPROVED_BY = "chat"
START_HINT = (
    "Start one with e.g. “run the DEFT loop on ~/ws with 2 iterations and a 0.5% target”, or "
    "“create a project that recognises handwritten digits on a laptop CPU”."
)


def _question_id(key: object) -> str:
    """`Q1`, `q1` or `1` → `Q1` (a model may name a question either way)."""
    key = str(key).strip().upper()
    return f"Q{key}" if key.isdigit() else key


@dataclass(frozen=True)
class Reopened:
    """The conversation so far, what happens now, and the gate or the end if the run is at one."""

    history: list[Turn]
    note: str
    event: GateReached | RunEnded | None


class ChatSession:
    """One person's chat: at most one current run, its background thread, and the conversation.

    Use as a context manager. `say` handles one message; `reopen` picks up a run (at the gate, mid-run
    or finished); `close` asks a running graph to pause after its current stage.
    """

    def __init__(
        self,
        *,
        workspace: Path | None,
        llm: str | None,
        notify: Callable[[ChatEvent], None],
    ) -> None:
        self.default_workspace = workspace.expanduser().resolve() if workspace else None
        self._llm_arg = llm
        self.tools: dict[str, Callable[..., str]] = {
            f.__name__: f
            for f in (
                self.start_run,
                self.create_project,
                self.answer_questions,
                self.status,
                self.report,
                self.explain_iteration,
                self.approve,
                self.stop_after_iteration,
            )
        }
        setting = load_settings(llm, workspace=self.default_workspace).llm
        if setting == "offline":
            self.policy: OfflinePolicy | ModelPolicy = OfflinePolicy()
        else:
            model = get_llm(setting, workspace=self.default_workspace, recorder=self._on_model_call)
            self.policy = ModelPolicy(model, list(self.tools.values()))
        self.run_dir: Path | None = None
        self._run_stack = ExitStack()
        self._retired: list[ExitStack] = []  # a previous run's checkpointer, closed once no graph uses it
        self._graph: CompiledStateGraph | None = None  # the current run's, from its pipeline
        self._pipeline = "deft"
        self._answers: dict[str, str] = {}  # a create run's gate answers, sent with "go"
        self._before_gate = False  # the current run's graph has not passed its gate yet
        self._ctx: RunContext | None = None
        self._lock = threading.Lock()
        self._pending: list[tuple[str, str, dict[str, Any]]] = []  # (agent, kind, data) not yet recorded
        self._runner = RunThread(self._lock, self._flush_locked, notify)
        self._chat = build_chat_graph(self.policy, self.tools, self._context, InMemorySaver())
        self._chat_config: dict[str, Any] = LOBBY

    # --- the session --------------------------------------------------------------------------

    def __enter__(self) -> ChatSession:
        return self

    def __exit__(self, *exc: object) -> None:
        if not self._runner.alive:
            self._close_retired()
            self._run_stack.close()  # else the process is ending under a running stage: leave it be

    @property
    def busy(self) -> bool:
        """A background thread is running the current run's graph (cleared before its event is sent)."""
        return self._runner.running

    def history(self) -> list[Turn]:
        return list(self._chat.get_state(self._chat_config).values.get("turns", []))

    def say(self, text: str) -> list[Turn]:
        """One message from the person; returns the turns it produced (assistant words and action
        results), after recording them in the run's transcript."""
        before = len(self.history())
        run_before = self.run_dir
        user: Turn = {"role": "user", "text": text}
        out = self._chat.invoke({"turns": [user], "actions": [], "rounds": 0}, self._chat_config)
        turns: list[Turn] = out["turns"]
        if self.run_dir is not None and self.run_dir != run_before:
            self._adopt_conversation(turns)
        self._close_retired()
        for turn in turns[before:]:
            self._record("chat", "chat", dict(turn))
        return turns[before + 1 :]

    def reopen(self, run_dir: Path) -> Reopened:
        """Pick up `run_dir`: the gate is shown again, a run closed mid-way continues."""
        run_dir = run_dir.expanduser().resolve()
        if not ledger_state.state_path(run_dir).is_file():
            raise SpecloopError(
                f"{run_dir}: not a run directory (no {ledger_state.STATE_FILE} or "
                f"{ledger_state.CREATE_STATE_FILE})."
            )
        self._open_run(run_dir)
        self._close_retired()
        if self.default_workspace is None and self._pipeline == "deft":
            self.default_workspace = Path(ledger_state.load(run_dir)["workspace"])
        history = self.history()
        assert self._graph is not None
        snapshot = self._graph.get_state(thread_config(run_dir))
        event: GateReached | RunEnded | None = None
        if not snapshot.values:
            self._before_gate = True
            self._start_graph(self._first_input())
            first = get_pipeline(self._pipeline).entry
            note = f"Reopened {run_dir.name}; it had not started yet, so {first} runs now."
        elif snapshot.interrupts:
            note = f"Reopened {run_dir.name}, waiting at the gate."
            event = gate_reached(run_dir, snapshot.interrupts[0].value)
        elif snapshot.next:
            self._before_gate = not self._gate_passed()
            self._start_graph(None)
            note = f"Reopened {run_dir.name}; continuing from {snapshot.next[0]}."
        else:
            note = f"Reopened {run_dir.name}, which has finished."
            event = run_ended(run_dir)
        self._record("chat", "chat_reopened", {"note": note})
        return Reopened(history, note, event)

    def close(self) -> str | None:
        """Ask a running graph to pause after its current stage; None when nothing is running."""
        if not self.busy:
            return None
        self._runner.pause()
        assert self.run_dir is not None
        return (
            f"{self.run_dir.name} pauses after its current stage. Continue it later with: "
            f"specloop chat --resume {self.run_dir}"
        )

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the background graph to reach a stop (gate, end, pause); True when it has."""
        return self._runner.wait(timeout)

    def settle(self, timeout: float | None = None) -> bool:
        """Wait while the current run is on its way to the gate; True once it is there (or stopped
        before it), at once when it is past the gate. The reply to a message that starts a run thus
        ends with the gate's summary and question before the next message is read, as a person
        reads it before answering; stages after the approval leave the chat free."""
        return self.wait(timeout) if self._before_gate else True

    # --- the actions (the tools a model may call; the offline parser dispatches to the same) ---

    def start_run(
        self,
        workspace: str | None = None,
        max_iterations: int | None = None,
        far_target_percent: float | None = None,
        epochs: int | None = None,
    ) -> str:
        """Start a DEFT run on a workspace. It runs pre-flight, then waits at the gate for approval.

        Args:
            workspace: The workspace folder (~ allowed); the chat's default workspace if omitted.
            max_iterations: Iterations after the baseline (default 3).
            far_target_percent: The FAR@100%-recall target in percent, e.g. 0.5 for 0.5% (default 1).
            epochs: Baseline training epochs (default: the workspace spec's).
        """
        if (busy := self._still_running()) is not None:
            return busy
        ws = Path(workspace).expanduser() if workspace else self.default_workspace
        if ws is None:
            return "Which workspace should the run use? " + START_HINT
        if max_iterations is not None and max_iterations < 1:
            raise SpecloopError("a run needs at least 1 iteration after the baseline.")
        if epochs is not None and epochs < 1:
            raise SpecloopError("the baseline needs at least 1 epoch.")
        if far_target_percent is not None and not 0 < far_target_percent < 100:
            raise SpecloopError(f"a FAR target of {far_target_percent}% is not between 0% and 100%.")
        if not ws.is_dir():
            raise SpecloopError(f"{ws} is not a folder.")
        options: dict[str, Any] = {
            "llm": load_settings(self._llm_arg, workspace=ws).llm,
            "record": None,
            "max_iterations": max_iterations,
            "far_target": far_target_percent / 100 if far_target_percent is not None else None,
            "epochs": epochs,
            "embedder": None,
            "progress": False,  # bars would fight the prompt; each stage still prints its status line
            "checkpointer": None,
        }
        run_dir = create_run(ws, options)
        left = self._begin(run_dir)
        return (
            f"Started {run_dir.name} in {run_dir}. Pre-flight runs first; then I show you its summary "
            f"and ask for your approval.{left}"
        )

    def create_project(self, requirement: str, out: str | None = None) -> str:
        """Create a target ML project that runs, from a requirement in the person's words (English or
        Chinese). The requirement is parsed first; then the run waits at the gate with its summary and
        clarifying questions, which the person answers (answer_questions) before approving.

        Args:
            requirement: What the person wants, in their words, e.g. "a small model that recognises
                handwritten digits on a laptop CPU".
            out: The output folder (~ allowed); default ./<project name>_create in the current folder.
        """
        if (busy := self._still_running()) is not None:
            return busy
        if not requirement.strip():
            return (
                "What should the project do? Say e.g. “create a project that recognises handwritten digits”."
            )
        setting = load_settings(self._llm_arg, workspace=self.default_workspace).llm
        run_dir = start_create(
            requirement, out=Path(out) if out else None, answers=None, llm=setting, progress=False
        )
        left = self._begin(run_dir)
        return (
            f"Started create run {run_dir.name} in {run_dir}. The requirement is parsed first; then I show "
            f"you its summary and the open questions, and wait for your answers and “go”.{left}"
        )

    def answer_questions(self, answers: dict[str, str]) -> str:
        """Record the person's answers to the open questions of a create run waiting at the gate; nothing
        runs until they approve. Only answers the person gave.

        Args:
            answers: Question id → option id, e.g. {"Q1": "a", "Q3": "b"}.
        """
        request = self._gate_request() if self._pipeline == "create" else None
        if request is None:
            return "There is no create run waiting at the gate, so there is nothing to answer. " + START_HINT
        answers = {_question_id(k): str(v).strip().lower() for k, v in answers.items()}
        if (problem := check_answers(request, answers)) is not None:
            return problem
        self._answers |= answers
        assert self.run_dir is not None
        return answers_noted(self.run_dir, request, self._answers)

    def status(self) -> str:
        """Where the current run stands: waiting at the gate, running (which stage), or finished; for a DEFT
        run the KPI so far, for a create run its project, answers given, build log and review results."""
        if self.run_dir is None:
            return "There is no run in this chat yet. " + START_HINT
        if self._pipeline == "create":
            return create_status(self.run_dir, self._activity(), self._answers, self._gate_request())
        return run_status(self.run_dir, self._activity())

    def report(self) -> str:
        """The current run's report: for a DEFT run the HTML report's path and a text summary (trajectory,
        best model, stop reason); for a create run its files, stages, build log and review results."""
        if self.run_dir is None:
            return "There is no run in this chat yet, so no report. " + START_HINT
        if self._pipeline == "create":
            return create_report(self.run_dir, self.status())
        return report_text(self.run_dir)

    def explain_iteration(self, iteration: str = "latest") -> str:
        """Explain from the run's ledger why an iteration improved or got worse.

        Args:
            iteration: "baseline", an iteration number such as "2", or "latest".
        """
        if self.run_dir is None:
            return "There is no run in this chat yet. " + START_HINT
        if self._pipeline == "create":
            return f"{self.run_dir.name} creates a project; it has no iterations. Ask for the status or the report."
        return explain_iteration(self.run_dir, str(iteration))

    def approve(self) -> str:
        """Approve the run waiting at the gate, so that training (or, for a create run, building the
        project) starts. Only when the person says so. At a create run's gate, questions left open take
        their recommended options, recorded as assumptions."""
        if self.run_dir is None:
            return "There is no run waiting for approval. " + START_HINT
        if self.busy:
            return f"Nothing to approve yet: {self.status()}"
        request = self._gate_request()
        if request is None:
            return f"Nothing is waiting for approval: {self.status()}"
        self._before_gate = False
        if self._pipeline != "create":
            self._start_graph(Command(resume={"approved": True, "by": APPROVED_BY}))
            return (
                f"Approved {self.run_dir.name} (recorded as approved by {APPROVED_BY}). Training starts now; "
                "I will tell you when the run ends."
            )
        if (refusal := go_refusal(self.run_dir, request, self._answers)) is not None:
            return refusal
        resume: dict[str, Any] = {"approved": True, "by": APPROVED_BY, "answers": dict(self._answers)}
        assumed = [q["id"] for q in request["questions"] if q["id"] not in self._answers]
        if assumed:
            resume["assume"] = True
        self._start_graph(Command(resume=resume))
        given = ", ".join(f"{k} → {v}" for k, v in sorted(self._answers.items())) or "none"
        taken = f"; recommended options taken as assumptions for {', '.join(assumed)}" if assumed else ""
        return (
            f"Approved {self.run_dir.name} (recorded as approved by {APPROVED_BY}; your answers: {given}{taken}). "
            "Building the project starts now (measuring models, code, tests, review); I will tell you when it ends."
        )

    def stop_after_iteration(self) -> str:
        """Let the current iteration finish, then end the loop (final report and best model) instead of starting another."""
        if self.run_dir is None:
            return "There is no run to stop."
        if self._pipeline == "create":
            return f"{self.run_dir.name} creates a project; it has no iterations to stop after."
        if self._activity() == FINISHED:
            return f"{self.run_dir.name} has already finished."
        request_stop(self.run_dir, by=APPROVED_BY)
        n = ledger_state.load(self.run_dir).get("current_iteration", 0)
        label = "the baseline" if n == 0 else f"iteration {n}"
        return (
            f"Noted ({STOP_REQUEST}): {self.run_dir.name} stops after {label}'s RCA, then writes its final "
            "report and best model."
        )

    # --- internals ------------------------------------------------------------------------------

    def _context(self) -> ChatContext:
        line = self.status() if self.run_dir is not None else "none"
        return ChatContext(self.default_workspace, line)

    def _still_running(self) -> str | None:
        """Why a new run cannot start now (the current one runs), or None."""
        if not self.busy:
            return None
        assert self.run_dir is not None
        how = "say “stop after this iteration” or wait" if self._pipeline == "deft" else "wait"
        return f"{self.run_dir.name} is still running; {how} for it to end."

    def _begin(self, run_dir: Path) -> str:
        """Make a new run current and start its graph; returns what happens to the previous run."""
        previous = self.run_dir
        self._open_run(run_dir)
        self._before_gate = True
        self._start_graph(self._first_input())
        if previous is None:
            return ""
        return f" {previous.name} stays as it was; reopen it with: specloop chat --resume {previous}."

    def _gate_request(self) -> dict[str, Any] | None:
        """The interrupt payload of the current run waiting at its gate; None when it is not there."""
        if self.run_dir is None or self.busy:
            return None
        assert self._graph is not None
        interrupts = self._graph.get_state(thread_config(self.run_dir)).interrupts
        return dict(interrupts[0].value) if interrupts else None

    def _activity(self) -> str:
        if self.busy:
            return RUNNING
        assert self.run_dir is not None and self._graph is not None
        snapshot = self._graph.get_state(thread_config(self.run_dir))
        if snapshot.interrupts:
            return AT_GATE
        if snapshot.values and not snapshot.next:
            return FINISHED
        return IDLE

    def _open_run(self, run_dir: Path) -> None:
        """Make `run_dir` the current run: its checkpointer, its pipeline's graph and chat thread."""
        st = ledger_state.load(run_dir)
        stack = ExitStack()  # a run another process holds raises here and leaves the current one be
        saver = stack.enter_context(open_run(run_dir, st["config"]["options"].get("checkpointer")))
        self._retired.append(self._run_stack)  # the chat graph of this very message may still use it
        self._run_stack = stack
        self._pipeline = st.get("pipeline", "deft")
        self._graph = build_graph(
            get_pipeline(self._pipeline), saver, specs=specs_of(st["config"]["options"])
        )
        self._answers = {}
        self._chat = build_chat_graph(self.policy, self.tools, self._context, saver)
        self._chat_config = chat_thread(run_dir)
        self._ctx = RunContext.open(run_dir, Path(st["workspace"]))
        self.run_dir = run_dir

    def _gate_passed(self) -> bool:
        assert self.run_dir is not None
        pipeline = get_pipeline(self._pipeline)
        label = pipeline.label(pipeline.gate, 0)
        return loop_log.find(self.run_dir / LOG_FILE, label, pipeline.gate.name) is not None

    def _close_retired(self) -> None:
        while self._retired:
            self._retired.pop().close()

    def _adopt_conversation(self, turns: list[Turn]) -> None:
        """Carry the conversation that started a run into that run's chat thread."""
        self._chat.update_state(
            self._chat_config, {"turns": turns, "actions": [], "rounds": 0}, as_node="understand"
        )

    def _first_input(self) -> dict[str, Any]:
        assert self.run_dir is not None
        st = ledger_state.load(self.run_dir)
        return {
            "run_dir": str(self.run_dir),
            "workspace": st["workspace"],
            "options": st["config"]["options"],
            "iteration": 0,
        }

    def _start_graph(self, first: Any) -> None:
        assert self.run_dir is not None and self._graph is not None
        self._runner.start(self._graph, self.run_dir, first)

    def _on_model_call(self, call: LLMCall) -> None:
        data = {k: v for k, v in call.to_dict().items() if k not in ("agent", "stage")}
        self._record(call.agent, MODEL_CALL, data)

    def _record(self, agent: str, kind: str, data: dict[str, Any]) -> None:
        """Into the run's transcript now, or at the next stage boundary while a stage runs (one
        writer at a time keeps the hash chain intact), or once a run exists."""
        with self._lock:
            self._pending.append((agent, kind, data))
            if not self._runner.running:
                self._flush_locked()

    def _flush_locked(self) -> None:
        if self._ctx is None or self.run_dir is None:
            return
        pipeline = get_pipeline(self._pipeline)
        n = ledger_state.load(self.run_dir).get("current_iteration", 0)
        label = pipeline.label(pipeline.stage(pipeline.entry), n)  # DEFT: baseline, iterN; create: framework
        for agent, kind, data in self._pending:
            self._ctx.transcript.record(agent, kind, "chat", label, **data)
        self._pending.clear()
