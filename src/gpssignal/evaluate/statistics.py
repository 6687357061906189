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

Ratios of paired means (docs/statistics.md) get their own interval, which
accounts for the denominator's uncertainty and its covariance with the
numerator: Fieller's (1954) for :func:`relative_change` and
:func:`capture_ratio` (via :func:`ratio_of_paired_means`), with a paired
percentile bootstrap (:func:`bootstrap_ratio_ci`) as a distribution-free
check. :func:`verdict` turns an interval into "saves" / "no detectable
difference" / "costs" (or "gains" / "loses" for higher-is-better KPIs), and
:func:`needs_more_days` drives an ``--until-ci`` loop.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "NO_DIFFERENCE",
    "VERDICT_WORDS",
    "Interval",
    "RatioInterval",
    "bootstrap_ratio_ci",
    "capture_ratio",
    "days_for_half_width",
    "direction",
    "fieller_interval",
    "half_width",
    "mean_ci",
    "needs_more_days",
    "paired_difference",
    "ratio_of_paired_means",
    "relative_change",
    "verdict",
]


def _special() -> Any:
    """Return :mod:`scipy.special`, imported on first use.

    Its quantile functions are what ``scipy.stats`` computes ``t.ppf`` and
    ``norm.ppf`` with (``stdtrit``, ``ndtri``: the same numbers), without
    importing ``scipy.stats`` (0.6 s of CPU, most of it preparing the
    distributions' documentation). Commands that never compute an interval
    (``gpssignal run``) do not import either.
    """
    from scipy import special

    return special


@functools.lru_cache(maxsize=256)
def _t_quantile(q: float, df: int) -> Any:
    """Student-t quantile ``q`` with ``df`` degrees of freedom.

    Cached: an evaluation asks for the same few thousands of times.
    """
    return _special().stdtrit(df, q)


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
        """Return the lower bound (mean − half-width)."""
        return self.mean - self.half_width

    @property
    def high(self) -> float:
        """Return the upper bound (mean + half-width)."""
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
    half = float(_t_quantile(0.5 + level / 2, n - 1) * x.std(ddof=1) / np.sqrt(n))
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


# ---------------------------------------------------------------------------
# Ratios of paired means: relative change and capture ratio
# ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RatioInterval:
    """A ratio of two paired means with its confidence interval.

    ``mean`` is the point estimate mean(num) / mean(den) (dimensionless).
    Fieller's interval is not symmetric about it, so the bounds are stored.
    ``bounded`` is False when no finite interval exists at this level (the
    denominator's mean is not distinguishable from 0): ``low``/``high`` are
    then −inf/+inf and ``reason`` says why. With fewer than two pairs the
    bounds are NaN and ``bounded`` is False.
    """

    mean: float
    low: float
    high: float
    n: int
    level: float
    method: str
    bounded: bool
    reason: str = ""

    @property
    def half_width(self) -> float:
        """(high − low) / 2 (dimensionless): inf when unbounded, NaN when undefined."""
        return (self.high - self.low) / 2


def _paired(*arrays: np.ndarray | list[float]) -> tuple[np.ndarray, ...]:
    """Float arrays of the same shape with every pair (row) holding a NaN dropped."""
    xs = [np.asarray(x, dtype=float) for x in arrays]
    if any(x.shape != xs[0].shape for x in xs) or xs[0].ndim != 1:
        shapes = " vs ".join(str(x.shape) for x in xs)
        raise ValueError(f"paired values need the same replications: {shapes}")
    ok = ~np.any(np.isnan(np.vstack(xs)), axis=0)
    return tuple(x[ok] for x in xs)


def _check_level(level: float) -> None:
    if not 0 < level < 1:
        raise ValueError(f"level = {level!r}: must be between 0 and 1")


def _too_few(num: np.ndarray, den: np.ndarray, level: float, method: str) -> RatioInterval:
    """Return the interval of 0 or 1 pair: a point estimate at most, no bounds."""
    n = int(num.size)
    md = float(den.mean()) if n else float("nan")
    est = float(num.mean()) / md if n and md != 0 else float("nan")
    why = "no complete pairs" if n == 0 else "one pair: no spread to estimate"
    nan = float("nan")
    return RatioInterval(est, nan, nan, n, level, method, False, why)


def fieller_interval(mu: float, mv: float, var_u: float, var_v: float, cov_uv: float,
                     q: float) -> tuple[float, float, str]:
    """Fieller's confidence set for μ_u / μ_v from two correlated estimates.

    Parameters
    ----------
    mu, mv : float
        Estimates of the numerator and denominator means (any units).
    var_u, var_v, cov_uv : float
        Variances and covariance *of the estimates* (units²; for sample means
        the sample (co)variances divided by n).
    q : float
        The critical value: t(1 − α/2, ν) (or z for known variances).

    Returns
    -------
    low, high, reason : float, float, str
        The finite interval and "" when μ_v is distinguishable from 0, else
        (−inf, inf) and the reason.

    Notes
    -----
    The set {θ : (mu − θ·mv)² ≤ q²·(var_u − 2θ·cov_uv + θ²·var_v)} is the
    inversion of the t test of mu − θ·mv = 0 (Fieller 1954, J. R. Stat. Soc.
    B 16:175–185; Franz 2007, arXiv:0710.2024, eqs. 3–6). With
    A = mv² − q²·var_v, B = mu·mv − q²·cov_uv, C = mu² − q²·var_u it is
    A·θ² − 2B·θ + C ≤ 0, i.e. [(B − √(B² − AC))/A, (B + √(B² − AC))/A] when
    A > 0 (|mv| / √var_v > q). When A ≤ 0 it is the whole line or the
    complement of an interval; both are reported as (−inf, inf).
    """
    a = mv * mv - q * q * var_v
    b = mu * mv - q * q * cov_uv
    c = mu * mu - q * q * var_u
    disc = b * b - a * c
    if a > 0:
        root = np.sqrt(max(disc, 0.0))  # disc ≥ 0 in exact arithmetic when a > 0
        return float((b - root) / a), float((b + root) / a), ""
    ratio = abs(mv) / np.sqrt(var_v) if var_v > 0 else float("inf")
    why = (f"denominator mean not distinguishable from 0 (|mean| / se = {ratio:.3g} "
           f"≤ {q:.3g})")
    if a < 0 and disc > 0:
        r1, r2 = sorted(((b + np.sqrt(disc)) / a, (b - np.sqrt(disc)) / a))
        why += f": the confidence set is everything outside ({r1:.4g}, {r2:.4g})"
    else:
        why += ": the confidence set is the whole real line"
    return float("-inf"), float("inf"), why


def ratio_of_paired_means(num: np.ndarray | list[float], den: np.ndarray | list[float],
                          level: float = 0.95) -> RatioInterval:
    """Ratio mean(num) / mean(den) of paired samples with Fieller's interval.

    Parameters
    ----------
    num, den : array_like
        One value per replication (day), in the same order (the same seeds),
        in the same units. Pairs where either is NaN are dropped.
    level : float
        Two-sided confidence level, in (0, 1).

    Returns
    -------
    RatioInterval
        Dimensionless ratio; ``method = "fieller"``.

    Notes
    -----
    Fieller (1954) for the ratio of two correlated means: the n paired days
    give the sample variances s_u², s_v² and the covariance s_uv (ddof = 1),
    the estimates' variances are these over n, and q = t(1 − α/2, n − 1).
    Exact under bivariate normality of the days (von Luxburg & Franz 2009,
    Statistica Sinica 19:1095–1117, Theorem 3). See :func:`fieller_interval` for the formula
    and the unbounded case. Used for the capture ratio
    (existing − GPS) / (existing − oracle) and, via :func:`relative_change`,
    for mean(a − b) / mean(b).
    """
    _check_level(level)
    u, v = _paired(num, den)
    n = int(u.size)
    if n < 2:
        return _too_few(u, v, level, "fieller")
    mu, mv = float(u.mean()), float(v.mean())
    cov = np.cov(u, v, ddof=1) / n
    q = float(_t_quantile(0.5 + level / 2, n - 1))
    low, high, why = fieller_interval(mu, mv, float(cov[0, 0]), float(cov[1, 1]),
                                      float(cov[0, 1]), q)
    est = mu / mv if mv != 0 else float("nan")
    return RatioInterval(est, low, high, n, level, "fieller", not why, why)


def relative_change(values: np.ndarray | list[float], baseline: np.ndarray | list[float],
                    level: float = 0.95) -> RatioInterval:
    """Relative change R = mean(a − b) / mean(b) of paired samples, Fieller interval.

    Parameters
    ----------
    values, baseline : array_like
        A KPI (any units) per day under the controller (a) and the baseline
        (b), same days in the same order. Pairs holding a NaN are dropped.
    level : float
        Two-sided confidence level, in (0, 1).

    Returns
    -------
    RatioInterval
        Dimensionless (multiply by 100 for %). The interval accounts for the
        baseline mean's own uncertainty and its covariance with mean(a − b)
        (:func:`ratio_of_paired_means` with num = a − b, den = b).
    """
    a, b = _paired(values, baseline)
    return ratio_of_paired_means(a - b, b, level)


def capture_ratio(existing: np.ndarray | list[float], gps: np.ndarray | list[float],
                  oracle: np.ndarray | list[float], level: float = 0.95) -> RatioInterval:
    """Share of the attainable saving the GPS plan selection captures.

    (existing − GPS) / (existing − oracle) per day paired, as a ratio of
    means with Fieller's interval (:func:`ratio_of_paired_means`). 1 = all
    the oracle's saving, 0 = none. Days where any of the three is NaN are
    dropped. Units: a KPI in any units, the same for all three; the ratio is
    dimensionless.
    """
    e, g, o = _paired(existing, gps, oracle)
    return ratio_of_paired_means(e - g, e - o, level)


def bootstrap_ratio_ci(num: np.ndarray | list[float], den: np.ndarray | list[float],
                       level: float = 0.95, n_boot: int = 10_000,
                       rng: np.random.Generator | None = None) -> RatioInterval:
    """Paired percentile-bootstrap interval of mean(num) / mean(den).

    Parameters
    ----------
    num, den : array_like
        One value per day, same days in the same order; pairs holding a NaN
        are dropped. Same units; the ratio is dimensionless.
    level : float
        Two-sided confidence level, in (0, 1).
    n_boot : int
        Number of resamples (≥ 100).
    rng : numpy.random.Generator, optional
        Source of the resampling; pass a seeded one for reproducible bounds.

    Returns
    -------
    RatioInterval
        ``method = "bootstrap-percentile"``: the (1 − level)/2 and
        (1 + level)/2 quantiles of the resampled ratios (Efron & Tibshirani
        1993, *An Introduction to the Bootstrap*, ch. 13). Days are resampled
        as pairs, so the covariance of numerator and denominator is kept.
        Unbounded, like Fieller's, when the same percentile interval of the
        resampled mean(den) contains 0 (the ratio's sampling distribution
        then straddles a pole).
    """
    _check_level(level)
    if n_boot < 100:
        raise ValueError(f"n_boot = {n_boot}: need at least 100 resamples")
    u, v = _paired(num, den)
    n = int(u.size)
    if n < 2:
        return _too_few(u, v, level, "bootstrap-percentile")
    gen = rng if rng is not None else np.random.default_rng()
    su, sv = np.empty(n_boot), np.empty(n_boot)
    chunk = max(1, 2_000_000 // n)  # bound the index matrix to ~16 MB
    for start in range(0, n_boot, chunk):
        idx = gen.integers(0, n, size=(min(chunk, n_boot - start), n))
        su[start:start + idx.shape[0]] = u[idx].mean(axis=1)
        sv[start:start + idx.shape[0]] = v[idx].mean(axis=1)
    probs = [0.5 - level / 2, 0.5 + level / 2]
    mv = float(v.mean())
    est = float(u.mean()) / mv if mv != 0 else float("nan")
    dlo, dhi = np.quantile(sv, probs)
    if dlo <= 0 <= dhi:
        why = (f"bootstrap {level:.0%} interval of the denominator mean "
               f"[{dlo:.4g}, {dhi:.4g}] contains 0")
        return RatioInterval(est, float("-inf"), float("inf"), n, level,
                             "bootstrap-percentile", False, why)
    low, high = np.quantile(su / sv, probs)
    return RatioInterval(est, float(low), float(high), n, level, "bootstrap-percentile", True)


# ---------------------------------------------------------------------------
# Verdicts and the --until-ci loop
# ---------------------------------------------------------------------------

#: Default words (better, worse) per KPI direction: a lower-is-better KPI
#: (delay, stops, CO₂) is *saved* or *cost*; a higher-is-better one (speed,
#: throughput) is *gained* or *lost*.
VERDICT_WORDS: dict[str, tuple[str, str]] = {"lower": ("saves", "costs"),
                                             "higher": ("gains", "loses")}
NO_DIFFERENCE = "no detectable difference"


def direction(interval: Interval | RatioInterval, better: str = "lower") -> str:
    """Whether a difference (controller − baseline) is "better", "worse" or "none".

    Parameters
    ----------
    interval : Interval or RatioInterval
        Interval of a paired difference or relative change (controller minus
        baseline, in the KPI's units or dimensionless).
    better : {"lower", "higher"}
        Which direction of the KPI is an improvement.

    Returns
    -------
    str
        "better" if the whole interval lies on the improving side of 0,
        "worse" if it lies on the other side, "none" otherwise, including an
        unbounded interval and NaN bounds (fewer than two days).
    """
    if better not in VERDICT_WORDS:
        raise ValueError(f"better = {better!r}: must be 'lower' or 'higher'")
    low, high = interval.low, interval.high
    if better == "higher":
        low, high = -high, -low
    if high < 0:
        return "better"
    if low > 0:
        return "worse"
    return "none"


def verdict(interval: Interval | RatioInterval, better: str = "lower",
            words: tuple[str, str] | None = None) -> str:
    """Return the verdict on a paired difference at the interval's confidence level.

    Parameters
    ----------
    interval : Interval or RatioInterval
        Controller − baseline (difference or relative change).
    better : {"lower", "higher"}
        Which direction of the KPI is an improvement.
    words : (str, str), optional
        The words for (better, worse); default :data:`VERDICT_WORDS`
        [better]: ("saves", "costs") for lower-is-better KPIs, ("gains",
        "loses") for higher-is-better ones.

    Returns
    -------
    str
        For better = "lower": "saves" if high < 0, "costs" if low > 0, else
        "no detectable difference"; mirrored for better = "higher" ("gains"
        if low > 0, "loses" if high < 0).
    """
    d = direction(interval, better)
    good, bad = words if words is not None else VERDICT_WORDS[better]
    return {"better": good, "worse": bad}.get(d, NO_DIFFERENCE)


def half_width(interval: Interval | RatioInterval) -> float:
    """Half the interval's width, in the interval's units.

    inf for an unbounded ratio interval, NaN with fewer than two days.
    """
    return float(interval.half_width)


def needs_more_days(values_a: np.ndarray | list[float], values_b: np.ndarray | list[float],
                    target_half_width: float, max_days: int, level: float = 0.95) -> bool:
    """Whether an ``--until-ci`` loop should run another day.

    Parameters
    ----------
    values_a, values_b : array_like
        The chosen KPI per day so far under the controller and the baseline
        (same days, same order; KPI units).
    target_half_width : float
        Stop once the half-width of the paired difference a − b is at most
        this (KPI units, > 0).
    max_days : int
        Stop after this many days were run (counting days whose pair was
        dropped for a NaN, so a KPI that cannot be measured cannot loop
        forever).
    level : float
        Confidence level of the interval, default 95 %.

    Returns
    -------
    bool
        True while fewer than ``max_days`` days were run and the half-width
        is above the target or undefined (fewer than two complete pairs).
    """
    if not target_half_width > 0:
        raise ValueError(f"target_half_width = {target_half_width!r}: must be > 0")
    run = int(np.asarray(values_a).size)
    if run >= max_days:
        return False
    iv, _ = paired_difference(values_a, values_b, level)
    return bool(np.isnan(iv.half_width) or iv.half_width > target_half_width)


def days_for_half_width(values_a: np.ndarray | list[float],
                        values_b: np.ndarray | list[float], target_half_width: float,
                        level: float = 0.95) -> int:
    """Days needed for the paired difference's half-width to reach a target.

    Plans an ``--until-ci`` run from a pilot: the smallest n with
    t(1 − α/2, n − 1) · s_d / √n ≤ target, s_d the pilot's standard deviation
    of a − b (KPI units). A projection: s_d itself is uncertain. Returns −1
    with fewer than two complete pilot pairs; 2 at least otherwise.
    """
    if not target_half_width > 0:
        raise ValueError(f"target_half_width = {target_half_width!r}: must be > 0")
    _check_level(level)
    a, b = _paired(values_a, values_b)
    if a.size < 2:
        return -1
    sd = float(np.std(a - b, ddof=1))
    z = float(_special().ndtri(0.5 + level / 2))
    n = max(2, int(np.ceil((z * sd / target_half_width) ** 2)))
    while _t_quantile(0.5 + level / 2, n - 1) * sd / np.sqrt(n) > target_half_width:
        n += 1
    return n
