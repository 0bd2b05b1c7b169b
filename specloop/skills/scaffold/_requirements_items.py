"""What a requirement's text says, item by item: the lexicon, its matcher and one extractor per item.

Each extractor returns a `Found` (value, score, evidence); `extract` runs them all in the order the
items appear in requirements.md. No extractor asks questions or judges feasibility: that is
`requirements.py`'s job.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

import yaml

from specloop.families import Family
from specloop.skills.scaffold.codegen import MAX_PROJECT_NAME
from specloop.skills.scaffold.requirements_schema import BAR, DEFAULT, EXACT, EXPLICIT, Evidence


@cache
def lexicon() -> dict[str, Any]:
    text = resources.files(__package__).joinpath("requirements_lexicon.yaml").read_text(encoding="utf-8")
    return yaml.safe_load(text)


@dataclass(frozen=True)
class _Hit:
    start: int
    end: int
    term: str
    value: Any


@cache
def _term_pattern(term: str) -> re.Pattern[str]:
    """ASCII terms match whole words, plurals too (case-insensitively unless written in capitals); other
    terms (Chinese) match as substrings."""
    if not term.isascii():
        return re.compile(re.escape(term), re.IGNORECASE)
    flags = 0 if term.isupper() else re.IGNORECASE
    plural = "(?:s|es)?" if term[-1].isalpha() else ""  # "image" matches "images", "price" "prices"
    return re.compile(r"(?<![A-Za-z0-9])" + re.escape(term) + plural + r"(?![A-Za-z0-9])", flags)


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
    rf"(?<![a-z])(?:into|between|as|of|classes|labels|categories)\s*[:=]?\s*"
    rf"({_EN_WORD}(?:\s*,\s*{_EN_WORD})*\s*,?\s*(?:and|or|/)\s*{_EN_WORD})",
    re.IGNORECASE,
)
_EN_NAMED_LIST = re.compile(
    rf"(?<![a-z])(?:classes|labels|categories)\s*[:=]\s*({_EN_WORD}(?:\s*(?:,|/|\band\b|\bor\b)\s*{_EN_WORD})+)",
    re.IGNORECASE,
)
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
class Found:
    """One item before it is numbered."""

    value: Any
    score: float
    evidence: list[Evidence]


def _explicit(value: Any, spans: Sequence[str], score: float = EXPLICIT) -> Found:
    return Found(value, score, [Evidence(kind="explicit", text=s) for s in spans])


def _keyword(value: Any, spans: Sequence[str], score: float) -> Found:
    return Found(value, score, [Evidence(kind="keyword", text=s) for s in spans])


def _default(key: str, value: Any = None, why: str | None = None) -> Found:
    entry = lexicon()["defaults"][key]
    return Found(
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
class Ranked:
    family: Family
    points: float
    hits: tuple[_Hit, ...]


def _family_table(family: Family) -> dict[str, float]:
    lex = lexicon()
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


def _rank(text: str, families: Sequence[Family]) -> list[Ranked]:
    ranked = []
    for fam in families:
        hits = tuple(_hits(text, _family_table(fam)))
        points = sum({h.term: h.value for h in hits}.values())
        ranked.append(Ranked(fam, points, hits))
    return sorted(ranked, key=lambda r: (-r.points, r.family.name))


def family_score(points: float, other: float) -> float:
    """strength (1 - base**points) times sqrt of the share against the other family's points."""
    if points <= 0:
        return 0.0
    strength = 1.0 - lexicon()["family_score_base"] ** points
    return round(strength * math.sqrt(points / (points + other)), 3)


def _labels(text: str, clauses: Sequence[str], family: Family | None) -> tuple[Found, set[str]]:
    """The classes, and the clauses that only list them (they are not problem statements)."""
    m = _ZH_LIST_INLINE.search(text)
    if m:
        return _explicit(_ZH_SPLIT.split(m.group(1)), [m.group(0)], EXACT), set()
    data_words = _table([t for terms in lexicon()["modality"].values() for t in terms])
    for clause in clauses:  # a clause that is only a list ("正面和负面"), unless it lists kinds of data
        m = _ZH_LIST.match(clause)
        if m and _CJK.search(clause) and not _hits(clause, data_words):
            return _explicit(_ZH_SPLIT.split(m.group(1)), [clause], EXACT), {clause}
    m = _EN_NAMED_LIST.search(text)
    if m:
        return _explicit([w for w in _EN_SPLIT.split(m.group(1)) if w], [m.group(0)], EXACT), set()
    cues = _table([*lexicon()["task"]["classification"], "class", "classes", "label", "labels", "categories"])
    for (
        clause
    ) in clauses:  # English lists count only next to a classifying word: not "split into train and test"
        m = _EN_LIST.search(clause) if _hits(clause, cues) else None
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
        return Found(
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


def _metric(text: str, family: Family | None) -> Found:
    hits = _hits(text, lexicon()["metric"])
    if hits:
        return _explicit(hits[0].value[0], [text[hits[0].start : hits[0].end]])
    if family is not None:
        why = f"no metric was stated; the {family.name} family reports {family.metric}"
        return _default("metric", family.metric, why)
    return _default("metric")


@cache
def _quality_patterns() -> tuple[re.Pattern[str], ...]:
    terms = "|".join(re.escape(t) for t in sorted(lexicon()["metric"], key=lambda t: (-len(t), t)))
    return (
        re.compile(rf"(?<![a-z])(?P<metric>{terms})(?![a-z])[^\d%]{{0,20}}?(?P<num>\d+(?:\.\d+)?)\s*%", re.I),
        re.compile(
            rf"(?P<num>\d+(?:\.\d+)?)\s*%\s*(?:以上|or better|or more)?\s*的?\s*(?P<metric>{terms})(?![a-z])",
            re.I,
        ),
    )


def _quality(text: str) -> Found:
    """An explicit quality target on a metric ("accuracy 95%", "准确率达到95%以上", "FAR below 1%")."""
    table = lexicon()["metric"]
    for pattern in _quality_patterns():
        m = pattern.search(text)
        if m:
            metric, direction = table[m.group("metric").lower()]
            target = {
                "metric": metric,
                "op": ">=" if direction == "max" else "<=",
                "value": float(m.group("num")) / 100,
            }
            return _explicit(target, [m.group(0).strip()], EXACT)
    return _default("sla.accuracy")


def _latency(text: str) -> Found:
    for m in _LATENCY.finditer(text):
        unit = m.group("unit").lower()
        if unit == "秒" and text[max(0, m.start("unit") - 1) : m.start("unit")] == "每":
            continue
        ms = float(m.group("num")) * (
            1.0 if unit in ("ms", "msec", "毫秒") or unit.startswith("milli") else 1000.0
        )
        return _explicit({"max_ms": ms}, [m.group(0).strip()], EXACT)
    return _default("sla.latency")


def _throughput(text: str) -> Found:
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


def _memory(text: str) -> Found:
    for pattern in _MEMORY:
        m = pattern.search(text)
        if m:
            scale = 1024.0 if m.group("unit").lower().startswith("g") else 1.0
            return _explicit({"max_mb": float(m.group("num")) * scale}, [m.group(0).strip()], EXACT)
    return _default("constraint.memory")


def _lookup(text: str, key: str, table_name: str | None = None) -> Found:
    hits = _hits(text, lexicon()[table_name or key.split(".")[-1]])
    if hits:
        return _explicit(hits[0].value, [text[h.start : h.end] for h in hits])
    return _default(key)


def _deadline(text: str) -> Found:
    for pattern in lexicon()["deadline"]:
        m = re.search(pattern, text, re.IGNORECASE)
        if m:
            return _explicit(m.group(0), [m.group(0)])
    return _default("constraint.deadline")


def _python(text: str) -> Found:
    m = re.search(lexicon()["python"], text, re.IGNORECASE)
    return _explicit(m.group(1), [m.group(0)]) if m else _default("compat.python")


def _deployment(text: str) -> Found:
    found = _lookup(text, "compat.deployment", "deployment")
    if found.evidence[0].kind == "explicit":
        return found
    words = _hits(text, _table(lexicon()["deploy_words"]))
    if words:
        why = f"'{text[words[0].start : words[0].end]}' says it is deployed but not where"
        return _keyword(lexicon()["defaults"]["compat.deployment"]["value"], [why], 0.55)
    return found


def _data_source(text: str) -> tuple[Found, bool]:
    """The data source, and whether the text wants it downloaded (which this machine cannot do)."""
    lex = lexicon()
    download = _hits(text, _table(lex["download_words"]))
    if download:
        spans = [text[h.start : h.end] for h in download]
        return _keyword("download", [f"'{s}': data from the internet" for s in spans], 0.4), True
    return _lookup(text, "data_source"), False


def _slug(name: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")
    if slug and slug[0].isdigit():
        slug = f"p_{slug}"
    while len(slug) > MAX_PROJECT_NAME and "_" in slug:
        slug = slug.rsplit("_", 1)[0]
    return slug[:MAX_PROJECT_NAME].rstrip("_")


def _zh_slug_words(problems: Sequence[str]) -> list[str]:
    """Chinese words translated by the lexicon, and any English words, in text order."""
    lex = lexicon()
    stop = set(lex["slug_stopwords"])
    words = []
    for clause in problems:
        tokens = [(h.start, h.value) for h in _hits(clause, lex["slug_words"])]
        tokens += [(t.start(), t.group(0).lower()) for t in re.finditer(r"[A-Za-z][A-Za-z0-9]+", clause)]
        words += [w for _, w in sorted(tokens) if w not in stop and w not in lex["slug_verbs"]]
    return words


def _en_slug_words(text: str) -> list[str]:
    lex = lexicon()
    stop, preps = set(lex["slug_stopwords"]), set(lex["slug_prepositions"])
    words: list[str] = []
    for token in re.findall(r"[a-z][a-z0-9]*", text.lower()):
        if token in preps and words:
            break
        if token not in stop and token not in preps and token not in lex["slug_verbs"]:
            words.append(token)
    return words


def _project_name(text: str, problems: Sequence[str], family: Family | None) -> Found:
    m = _NAME.search(text)
    if m and _slug(m.group("name")):
        return _explicit(_slug(m.group("name")), [m.group(0)], EXACT)
    lex = lexicon()
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
    while True:  # drop trailing words until the name fits codegen's limit; the suffix stays
        slug = _slug("_".join([*unique, suffix] if unique[-1] != suffix else unique))
        joined = len("_".join([*unique, suffix]))
        if joined <= MAX_PROJECT_NAME or len(unique) == 1:
            break
        unique = unique[:-1]
    return _keyword(slug, [f"from the words {', '.join(unique)} and the suffix {suffix}"], 0.75)


def _constraint_spans(clause: str) -> list[tuple[int, int]]:
    """Where a clause states a constraint, SLA, compatibility, metric or data source."""
    lex = lexicon()
    patterns = [_LATENCY, *_THROUGHPUT, *_MEMORY, *_quality_patterns()]
    patterns += [re.compile(p, re.IGNORECASE) for p in lex["deadline"]]
    spans = [m.span() for p in patterns for m in p.finditer(clause) if m.group(0).strip()]
    tables = [lex[t] for t in ("hardware", "privacy", "os", "deployment", "data_source", "metric")]
    tables.append(_table(lex["deploy_words"]))
    return spans + [(h.start, h.end) for t in tables for h in _hits(clause, t)]


def _problems(clauses: Sequence[str], label_clauses: set[str], families: Sequence[Family]) -> list[str]:
    """The clauses that state a problem: those that are not only a constraint, a list of classes or
    a data source. A clause with a constraint is still a problem when a family keyword or a request for
    a language model sits outside the constraint."""
    tables = [_family_table(f) for f in families]
    tables.append(_table(lexicon()["llm_words"], 1.0))
    problems = []
    for clause in clauses:
        if clause in label_clauses:
            continue
        spans = _constraint_spans(clause)
        content = [h for t in tables for h in _hits(clause, t) if h.value >= 1.0]
        if not spans or any(all(h.end <= s or e <= h.start for s, e in spans) for h in content):
            problems.append(clause)
    return problems or list(clauses[:1])


@dataclass
class Extraction:
    """Every item the text yields, in requirements.md's order, and what feasibility needs to know."""

    found: dict[str, Found]
    ranked: list[Ranked]
    family: Family | None  # the matched family, when it scores above the bar
    llm: bool  # the text asks for a large language model
    download: bool  # the text wants data or weights from the internet


def _family_found(norm: str, ranked: Sequence[Ranked], llm: list[_Hit]) -> Found:
    top = ranked[0] if ranked else None
    if top is None or top.points <= 0:
        return Found(None, 0.0, [Evidence(kind="default", text="no task family keyword was found")])
    second = ranked[1] if len(ranked) > 1 else None
    score = family_score(top.points, second.points if second else 0.0)
    runner = second.family.name if second and second.points > 0 else None
    margin = round(score - (family_score(second.points, top.points) if second else 0.0), 3)
    spans = [f"'{norm[h.start : h.end]}' ({h.value:g})" for h in top.hits]
    found = _keyword({"name": top.family.name, "runner_up": runner, "margin": margin}, spans, score)
    if llm:  # no family is a large language model, however well the rest of the text matches
        found.score = min(score, DEFAULT)
        found.evidence.append(
            Evidence(kind="keyword", text=f"'{llm[0].term}' asks for a large language model")
        )
    return found


def extract(norm: str, families: Sequence[Family]) -> Extraction:
    """All items of an NFKC-normalised requirement, matched against `families`."""
    clauses = _clauses(norm)
    ranked = _rank(norm, families)
    llm = _hits(norm, _table(lexicon()["llm_words"]))
    family_found = _family_found(norm, ranked, llm)
    family = ranked[0].family if family_found.score > BAR else None
    labels, label_clauses = _labels(norm, clauses, family)
    data, download = _data_source(norm)
    problems = _problems(clauses, label_clauses, families)
    why = f"the {family.name} family" if family else "follows the task family, which is not settled"
    modality = Found(
        family.modality if family else None,
        family_found.score,
        [Evidence(kind="keyword" if family else "default", text=why)],
    )
    found: dict[str, Found] = {"project_name": _project_name(norm, problems, family)}
    for i, problem in enumerate(problems, 1):
        found[f"problem.{i}"] = _explicit(problem, [problem])
    found |= {
        "family": family_found,
        "modality": modality,
        "labels": labels,
        "metric": _metric(norm, family),
        "sla.latency": _latency(norm),
        "sla.throughput": _throughput(norm),
        "sla.accuracy": _quality(norm),
        "constraint.hardware": _lookup(norm, "constraint.hardware"),
        "constraint.memory": _memory(norm),
        "constraint.privacy": _lookup(norm, "constraint.privacy"),
        "constraint.deadline": _deadline(norm),
        "compat.python": _python(norm),
        "compat.os": _lookup(norm, "compat.os"),
        "compat.deployment": _deployment(norm),
        "data_source": data,
    }
    return Extraction(found, ranked, family, bool(llm), download)
