"""Claims of a create run against their evidence: the build log's ticks and records against the
sandboxed commands the transcript recorded and the logs they kept, tech.md's numbers against
tech.json's measurements, REVIEW_REPORT.md against the review stage's outcome, and the project's
answers file against the answers codegen rendered from.

A check applies once the stage that makes its claim is logged ok (a stopped run claims less)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from specloop.errors import SpecloopError
from specloop.skills.audit.findings import Findings
from specloop.skills.audit.run_records import LOG_FILE, TRANSCRIPT_FILE, RunRecords
from specloop.skills.number_check import unsupported_numbers
from specloop.skills.scaffold.codegen import ANSWERS_FILE, read_answers
from specloop.skills.scaffold.tasks import BuildRecord, read_build_records, verify_build_log

BUILD_LOG = "PROJECT_BUILD_LOG.md"
TECH_MD, TECH_JSON = "tech.md", "tech.json"
REVIEW_REPORT = "REVIEW_REPORT.md"
# Which stage ran a build record's command, by the record's phase (its log is logs/<stage>_<task>.log).
PHASE_STAGE = {"build": "codegen", "verify": "verify_tasks"}
RENDER_TOOL = "scaffold.render_project"
# What the transcript keeps of a tool's arguments (agents.base: strings, dict keys, list items cut).
ARG_CHARS, ARG_KEYS, ARG_ITEMS = 400, 40, 20
_TICK_PROBLEM = re.compile(r"^[^:]+:(\d+): (.*)$")
_SECTION = re.compile(r"^### .*\(`([^`]+)`\)")
_NUMBER_CELL = re.compile(r"-?\d{1,3}(?:,\d{3})*(?:\.\d+)?|-?\d+(?:\.\d+)?")
_VERDICT = re.compile(r"^\*\*(PASS|FAIL)\*\*: (\d+) of (\d+) checks pass\.", re.MULTILINE)
# Comparison-table columns after the candidate's name, in order.
COMPARED = ("params", "train_samples_per_sec", "latency_ms_b1", "cpu_train_seconds", "gpu_memory_mb")


def logged_ok(run: RunRecords) -> dict[str, int]:
    """Stage → the log line that says it finished here (not in the create run a target run came from)."""
    return {
        str(e.get("stage")): n
        for n, e in run.log_entries
        if e.get("status") == "ok" and (str(e.get("iter")), str(e.get("stage"))) not in run.delegated
    }


def commands(run: RunRecords) -> dict[str, tuple[int, dict[str, Any]]]:
    """Per kept log path, the last `command` entry that wrote it (a re-run overwrites its log)."""
    out: dict[str, tuple[int, dict[str, Any]]] = {}
    for number, e in run.transcript_entries:
        data = e.get("data") or {}
        if e.get("kind") == "command" and isinstance(data.get("log_path"), str):
            out[data["log_path"]] = (number, data)
    return out


def check_create_claims(run: RunRecords, out: Findings) -> None:
    done = logged_ok(run)
    cmds = commands(run)
    if "codegen" in done:
        records = _build_log(run, out)
        _records_vs_commands(run, out, records, cmds)
        _answers(run, out)
    _kept_logs(run, out, cmds)
    if "tech" in done:
        _tech(run, out)
    if "review" in done:
        _review(run, out, done["review"])


def _build_log(run: RunRecords, out: Findings) -> list[BuildRecord]:
    path = run.dir / BUILD_LOG
    if not path.is_file():
        out.add("claims.build-log", "codegen is logged as done but there is no build log", file=BUILD_LOG)
        return []
    try:
        records = read_build_records(path)
        problems = verify_build_log(path)
    except SpecloopError as exc:
        out.add("claims.build-log", f"the build records cannot be read: {exc.message}", file=BUILD_LOG)
        return []
    out.saw("claims.build-log", f"{len(records)} build record(s), every [x] against them")
    for problem in problems:
        m = _TICK_PROBLEM.match(problem)
        out.add(
            "claims.build-log",
            m.group(2) if m else problem,
            file=BUILD_LOG,
            where=f"line {m.group(1)}" if m else None,
            expected="a passing record of the task's acceptance command",
            found="a tick with none",
        )
    return records


def _records_vs_commands(
    run: RunRecords, out: Findings, records: list[BuildRecord], cmds: dict[str, tuple[int, dict[str, Any]]]
) -> None:
    """Each build record is the command the transcript recorded: exit code, sandbox, output hash."""
    if records:
        out.saw("claims.commands", f"{len(records)} build record(s) against transcript command entries")
    for i, rec in enumerate(records, start=1):
        where = f"build record {i} ({rec.phase} {rec.task})"
        log_path = f"logs/{PHASE_STAGE.get(rec.phase, rec.phase)}_{rec.task}.log"
        if log_path not in cmds:
            out.add(
                "claims.commands",
                f"no command in {TRANSCRIPT_FILE} kept {log_path}, so nothing ran behind this record",
                file=BUILD_LOG,
                where=where,
                expected=f"a command entry with log_path {log_path}",
                found="none",
            )
            continue
        number, data = cmds[log_path]
        ran = " ".join(str(p) for p in (data.get("command") or [])[1:])
        shown = rec.command.split(" ", 1)[1] if " " in rec.command else ""
        for what, recorded, actual in (
            ("output sha256", rec.output_sha256, data.get("output_sha256")),
            ("exit code", rec.exit_code, data.get("exit_code")),
            ("sandbox", rec.sandbox, data.get("sandbox")),
            ("command", shown, ran),
        ):
            if recorded != actual:
                out.add(
                    "claims.commands",
                    f"the record's {what} is not the one the transcript recorded for {log_path}",
                    file=BUILD_LOG,
                    where=where,
                    expected=f"{actual} ({TRANSCRIPT_FILE} line {number})",
                    found=recorded,
                )


def _kept_logs(run: RunRecords, out: Findings, cmds: dict[str, tuple[int, dict[str, Any]]]) -> None:
    """Every kept command log hashes to the output sha256 its command entry recorded."""
    if not cmds:
        return
    out.saw("claims.commands", f"{len(cmds)} kept command log(s) re-hashed")
    for log_path, (number, data) in cmds.items():
        path = run.local(log_path)
        if not path.is_file():
            out.add(
                "claims.commands",
                "the kept output of a recorded command is missing",
                file=log_path,
                where=f"named in {TRANSCRIPT_FILE} line {number}",
                expected="the log file",
                found="missing",
            )
        elif run.sha256(path) != data.get("output_sha256"):
            out.add(
                "claims.commands",
                "the kept log is not the command's output (edited after the run)",
                file=log_path,
                where=f"recorded in {TRANSCRIPT_FILE} line {number}",
                expected=data.get("output_sha256"),
                found=run.sha256(path),
            )


def _answers(run: RunRecords, out: Findings) -> None:
    renders = [
        (n, e)
        for n, e in run.transcript_entries
        if e.get("kind") == "tool_call" and (e.get("data") or {}).get("tool") == RENDER_TOOL
    ]
    project = run.state.get("project_dir")
    if not renders or not isinstance(project, str):
        return
    number, entry = renders[-1]
    recorded = ((entry.get("data") or {}).get("args") or {}).get("answers")
    rel = f"{project}/{ANSWERS_FILE}"
    out.saw("claims.answers", f"{rel} against {TRANSCRIPT_FILE} line {number}")
    try:
        actual = read_answers(run.local(project))
    except SpecloopError as exc:
        out.add("claims.answers", exc.message, file=rel, expected="the answers codegen rendered from")
        return
    for key, want, found in _differences(recorded, actual):
        out.add(
            "claims.answers",
            "the project's answers file differs from the answers codegen rendered it from",
            file=rel,
            where=key or "the whole file",
            expected=f"{want} ({TRANSCRIPT_FILE} line {number})",
            found=found,
        )


def _differences(recorded: Any, actual: Any, key: str = "") -> Iterator[tuple[str, Any, Any]]:
    """Where `actual` is not what the transcript kept of it (cut strings, dicts, lists allowed)."""
    if isinstance(recorded, dict) and isinstance(actual, dict):
        keys = list(actual)[:ARG_KEYS]
        if list(recorded) != keys and sorted(recorded) != sorted(keys):
            yield key, sorted(recorded), sorted(keys)
            return
        for k in recorded:
            yield from _differences(recorded[k], actual[k], f"{key}.{k}" if key else str(k))
    elif isinstance(recorded, list) and isinstance(actual, list | tuple):
        if len(recorded) != min(len(actual), ARG_ITEMS):
            yield key, f"{len(recorded)} item(s)", f"{len(actual)} item(s)"
            return
        for i, (r, a) in enumerate(zip(recorded, actual, strict=False)):
            yield from _differences(r, a, f"{key}[{i}]")
    elif isinstance(recorded, str) and recorded.endswith("…") and isinstance(actual, str):
        if len(actual) <= ARG_CHARS or not actual.startswith(recorded[:-1]):
            yield key, recorded, actual
    elif recorded != actual or type(recorded) is not type(actual):
        yield key, recorded, actual


def _tech(run: RunRecords, out: Findings) -> None:
    md_path, json_path = run.dir / TECH_MD, run.dir / TECH_JSON
    tech = run.json(json_path)
    if tech is None or not md_path.is_file():
        missing = TECH_JSON if tech is None else TECH_MD
        out.add("claims.tech", "tech is logged as done but its record is missing or unreadable", file=missing)
        return
    lines = md_path.read_text(encoding="utf-8").splitlines()
    estimates = tech.get("estimates") if isinstance(tech.get("estimates"), dict) else {}
    measurements = tech.get("measurements") if isinstance(tech.get("measurements"), dict) else {}
    out.saw("claims.tech", f"{TECH_MD} against {TECH_JSON}: {', '.join(estimates)}")
    checker = _TechChecker(out, estimates, measurements)
    part, candidate = "", None  # the `## ` section, and the candidate whose `### ` section this is
    for number, line in enumerate(lines, start=1):
        if m := _SECTION.match(line):
            candidate = m.group(1)
        elif line.startswith("## "):
            part, candidate = line.strip(), None
        elif line.startswith("|") and candidate is not None:
            checker.quantity_row(number, candidate, _cells(line))
        elif line.startswith("|") and part == "## Comparison":
            checker.comparison_row(number, _cells(line))
        elif part == "## Choice":
            checker.choice_line(number, line, tech)


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


class _TechChecker:
    def __init__(self, out: Findings, estimates: dict[str, Any], measurements: dict[str, Any]) -> None:
        self.out, self.estimates, self.measurements = out, estimates, measurements

    def differ(self, number: int, what: str, expected: Any, found: str) -> None:
        self.out.add(
            "claims.tech",
            f"{what} in {TECH_MD} differs from {TECH_JSON}",
            file=TECH_MD,
            where=f"line {number}",
            expected=expected,
            found=found,
        )

    def number(self, number: int, what: str, cell: str, value: Any) -> None:
        """A table cell states `value` at the precision it shows ("10,960.9", "0.169", "19,658")."""
        if not _NUMBER_CELL.fullmatch(cell) or not isinstance(value, int | float) or isinstance(value, bool):
            self.differ(number, what, value, cell)
            return
        digits = cell.replace(",", "")
        decimals = len(digits.split(".")[1]) if "." in digits else 0
        if abs(float(digits) - value) > 0.5 * 10**-decimals + 1e-9:
            self.differ(number, what, value, cell)

    def quantity_row(self, number: int, candidate: str, cells: list[str]) -> None:
        if len(cells) != 4 or cells[0] == "quantity" or cells[0].startswith("---"):
            return
        key, value, label, how = cells
        if key == "benchmark command":
            self.benchmark_row(number, candidate, how)
            return
        e = (self.estimates.get(candidate) or {}).get(key)
        if not isinstance(e, dict):
            self.differ(number, f"{candidate} {key}", "no such estimate", key)
            return
        self.number(number, f"{candidate} {key}", value, e.get("value"))
        if label != e.get("label"):
            self.differ(number, f"the label of {candidate} {key}", e.get("label"), label)
        want = str(e.get("formula")) + (f" ({e['hardware']})" if e.get("hardware") else "")
        if how != want:
            self.differ(number, f"how {candidate} {key} was obtained", want, how)

    def benchmark_row(self, number: int, candidate: str, how: str) -> None:
        m = self.measurements.get(candidate) or {}
        sha = str(m.get("output_sha256"))[:12]
        want = f"exit {m.get('exit_code')}, {float(m.get('seconds') or 0):.1f}s, output sha256 {sha}"
        if how != want:
            self.differ(number, f"{candidate}'s benchmark run", want, how)

    def comparison_row(self, number: int, cells: list[str]) -> None:
        if len(cells) != len(COMPARED) + 1 or cells[0] == "candidate" or cells[0].startswith("---"):
            return
        candidate, values = cells[0], cells[1:]
        e = self.estimates.get(candidate)
        if not isinstance(e, dict):
            self.differ(number, "a compared candidate", ", ".join(self.estimates), candidate)
            return
        for key, cell in zip(COMPARED, values, strict=True):
            self.number(number, f"{candidate} {key} (comparison)", cell, (e.get(key) or {}).get("value"))

    def choice_line(self, number: int, line: str, tech: dict[str, Any]) -> None:
        text = line.strip()
        if not text:
            return
        if text.startswith("**"):
            chosen = text[2:].split("**", 1)[0]
            if chosen != tech.get("chosen"):
                self.differ(number, "the chosen candidate", tech.get("chosen"), chosen)
            return
        reasons = tech.get("reasons") or []
        if m := re.match(r"^(\d+)\. (.*)$", text):
            i = int(m.group(1)) - 1
            want = reasons[i] if i < len(reasons) else None
            if m.group(2) != want:
                self.differ(number, f"choice rule {i + 1}", want, m.group(2))
            return
        # The rationale (the tools' wording, or a model's checked against the same facts).
        facts = {"tech": tech, "batch": 1}
        wrong = unsupported_numbers(text, facts)
        if wrong:
            self.differ(number, "a number in the rationale", f"a number of {TECH_JSON}", ", ".join(wrong))


def _review(run: RunRecords, out: Findings, line: int) -> None:
    path = run.dir / REVIEW_REPORT
    if not path.is_file():
        out.add(
            "claims.review",
            "review is logged as done but there is no review report",
            file=REVIEW_REPORT,
            expected=f"the report ({LOG_FILE} line {line})",
            found="missing",
        )
        return
    text = path.read_text(encoding="utf-8")
    out.saw("claims.review", f"{REVIEW_REPORT} verdict and check rows against {LOG_FILE} line {line}")
    m = _VERDICT.search(text)
    rows = re.findall(r"^\| `([^`]+)` \| (pass|FAIL) \|", text, re.MULTILINE)
    failed = [name for name, result in rows if result != "pass"]
    if m is None or m.group(1) != "PASS" or m.group(2) != m.group(3) or int(m.group(3)) != len(rows):
        found = m.group(0) if m else "no verdict line"
        out.add(
            "claims.review",
            "the log says review passed but the report does not say PASS for every check",
            file=REVIEW_REPORT,
            where=f"line {text.count(chr(10), 0, m.start()) + 1}" if m else None,
            expected=f"**PASS**: {len(rows)} of {len(rows)} checks pass. ({LOG_FILE} line {line})",
            found=found,
        )
    for name in failed:
        out.add(
            "claims.review",
            f"check {name} failed in the report, yet the log says review passed",
            file=REVIEW_REPORT,
            where=f"`{name}`",
            expected="pass",
            found="FAIL",
        )
