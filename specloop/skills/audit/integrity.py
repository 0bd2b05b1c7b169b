"""Integrity of the record: the transcript's hash chain, the stage log's sequence and order, and
the state agreeing with both. The stages expected, their order and the labels they run under come
from the run's pipeline in the stage registry (DEFT: baseline, iter1 … final; create: one label per
scope), never from a copy of the order."""

from __future__ import annotations

import re
from itertools import pairwise
from typing import Any

from specloop.ledger.layout import BASELINE, FINAL
from specloop.ledger.transcript import entry_hash, verify_chain
from specloop.pipelines.registry import Pipeline
from specloop.skills.audit.findings import Findings
from specloop.skills.audit.run_records import LOG_FILE, TRANSCRIPT_FILE, RunRecords, iter_number

ITERATION = "iteration"  # the scope of an iterative pipeline's numbered labels (iter1, iter2 …)
_STOPPED = re.compile(r"stopped \((\w+)\)")
# The keys every line carries (a log line's `tokens` is record.tokens' to check).
LOG_KEYS = ("seq", "ts", "iter", "stage", "status", "summary", "duration_sec")
TRANSCRIPT_KEYS = ("n", "ts", "agent", "kind", "iter", "stage", "data", "prev_hash", "hash")


def scope_of(pipeline: Pipeline, label: str) -> str | None:
    """The scope a label runs in: an iterative pipeline's baseline, iteration or final; a create
    run's label is its scope. None for a label the pipeline never writes."""
    if not pipeline.iterative:
        return label if label in pipeline.scope_order else None
    if label == FINAL:
        return FINAL
    n = iter_number(label)
    if n is None:
        return None
    return BASELINE if n == 0 else ITERATION


def stages_of(pipeline: Pipeline, label: str) -> tuple[str, ...]:
    scope = scope_of(pipeline, label)
    return pipeline.order(scope) if scope else ()


def last_stages(pipeline: Pipeline) -> frozenset[str]:
    """The stages that end the pipeline (DEFT's loop_stop, create's last stage)."""
    return frozenset(s.name for s in pipeline.stages if s.next is None)


def finished(run: RunRecords) -> bool:
    ends = last_stages(run.pipeline)
    return run.state.get("status") in ("complete", "stopped") or any(
        e.get("stage") in ends for _, e in run.log_entries
    )


def check_integrity(run: RunRecords, out: Findings) -> None:
    _readable(run, out)
    _chain(run, out)
    _log_seq(run, out)
    _log_stages(run, out)
    _transcript_vs_log(run, out)
    _state_vs_log(run, out)


def _readable(run: RunRecords, out: Findings) -> None:
    out.saw(
        "integrity.unreadable",
        f"{run.state_file}, {len(run.log)} log and {len(run.transcript)} transcript lines",
    )
    if run.state_error:
        out.add(
            "integrity.unreadable", f"the run state cannot be read: {run.state_error}", file=run.state_file
        )
    if run.pipeline.name != run.pipeline_name:
        out.add(
            "integrity.unreadable",
            f"the state names pipeline {run.pipeline_name!r}, which is not registered; audited as DEFT",
            file=run.state_file,
            where="pipeline",
            found=run.pipeline_name,
        )
    for name, lines, keys in (
        (LOG_FILE, run.log, LOG_KEYS),
        (TRANSCRIPT_FILE, run.transcript, TRANSCRIPT_KEYS),
    ):
        for line in lines:
            if line.entry is not None:
                missing = [k for k in keys if k not in line.entry]
                if missing:
                    out.add(
                        "integrity.unreadable",
                        f"the line lacks {', '.join(missing)}",
                        file=name,
                        where=f"line {line.number}",
                        expected=", ".join(keys),
                        found=", ".join(line.entry),
                    )
                continue
            torn = line is lines[-1] and not finished(run)
            out.add(
                "integrity.unreadable",
                "a torn last line, as a kill mid-write leaves it"
                if torn
                else "the line is not a JSON object (edited or corrupted)",
                file=name,
                where=f"line {line.number}",
                found=line.raw[:80] + ("…" if len(line.raw) > 80 else ""),
                severity="warning" if torn else "error",
            )


def _describe(entry: dict[str, Any]) -> str:
    return f"entry n={entry.get('n')} ({entry.get('kind')}, {entry.get('iter')} · {entry.get('stage')})"


def _chain(run: RunRecords, out: Findings) -> None:
    entries = run.transcript_entries
    if not run.transcript:
        own = [
            e for _, e in run.log_entries if (str(e.get("iter")), str(e.get("stage"))) not in run.delegated
        ]
        if own or (run.log and not run.log_entries):
            out.add(
                "integrity.transcript-chain",
                "the stage log has lines but there is no transcript",
                file=TRANSCRIPT_FILE,
            )
        return
    out.saw("integrity.transcript-chain", f"{len(entries)} transcript entries")
    records = [e for _, e in entries]
    for index, problem in verify_chain(records):
        number, entry = entries[index - 1]
        if "prev_hash" in problem:
            expected = str(records[index - 2].get("hash"))[:16] if index > 1 else "0" * 16
            found = str(entry.get("prev_hash"))[:16]
        else:
            expected, found = entry_hash(entry)[:16], str(entry.get("hash"))[:16]
        out.add(
            "integrity.transcript-chain",
            f"{_describe(entry)}: {problem}",
            file=TRANSCRIPT_FILE,
            where=f"line {number}",
            expected=expected,
            found=found,
        )


def _log_seq(run: RunRecords, out: Findings) -> None:
    if not run.log_entries:
        return
    out.saw("integrity.log-seq", f"{len(run.log_entries)} log lines")
    expected = 1
    for number, entry in run.log_entries:
        seq = entry.get("seq")
        if seq != expected:
            what = (
                "a line is missing before this one"
                if isinstance(seq, int) and seq > expected
                else "out of order"
            )
            out.add(
                "integrity.log-seq",
                f"seq {seq} where {expected} was due: {what}",
                file=LOG_FILE,
                where=f"line {number}",
                expected=expected,
                found=seq,
            )
        expected = seq + 1 if isinstance(seq, int) else expected + 1


def _log_stages(run: RunRecords, out: Findings) -> None:
    if not run.log_entries:
        return
    out.saw("integrity.log-stages", "one line per stage, in graph order")
    seen: dict[tuple[str, str], int] = {}
    by_label: dict[str, list[tuple[int, str, str]]] = {}
    for number, e in run.log_entries:
        label, stage = str(e.get("iter")), str(e.get("stage"))
        if (label, stage) in seen:
            out.add(
                "integrity.log-stages",
                f"{label} · {stage} is logged twice (first on line {seen[label, stage]})",
                file=LOG_FILE,
                where=f"line {number}",
                expected="one line per stage",
                found="a second line",
            )
            continue
        seen[label, stage] = number
        by_label.setdefault(label, []).append((number, stage, str(e.get("status"))))
    if run.pipeline.iterative:
        _iteration_turns(out, list(by_label))
    else:
        _scope_turns(run, out, by_label)
    for label, lines in by_label.items():
        canonical = stages_of(run.pipeline, label)
        for i, (number, stage, status) in enumerate(lines):
            due = canonical[i] if i < len(canonical) else None
            if stage != due:
                out.add(
                    "integrity.log-stages",
                    f"{label}: stage {stage!r} where {due or 'nothing more'} was due "
                    "(a line is missing, added or out of order)",
                    file=LOG_FILE,
                    where=f"line {number}",
                    expected=due or "no further stage",
                    found=stage,
                )
                break
            if status == "error" and i < len(lines) - 1:
                out.add(
                    "integrity.log-stages",
                    f"{label} continued after a hard stop at {stage}",
                    file=LOG_FILE,
                    where=f"line {lines[i + 1][0]}",
                )
                break


def _iteration_turns(out: Findings, order: list[str]) -> None:
    """An iterative pipeline's labels run baseline, iter1, iter2 … with `final` last."""
    numbered = [iter_number(label) for label in order if label != FINAL]
    if None in numbered:
        bad = next(label for label in order if label != FINAL and iter_number(label) is None)
        out.add("integrity.log-stages", f"unknown iteration label {bad!r}", file=LOG_FILE, found=bad)
    elif numbered != list(range(len(numbered))):
        out.add(
            "integrity.log-stages",
            "iterations are not logged as baseline, iter1, iter2 … in turn",
            file=LOG_FILE,
            expected=", ".join(["baseline"] + [f"iter{i}" for i in range(1, len(numbered))]),
            found=", ".join(label for label in order if label != FINAL),
        )
    if FINAL in order and order[-1] != FINAL:
        out.add("integrity.log-stages", "stage lines follow loop_stop", file=LOG_FILE, found=order[-1])


def _scope_turns(run: RunRecords, out: Findings, by_label: dict[str, list[tuple[int, str, str]]]) -> None:
    """A create run's labels are its scopes, logged in the registry's scope order, each one begun
    only after every stage of the scope before it is logged."""
    scopes = run.pipeline.scope_order
    for label in by_label:
        if label not in scopes:
            out.add(
                "integrity.log-stages",
                f"unknown label {label!r} for a {run.pipeline.name} run",
                file=LOG_FILE,
                where=f"line {by_label[label][0][0]}",
                expected=" or ".join(scopes),
                found=label,
            )
    rank = [
        (number, scopes.index(str(e.get("iter")))) for number, e in run.log_entries if e.get("iter") in scopes
    ]
    for (_, before), (number, now) in pairwise(rank):
        if now < before:
            out.add(
                "integrity.log-stages",
                f"a {scopes[now]} stage is logged after {scopes[before]} began",
                file=LOG_FILE,
                where=f"line {number}",
                expected=" then ".join(scopes),
                found=f"{scopes[before]} then {scopes[now]}",
            )
            break
    known = [label for label in scopes if label in by_label]
    for earlier, later in pairwise(known):
        due = run.pipeline.order(earlier)
        logged = [stage for _, stage, status in by_label[earlier] if status == "ok"]
        if logged != list(due):
            missing = [stage for stage in due if stage not in logged]
            out.add(
                "integrity.log-stages",
                f"{later} began before {earlier} finished",
                file=LOG_FILE,
                where=f"line {by_label[later][0][0]}",
                expected=f"every {earlier} stage logged ok first",
                found=f"missing or not ok: {', '.join(missing) or 'order differs'}",
            )


def _transcript_vs_log(run: RunRecords, out: Findings) -> None:
    if not run.log_entries or not run.transcript_entries:
        return
    out.saw("integrity.transcript-log", "stage_end entries against ok log lines")
    logged_ok = {
        (str(e.get("iter")), str(e.get("stage"))): n
        for n, e in run.log_entries
        if e.get("status") == "ok" and (str(e.get("iter")), str(e.get("stage"))) not in run.delegated
    }
    ended = {
        (str(e.get("iter")), str(e.get("stage"))): n
        for n, e in run.transcript_entries
        if e.get("kind") == "stage_end"
    }
    for (label, stage), number in logged_ok.items():
        if (label, stage) not in ended:
            out.add(
                "integrity.transcript-log",
                f"{label} · {stage} is logged as done but {TRANSCRIPT_FILE} has no stage_end for it",
                file=LOG_FILE,
                where=f"line {number}",
                expected=f"a stage_end entry in {TRANSCRIPT_FILE}",
                found="none",
            )
    for (label, stage), number in ended.items():
        if (label, stage) not in logged_ok:
            out.add(
                "integrity.transcript-log",
                f"the transcript ends {label} · {stage} but {LOG_FILE} has no ok line for it",
                file=TRANSCRIPT_FILE,
                where=f"line {number}",
                expected=f"an ok line in {LOG_FILE}",
                found="none",
            )


def _last_done(run: RunRecords) -> dict[str, tuple[int, str]]:
    """Per iteration label, the last stage logged ok that commits to the state (the gate does not)."""
    out: dict[str, tuple[int, str]] = {}
    for number, e in run.log_entries:
        if e.get("status") == "ok" and e.get("stage") != run.pipeline.gate.name:
            out[str(e.get("iter"))] = (number, str(e.get("stage")))
    return out


def _state_vs_log(run: RunRecords, out: Findings) -> None:
    if run.state_error or not run.log_entries:
        return
    errors = {str(e.get("iter")): (n, e) for n, e in run.log_entries if e.get("status") == "error"}
    if run.pipeline.iterative:
        _iterations_vs_log(run, out, errors)
    else:
        _stages_vs_log(run, out)
    _stop(run, out, errors)


def _stages_vs_log(run: RunRecords, out: Findings) -> None:
    """A non-iterative run keeps one record per stage under `stages`, committed before its log line."""
    out.saw("integrity.state-log", "per-stage records, stop reason, status")
    raw = run.state.get("stages")
    records = raw if isinstance(raw, dict) else {}
    logged_ok = {str(e.get("stage")): n for n, e in run.log_entries if e.get("status") == "ok"}
    delegated = {stage for _, stage in run.delegated}
    for stage, number in logged_ok.items():
        if stage in delegated:
            continue
        record = records.get(stage)
        status = record.get("status") if isinstance(record, dict) else None
        if status != "complete":
            out.add(
                "integrity.state-log",
                f"{stage} is logged as done but the state has "
                + ("no record of it" if record is None else f"its status as {status!r}"),
                file=run.state_file,
                where=f"stages.{stage}",
                expected=f"status complete ({LOG_FILE} line {number})",
                found=status or "none",
            )
    order = [s.name for s in run.pipeline.stages]
    last = max((order.index(s) for s in logged_ok if s in order), default=-1)
    for stage in records:
        if stage in logged_ok:
            continue
        ahead = stage in order and order.index(stage) == last + 1 and not finished(run)
        out.add(
            "integrity.state-log",
            f"the state records stage {stage} but the log has no ok line for it"
            + (" (a kill between the state commit and the log line; resume redoes it)" if ahead else ""),
            file=run.state_file,
            where=f"stages.{stage}",
            expected=f"an ok line in {LOG_FILE}",
            found="none",
            severity="warning" if ahead else "error",
        )


def _iterations_vs_log(run: RunRecords, out: Findings, errors: dict[str, tuple[int, dict[str, Any]]]) -> None:
    out.saw("integrity.state-log", "iterations, stages completed, stop reason, status, current iteration")
    st = run.state
    logged = {str(e.get("iter")) for _, e in run.log_entries} - {FINAL}
    recorded = set(run.iterations)
    for label in sorted(recorded - logged):
        out.add(
            "integrity.state-log",
            f"the state has iteration {label} but the log has no line for it",
            file=run.state_file,
            where=f"iterations.{label}",
        )
    for label in sorted(logged - recorded):
        out.add(
            "integrity.state-log",
            f"the log has lines for {label} but the state has no such iteration",
            file=run.state_file,
            where="iterations",
            expected=label,
            found=", ".join(run.iterations) or "none",
        )
    done = _last_done(run)
    for label, record in run.iterations.items():
        if label not in done:
            continue
        number, stage = done[label]
        claimed = record.get("stage_completed")
        if claimed != stage:
            canonical = stages_of(run.pipeline, label)
            ahead = (
                claimed in canonical
                and stage in canonical
                and canonical.index(claimed) == canonical.index(stage) + 1
                and not finished(run)
            )
            out.add(
                "integrity.state-log",
                f"{label}: the state says {claimed!r} was the last stage completed, the log says {stage!r}"
                + (" (a kill between the state commit and the log line; resume redoes it)" if ahead else ""),
                file=run.state_file,
                where=f"iterations.{label}.stage_completed",
                expected=f"{stage} ({LOG_FILE} line {number})",
                found=claimed,
                severity="warning" if ahead else "error",
            )
        status = record.get("status")
        if label in errors and status != "failed":
            out.add(
                "integrity.state-log",
                f"{label} hard-stopped in the log but its state status is {status!r}",
                file=run.state_file,
                where=f"iterations.{label}.status",
                expected="failed",
                found=status,
            )
        elif label not in errors and stage == "rca" and status != "complete":
            out.add(
                "integrity.state-log",
                f"{label} finished (rca logged) but its state status is still {status!r}",
                file=run.state_file,
                where=f"iterations.{label}.status",
                expected="complete",
                found=status,
                severity="warning",
            )
    numbers = [iter_number(label) for label in logged]
    highest = max((n for n in numbers if n is not None), default=0)
    current = st.get("current_iteration")
    if current != highest:
        out.add(
            "integrity.state-log",
            "the state's current iteration is not the highest iteration in the log",
            file=run.state_file,
            where="current_iteration",
            expected=highest,
            found=current,
        )


def _stop(run: RunRecords, out: Findings, errors: dict[str, tuple[int, dict[str, Any]]]) -> None:
    st = run.state
    stop = st.get("stop") if isinstance(st.get("stop"), dict) else None
    reason = stop.get("reason") if stop else None
    status = st.get("status")
    ends = last_stages(run.pipeline)
    stop_line = next(((n, e) for n, e in run.log_entries if e.get("stage") in ends), None)
    if stop_line is not None:
        number, entry = stop_line
        m = _STOPPED.search(str(entry.get("summary", "")))
        if m and m.group(1) != reason:
            out.add(
                "integrity.state-log",
                f"the stop reason in the state differs from the {entry.get('stage')} line",
                file=run.state_file,
                where="stop.reason",
                expected=f"{m.group(1)} ({LOG_FILE} line {number})",
                found=reason,
            )
        want = "stopped" if reason == "hard_stop" else "complete"
        if status != want:
            out.add(
                "integrity.state-log",
                f"{entry.get('stage')} is logged but the run status is {status!r}",
                file=run.state_file,
                where="status",
                expected=want,
                found=status,
            )
    elif status == "complete":
        out.add(
            "integrity.state-log",
            f"the state says the run is complete but the log has no {' or '.join(sorted(ends))} line",
            file=LOG_FILE,
            expected=f"a {' or '.join(sorted(ends))} line",
            found="none",
        )
    if reason == "hard_stop" and stop and stop.get("iter") not in errors:
        out.add(
            "integrity.state-log",
            f"the state records a hard stop at {stop.get('iter')} · {stop.get('stage')} "
            "but the log has no error line there",
            file=run.state_file,
            where="stop",
        )
    if errors and reason != "hard_stop":
        label, (number, _) = next(iter(errors.items()))
        out.add(
            "integrity.state-log",
            f"the log has a hard stop at {label} but the state's stop reason is {reason!r}",
            file=run.state_file,
            where="stop.reason",
            expected=f"hard_stop ({LOG_FILE} line {number})",
            found=reason,
        )
    decided = [
        (label, rec["decision"])
        for label, rec in run.iterations.items()
        if isinstance(rec.get("decision"), dict) and rec["decision"].get("stop")
    ]
    if decided and reason not in (None, "hard_stop") and decided[-1][1].get("reason") != reason:
        label, decision = decided[-1]
        out.add(
            "integrity.state-log",
            f"{label}'s RCA decided to stop for {decision.get('reason')!r} but the run records {reason!r}",
            file=run.state_file,
            where="stop.reason",
            expected=decision.get("reason"),
            found=reason,
        )
