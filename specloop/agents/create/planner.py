"""The create flow's planner: requirements (A1), the gate's answers, the task list (A3) and the
re-verification of every task."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from specloop.agents.base import StageResult
from specloop.agents.create.common import (
    BUILD_LOG,
    REQUIREMENTS,
    TASKS_JSON,
    TASKS_MD,
    TECH_JSON,
    CreateAgent,
    today,
)
from specloop.errors import HardStop
from specloop.ledger import state as ledger_state
from specloop.ledger.files import atomic_write_json, atomic_write_text, read_json
from specloop.pipelines.registry import GATE
from specloop.skills.scaffold.codegen import package_name
from specloop.skills.scaffold.requirements import (
    apply_answers,
    assume_recommended,
    done_when,
    parse_requirement,
)
from specloop.skills.scaffold.requirements_md import load_answers, render_requirements_md
from specloop.skills.scaffold.requirements_schema import Requirements
from specloop.skills.scaffold.tasks import (
    BuildLog,
    Task,
    plan_tasks,
    read_build_records,
    render_tasks_md,
)


def open_questions(req: Requirements) -> list[dict[str, Any]]:
    return [q.model_dump(mode="json") for q in req.questions if q.answer is None]


def tasks_from_json(path: Path) -> list[Task]:
    return [
        Task(
            t["id"], t["title"], tuple(t["inputs"]), tuple(t["outputs"]), tuple(t["command"]), t["estimate_s"]
        )
        for t in read_json(path)
    ]


class CreatePlanner(CreateAgent):
    role = "planner"

    def requirements(self, label: str) -> StageResult:
        text = self.ctx.config()["requirement"]
        req = self.tool("scaffold.parse_requirement", "requirements", label, parse_requirement, text=text)
        atomic_write_text(self.out / REQUIREMENTS, render_requirements_md(req))
        name = str(req.item("project_name").value)
        ledger_state.update(self.ctx.run_dir, lambda st: st.update(project_name=name, family=req.family))
        feasible = "feasible" if req.feasibility.feasible else "NOT feasible here"
        summary = (
            f"{len(req.items)} items, {len(req.questions)} question(s); family {req.family or 'none'}; "
            f"{feasible}; project {name}"
        )
        return StageResult(
            summary,
            {"family": req.family, "feasible": req.feasibility.feasible, "questions": len(req.questions)},
        )

    def gate_request(self, label: str) -> dict[str, Any]:
        """What the gate asks (read only: LangGraph re-runs the gate node up to its interrupt)."""
        req = self.read_requirements()
        return {
            "question": "Create this project? (go/yes)",
            "summary": (self.out / REQUIREMENTS).read_text(encoding="utf-8"),
            "questions": open_questions(req),
            "feasible": req.feasibility.feasible,
            "run_dir": str(self.out),
        }

    def approve(self, label: str) -> StageResult:
        """Write the answers (a file, the prompt, or --yes's recorded assumptions) into requirements.md,
        then hold A1's done-when: a requirement that is still infeasible or unresolved stops here."""
        answer = self.ctx.gate_answer or {}
        by = str(answer.get("by", "unknown"))
        req = self.read_requirements()
        answers = dict(answer.get("answers") or {})
        answers_file = self.ctx.config()["options"].get("answers")
        if answers_file:
            answers = {**load_answers(Path(answers_file)), **answers}
        if answers:
            source = Path(answers_file).name if answers_file else "the gate"
            req = apply_answers(req, answers, source=source, today=today())
        if answer.get("assume"):
            req = assume_recommended(req, today=today())
        atomic_write_text(self.out / REQUIREMENTS, render_requirements_md(req))
        at = datetime.now(UTC).isoformat(timespec="seconds")
        name = str(req.item("project_name").value)

        def approve(st: dict[str, Any]) -> None:
            st["approval"] = {"approved": bool(answer.get("approved")), "by": by, "at": at}
            st["status"] = "in_progress"
            st.update(project_name=name, family=req.family, project_dir=name)

        ledger_state.update(self.ctx.run_dir, approve)
        self.record("approval", GATE, label, approved=bool(answer.get("approved")), by=by, answers=answers)
        problems = done_when(req)
        if problems:
            rule = "infeasible" if not req.feasibility.feasible else "requirements-unresolved"
            more = f" ({len(problems) - 1} more)" if len(problems) > 1 else ""
            raise HardStop(
                rule, f"{problems[0]}{more}; the questions are in {REQUIREMENTS}, and no code was generated"
            )
        return StageResult(f"approved by {by}; {len(answers)} answer(s); family {req.family}")

    def tasks(self, label: str) -> StageResult:
        tech = read_json(self.out / TECH_JSON)
        name = self.ctx.state()["project_name"]
        tasks = plan_tasks(package=package_name(name), epoch_seconds=tech["predicted_epoch_seconds"])
        atomic_write_text(self.out / TASKS_MD, render_tasks_md(name, tasks))
        atomic_write_json(
            self.out / TASKS_JSON,
            [
                {
                    "id": t.id,
                    "title": t.title,
                    "inputs": list(t.inputs),
                    "outputs": list(t.outputs),
                    "command": list(t.command),
                    "estimate_s": t.estimate_s,
                }
                for t in tasks
            ],
        )
        total = sum(t.estimate_s for t in tasks)
        return StageResult(f"{len(tasks)} tasks with acceptance commands, about {total:.0f}s in all")

    def verify_tasks(self, label: str) -> StageResult:
        """Re-run every task's acceptance command; any failure stops naming the task."""
        tasks = tasks_from_json(self.out / TASKS_JSON)
        project = self.project_dir()
        log = BuildLog(project.name, tasks, read_build_records(self.out / BUILD_LOG))
        failed = self.run_tasks("verify_tasks", label, tasks, log, phase="verify", keep_going=True)
        if failed is not None:
            task, rec = failed
            raise HardStop("task-failed", f"{task.id} ({task.shown()}) failed on re-run: {rec.message}")
        self._readme_verified(project, tasks)
        return StageResult(f"all {len(tasks)} acceptance commands pass again")

    def _readme_verified(self, project: Path, tasks: list[Task]) -> None:
        """The README says which commands were verified, and how (kept idempotent on a re-run)."""
        readme = project / "README.md"
        text = readme.read_text(encoding="utf-8").split("\n## Verified by specloop\n")[0].rstrip("\n")
        lines = [
            "",
            "## Verified by specloop",
            "",
            "Each command ran from the project root and exited 0:",
            "",
        ]
        lines += [f"- {t.id} {t.title}: `{t.shown()}`" for t in tasks]
        atomic_write_text(readme, text + "\n" + "\n".join(lines) + "\n")
