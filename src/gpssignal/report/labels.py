"""Human names of the evaluation's arms, for the report's text and figures.

Kept apart from :mod:`gpssignal.report.plots` so that the report's text can
be built without importing matplotlib.
"""

from __future__ import annotations

__all__ = ["LABELS", "arm_label"]

LABELS = {"fixed": "fixed timing", "tod": "time of day", "gps": "GPS controller",
          "oracle": "hindsight bound"}


def arm_label(c: str) -> str:
    """Return a human name of an evaluation arm (``fixed:peak`` → ``peak fixed``)."""
    kind, _, program = c.partition(":")
    if kind == "fixed" and program:
        return f"{program} fixed"
    return LABELS.get(c, c)
