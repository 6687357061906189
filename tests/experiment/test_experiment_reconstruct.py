"""Day reconstruction (:mod:`gpssignal.experiment.reconstruct`): the fit on a
synthetic library whose speeds are known in closed form, the grid, and the
reconstructed scenario."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from gpssignal.control.training import TrainingData
from gpssignal.experiment.reconstruct import (
    LIBRARY_BIN_S,
    Grid,
    Library,
    default_grid,
    fit_days,
    reconstructed_scenario,
)

DURATION_S = 3 * 3600.0
N_BINS = int(DURATION_S / LIBRARY_BIN_S)
T_S = (np.arange(N_BINS) + 0.5) * LIBRARY_BIN_S


def speed_kmh(level: float, shift_s: float) -> np.ndarray:
    """A congestion dip whose depth is linear in the level and which moves with the shift."""
    return 50.0 - 25.0 * level * np.exp(-(((T_S - 5400.0 - shift_s) / 1800.0) ** 2))


GRID = Grid(levels=(0.8, 1.0, 1.2), shifts_s=(-1800.0, 0.0, 1800.0))


def library() -> Library:
    count = np.full((3, 3, 1, N_BINS), 10.0)
    total = np.array([[speed_kmh(lv, sh) for sh in GRID.shifts_s] for lv in GRID.levels])
    return Library(grid=GRID, plan="tod", count=count, speed_sum=10.0 * total[:, :, None, :],
                   seeds=np.zeros((3, 3), dtype=int))


def history(days: list[tuple[float, float]]) -> TrainingData:
    """Recorded 15-min slot speeds of days with the given (level, shift)."""
    per = int(900 / LIBRARY_BIN_S)
    v = np.array([speed_kmh(lv, sh).reshape(-1, per).mean(axis=1) for lv, sh in days])
    count = np.full((len(days), 1, v.shape[1]), 40.0)
    return TrainingData(dates=[f"d{k}" for k in range(len(days))], seeds=[], slot_s=900.0,
                        slot_starts_s=np.arange(v.shape[1]) * 900.0, count=count,
                        speed_sum=count * v[:, None, :], points_read=0, points_matched=0,
                        files={}, probe_settings={}, manifest={})


def test_fit_recovers_grid_points_and_points_between_them() -> None:
    truth = [(1.0, 0.0), (1.2, 1800.0), (0.8, -1800.0), (1.1, 900.0), (0.93, -420.0)]
    fits = fit_days(history(truth), library())
    for f, (lv, sh) in zip(fits, truth, strict=True):
        # The synthetic speed is linear in the level and a pure displacement in
        # time, which the library's blends reproduce exactly, so the fit is
        # right to its resolution (0.01, 60 s) plus the 15-min slot averaging.
        assert f.demand_level == pytest.approx(lv, abs=0.011)
        assert f.peak_shift_s == pytest.approx(sh, abs=61.0)
        assert f.rmse_kmh < 0.2
        assert f.cells == 12
    assert fits[0].rmse_mean_day_kmh == pytest.approx(fits[0].rmse_kmh, abs=1e-9)
    assert fits[3].rmse_mean_day_kmh > 1.0          # the mean day fits a shifted day badly


def test_fit_ignores_slots_with_too_few_points() -> None:
    data = history([(1.1, 600.0)])
    data.count[0, 0, 5] = 1.0                       # < MIN_CELL_POINTS
    data.speed_sum[0, 0, 5] = 999.0                 # would wreck the fit if used
    (f,) = fit_days(data, library())
    assert f.cells == 11
    assert f.demand_level == pytest.approx(1.1, abs=0.011)


def test_grid_covers_the_scenario_days() -> None:
    from gpssignal.model.io import read_scenario

    sc = read_scenario(Path(__file__).resolve().parents[2] / "scenarios" / "vallensbaek.toml")
    g = default_grid(sc, 8, 7)
    v = sc.variability
    factors = [d.demand_factor for d in sc.day_types]
    assert g.levels[0] == pytest.approx((1 - 3 * v.demand_level_sd) * min(factors), abs=1e-3)
    assert g.levels[-1] == pytest.approx((1 + 3 * v.demand_level_sd) * max(factors), abs=1e-3)
    assert len(g.levels) == 8 and len(g.shifts_s) == 7
    assert g.shifts_s[0] < -2700 and g.shifts_s[-1] > 2700       # early and late peaks


def test_reconstructed_scenario_draws_exactly_the_fitted_day(tiny_relief) -> None:
    from gpssignal.experiment.run import ControllerSpec, RunSpec, run_one

    sc = reconstructed_scenario(tiny_relief, 1.13, -240.0)
    metas = [run_one(RunSpec(scenario=sc, controller=ControllerSpec.parse("tod"),
                             seed=s)).meta for s in (5, 6)]
    for m in metas:
        assert m.demand_level == pytest.approx(1.13)
        assert m.peak_shift_s == pytest.approx(-240.0)
    assert dataclasses.replace(sc, variability=tiny_relief.variability,
                               day_types=tiny_relief.day_types) == tiny_relief


def test_prior_decides_where_the_speeds_say_nothing() -> None:
    flat = Library(grid=GRID, plan="tod", count=np.full((3, 3, 1, N_BINS), 10.0),
                   speed_sum=np.full((3, 3, 1, N_BINS), 10.0 * 45.0),
                   seeds=np.zeros((3, 3), dtype=int))
    data = history([(1.1, 600.0)])
    data.speed_sum[:] = data.count * 45.0                   # speeds that fit every day equally
    data.speed_sum[0, 0, 0] += data.count[0, 0, 0] * 0.01   # a hair of noise: sigma > 0
    (f,) = fit_days(data, flat, prior=(0.95, 0.05, -300.0, 400.0))
    assert f.demand_level == pytest.approx(0.95, abs=0.006)
    assert f.peak_shift_s == pytest.approx(-300.0, abs=31.0)


def test_prior_barely_moves_an_informative_fit() -> None:
    truth = [(1.1, 900.0), (0.85, -1200.0)]
    fits = fit_days(history(truth), library(), prior=(1.0, 0.07, 0.0, 450.0))
    for f, (lv, sh) in zip(fits, truth, strict=True):
        # 12 slots of 40 points whose speeds pin the day down: the prior's pull
        # stays within a few grid steps (the test's tolerance: 0.03, 180 s).
        assert f.demand_level == pytest.approx(lv, abs=0.03)
        assert f.peak_shift_s == pytest.approx(sh, abs=180.0)
        assert f.ls_level == pytest.approx(lv, abs=0.011)
        assert f.ls_shift_s == pytest.approx(sh, abs=61.0)


def test_day_prior_moments(tiny_relief) -> None:
    from gpssignal.experiment.reconstruct import day_prior

    m_l, s_l, m_s, s_s = day_prior(tiny_relief)        # no mix: N(1, 0.05), N(0, 120 s)
    assert (m_l, s_l, m_s, s_s) == pytest.approx((1.0, 0.05, 0.0, 120.0))
