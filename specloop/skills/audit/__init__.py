"""Audit of a run directory (DEFT or create): integrity of the record, the approval gate, claims
recomputed from the evidence, data hygiene and hygiene of the record, each as named findings with
evidence. What a run must hold follows its pipeline in the stage registry.

`audit_run(run_dir)` reads the directory only; `write_reports` writes AUDIT_REPORT.md and
audit.json. See docs/audit.md for what each check means.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from specloop.skills.audit.claims import Truth, check_claims
from specloop.skills.audit.create_claims import check_create_claims
from specloop.skills.audit.data import check_data
from specloop.skills.audit.findings import CHECKS, EXIT_CLEAN, EXIT_FINDINGS, AuditResult, Finding, Findings
from specloop.skills.audit.gate import check_gate
from specloop.skills.audit.hashes import check_files
from specloop.skills.audit.hygiene import check_hygiene
from specloop.skills.audit.integrity import check_integrity
from specloop.skills.audit.pages import check_pages
from specloop.skills.audit.prose import check_prose
from specloop.skills.audit.report import JSON_FILE, REPORT_FILE, render_markdown, write_reports
from specloop.skills.audit.run_records import NotARunError, RunRecords, load_records

__all__ = [
    "CHECKS",
    "EXIT_CLEAN",
    "EXIT_FINDINGS",
    "JSON_FILE",
    "REPORT_FILE",
    "AuditResult",
    "Finding",
    "NotARunError",
    "audit_run",
    "render_markdown",
    "write_reports",
]


def audit_run(run_dir: Path, *, strict: bool = False) -> AuditResult:
    """Audit `run_dir` (finished, stopped or crashed); raise NotARunError when it is not a run."""
    start = time.perf_counter()
    run = load_records(run_dir)
    out = Findings(secrets=run.secrets)
    check_integrity(run, out)
    facts = _facts(run)
    facts |= check_gate(run, out)
    truths: dict[str, Truth] = {}
    if run.is_create:
        check_create_claims(run, out)
    else:
        truths = check_claims(run, out)
        check_prose(run, out, truths)
        check_pages(run, out, truths)
        check_files(run, out)
        check_data(run, out)
    facts["model_calls"] = check_hygiene(run, out)
    facts["best"] = _best(run, truths)
    return AuditResult(
        run_dir=str(run.dir),
        strict=strict,
        findings=out.items,
        examined=out.examined,
        facts=facts,
        seconds=time.perf_counter() - start,
    )


def _facts(run: RunRecords) -> dict[str, Any]:
    st = run.state
    return {
        "pipeline": run.pipeline.name,
        "state_file": run.state_file,
        "status": st.get("status"),
        "stop": st.get("stop"),
        "stages": len(run.log_entries),
        "transcript_entries": len(run.transcript_entries),
        "iterations": list(run.iterations),
        "workspace": st.get("workspace"),
        "project": st.get("project_dir"),
    }


def _best(run: RunRecords, truths: dict[str, Truth]) -> str:
    best = run.state.get("best") if isinstance(run.state.get("best"), dict) else None
    if not best:
        return "none"
    truth = truths.get(str(best.get("iter")))
    far = f", recomputed KPI FAR {truth.kpi.far:.2%}" if truth and truth.kpi else ""
    return f"{best.get('iter')} · {best.get('checkpoint')}{far}"
