"""The data of requirements.md (create flow A1): items with scores and evidence, questions, answers.

Every model forbids unknown fields, so a hand-edited YAML block with a typo is an error, not a
silently dropped key.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

SCHEMA_VERSION = 1
BAR = 0.6  # an item or question scoring at most this is not settled
MAX_QUESTIONS = 5
ASSUMED = 0.7  # a --yes assumption: above the bar, visibly not a person's answer
DEFAULT = 0.5
EXPLICIT = 0.9
EXACT = 0.95  # an explicit number with its unit, or an explicit list

EvidenceKind = Literal["explicit", "keyword", "default", "answer", "assumption"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Evidence(_Model):
    kind: EvidenceKind
    text: str


class Item(_Model):
    id: str
    key: str
    value: Any = None
    score: float = Field(ge=0.0, le=1.0)
    evidence: list[Evidence]


class Option(_Model):
    id: str
    text: str
    value: Any = None


class Question(_Model):
    id: str
    item: str
    text: str
    options: list[Option] = Field(min_length=2, max_length=5)
    recommended: str
    follow_up: str  # what happens while it stays unanswered
    impact_rank: int  # 1 is asked first
    score: float = Field(ge=0.0, le=1.0)
    resolves: list[str] = Field(default_factory=list)  # feasibility reasons a person's answer removes
    answer: str | None = None


class Clarification(_Model):
    date: dt.date | None  # None: a default recorded when the text was parsed
    kind: Literal["answer", "assumption", "default"]
    item: str
    question: str | None = None
    text: str
    follow_up: str


class Feasibility(_Model):
    feasible: bool
    reasons: list[str] = Field(default_factory=list)
    alternative: str = ""


class Requirements(_Model):
    schema_version: int = SCHEMA_VERSION
    source: str
    family: str | None
    items: list[Item]
    questions: list[Question]
    clarifications: list[Clarification]
    feasibility: Feasibility

    def item(self, key: str) -> Item:
        for it in self.items:
            if it.key == key:
                return it
        raise KeyError(key)
