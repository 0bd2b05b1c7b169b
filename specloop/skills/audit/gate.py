"""The one human approval: recorded once in each record, before anything with side effects.

Which stages may run before it is the stage registry's to say: those that precede the pipeline's
gate (DEFT's preflight, create's requirements)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from specloop.ledger.state import CREATE_STATE_FILE
from specloop.pipelines.registry import Pipeline
from specloop.skills.audit.findings import Findings
from specloop.skills.audit.run_records import LOG_FILE, TRANSCRIPT_FILE, RunRecords

# Who the loop records as approver (graph/run.py, graph/chat.py), and how that reads in the report.
APPROVERS = {
    "--yes flag": "headless, approved by the --yes flag",
    "person at the prompt": "a person at the prompt",
    "chat": "a person in chat (go)",
}
APPROVED_BY = "approved by "
SUMMARY_PARTS = "; "  # the gate's summary: "approved by <who>[; more facts]"


# The chat records its turns in the run's transcript under this stage: words, not side effects.
CONVERSATION = "chat"


def before_gate(pipeline: Pipeline) -> frozenset[str]:
    """The gate and the stages the registry runs before it: they only read and plan; every other
    stage writes models, data, code or reports."""
    out, name = {pipeline.gate.name}, pipeline.entry
    while name != pipeline.gate.name:
        out.add(name)
        name = pipeline.stage(name).next or pipeline.gate.name
    return frozenset(out)


def approver_in(summary: str) -> str | None:
    """Who the gate's log line names: "approved by --yes flag; 0 answer(s); …" → "--yes flag"."""
    if not summary.startswith(APPROVED_BY):
        return None
    return summary.removeprefix(APPROVED_BY).split(SUMMARY_PARTS, 1)[0]


def check_gate(run: RunRecords, out: Findings) -> dict[str, Any]:
    """Run the gate checks; return the facts about the approval for the report."""
    gate = run.pipeline.gate.name
    planning = before_gate(run.pipeline)
    approvals = [(n, e) for n, e in run.transcript_entries if e.get("kind") == "approval"]
    gate_lines = [(n, e) for n, e in run.log_entries if e.get("stage") == gate]
    acting_log = next(((n, e) for n, e in run.log_entries if e.get("stage") not in planning), None)
    talking = planning | {CONVERSATION}
    acting_tx = next(((n, e) for n, e in run.transcript_entries if e.get("stage") not in talking), None)
    state_approval = run.state.get("approval") if isinstance(run.state.get("approval"), dict) else None
    if any(stage == gate for _, stage in run.delegated):
        return {"approval": _delegated(run, out, state_approval)}
    acted = acting_log is not None or acting_tx is not None
    if not (approvals or gate_lines or state_approval or acted):
        out.saw("gate.approval", "no approval yet and nothing with side effects ran: waiting at the gate")
        return {"approval": "not given yet (the run waits at the gate)"}
    out.saw("gate.approval", f"{len(approvals)} transcript approval(s), {len(gate_lines)} log line(s)")
    _count(out, approvals, TRANSCRIPT_FILE, "approval entry", acted)
    _count(out, gate_lines, LOG_FILE, f"{gate} line", acted)
    if state_approval is None or state_approval.get("approved") is not True:
        out.add(
            "gate.approval",
            "the state records no approval",
            file=run.state_file,
            where="approval",
            expected="approved: true",
            found=state_approval,
        )
    for n, e in approvals:
        if (e.get("data") or {}).get("approved") is not True:
            out.add(
                "gate.approval",
                "the approval entry does not say approved",
                file=TRANSCRIPT_FILE,
                where=f"line {n}",
                expected="approved: true",
                found=(e.get("data") or {}).get("approved"),
            )
    _order(out, approvals, gate_lines, acting_log, acting_tx, planning)
    return {"approval": _approver(run, out, approvals, gate_lines, state_approval)}


def _delegated(run: RunRecords, out: Findings, state_approval: dict[str, Any] | None) -> str:
    """A target run's approval is the create run's it came from: its state says so, and that run's
    state records the approval."""
    source = str(run.state.get("source_run"))
    out.saw("gate.approval", f"approval given in the create run {source}")
    want = f"the create run {source}"
    if (
        state_approval is None
        or state_approval.get("approved") is not True
        or state_approval.get("by") != want
    ):
        out.add(
            "gate.approval",
            "a target run's approval must be the create run's it came from",
            file=run.state_file,
            where="approval",
            expected=f"approved: true, by: {want}",
            found=state_approval,
        )
    source_state = run.json(Path(source) / CREATE_STATE_FILE)
    approval = (source_state or {}).get("approval")
    if not isinstance(approval, dict) or approval.get("approved") is not True:
        out.add(
            "gate.approval",
            "the create run this target run came from records no approval",
            file=f"{source}/{CREATE_STATE_FILE}",
            where="approval",
            expected="approved: true",
            found=approval if source_state is not None else "no readable state",
        )
        return want
    return f"{want} ({APPROVERS.get(str(approval.get('by')), approval.get('by'))})"


def _count(out: Findings, found: list[tuple[int, dict[str, Any]]], file: str, what: str, acted: bool) -> None:
    if not found:
        out.add(
            "gate.approval",
            f"no {what}, "
            + ("yet stages with side effects ran" if acted else "though another record has one"),
            file=file,
            expected=f"one {what}",
            found="none",
        )
    for n, _ in found[1:]:
        out.add(
            "gate.approval",
            f"a second {what}: the run was approved more than once",
            file=file,
            where=f"line {n}",
            expected=f"one {what} (line {found[0][0]})",
            found=f"{len(found)}",
        )


def _order(
    out: Findings,
    approvals: list[tuple[int, dict[str, Any]]],
    gate_lines: list[tuple[int, dict[str, Any]]],
    acting_log: tuple[int, dict[str, Any]] | None,
    acting_tx: tuple[int, dict[str, Any]] | None,
    planning: frozenset[str],
) -> None:
    out.saw("gate.order", f"approval against the first stage after {', '.join(sorted(planning))}")
    for records, first, file in ((gate_lines, acting_log, LOG_FILE), (approvals, acting_tx, TRANSCRIPT_FILE)):
        if not records or first is None:
            continue
        n, e = first
        if records[0][0] > n:
            out.add(
                "gate.order",
                f"{e.get('iter')} · {e.get('stage')} ran before the approval",
                file=file,
                where=f"line {n}",
                expected=f"approval first (it is on line {records[0][0]})",
                found=f"{e.get('stage')} first",
            )


def _approver(
    run: RunRecords,
    out: Findings,
    approvals: list[tuple[int, dict[str, Any]]],
    gate_lines: list[tuple[int, dict[str, Any]]],
    state_approval: dict[str, Any] | None,
) -> str:
    out.saw("gate.approver", "who approved, in state, log and transcript")
    named: list[tuple[str, str, Any]] = []
    if state_approval is not None:
        named.append((run.state_file, "approval.by", state_approval.get("by")))
    if approvals:
        n, e = approvals[0]
        named.append((TRANSCRIPT_FILE, f"line {n}", (e.get("data") or {}).get("by")))
    if gate_lines and gate_lines[0][1].get("status") == "ok":  # a stop at the gate names its rule instead
        n, e = gate_lines[0]
        named.append((LOG_FILE, f"line {n}", approver_in(str(e.get("summary", "")))))
    first_file, first_where, by = named[0] if named else (run.state_file, "approval.by", None)
    for file, where, other in named[1:]:
        if other != by:
            out.add(
                "gate.approver",
                "the records disagree on who approved",
                file=file,
                where=where,
                expected=f"{by} ({first_file} {first_where})",
                found=other,
            )
    if not isinstance(by, str) or not by:
        out.add("gate.approver", "the approval does not say who gave it", file=first_file, where=first_where)
        return "unknown"
    kind = APPROVERS.get(by)
    if kind is None:
        out.add(
            "gate.approver",
            f"approved by {by!r}, which is none of the loop's approvers",
            file=first_file,
            where=first_where,
            expected=" or ".join(APPROVERS),
            found=by,
            severity="warning",
        )
        return by
    return kind
