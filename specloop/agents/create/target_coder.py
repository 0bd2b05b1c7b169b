"""Part B's coder: the 1-epoch run with its bounded bug-fix loop (B3), and the full-training
guidance with its 2-process torchrun check (B4)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import git
from dotenv import dotenv_values
from langchain_core.messages import HumanMessage, SystemMessage

from specloop.agents.base import StageResult
from specloop.agents.create.coder import commit_all
from specloop.agents.create.common import TECH_JSON
from specloop.agents.create.target_common import MINI_COMMAND, TargetAgent
from specloop.errors import HardStop
from specloop.ledger.files import atomic_write_json, atomic_write_text, read_json
from specloop.ledger.redaction import collect_secrets, redact
from specloop.llm import BudgetExceeded, LLMError
from specloop.sandbox import CommandRecord
from specloop.skills.scaffold.tech import dataset_samples
from specloop.skills.target.bugfix import Attempt, BugfixReport, Issue
from specloop.skills.target.fixes import FixContext, FixNotApplicable, apply_fix, read_config
from specloop.skills.target.fixrules import Signature, load_rules, match, normalise, signature_of
from specloop.skills.target.guidance import numbers, render_guidance
from specloop.skills.target.patch import PatchRejected, apply_diff, diff_of, failure_view

ONE_EPOCH = ("scripts/train.py", "--data", "data/mini", "--epochs", "1", "--output", "outputs/one_epoch")
CHECKPOINT = "outputs/one_epoch/best.pt"
DDP_CHECK = (
    "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
    "scripts/train.py", "--data", "data/mini", "--epochs", "1", "--device", "cpu", "--output", "outputs/ddp_check",
)  # fmt: skip
MAX_ATTEMPTS = 5  # fixes tried at most; the run is repeated after each
RUN_TIMEOUT_S = 900
TEST_TIMEOUT_S = 900


def _output(rec: CommandRecord) -> str:
    if rec.log_path and Path(rec.log_path).is_file():
        return Path(rec.log_path).read_text(encoding="utf-8", errors="replace")
    return rec.stdout_tail + "\n" + rec.stderr_tail


def _final_json(rec: CommandRecord) -> dict[str, Any]:
    for line in reversed(_output(rec).splitlines()):
        if line.startswith("{"):
            try:
                return json.loads(line)
            except ValueError:
                continue
    return {}


class TargetCoder(TargetAgent):
    def _run(self, label: str, argv: list[str], name: str, timeout_s: float) -> CommandRecord:
        env = {"OMP_NUM_THREADS": "1"}
        return self.run_command(
            "one_epoch", label, argv, cwd=self.project_dir(), timeout_s=timeout_s, name=name, env=env
        )

    def one_epoch(self, label: str) -> StageResult:
        """Run one epoch; on failure fix by the rule table and run again, within the bounds of
        DEBUG_CODE.md; then check inference and the project's tests. The report is written either way."""
        project = self.project_dir()
        py = self.target_python()
        rules, source = load_rules(project / "DEBUG_CODE.md")
        self.record(
            "tool_result",
            "one_epoch",
            label,
            tool="target.load_rules",
            result={"rules": len(rules), "source": source},
        )
        repo = git.Repo(project)
        report = BugfixReport(project.name, "python " + " ".join(ONE_EPOCH))
        ctx = FixContext(project, py, MINI_COMMAND)
        tried: dict[str, tuple[Issue, Attempt]] = {}
        last: tuple[Issue, Attempt] | None = None
        rec = None
        for n in range(1, MAX_ATTEMPTS + 2):
            rec = self._run(label, [str(py), *ONE_EPOCH], f"run{n}", RUN_TIMEOUT_S)
            sig = signature_of(_output(rec), project, exit_code=rec.exit_code)
            if rec.limit_hit is not None:  # the sandbox stopped it: its message is the error
                sig = Signature("LimitExceeded", normalise(rec.message), "", normalise(rec.message))
            if last is not None:
                issue, attempt = last
                if sig is None or sig.key != attempt.key:
                    issue.status = "fixed"
                attempt.result = (
                    "passed"
                    if sig is None
                    else (
                        "the same error came back" if sig.key == attempt.key else f"next error: {sig.short()}"
                    )
                )
            if sig is None:
                report.run_ok = True
                break
            if sig.key in tried:
                by = tried[sig.key][1].rule or f"the diff of model {tried[sig.key][1].model}"
                report.stop_reason = f"the same error came back after its fix ({by})"
                break
            if n > MAX_ATTEMPTS:
                report.stop_reason = f"{MAX_ATTEMPTS} fix attempts used up"
                break
            rule = match(rules, sig)
            issue = Issue(
                sig.short(),
                sig.where,
                rule.id if rule else None,
                rule.does if rule else "no rule in DEBUG_CODE.md knows this error",
                rule.severity if rule else "critical",
                "open",
            )
            report.issues.append(issue)
            before = repo.head.commit.hexsha
            if rule is None:
                if self.ctx.llm is None:
                    report.stop_reason = f"no fix rule matches `{sig.short()}`; add one to DEBUG_CODE.md"
                    break
                try:
                    attempt = self._model_attempt(label, n, sig, _output(rec), report)
                except PatchRejected as exc:
                    report.stop_reason = f"no fix rule matches `{sig.short()}` and {exc}"
                    break
            else:
                try:
                    action = apply_fix(rule.fix, ctx, sig)
                except FixNotApplicable as exc:
                    report.stop_reason = f"rule {rule.id} matched but its fix does not apply: {exc}"
                    break
                sha = commit_all(project, f"specloop one_epoch: fix {rule.id} ({sig.type})\n\n{action}")
                diff = repo.git.diff(before, sha) if sha != before else ""
                attempt = Attempt(
                    n, sig.short(), rule.id, action, sha if sha != before else None, diff, "not run", sig.key
                )
                report.attempts.append(attempt)
                self.record(
                    "bugfix_attempt", "one_epoch", label, rule=rule.id, signature=sig.short(), commit=sha
                )
            tried[sig.key] = last = (issue, attempt)
        metrics = _final_json(rec) if report.run_ok and rec is not None else {}
        if report.run_ok:
            report.checkpoint = CHECKPOINT
            report.final_tests = [self._final_test(label, *t) for t in self._final_tests(py)]
        self._write_report(project, report)
        if not report.closed:
            left = report.stop_reason or "a final check failed"
            raise HardStop("bugfix-open", f"{left}; see {project.name}/bugfix_report.md")
        fixed = sum(i.status == "fixed" for i in report.issues)
        return StageResult(
            f"1 epoch passed after {len(report.attempts)} fix(es) ({fixed} issue(s) fixed); "
            f"{metrics.get('epoch_seconds', 0):.1f}s; {len(report.final_tests)} final checks passed",
            {"attempts": len(report.attempts), "fixed": fixed, "metrics": metrics, "checkpoint": CHECKPOINT},
        )

    def _model_attempt(
        self, label: str, n: int, sig: Signature, output: str, report: BugfixReport
    ) -> Attempt:
        """Ask the coder's model for a unified diff and apply it only when it applies cleanly to the
        files it was shown. A refused diff is recorded as an attempt and raised as PatchRejected; a
        spent budget writes the report first (the stage is redone on a resume with a larger one)."""
        llm = self.ctx.llm
        assert llm is not None
        project = self.project_dir()
        secrets = self._secrets(project)
        view = failure_view(output, project, secrets)
        messages = [SystemMessage(self.instructions("one_epoch")), HumanMessage(view.prompt(sig.short()))]
        try:
            answer = llm.invoke(messages, agent=self.role, stage="one_epoch").text
        except BudgetExceeded as exc:
            report.stop_reason = f"the LLM budget is spent ({exc.message})"
            self._write_report(project, report)
            raise
        except LLMError as exc:
            raise PatchRejected(f"the model call failed: {exc.message}") from None
        diff = diff_of(answer)
        rejected = None
        before = git.Repo(project).head.commit.hexsha
        sha = None
        try:
            if diff is None:
                raise PatchRejected("the model's answer holds no unified diff")
            paths = apply_diff(project, diff, list(view.files))
            action = f"applied the diff of model {llm.model} to {', '.join(paths)}"
            sha = commit_all(project, f"specloop one_epoch: model fix ({sig.type})\n\n{action}")
            diff = git.Repo(project).git.diff(before, sha)
        except PatchRejected as exc:
            rejected, action = exc, f"refused: {exc}"
        attempt = Attempt(
            n, sig.short(), None, action, sha, redact(diff or answer, secrets),
            "not run" if rejected is None else "not applied",
            sig.key, model=llm.model,
        )  # fmt: skip
        report.attempts.append(attempt)
        self.record(
            "bugfix_attempt", "one_epoch", label, rule=None, model=llm.model, signature=sig.short(),
            files=list(view.files), diff=attempt.diff, applied=rejected is None, commit=sha, result=action,
        )  # fmt: skip
        if rejected is not None:
            raise rejected
        return attempt

    def _secrets(self, project: Path) -> frozenset[str]:
        """The run's secrets and the project's own `.env` values: masked in what the model is shown."""
        env = project / ".env"
        own = collect_secrets(dotenv_values(env) if env.is_file() else {}, {})
        return frozenset(self.ctx.transcript.secrets) | own

    def _final_tests(self, py: Path) -> list[tuple[str, list[str]]]:
        return [
            ("infer reads the checkpoint", [str(py), "scripts/infer.py", "--checkpoint", CHECKPOINT, "--data", "data/mini", "--limit", "4"]),
            ("project tests", [str(py), "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", "tests"]),
        ]  # fmt: skip

    def _final_test(self, label: str, name: str, argv: list[str]) -> dict[str, Any]:
        rec = self._run(label, argv, name.split()[0] + "_final", TEST_TIMEOUT_S)
        shown = " ".join(["python", *argv[1:]])
        return {
            "name": name,
            "command": shown,
            "exit_code": rec.exit_code,
            "seconds": rec.seconds,
            "ok": rec.ok,
        }

    def _write_report(self, project: Path, report: BugfixReport) -> None:
        atomic_write_text(project / "bugfix_report.md", report.render())
        atomic_write_json(project / "bugfix_report.json", report.to_dict())
        commit_all(project, "specloop one_epoch: bugfix_report.md")

    def full_train_guidance(self, label: str) -> StageResult:
        project = self.project_dir()
        py = self.target_python()
        tech = read_json(self.out / TECH_JSON)
        family = self.family()
        samples = family.full_train_samples or dataset_samples(family.full_dataset.size)
        cfg = read_config(FixContext(project, py, MINI_COMMAND))
        n = numbers(tech, base_lr=float(cfg["train"]["lr"]), train_samples=samples)
        rec = self.run_command(
            "full_train_guidance",
            label,
            [str(py), *DDP_CHECK],
            cwd=project,
            timeout_s=RUN_TIMEOUT_S,
            name="ddp_check",
            env={"OMP_NUM_THREADS": "1"},
        )
        ddp = {"ok": rec.ok, "exit_code": rec.exit_code, "seconds": rec.seconds}
        one_epoch = self.ctx.state().get("stages", {}).get("one_epoch", {}).get("metrics", {})
        text = render_guidance(project.name, n, one_epoch=one_epoch, ddp_check=ddp, metric=family.metric)
        atomic_write_text(project / "full_train_guidance.md", text)
        sha = commit_all(project, "specloop full_train_guidance: full_train_guidance.md")
        if not rec.ok:
            raise HardStop(
                "ddp-check", f"the 2-process torchrun check {rec.message}: {rec.stderr_tail[-300:]}"
            )
        b = n["batches"]
        return StageResult(
            f"batch {b['24']['batch_size']}/{b['48']['batch_size']}/{b['80']['batch_size']} on 24/48/80 GB; "
            f"torchrun 2×CPU passed in {rec.seconds:.0f}s (commit {sha[:8]})",
            {"numbers": n, "ddp_check": ddp, "commit": sha},
        )
