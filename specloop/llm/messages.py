"""Provider-agnostic records of langchain-core messages, tool schemas and the replay request key."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, ToolCall
from langchain_core.messages.ai import UsageMetadata
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool

ToolLike = dict[str, Any] | type | Callable[..., Any] | BaseTool

_ROLES = {"human": "user", "ai": "assistant", "system": "system", "tool": "tool"}


def _jsonable(obj: Any) -> Any:
    return json.loads(json.dumps(obj, default=str))


def text_of(content: str | list[Any]) -> str:
    """The text of a message's content, whether a string or a list of content blocks."""
    if isinstance(content, str):
        return content
    parts = []
    for block in content:
        if isinstance(block, str):
            parts.append(block)
        elif isinstance(block, dict) and block.get("type") == "text":
            parts.append(str(block.get("text", "")))
    return "".join(parts)


def message_record(message: BaseMessage) -> dict[str, Any]:
    """A JSON record of one message: ``role``, ``content`` and, where present, tool fields."""
    record: dict[str, Any] = {
        "role": _ROLES.get(message.type, message.type),
        "content": _jsonable(message.content),
    }
    if isinstance(message, AIMessage) and message.tool_calls:
        record["tool_calls"] = [
            {"name": c["name"], "args": c["args"], "id": c.get("id")} for c in message.tool_calls
        ]
    if getattr(message, "tool_call_id", None):
        record["tool_call_id"] = message.tool_call_id
    if message.name:
        record["name"] = message.name
    return record


def response_record(message: AIMessage) -> dict[str, Any]:
    """:func:`message_record` of the reply plus its usage and provider metadata."""
    record = message_record(message)
    record["id"] = message.id
    record["usage"] = _jsonable(dict(message.usage_metadata or {}))
    record["response_metadata"] = _jsonable(message.response_metadata)
    return record


def message_from_response_record(record: dict[str, Any]) -> AIMessage:
    """Rebuild the AIMessage a :func:`response_record` was made from (used by replay)."""
    usage = record.get("usage") or None
    return AIMessage(
        content=record["content"],
        id=record.get("id"),
        tool_calls=[
            ToolCall(name=c["name"], args=c["args"], id=c.get("id")) for c in record.get("tool_calls", [])
        ],
        usage_metadata=UsageMetadata(**usage) if usage else None,
        response_metadata=record.get("response_metadata", {}),
    )


def tool_schemas(tools: Sequence[ToolLike] | None) -> list[dict[str, Any]]:
    """Tools in OpenAI function-tool form, the common denominator for keys and estimates."""
    return [convert_to_openai_tool(t) for t in tools or ()]


def request_key(
    records: Sequence[dict[str, Any]], tools: Sequence[dict[str, Any]], agent: str, stage: str
) -> str:
    """A stable hash of what was asked: agent, stage, message text and tool calls, tool schemas.

    Provider-specific content shapes and tool-call ids are left out, so a cassette recorded
    against one provider replays whatever the model was.
    """
    canonical = {
        "agent": agent,
        "stage": stage,
        "messages": [
            {
                "role": r["role"],
                "text": text_of(r["content"]),
                "tool_calls": [{"name": c["name"], "args": c["args"]} for c in r.get("tool_calls", [])],
            }
            for r in records
        ],
        "tools": list(tools),
    }
    blob = json.dumps(canonical, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def estimate_tokens(records: Sequence[dict[str, Any]], tools: Sequence[dict[str, Any]]) -> int:
    """A rough input-token estimate (4 characters a token) for the pre-call budget check."""
    chars = sum(len(text_of(r["content"])) + len(json.dumps(r.get("tool_calls", []))) for r in records)
    chars += len(json.dumps(list(tools)))
    return chars // 4 + 4 * len(records)
