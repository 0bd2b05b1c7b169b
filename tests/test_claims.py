"""Model-written text is checked number by number against the ledger before it is used."""

from __future__ import annotations

import pytest

from specloop.skills.number_check import check_text, stated_numbers, unsupported_numbers

FACTS = {
    "kpi_far": 0.23931,
    "holdout_far": 0.0214,
    "rows": 752,
    "pool_rows": 2400,
    "chosen": "latest",
    "kpi_met": False,
}


def test_names_and_list_markers_are_not_numbers() -> None:
    text = "1. iter2 on resnet18 with SOIC-8 parts at 64x64 px\n2. FAR 23.9% on 752 rows, 19.4 pp off"
    assert [n.text for n in stated_numbers(text)] == ["23.9%", "752", "19.4 pp"]


@pytest.mark.parametrize(
    "text",
    [
        "KPI FAR fell to 23.9%.",
        "KPI FAR fell to 23.93 %.",
        "KPI FAR fell to 24%.",
        "FAR as a fraction: 0.239.",
        "Holdout 2.1%, training set 752 rows.",
        "Every defect is caught at 100% recall.",
        "The mining pool holds 2,400 rows.",
    ],
)
def test_numbers_the_ledger_holds_at_the_stated_precision_pass(text: str) -> None:
    assert unsupported_numbers(text, FACTS) == []


@pytest.mark.parametrize(
    ("text", "wrong"),
    [
        ("KPI FAR fell to 12.34%.", ["12.34%"]),
        ("KPI FAR fell to 23.8%.", ["23.8%"]),
        ("FAR 23.9% on 750 rows.", ["750"]),
        ("We added 1,000 rows.", ["1,000"]),
    ],
)
def test_numbers_without_a_fact_are_named(text: str, wrong: list[str]) -> None:
    assert unsupported_numbers(text, FACTS) == wrong


def test_numbers_of_the_offline_text_count_as_facts() -> None:
    offline = "**Status.** 19.4 pp from target (20.4% vs < 1.0%)."
    assert unsupported_numbers("19.4 pp short of the 1.0% target", {}, [offline]) == []
    assert unsupported_numbers("19.5 pp short", {}, [offline]) == ["19.5 pp"]


def test_check_text_gives_every_reason() -> None:
    assert check_text("FAR 23.9%.", FACTS, max_words=5) == []
    problems = check_text("FAR " + "word " * 10 + "12%", FACTS, max_words=5)
    assert problems == ["numbers not in the ledger: 12%", "12 words, over the limit of 5"]
    assert check_text("   ", FACTS) == ["the model returned no text"]
