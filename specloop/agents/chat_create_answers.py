"""What the chat says about a create run, from the run's own files (create_state.json,
loop_log.jsonl, requirements.md, tasks.json, PROJECT_BUILD_LOG.md, REVIEW_REPORT.md): the gate
with its questions, the person's answers before "go", status and the report.

The gate's answers follow the CLI's rules: an answer names a question id and one of its option
ids; "go" with questions still open takes their recommended options as recorded assumptions; a
question that decides feasibility needs a person's answer (an assumption never makes an infeasible
requirement feasible), so "go" is refused until one is given.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from specloop.agents.chat_answers import AT_GATE, FINISHED, RUNNING
from specloop.agents.create.common import (
    BUILD_LOG,
    REQUIREMENTS,
    REVIEW_REPORT,
    TASKS_JSON,
    TASKS_MD,
    TECH_MD,
)
from specloop.errors import SpecloopError
from specloop.ledger import loop_log
from specloop.ledger import state as ledger_state
from specloop.ledger.files import read_json
from specloop.ledger.layout import RunLayout
from specloop.skills.scaffold.requirements import apply_answers
from specloop.skills.scaffold.requirements_md import read_requirements_md
from specloop.skills.scaffold.requirements_schema import Requirements
from specloop.skills.scaffold.tasks import read_build_records, verify_build_log

HOW_TO_ANSWER = "Answer with e.g. “Q1 a” (several at once: “1a 2b”), then say “go”"
_VERDICT = re.compile(r"^\*\*(PASS|FAIL)\*\*: (\d+) of (\d+) checks pass\.$", re.MULTILINE)
_FAILED_CHECK = re.compile(r"^\| `([^`]+)` \| FAIL \|", re.MULTILINE)

Question = Mapping[str, Any]


def needs_person(questions: list[Question]) -> list[Question]:
    """The open questions whose answer decides feasibility (no assumption settles them)."""
    return [q for q in questions if q.get("resolves")]


def _options(q: Question) -> str:
    return ", ".join(
        f"{o['id']}) {o['text']}" + (" (recommended)" if o["id"] == q["recommended"] else "")
        for o in q["options"]
    )


def _ids(questions: list[Question]) -> str:
    return ", ".join(q["id"] for q in questions)


def gate_question(request: Mapping[str, Any]) -> str:
    """The sentence the chat asks at a create run's gate."""
    questions = list(request["questions"])
    if not request["feasible"]:
        person = needs_person(questions)
        who = f"a person must answer {_ids(person)}" if person else "no answer makes it feasible"
        return (
            f"This requirement cannot be built here as it stands, so “go” alone will not do: {who}. "
            f"{HOW_TO_ANSWER}."
        )
    if not questions:
        return "Nothing is left to ask. Say “go” to create the project."
    return (
        f"{HOW_TO_ANSWER}; “go” alone takes the recommended option of every open question, "
        "recorded as an assumption."
    )


def gate_text(run_dir: Path, request: Mapping[str, Any]) -> str:
    """Markdown for the gate: the project, the requirement, feasibility, and the open questions."""
    req = read_requirements_md(run_dir / REQUIREMENTS)
    lines = [
        f"**Project** `{req.item('project_name').value}` · family {req.family or 'none yet'} · "
        f"{len(req.items)} items · full text: {run_dir / REQUIREMENTS}",
        "",
        f"> {req.source.strip()}",
        "",
    ]
    if req.feasibility.feasible:
        lines.append("Feasible here.")
    else:
        lines.append("**Not feasible here as it stands:** " + "; ".join(req.feasibility.reasons) + ".")
        if req.feasibility.alternative:
            lines.append(f"Feasible alternative: {req.feasibility.alternative}.")
    for q in request["questions"]:
        person = " — needs a person's answer" if q.get("resolves") else ""
        lines += ["", f"**{q['id']}** {q['text']}{person}", ""]
        lines += [
            f"- {o['id']}) {o['text']}" + (" **(recommended)**" if o["id"] == q["recommended"] else "")
            for o in q["options"]
        ]
    return "\n".join(lines)


def check_answers(request: Mapping[str, Any], answers: Mapping[str, str]) -> str | None:
    """Why `answers` (question id → option id) do not fit the gate's open questions; None if they do."""
    by_id = {q["id"]: q for q in request["questions"]}
    if not by_id:
        return "There are no open questions at this gate; say “go” to create the project."
    for qid, oid in answers.items():
        q = by_id.get(qid)
        if q is None:
            return f"There is no open question {qid}; the open questions are {', '.join(by_id)}. Nothing recorded."
        if oid not in [o["id"] for o in q["options"]]:
            return f"{qid} has no option {oid!r}; its options are {_options(q)}. Nothing recorded."
    return None


def _requirements_with(run_dir: Path, answers: Mapping[str, str]) -> Requirements:
    req = read_requirements_md(run_dir / REQUIREMENTS)
    return apply_answers(req, answers, source="the chat", today=dt.date.today()) if answers else req


def answers_noted(run_dir: Path, request: Mapping[str, Any], answers: Mapping[str, str]) -> str:
    """What the chat says after an answer: everything noted so far, what is still open, what "go" does."""
    by_id = {q["id"]: q for q in request["questions"]}
    noted = "; ".join(
        f"{qid} → {oid} ({next(o['text'] for o in by_id[qid]['options'] if o['id'] == oid)})"
        for qid, oid in sorted(answers.items())
    )
    parts = [f"Noted: {noted}."]
    open_questions = [q for q in request["questions"] if q["id"] not in answers]
    refusal = go_refusal(run_dir, request, answers)
    if refusal is not None:
        parts.append(refusal)
    elif open_questions:
        parts.append(
            f"Still open: {_ids(open_questions)}. Answer them, or say “go” to take their recommended "
            "options (recorded as assumptions)."
        )
    else:
        parts.append("Every question is answered; say “go” to create the project.")
    return " ".join(parts)


def go_refusal(run_dir: Path, request: Mapping[str, Any], answers: Mapping[str, str]) -> str | None:
    """Why "go" cannot approve with these answers (the requirement stays infeasible); None if it can."""
    try:
        req = _requirements_with(run_dir, answers)
    except SpecloopError as exc:
        return f"Not yet: {exc}."
    if req.feasibility.feasible:
        return None
    person = [q for q in needs_person(list(request["questions"])) if q["id"] not in answers]
    reasons = "; ".join(req.feasibility.reasons)
    if person:
        asks = " ".join(f"{q['id']} {q['text']} ({_options(q)})." for q in person)
        return (
            f"Not yet: as it stands this cannot be built here ({reasons}), and an assumption never changes "
            f"that. A person must answer: {asks}"
        )
    return (
        f"Not yet: with these answers it still cannot be built here ({reasons}). Choose another option, "
        "or leave the run waiting at the gate."
    )


def _project(run_dir: Path, st: Mapping[str, Any]) -> str:
    name = st.get("project_dir")
    return str(run_dir / name) if name else f"{st.get('project_name') or 'not named yet'}, not written yet"


def build_and_review(run_dir: Path) -> list[str]:
    """The build log's ticks against their records, the re-verification and the review's verdict."""
    lines = []
    if (run_dir / BUILD_LOG).is_file() and (run_dir / TASKS_JSON).is_file():
        tasks = [t["id"] for t in read_json(run_dir / TASKS_JSON)]
        try:
            records = read_build_records(run_dir / BUILD_LOG)
            unbacked = verify_build_log(run_dir / BUILD_LOG)
        except SpecloopError as exc:
            return [f"Build log: cannot be read ({exc})."]
        built = [t for t in tasks if any(r.task == t and r.ok and r.phase == "build" for r in records)]
        verified = [t for t in tasks if any(r.task == t and r.ok and r.phase == "verify" for r in records)]
        failed = [t for t in tasks if t not in built and any(r.task == t for r in records)]
        line = f"Build log: {len(built)} of {len(tasks)} tasks passed their acceptance command"
        if any(r.phase == "verify" for r in records):
            line += f", {len(verified)} of {len(tasks)} passed again on re-verification"
        line += f"; failed: {', '.join(failed)}" if failed else ""
        line += "; every [x] has a passing record." if not unbacked else f"; {unbacked[0]}."
        lines.append(line)
    if (run_dir / REVIEW_REPORT).is_file():
        text = (run_dir / REVIEW_REPORT).read_text(encoding="utf-8")
        if m := _VERDICT.search(text):
            failing = _FAILED_CHECK.findall(text)
            more = f" (failing: {', '.join(failing)})" if failing else ""
            lines.append(f"Review: {m[1]}, {m[2]} of {m[3]} checks pass{more}.")
    return lines


def create_status(
    run_dir: Path, activity: str, answers: Mapping[str, str], request: Mapping[str, Any] | None
) -> str:
    """One short paragraph: which stage the create run is at, its project, build and review results."""
    st = ledger_state.load(run_dir)
    log = loop_log.read_entries(RunLayout(run_dir).log)
    head = f"Create run {run_dir.name} (project {_project(run_dir, st)})"
    last = log[-1] if log else None
    done = f"last finished stage {last['stage']}: {last['summary']}" if last else "no stage finished yet"
    if activity == AT_GATE and request is not None:
        parts = [f"{head} is waiting at the gate."]
        if answers:
            parts.append(
                "Answered here: " + ", ".join(f"{k} → {v}" for k, v in sorted(answers.items())) + "."
            )
        still = [q for q in request["questions"] if q["id"] not in answers]
        if still:
            parts.append(f"Still open: {_ids(still)}.")
        parts.append(go_refusal(run_dir, request, answers) or f"{HOW_TO_ANSWER}.")
        return " ".join(parts)
    if activity == FINISHED:
        stop = st.get("stop") or {}
        if stop.get("reason") == "hard_stop":
            parts = [f"{head} stopped at {stop.get('stage')} [{stop.get('check')}]: {stop.get('detail')}."]
        else:
            parts = [f"{head} has finished: the project is created ({done})."]
    elif activity == RUNNING:
        parts = [f"{head} is running; {done}."]
    else:
        parts = [f"{head} is not running now; {done}. Continue it with: specloop chat --resume {run_dir}"]
    return " ".join(parts + build_and_review(run_dir))


def create_report(run_dir: Path, status: str) -> str:
    """Markdown: where the run is, the artefacts written so far, one row per finished stage."""
    lines = [status, ""]
    files = [
        n for n in (REQUIREMENTS, TECH_MD, TASKS_MD, BUILD_LOG, REVIEW_REPORT) if (run_dir / n).is_file()
    ]
    if files:
        lines += ["Files: " + ", ".join(f"`{run_dir / n}`" for n in files), ""]
    log = loop_log.read_entries(RunLayout(run_dir).log)
    if log:
        lines += ["| stage | status | summary |", "|---|---|---|"]
        lines += [f"| {e['stage']} | {e['status']} | {e['summary'].replace('|', '/')} |" for e in log]
    return "\n".join(lines)
