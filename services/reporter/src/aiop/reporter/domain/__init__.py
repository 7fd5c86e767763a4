"""Pure logic of the reporter: folding events into per-workflow summaries."""

from aiop.reporter.domain.report import ReportState, StepMark, fold, to_report

__all__ = ["ReportState", "StepMark", "fold", "to_report"]
