"""The run ledger: stage log seq and dedupe, torn lines, hash-chained transcript, redaction."""

from __future__ import annotations

import json
from pathlib import Path

from specloop.ledger import loop_log
from specloop.ledger.transcript import GENESIS, TAIL_CHUNK, Transcript, last_link, read_entries, verify_chain


def test_loop_log_seq_follows_disk_and_never_logs_a_stage_twice(tmp_path: Path) -> None:
    log = tmp_path / "loop_log.jsonl"
    a = loop_log.append(log, iter_label="baseline", stage="train", status="ok", summary="s", duration_sec=1.0)
    b = loop_log.append(
        log, iter_label="baseline", stage="inference", status="ok", summary="s", duration_sec=1.0
    )
    again = loop_log.append(
        log, iter_label="baseline", stage="train", status="ok", summary="x", duration_sec=9.0
    )
    assert (a["seq"], b["seq"]) == (1, 2) and again == a
    with log.open("a") as fh:
        fh.write('{"seq": 3, "iter": "baseline", "sta')  # a kill mid-write
    c = loop_log.append(
        log, iter_label="baseline", stage="evaluate", status="ok", summary="s", duration_sec=1.0
    )
    assert c["seq"] == 3
    assert [e["seq"] for e in loop_log.read_entries(log)] == [1, 2, 3]


def _transcript(tmp_path: Path) -> Path:
    t = Transcript(tmp_path / "transcript.jsonl", secrets=["s3cret-value-123"])
    for i in range(4):
        t.record(
            "dataset",
            "tool_call",
            "data_mining",
            "iter1",
            i=i,
            note="key s3cret-value-123 and sk-abcdefghijklmnop",
        )
    return t.path


def test_transcript_chain_is_intact_and_secrets_redacted(tmp_path: Path) -> None:
    path = _transcript(tmp_path)
    assert verify_chain(read_entries(path)) == []
    text = path.read_text()
    assert "s3cret-value-123" not in text and "sk-abcdefghijklmnop" not in text
    assert "[REDACTED]" in text


def test_edited_entry_is_located(tmp_path: Path) -> None:
    path = _transcript(tmp_path)
    lines = path.read_text().splitlines()
    entry = json.loads(lines[1])
    entry["data"]["i"] = 99
    lines[1] = json.dumps(entry)
    path.write_text("\n".join(lines) + "\n")
    problems = verify_chain(read_entries(path))
    assert problems[0] == (2, "content does not match its hash (edited entry)")


def test_removed_and_reordered_entries_are_located(tmp_path: Path) -> None:
    path = _transcript(tmp_path)
    lines = path.read_text().splitlines()
    path.write_text("\n".join([lines[0], lines[2], lines[3]]) + "\n")
    assert [line for line, _ in verify_chain(read_entries(path))] == [2]
    path.write_text("\n".join([lines[0], lines[2], lines[1], lines[3]]) + "\n")
    assert 2 in [line for line, _ in verify_chain(read_entries(path))]


def test_two_writers_on_one_transcript_keep_one_chain(tmp_path: Path) -> None:
    """The run's context and the chat's each hold a Transcript on the same file, used in turns."""
    path = tmp_path / "transcript.jsonl"
    run, chat = Transcript(path), Transcript(path)
    for i in range(3):
        run.record("coder", "tool_call", "train", "baseline", i=i)
        run.record("coder", "tool_call", "train", "baseline", i=i, again=True)
        chat.record("chat", "chat", "chat", "baseline", i=i)
    entries = read_entries(path)
    assert [e["n"] for e in entries] == list(range(1, 10))
    assert verify_chain(entries) == []


def test_a_reopened_transcript_continues_the_chain(tmp_path: Path) -> None:
    path = _transcript(tmp_path)
    Transcript(path).record("reviewer", "check", "validate", "iter1", ok=True)
    entries = read_entries(path)
    assert entries[-1]["n"] == 5 and verify_chain(entries) == []


def test_the_last_link_is_read_from_the_tail(tmp_path: Path) -> None:
    path = tmp_path / "transcript.jsonl"
    assert last_link(path) == (0, GENESIS)
    t = Transcript(path)
    t.record("planner", "note", "preflight", "baseline", text="x" * (3 * TAIL_CHUNK))  # spans chunks
    big = t.record("planner", "note", "preflight", "baseline", text="y" * (2 * TAIL_CHUNK + 7))
    assert last_link(path) == (2, big["hash"])
    with path.open("a", encoding="utf-8") as fh:
        fh.write('{"n": 3, "torn')  # a kill mid-write: the last complete entry still counts
    assert last_link(path) == (2, big["hash"])
    path.write_text("\n\n")
    assert last_link(path) == (0, GENESIS)
