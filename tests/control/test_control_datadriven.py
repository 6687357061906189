"""The data-driven threshold rule (:mod:`gpssignal.control.datadriven`): the
mixture fit, the thresholds it implies, the persistence of low speeds, and
the rule on a small history."""

from __future__ import annotations

import numpy as np
import pytest

from gpssignal.control.datadriven import (
    DWELL_RANGE_S,
    HIGH_POSTERIOR,
    MIN_ASHMAN_D,
    episode_durations_s,
    fit_two_normals,
    posterior_speed_kmh,
)


def test_mixture_recovers_two_known_states() -> None:
    rng = np.random.default_rng(3)
    x = np.r_[rng.normal(15.0, 4.0, 300), rng.normal(42.0, 5.0, 1200)]
    mix = fit_two_normals(x)
    # 1,500 draws: the standard error of a component mean is < 0.3 km/h and of a
    # weight < 0.015, so 1 km/h and 0.03 are 3+ standard errors.
    assert mix.mean_kmh == pytest.approx((15.0, 42.0), abs=1.0)
    assert mix.sd_kmh == pytest.approx((4.0, 5.0), abs=1.0)
    assert mix.weight == pytest.approx((0.2, 0.8), abs=0.03)
    assert mix.ashman_d > MIN_ASHMAN_D
    assert mix.distinct(free_flow_kmh=45.0)
    assert not mix.distinct(free_flow_kmh=18.0)   # "congested" = near free flow: not a state


def test_thresholds_are_the_stated_posteriors() -> None:
    rng = np.random.default_rng(4)
    mix = fit_two_normals(np.r_[rng.normal(12.0, 3.0, 200), rng.normal(40.0, 4.0, 800)])
    low = posterior_speed_kmh(mix, 0.5)
    high = posterior_speed_kmh(mix, HIGH_POSTERIOR)
    assert mix.mean_kmh[0] < low < high < mix.mean_kmh[1]
    assert float(mix.posterior_congested(low)) == pytest.approx(0.5, abs=1e-6)
    assert float(mix.posterior_congested(high)) == pytest.approx(HIGH_POSTERIOR, abs=1e-6)


def test_one_state_is_not_bimodal() -> None:
    x = np.random.default_rng(5).normal(40.0, 5.0, 2000)
    assert fit_two_normals(x).ashman_d < MIN_ASHMAN_D


def test_fit_is_deterministic_and_needs_four_values() -> None:
    x = np.random.default_rng(6).normal(30.0, 8.0, 100)
    assert fit_two_normals(x) == fit_two_normals(x.copy())
    with pytest.raises(ValueError, match="need at least 4"):
        fit_two_normals(np.array([1.0, 2.0, np.nan]))


def test_episodes_run_from_below_low_to_above_high() -> None:
    row = np.array([40, 20, 25, np.nan, 33, 36, 40, 10, 40, 15, 15])
    # low 22, high 35: bins 1-4 (until 36 at bin 5) = 4 bins; bin 7 alone = 1 bin;
    # bins 9-10 still open at the end = 2 bins.
    assert episode_durations_s(row, 22.0, 35.0, 300.0) == [1200.0, 300.0, 600.0]
    assert episode_durations_s(np.full(5, 40.0), 22.0, 35.0) == []


def test_rule_on_a_history_sets_every_stretch(tiny_relief, history_dir) -> None:
    from gpssignal.experiment.training import train

    model = train(tiny_relief, history_dir, method="data-driven")
    prov = model.provenance
    assert prov["method"]["name"] == "data-driven"
    assert "search" not in prov and "training_seeds" not in prov    # nothing simulated
    rule = prov["rule"]
    assert model.window_s == rule["window_s"] == 300.0
    assert DWELL_RANGE_S[0] <= model.min_dwell_s <= DWELL_RANGE_S[1]
    for st in model.stretches:
        assert 0 < st.threshold_low_kmh <= st.threshold_high_kmh
        assert st.threshold_high_kmh <= max(st.free_flow_kmh, st.threshold_low_kmh)
        assert rule["stretches"][st.id]["windows"] > 0
