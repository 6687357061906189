"""Replication statistics (docs/definitions.md "Replications"): Student-t
intervals of a mean and paired differences between controllers.

Each tolerance is stated next to its assertion with the reason for it.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy import stats

from gpssignal.evaluate.statistics import (
    NO_DIFFERENCE,
    Interval,
    RatioInterval,
    bootstrap_ratio_ci,
    capture_ratio,
    days_for_half_width,
    direction,
    half_width,
    mean_ci,
    needs_more_days,
    paired_difference,
    ratio_of_paired_means,
    relative_change,
    verdict,
)

# ---------------------------------------------------------------------------
# mean_ci
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("n", [2, 5, 12, 40])
@pytest.mark.parametrize("level", [0.8, 0.9, 0.95, 0.99])
def test_mean_ci_matches_scipy_t_interval(n, level) -> None:
    """Against scipy.stats.t.interval(level, n - 1, loc=mean, scale=s/√n).

    Tolerance 1e-12 relative (1e-12 absolute near 0): the same t quantile and
    the same sample moments, in double precision.
    """
    rng = np.random.default_rng(1000 * n + int(100 * level))
    x = rng.normal(50.0, 7.0, n)
    iv = mean_ci(x, level)
    lo, hi = stats.t.interval(level, n - 1, loc=x.mean(), scale=stats.sem(x))
    assert isinstance(iv, Interval)
    assert iv.n == n and iv.level == level
    assert iv.mean == pytest.approx(x.mean(), rel=1e-12)
    assert iv.low == pytest.approx(lo, rel=1e-12, abs=1e-12)
    assert iv.high == pytest.approx(hi, rel=1e-12, abs=1e-12)
    assert iv.half_width == pytest.approx((hi - lo) / 2, rel=1e-12)


def test_mean_ci_textbook_n10() -> None:
    """x = 10 + (-3, -2, -1, -1, 0, 0, 1, 1, 2, 3): mean 10, Σ(x - x̄)² = 30,
    s² = 30/9, s/√10 = √(1/3) = 0.57735; t(0.975, 9) = 2.262 from the table,
    so the half-width is 2.262 · 0.57735 = 1.3060.

    Tolerance 3e-4 on the half-width: the table's t is rounded to 3 decimals
    (±0.0005 × 0.577 = ±2.9e-4). The mean is exact in binary (1e-12).
    """
    x = 10 + np.array([-3, -2, -1, -1, 0, 0, 1, 1, 2, 3], dtype=float)
    iv = mean_ci(x)  # level defaults to 95 %
    assert iv.level == 0.95 and iv.n == 10
    assert iv.mean == pytest.approx(10.0, abs=1e-12)
    assert iv.half_width == pytest.approx(2.262 * math.sqrt(1 / 3), abs=3e-4)
    assert iv.low == pytest.approx(10 - 1.3060, abs=3e-4)
    assert iv.high == pytest.approx(10 + 1.3060, abs=3e-4)


def test_mean_ci_textbook_n2() -> None:
    """x = (1, 3): mean 2, s = √2, s/√2 = 1; t(0.975, 1) = 12.706 (table), so
    the half-width is 12.706. Tolerance 5e-4: the table's rounding."""
    iv = mean_ci([1.0, 3.0])
    assert iv.mean == 2.0
    assert iv.half_width == pytest.approx(12.706, abs=5e-4)


def test_mean_ci_wider_at_higher_level() -> None:
    x = [3.0, 5.0, 4.0, 6.0, 2.0]
    widths = [mean_ci(x, lv).half_width for lv in (0.5, 0.8, 0.9, 0.95, 0.99)]
    assert all(a < b for a, b in itertools.pairwise(widths))


def test_mean_ci_single_value_has_nan_half_width() -> None:
    iv = mean_ci([4.2])
    assert iv.mean == 4.2 and iv.n == 1
    assert math.isnan(iv.half_width)
    assert math.isnan(iv.low) and math.isnan(iv.high)


def test_mean_ci_empty_and_all_nan() -> None:
    for values in ([], [np.nan, np.nan]):
        iv = mean_ci(values)
        assert iv.n == 0
        assert math.isnan(iv.mean) and math.isnan(iv.half_width)


def test_mean_ci_drops_nan_values() -> None:
    """A KPI a day could not measure is left out: same interval as without it."""
    with_nan = mean_ci([1.0, np.nan, 2.0, 4.0, np.nan])
    without = mean_ci([1.0, 2.0, 4.0])
    assert with_nan == without
    assert with_nan.n == 3
    # One value plus NaNs: a mean, no interval.
    one = mean_ci([np.nan, 7.0])
    assert one.n == 1 and one.mean == 7.0 and math.isnan(one.half_width)


@pytest.mark.parametrize("level", [0.0, 1.0, -0.5, 1.5, 95])
def test_mean_ci_rejects_levels_outside_0_1(level) -> None:
    with pytest.raises(ValueError, match="level"):
        mean_ci([1.0, 2.0, 3.0], level)


# ---------------------------------------------------------------------------
# paired_difference
# ---------------------------------------------------------------------------

#: Student's sleep data (Cushny & Peebles 1905; R's ``sleep``): extra hours of
#: sleep of the same 10 patients under drug 1 and drug 2.
SLEEP_1 = [0.7, -1.6, -0.2, -1.2, -0.1, 3.4, 3.7, 0.8, 0.0, 2.0]
SLEEP_2 = [1.9, 0.8, 1.1, 0.1, -0.1, 4.4, 5.5, 1.6, 4.6, 3.4]


def test_paired_difference_textbook_sleep_data() -> None:
    """R: ``t.test(extra ~ group, data = sleep, paired = TRUE)``: mean difference
    -1.58, 95 % CI [-2.4598858, -0.7001142]. Tolerance 1e-7: R prints 7
    decimals (±5e-8).

    Unpaired (Welch), the same data give [-3.365, 0.205], which includes 0:
    pairing is what shows the effect.
    """
    iv, rel = paired_difference(SLEEP_1, SLEEP_2)
    assert iv.n == 10
    assert iv.mean == pytest.approx(-1.58, abs=1e-12)
    assert iv.low == pytest.approx(-2.4598858, abs=1e-7)
    assert iv.high == pytest.approx(-0.7001142, abs=1e-7)
    # relative change = mean(d) / mean(baseline) = -1.58 / 2.33.
    assert rel == pytest.approx(-1.58 / 2.33, rel=1e-12)
    welch = stats.ttest_ind(SLEEP_1, SLEEP_2, equal_var=False).confidence_interval()
    assert welch.low < 0 < welch.high
    assert iv.high < 0


def _days(seed: int, n: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """A KPI on n days under a baseline and a controller 5 units better.

    Both share a large day effect (sd 50: demand level, weather) and have a
    small own noise (sd 1), as with common random numbers.
    """
    rng = np.random.default_rng(seed)
    day = rng.normal(0.0, 50.0, n)
    base = 1000.0 + day + rng.normal(0.0, 1.0, n)
    ctrl = 995.0 + day + rng.normal(0.0, 1.0, n)
    return ctrl, base


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_paired_difference_takes_differences_day_by_day(seed) -> None:
    """The interval is that of d_i = x_i - b_i, much narrower than unpaired.

    Equality with mean_ci of the differences: 1e-12 (same computation).
    Unpaired half-width ≈ t·√(2·50²/10) ≈ 50 against ≈ t·√(2/10) ≈ 1 paired;
    requiring a factor 10 leaves a wide margin for sampling noise.
    """
    ctrl, base = _days(seed)
    iv, _ = paired_difference(ctrl, base)
    ref = mean_ci(ctrl - base)
    assert iv.mean == pytest.approx(ref.mean, rel=1e-12)
    assert iv.half_width == pytest.approx(ref.half_width, rel=1e-12)
    welch = stats.ttest_ind(ctrl, base, equal_var=False).confidence_interval()
    unpaired_half = (welch.high - welch.low) / 2
    assert iv.half_width * 10 < unpaired_half
    assert iv.high < 0  # the 5-unit improvement is detected ...
    assert welch.low < 0 < welch.high  # ... which the unpaired interval misses


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_paired_difference_depends_on_the_pairing(seed) -> None:
    """Shifting one array by one day breaks the pairs: the mean difference is
    unchanged (a sum is order-free; 1e-9 relative for the summation order)
    but the interval becomes ≥ 10× wider (it now carries the day effect)."""
    ctrl, base = _days(seed)
    iv, rel = paired_difference(ctrl, base)
    shifted, rel_shifted = paired_difference(np.roll(ctrl, 1), base)
    assert shifted.mean == pytest.approx(iv.mean, rel=1e-9)
    assert rel_shifted == pytest.approx(rel, rel=1e-9)
    assert shifted.half_width > 10 * iv.half_width


def test_paired_difference_drops_nan_pairs() -> None:
    """A pair is dropped when either value is NaN; the relative change uses the
    baseline mean over the same pairs: d = (1, 2), baseline (0, 2) →
    mean(d) = 1.5, rel = 1.5 / 1 (not 1.5 / mean(0, 5, 2) as over all days)."""
    ctrl = [1.0, np.nan, 3.0, 4.0]
    base = [0.0, 5.0, np.nan, 2.0]
    iv, rel = paired_difference(ctrl, base)
    assert iv == mean_ci([1.0, 2.0])
    assert iv.n == 2
    assert iv.mean == 1.5
    assert rel == 1.5


def test_paired_difference_relative_change_is_ratio_of_means() -> None:
    """rel = mean(d) / mean(baseline), not the mean of per-day ratios:
    baseline (100, 300), controller (50, 300) → d = (-50, 0), rel = -25 / 200
    = -0.125 (mean of ratios would be -0.25). Exact in binary."""
    iv, rel = paired_difference([50.0, 300.0], [100.0, 300.0])
    assert iv.mean == -25.0
    assert rel == -0.125
    iv, rel = paired_difference([90.0, 180.0, 270.0], [100.0, 200.0, 300.0])
    assert iv.mean == pytest.approx(-20.0, rel=1e-12)
    assert rel == pytest.approx(-0.1, rel=1e-12)


def test_paired_difference_relative_change_nan_when_baseline_mean_is_zero() -> None:
    iv, rel = paired_difference([1.0, 2.0], [-1.0, 1.0])
    assert iv.mean == 1.5
    assert math.isnan(rel)


def test_paired_difference_all_pairs_nan() -> None:
    iv, rel = paired_difference([np.nan, 1.0], [2.0, np.nan])
    assert iv.n == 0
    assert math.isnan(iv.mean) and math.isnan(iv.half_width) and math.isnan(rel)


def test_paired_difference_single_pair() -> None:
    iv, rel = paired_difference([3.0], [4.0])
    assert iv.mean == -1.0 and iv.n == 1 and math.isnan(iv.half_width)
    assert rel == -0.25


@pytest.mark.parametrize("a,b", [([1.0, 2.0, 3.0], [1.0, 2.0]),
                                 ([1.0, 2.0, 3.0, 4.0], [[1.0, 2.0], [3.0, 4.0]]),
                                 ([], [1.0])])
def test_paired_difference_shape_mismatch_raises(a, b) -> None:
    with pytest.raises(ValueError, match="same replications"):
        paired_difference(a, b)


def test_paired_difference_passes_the_level_on() -> None:
    """Equality with mean_ci at the same level: 1e-12 (same computation)."""
    ctrl, base = _days(7)
    for level in (0.9, 0.99):
        iv, _ = paired_difference(ctrl, base, level=level)
        assert iv.level == level
        assert iv.half_width == pytest.approx(mean_ci(ctrl - base, level).half_width,
                                              rel=1e-12)
    with pytest.raises(ValueError, match="level"):
        paired_difference(ctrl, base, level=1.5)


# ---------------------------------------------------------------------------
# Ratios of paired means: Fieller's interval
# ---------------------------------------------------------------------------


def _ratio_days(seed: int, n: int, noise: float = 20.0) -> tuple[np.ndarray, np.ndarray]:
    """Baseline ≈ 1000 and a controller ≈ 5 % lower, sharing a day effect (sd 50)."""
    rng = np.random.default_rng(seed)
    day = rng.normal(0.0, 50.0, n)
    base = 1000.0 + day + rng.normal(0.0, noise, n)
    ctrl = 950.0 + 0.95 * day + rng.normal(0.0, noise, n)
    return ctrl, base


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("level", [0.9, 0.95, 0.99])
def test_fieller_endpoints_invert_the_paired_t_test(seed, level) -> None:
    """Fieller's set is {θ : the t test of mean(u − θ·v) = 0 does not reject}.

    Against scipy.stats.ttest_1samp on w = u − θ·v: at both endpoints the
    two-sided p-value is exactly 1 − level (1e-8 absolute: the endpoints come
    from a square root of a difference of ~1e10-sized terms, ~1e-9 relative
    error), and above 1 − level at the point estimate.
    """
    a, b = _ratio_days(seed, 12)
    iv = ratio_of_paired_means(a - b, b, level)
    assert iv.bounded and iv.method == "fieller" and iv.n == 12 and iv.level == level
    for theta in (iv.low, iv.high):
        p = stats.ttest_1samp((a - b) - theta * b, 0.0).pvalue
        assert p == pytest.approx(1 - level, abs=1e-8)
    assert stats.ttest_1samp((a - b) - iv.mean * b, 0.0).pvalue > 1 - level
    assert iv.low < iv.mean < iv.high


@pytest.mark.parametrize("seed", [4, 5, 6])
def test_fieller_tends_to_the_delta_method_for_large_n(seed) -> None:
    """n = 2000, small CV: Fieller ≈ delta method R ± t·se,
    se = √(s_u² − 2R·s_uv + R²·s_v²) / (|v̄|·√n).

    Tolerance: Fieller's centre B/A is shifted from R by
    t²·(R·var_v − cov_uv)/A; since |cov(u − R·v, v)| ≤ sd(u − R·v)·sd(v) the
    shift is ≤ √g · t·se to first order, with g = t²·var(v̄)/v̄² (here
    ~2e-6), and the half-widths differ by O(g). So each endpoint is within
    1.1·√g half-widths of the delta interval's.
    """
    a, b = _ratio_days(seed, 2000)
    u, v, n = a - b, b, 2000
    r = u.mean() / v.mean()
    c = np.cov(u, v) / n
    t = stats.t.ppf(0.975, n - 1)
    se = math.sqrt(c[0, 0] - 2 * r * c[0, 1] + r * r * c[1, 1]) / abs(v.mean())
    g = t * t * c[1, 1] / v.mean() ** 2
    assert g < 1e-4
    iv = relative_change(a, b)
    assert iv.mean == pytest.approx(r, rel=1e-12)
    assert abs(iv.low - (r - t * se)) <= 1.1 * math.sqrt(g) * t * se
    assert abs(iv.high - (r + t * se)) <= 1.1 * math.sqrt(g) * t * se


def test_fieller_monte_carlo_coverage_n10() -> None:
    """2,000 paired samples of n = 10 from a bivariate normal, means (3, 5),
    sds (2, 1), correlation 0.5: true ratio 0.6.

    Fieller's interval is exact under bivariate normality, so the coverage
    is 0.95; with 2,000 trials its binomial standard error is
    √(0.95·0.05/2000) = 0.0049, and [0.93, 0.97] is ±4.1 SE (a false failure
    has probability < 1e-4; the seed is fixed, so the test is deterministic).
    The denominator is 5 / (1/√10) ≈ 16 standard errors from 0, so no
    interval is unbounded.
    """
    rng = np.random.default_rng(20240611)
    cov = np.array([[4.0, 1.0], [1.0, 1.0]])
    hits = 0
    for _ in range(2000):
        x = rng.multivariate_normal([3.0, 5.0], cov, 10)
        iv = ratio_of_paired_means(x[:, 0], x[:, 1])
        assert iv.bounded
        hits += iv.low <= 0.6 <= iv.high
    assert 0.93 <= hits / 2000 <= 0.97


def test_fieller_published_paired_ratio_example() -> None:
    """Published example of a paired-samples ratio of means: R package
    statpsych, ``ci.ratio.mean.ps`` (Bonett & Price 2020, J. Educ. Behav. Stat.
    45:750–770), whose documentation gives for these data ratio 1.134146,
    95 % CI [1.09417, 1.175583].

    That interval is Bonett & Price's log-ratio interval, not Fieller's: both
    are first-order R ± t·se and differ at second order, ~R·(se(v̄)/v̄)² ≈
    1.13·0.04² ≈ 2e-3. Tolerance 1e-3 absolute on each bound (observed 5e-4);
    the estimate is the same ratio of means (published to 6 decimals: 1e-6).
    """
    y1 = [3.3, 3.6, 3.0, 3.1, 3.9, 4.2, 3.5, 3.3]
    y2 = [3.0, 3.1, 2.7, 2.6, 3.2, 3.8, 3.2, 3.0]
    iv = ratio_of_paired_means(y1, y2)
    assert iv.mean == pytest.approx(1.134146, abs=1e-6)
    assert iv.low == pytest.approx(1.09417, abs=1e-3)
    assert iv.high == pytest.approx(1.175583, abs=1e-3)


def test_fieller_collapses_when_the_ratio_is_exact() -> None:
    """num = 0.25·den day by day: u − θ·v has no spread at θ = 0.25, so the
    interval is the point 0.25. Tolerance 1e-6: the discriminant is a
    cancellation to ~1e-16 relative, and its square root ~1e-8."""
    den = np.array([10.0, 12.0, 9.0, 14.0, 11.0])
    iv = ratio_of_paired_means(0.25 * den, den)
    assert iv.bounded
    assert iv.low == pytest.approx(0.25, abs=1e-6)
    assert iv.high == pytest.approx(0.25, abs=1e-6)


def test_relative_change_is_ratio_of_paired_means_of_a_minus_b_over_b() -> None:
    """Same estimate as paired_difference's relative change (1e-12) and the
    same interval as ratio_of_paired_means(a − b, b) (identical computation)."""
    a, b = _ratio_days(7, 15)
    iv = relative_change(a, b, 0.9)
    assert iv == ratio_of_paired_means(a - b, b, 0.9)
    _, rel = paired_difference(a, b)
    assert iv.mean == pytest.approx(rel, rel=1e-12)
    assert iv.low < -0.05 < iv.high  # the simulated 5 % saving is covered


def test_relative_change_accounts_for_baseline_uncertainty_and_covariance() -> None:
    """Dividing the paired-difference interval by mean(b) treats mean(b) as
    known and ignores the covariance of mean(a − b) with mean(b). With a
    noisy baseline (sd 200 per day, n = 6):

    * additive effect (a − b independent of b): Fieller's interval is wider,
      since the baseline's uncertainty adds R²·var(b̄);
    * multiplicative effect (a − b = −0.1·b + noise, strongly correlated
      with b): it is narrower, since u − R·v cancels the shared b.

    Compared as widths (margins ≥ 20 % at these seeds), no tolerance needed.
    """
    rng = np.random.default_rng(3)
    b = 1000.0 + rng.normal(0.0, 200.0, 6)
    for a, wider in ((b - 300.0 + rng.normal(0.0, 30.0, 6), True),
                     (0.9 * b + rng.normal(0.0, 30.0, 6), False)):
        iv = relative_change(a, b)
        naive = 2 * paired_difference(a, b)[0].half_width / abs(b.mean())
        assert (iv.high - iv.low > 1.2 * naive) if wider else (iv.high - iv.low < naive / 1.2)


def test_relative_change_drops_nan_pairs() -> None:
    a, b = _ratio_days(8, 10)
    a_nan, b_nan = a.copy(), b.copy()
    a_nan[2], b_nan[5] = np.nan, np.nan
    keep = np.ones(10, bool)
    keep[[2, 5]] = False
    iv = relative_change(a_nan, b_nan)
    assert iv == relative_change(a[keep], b[keep])
    assert iv.n == 8


def test_ratio_empty_and_single_pair() -> None:
    for iv in (relative_change([], []), relative_change([np.nan], [1.0]),
               ratio_of_paired_means([np.nan, 1.0], [2.0, np.nan])):
        assert iv.n == 0 and not iv.bounded and iv.reason == "no complete pairs"
        assert math.isnan(iv.mean) and math.isnan(iv.low) and math.isnan(iv.high)
    one = relative_change([3.0, np.nan], [4.0, 1.0])
    assert one.n == 1 and one.mean == -0.25 and not one.bounded
    assert math.isnan(one.low) and math.isnan(one.high) and math.isnan(half_width(one))
    assert "one pair" in one.reason


def test_ratio_unbounded_when_denominator_mean_not_distinguishable_from_zero() -> None:
    """den = (−1, 2, −0.5, 1.5, −1, 0.5): mean 0.25, se 0.55, |mean|/se < t(5).
    A clearly non-zero numerator gives the complement of an interval, a
    numerator near 0 too the whole line; both reported as (−inf, inf)."""
    den = [-1.0, 2.0, -0.5, 1.5, -1.0, 0.5]
    excl = ratio_of_paired_means([10.0, 11.0, 9.0, 10.5, 9.5, 10.0], den)
    assert not excl.bounded and excl.low == -math.inf and excl.high == math.inf
    assert "not distinguishable from 0" in excl.reason and "outside" in excl.reason
    assert excl.mean == pytest.approx(10.0 / 0.25, rel=1e-12)
    whole = ratio_of_paired_means([0.1, -0.2, 0.3, -0.1, 0.0, -0.1], den)
    assert not whole.bounded and "whole real line" in whole.reason
    assert half_width(whole) == math.inf
    assert verdict(whole) == NO_DIFFERENCE
    zero = ratio_of_paired_means([1.0, 2.0], [-1.0, 1.0])
    assert math.isnan(zero.mean) and not zero.bounded


@pytest.mark.parametrize("func", [relative_change, ratio_of_paired_means])
def test_ratio_rejects_bad_level_and_shapes(func) -> None:
    with pytest.raises(ValueError, match="level"):
        func([1.0, 2.0], [1.0, 2.0], 1.5)
    with pytest.raises(ValueError, match="same replications"):
        func([1.0, 2.0, 3.0], [1.0, 2.0])


def test_capture_ratio() -> None:
    """GPS takes 60 % of the way from the existing plan to the oracle each
    day (± noise): estimate near 0.6 and inside the interval; identical to
    ratio_of_paired_means((e − g), (e − o)); a NaN in any of the three drops
    the day."""
    rng = np.random.default_rng(11)
    e = 1000.0 + rng.normal(0.0, 50.0, 20)
    o = e - 100.0 - rng.normal(0.0, 10.0, 20)
    g = e - 0.6 * (e - o) + rng.normal(0.0, 5.0, 20)
    iv = capture_ratio(e, g, o)
    assert iv == ratio_of_paired_means(e - g, e - o)
    assert iv.low < 0.6 < iv.high and iv.mean == pytest.approx(0.6, abs=0.05)
    o_nan = o.copy()
    o_nan[3] = np.nan
    assert capture_ratio(e, g, o_nan) == capture_ratio(np.delete(e, 3), np.delete(g, 3),
                                                       np.delete(o, 3))


# ---------------------------------------------------------------------------
# Paired percentile bootstrap
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
def test_bootstrap_agrees_with_fieller_for_well_behaved_data(seed) -> None:
    """n = 30, denominator ≈ 1000 ± 54 per day (≈ 100 se from 0).

    Expected differences, as fractions of Fieller's half-width h: the
    percentile bootstrap uses z instead of t(29) and the ddof = 0 spread,
    so it is narrower by 1 − (1.960/2.045)·√(29/30) ≈ 6 % on each side;
    its endpoints' Monte-Carlo error with 20,000 resamples is
    √(0.025·0.975/20000)/φ(1.96) ≈ 0.02 se ≈ 1 % of h; and it follows the
    sample's skewness, an O(1/√n) effect (≤ 11 % over 20 seeds tried).
    Tolerance: each endpoint within 0.2·h.
    """
    a, b = _ratio_days(seed, 30)
    f = relative_change(a, b)
    bs = bootstrap_ratio_ci(a - b, b, n_boot=20_000, rng=np.random.default_rng(seed))
    assert bs.bounded and bs.method == "bootstrap-percentile" and bs.n == 30
    assert bs.mean == f.mean
    assert abs(bs.low - f.low) <= 0.2 * f.half_width
    assert abs(bs.high - f.high) <= 0.2 * f.half_width


def test_bootstrap_matches_scipy_percentile_bootstrap() -> None:
    """Against scipy.stats.bootstrap(paired=True, method="percentile") on the
    same data with another stream of resamples: each endpoint's Monte-Carlo
    sd is ≈ 0.02 se with 20,000 resamples, so the difference of two runs has
    sd ≈ 0.027 se ≈ 1.4 % of the half-width; tolerance 10 % (7 sd)."""
    a, b = _ratio_days(9, 25)
    mine = bootstrap_ratio_ci(a - b, b, 0.95, 20_000, np.random.default_rng(1))
    ref = stats.bootstrap((a - b, b), lambda u, v, axis: u.mean(axis) / v.mean(axis),
                          paired=True, vectorized=True, method="percentile",
                          n_resamples=20_000, rng=np.random.default_rng(2))
    ci = ref.confidence_interval
    assert abs(mine.low - ci.low) <= 0.1 * mine.half_width
    assert abs(mine.high - ci.high) <= 0.1 * mine.half_width


def test_bootstrap_reproducible_with_seed_and_drops_nan() -> None:
    a, b = _ratio_days(10, 12)
    one = bootstrap_ratio_ci(a, b, rng=np.random.default_rng(5), n_boot=1000)
    two = bootstrap_ratio_ci(a, b, rng=np.random.default_rng(5), n_boot=1000)
    assert one == two
    a_nan = np.append(a, np.nan)
    b_nan = np.append(b, 1.0)
    three = bootstrap_ratio_ci(a_nan, b_nan, rng=np.random.default_rng(5), n_boot=1000)
    assert three == one


def test_bootstrap_unbounded_empty_and_bad_arguments() -> None:
    den = [-1.0, 2.0, -0.5, 1.5, -1.0, 0.5]
    iv = bootstrap_ratio_ci([10.0, 11.0, 9.0, 10.5, 9.5, 10.0], den,
                            rng=np.random.default_rng(0))
    assert not iv.bounded and (iv.low, iv.high) == (-math.inf, math.inf)
    assert "contains 0" in iv.reason
    assert bootstrap_ratio_ci([], []).n == 0
    single = bootstrap_ratio_ci([1.0], [2.0])
    assert single.n == 1 and single.mean == 0.5 and math.isnan(single.low)
    with pytest.raises(ValueError, match="n_boot"):
        bootstrap_ratio_ci([1.0, 2.0], [1.0, 2.0], n_boot=10)
    with pytest.raises(ValueError, match="level"):
        bootstrap_ratio_ci([1.0, 2.0], [1.0, 2.0], level=0.0)


# ---------------------------------------------------------------------------
# Verdicts, half-widths and the --until-ci loop
# ---------------------------------------------------------------------------


def _iv(low: float, high: float) -> Interval:
    return Interval((low + high) / 2, (high - low) / 2, 10, 0.95)


@pytest.mark.parametrize("low,high,lower_is_better,higher_is_better,d_lower", [
    (-3.0, -1.0, "saves", "loses", "better"),
    (-1.0, 2.0, NO_DIFFERENCE, NO_DIFFERENCE, "none"),
    (0.0, 2.0, NO_DIFFERENCE, NO_DIFFERENCE, "none"),  # touching 0 is not detected
    (1.0, 4.0, "costs", "gains", "worse"),
])
def test_verdict_wording(low, high, lower_is_better, higher_is_better, d_lower) -> None:
    """Delay (lower is better): an interval below 0 saves, above 0 costs.
    Speed (higher is better): above 0 gains, below 0 loses."""
    iv = _iv(low, high)
    assert verdict(iv) == lower_is_better
    assert verdict(iv, better="lower") == lower_is_better
    assert verdict(iv, better="higher") == higher_is_better
    assert direction(iv, "lower") == d_lower
    mirrored = {"better": "worse", "worse": "better", "none": "none"}[d_lower]
    assert direction(iv, "higher") == mirrored


def test_verdict_custom_words_ratio_and_nan() -> None:
    assert verdict(_iv(-2.0, -1.0), words=("shortens", "lengthens")) == "shortens"
    assert verdict(_iv(1.0, 2.0), better="higher", words=("faster", "slower")) == "faster"
    rel = relative_change(*_ratio_days(1, 20))  # a 5 % saving, clearly detected
    assert verdict(rel) == "saves"
    assert verdict(mean_ci([1.0])) == NO_DIFFERENCE  # NaN bounds: nothing detected
    with pytest.raises(ValueError, match="better"):
        verdict(_iv(-2.0, -1.0), better="smaller")


def test_half_width() -> None:
    assert half_width(_iv(1.0, 4.0)) == 1.5
    rel = RatioInterval(0.5, 0.25, 1.0, 10, 0.95, "fieller", True)
    assert half_width(rel) == 0.375
    assert math.isnan(half_width(mean_ci([])))


def test_needs_more_days_until_ci_loop() -> None:
    """Simulated --until-ci loop on the _days model (paired sd √2): it stops
    at the first n with t(n − 1)·s_d/√n ≤ target, or at max_days."""
    rng = np.random.default_rng(42)
    day = rng.normal(0.0, 50.0, 200)
    base = 1000.0 + day + rng.normal(0.0, 1.0, 200)
    ctrl = 995.0 + day + rng.normal(0.0, 1.0, 200)
    n = 1
    while needs_more_days(ctrl[:n], base[:n], target_half_width=0.5, max_days=200):
        n += 1
    assert paired_difference(ctrl[:n], base[:n])[0].half_width <= 0.5
    assert paired_difference(ctrl[:n - 1], base[:n - 1])[0].half_width > 0.5
    assert 20 < n < 200
    # max_days wins; days whose pair was dropped still count as run.
    assert not needs_more_days(ctrl[:5], base[:5], 1e-6, max_days=5)
    assert needs_more_days([np.nan] * 4, [1.0] * 4, 1.0, max_days=5)
    assert not needs_more_days([np.nan] * 5, [1.0] * 5, 1.0, max_days=5)
    with pytest.raises(ValueError, match="target_half_width"):
        needs_more_days([1.0], [1.0], 0.0, max_days=5)


def test_days_for_half_width() -> None:
    """The projected n is the smallest with t(n − 1)·s_d/√n ≤ target (the
    pilot's s_d; exact integer search against scipy's t quantile)."""
    ctrl, base = _days(3, 10)
    sd = float(np.std(ctrl - base, ddof=1))
    n = days_for_half_width(ctrl, base, 0.3)

    def hw(k: int) -> float:
        return stats.t.ppf(0.975, k - 1) * sd / math.sqrt(k)

    assert hw(n) <= 0.3 < hw(n - 1)
    assert days_for_half_width([1.0], [2.0], 0.3) == -1
    assert days_for_half_width(ctrl, base, 1e6) == 2


def test_the_quantiles_are_scipy_stats_own_to_the_last_bit() -> None:
    """scipy.special's stdtrit and ndtri are what scipy.stats' t.ppf and norm.ppf return."""
    from gpssignal.evaluate.statistics import _special, _t_quantile

    for df in range(1, 200):
        for level in (0.8, 0.9, 0.95, 0.99):
            q = 0.5 + level / 2
            assert _t_quantile(q, df) == stats.t.ppf(q, df)
    for level in (0.8, 0.9, 0.95, 0.99):
        assert _special().ndtri(0.5 + level / 2) == stats.norm.ppf(0.5 + level / 2)


def test_intervals_do_not_import_scipy_stats() -> None:
    """scipy.stats costs 0.6 s of CPU to import; the intervals need only scipy.special."""
    import subprocess
    import sys

    code = ("import sys; from gpssignal.evaluate.statistics import mean_ci, days_for_half_width;"
            "mean_ci([1.0, 2.0, 4.0]); days_for_half_width([1.0, 2.0, 4.0], [0.0, 1.0, 1.5], 0.5);"
            "print('scipy.stats' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
