"""Replication statistics (docs/definitions.md "Replications"): Student-t
intervals of a mean and paired differences between controllers.

Each tolerance is stated next to its assertion with the reason for it.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from gpssignal.evaluate.statistics import Interval, mean_ci, paired_difference

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
    assert all(a < b for a, b in zip(widths, widths[1:], strict=False))


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
