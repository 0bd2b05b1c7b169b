"""The Markdown run summary for CI (`specloop deft status RUN --markdown`) and the GitHub Actions
job in docs/ci.md: the summary carries the ledger's trajectory, best model and stop reason, and
every specloop command and flag the documented job uses exists."""

# ruff: noqa: F811  (the full_run fixture imported from test_report is redefined as an argument)

from __future__ import annotations

import json
import re
import shlex
import shutil
from pathlib import Path

import yaml
from test_report import _new_run, full_run  # noqa: F401
from typer.testing import CliRunner

from specloop.cli import app
from specloop.ledger.state import save
from specloop.skills.report import REPORT_FILE, render_report
from specloop.skills.report.markdown import run_summary_markdown

DOCS = Path(__file__).resolve().parents[1] / "docs" / "ci.md"


def _copy(run: Path, tmp_path: Path) -> Path:
    dst = tmp_path / run.name
    shutil.copytree(run, dst)
    return dst


def test_summary_has_trajectory_best_model_and_stop_reason(full_run: Path) -> None:
    text = run_summary_markdown(full_run)
    assert text.startswith(
        "## DEFT run `run_20260101_120000`: finished without meeting the KPI (the iteration limit was reached)"
    )
    assert "- KPI: FAR at 100 % defect recall on `kpi/testing_set.csv`, target FAR < 1%" in text
    # iter1 and iter2 both reach 1 false alarm in 45; the earlier one is the best
    assert "- Best model: iter1, KPI FAR 2.22%, checkpoint `" in text
    assert "- Stop reason: `max_iterations` — the iteration limit was reached: 2 of 2 iterations run" in text
    assert "- Approved by: --yes" in text
    rows = [line for line in text.splitlines() if line.startswith("| ") and "---" not in line]
    assert rows[0].startswith("| iteration | KPI FAR@100%R | vs target |")
    assert [r.split("|")[1].strip() for r in rows[1:]] == ["baseline", "**iter1** (best)", "iter2"]
    assert "| baseline | 6.67% | 5.7 pp from target (6.7% vs < 1.0%) | 8.89% |" in text
    state = json.loads((full_run / "deft_state.json").read_text())
    kept = state["iterations"]["iter1"]["rows_added"]["mining_pool"]
    assert f"{kept} mined from the pool, 2 synthetic" in rows[2]
    assert "Full report" not in text  # not rendered in this fixture


def test_summary_of_a_met_kpi_names_the_report(full_run: Path, tmp_path: Path) -> None:
    run = _copy(full_run, tmp_path)
    state = json.loads((run / "deft_state.json").read_text())
    state["iterations"]["iter2"]["kpi_far"] = 0.0
    state["stop"] = {"reason": "kpi_met"}
    save(run, state)
    render_report(run)
    text = run_summary_markdown(run)
    assert text.startswith(f"## DEFT run `{run.name}`: KPI met")
    assert "- Best model: iter2, KPI FAR 0.00%" in text
    assert "| **iter2** (best) | 0.00% | KPI met: 0.0% < 1.0% |" in text
    assert text.rstrip().endswith(f"Full report: `{run / REPORT_FILE}`")


def test_summary_of_a_hard_stop_and_of_a_run_at_the_gate(full_run: Path, tmp_path: Path) -> None:
    run = _copy(full_run, tmp_path)
    state = json.loads((run / "deft_state.json").read_text())
    state["stop"] = {
        "reason": "hard_stop",
        "iter": "iter2",
        "stage": "validate",
        "check": "leakage",
        "detail": "3 rows",
    }
    save(run, state)
    text = run_summary_markdown(run)
    assert text.startswith(f"## DEFT run `{run.name}`: hard stop at iter2 · validate [leakage]")
    assert "- Stop reason: `hard_stop` — a check stopped the run: 3 rows" in text

    pending, st = _new_run(tmp_path / "pending", tmp_path)
    st["approval"] = None
    st["status"] = "pending"
    save(pending, st)
    text = run_summary_markdown(pending)
    assert "waiting for approval at the gate" in text.splitlines()[0]
    assert "- Best model: none yet" in text and "| iteration |" not in text


def test_deft_status_markdown_prints_the_summary(full_run: Path) -> None:
    result = CliRunner().invoke(app, ["deft", "status", str(full_run), "--markdown"])
    assert result.exit_code == 0, result.output
    assert result.output == run_summary_markdown(full_run)


def test_deft_status_json_is_machine_readable(full_run: Path) -> None:
    result = CliRunner().invoke(app, ["deft", "status", str(full_run), "--json", "-n", "2"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["status"] == "complete" and data["stop"]["reason"] == "max_iterations"
    assert [e["stage"] for e in data["log"]] == ["report", "rca"]


def _workflow() -> dict:
    blocks = re.findall(r"```yaml\n(.*?)```", DOCS.read_text(encoding="utf-8"), re.DOTALL)
    assert blocks, "docs/ci.md has no yaml block"
    return yaml.safe_load(blocks[0])


def test_documented_workflow_uses_real_commands_and_flags() -> None:
    workflow = _workflow()
    (job,) = workflow["jobs"].values()
    scripts = "\n".join(step.get("run", "") for step in job["steps"])
    assert "GITHUB_STEP_SUMMARY" in scripts and "--markdown" in scripts
    used: dict[str, set[str]] = {}
    for line in scripts.replace("\\\n", " ").splitlines():
        if "specloop deft" not in line:
            continue
        words = shlex.split(line[line.index("specloop deft") :], comments=True)
        used.setdefault(words[2], set()).update(w.split("=")[0] for w in words[3:] if w.startswith("--"))
    assert {"run", "status"} <= set(used)
    runner = CliRunner()
    for command, flags in used.items():
        help_text = runner.invoke(app, ["deft", command, "--help"], env={"COLUMNS": "200"}).output
        for flag in flags:
            assert flag in help_text, (
                f"docs/ci.md uses `specloop deft {command} {flag}`, which does not exist"
            )
