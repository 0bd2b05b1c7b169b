"""Requirements analysis (create flow A1): a short requirement, in English or Chinese, becomes scored
items, at most five multiple-choice questions and a feasibility verdict, offline.

Every item carries a 0–1 score and the evidence that produced it: a span of the text (explicit), a
lexicon keyword, a default, a person's answer or a `--yes` assumption. The lexicon, the defaults and
the question wording live in `requirements_lexicon.yaml`, so a new word is a data change.

The rule for questions: an item scoring <= 0.6 is asked about when it changes the generated code
(family, labels, data source, latency, deployment, hardware, metric — in that order of impact, at most
five). Every other low item is recorded as a default with its follow-up strategy, which is what the
A1 done-when accepts alongside answered questions.

Feasibility: a requirement that matches no family above 0.6, asks for a large language model or wants
data from the internet is infeasible; the questions that could make it feasible need a person, and an
assumption (`--yes`) never answers them.
"""

from __future__ import annotations

import datetime as dt
import unicodedata
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from specloop.errors import SpecloopError
from specloop.families import Family, list_families
from specloop.skills.scaffold._requirements_items import Extraction, extract, lexicon
from specloop.skills.scaffold._requirements_questions import build_questions
from specloop.skills.scaffold.requirements_md import (
    format_value,
    load_answers,
    read_requirements_md,
    render_requirements_md,
)
from specloop.skills.scaffold.requirements_schema import (
    ASSUMED,
    BAR,
    MAX_QUESTIONS,
    SCHEMA_VERSION,
    Clarification,
    Evidence,
    Feasibility,
    Item,
    Option,
    Question,
    Requirements,
)

__all__ = [
    "ASSUMED",
    "BAR",
    "MAX_QUESTIONS",
    "SCHEMA_VERSION",
    "Clarification",
    "Evidence",
    "Feasibility",
    "Item",
    "Option",
    "Question",
    "Requirements",
    "apply_answers",
    "assume_recommended",
    "done_when",
    "load_answers",
    "parse_requirement",
    "read_requirements_md",
    "render_requirements_md",
]


def _feasibility(found: Extraction) -> tuple[Feasibility, dict[str, list[str]]]:
    """The verdict, and for each question's item the reasons a person's answer to it removes."""
    lex = lexicon()
    family_reasons: list[str] = [lex["llm_reason"]] if found.llm else []
    data_reasons: list[str] = [lex["download_reason"]] if found.download else []
    deadline = found.found["constraint.deadline"]
    if (found.llm or found.download) and deadline.evidence[0].kind == "explicit":
        late = f"the deadline '{deadline.value}' leaves no time to obtain what this machine lacks"
        (family_reasons if found.llm else data_reasons).append(late)
    if found.family is None and not found.llm:
        fam = found.found["family"]
        best = f"best: {fam.value['name']} at {fam.score:.2f}" if fam.value else "no family keyword found"
        family_reasons.append(f"the requirement matches no task family with a score above {BAR} ({best})")
    reasons = family_reasons + data_reasons
    options = (
        ("llm_alternative", found.llm),
        ("download_alternative", found.download),
        ("vague_alternative", bool(reasons)),
    )
    alternative = next((lex[key] for key, on in options if on), "")
    verdict = Feasibility(feasible=not reasons, reasons=reasons, alternative=alternative)
    return verdict, {"family": family_reasons, "data_source": data_reasons}


def parse_requirement(text: str, families: Sequence[Family] | None = None) -> Requirements:
    """Score every item of a requirement, ask about what is uncertain, and judge feasibility."""
    if not text or not text.strip():
        raise SpecloopError(
            "the requirement is empty; pass the requirement as text or with -f requirement.md"
        )
    source = text.strip()
    fams = sorted(list_families() if families is None else families, key=lambda f: f.name)
    found = extract(unicodedata.normalize("NFKC", source), fams)
    items = [
        Item(id=f"REQ-{i:03d}", key=key, value=f.value, score=round(f.score, 3), evidence=f.evidence)
        for i, (key, f) in enumerate(found.found.items(), 1)
    ]
    feasibility, resolves = _feasibility(found)
    questions = build_questions(items, found, resolves)
    asked = {q.item for q in questions}
    follow = lexicon()["follow_ups"]
    clarifications = [
        Clarification(
            date=None,
            kind="default",
            item=it.key,
            text=f"{it.key} = {format_value(it.value)}: {it.evidence[0].text}",
            follow_up=follow.get(it.key, follow["default"]),
        )
        for it in items
        if it.score <= BAR and it.key not in asked
    ]
    return Requirements(
        source=source,
        family=found.family.name if found.family else None,
        items=items,
        questions=questions,
        clarifications=clarifications,
        feasibility=feasibility,
    )


def _family_value(name: str) -> dict[str, Any]:
    return {"name": name, "runner_up": None, "margin": None}


def _settle(
    req: Requirements,
    question: Question,
    option: Option,
    *,
    kind: Literal["answer", "assumption"],
    score: float,
    today: dt.date,
    note: str,
    families: Sequence[Family] | None,
) -> None:
    """Write one answer or assumption into `req` (in place): the question, its item, the clarification."""
    question.answer, question.score = option.id, score
    item = req.item(question.item)
    evidence = Evidence(kind=kind, text=f"{question.id} → {option.id}: {option.text} ({note})")
    item.value = _family_value(option.value) if question.item == "family" and option.value else option.value
    item.score, item.evidence = score, [evidence]
    follow_up = question.follow_up if kind == "assumption" else f"answered by a person in {note}"
    req.clarifications.append(
        Clarification(
            date=today,
            kind=kind,
            item=item.key,
            question=question.id,
            text=f"{question.text} → {option.text}",
            follow_up=follow_up,
        )
    )
    if option.value is not None and question.resolves:
        req.feasibility.reasons = [r for r in req.feasibility.reasons if r not in question.resolves]
        req.feasibility.feasible = not req.feasibility.reasons
        if req.feasibility.feasible:
            req.feasibility.alternative = ""
    if question.item == "family" and option.value:
        _follow_family(req, option.value, families, evidence, score, today)


def _follow_family(
    req: Requirements,
    name: str,
    families: Sequence[Family] | None,
    evidence: Evidence,
    score: float,
    today: dt.date,
) -> None:
    """After a family is chosen, the items that only followed the old guess follow the new family."""
    family = next(f for f in (list_families() if families is None else families) if f.name == name)
    req.family = name
    modality = req.item("modality")
    modality.value, modality.score, modality.evidence = family.modality, score, [evidence]
    name_item = req.item("project_name")
    suffix = lexicon()["suffix_by_task"].get(family.task)
    if suffix and name_item.value.endswith("_project") and name_item.evidence[0].kind != "explicit":
        name_item.value = name_item.value.removesuffix("_project") + f"_{suffix}"
        name_item.evidence.append(Evidence(kind="default", text=f"suffix {suffix} from the {name} family"))
    follow = lexicon()["follow_ups"]["default"]
    for key, value in (("labels", list(family.labels) or None), ("metric", family.metric)):
        item = req.item(key)
        if all(e.kind == "default" for e in item.evidence):
            if key == "labels" and family.task in ("regression", "forecasting"):
                value = None
            item.value = value
            item.evidence = [
                Evidence(kind="default", text=f"follows the {name} family chosen in {evidence.text}")
            ]
            req.clarifications.append(
                Clarification(
                    date=today,
                    kind="default",
                    item=key,
                    text=f"{key} = {format_value(value)}",
                    follow_up=follow,
                )
            )


def apply_answers(
    req: Requirements,
    answers: Mapping[str, str],
    *,
    source: str,
    today: dt.date,
    families: Sequence[Family] | None = None,
) -> Requirements:
    """A person's answers (question id → option id) written into a copy of `req`, each dated."""
    by_id = {q.id: q for q in req.questions}
    known = {f.name for f in (list_families() if families is None else families)}
    for qid, oid in answers.items():
        question = by_id.get(qid)
        if question is None:
            valid = ", ".join(by_id) or "none (nothing was asked)"
            raise SpecloopError(f"{source}: question {qid!r} does not exist; valid question ids: {valid}")
        choices = [o.id for o in question.options]
        if oid not in choices:
            raise SpecloopError(
                f"{source}: question {qid} has no option {oid!r}; valid choices: {', '.join(choices)}"
            )
        value = next(o.value for o in question.options if o.id == oid)
        if question.item == "family" and value is not None and value not in known:
            raise SpecloopError(
                f"{source}: question {qid} option {oid} names the task family {value!r}, which is not "
                f"registered; known: {', '.join(sorted(known))}"
            )
    new = req.model_copy(deep=True)
    for question in new.questions:
        if question.id in answers:
            option = next(o for o in question.options if o.id == answers[question.id])
            _settle(
                new, question, option, kind="answer", score=1.0, today=today, note=source, families=families
            )
    return new


def assume_recommended(req: Requirements, *, today: dt.date) -> Requirements:
    """For --yes: each open question takes its recommended option as a recorded assumption. Questions
    that decide feasibility are left open: an assumption never makes an infeasible requirement feasible."""
    new = req.model_copy(deep=True)
    for question in new.questions:
        if question.answer is None and not question.resolves:
            option = next(o for o in question.options if o.id == question.recommended)
            _settle(
                new,
                question,
                option,
                kind="assumption",
                score=ASSUMED,
                today=today,
                note="--yes",
                families=None,
            )
    return new


def done_when(req: Requirements) -> list[str]:
    """What keeps A1's done-when from holding: every item and question scores > 0.6, or carries an
    explicit clarification with a follow-up strategy. Empty when it holds."""
    problems = []
    if not req.feasibility.feasible:
        problems.append(
            f"not feasible: {'; '.join(req.feasibility.reasons)}; alternative: {req.feasibility.alternative}"
        )
    for q in req.questions:
        if q.score <= BAR:
            problems.append(f"{q.id} ({q.item}) is unanswered and scores {q.score:.2f}: {q.text}")
    covered = {c.item for c in req.clarifications if c.follow_up} | {q.item for q in req.questions}
    for it in req.items:
        if it.score <= BAR and it.key not in covered:
            problems.append(f"{it.id} {it.key} scores {it.score:.2f} with no question and no clarification")
    return problems
