"""Reporter: iteration summaries and the HTML report, rendered from the ledger.

The numbers and tables always come from the tools; with a model, the summaries' wording and the
report's opening narrative are the model's, after every number in them was checked."""

from __future__ import annotations

from typing import Any

from specloop.agents.base import Agent, StageResult
from specloop.ledger.files import atomic_write_text
from specloop.skills.report import iteration_summary, render_report
from specloop.skills.report.text import MAX_SUMMARY_WORDS

_SUMMARY_FACTS = (
    "kpi_far",
    "kpi_threshold",
    "kpi_auroc",
    "holdout_far",
    "holdout_auroc",
    "chosen",
    "candidates",
    "routing",
    "mining",
    "rows_added",
    "assembled",
    "targets_by_label",
)


class Reporter(Agent):
    role = "reporter"

    def report(self, iter_label: str) -> StageResult:
        offline = iteration_summary(self.ctx.run_dir, iter_label)
        title, _, body = offline.partition("\n")
        st = self.ctx.state()
        it = st["iterations"].get(iter_label, {})
        facts = {
            "iteration": iter_label,
            "kpi_target": st["config"]["far_target"],
            **{k: it[k] for k in _SUMMARY_FACTS if k in it},
        }
        if "mining" in it:  # counts only: the embedder's version string names a checkpoint hash
            facts["mining"] = {k: v for k, v in it["mining"].items() if isinstance(v, int | float)}
        text = self.draft(
            "report",
            iter_label,
            task=f"Write the summary of DEFT iteration '{iter_label}' for the team: what was targeted, "
            "what was added, how the KPI and holdout FAR moved, and where the run stands.",
            facts=facts,
            offline=body.strip(),
            max_words=MAX_SUMMARY_WORDS - len(title.split()),
        )
        atomic_write_text(self.ctx.layout.iteration(iter_label).summary_md, f"{title}\n\n{text.strip()}\n")
        path = self.tool(
            "report.render_report",
            "report",
            iter_label,
            render_report,
            run_dir=self.ctx.run_dir,
            narrative=self._narrative(),
        )
        return StageResult(f"wrote {iter_label}_summary.md and {path.name}")

    def final_report(self) -> None:
        st = self.ctx.state()
        facts = {
            "kpi_target": st["config"]["far_target"],
            "stop": st.get("stop"),
            "best": st.get("best"),
            "trajectory": {
                label: {"kpi_far": it.get("kpi_far"), "holdout_far": it.get("holdout_far")}
                for label, it in st["iterations"].items()
                if "kpi_far" in it
            },
        }
        summary = self.draft(
            "report",
            "final",
            task="Write the opening paragraph of the final DEFT loop report: the problem, what the loop "
            "did, the KPI trajectory, and where the run ended, phrased neutrally (never 'failed').",
            facts=facts,
            offline="",
            max_words=200,
        )
        narrative = self._narrative() | ({"summary": summary} if summary else {})
        render_report(self.ctx.run_dir, narrative=narrative)

    def _narrative(self) -> dict[str, Any]:
        """Each iteration's RCA findings in words, shown on its card."""
        out = {}
        for label in self.ctx.state()["iterations"]:
            path = self.ctx.layout.iteration(label).rca_explanation
            if path.is_file():
                out[label] = path.read_text(encoding="utf-8").strip()
        return out
