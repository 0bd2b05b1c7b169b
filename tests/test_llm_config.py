"""Choosing the provider and limits: argument, environment, workspace file, user file, default."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from langchain_core.messages import HumanMessage
from test_llm_wire import isolate_env

from specloop.errors import SpecloopError
from specloop.llm import (
    LLMUnavailable,
    OfflineLLM,
    Price,
    ProviderSpec,
    get_llm,
    load_settings,
    parse_llm_spec,
)
from specloop.llm.prices import DEFAULT_PRICES, call_cost, price_for


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    isolate_env(monkeypatch, tmp_path)
    return monkeypatch


@pytest.mark.parametrize(
    ("text", "spec"),
    [
        ("offline", ProviderSpec("offline")),
        ("openai:gpt-4o-mini", ProviderSpec("openai", "gpt-4o-mini")),
        ("anthropic:claude-sonnet-4-20250514", ProviderSpec("anthropic", "claude-sonnet-4-20250514")),
        (
            "anthropic:claude-x@http://127.0.0.1:8080",
            ProviderSpec("anthropic", "claude-x", "http://127.0.0.1:8080"),
        ),
        (
            "openai-compatible:http://127.0.0.1:8000/v1:Qwen/Qwen2.5-7B-Instruct",
            ProviderSpec("openai-compatible", "Qwen/Qwen2.5-7B-Instruct", "http://127.0.0.1:8000/v1"),
        ),
        (
            "openai-compatible:http://localhost:11434/v1:llama3.1:8b",
            ProviderSpec("openai-compatible", "llama3.1:8b", "http://localhost:11434/v1"),
        ),
        ("replay:runs/c.jsonl", ProviderSpec("replay", cassette=Path("runs/c.jsonl"))),
    ],
)
def test_llm_strings_parse(text: str, spec: ProviderSpec) -> None:
    assert parse_llm_spec(text) == spec


@pytest.mark.parametrize(
    "text", ["", "openai", "openai:", "gemini:pro", "openai-compatible:gpt-4o", "offline:x"]
)
def test_bad_llm_strings_are_one_sentence_errors(text: str) -> None:
    with pytest.raises(SpecloopError, match="is not understood: use 'openai:<model>'"):
        parse_llm_spec(text)


def test_precedence_argument_env_workspace_user_default(env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    user = tmp_path / "xdg" / "specloop" / "config.toml"
    assert load_settings(workspace=ws).llm == "offline"

    user.parent.mkdir(parents=True)
    user.write_text('llm = "openai:gpt-4o"\nbudget_tokens = 500\nllm_timeout_s = 9\n', encoding="utf-8")
    settings = load_settings(workspace=ws)
    assert (settings.llm, settings.source, settings.budget_tokens, settings.timeout_s) == (
        "openai:gpt-4o",
        str(user),
        500,
        9.0,
    )

    (ws / "specloop.toml").write_text('llm = "anthropic:claude-3-5-haiku"\n', encoding="utf-8")
    settings = load_settings(workspace=ws)
    assert (settings.llm, settings.budget_tokens) == ("anthropic:claude-3-5-haiku", 500)  # merged per key

    env.setenv("SPECLOOP_LLM", "replay:c.jsonl")
    env.setenv("SPECLOOP_BUDGET_USD", "1.5")
    settings = load_settings(workspace=ws)
    assert (settings.llm, settings.source, settings.budget_usd) == ("replay:c.jsonl", "$SPECLOOP_LLM", 1.5)

    settings = load_settings("offline", workspace=ws)
    assert (settings.llm, settings.source) == ("offline", "argument")


def test_config_file_errors_name_the_file_and_key(env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    toml = ws / "specloop.toml"
    toml.write_text("llm = [broken\n", encoding="utf-8")
    with pytest.raises(SpecloopError, match=r"specloop\.toml: is not valid TOML"):
        load_settings(workspace=ws)
    toml.write_text('budget_tokens = "lots"\n', encoding="utf-8")
    with pytest.raises(
        SpecloopError, match=r"specloop\.toml: 'budget_tokens' must be a non-negative integer"
    ):
        load_settings(workspace=ws)
    toml.write_text('llm = "gpt-4o"\n', encoding="utf-8")
    with pytest.raises(SpecloopError, match="'gpt-4o' is not understood"):
        load_settings(workspace=ws)
    toml.write_text('[llm_prices."my-model"]\ninput = 1\n', encoding="utf-8")
    with pytest.raises(SpecloopError, match=r"llm_prices\.my-model needs 'input' and 'output'"):
        load_settings(workspace=ws)
    toml.write_text("", encoding="utf-8")
    env.setenv("SPECLOOP_BUDGET_TOKENS", "ten")
    with pytest.raises(SpecloopError, match=r"\$SPECLOOP_BUDGET_TOKENS must be a non-negative integer"):
        load_settings(workspace=ws)


def test_price_overrides_and_longest_prefix_match(env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "specloop.toml").write_text('[llm_prices."gpt-4o"]\ninput = 1.0\noutput = 2\n', encoding="utf-8")
    prices = load_settings(workspace=ws).prices

    assert price_for("gpt-4o-2024-08-06", prices) == Price(1.0, 2.0)
    assert price_for("gpt-4o-mini-2024-07-18", prices) == DEFAULT_PRICES["gpt-4o-mini"]
    assert price_for("gpt-4", prices) is None
    assert call_cost("claude-sonnet-4-20250514", 1_000_000, 1_000_000, prices) == pytest.approx(18.0)


def test_unknown_model_costs_nothing_and_is_noted_once(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="specloop.llm")
    assert call_cost("my-local-model-xyz", 100, 100, DEFAULT_PRICES) == 0.0
    assert call_cost("my-local-model-xyz", 100, 100, DEFAULT_PRICES) == 0.0
    notes = [r for r in caplog.records if "my-local-model-xyz" in r.getMessage()]
    assert len(notes) == 1 and "[llm_prices]" in notes[0].getMessage()


def test_offline_is_the_default_and_refuses_to_answer(env: pytest.MonkeyPatch) -> None:
    llm = get_llm()
    assert isinstance(llm, OfflineLLM) and not llm.available and llm.name == "offline"
    with pytest.raises(LLMUnavailable, match=r"agent 'planner' .* stage 'preflight'.*check LLM\.available"):
        llm.invoke([HumanMessage("hi")], agent="planner", stage="preflight")
    with pytest.raises(SpecloopError, match="recording a cassette needs a model provider"):
        get_llm("offline", record_to=Path("c.jsonl"))


def test_missing_key_says_which_variable_and_where(env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    with pytest.raises(
        SpecloopError, match=r"needs ANTHROPIC_API_KEY, which is not set in the environment or .*\.env"
    ):
        get_llm("anthropic:claude-3-5-haiku", workspace=tmp_path)
    env.setenv("OPENAI_API_KEY", "sk-test-from-environment-123456")
    llm = get_llm("openai:gpt-4o-mini", workspace=tmp_path)
    assert llm.available and llm.name == "openai:gpt-4o-mini" and llm.model == "gpt-4o-mini"
    # an OpenAI-compatible server needs no key, and never gets OPENAI_API_KEY
    local = get_llm("openai-compatible:http://127.0.0.1:9/v1:m", workspace=tmp_path)
    assert "sk-test-from-environment" not in repr(local.chat_model.openai_api_key)
    assert local.chat_model.openai_api_key.get_secret_value() == "not-needed"
