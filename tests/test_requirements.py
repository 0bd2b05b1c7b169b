"""The create flow's requirements analysis (A1): items, scores, questions, answers, requirements.md."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest

from specloop.errors import SpecloopError
from specloop.families import Candidate, DatasetRef, Family, list_families
from specloop.skills.scaffold.requirements import (
    BAR,
    MAX_QUESTIONS,
    Requirements,
    apply_answers,
    assume_recommended,
    done_when,
    load_answers,
    parse_requirement,
    read_requirements_md,
    render_requirements_md,
)

TODAY = dt.date(2026, 12, 1)
DIGITS = [str(d) for d in range(10)]


def _family(name: str, modality: str, task: str, en: tuple, zh: tuple, metric: str, labels=()) -> Family:
    data = DatasetRef(
        name="mini", source="generated", size="tiny", licence="none", how_to_obtain="built", offline=True
    )
    cand = Candidate(
        name="m", title="M", description="d", requirements=(), model={}, pros=(), cons=(), constraints="cpu"
    )
    return Family(
        name=name,
        title=name.replace("_", " ").title(),
        modality=modality,
        task=task,
        keywords={"en": en, "zh": zh},
        metric=metric,
        candidates=(cand, cand),
        mini_dataset=data,
        full_dataset=data,
        template=name,
        labels=tuple(labels),
    )


@pytest.fixture(scope="module")
def families() -> list[Family]:
    """Five small families of the kinds the create flow ships, with deliberately short lexicons."""
    return [
        _family(
            "image_classification",
            "image",
            "classification",
            ("image", "digit"),
            ("图像",),
            "accuracy",
            DIGITS,
        ),
        _family(
            "tabular", "tabular", "classification", ("tabular", "churn"), ("表格",), "accuracy", ("no", "yes")
        ),
        _family("timeseries", "timeseries", "forecasting", ("forecast", "time series"), ("时序",), "mae"),
        _family("text_classification", "text", "classification", ("text",), ("文本",), "f1", ("neg", "pos")),
        _family(
            "aoi_change_detection", "aoi", "change_detection", ("aoi", "pcb"), ("焊点",), "far", ("ok", "ng")
        ),
    ]


DIGITS_ZH = "帮我做一个手写数字识别的小模型，能在笔记本CPU上跑就行。"
CHURN = "Predict customer churn from our CRM CSV export; must answer within 100 ms"
TEXT_EN = "Classify product reviews as positive or negative sentiment"
TEXT_ZH = "对电商评论做情感分类，正面和负面"
FORECAST = "forecast hourly sensor readings for the next 24 hours"
AOI = "PCB AOI false alarms are too high; classify solder defects vs golden images"
LLM = "Fine-tune a ChatGPT-like model on our company docs and deploy it by Friday"
VAGUE = "做一个AI系统，提高我们工厂的效率"

# text -> family, and items whose value and evidence kind the text settles
FEASIBLE = {
    DIGITS_ZH: ("image_classification", {"labels": DIGITS, "constraint.hardware": "laptop_cpu"}),
    CHURN: ("tabular", {"sla.latency": {"max_ms": 100.0}, "data_source": "csv"}),
    TEXT_EN: ("text_classification", {"labels": ["positive", "negative"]}),
    TEXT_ZH: ("text_classification", {"labels": ["正面", "负面"]}),
    FORECAST: ("timeseries", {"labels": None}),
    AOI: ("aoi_change_detection", {"metric": "far"}),
}
INFEASIBLE = [LLM, VAGUE]
ALL = [*FEASIBLE, *INFEASIBLE]


@pytest.fixture(scope="module")
def parsed(families: list[Family]) -> dict[str, Requirements]:
    return {text: parse_requirement(text, families) for text in ALL}


@pytest.mark.parametrize("text", list(FEASIBLE))
def test_feasible_requirements_find_their_family_and_items(
    text: str, parsed: dict[str, Requirements]
) -> None:
    req = parsed[text]
    family, expected = FEASIBLE[text]
    assert req.feasibility.feasible, req.feasibility.reasons
    assert req.family == family
    fam = req.item("family")
    assert fam.value["name"] == family and fam.score > BAR
    assert req.item("modality").score > BAR
    for key, value in expected.items():
        assert req.item(key).value == value, key
        assert req.item(key).score > BAR, key


@pytest.mark.parametrize("text", ALL)
def test_slug_is_english_snake_case(text: str, parsed: dict[str, Requirements]) -> None:
    slug = parsed[text].item("project_name").value
    assert re.fullmatch(r"[a-z][a-z0-9_]*", slug), slug


def test_chinese_digits_request(parsed: dict[str, Requirements]) -> None:
    req = parsed[DIGITS_ZH]
    assert req.item("project_name").value == "handwritten_digit_recognizer"
    hardware = req.item("constraint.hardware")
    assert [e.kind for e in hardware.evidence] == ["explicit"] and hardware.evidence[0].text == "笔记本CPU"
    assert req.item("problem.1").value == "帮我做一个手写数字识别的小模型"
    assert all(q.item != "constraint.hardware" for q in req.questions)


def test_problems_are_stated_one_by_one(parsed: dict[str, Requirements]) -> None:
    problems = [it.value for it in parsed[AOI].items if it.key.startswith("problem.")]
    assert problems == ["PCB AOI false alarms are too high", "classify solder defects vs golden images"]
    churn = [it.value for it in parsed[CHURN].items if it.key.startswith("problem.")]
    assert churn == ["Predict customer churn from our CRM CSV export"]  # the SLA clause is not a problem


def test_constraint_clauses_are_not_problems(families: list[Family]) -> None:
    req = parse_requirement("识别PCB焊点缺陷，误报率要低于1%，数据不能出厂，我们还没有数据", families)
    assert [it.value for it in req.items if it.key.startswith("problem.")] == ["识别PCB焊点缺陷"]
    assert req.item("sla.accuracy").value == {"metric": "far", "op": "<=", "value": 0.01}
    assert req.item("data_source").value == "mini"


def test_family_reports_runner_up_and_margin(parsed: dict[str, Requirements]) -> None:
    value = parsed[DIGITS_ZH].item("family").value
    assert value["runner_up"] is not None and 0 < value["margin"] <= 1


@pytest.mark.parametrize("text", ALL)
def test_questions_follow_the_protocol(text: str, parsed: dict[str, Requirements]) -> None:
    req = parsed[text]
    assert len(req.questions) <= MAX_QUESTIONS
    assert [q.impact_rank for q in req.questions] == list(range(1, len(req.questions) + 1))
    for q in req.questions:
        item = req.item(q.item)
        assert item.score <= BAR and q.score <= BAR
        assert all(e.kind != "explicit" for e in item.evidence), f"{q.id} asks what the text answers"
        assert 2 <= len(q.options) <= 5 and q.recommended == q.options[0].id
        assert [o.id for o in q.options] == list("abcde"[: len(q.options)])
        assert q.follow_up
    low = {it.key for it in req.items if it.score <= BAR}
    defaulted = {c.item for c in req.clarifications if c.kind == "default" and c.follow_up}
    assert low <= defaulted | {q.item for q in req.questions}


@pytest.mark.parametrize("text", INFEASIBLE)
def test_infeasible_or_vague_requirements_stop_with_questions(
    text: str, parsed: dict[str, Requirements]
) -> None:
    req = parsed[text]
    assert not req.feasibility.feasible and req.feasibility.reasons and req.feasibility.alternative
    assert req.family is None
    assert 1 <= len(req.questions) <= MAX_QUESTIONS and req.questions[0].item == "family"
    assert req.questions[0].resolves
    assert done_when(req)
    after_yes = assume_recommended(req, today=TODAY)
    assert not after_yes.feasibility.feasible and done_when(after_yes)
    assert after_yes.questions[0].answer is None  # an assumption never picks a feasible project for a person


def test_llm_request_offers_the_text_alternative(parsed: dict[str, Requirements]) -> None:
    req = parsed[LLM]
    reasons = " ".join(req.feasibility.reasons)
    assert "large language model" in reasons and "by Friday" in reasons
    assert "text-classification" in req.feasibility.alternative
    q1 = req.questions[0]
    assert q1.options[0].value == "text_classification"
    assert q1.options[-1].value is None  # keep the original goal: stays infeasible


def test_answering_the_alternative_makes_it_feasible(parsed: dict[str, Requirements], families) -> None:
    req = apply_answers(parsed[LLM], {"Q1": "a"}, source="answers.yaml", today=TODAY, families=families)
    assert req.feasibility.feasible and req.family == "text_classification"
    assert req.item("family").score == 1.0 and req.item("family").evidence[0].kind == "answer"
    assert req.item("modality").value == "text"
    assert req.item("metric").value == "f1"
    assert req.item("project_name").value == "chatgpt_classifier"  # no longer "…_project"
    assert done_when(assume_recommended(req, today=TODAY)) == []
    kept = apply_answers(parsed[LLM], {"Q1": req.questions[0].options[-1].id}, source="a.yaml", today=TODAY)
    assert not kept.feasibility.feasible and done_when(kept)


def test_answer_naming_an_unregistered_family_is_one_sentence(parsed: dict[str, Requirements]) -> None:
    with pytest.raises(SpecloopError, match=r"^answers.yaml: question Q1 option a names the task family"):
        apply_answers(parsed[VAGUE], {"Q1": "a"}, source="answers.yaml", today=TODAY, families=[])


def test_vague_request_answered_by_family(parsed: dict[str, Requirements], families) -> None:
    q1 = parsed[VAGUE].questions[0]
    option = next(o for o in q1.options if o.value == "timeseries")
    req = apply_answers(
        parsed[VAGUE], {"Q1": option.id}, source="answers.yaml", today=TODAY, families=families
    )
    assert req.feasibility.feasible and req.family == "timeseries"
    assert done_when(assume_recommended(req, today=TODAY)) == []


@pytest.mark.parametrize("text", list(FEASIBLE))
def test_assume_recommended_satisfies_done_when(text: str, parsed: dict[str, Requirements]) -> None:
    req = parsed[text]
    assert done_when(req) == [] or req.questions
    assumed = assume_recommended(req, today=TODAY)
    assert done_when(assumed) == []
    for q in assumed.questions:
        assert q.answer == q.recommended and q.score > BAR
        item = assumed.item(q.item)
        assert item.evidence[0].kind == "assumption" and BAR < item.score < 1.0
    dated = [c for c in assumed.clarifications if c.date == TODAY]
    assert {c.question for c in dated} == {q.id for q in assumed.questions}
    assert parsed[text].questions == req.questions  # the input is not modified


def test_apply_answers_writes_dated_clarifications(parsed: dict[str, Requirements]) -> None:
    req = parsed[DIGITS_ZH]
    q = req.questions[0]
    answered = apply_answers(req, {q.id: "b"}, source="answers.yaml", today=TODAY)
    item = answered.item(q.item)
    assert item.score == 1.0 and item.evidence[0].kind == "answer"
    assert item.value == q.options[1].value
    clar = answered.clarifications[-1]
    assert (clar.date, clar.kind, clar.question, clar.item) == (TODAY, "answer", q.id, q.item)
    assert "answers.yaml" in clar.follow_up


@pytest.mark.parametrize(
    ("answers", "fragment"),
    [
        ({"Q9": "a"}, "question 'Q9' does not exist; valid question ids: Q1"),
        ({"Q1": "z"}, "valid choices: a, b"),
    ],
)
def test_apply_answers_rejects_bad_ids(parsed: dict[str, Requirements], answers, fragment: str) -> None:
    with pytest.raises(SpecloopError) as err:
        apply_answers(parsed[DIGITS_ZH], answers, source="my/answers.yaml", today=TODAY)
    message = str(err.value)
    assert message.startswith("my/answers.yaml: ") and fragment in message
    assert "\n" not in message and message.count(". ") == 0


SLA_CASES = [
    ("must answer in < 50 ms", "sla.latency", {"max_ms": 50.0}),
    ("响应时间100毫秒以内", "sla.latency", {"max_ms": 100.0}),
    ("reply within 2 s", "sla.latency", {"max_ms": 2000.0}),
    ("2秒内返回结果", "sla.latency", {"max_ms": 2000.0}),
    ("handle 20 QPS", "sla.throughput", {"min_per_s": 20.0, "unit": "requests"}),
    ("每秒100张图片", "sla.throughput", {"min_per_s": 100.0, "unit": "images"}),
    ("30 images per second", "sla.throughput", {"min_per_s": 30.0, "unit": "images"}),
    ("accuracy of at least 95%", "sla.accuracy", {"metric": "accuracy", "op": ">=", "value": 0.95}),
    ("准确率达到95%以上", "sla.accuracy", {"metric": "accuracy", "op": ">=", "value": 0.95}),
    ("false alarm rate below 1%", "sla.accuracy", {"metric": "far", "op": "<=", "value": 0.01}),
    ("at most 2 GB of RAM", "constraint.memory", {"max_mb": 2048.0}),
    ("内存不超过512MB", "constraint.memory", {"max_mb": 512.0}),
    ("data must stay on-prem", "constraint.privacy", "on_prem"),
    ("数据不能出厂", "constraint.privacy", "on_prem"),
    ("ship it by Friday", "constraint.deadline", "by Friday"),
    ("下周要用", "constraint.deadline", "下周"),
    ("预测下周的销量", "constraint.deadline", None),
    ("Python 3.10 on Windows in Docker", "compat.python", "3.10"),
    ("Python 3.10 on Windows in Docker", "compat.os", "windows"),
    ("Python 3.10 on Windows in Docker", "compat.deployment", "docker"),
    ("runs on a Jetson", "constraint.hardware", "jetson"),
    ("must run on a laptop CPU", "constraint.hardware", "laptop_cpu"),
    ("runs on a Jetson", "compat.deployment", "edge"),
    ("train it on a GPU", "constraint.hardware", "gpu"),
    ("we have no data yet", "data_source", "mini"),
    ("images in a folder", "data_source", "folder"),
    ("report the macro F1", "metric", "f1"),
    ("judge it by MAE", "metric", "mae"),
    ("正面/负面", "labels", ["正面", "负面"]),
    ("我有图片和表格", "labels", None),
    ("sort photos of cats and dogs", "labels", None),
    ("classify photos of cats and dogs", "labels", ["cats", "dogs"]),
    ("recognize digits 0-9", "labels", DIGITS),
    ("split the data into train and test", "labels", None),
    ("as fast as possible and cheap", "labels", None),
    ("labels: ok, scratch, dent", "labels", ["ok", "scratch", "dent"]),
    ("图片分为猫、狗和鸟", "labels", ["猫", "狗", "鸟"]),
]


@pytest.mark.parametrize(("text", "key", "expected"), SLA_CASES)
def test_units_and_constraints_are_parsed(text: str, key: str, expected, families: list[Family]) -> None:
    item = parse_requirement(f"classify images; {text}", families).item(key)
    if expected is None:
        assert item.evidence[0].kind != "explicit"
    else:
        assert item.value == expected
        assert item.score > BAR and item.evidence[0].kind == "explicit"


def test_seconds_per_item_is_throughput_not_latency(families: list[Family]) -> None:
    req = parse_requirement("图像分类，每秒100张", families)
    assert req.item("sla.latency").evidence[0].kind == "default"
    assert req.item("sla.throughput").value == {"min_per_s": 100.0, "unit": "images"}


def test_download_is_infeasible_until_local_data_is_named(families: list[Family]) -> None:
    req = parse_requirement("classify images downloaded from the internet", families)
    assert not req.feasibility.feasible
    q = next(q for q in req.questions if q.item == "data_source")
    assert q.resolves and "cannot download" in q.text
    answered = apply_answers(req, {q.id: "b"}, source="answers.yaml", today=TODAY, families=families)
    assert answered.feasibility.feasible and answered.item("data_source").value == "folder"


def test_no_registered_family_is_infeasible_not_a_crash() -> None:
    req = parse_requirement(CHURN, [])
    assert not req.feasibility.feasible and req.family is None and done_when(req)
    assert all(q.item != "family" for q in req.questions)


@pytest.mark.parametrize("text", ["", "   \n\t "])
def test_empty_requirement_is_one_sentence(text: str) -> None:
    with pytest.raises(SpecloopError, match=r"^the requirement is empty; "):
        parse_requirement(text, [])


@pytest.mark.parametrize("text", ALL)
def test_markdown_round_trip(text: str, parsed: dict[str, Requirements], families, tmp_path: Path) -> None:
    first = {parsed[text].questions[0].id: "b"} if parsed[text].questions else {}
    answered = apply_answers(parsed[text], first, source="a.yaml", today=TODAY, families=families)
    for req in (parsed[text], assume_recommended(parsed[text], today=TODAY), answered):
        path = tmp_path / "requirements.md"
        path.write_text(render_requirements_md(req), encoding="utf-8")
        assert read_requirements_md(path) == req


def test_markdown_is_for_people_and_deterministic(families: list[Family]) -> None:
    first = render_requirements_md(assume_recommended(parse_requirement(DIGITS_ZH, families), today=TODAY))
    again = render_requirements_md(assume_recommended(parse_requirement(DIGITS_ZH, families), today=TODAY))
    assert first == again
    assert first.startswith("# Requirements: handwritten_digit_recognizer\n")
    assert f"> {DIGITS_ZH}" in first and "**(recommended)**" in first and "### 2026-12-01" in first
    assert "| REQ-001 | project_name |" in first and "## Feasibility" in first
    assert first.count("```yaml requirements") == 1
    stopped = render_requirements_md(parse_requirement(VAGUE, families))
    assert "Feasible: no" in stopped and "A person must answer: Q1" in stopped


def test_markdown_keeps_a_requirement_holding_fences(families: list[Family], tmp_path: Path) -> None:
    req = parse_requirement("classify images\n```\n```yaml requirements\nof cats and dogs", families)
    path = tmp_path / "requirements.md"
    path.write_text(render_requirements_md(req), encoding="utf-8")
    assert read_requirements_md(path) == req


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ("# Requirements\n\nno block here\n", "line 3: the file ends without a ```yaml requirements block"),
        (
            "# R\n\n```yaml requirements\nschema_version: 1\n",
            "line 3: the ```yaml requirements block is never closed",
        ),
        (
            "# R\n```yaml requirements\nsource: [unclosed\n```\n",
            "line 3: the requirements block is not valid YAML",
        ),
        (
            "# R\n```yaml requirements\nschema_version: 1\nsource: x\n```\n",
            "line 3: the requirements block is invalid",
        ),
        ("# R\n```yaml requirements\n- 1\n```\n", "line 3: the requirements block needs schema_version: 1"),
    ],
)
def test_bad_requirements_md_names_file_and_line(body: str, fragment: str, tmp_path: Path) -> None:
    path = tmp_path / "requirements.md"
    path.write_text(body, encoding="utf-8")
    with pytest.raises(SpecloopError) as err:
        read_requirements_md(path)
    assert str(err.value).startswith(f"{path}, ") and fragment in str(err.value)


def test_load_answers_reads_a_mapping(tmp_path: Path) -> None:
    path = tmp_path / "answers.yaml"
    path.write_text("Q1: a\nQ2: 'c'\n", encoding="utf-8")
    assert load_answers(path) == {"Q1": "a", "Q2": "c"}


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ("- Q1\n- a\n", ", line 1: answers must be a mapping"),
        ("Q1: a\nQ2: 3\n", ", line 2: each answer must be `question id: option id`"),
        ("Q1: [a, b]\n", ", line 1: each answer must be"),
        ("Q1: a\nQ1: b\n", ", line 2: question Q1 is answered twice"),
        ("Q1: a\n  b: : c\n", "not valid YAML"),
        ("", ": answers must be a mapping"),
    ],
)
def test_load_answers_rejects_what_is_not_a_mapping_of_strings(
    body: str, fragment: str, tmp_path: Path
) -> None:
    path = tmp_path / "answers.yaml"
    path.write_text(body, encoding="utf-8")
    with pytest.raises(SpecloopError) as err:
        load_answers(path)
    assert str(err.value).startswith(str(path)) and fragment in str(err.value)


def test_load_answers_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SpecloopError, match="cannot read the answers file"):
        load_answers(tmp_path / "nope.yaml")


REAL = {
    DIGITS_ZH: "image_classification",
    CHURN: "tabular",
    TEXT_EN: "text_classification",
    TEXT_ZH: "text_classification",
    FORECAST: "timeseries",
    AOI: "aoi_change_detection",
}


@pytest.mark.skipif(len(list_families()) < 5, reason="fewer than 5 task families are registered yet")
@pytest.mark.parametrize("text", ALL)
def test_real_families(text: str) -> None:
    req = parse_requirement(text)
    assert len(req.questions) <= MAX_QUESTIONS
    if text in REAL:
        assert req.family == REAL[text] and req.feasibility.feasible
        assert done_when(assume_recommended(req, today=TODAY)) == []
    else:
        assert not req.feasibility.feasible and req.questions[0].item == "family"


@pytest.mark.parametrize("family", list_families(), ids=lambda f: f.name)
@pytest.mark.parametrize("lang", ["en", "zh"])
def test_each_registered_family_is_found_by_its_own_keywords(family: Family, lang: str) -> None:
    words = family.keywords.get(lang, ())[:3]
    if len(words) < 2:
        pytest.skip(f"{family.name} declares fewer than two {lang} keywords")
    req = parse_requirement((" " if lang == "en" else "，").join(words))
    assert req.family == family.name and req.item("family").score > BAR


def test_family_order_does_not_change_the_result(families: list[Family]) -> None:
    forward = render_requirements_md(parse_requirement(AOI, families))
    assert render_requirements_md(parse_requirement(AOI, list(reversed(families)))) == forward


def test_a_derived_project_name_fits_codegen_s_limit() -> None:
    from specloop.skills.scaffold.codegen import MAX_PROJECT_NAME

    for text in (
        "对电商评论做情感分类，正面和负面",
        "Build a model called a_really_long_project_name_that_goes_on_and_on",
    ):
        slug = parse_requirement(text).item("project_name").value
        assert 0 < len(slug) <= MAX_PROJECT_NAME and not slug.endswith("_"), slug
