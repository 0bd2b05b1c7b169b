"""The create flow's reviewer (A4): static and run checks on the generated project, offline fixes,
the build log's ticks against their records, and REVIEW_REPORT.md."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from specloop.agents.base import StageResult
from specloop.agents.create.coder import commit_all
from specloop.agents.create.common import BUILD_LOG, REVIEW_REPORT, CreateAgent, python
from specloop.errors import HardStop
from specloop.ledger.files import atomic_write_text
from specloop.skills.scaffold.review import ReviewItem, RunResult, render_review_report, review_project
from specloop.skills.scaffold.tasks import verify_build_log


class CreateReviewer(CreateAgent):
    role = "reviewer"

    def review(self, label: str) -> StageResult:
        project = self.project_dir()
        count = 0

        def runner(argv: Sequence[str], *, cwd: Path, env: Mapping[str, str], timeout: float) -> RunResult:
            nonlocal count
            count += 1
            rec = self.run_command(
                "review", label, list(argv), cwd=cwd, timeout_s=timeout, name=f"{count:02d}", env=env
            )
            return RunResult(rec.exit_code, rec.stdout_tail + rec.stderr_tail, rec.limit_hit == "timeout")

        items = self.tool(
            "scaffold.review_project",
            "review",
            label,
            review_project,
            project_dir=project,
            python=python(),
            fix=True,
            runner=runner,
        )
        problems = verify_build_log(self.out / BUILD_LOG)
        items.append(
            ReviewItem(
                id="build-log",
                title="Every [x] in the build log has a passing record",
                ok=not problems,
                evidence="; ".join(problems) or f"every tick in {BUILD_LOG} has a passing command record",
            )
        )
        atomic_write_text(self.out / REVIEW_REPORT, render_review_report(items))
        fixed = [f for item in items for f in item.fixed]
        if fixed:
            commit_all(project, "specloop review: " + "; ".join(fixed)[:200])
        failed = [i for i in items if not i.ok]
        if failed:
            raise HardStop("review", f"{failed[0].id}: {failed[0].evidence.splitlines()[0][:300]}")
        return StageResult(
            f"{len(items)} checks pass" + (f" after {len(fixed)} fix(es)" if fixed else ""),
            {"checks": len(items), "fixed": fixed},
        )
