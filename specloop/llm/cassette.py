"""Cassettes: JSONL files of model calls, written while recording and answered from on replay.

One line per call: ``{"v": 1, "key": <request key>, "call": <LLMCall as dict>}``. The key hashes
what was asked (see :func:`specloop.llm.messages.request_key`); replay answers each key's
recorded calls in the order they were made, so a record-then-replay gives the same sequence.
"""

from __future__ import annotations

import json
import threading
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from langchain_core.messages import BaseMessage

from specloop.errors import SpecloopError
from specloop.llm.base import LLM, Completion, LLMError
from specloop.llm.calls import LLMCall
from specloop.llm.messages import ToolLike, message_from_response_record

CASSETTE_VERSION = 1


class CassetteWriter:
    """Appends each call to a cassette file, one flushed line at a time."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()

    def append(self, key: str, call: LLMCall) -> None:
        line = json.dumps({"v": CASSETTE_VERSION, "key": key, "call": call.to_dict()}, ensure_ascii=False)
        with self._lock, self.path.open("a", encoding="utf-8") as fh:
            fh.write(line + "\n")


def read_cassette(path: Path) -> list[tuple[str, LLMCall]]:
    """All entries of a cassette; a bad line raises one sentence naming file and line."""
    if not path.is_file():
        raise SpecloopError(f"{path}: replay cassette not found.")
    entries = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            entry: dict[str, Any] = json.loads(line)
            if entry.get("v") != CASSETTE_VERSION:
                raise ValueError(f"unsupported cassette version {entry.get('v')!r}")
            entries.append((str(entry["key"]), LLMCall.from_dict(entry["call"])))
        except (ValueError, KeyError, TypeError) as exc:
            raise SpecloopError(f"{path}, line {lineno}: not a cassette entry ({exc}).") from None
    return entries


class ReplayLLM(LLM):
    """Answers from a cassette instead of a model; never touches the network."""

    def __init__(self, path: Path, **kwargs: Any) -> None:
        self.path = Path(path)
        entries = read_cassette(self.path)
        self._queues: dict[str, deque[LLMCall]] = {}
        for key, call in entries:
            self._queues.setdefault(key, deque()).append(call)
        self._used: dict[str, int] = {}
        self._lock = threading.Lock()
        first = entries[0][1] if entries else None
        super().__init__(
            name=f"replay:{self.path}",
            provider="replay",
            model=first.model if first else "",
            **kwargs,
        )

    def _complete(
        self,
        messages: list[BaseMessage],
        tools: Sequence[ToolLike] | None,
        *,
        agent: str,
        stage: str,
        key: str,
    ) -> Completion:
        with self._lock:
            queue = self._queues.get(key)
            if not queue:
                used = self._used.get(key, 0)
                why = (
                    f"all {used} recorded answer(s) for this request were already used"
                    if used
                    else "no recorded call has the same messages, tools, agent and stage"
                )
                raise LLMError(
                    f"replay miss in {self.path} for agent '{agent}' at stage '{stage}' "
                    f"(request key {key[:12]}): {why}."
                )
            call = queue.popleft()
            self._used[key] = self._used.get(key, 0) + 1
        return Completion(message_from_response_record(call.response), call.attempt_count, recorded=call)
