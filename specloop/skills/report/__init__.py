"""The DEFT run report: `DEFT_Loop_Report.html` and `iterN_summary.md`, from the run directory alone."""

from specloop.skills.report.render import REPORT_FILE, render_report
from specloop.skills.report.text import MAX_SUMMARY_WORDS, final_status_phrase, iteration_summary

__all__ = ["MAX_SUMMARY_WORDS", "REPORT_FILE", "final_status_phrase", "iteration_summary", "render_report"]
