"""Replication statistics: means with confidence intervals, paired differences.

Each replication is one simulated day. Days are independent (own seed) and,
within a day, every controller sees the same demand (common random numbers),
so controllers are compared pair by pair: the difference of a KPI is taken
day by day and its mean and confidence interval computed from those
differences (a paired t interval). This removes the day-to-day variation that
both controllers share and gives much narrower intervals than comparing two
independent means.

Definitions (docs/definitions.md, "Replications"):

* mean ± half-width, half-width = t(1 − α/2, n − 1) · s / √n, with s the
  sample standard deviation (ddof = 1) of the n replications;
* paired difference d_i = x_i(controller) − x_i(baseline) over the days both
  ran, reported with the same interval; relative change = mean(d) / mean(x_base).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

__all__ = ["Interval", "mean_ci", "paired_difference"]


@dataclass(frozen=True, slots=True)
class Interval:
    """A mean with its two-sided confidence interval.

    ``half_width`` is NaN with fewer than two values (no spread to estimate).
    """

    mean: float
    half_width: float
    n: int
    level: float

    @property
    def low(self) -> float:
        return self.mean - self.half_width

    @property
    def high(self) -> float:
        return self.mean + self.half_width


def mean_ci(values: np.ndarray | list[float], level: float = 0.95) -> Interval:
    """Mean and Student-t confidence interval of independent replications.

    NaN values (a KPI a replication could not measure) are left out and
    lower ``n``.
    """
    if not 0 < level < 1:
        raise ValueError(f"level = {level!r}: must be between 0 and 1")
    x = np.asarray(values, dtype=float)
    x = x[~np.isnan(x)]
    n = int(x.size)
    if n == 0:
        return Interval(float("nan"), float("nan"), 0, level)
    m = float(x.mean())
    if n < 2:
        return Interval(m, float("nan"), n, level)
    half = float(stats.t.ppf(0.5 + level / 2, n - 1) * x.std(ddof=1) / np.sqrt(n))
    return Interval(m, half, n, level)


def paired_difference(values: np.ndarray | list[float], baseline: np.ndarray | list[float],
                      level: float = 0.95) -> tuple[Interval, float]:
    """Paired difference ``values − baseline`` replication by replication.

    Both arrays are in replication order (the same seeds). Pairs where either
    value is NaN are dropped. Returns the interval of the mean difference and
    the relative change mean(d) / mean(baseline) over the same pairs (NaN if
    that mean is 0).
    """
    a = np.asarray(values, dtype=float)
    b = np.asarray(baseline, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"paired values need the same replications: {a.shape} vs {b.shape}")
    ok = ~(np.isnan(a) | np.isnan(b))
    iv = mean_ci(a[ok] - b[ok], level)
    base = float(b[ok].mean()) if ok.any() else float("nan")
    rel = iv.mean / base if base not in (0.0,) and not np.isnan(base) else float("nan")
    return iv, rel
