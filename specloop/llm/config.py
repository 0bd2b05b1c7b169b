"""Which model to use, with which limits: from an argument, the environment or config files.

Precedence, per setting: explicit argument > environment (``$SPECLOOP_LLM``,
``$SPECLOOP_BUDGET_TOKENS``, ``$SPECLOOP_BUDGET_USD``) > ``<workspace>/specloop.toml`` >
``~/.config/specloop/config.toml`` (``$XDG_CONFIG_HOME`` honoured) > built-in defaults.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from specloop.errors import SpecloopError
from specloop.llm.prices import DEFAULT_PRICES, Price

WORKSPACE_CONFIG = "specloop.toml"
ENV_LLM = "SPECLOOP_LLM"
ENV_BUDGET_TOKENS = "SPECLOOP_BUDGET_TOKENS"
ENV_BUDGET_USD = "SPECLOOP_BUDGET_USD"

ProviderKind = Literal["openai", "anthropic", "openai-compatible", "offline", "replay"]


@dataclass(frozen=True)
class LLMSettings:
    """Resolved settings; ``source`` says where ``llm`` came from (for the pre-flight summary)."""

    llm: str = "offline"
    source: str = "default"
    budget_tokens: int | None = None
    budget_usd: float | None = None
    timeout_s: float = 60.0
    max_retries: int = 4
    backoff_initial_s: float = 1.0
    backoff_max_s: float = 30.0
    max_output_tokens: int = 4096
    prices: Mapping[str, Price] = field(default_factory=lambda: dict(DEFAULT_PRICES))


@dataclass(frozen=True)
class ProviderSpec:
    kind: ProviderKind
    model: str = ""
    base_url: str | None = None
    cassette: Path | None = None


_SPEC_HELP = (
    "use 'openai:<model>', 'anthropic:<model>[@<base_url>]', "
    "'openai-compatible:<base_url>:<model>', 'offline' or 'replay:<cassette.jsonl>'"
)
# host[:port] has no "/", the path no ":", so the model (which may hold ":", e.g. "llama3:8b") follows.
_COMPATIBLE = re.compile(r"^(https?://[^/\s]+(?:/[^:\s]*)?):(\S+)$")
_AT_URL = re.compile(r"^(.+?)@(https?://\S+)$")


def parse_llm_spec(text: str) -> ProviderSpec:
    """Parse an ``llm`` setting such as ``openai:gpt-4o-mini``; bad text raises one sentence."""
    text = text.strip()
    kind, _, rest = text.partition(":")
    if kind == "offline" and not rest:
        return ProviderSpec("offline")
    if kind == "replay" and rest:
        return ProviderSpec("replay", cassette=Path(rest).expanduser())
    if kind == "openai" and rest:
        return ProviderSpec("openai", model=rest)
    if kind == "anthropic" and rest:
        at = _AT_URL.match(rest)
        return ProviderSpec("anthropic", model=at[1], base_url=at[2]) if at else ProviderSpec(kind, rest)
    if kind == "openai-compatible":
        m = _COMPATIBLE.match(rest)
        if m:
            return ProviderSpec("openai-compatible", model=m[2], base_url=m[1])
    raise SpecloopError(f"LLM setting {text!r} is not understood: {_SPEC_HELP}.")


def user_config_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "specloop" / "config.toml"


def _read_toml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise SpecloopError(f"{path}: is not valid TOML ({exc}).") from None


_KIND_NAMES = {int: "integer", float: "number", str: "string"}


def _typed(value: Any, kind: type, key: str, where: str) -> Any:
    """``value`` as ``kind`` (ints accepted as floats; numbers must be >= 0), else one sentence."""
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    numeric = kind in (int, float)
    if isinstance(value, kind) and not isinstance(value, bool) and not (numeric and value < 0):
        return value
    wanted = f"a non-negative {_KIND_NAMES[kind]}" if numeric else f"a {_KIND_NAMES[kind]}"
    raise SpecloopError(f"{where}: '{key}' must be {wanted}, got {value!r}.")


_FILE_KEYS: dict[str, tuple[str, type]] = {
    "llm": ("llm", str),
    "budget_tokens": ("budget_tokens", int),
    "budget_usd": ("budget_usd", float),
    "llm_timeout_s": ("timeout_s", float),
    "llm_max_retries": ("max_retries", int),
    "llm_backoff_initial_s": ("backoff_initial_s", float),
    "llm_backoff_max_s": ("backoff_max_s", float),
    "llm_max_output_tokens": ("max_output_tokens", int),
}


def _from_file(path: Path) -> tuple[dict[str, Any], dict[str, Price]]:
    data = _read_toml(path)
    values = {
        attr: _typed(data[key], kind, key, str(path))
        for key, (attr, kind) in _FILE_KEYS.items()
        if key in data
    }
    prices: dict[str, Price] = {}
    table = data.get("llm_prices", {})
    if not isinstance(table, dict):
        raise SpecloopError(f"{path}: 'llm_prices' must be a table of {{ input = …, output = … }}.")
    for model, entry in table.items():
        if not (isinstance(entry, dict) and {"input", "output"} <= entry.keys()):
            raise SpecloopError(f"{path}: llm_prices.{model} needs 'input' and 'output' (USD per 1M tokens).")
        where = f"{path} llm_prices.{model}"
        prices[model] = Price(
            _typed(entry["input"], float, "input", where), _typed(entry["output"], float, "output", where)
        )
    return values, prices


def _from_env(environ: Mapping[str, str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    if environ.get(ENV_LLM):
        values["llm"] = environ[ENV_LLM]
    for name, attr, kind in (
        (ENV_BUDGET_TOKENS, "budget_tokens", int),
        (ENV_BUDGET_USD, "budget_usd", float),
    ):
        raw = environ.get(name)
        if raw:
            try:
                values[attr] = _typed(kind(raw), kind, name, "environment")
            except ValueError:
                raise SpecloopError(
                    f"environment: ${name} must be a non-negative {_KIND_NAMES[kind]}, got {raw!r}."
                ) from None
    return values


def load_settings(
    config: str | None = None, *, workspace: Path | None = None, environ: Mapping[str, str] | None = None
) -> LLMSettings:
    """Merge defaults, user file, workspace file, environment and the explicit ``config`` string."""
    environ = os.environ if environ is None else environ
    merged: dict[str, Any] = {}
    prices = dict(DEFAULT_PRICES)
    sources: list[tuple[str, dict[str, Any]]] = []
    files = [user_config_path()] + ([Path(workspace) / WORKSPACE_CONFIG] if workspace is not None else [])
    for path in files:
        values, file_prices = _from_file(path)
        prices.update(file_prices)
        sources.append((str(path), values))
    sources.append((f"${ENV_LLM}", _from_env(environ)))
    if config is not None:
        sources.append(("argument", {"llm": config}))
    source = "default"
    for where, values in sources:
        merged.update(values)
        if "llm" in values:
            source = where
    settings = LLMSettings(**merged, source=source, prices=prices)
    parse_llm_spec(settings.llm)
    return settings
