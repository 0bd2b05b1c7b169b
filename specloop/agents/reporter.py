"""Reporter: iteration summaries and the HTML report, rendered from the ledger."""

from __future__ import annotations

from specloop.agents.base import Agent
from specloop.ledger.files import atomic_write_text
from specloop.skills.report import iteration_summary, render_report


class Reporter(Agent):
    role = "reporter"

    def report(self, iter_label: str) -> str:
        summary = iteration_summary(self.ctx.run_dir, iter_label)
        atomic_write_text(self.ctx.run_dir / f"{iter_label}_summary.md", summary)
        path = self.tool(
            "report.render_report", "report", iter_label, render_report, run_dir=self.ctx.run_dir
        )
        return f"wrote {iter_label}_summary.md and {path.name}"

    def final_report(self) -> None:
        render_report(self.ctx.run_dir)
