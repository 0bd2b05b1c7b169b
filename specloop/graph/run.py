"""Driving the DEFT graph: start a run, stop at the gate, approve, resume after a kill."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.types import Command

from specloop.errors import SpecloopError
from specloop.graph.build import build_graph
from specloop.graph.checkpointer import check_checkpointer, open_checkpointer
from specloop.ledger import state as ledger_state
from specloop.ledger.lock import hold_run
from specloop.llm import BudgetExceeded
from specloop.pipelines import get_pipeline
from specloop.skills.aoi.check import check_workspace
from specloop.skills.aoi.layout import Workspace
from specloop.skills.contracts import load_contracts

EXIT_KPI_MET = 0
EXIT_UNEXPECTED = 1
EXIT_HARD_STOP = 2
EXIT_NOT_MET = 3
EXIT_AWAITING = 4

# Asked at the gate when a person is at the terminal, with the gate's request; returns a falsy value
# to leave the run waiting, True to approve, or a dict of answers to approve with.
Approver = Callable[[dict[str, Any]], bool | dict[str, Any] | None]


@dataclass
class Outcome:
    run_dir: Path
    exit_code: int
    status: str
    message: str

    def to_dict(self) -> dict[str, Any]:
        st = ledger_state.load(self.run_dir) if ledger_state.state_path(self.run_dir).is_file() else {}
        best = st.get("best") or {}
        return {
            "run_dir": str(self.run_dir),
            "exit_code": self.exit_code,
            "status": self.status,
            "message": self.message,
            "kpi_target": st.get("kpi_target"),
            "stop": st.get("stop"),
            "best": best,
            "trajectory": {
                label: {"kpi_far": it.get("kpi_far"), "holdout_far": it.get("holdout_far")}
                for label, it in st.get("iterations", {}).items()
                if "kpi_far" in it
            },
        }


def thread_config(run_dir: Path) -> dict[str, Any]:
    return {"configurable": {"thread_id": run_dir.name}}


def create_run(workspace: Path, options: dict[str, Any]) -> Path:
    """Check the specs, the checkpointer and the workspace, then create `results/run_<ts>/` with its
    initial state (nothing else). Broken contracts, data or a checkpointer URL that does not connect
    stop here, before a run directory exists."""
    workspace = workspace.resolve()
    load_contracts(specs_of(options))
    check_checkpointer(options.get("checkpointer"))
    report = check_workspace(workspace)
    if not report.ok:
        errors = [p.sentence() for p in report.problems if p.severity == "error"]
        more = (
            f" ({len(errors) - 5} more: run `specloop workspace check {workspace}`)"
            if len(errors) > 5
            else ""
        )
        raise SpecloopError("the workspace breaks the data contract: " + " ".join(errors[:5]) + more)
    ws = Workspace(workspace)
    stamp = datetime.now().strftime("%Y%m%d_%H%M%S")
    run_dir = ws.results / f"run_{stamp}"
    suffix = 1
    while run_dir.exists():
        run_dir = ws.results / f"run_{stamp}_{suffix}"
        suffix += 1
    run_dir.mkdir(parents=True)
    ledger_state.save(
        run_dir,
        ledger_state.new_state(
            run_dir=run_dir,
            workspace=workspace.resolve(),
            kpi_target="",
            max_iterations=0,
            config={"options": options},
        ),
    )
    return run_dir


def specs_of(options: dict[str, Any]) -> list[Path] | None:
    """The spec folders a run reads its contracts from (None: the shipped specs)."""
    specs = options.get("specs")
    return [Path(p) for p in specs] if specs else None


@contextmanager
def open_run(run_dir: Path, checkpointer_url: str | None) -> Iterator[BaseCheckpointSaver]:
    """Hold `run_dir` for this process (one owner per run: a second process gets one sentence naming
    the holder's PID) and open its checkpointer. Every writer of a run opens it through here."""
    with hold_run(run_dir), open_checkpointer(run_dir, checkpointer_url) as saver:
        yield saver


def drive(
    run_dir: Path,
    *,
    yes: bool,
    approver: Approver | None,
    checkpointer_url: str | None = None,
) -> Outcome:
    """Run or continue the graph thread of `run_dir` until it ends or waits at the gate."""
    with open_run(run_dir, checkpointer_url) as saver:
        st = ledger_state.load(run_dir)
        options = st["config"]["options"]
        graph = build_graph(get_pipeline(st.get("pipeline", "deft")), saver, specs=specs_of(options))
        config = thread_config(run_dir)
        snapshot = graph.get_state(config)
        if not snapshot.values:
            first: Any = {
                "run_dir": str(run_dir),
                "workspace": st["workspace"],
                "options": options,
                "iteration": 0,
            }
        elif snapshot.interrupts:
            first = None  # handled below as a gate answer
        elif not snapshot.next:
            return outcome_of(run_dir)
        else:
            first = None
        try:
            return _drive(graph, config, run_dir, first, snapshot, yes=yes, approver=approver)
        except BudgetExceeded as exc:
            return Outcome(
                run_dir,
                EXIT_HARD_STOP,
                "budget_exceeded",
                f"{exc} Continue with: specloop {_command(run_dir)} resume {run_dir}",
            )


def _drive(
    graph: Any,
    config: dict[str, Any],
    run_dir: Path,
    first: Any,
    snapshot: Any,
    *,
    yes: bool,
    approver: Approver | None,
) -> Outcome:
    if first is not None or not snapshot.interrupts:
        graph.invoke(first, config, durability="sync")
    while (snapshot := graph.get_state(config)).interrupts:
        payload = snapshot.interrupts[0].value
        if yes:
            answer = {"approved": True, "by": "--yes flag", "assume": True}
        elif approver is not None:
            given = approver(payload)
            if not given:
                return _awaiting(run_dir)
            answer = {"approved": True, "by": "person at the prompt"}
            if isinstance(given, dict):
                answer |= given
        else:
            return _awaiting(run_dir)
        graph.invoke(Command(resume=answer), config, durability="sync")
    return outcome_of(run_dir)


def _command(run_dir: Path) -> str:
    return "create" if ledger_state.load(run_dir).get("pipeline") == "create" else "deft"


def _awaiting(run_dir: Path) -> Outcome:
    command = _command(run_dir)
    cmd = f"specloop {command} resume {run_dir} --yes"
    read = run_dir / ("requirements.md" if command == "create" else "preflight_summary.md")
    return Outcome(
        run_dir,
        EXIT_AWAITING,
        "awaiting_approval",
        f"the run is waiting for approval at the gate; read {read} and approve with: {cmd}",
    )


def outcome_of(run_dir: Path) -> Outcome:
    st = ledger_state.load(run_dir)
    stop = st.get("stop") or {}
    reason = stop.get("reason")
    if st.get("pipeline") == "create":
        return _create_outcome(run_dir, st, stop)
    best = st.get("best") or {}
    far = best.get("kpi_far")
    far_text = f"{far:.2%}" if far is not None else "n/a"
    if reason == "kpi_met":
        return Outcome(
            run_dir, EXIT_KPI_MET, "kpi_met", f"KPI met: best FAR@100%R {far_text} ({st['kpi_target']})"
        )
    if reason == "hard_stop":
        return Outcome(
            run_dir,
            EXIT_HARD_STOP,
            "hard_stop",
            f"hard stop at {stop.get('iter')} · {stop.get('stage')} [{stop.get('check')}]: {stop.get('detail')}",
        )
    return Outcome(
        run_dir,
        EXIT_NOT_MET,
        "finished",
        f"finished without meeting the KPI ({reason}); best FAR@100%R {far_text} vs {st['kpi_target']}",
    )


def _create_outcome(run_dir: Path, st: dict[str, Any], stop: dict[str, Any]) -> Outcome:
    if stop.get("reason") == "hard_stop":
        return Outcome(
            run_dir,
            EXIT_HARD_STOP,
            "hard_stop",
            f"stopped at {stop.get('stage')} [{stop.get('check')}]: {stop.get('detail')}",
        )
    project = run_dir / str(st.get("project_dir"))
    until = st["config"]["options"].get("stop_after")
    done = f"stopped after {until}, as asked" if until else "built, verified, reviewed, trained"
    return Outcome(run_dir, EXIT_KPI_MET, "created", f"created {project}: {done}")


def stdin_is_interactive() -> bool:
    return sys.stdin.isatty()
