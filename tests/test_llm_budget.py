"""The per-run budget in tokens and dollars, and per agent/stage accounting."""

# ruff: noqa: F811  (pytest fixtures imported from test_llm_wire are redefined as arguments)

from __future__ import annotations

from pathlib import Path

import pytest
from langchain_core.messages import HumanMessage
from test_llm_wire import FAST_CONFIG, MODEL, PROMPT, Wire, wire, workspace  # noqa: F401

from specloop.errors import SpecloopError
from specloop.llm import Budget, BudgetExceeded, LLMCall, UsageTally, get_llm


def test_call_that_goes_over_the_token_budget_stops_after_being_recorded(wire: Wire, workspace: Path) -> None:
    calls: list[LLMCall] = []
    budget = Budget(max_tokens=100)
    llm = get_llm(wire.llm, workspace=workspace, budget=budget, recorder=calls.append)
    wire.server.push(wire.reply("first", usage=(40, 20)), wire.reply("second", usage=(40, 20)))

    llm.invoke(PROMPT, agent="planner", stage="preflight")
    with pytest.raises(BudgetExceeded) as err:
        llm.invoke(PROMPT, agent="reporter", stage="report")

    assert isinstance(err.value, SpecloopError) and err.value.exit_code == 2
    text = str(err.value)
    assert "120 of 100 tokens" in text and "agent 'reporter'" in text and "stage 'report'" in text
    assert "resume" in text and "larger budget" in text
    assert [c.total_tokens for c in calls] == [60, 60]  # the call that went over is still accounted
    assert budget.spent_tokens == 120


def test_call_estimated_over_budget_is_refused_before_it_is_sent(wire: Wire, workspace: Path) -> None:
    llm = get_llm(wire.llm, workspace=workspace, budget=Budget(max_tokens=50, spent_tokens=45))

    with pytest.raises(
        BudgetExceeded, match=r"next call by agent 'planner' at stage 'preflight'.*of 50 tokens"
    ):
        llm.invoke([HumanMessage("x" * 400)], agent="planner", stage="preflight")

    assert wire.server.requests == []


def test_dollar_budget_uses_the_price_table_from_config(wire: Wire, workspace: Path) -> None:
    (workspace / "specloop.toml").write_text(
        FAST_CONFIG + f'budget_usd = 0.015\n[llm_prices."{MODEL}"]\ninput = 100.0\noutput = 200.0\n',
        encoding="utf-8",
    )
    calls: list[LLMCall] = []
    llm = get_llm(wire.llm, workspace=workspace, recorder=calls.append)
    wire.server.push(wire.reply("ok", usage=(50, 25)), wire.reply("ok", usage=(50, 25)))

    llm.invoke(PROMPT, agent="planner", stage="preflight")
    assert calls[0].cost_usd == pytest.approx((50 * 100.0 + 25 * 200.0) / 1e6)
    with pytest.raises(BudgetExceeded, match=r"went over the LLM budget: \$0\.0200 of \$0\.0150"):
        llm.invoke(PROMPT, agent="planner", stage="preflight")


def test_budget_from_environment_overrides_the_workspace_file(
    wire: Wire, workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (workspace / "specloop.toml").write_text(FAST_CONFIG + "budget_tokens = 1000000\n", encoding="utf-8")
    monkeypatch.setenv("SPECLOOP_BUDGET_TOKENS", "10")
    llm = get_llm(wire.llm, workspace=workspace)
    wire.server.push(wire.reply("ok", usage=(8, 8)))

    with pytest.raises(BudgetExceeded, match="16 of 10 tokens"):
        llm.invoke([HumanMessage("hi")], agent="planner", stage="preflight")
    assert llm.budget.max_tokens == 10


def test_usage_tally_sums_per_agent_and_stage(wire: Wire, workspace: Path) -> None:
    tally = UsageTally()
    llm = get_llm(wire.llm, workspace=workspace, recorder=tally)
    wire.server.push(
        wire.reply("a", usage=(10, 1)), wire.reply("b", usage=(20, 2)), wire.reply("c", usage=(30, 3))
    )

    llm.invoke(PROMPT, agent="planner", stage="preflight")
    llm.invoke(PROMPT, agent="planner", stage="preflight")
    llm.invoke(PROMPT, agent="reporter", stage="report")

    assert tally.by_agent_stage[("planner", "preflight")].to_dict()["total_tokens"] == 33
    assert tally.by_agent_stage[("planner", "preflight")].calls == 2
    assert tally.by_agent_stage[("reporter", "report")].input_tokens == 30
    assert tally.total().total_tokens == 66
