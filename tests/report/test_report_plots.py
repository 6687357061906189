"""The report's cheap line artists draw the pixels of one ``Line2D`` per line.

The time–space diagram draws its vehicle lines with one artist
(``plots._Polylines``), and the signal bars and Purdue cycle lines as one
collection each (``plots._segments``), instead of thousands of ``ax.plot``
lines. The PNGs must be byte-identical to the ``ax.plot`` drawing.
"""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from gpssignal.report.plots import _png, _Polylines, _segments


def _lines() -> list[np.ndarray]:
    """Polylines with fewer and with more than 128 points (Agg simplifies the latter), crossing."""
    rng = np.random.default_rng(7)
    out = []
    for k in range(40):
        n = int(rng.integers(2, 400))
        t = np.sort(rng.uniform(0, 900, n)) + k
        x = np.cumsum(rng.uniform(0, 3, n)) + rng.uniform(-20, 20)
        out.append(np.column_stack([t, x]))
    return out


def _with_tint(ax) -> None:
    # A patch under the lines and a wide line over them: the artists' order counts.
    ax.axhspan(100, 300, color="#1f77b4", alpha=0.05)


def test_polylines_draw_the_pixels_of_one_line2d_per_line() -> None:
    lines = _lines()
    fig = Figure(figsize=(6, 3))
    ax = fig.subplots()
    for xy in lines:
        ax.plot(xy[:, 0], xy[:, 1], color="#555555", lw=0.5)
    _with_tint(ax)
    ax.plot([0, 900], [200, 200], color="#2ca02c", lw=4, solid_capstyle="butt")
    limits = ax.get_xlim(), ax.get_ylim()
    plotted = _png(fig)

    fig = Figure(figsize=(6, 3))
    ax = fig.subplots()
    ax.add_artist(_Polylines(lines, "#555555", 0.5))
    ax.update_datalim(np.vstack(lines))
    _with_tint(ax)
    ax.plot([0, 900], [200, 200], color="#2ca02c", lw=4, solid_capstyle="butt")
    assert (ax.get_xlim(), ax.get_ylim()) == limits
    assert _png(fig) == plotted


def test_segments_draw_the_pixels_of_one_plotted_line_per_segment() -> None:
    # Horizontal segments that touch end to end (the caps overlap), in two
    # colours alternating, with the default (projecting) and butt caps.
    for cap, lw in ((None, 0.6), ("butt", 4.0)):
        segments = [[(10.0 * k, 5.0 + (k % 3)), (10.0 * (k + 1), 5.0 + (k % 3))]
                    for k in range(30)]
        colours = ["#2ca02c" if k % 2 else "#ffbf00" for k in range(30)]
        fig = Figure(figsize=(5, 2))
        ax = fig.subplots()
        for (a, b), colour in zip(segments, colours, strict=True):
            ax.plot([a[0], b[0]], [a[1], b[1]], color=colour, lw=lw,
                    **({"solid_capstyle": cap} if cap else {}))
        limits = ax.get_xlim(), ax.get_ylim()
        plotted = _png(fig)

        fig = Figure(figsize=(5, 2))
        ax = fig.subplots()
        ax.add_collection(_segments(segments, colours, lw, cap))
        assert (ax.get_xlim(), ax.get_ylim()) == limits
        assert _png(fig) == plotted, cap
