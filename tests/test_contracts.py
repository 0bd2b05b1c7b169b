"""Stage contracts are validated when they load: every shipped contract, `specloop specs check` on
broken copies (one sentence per problem with file:line), a run that refuses broken specs before
pre-flight, and declared outputs that were not written failing the stage by their check id."""

from __future__ import annotations

import json
import re
import shutil
from functools import partial
from importlib import resources
from pathlib import Path

import pytest
from cli_helpers import specloop_cli

from specloop.errors import HardStop, SpecloopError, render
from specloop.pipelines import get_pipeline, list_pipelines
from specloop.skills.contracts import (
    CHECK_KINDS,
    CheckEnv,
    ContractLoadError,
    lint,
    load_contracts,
    output_check_id,
    run_checks,
)
from specloop.skills.contracts.load import parse_contracts

SHIPPED, PROBLEMS = lint()


_cli = partial(specloop_cli, timeout=120, columns=300)


@pytest.fixture
def spec_copy(tmp_path: Path) -> Path:
    """The shipped spec files, copied to be broken."""
    out = tmp_path / "specs"
    out.mkdir()
    for package in ("specloop.specs", "specloop.references"):
        for entry in resources.files(package).iterdir():
            if entry.name.endswith(".md"):
                (out / entry.name).write_text(entry.read_text(encoding="utf-8"), encoding="utf-8")
    return out


def _line_of(path: Path, needle: str) -> int:
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if needle in line:
            return n
    raise AssertionError(f"{needle!r} not in {path}")


def test_the_shipped_specs_are_clean() -> None:
    assert PROBLEMS == []
    assert _cli("specs", "check").returncode == 0


@pytest.mark.parametrize("key", sorted(SHIPPED.contracts), ids=lambda k: f"{k[0]}:{k[1]}")
def test_every_shipped_contract(key: tuple[str, str]) -> None:
    contract = SHIPPED.contracts[key]
    pipeline = get_pipeline(contract.pipeline)
    stage = pipeline.stage(contract.stage)
    assert contract.owner == stage.agent
    assert contract.checks, "a contract has at least one done-when check"
    assert len({c.id for c in contract.checks}) == len(contract.checks)
    assert all(c.check in CHECK_KINDS for c in contract.checks)
    assert contract.prose, "prose and contract sit in one section"


@pytest.mark.parametrize("pipeline", list_pipelines(), ids=lambda p: p.name)
def test_every_pipeline_stage_has_a_contract(pipeline) -> None:
    for stage in pipeline.stages:
        assert SHIPPED.get(pipeline.name, stage.name) is not None or stage.gate, stage.name


BREAKS = [
    # (file, text to replace, replacement, rule, text on the reported line)
    (
        "pipeline.md",
        'check: exists, path: "{iter}/train/latest.pth"',
        'check: exist, path: "{iter}/train/latest.pth"',
        "check-kind",
        "check: exist,",
    ),
    (
        "pipeline.md",
        '{id: holdout-scored, check: exists, path: "{iter}/evaluate/holdout/metrics.json",',
        "{id: holdout-scored, check: exists,",
        "check",
        "holdout-scored",
    ),
    ("pipeline.md", "owner: coder", "owner: reporter", "owner", "owner: reporter"),
    (
        "pipeline.md",
        '"{iter}/train/best_val.pth", name:',
        '"{iteration}/train/best_val.pth", name:',
        "template",
        "{iteration}",
    ),
    (
        "pipeline.md",
        "stage: train\nowner: coder\n",
        "stage: train\nowner: coder\ncolour: blue\n",
        "schema",
        "colour",
    ),
]


@pytest.mark.parametrize(("file", "old", "new", "rule", "on_line"), BREAKS, ids=[b[3] for b in BREAKS])
def test_specs_check_names_file_line_and_rule(
    spec_copy: Path, file: str, old: str, new: str, rule: str, on_line: str | None
) -> None:
    path = spec_copy / file
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    proc = _cli("specs", "check", str(spec_copy))
    assert proc.returncode == 2, proc.stderr
    problems = [line for line in proc.stderr.splitlines() if line.startswith(str(path))]
    assert len(problems) == 1, proc.stderr
    where, _, message = problems[0].partition(": ")
    assert message.startswith(f"[{rule}] ")
    if on_line is not None:
        assert int(where.rsplit(":", 1)[1]) == _line_of(path, on_line)


def test_a_duplicate_stage_names_both_places(spec_copy: Path) -> None:
    text = (spec_copy / "prepare-for-inference.md").read_text(encoding="utf-8")
    (spec_copy / "zz_extra.md").write_text(text, encoding="utf-8")
    _, problems = lint([spec_copy])
    (dup,) = problems
    assert dup.rule == "duplicate-stage" and dup.file.endswith("zz_extra.md")
    assert (
        f"prepare-for-inference.md:{_line_of(spec_copy / 'prepare-for-inference.md', 'pipeline: deft')}"
        in dup.message
    )


def test_a_missing_contract_and_a_yaml_error(spec_copy: Path) -> None:
    path = spec_copy / "pipeline.md"
    text = path.read_text(encoding="utf-8")
    start = text.index("```yaml contract\npipeline: deft\nstage: inference")
    end = text.index("```", start + 3)
    path.write_text(text[:start] + text[end + 3 :], encoding="utf-8")
    (spec_copy / "broken.md").write_text("# x\n\n```yaml contract\npipeline: deft\nstage: x: y\n```\n")
    _, problems = lint([spec_copy])
    rules = {p.rule: p for p in problems}
    assert "stage 'inference', which has no contract" in rules["missing-contract"].message
    assert rules["yaml"].file.endswith("broken.md") and rules["yaml"].line == 5


def test_the_deft_run_refuses_broken_specs_before_preflight(
    spec_copy: Path, tiny_workspace: Path, tmp_path: Path
) -> None:
    ws = tmp_path / "ws"
    shutil.copytree(tiny_workspace, ws)
    path = spec_copy / "pipeline.md"
    path.write_text(path.read_text(encoding="utf-8").replace("check: csv_rows", "check: csv_row", 1))
    proc = _cli("deft", "run", "-w", str(ws), "--yes", "--specs", str(spec_copy))
    assert proc.returncode == 2
    assert (
        "[check-kind]" in proc.stderr
        and f"{path}:" in proc.stderr
        and "did you mean 'csv_rows'" in proc.stderr
    )
    assert "Traceback" not in proc.stderr
    assert not (ws / "results").exists(), "nothing was created before the specs were valid"
    with pytest.raises(ContractLoadError):
        load_contracts([spec_copy])


def test_an_output_not_written_fails_by_its_check_id(tmp_path: Path) -> None:
    text = (
        "## report\n\nprose\n\n```yaml contract\npipeline: deft\nstage: report\nowner: reporter\n"
        'outputs: ["{iter}_summary.md", "{iter}/extra.json"]\n'
        'done_when:\n  - {id: summary-written, check: exists, path: "{iter}_summary.md", name: "summary"}\n```\n'
    )
    (contract,), problems = parse_contracts(text, "x.md")
    assert problems == []
    (tmp_path / "iter1_summary.md").write_text("s")
    results = {r.check: r for r in run_checks(contract, CheckEnv(tmp_path, {"iter": "iter1"}))}
    assert results["summary-written"].ok
    assert results[output_check_id("{iter}_summary.md")].ok
    missing = results[output_check_id("{iter}/extra.json")]
    assert (
        not missing.ok
        and missing.check == "output:{iter}/extra.json"
        and "iter1/extra.json" in missing.detail
    )


def test_a_stage_whose_declared_output_is_missing_stops_on_that_id(
    finished_tiny_run: Path, spec_copy: Path, tmp_path: Path
) -> None:
    from specloop.graph import deft
    from specloop.ledger import loop_log

    ws = tmp_path / "ws"
    shutil.copytree(finished_tiny_run, ws)
    (run,) = sorted((ws / "results").glob("run_*"))
    lines = (run / "loop_log.jsonl").read_text(encoding="utf-8").splitlines()
    keep = []
    for line in lines:
        if (json.loads(line)["iter"], json.loads(line)["stage"]) == ("iter1", "report"):
            break
        keep.append(line)
    (run / "loop_log.jsonl").write_text("\n".join(keep) + "\n", encoding="utf-8")
    path = spec_copy / "pipeline.md"
    path.write_text(
        path.read_text(encoding="utf-8").replace(
            'outputs: ["{iter}_summary.md", "DEFT_Loop_Report.html"]',
            'outputs: ["{iter}_summary.md", "DEFT_Loop_Report.html", "{iter}/never_written.txt"]',
        )
    )
    state = {
        "run_dir": str(run),
        "workspace": str(ws),
        "options": {"progress": False, "specs": [str(spec_copy)]},
        "iteration": 1,
    }
    assert deft.node("report")(state) == {"halt": "hard_stop"}
    stop = json.loads((run / "deft_state.json").read_text())["stop"]
    assert stop["check"] == "output:{iter}/never_written.txt" and "iter1/never_written.txt" in stop["detail"]
    assert loop_log.read_entries(run / "loop_log.jsonl")[-1]["status"] == "error"


def test_one_rule_field_rendered_in_one_place() -> None:
    stop = HardStop("leakage", "the KPI set leaks into training")
    assert stop.rule == stop.check == "leakage" and str(stop) == "the KPI set leaks into training"
    assert render(stop) == "[leakage] the KPI set leaks into training"
    assert SpecloopError("bad").rule == "input"
    assert render(SpecloopError("x", rule="spec-path")) == "[spec-path] x"


def test_pipeline_md_states_the_registry_order() -> None:
    text = resources.files("specloop.specs").joinpath("pipeline.md").read_text(encoding="utf-8")
    order = text[text.index("Order: `") + len("Order: `") :]
    order = order[: order.index("`")]
    named = [w for w in re.findall(r"[a-z_]+", order) if w not in ("stop",)]
    deft = get_pipeline("deft")
    expected = [*deft.order("baseline"), *deft.order("iteration"), *deft.order("final")]
    assert named == expected
