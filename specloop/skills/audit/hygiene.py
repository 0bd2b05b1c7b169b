"""Hygiene of the record: no secrets anywhere in the run directory, every model call accounted for,
every hard stop explained."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from specloop.ledger.redaction import redact
from specloop.skills.audit.findings import Findings
from specloop.skills.audit.run_records import LOG_FILE, TRANSCRIPT_FILE, RunRecords

# Files no secret can sit in readably: weights, images, columnar binaries.
BINARY_SUFFIXES = frozenset(
    {".pth", ".pt", ".ckpt", ".safetensors", ".bin", ".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".gif",
     ".npy", ".npz", ".parquet", ".faiss", ".index"}
)  # fmt: skip
MAX_SCAN_BYTES = 64 << 20
VENV_MARKER = "pyvenv.cfg"
AUDIT_OUTPUTS = frozenset({"AUDIT_REPORT.md", "audit.json"})
MODEL_CALL = "model_call"
CALL_TEXT = ("provider", "model")
CALL_NUMBERS = ("input_tokens", "output_tokens", "cost_usd")
HARD_STOP = re.compile(r"hard stop \[([^\]]+)\]: (.*\S)")


def check_hygiene(run: RunRecords, out: Findings) -> dict[str, Any]:
    """Run the record-hygiene checks; return the run's model usage for the report."""
    _secrets(run, out)
    usage = _model_calls(run, out)
    _hard_stops(run, out)
    return usage


def _scannable(run: RunRecords) -> list[Path]:
    """Every text file of the run; of a virtual environment (a create run's target project installs
    one) only its own top-level files (pyvenv.cfg, pip.conf): the rest is installed packages."""
    files = []
    for dirpath, dirnames, names in os.walk(run.dir):
        if VENV_MARKER in names:
            dirnames.clear()
        for name in names:
            path = Path(dirpath) / name
            if path.suffix.lower() in BINARY_SUFFIXES or (Path(dirpath) == run.dir and name in AUDIT_OUTPUTS):
                continue
            files.append(path)
    return sorted(files)


def _secrets(run: RunRecords, out: Findings) -> None:
    """Scan every text file; a line already scanned elsewhere (training sets repeat the previous
    iteration's rows) is not scanned again, but is reported again in each file that holds it."""
    secrets = run.secrets
    files = _scannable(run)
    seen: set[str] = set()
    dirty: set[str] = set()
    skipped = 0
    for path in files:
        if path.stat().st_size > MAX_SCAN_BYTES:
            skipped += 1
            continue
        lines = path.read_bytes().decode("utf-8", errors="replace").splitlines()
        fresh = [line for line in dict.fromkeys(lines) if line not in seen]
        seen.update(fresh)
        chunk = "\n".join(fresh)
        if redact(chunk, secrets) != chunk:
            dirty.update(line for line in fresh if redact(line, secrets) != line)
        if not dirty:
            continue
        for number, line in enumerate(lines, start=1):
            if line in dirty:
                _secret_found(run, out, path, number, line, secrets)
    out.saw("record.secret", f"{len(files) - skipped} text file(s), {len(secrets)} known secret value(s)")
    if skipped:
        out.saw("record.secret", f"{skipped} file(s) over {MAX_SCAN_BYTES >> 20} MB not scanned")


def _secret_found(
    run: RunRecords, out: Findings, path: Path, number: int, line: str, secrets: frozenset[str]
) -> None:
    clean = redact(line, secrets)
    col = next(i for i, (a, b) in enumerate(zip(line, clean, strict=False)) if a != b)
    shaped = redact(line, ()) != line
    out.add(
        "record.secret",
        "a key-shaped string" if shaped else "a value of the workspace .env or a secret environment variable",
        file=run.rel(path),
        where=f"line {number}, column {col + 1}",
        expected="no secret (masked as [REDACTED])",
        found=f"{line[col : col + 4]}… (shown cut)" if shaped else "a secret value (not shown)",
    )


def _model_calls(run: RunRecords, out: Findings) -> dict[str, Any]:
    """Check every model_call entry, and each stage's log tally against the calls of its last attempt."""
    totals = {"calls": 0, "input_tokens": 0, "output_tokens": 0, "cost_usd": 0.0}
    attempt: dict[tuple[str, str], dict[str, float]] = {}
    ended: dict[tuple[str, str], dict[str, float]] = {}
    current: tuple[str, str] | None = None  # the stage attempt running: it owns the calls made in it
    for number, e in run.transcript_entries:
        key = (str(e.get("iter")), str(e.get("stage")))
        kind = e.get("kind")
        if kind == "stage_start":
            current, attempt[key] = key, _zero()
        elif kind in ("stage_end", "hard_stop"):
            ended[key] = attempt.get(key, _zero())
        if kind != MODEL_CALL:
            continue
        data = e.get("data") or {}
        missing = [f for f in CALL_TEXT if not isinstance(data.get(f), str) or not data.get(f)]
        missing += [
            f
            for f in CALL_NUMBERS
            if isinstance(data.get(f), bool) or not isinstance(data.get(f), int | float) or data.get(f) < 0
        ]
        if missing:
            out.add(
                "record.model-call",
                f"a model call without {', '.join(missing)}",
                file=TRANSCRIPT_FILE,
                where=f"line {number}",
                expected="provider, model, input_tokens, output_tokens, cost_usd",
                found={f: data.get(f) for f in missing},
            )
            continue
        totals["calls"] += 1
        totals["input_tokens"] += int(data["input_tokens"])
        totals["output_tokens"] += int(data["output_tokens"])
        totals["cost_usd"] += float(data["cost_usd"])
        if current is not None:
            tally = attempt[current]
            tally["input"] += data["input_tokens"]
            tally["output"] += data["output_tokens"]
            tally["cost_usd"] += data["cost_usd"]
            tally["calls"] += 1
    if totals["calls"]:
        out.saw("record.model-call", f"{totals['calls']} model call(s)")
    _tallies(run, out, ended)
    totals["cost_usd"] = round(totals["cost_usd"], 6)
    return totals


def _zero() -> dict[str, float]:
    return {"input": 0, "output": 0, "cost_usd": 0.0, "calls": 0}


def _tallies(run: RunRecords, out: Findings, ended: dict[tuple[str, str], dict[str, float]]) -> None:
    if not run.log_entries:
        return
    out.saw("record.tokens", f"{len(run.log_entries)} log line tallies")
    for number, e in run.log_entries:
        tokens = e.get("tokens")
        if not isinstance(tokens, dict) or not all(k in tokens for k in ("input", "output", "cost_usd")):
            out.add(
                "record.tokens",
                "the log line has no token tally",
                file=LOG_FILE,
                where=f"line {number}",
                expected="tokens: {input, output, cost_usd}",
                found=tokens,
            )
            continue
        key = (str(e.get("iter")), str(e.get("stage")))
        calls = ended.get(key)
        if calls is None:
            continue
        differ = [k for k in ("input", "output", "calls") if k in tokens and tokens[k] != calls[k]] + (
            [] if abs(float(tokens["cost_usd"]) - calls["cost_usd"]) <= 1e-5 else ["cost_usd"]
        )
        if differ:
            out.add(
                "record.tokens",
                f"{key[0]} · {key[1]}: the log's token tally differs from the stage's model calls",
                file=LOG_FILE,
                where=f"line {number}",
                expected={k: round(calls[k], 6) for k in differ},
                found={k: tokens.get(k) for k in differ},
            )


def _hard_stops(run: RunRecords, out: Findings) -> None:
    lines = {
        (str(e.get("iter")), str(e.get("stage"))): (n, e)
        for n, e in run.log_entries
        if e.get("status") == "error"
    }
    entries = {
        (str(e.get("iter")), str(e.get("stage"))): (n, e)
        for n, e in run.transcript_entries
        if e.get("kind") == "hard_stop"
    }
    stop = run.state.get("stop") if isinstance(run.state.get("stop"), dict) else None
    stopped = stop is not None and stop.get("reason") == "hard_stop"
    if not (lines or entries or stopped):
        return
    out.saw("record.hard-stop", f"{len(lines)} error line(s), {len(entries)} hard_stop entr(ies)")
    reasons: dict[tuple[str, str], tuple[str, str]] = {}
    for key, (n, e) in lines.items():
        m = HARD_STOP.match(str(e.get("summary", "")))
        if m is None:
            out.add(
                "record.hard-stop",
                "a hard stop in the log does not name its check and reason",
                file=LOG_FILE,
                where=f"line {n}",
                expected="hard stop [check]: reason",
                found=e.get("summary"),
            )
        else:
            reasons[key] = (m.group(1), m.group(2))
        if key not in entries:
            out.add(
                "record.hard-stop",
                f"the hard stop at {key[0]} · {key[1]} has no entry in {TRANSCRIPT_FILE}",
                file=LOG_FILE,
                where=f"line {n}",
                expected=f"a hard_stop entry in {TRANSCRIPT_FILE}",
                found="none",
            )
    for key, (n, e) in entries.items():
        data = e.get("data") or {}
        if not data.get("check") or not data.get("reason"):
            out.add(
                "record.hard-stop",
                "a hard_stop entry without its check or reason",
                file=TRANSCRIPT_FILE,
                where=f"line {n}",
                expected="check and reason",
                found={"check": data.get("check"), "reason": data.get("reason")},
            )
        if key not in lines:
            out.add(
                "record.hard-stop",
                f"the transcript hard-stops {key[0]} · {key[1]} but {LOG_FILE} has no error line for it",
                file=TRANSCRIPT_FILE,
                where=f"line {n}",
                expected=f"an error line in {LOG_FILE}",
                found="none",
            )
    if stopped and stop is not None:
        empty = [k for k in ("check", "detail", "iter", "stage") if not stop.get(k)]
        if empty:
            out.add(
                "record.hard-stop",
                f"the state's hard stop has no {', '.join(empty)}",
                file=run.state_file,
                where="stop",
                expected="reason, check, detail, iter, stage",
                found=stop,
            )
        logged = reasons.get((str(stop.get("iter")), str(stop.get("stage"))))
        if logged is not None and not empty and logged != (stop.get("check"), stop.get("detail")):
            out.add(
                "record.hard-stop",
                "the state and the log give the hard stop different checks or reasons",
                file=run.state_file,
                where="stop",
                expected=f"[{logged[0]}]: {logged[1]}",
                found=f"[{stop.get('check')}]: {stop.get('detail')}",
            )
