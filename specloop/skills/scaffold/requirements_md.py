"""requirements.md: markdown for people followed by one fenced YAML block holding the same data for
code, and the answers file (`Q1: a`) that settles its questions.

The YAML block is the source of truth when the file is read back; the prose above it is rendered
from the same data, so the two cannot disagree. Rendering is deterministic (no clock).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from specloop.errors import SpecloopError
from specloop.skills.scaffold.requirements_schema import SCHEMA_VERSION, Requirements

_BLOCK_OPEN = "```yaml requirements"


def format_value(value: Any) -> str:
    """One item value as people read it."""
    if value is None:
        return "—"
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return ", ".join(value)
    return json.dumps(value, ensure_ascii=False)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_requirements_md(req: Requirements) -> str:
    """requirements.md: for people, then one fenced YAML block holding the same data for code."""
    name = req.item("project_name").value
    out = [f"# Requirements: {name}", "", "## Requirement (verbatim)", ""]
    out += [f"> {line}" if line else ">" for line in req.source.splitlines()]
    out += ["", "## Items", "", "| id | item | value | score | evidence |", "| --- | --- | --- | --- | --- |"]
    for it in req.items:
        ev = "; ".join(f"{e.kind}: {e.text}" for e in it.evidence)
        out.append(f"| {it.id} | {it.key} | {_cell(format_value(it.value))} | {it.score:.2f} | {_cell(ev)} |")
    out += ["", "## Clarifying questions", ""]
    if not req.questions:
        out += ["None: the text settles every item that changes the generated code.", ""]
    for q in req.questions:
        state = f"answered: {q.answer}" if q.answer else "open"
        out += [
            f"### {q.id} ({q.item}; impact {q.impact_rank}; score {q.score:.2f}; {state})",
            "",
            q.text,
            "",
        ]
        for o in q.options:
            mark = " **(recommended)**" if o.id == q.recommended else ""
            out.append(f"- {o.id}) {o.text}{mark}")
        out += ["", f"If unanswered: {q.follow_up}", ""]
    out += ["## Clarifications", ""]
    dated = sorted({c.date for c in req.clarifications if c.date is not None})
    for day in dated:
        out += [f"### {day.isoformat()}", ""]
        out += [
            f"- {c.kind} ({c.question or c.item}): {c.text}. Follow-up: {c.follow_up}"
            for c in req.clarifications
            if c.date == day
        ]
        out.append("")
    defaults = [c for c in req.clarifications if c.date is None]
    if defaults:
        out += ["### Defaults (not asked)", ""]
        out += [f"- {c.text}. Follow-up: {c.follow_up}" for c in defaults]
        out.append("")
    if not req.clarifications:
        out += ["None yet.", ""]
    f = req.feasibility
    out += ["## Feasibility", "", f"Feasible: {'yes' if f.feasible else 'no'}", ""]
    out += [f"- {r}" for r in f.reasons]
    blocking = [q.id for q in req.questions if q.resolves and q.answer is None]
    if blocking:
        out += ["", f"A person must answer: {', '.join(blocking)} (an assumption under --yes never does)."]
    if f.alternative:
        out += ["", f"Feasible alternative: {f.alternative}"]
    data = yaml.safe_dump(req.model_dump(mode="json"), allow_unicode=True, sort_keys=False, width=10**9)
    out += ["", _BLOCK_OPEN, data.rstrip("\n"), "```", ""]
    return "\n".join(out)


def read_requirements_md(path: Path) -> Requirements:
    """The YAML block of a requirements.md written by :func:`render_requirements_md`."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise SpecloopError(f"{path}: cannot read the requirements file ({exc.strerror})") from None
    opening = next((i for i, line in enumerate(lines) if line.rstrip() == _BLOCK_OPEN), None)
    if opening is None:
        raise SpecloopError(f"{path}, line {len(lines)}: the file ends without a {_BLOCK_OPEN} block")
    closing = next((i for i in range(opening + 1, len(lines)) if lines[i].rstrip() == "```"), None)
    if closing is None:
        raise SpecloopError(f"{path}, line {opening + 1}: the {_BLOCK_OPEN} block is never closed with ```")
    try:
        data = yaml.safe_load("\n".join(lines[opening + 1 : closing]))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = opening + 2 + (mark.line if mark else 0)
        raise SpecloopError(
            f"{path}, line {line}: the requirements block is not valid YAML ({getattr(exc, 'problem', exc)})"
        ) from None
    if not isinstance(data, dict) or data.get("schema_version") != SCHEMA_VERSION:
        raise SpecloopError(
            f"{path}, line {opening + 2}: the requirements block needs schema_version: {SCHEMA_VERSION} and a mapping"
        )
    try:
        return Requirements.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        raise SpecloopError(
            f"{path}, line {opening + 2}: the requirements block is invalid at {where} ({err['msg']})"
        ) from None


def load_answers(path: Path) -> dict[str, str]:
    """answers.yaml: a mapping of question id to option id (`Q1: a`)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise SpecloopError(f"{path}: cannot read the answers file ({exc.strerror})") from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f", line {mark.line + 1}" if mark else ""
        raise SpecloopError(
            f"{path}{line}: the answers file is not valid YAML ({getattr(exc, 'problem', exc)})"
        ) from None
    if not isinstance(node, yaml.MappingNode):
        line = f", line {node.start_mark.line + 1}" if node is not None else ""
        raise SpecloopError(
            f"{path}{line}: answers must be a mapping of question id to option id, like `Q1: a`"
        )
    answers: dict[str, str] = {}
    str_tag = "tag:yaml.org,2002:str"
    for key, value in node.value:
        line = key.start_mark.line + 1
        if (
            not isinstance(key, yaml.ScalarNode)
            or not isinstance(value, yaml.ScalarNode)
            or {key.tag, value.tag} != {str_tag}
        ):
            raise SpecloopError(
                f"{path}, line {line}: each answer must be `question id: option id`, both plain strings (like `Q1: a`)"
            )
        if key.value in answers:
            raise SpecloopError(f"{path}, line {line}: question {key.value} is answered twice")
        answers[key.value] = value.value
    return answers
