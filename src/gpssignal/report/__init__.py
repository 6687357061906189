"""Reports: figures (matplotlib) and the HTML / Markdown evaluation report."""

from gpssignal.report.document import (
    build_report,
    comparison_table,
    headline_table,
    verdict_sentences,
)

__all__ = ["build_report", "comparison_table", "headline_table", "verdict_sentences"]
