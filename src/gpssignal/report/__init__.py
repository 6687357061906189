"""Reports: figures (matplotlib) and the HTML / Markdown evaluation report.

The names below are loaded on first use (PEP 562), so that importing a light
module of the package (:mod:`gpssignal.report.numbers`, which the command
line needs at start-up) does not import pandas, SciPy and matplotlib.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gpssignal.report.document import (
        build_report,
        comparison_table,
        headline_table,
        verdict_sentences,
    )

__all__ = ["build_report", "comparison_table", "headline_table", "verdict_sentences"]


def __getattr__(name: str) -> Any:
    """Return a name of :mod:`gpssignal.report.document`, imported on first use."""
    if name in __all__:
        from gpssignal.report import document

        return getattr(document, name)
    raise AttributeError(f"module 'gpssignal.report' has no attribute {name!r}")
