"""The clarifying questions of requirements.md, spec-kit style: at most five, multiple choice (2–5
options), the recommended option first, each with what happens while it stays unanswered.

Only items that change the generated code are asked about, in the lexicon's `question_order`
(family > labels > data source > latency > deployment > hardware > metric).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from specloop.families import Family
from specloop.skills.scaffold._requirements_items import Extraction, Ranked, lexicon
from specloop.skills.scaffold.requirements_schema import BAR, MAX_QUESTIONS, Item, Option, Question


def _options(entries: Sequence[tuple[str, Any]]) -> list[Option]:
    return [Option(id="abcde"[i], text=text, value=value) for i, (text, value) in enumerate(entries[:5])]


def _family_options(ranked: Sequence[Ranked], llm: bool) -> list[tuple[str, Any]]:
    order = list(ranked)
    if llm:  # the documented alternative first: a text model over their documents
        order.sort(key=lambda r: r.family.modality != "text")
    entries: list[tuple[str, Any]] = [
        (f"{r.family.title} ({r.family.name})", r.family.name) for r in order[:4]
    ]
    entries.append((lexicon()["questions"]["family_none"], None))
    return entries


def _question_entries(
    key: str, family: Family | None, ranked: Sequence[Ranked], llm: bool, download: bool
) -> tuple[dict[str, Any], list[tuple[str, Any]]] | None:
    """(template, option entries) for one item's question, or None when there is nothing to offer."""
    qs = lexicon()["questions"]
    if key == "family":
        return (qs["family_llm" if llm else "family"], _family_options(ranked, llm)) if ranked else None
    if key == "labels":
        if family is None:
            return None
        entries: list[tuple[str, Any]] = []
        if family.labels:
            shown = ", ".join(family.labels[:6]) + (", …" if len(family.labels) > 6 else "")
            entries.append((f"The {family.name} family's default classes: {shown}", list(family.labels)))
        entries += [
            (qs["labels"]["from_data"], "from_data"),
            (qs["labels"]["binary"], ["positive", "negative"]),
        ]
        return qs["labels"], entries
    if key == "metric":
        if family is None:
            return None
        names = list(dict.fromkeys([family.metric, *lexicon()["metrics_by_task"].get(family.task, [])]))
        return (qs["metric"], [(n, n) for n in names]) if len(names) >= 2 else None
    template = qs["data_source_download" if key == "data_source" and download else key]
    return template, [(o["text"], o["value"]) for o in qs[key]["options"]]


def build_questions(
    items: Sequence[Item], found: Extraction, resolves: Mapping[str, list[str]]
) -> list[Question]:
    """At most five questions, by impact, for the low items that change the generated code.

    `resolves` maps an item key to the feasibility reasons a person's answer to it removes.
    """
    by_key = {it.key: it for it in items}
    questions: list[Question] = []
    for key in lexicon()["question_order"]:
        item = by_key[key]
        if item.score > BAR or len(questions) == MAX_QUESTIONS:
            continue
        built = _question_entries(key, found.family, found.ranked, found.llm, found.download)
        if built is None:
            continue
        template, entries = built
        options = _options(entries)
        questions.append(
            Question(
                id=f"Q{len(questions) + 1}",
                item=key,
                text=template["text"],
                options=options,
                recommended=options[0].id,
                follow_up=template["follow_up"],
                impact_rank=len(questions) + 1,
                score=item.score,
                resolves=list(resolves.get(key, [])),
            )
        )
    return questions
