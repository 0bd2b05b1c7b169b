"""Requirements analysis (create flow A1): a short requirement, in English or Chinese, becomes scored
items, at most five multiple-choice questions and a feasibility verdict, offline.

Every item carries a 0–1 score and the evidence that produced it: a span of the text (explicit), a
lexicon keyword, a default, a person's answer or a `--yes` assumption. The lexicon, the defaults and
the question wording live in `requirements_lexicon.yaml`, so a new word is a data change.

The rule for questions: an item scoring <= 0.6 is asked about when it changes the generated code
(family, labels, data source, latency, deployment, hardware, metric — in that order of impact, at most
five). Every other low item is recorded as a default with its follow-up strategy, which is what the
A1 done-when accepts alongside answered questions.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from specloop.errors import SpecloopError
from specloop.families import Family, list_families

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


# --------------------------------------------------------------------------------------------- lexicon


@cache
def _lexicon() -> dict[str, Any]:
    text = resources.files(__package__).joinpath("requirements_lexicon.yaml").read_text(encoding="utf-8")
    return yaml.safe_load(text)


@dataclass(frozen=True)
class _Hit:
    start: int
    end: int
    term: str
    value: Any


def _term_pattern(term: str) -> re.Pattern[str]:
    """ASCII terms match whole words (case-insensitively unless written in capitals); others substrings."""
    if not term.isascii():
        return re.compile(re.escape(term), re.IGNORECASE)
    flags = 0 if term.isupper() else re.IGNORECASE
    return re.compile(r"(?<![a-z0-9])" + re.escape(term) + r"(?![a-z0-9])", flags)


def _hits(text: str, table: Mapping[str, Any]) -> list[_Hit]:
    """Non-overlapping lexicon hits, longer terms first, in text order."""
    hits: list[_Hit] = []
    for term in sorted(table, key=lambda t: (-len(t), t)):
        for m in _term_pattern(term).finditer(text):
            if not any(m.start() < h.end and h.start < m.end() for h in hits):
                hits.append(_Hit(m.start(), m.end(), term, table[term]))
    return sorted(hits, key=lambda h: h.start)


def _table(terms: Sequence[str], value: Any = True) -> dict[str, Any]:
    return {t: value for t in terms}


# --------------------------------------------------------------------------------------------- parsing

_CJK = re.compile(r"[\u4e00-\u9fff]")
_SENTENCE = re.compile(r"[。!?！？;；\n]+|(?<!\d)\.(?!\d)")
_ZH_LIST_ITEM = r"[\u4e00-\u9fffA-Za-z0-9_]{1,8}"
_ZH_LIST = re.compile(
    rf"^(?:分为|分成|分类为|类别|标签|包括)?[:：]?\s*({_ZH_LIST_ITEM}(?:\s*(?:、|和|与|或|/)\s*{_ZH_LIST_ITEM})+)$"
)
_ZH_LIST_INLINE = re.compile(
    rf"(?:分为|分成|分类为|分类成)\s*({_ZH_LIST_ITEM}(?:\s*(?:、|和|与|或|/)\s*{_ZH_LIST_ITEM})+)"
)
_ZH_SPLIT = re.compile(r"\s*(?:、|和|与|或|/)\s*")
_EN_WORD = r"[a-z][\w-]*"
_EN_LIST = re.compile(
    rf"(?<![a-z])(?:into|between|as|classes|labels|categories|class|label|category)\s*[:=]?\s*"
    rf"({_EN_WORD}(?:\s*,\s*{_EN_WORD})*\s*,?\s*(?:and|or|/)\s*{_EN_WORD})",
    re.IGNORECASE,
)
_EN_OF_LIST = re.compile(rf"(?<![a-z])of\s+({_EN_WORD}(?:\s*,\s*{_EN_WORD})*\s*,?\s*(?:and|or)\s*{_EN_WORD})")
_EN_SPLIT = re.compile(r"\s*(?:,\s*(?:and|or)\s+|,|\s+and\s+|\s+or\s+|/)\s*")
_DIGITS = re.compile(r"(?<!\d)0\s*(?:-|–|~|to|到|至)\s*9(?!\d)")
_LATENCY = re.compile(
    r"(?P<op><=|<|≤|under|below|within|less than|at most|no more than|不超过|小于|低于|少于)?\s*"
    r"(?P<num>\d+(?:\.\d+)?)\s*(?P<unit>ms|msec|milliseconds?|毫秒|seconds?|secs?|s|秒)(?![a-z])"
    r"(?:\s*(?:以内|之内|内))?",
    re.IGNORECASE,
)
_THROUGHPUT = (
    re.compile(
        r"(?P<num>\d+(?:\.\d+)?)\s*(?P<unit>qps|rps|fps|req/s|(?:requests?|images?|samples?|frames?|predictions?"
        r"|items?|pictures?)\s*(?:/|per)\s*s(?:ec(?:ond)?)?)(?![a-z])",
        re.IGNORECASE,
    ),
    re.compile(r"每秒(?:钟)?(?:处理|识别|预测)?\s*(?P<num>\d+(?:\.\d+)?)\s*(?P<unit>张|个|次|条|帧|请求)?"),
    re.compile(r"(?P<num>\d+(?:\.\d+)?)\s*(?P<unit>张|个|次|条|帧)?\s*/\s*秒"),
)
_THROUGHPUT_UNITS = {"张": "images", "帧": "frames", "次": "requests", "请求": "requests", "条": "samples"}
_MEMORY = (
    re.compile(
        r"(?P<num>\d+(?:\.\d+)?)\s*(?P<unit>gib|gb|g|mib|mb|m)\s*(?:of\s+)?(?:ram|memory|vram|内存|显存)",
        re.IGNORECASE,
    ),
    re.compile(
        r"(?:ram|memory|vram|内存|显存)[^\d]{0,12}?(?P<num>\d+(?:\.\d+)?)\s*(?P<unit>gib|gb|g|mib|mb)(?![a-z])",
        re.IGNORECASE,
    ),
)
_NAME = re.compile(
    r"(?:(?:project|repo|package)\s*(?:name)?\s*(?:is|:|=)|called|named|项目名称?[:：]?|名为|叫做?)\s*"
    r"[\"'`“]?(?P<name>[a-z][a-z0-9_-]{2,40})",
    re.IGNORECASE,
)


@dataclass
class _Found:
    """One item before it is numbered."""

    value: Any
    score: float
    evidence: list[Evidence]


def _explicit(value: Any, spans: Sequence[str], score: float = EXPLICIT) -> _Found:
    return _Found(value, score, [Evidence(kind="explicit", text=s) for s in spans])


def _keyword(value: Any, spans: Sequence[str], score: float) -> _Found:
    return _Found(value, score, [Evidence(kind="keyword", text=s) for s in spans])


def _default(key: str, value: Any = None, why: str | None = None) -> _Found:
    entry = _lexicon()["defaults"][key]
    return _Found(
        entry["value"] if value is None else value,
        DEFAULT,
        [Evidence(kind="default", text=why or entry["why"])],
    )


def _clauses(text: str) -> list[str]:
    """Sentences; a sentence with Chinese in it is also split at its commas."""
    out = []
    for sentence in _SENTENCE.split(text):
        parts = re.split(r"[,，]", sentence) if _CJK.search(sentence) else [sentence]
        out.extend(p.strip() for p in parts if p.strip())
    return out


@dataclass(frozen=True)
class _Ranked:
    family: Family
    points: float
    hits: tuple[_Hit, ...]


def _family_table(family: Family) -> dict[str, float]:
    lex = _lexicon()
    table: dict[str, float] = {}
    for term in (*family.keywords.get("en", ()), *family.keywords.get("zh", ())):
        table[term.lower()] = 1.0
    for term in lex["modality"].get(family.modality, []):
        table.setdefault(term.lower(), 1.0)
    for term in lex["task"].get(family.task, []):
        table.setdefault(term.lower(), 0.5)
    for term in lex["hints"].get(family.modality, []):
        table.setdefault(term.lower(), 0.25)
    return table


def _rank(text: str, families: Sequence[Family]) -> list[_Ranked]:
    ranked = []
    for fam in families:
        hits = tuple(_hits(text, _family_table(fam)))
        points = sum({h.term: h.value for h in hits}.values())
        ranked.append(_Ranked(fam, points, hits))
    return sorted(ranked, key=lambda r: (-r.points, r.family.name))


def _family_score(points: float, other: float) -> float:
    """strength (1 - base**points) times sqrt of the share against the other family's points."""
    if points <= 0:
        return 0.0
    strength = 1.0 - _lexicon()["family_score_base"] ** points
    return round(strength * math.sqrt(points / (points + other)), 3)


def _labels(text: str, clauses: Sequence[str], family: Family | None) -> tuple[_Found, set[str]]:
    """The classes, and the clauses that only list them (they are not problem statements)."""
    for clause in clauses:
        m = _ZH_LIST.match(clause)
        if m and _CJK.search(clause):
            return _explicit(_ZH_SPLIT.split(m.group(1)), [clause], EXACT), {clause}
    for pattern, splitter in ((_ZH_LIST_INLINE, _ZH_SPLIT), (_EN_LIST, _EN_SPLIT)):
        m = pattern.search(text)
        if m:
            return _explicit(
                [w.strip() for w in splitter.split(m.group(1)) if w.strip()], [m.group(0)], EXACT
            ), set()
    verbs = _table(_lexicon()["task"]["classification"])
    for clause in clauses:  # "classify photos of cats and dogs": "of" lists only next to a classifying verb
        m = _EN_OF_LIST.search(clause) if _hits(clause, verbs) else None
        if m:
            return _explicit([w for w in _EN_SPLIT.split(m.group(1)) if w], [m.group(0)], EXACT), set()
    digits = [str(d) for d in range(10)]
    m = _DIGITS.search(text)
    if m:
        return _explicit(digits, [m.group(0)], EXACT), set()
    digit_words = _hits(text, _table(["digit", "digits", "手写数字", "数字识别"]))
    if digit_words and (family is None or family.modality == "image"):
        return _keyword(digits, [f"'{h.term}' names the digits 0-9" for h in digit_words], 0.8), set()
    if family is not None and family.task in ("regression", "forecasting"):
        return _Found(
            None,
            EXPLICIT,
            [Evidence(kind="default", text=f"a {family.task} model predicts values, not classes")],
        ), set()
    if family is not None and family.labels:
        return _default(
            "labels",
            list(family.labels),
            f"no classes were stated; the {family.name} family's default classes are used",
        ), set()
    return _default("labels"), set()


def _metric(text: str, family: Family | None) -> _Found:
    hits = _hits(text, _lexicon()["metric"])
    if hits:
        return _explicit(hits[0].value[0], [text[hits[0].start : hits[0].end]])
    if family is not None:
        why = f"no metric was stated; the {family.name} family reports {family.metric}"
        return _default("metric", family.metric, why)
    return _default("metric")


def _quality(text: str) -> _Found:
    """An explicit quality target on a metric ("accuracy 95%", "准确率达到95%以上", "FAR below 1%")."""
    table = _lexicon()["metric"]
    terms = "|".join(re.escape(t) for t in sorted(table, key=lambda t: (-len(t), t)))
    for pattern in (
        rf"(?<![a-z])(?P<metric>{terms})(?![a-z])[^\d%]{{0,20}}?(?P<num>\d+(?:\.\d+)?)\s*%",
        rf"(?P<num>\d+(?:\.\d+)?)\s*%\s*(?:以上|or better|or more)?\s*的?\s*(?P<metric>{terms})(?![a-z])",
    ):
        m = re.search(pattern, text, re.IGNORECASE)
        if m:
            metric, direction = table[m.group("metric").lower()]
            target = {
                "metric": metric,
                "op": ">=" if direction == "max" else "<=",
                "value": float(m.group("num")) / 100,
            }
            return _explicit(target, [m.group(0).strip()], EXACT)
    return _default("sla.accuracy")


def _latency(text: str) -> _Found:
    for m in _LATENCY.finditer(text):
        unit = m.group("unit").lower()
        if unit == "秒" and text[max(0, m.start("unit") - 1) : m.start("unit")] == "每":
            continue
        ms = float(m.group("num")) * (
            1.0 if unit in ("ms", "msec", "毫秒") or unit.startswith("milli") else 1000.0
        )
        return _explicit({"max_ms": ms}, [m.group(0).strip()], EXACT)
    return _default("sla.latency")


def _throughput(text: str) -> _Found:
    for pattern in _THROUGHPUT:
        m = pattern.search(text)
        if m:
            unit = (m.group("unit") or "").lower()
            if unit in _THROUGHPUT_UNITS:
                unit = _THROUGHPUT_UNITS[unit]
            elif unit in ("qps", "rps", "req/s") or unit.startswith("request"):
                unit = "requests"
            elif unit == "fps" or unit.startswith("frame"):
                unit = "frames"
            elif unit.startswith(("image", "picture")):
                unit = "images"
            else:
                unit = "samples"
            return _explicit({"min_per_s": float(m.group("num")), "unit": unit}, [m.group(0).strip()], EXACT)
    return _default("sla.throughput")


def _memory(text: str) -> _Found:
    for pattern in _MEMORY:
        m = pattern.search(text)
        if m:
            scale = 1024.0 if m.group("unit").lower().startswith("g") else 1.0
            return _explicit({"max_mb": float(m.group("num")) * scale}, [m.group(0).strip()], EXACT)
    return _default("constraint.memory")


def _lookup(text: str, key: str, table_name: str | None = None) -> _Found:
    hits = _hits(text, _lexicon()[table_name or key.split(".")[-1]])
    if hits:
        return _explicit(hits[0].value, [text[h.start : h.end] for h in hits])
    return _default(key)


def _deadline(text: str) -> _Found:
    for pattern in _lexicon()["deadline"]:
        m = re.search(pattern, text, re.IGNORECASE)
        if m:
            return _explicit(m.group(0), [m.group(0)])
    return _default("constraint.deadline")


def _python(text: str) -> _Found:
    m = re.search(_lexicon()["python"], text, re.IGNORECASE)
    return _explicit(m.group(1), [m.group(0)]) if m else _default("compat.python")


def _deployment(text: str) -> _Found:
    found = _lookup(text, "compat.deployment", "deployment")
    if found.evidence[0].kind == "explicit":
        return found
    words = _hits(text, _table(_lexicon()["deploy_words"]))
    if words:
        why = f"'{text[words[0].start : words[0].end]}' says it is deployed but not where"
        return _keyword(_lexicon()["defaults"]["compat.deployment"]["value"], [why], 0.55)
    return found


def _data_source(text: str) -> tuple[_Found, bool]:
    """The data source, and whether the text wants it downloaded (which this machine cannot do)."""
    lex = _lexicon()
    download = _hits(text, _table(lex["download_words"]))
    if download:
        spans = [text[h.start : h.end] for h in download]
        return _keyword("download", [f"'{s}': data from the internet" for s in spans], 0.4), True
    return _lookup(text, "data_source"), False


def _slug(name: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")
    if slug and slug[0].isdigit():
        slug = f"p_{slug}"
    while len(slug) > 48 and "_" in slug:
        slug = slug.rsplit("_", 1)[0]
    return slug


def _zh_slug_words(problems: Sequence[str]) -> list[str]:
    """Chinese words translated by the lexicon, and any English words, in text order."""
    lex = _lexicon()
    stop = set(lex["slug_stopwords"])
    words = []
    for clause in problems:
        tokens = [(h.start, h.value) for h in _hits(clause, lex["slug_words"])]
        tokens += [(t.start(), t.group(0).lower()) for t in re.finditer(r"[A-Za-z][A-Za-z0-9]+", clause)]
        words += [w for _, w in sorted(tokens) if w not in stop and w not in lex["slug_verbs"]]
    return words


def _en_slug_words(text: str) -> list[str]:
    lex = _lexicon()
    stop, preps = set(lex["slug_stopwords"]), set(lex["slug_prepositions"])
    words: list[str] = []
    for token in re.findall(r"[a-z][a-z0-9]*", text.lower()):
        if token in preps and words:
            break
        if token not in stop and token not in preps and token not in lex["slug_verbs"]:
            words.append(token)
    return words


def _project_name(text: str, problems: Sequence[str], family: Family | None) -> _Found:
    m = _NAME.search(text)
    if m and _slug(m.group("name")):
        return _explicit(_slug(m.group("name")), [m.group(0)], EXACT)
    lex = _lexicon()
    verbs = lex["slug_verbs"]
    verb_hits = [(i, h) for i, clause in enumerate(problems) for h in _hits(clause, verbs)]
    suffix = verb_hits[0][1].value if verb_hits else None
    if any(_CJK.search(c) for c in problems):
        words = _zh_slug_words(problems)
    else:  # the words after the first verb, up to a preposition; without a verb, from the start
        at, start = (verb_hits[0][0], verb_hits[0][1].end) if verb_hits else (0, 0)
        words = _en_slug_words(problems[at][start:]) or _en_slug_words(problems[at])
    if suffix is None:
        suffix = lex["suffix_by_task"].get(family.task, "project") if family else "project"
    unique = list(dict.fromkeys(words))[:3]
    if not unique:
        if family is None:
            return _default("project_name")
        unique = [family.name]
    slug = _slug("_".join([*unique, suffix] if unique[-1] != suffix else unique))
    return _keyword(slug, [f"from the words {', '.join(unique)} and the suffix {suffix}"], 0.75)


def _is_constraint_clause(clause: str) -> bool:
    """True for a clause that states only a constraint, SLA or compatibility, not a problem."""
    lex = _lexicon()
    patterns = [_LATENCY, *_THROUGHPUT, *_MEMORY, *(re.compile(p, re.IGNORECASE) for p in lex["deadline"])]
    if any(p.search(clause) for p in patterns):
        return True
    tables = ("hardware", "privacy", "os", "deployment")
    return any(_hits(clause, lex[t]) for t in tables) or bool(_hits(clause, _table(lex["deploy_words"])))


def _problems(clauses: Sequence[str], label_clauses: set[str], families: Sequence[Family]) -> list[str]:
    tables = [_family_table(f) for f in families]
    problems = []
    for clause in clauses:
        if clause in label_clauses:
            continue
        task_words = any(_hits(clause, t) for t in tables)
        if task_words or not _is_constraint_clause(clause):
            problems.append(clause)
    return problems or list(clauses[:1])


def parse_requirement(text: str, families: Sequence[Family] | None = None) -> Requirements:
    """Score every item of a requirement, ask about what is uncertain, and judge feasibility."""
    if not text or not text.strip():
        raise SpecloopError(
            "the requirement is empty; pass the requirement as text or with -f requirement.md"
        )
    lex = _lexicon()
    fams = sorted(list_families() if families is None else families, key=lambda f: f.name)
    source = text.strip()
    norm = unicodedata.normalize("NFKC", source)
    clauses = _clauses(norm)

    ranked = _rank(norm, fams)
    top = ranked[0] if ranked else None
    second = ranked[1] if len(ranked) > 1 else None
    top_score = _family_score(top.points, second.points if second else 0.0) if top else 0.0
    llm = _hits(norm, _table(lex["llm_words"]))
    family_found: _Found
    if top is not None and top.points > 0:
        runner = second.family.name if second and second.points > 0 else None
        margin = round(top_score - (_family_score(second.points, top.points) if second else 0.0), 3)
        spans = [f"'{norm[h.start : h.end]}' ({h.value:g})" for h in top.hits]
        family_found = _keyword(
            {"name": top.family.name, "runner_up": runner, "margin": margin}, spans, top_score
        )
        if llm:
            family_found.score = min(top_score, DEFAULT)
            family_found.evidence.append(
                Evidence(kind="keyword", text=f"'{llm[0].term}' asks for a large language model")
            )
    else:
        family_found = _Found(None, 0.0, [Evidence(kind="default", text="no task family keyword was found")])
    family = top.family if top is not None and family_found.score > BAR else None

    labels, label_clauses = _labels(norm, clauses, family)
    metric = _metric(norm, family)
    data, download = _data_source(norm)
    deadline = _deadline(norm)
    problems = _problems(clauses, label_clauses, fams)
    if family is not None:
        modality = _Found(
            family.modality, family_found.score, [Evidence(kind="keyword", text=f"the {family.name} family")]
        )
    else:
        modality = _Found(
            None,
            family_found.score,
            [Evidence(kind="default", text="follows the task family, which is not settled")],
        )

    found: dict[str, _Found] = {"project_name": _project_name(norm, problems, family)}
    for i, problem in enumerate(problems, 1):
        found[f"problem.{i}"] = _explicit(problem, [problem])
    found |= {
        "family": family_found,
        "modality": modality,
        "labels": labels,
        "metric": metric,
        "sla.latency": _latency(norm),
        "sla.throughput": _throughput(norm),
        "sla.accuracy": _quality(norm),
        "constraint.hardware": _lookup(norm, "constraint.hardware"),
        "constraint.memory": _memory(norm),
        "constraint.privacy": _lookup(norm, "constraint.privacy"),
        "constraint.deadline": deadline,
        "compat.python": _python(norm),
        "compat.os": _lookup(norm, "compat.os"),
        "compat.deployment": _deployment(norm),
        "data_source": data,
    }
    items = [
        Item(id=f"REQ-{i:03d}", key=key, value=f.value, score=round(f.score, 3), evidence=f.evidence)
        for i, (key, f) in enumerate(found.items(), 1)
    ]

    family_reasons: list[str] = [lex["llm_reason"]] if llm else []
    data_reasons: list[str] = [lex["download_reason"]] if download else []
    if (llm or download) and deadline.evidence[0].kind == "explicit":
        late = f"the deadline '{deadline.value}' leaves no time to obtain what this machine lacks"
        (family_reasons if llm else data_reasons).append(late)
    if family is None and not llm:
        best = (
            f"best: {top.family.name} at {top_score:.2f}"
            if top and top.points > 0
            else "no family keyword found"
        )
        family_reasons.append(f"the requirement matches no task family with a score above {BAR} ({best})")
    alternatives = [
        lex[k]
        for k, on in (
            ("llm_alternative", llm),
            ("download_alternative", download),
            ("vague_alternative", True),
        )
        if on
    ]
    reasons = family_reasons + data_reasons
    feasibility = Feasibility(
        feasible=not reasons, reasons=reasons, alternative=alternatives[0] if reasons else ""
    )

    resolves = {"family": family_reasons, "data_source": data_reasons}
    questions = _questions(items, ranked, family, bool(llm), download, resolves)
    asked = {q.item for q in questions}
    follow = lex["follow_ups"]
    clarifications = [
        Clarification(
            date=None,
            kind="default",
            item=it.key,
            text=f"{it.key} = {_format_value(it.value)}: {it.evidence[0].text}",
            follow_up=follow.get(it.key, follow["default"]),
        )
        for it in items
        if it.score <= BAR and it.key not in asked
    ]
    return Requirements(
        source=source,
        family=family.name if family else None,
        items=items,
        questions=questions,
        clarifications=clarifications,
        feasibility=feasibility,
    )


# ------------------------------------------------------------------------------------------- questions


def _options(entries: Sequence[tuple[str, Any]]) -> list[Option]:
    return [Option(id="abcde"[i], text=text, value=value) for i, (text, value) in enumerate(entries[:5])]


def _family_options(ranked: Sequence[_Ranked], llm: bool) -> list[tuple[str, Any]]:
    order = list(ranked)
    if llm:  # the documented alternative first: a text model over their documents
        order.sort(key=lambda r: r.family.modality != "text")
    entries: list[tuple[str, Any]] = [
        (f"{r.family.title} ({r.family.name})", r.family.name) for r in order[:4]
    ]
    entries.append((_lexicon()["questions"]["family_none"], None))
    return entries


def _question_entries(key: str, family: Family | None, ranked: Sequence[_Ranked], llm: bool, download: bool):
    """(template, option entries) for one item's question, or None when there is nothing to offer."""
    qs = _lexicon()["questions"]
    if key == "family":
        return qs["family_llm" if llm else "family"], _family_options(ranked, llm)
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
        names = list(dict.fromkeys([family.metric, *_lexicon()["metrics_by_task"].get(family.task, [])]))
        return (qs["metric"], [(n, n) for n in names]) if len(names) >= 2 else None
    template = qs["data_source_download" if key == "data_source" and download else key]
    return template, [(o["text"], o["value"]) for o in qs[key]["options"]]


def _questions(
    items: Sequence[Item],
    ranked: Sequence[_Ranked],
    family: Family | None,
    llm: bool,
    download: bool,
    resolves: Mapping[str, list[str]],
) -> list[Question]:
    by_key = {it.key: it for it in items}
    questions: list[Question] = []
    for key in _lexicon()["question_order"]:
        item = by_key[key]
        if item.score > BAR or len(questions) == MAX_QUESTIONS:
            continue
        built = _question_entries(key, family, ranked, llm, download)
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


# --------------------------------------------------------------------------------------------- answers


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
    follow = _lexicon()["follow_ups"]["default"]
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
                    text=f"{key} = {_format_value(value)}",
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


# ------------------------------------------------------------------------------------------- markdown

_BLOCK_OPEN = "```yaml requirements"


def _format_value(value: Any) -> str:
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
        out.append(
            f"| {it.id} | {it.key} | {_cell(_format_value(it.value))} | {it.score:.2f} | {_cell(ev)} |"
        )
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
        out += [f"- {c.item}: {c.text}. Follow-up: {c.follow_up}" for c in defaults]
        out.append("")
    if not req.clarifications:
        out += ["None yet.", ""]
    f = req.feasibility
    out += ["## Feasibility", "", f"Feasible: {'yes' if f.feasible else 'no'}", ""]
    out += [f"- {r}" for r in f.reasons]
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
