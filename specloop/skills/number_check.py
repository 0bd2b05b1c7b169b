"""Checking model-written text against the ledger: every number it states must be one the tools
computed, and the text must stay within its length limit.

A number in the text matches a fact when the fact, written with the text's precision, gives the
same figure; fractions also match as percentages (0.2393 is "23.9%"). Numbers that the offline
text states (which the tools computed) are facts too, so a model may restate any of them.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

# A number that is not part of a name such as "iter2", "resnet18", "SOIC-8" or "64x64".
_NUMBER = re.compile(r"(?<![\w.\-/])(\d+(?:[.,]\d+)*)(?![\w]|\.\d)(\s?%|\s?pp)?")
_LIST_MARKER = re.compile(r"^\s*\d+[.)]\s", re.MULTILINE)
# Figures any text may state without a fact behind them: "100 % recall".
ALWAYS_ALLOWED = frozenset({100.0})


@dataclass(frozen=True)
class Stated:
    text: str
    value: float
    decimals: int
    percent: bool


def stated_numbers(text: str) -> list[Stated]:
    """The numbers a text states, list markers left out; thousands separators are read as such."""
    body = _LIST_MARKER.sub(" ", text)
    found = []
    for match in _NUMBER.finditer(body):
        raw, unit = match.group(1), (match.group(2) or "").strip()
        digits = raw.replace(",", "") if re.fullmatch(r"\d{1,3}(,\d{3})+", raw) else raw.replace(",", ".")
        try:
            value = float(digits)
        except ValueError:
            continue
        decimals = len(digits.split(".")[1]) if "." in digits else 0
        found.append(Stated(match.group(0).strip(), value, decimals, unit in ("%", "pp")))
    return found


def fact_values(facts: Any) -> Iterator[float]:
    """Every number in a nested structure of dicts, lists and scalars (booleans are not numbers)."""
    if isinstance(facts, bool) or facts is None:
        return
    if isinstance(facts, int | float):
        if math.isfinite(facts):
            yield float(facts)
    elif isinstance(facts, dict):
        for value in facts.values():
            yield from fact_values(value)
    elif isinstance(facts, list | tuple | set):
        for value in facts:
            yield from fact_values(value)


def _matches(stated: Stated, value: float) -> bool:
    tolerance = 10.0 ** (-stated.decimals) * 0.5 + 1e-9
    candidates = (value * 100, value) if stated.percent else (value, value * 100)
    return any(abs(stated.value - c) <= tolerance for c in candidates)


def unsupported_numbers(text: str, facts: Any, reference_texts: Iterable[str] = ()) -> list[str]:
    """The numbers in `text` that match no fact and no number of the reference texts."""
    known = set(fact_values(facts)) | ALWAYS_ALLOWED
    for ref in reference_texts:
        for n in stated_numbers(ref):
            known.add(n.value / 100 if n.percent else n.value)
    return [n.text for n in stated_numbers(text) if not any(_matches(n, v) for v in known)]


def check_text(
    text: str, facts: Any, *, reference_texts: Iterable[str] = (), max_words: int | None = None
) -> list[str]:
    """Why `text` may not be used (empty when it may): numbers without a fact, length, emptiness."""
    problems = []
    if not text.strip():
        problems.append("the model returned no text")
    wrong = unsupported_numbers(text, facts, reference_texts)
    if wrong:
        problems.append(f"numbers not in the ledger: {', '.join(wrong)}")
    words = len(text.split())
    if max_words is not None and words > max_words:
        problems.append(f"{words} words, over the limit of {max_words}")
    return problems
