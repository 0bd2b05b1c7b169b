"""Part B's planner (B1): show the inherited rules, record what was inherited or customised."""

from __future__ import annotations

from pathlib import Path

from specloop.agents.base import StageResult
from specloop.agents.create.coder import commit_all
from specloop.agents.create.common import today
from specloop.agents.create.target_common import TargetAgent
from specloop.ledger.files import atomic_write_text
from specloop.skills.target.rules import key_rules, read_org_rules, render_inherited, render_local

SHOWN_RULES = 8


class TargetPlanner(TargetAgent):
    def inherit_rules(self, label: str) -> StageResult:
        project = self.project_dir()
        base = (project / "CLAUDE.md").read_text(encoding="utf-8")
        rules = key_rules(base)
        for rule in rules[:SHOWN_RULES]:
            self.ctx.console.print(f"  rule: {rule}", highlight=False, markup=False, soft_wrap=True)
        if len(rules) > SHOWN_RULES:
            self.ctx.console.print(
                f"  … {len(rules) - SHOWN_RULES} more in CLAUDE.md", highlight=False, markup=False
            )
        org_file = self.ctx.config()["options"].get("rules")
        if org_file:
            org = read_org_rules(Path(org_file))
            text, changes = render_local(base, org, Path(org_file).name, today())
            atomic_write_text(project / "CLAUDE.local.md", text)
            written, detail = "CLAUDE.local.md", f"{len(changes)} organisation rule(s) merged"
        else:
            atomic_write_text(project / "CLAUDE.inherited.md", render_inherited(base, today()))
            written, detail = "CLAUDE.inherited.md", "every rule inherited unchanged"
        self.record(
            "tool_result",
            "inherit_rules",
            label,
            tool="rules",
            result={"written": written, "rules": len(rules)},
        )
        sha = commit_all(project, f"specloop inherit_rules: {written}")
        return StageResult(
            f"{len(rules)} key rules shown; {written}: {detail} (commit {sha[:8]})",
            {"written": written, "key_rules": len(rules), "commit": sha},
        )
