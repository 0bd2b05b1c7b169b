"""The create flow's coder: measure every candidate and choose (A2), then render the project and run
every task's acceptance command into the build log (A3)."""

from __future__ import annotations

from pathlib import Path

import git

from specloop.agents.base import StageResult
from specloop.agents.create.common import (
    SCRATCH,
    TASKS_JSON,
    TECH_JSON,
    TECH_MD,
    CreateAgent,
    python,
)
from specloop.agents.create.planner import tasks_from_json
from specloop.errors import HardStop
from specloop.families import get_family
from specloop.families.base import Family
from specloop.ledger import state as ledger_state
from specloop.ledger.files import atomic_write_json, atomic_write_text, read_json
from specloop.skills.scaffold.codegen import project_answers, read_answers, render_project
from specloop.skills.scaffold.measure import (
    Measurement,
    extrapolate,
    measure_candidate,
    predict_epoch_seconds,
)
from specloop.skills.scaffold.tasks import BuildLog
from specloop.skills.scaffold.tech import FULL_EPOCHS, choose, dataset_samples, render_tech_md

BENCH_STEPS = 5


def mini_train_samples(family: Family) -> int:
    """Roughly how many samples one epoch on the mini set trains on (for the epoch-time prediction)."""
    return family.mini_per_class * max(len(family.labels), 1)


def commit_all(project: Path, message: str) -> str:
    """Commit everything in the target project (a git repository of its own); the new commit's sha."""
    repo = git.Repo(project) if (project / ".git").is_dir() else git.Repo.init(project)
    with repo.config_writer() as cfg:
        cfg.set_value("user", "name", "specloop")
        cfg.set_value("user", "email", "specloop@localhost")
    repo.git.add(A=True)
    if repo.is_dirty(index=True, untracked_files=True) or not repo.head.is_valid():
        repo.index.commit(message)
    return repo.head.commit.hexsha


class CreateCoder(CreateAgent):
    role = "coder"

    def _runner(self, label: str):
        def runner(argv: list[str], cwd: Path, timeout_s: float) -> tuple[int, str, str, float]:
            rec = self.run_command("tech", label, argv, cwd=cwd, timeout_s=timeout_s, name=cwd.name)
            return rec.exit_code, rec.stdout_tail, rec.stderr_tail, rec.seconds

        return runner

    def tech(self, label: str) -> StageResult:
        req = self.read_requirements()
        family = get_family(str(req.family))
        batch = int(
            project_answers(family, family.candidates[0], project_name="probe")["config"]["train"][
                "batch_size"
            ]
        )
        measured: dict[str, Measurement] = {}
        for c in family.candidates:
            measured[c.name] = self.tool(
                "scaffold.measure_candidate",
                "tech",
                label,
                measure_candidate,
                family=family,
                candidate=c,
                scratch_dir=self.out / SCRATCH / "measure",
                batch_size=batch,
                steps=BENCH_STEPS,
                python=python(),
                runner=self._runner(label),
            )
        samples = family.full_train_samples or dataset_samples(family.full_dataset.size)
        estimates = {n: extrapolate(m, samples=samples, epochs=FULL_EPOCHS) for n, m in measured.items()}
        latency = req.item("sla.latency").value
        latency_ms = float(latency["max_ms"]) if isinstance(latency, dict) and "max_ms" in latency else None
        chosen, reasons = choose(
            family, measured, hardware=req.item("constraint.hardware").value, latency_ms=latency_ms
        )
        m = measured[chosen]
        facts = {
            "chosen": chosen,
            "params": m.params,
            "train_samples_per_sec": m.train_samples_per_sec,
            "latency_ms_b1": m.latency_ms_b1,
            "cpu_train_seconds": estimates[chosen]["cpu_train_seconds"]["value"],
        }
        offline = (
            f"{chosen} has {m.params:,} parameters, trains at {m.train_samples_per_sec:.1f} samples/s and answers "
            f"in {m.latency_ms_b1:.2f} ms at batch 1 on this machine (measured)."
        )
        rationale = self.draft(
            "tech",
            label,
            task="In two sentences, tell the user why this candidate was chosen for their requirement.",
            facts=facts,
            offline=offline,
            max_words=80,
        )
        text = render_tech_md(family, measured, estimates, chosen, reasons, rationale=rationale)
        atomic_write_text(self.out / TECH_MD, text)
        predicted = predict_epoch_seconds(m, mini_train_samples(family))
        atomic_write_json(
            self.out / TECH_JSON,
            {
                "family": family.name,
                "chosen": chosen,
                "reasons": reasons,
                "measurements": {n: x.to_dict() for n, x in measured.items()},
                "estimates": estimates,
                "predicted_epoch_seconds": round(predicted, 2),
                "mini_train_samples": mini_train_samples(family),
            },
        )
        ledger_state.update(self.ctx.run_dir, lambda st: st.__setitem__("candidate", chosen))
        return StageResult(
            f"measured {len(measured)} candidates; chose {chosen} ({m.params:,} params, "
            f"{m.train_samples_per_sec:.0f} samples/s, {m.latency_ms_b1:.1f} ms at batch 1)",
            {"chosen": chosen, "predicted_epoch_seconds": round(predicted, 2)},
        )

    def codegen(self, label: str) -> StageResult:
        """Render the project (or keep the one a killed run rendered with the same answers), then run
        every task's acceptance command and tick only what passed."""
        st = self.ctx.state()
        req = self.read_requirements()
        family = get_family(str(req.family))
        candidate = family.candidate(read_json(self.out / TECH_JSON)["chosen"])
        labels = req.item("labels").value
        answers = project_answers(
            family,
            candidate,
            project_name=st["project_name"],
            labels=[str(x) for x in labels] if isinstance(labels, list) else None,
            requirement=req.source,
        )
        project = self.project_dir()
        if (
            project.exists()
            and (project / ".specloop-answers.yml").is_file()
            and read_answers(project) == answers
        ):
            self.record("resume", "codegen", label, kept=project.name)
        else:
            self.tool(
                "scaffold.render_project", "codegen", label, render_project, answers=answers, out_dir=project
            )
        commit_all(
            project,
            f"specloop create: render {family.name}/{candidate.name} (template {answers['template_version']})",
        )
        tasks = tasks_from_json(self.out / TASKS_JSON)
        log = BuildLog(project.name, tasks)
        failed = self.run_tasks("codegen", label, tasks, log, phase="build", keep_going=False)
        if failed is not None:
            task, rec = failed
            tail = (rec.stderr_tail or rec.stdout_tail).strip().splitlines()[-1:] or [""]
            raise HardStop("task-failed", f"{task.id} ({task.shown()}) {rec.message}: {tail[0][:300]}")
        return StageResult(
            f"rendered {project.name} ({family.name}/{candidate.name}); {len(tasks)}/{len(tasks)} tasks passed",
            {"project": project.name, "tasks_passed": len(tasks)},
        )
