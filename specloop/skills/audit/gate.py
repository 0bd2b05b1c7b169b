"""The one human approval: recorded once in each record, before anything with side effects."""

from __future__ import annotations

from typing import Any

from specloop.skills.audit.findings import Findings
from specloop.skills.audit.integrity import GATE
from specloop.skills.audit.run_records import LOG_FILE, STATE_FILE, TRANSCRIPT_FILE, RunRecords

# Stages that only read and plan; every other stage writes models, data or reports.
NO_SIDE_EFFECTS = frozenset({"preflight", GATE})
# Who the loop records as approver (graph/run.py, graph/chat.py), and how that reads in the report.
APPROVERS = {
    "--yes flag": "headless, approved by the --yes flag",
    "person at the prompt": "a person at the prompt",
    "chat": "a person in chat (go)",
}
APPROVED_BY = "approved by "


def check_gate(run: RunRecords, out: Findings) -> dict[str, Any]:
    """Run the gate checks; return the facts about the approval for the report."""
    approvals = [(n, e) for n, e in run.transcript_entries if e.get("kind") == "approval"]
    gate_lines = [(n, e) for n, e in run.log_entries if e.get("stage") == GATE]
    acting_log = next(((n, e) for n, e in run.log_entries if e.get("stage") not in NO_SIDE_EFFECTS), None)
    acting_tx = next(
        ((n, e) for n, e in run.transcript_entries if e.get("stage") not in NO_SIDE_EFFECTS), None
    )
    state_approval = run.state.get("approval") if isinstance(run.state.get("approval"), dict) else None
    acted = acting_log is not None or acting_tx is not None
    if not (approvals or gate_lines or state_approval or acted):
        out.saw("gate.approval", "no approval yet and nothing with side effects ran: waiting at the gate")
        return {"approval": "not given yet (the run waits at the gate)"}
    out.saw("gate.approval", f"{len(approvals)} transcript approval(s), {len(gate_lines)} log line(s)")
    _count(out, approvals, TRANSCRIPT_FILE, "approval entry", acted)
    _count(out, gate_lines, LOG_FILE, f"{GATE} line", acted)
    if state_approval is None or state_approval.get("approved") is not True:
        out.add(
            "gate.approval",
            "the state records no approval",
            file=STATE_FILE,
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
    _order(out, approvals, gate_lines, acting_log, acting_tx)
    return {"approval": _approver(run, out, approvals, gate_lines, state_approval)}


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
) -> None:
    out.saw("gate.order", "approval against the first stage with side effects")
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
        named.append((STATE_FILE, "approval.by", state_approval.get("by")))
    if approvals:
        n, e = approvals[0]
        named.append((TRANSCRIPT_FILE, f"line {n}", (e.get("data") or {}).get("by")))
    if gate_lines:
        n, e = gate_lines[0]
        summary = str(e.get("summary", ""))
        named.append(
            (
                LOG_FILE,
                f"line {n}",
                summary.removeprefix(APPROVED_BY) if summary.startswith(APPROVED_BY) else None,
            )
        )
    first_file, first_where, by = named[0] if named else (STATE_FILE, "approval.by", None)
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
