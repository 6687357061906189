"""Reports: figures (matplotlib) and the HTML / Markdown evaluation report."""

from gpssignal.report.document import build_report, headline_table

__all__ = ["build_report", "headline_table"]
