"""AUDIT_REPORT.md and audit.json: the verdict, every check with its status, every finding with
its evidence. Written atomically; neither ever quotes a secret (record.secret shows a cut prefix)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from specloop.ledger.files import atomic_write_text
from specloop.skills.audit.findings import CHECKS, AuditResult, Finding

REPORT_FILE = "AUDIT_REPORT.md"
JSON_FILE = "audit.json"
STATUS_MARK = {"pass": "pass", "fail": "**FAIL**", "warn": "warn", "n/a": "n/a"}


def _cell(text: str | None) -> str:
    return (text or "").replace("|", "\\|").replace("\n", " ")


def _finding_row(f: Finding) -> str:
    return (
        f"| `{f.check}` | {f.severity} | `{_cell(f.location)}` | {_cell(f.message)} | "
        f"{_cell(f.expected)} | {_cell(f.found)} |"
    )


def _stop(stop: Any) -> str:
    if not isinstance(stop, dict):
        return "not stopped"
    if stop.get("reason") == "hard_stop":
        return f"hard stop at {stop.get('iter')} · {stop.get('stage')} [{stop.get('check')}]"
    return str(stop.get("reason"))


def _calls(usage: dict[str, Any]) -> str:
    if not usage.get("calls"):
        return "none (offline policies)"
    return (
        f"{usage['calls']}, {usage['input_tokens']:,} tokens in, {usage['output_tokens']:,} out, "
        f"${usage['cost_usd']:.4f}"
    )


def _made(facts: dict[str, Any]) -> str:
    if facts.get("pipeline") == "create":
        return f"project: {facts.get('project') or 'not named yet'}"
    return f"iterations: {', '.join(facts.get('iterations') or []) or 'none'}"


def render_markdown(result: AuditResult) -> str:
    facts = result.facts
    lines = [
        "# Audit report",
        "",
        f"- Run: `{result.run_dir}`",
        f"- Verdict: **{result.verdict}**"
        + (" (strict: warnings count as findings)" if result.strict else ""),
        f"- Status: {facts.get('status')}; stop: {_stop(facts.get('stop'))}",
        f"- Pipeline: {facts.get('pipeline')} (state: `{facts.get('state_file')}`)",
        f"- Stages logged: {facts.get('stages')}; " + _made(facts),
        f"- Approval: {facts.get('approval')}",
        *([] if facts.get("pipeline") == "create" else [f"- Best model: {facts.get('best')}"]),
        f"- Model calls: {_calls(facts.get('model_calls') or {})}",
        f"- Audited in {result.seconds:.2f} s",
        "",
        "## Findings",
        "",
    ]
    if result.findings:
        lines += [
            "| check | severity | where | what | expected | found |",
            "|---|---|---|---|---|---|",
            *(_finding_row(f) for f in result.findings),
        ]
    else:
        lines.append("None: every check passed.")
    lines += ["", "## Checks", "", "| check | status | guards | examined |", "|---|---|---|---|"]
    for name, guards in CHECKS.items():
        examined = "; ".join(result.examined.get(name, []))
        if len(examined) > 300:
            examined = examined[:300] + "…"
        lines.append(
            f"| `{name}` | {STATUS_MARK[result.status(name)]} | {_cell(guards)} | {_cell(examined)} |"
        )
    return "\n".join(lines) + "\n"


def write_reports(result: AuditResult, out_dir: Path) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    md, js = out_dir / REPORT_FILE, out_dir / JSON_FILE
    atomic_write_text(md, render_markdown(result))
    atomic_write_text(js, json.dumps(result.to_dict(), indent=2, default=str) + "\n")
    return md, js
