"""``get_llm``: build the configured provider with its keys, budget, recorders and cassette."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path

from dotenv import dotenv_values

from specloop.errors import SpecloopError
from specloop.ledger.redaction import collect_secrets, protect_logs, redact
from specloop.llm.base import LLM, Notify, OfflineLLM, Recorder, to_stderr
from specloop.llm.budget import Budget
from specloop.llm.calls import LLMCall
from specloop.llm.cassette import CassetteWriter, ReplayLLM
from specloop.llm.chat_models import ChatModelLLM, RetryPolicy, anthropic_chat_model, openai_chat_model
from specloop.llm.config import LLMSettings, load_settings, parse_llm_spec

# Which variable holds the key, and which the base URL, per provider. A key for an
# OpenAI-compatible server is deliberately not OPENAI_API_KEY: it must not go to a third party.
_KEY_VARS = {
    "openai": "OPENAI_API_KEY",
    "anthropic": "ANTHROPIC_API_KEY",
    "openai-compatible": "OPENAI_COMPATIBLE_API_KEY",
}
_URL_VARS = {"openai": "OPENAI_BASE_URL", "anthropic": "ANTHROPIC_BASE_URL"}
_NO_KEY = "not-needed"


def _lookup(name: str, env_file_values: Mapping[str, str | None]) -> str | None:
    """The environment wins over ``.env``; neither is ever exported into ``os.environ``."""
    return os.environ.get(name) or env_file_values.get(name) or None


def get_llm(
    config: str | None = None,
    *,
    workspace: Path | None = None,
    env_file: Path | None = None,
    budget: Budget | None = None,
    recorder: Callable[[LLMCall], None] | None = None,
    record_to: Path | None = None,
    settings: LLMSettings | None = None,
    notify: Notify = to_stderr,
) -> LLM:
    """The LLM named by ``config``, else ``$SPECLOOP_LLM``, else the config files, else offline.

    ``workspace`` supplies ``specloop.toml`` and ``.env`` (``env_file`` overrides the latter);
    ``budget`` defaults to one built from the settings' ``budget_tokens``/``budget_usd``;
    ``recorder`` receives every :class:`LLMCall`; ``record_to`` appends every call to a cassette.
    ``settings`` skips loading the files (``config`` still picks the provider); ``notify`` gets one
    status line per retried attempt (default: stderr).
    """
    if settings is None:
        settings = load_settings(config, workspace=workspace)
    llm_text = config if config is not None else settings.llm
    spec = parse_llm_spec(llm_text)
    if env_file is None and workspace is not None:
        env_file = Path(workspace) / ".env"
    env_file_values = dotenv_values(env_file) if env_file is not None and env_file.is_file() else {}
    secrets = collect_secrets(env_file_values, os.environ)
    protect_logs(secrets)
    if budget is None:
        budget = Budget(max_tokens=settings.budget_tokens, max_usd=settings.budget_usd)
    recorders: list[Recorder] = [recorder] if recorder is not None else []
    common = {
        "budget": budget,
        "recorders": recorders,
        "secrets": secrets,
        "prices": settings.prices,
        "cassette": CassetteWriter(record_to) if record_to is not None else None,
        "notify": notify,
    }
    if spec.kind == "offline":
        if record_to is not None:
            raise SpecloopError(
                "recording a cassette needs a model provider, but the LLM setting is 'offline'."
            )
        return OfflineLLM(**common)
    if spec.kind == "replay":
        assert spec.cassette is not None
        return ReplayLLM(spec.cassette, **common)

    key_var = _KEY_VARS[spec.kind]
    api_key = _lookup(key_var, env_file_values)
    if api_key is None and spec.kind != "openai-compatible":
        where = f"the environment or {env_file}" if env_file is not None else "the environment"
        raise SpecloopError(
            f"LLM '{llm_text}' needs {key_var}, which is not set in {where}; set it, or use SPECLOOP_LLM=offline."
        )
    if api_key:  # already covered by collect_secrets; stated so it cannot silently stop being so
        secrets = secrets | {api_key}
        common["secrets"] = secrets
        protect_logs(secrets)
    base_url = spec.base_url or (
        _lookup(_URL_VARS[spec.kind], env_file_values) if spec.kind in _URL_VARS else None
    )
    build = anthropic_chat_model if spec.kind == "anthropic" else openai_chat_model
    chat_model = build(
        spec.model,
        api_key=api_key or _NO_KEY,
        base_url=base_url,
        timeout_s=settings.timeout_s,
        max_output_tokens=settings.max_output_tokens,
    )
    retry = RetryPolicy(settings.max_retries, settings.backoff_initial_s, settings.backoff_max_s)
    return ChatModelLLM(
        chat_model,
        retry=retry,
        name=redact(llm_text.strip(), secrets),
        provider=spec.kind,
        model=spec.model,
        **common,
    )
