"""Numbers as a report shows them: rounded to the precision their uncertainty allows.

Light on purpose (only ``math``): the command line imports it at start-up.
"""

from __future__ import annotations

import math

__all__ = ["format_estimate", "round_to_uncertainty"]


def round_to_uncertainty(value: float, half_width: float) -> tuple[float, int]:
    """Return ``value`` rounded to the precision its 95 % half-width allows, and the decimals.

    The half-width keeps two significant digits and the value is rounded to
    the same place (the usual rule for a result and its uncertainty, GUM
    §7.2.6): 1,366.66 ± 310 → 1,370 (tens); 0.7812 ± 0.16 → 0.78. Without a
    finite, positive half-width (one day only) three significant digits are
    kept.
    """
    if not math.isfinite(value):
        return value, 0
    if math.isfinite(half_width) and half_width > 0:
        place = math.floor(math.log10(half_width)) - 1
    elif value != 0:
        place = math.floor(math.log10(abs(value))) - 2
    else:
        return 0.0, 0
    decimals = max(0, -place)
    return round(value, -place) + 0.0, decimals


def format_estimate(value: float, low: float, high: float) -> tuple[str, str]:
    """Return ``value`` and ``[low, high]`` as text, rounded as :func:`round_to_uncertainty`."""
    if not math.isfinite(value):
        return "-", ""
    half = (high - low) / 2 if math.isfinite(low) and math.isfinite(high) else math.nan
    v, d = round_to_uncertainty(value, half)
    if not math.isfinite(half):
        return f"{v:,.{d}f}", ""
    lo, _ = round_to_uncertainty(low, half)
    hi, _ = round_to_uncertainty(high, half)
    return f"{v:,.{d}f}", f"[{lo:,.{d}f}, {hi:,.{d}f}]"
