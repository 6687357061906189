"""The reports' Jinja2 environment and their one table form.

Every HTML and Markdown report is rendered from ``report/templates/``
(package data, so an installed wheel has them). HTML templates autoescape;
Markdown cells go through :func:`gpssignal.report.document.md_text`.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from typing import Any

import jinja2

from gpssignal.model.scenario import Scenario
from gpssignal.model.signals import STATE_NAMES, state_at

__all__ = ["ENV", "STATE_COLOURS", "cell", "page_table", "timing_diagrams", "verdict_css"]

#: Colours of the signal states in the timing diagrams (red, red-amber, green, amber).
STATE_COLOURS = {"red": "#d62728", "red-amber": "#ff7f0e", "green": "#2ca02c",
                 "amber": "#ffbf00"}

ENV = jinja2.Environment(loader=jinja2.PackageLoader("gpssignal.report", "templates"),
                         autoescape=jinja2.select_autoescape(["html.j2"]),
                         keep_trailing_newline=True, undefined=jinja2.StrictUndefined)


def verdict_css(verdict: object) -> str:
    """Return the CSS class of a verdict: ``saves``, ``costs`` or ``none``."""
    v = str(verdict)
    if v in ("saves", "gains"):
        return "saves"
    if v in ("costs", "loses"):
        return "costs"
    return "none"


def cell(text: object, css: str = "") -> dict[str, str]:
    """Return one table cell (its text and CSS class)."""
    return {"text": str(text), "css": css}


def page_table(columns: Sequence[str], rows: Iterable[Sequence[object]],
               numeric: Iterable[str] = (), verdicts: Iterable[str] = ()) -> dict[str, Any]:
    """Return a table for the templates' ``table`` macro.

    ``numeric`` columns are right-aligned, ``verdicts`` columns coloured by
    their verdict.
    """
    num, ver = set(numeric), set(verdicts)
    out = []
    for r in rows:
        out.append([cell(v, verdict_css(v) if c in ver else "num" if c in num else "")
                    for c, v in zip(columns, r, strict=True)])
    return {"columns": list(columns), "rows": out}


def _segments(program: Any, group: str, amber_s: float, red_amber_s: float
              ) -> list[tuple[float, float, str]]:
    """Return the states of ``group`` over one cycle as ``(start_s, end_s, state)``."""
    c = float(program.cycle_s)
    edges = {0.0, c}
    if not program.is_permanent(group):
        start, end = program.greens[group]
        for t in (start, end, end + amber_s, start - red_amber_s):
            edges.add(float(t) % c)
    cuts = sorted(edges)
    out: list[tuple[float, float, str]] = []
    for a, b in itertools.pairwise(cuts):
        if b - a < 1e-9:
            continue
        state = STATE_NAMES[state_at(program, group, (a + b) / 2, amber_s, red_amber_s)]
        if out and out[-1][2] == state:
            out[-1] = (out[-1][0], b, state)
        else:
            out.append((a, b, state))
    return out


def timing_diagrams(sc: Scenario) -> list[dict[str, Any]]:
    """Return a signal timing diagram per junction and program, for the templates.

    Each diagram: ``title`` (junction, program, cycle, offset) and ``rows``,
    one per signal group: ``group``, ``green`` (its window in words) and
    ``segments`` (``state``, ``colour``, ``width_pct`` and ``text`` = the
    cycle seconds), from cycle second 0 to the cycle's end.
    """
    out = []
    for j in sc.junctions:
        amber, red_amber = j.timing.amber_s, j.timing.red_amber_s
        for pr in j.programs:
            rows = []
            for g in j.groups:
                if g not in pr.greens:
                    continue
                segs = [{"state": st, "colour": STATE_COLOURS[st],
                         "width_pct": f"{100 * (b - a) / pr.cycle_s:.3f}",
                         "text": f"{st} {a:g}–{b:g} s"}
                        for a, b, st in _segments(pr, g, amber, red_amber)]
                w = pr.greens[g]
                rows.append({"group": g, "segments": segs,
                             "green": f"{w[0]:g}–{w[1]:g} s ({pr.green_duration_s(g):g} s)"})
            tags = [t for t, name in (("default", j.default_program),
                                      ("relief", j.relief_program)) if name == pr.name]
            out.append({"title": f"{j.id}: {pr.name}{' (' + ', '.join(tags) + ')' if tags else ''}"
                                 f", cycle {pr.cycle_s:g} s, offset {pr.offset_s:g} s",
                        "rows": rows})
    return out
