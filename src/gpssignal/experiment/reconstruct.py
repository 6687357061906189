"""Day reconstruction: each history day's demand level and peak shift, from its probe speeds.

An operator cannot re-run last Tuesday: its vehicles are gone, only its
probe points remain. What can be recovered is what made the day differ from
the mean day in the scenario's own terms (:class:`~gpssignal.sim.demand.DayFactors`):
its **demand level** (a factor on every flow) and its **peak shift** (the
whole demand profile earlier or later). The fit:

1. **A library of simulated days.** The scenario is simulated under the plan
   that ran in the history (the program log, else the scenario's existing
   plan) on a grid of levels × shifts spanning the scenario's day-to-day
   variability and day types (:func:`default_grid`), one fresh seed per grid
   point (from :data:`RECONSTRUCTION_SEEDS_FROM`, never a history day's).
   Every vehicle reports (penetration 1, no dropout; the scenario's position
   and speed noise), so the library holds the *expected* mean probe speed
   per stretch and :data:`LIBRARY_BIN_S` bin with little sampling noise.
2. **Between grid points.** A shift between two grid shifts is the blend of
   the two neighbouring runs, each displaced in time by its distance to the
   wanted shift (so a peak moves instead of fading between two positions);
   a level between two grid levels is the linear blend of the two. Counts
   and speed sums are blended, then divided.
3. **The fit.** For every history day, the (level, shift) on a fine grid
   (0.01 in level, 60 s in shift) whose predicted mean speed per stretch
   and 15-min slot best matches the recorded one. The misfit is the sum
   over the slots with at least ``MIN_CELL_POINTS`` recorded points of
   (points × squared speed difference): least squares, each slot weighted
   by its number of points. It is combined with what the scenario says
   about days (:func:`day_prior`: the mean and spread of the level and the
   shift over its variability and day-type mix) into a posterior mode,
   ``misfit / (2 σ²) + ((level − m_L) / s_L)² / 2 + ((shift − m_S) / s_S)² / 2``,
   with σ² (the noise of one point) estimated from the day's best
   least-squares misfit over its slots. Where the speeds say little (light
   traffic), the scenario's typical day wins; where they say much, they do.
   The least-squares estimate alone is kept beside it (``ls_*``), and the
   fit's root-mean-square error is reported beside that of the mean day
   (level 1, shift 0).

A reconstructed day is then simulated with its fitted factors
(:func:`reconstructed_scenario`) and a fresh seed: new vehicles drawn from
the day's fitted demand.

Limitations (stated, not hidden): an incident or a diversion day is
reconstructed as the level and shift that best match its speeds (its
events are not recovered); where speeds do not react to demand (light
traffic), the level is weakly determined, which also means that it matters
little there.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from gpssignal.control.gps import GpsRuntime, model_from_scenario
from gpssignal.control.matching import match_points
from gpssignal.control.training import MIN_CELL_POINTS, TrainingData
from gpssignal.experiment.parallel import DaskBackend, LocalBackend, map_runs
from gpssignal.experiment.run import ControllerSpec, RunSpec, run_one
from gpssignal.model.days import MAX_DEMAND_FACTOR, MAX_PEAK_SHIFT_S, DayType
from gpssignal.model.scenario import ProbeSettings, Scenario, Variability

__all__ = [
    "LIBRARY_BIN_S",
    "RECONSTRUCTION_SEEDS_FROM",
    "DayFit",
    "Grid",
    "Library",
    "build_library",
    "day_prior",
    "default_grid",
    "fit_days",
    "predicted_slot_speeds",
    "reconstructed_scenario",
]

#: First seed of the reconstruction's own simulations (library, then the
#: search's reconstructed days). Far above the seeds of histories (the
#: scenario's seed on) and evaluations (1001 on by default), so no
#: reconstruction run re-uses a history or held-out day.
RECONSTRUCTION_SEEDS_FROM = 10_000_000
#: Offset of the search's reconstructed days from :data:`RECONSTRUCTION_SEEDS_FROM`.
SEARCH_SEED_OFFSET = 100_000
#: Time resolution of the library [s]: fine enough to displace a run by a
#: fraction of a grid step.
LIBRARY_BIN_S = 60.0
#: Resolution of the fit: demand level [-] and peak shift [s].
FIT_LEVEL_STEP = 0.01
FIT_SHIFT_STEP_S = 60.0
#: Day factors are drawn within this many standard deviations (sim.demand).
_CLIP_SD = 3


@dataclass(frozen=True, slots=True)
class Grid:
    """Demand levels [-] and peak shifts [s] of the library."""

    levels: tuple[float, ...]
    shifts_s: tuple[float, ...]


def default_grid(scenario: Scenario, n_levels: int = 8, n_shifts: int = 7) -> Grid:
    """Return evenly spaced levels and shifts covering every day the scenario can draw.

    Levels span ``1 ± 3 sd`` of ``[variability] demand_level_sd`` times the
    smallest and largest day-type demand factor; shifts ``± 3 sd`` of
    ``peak_shift_sd_s`` plus the day types' extra shift ranges (the draws of
    :func:`gpssignal.sim.demand.draw_day` are clipped at 3 sd).
    """
    if n_levels < 2 or n_shifts < 2:
        raise ValueError(f"grid = {n_levels} x {n_shifts}: needs at least 2 levels and 2 "
                         "shifts")
    v = scenario.variability
    factors = [d.demand_factor for d in scenario.day_types] or [1.0]
    extra = [s for d in scenario.day_types for s in d.peak_shift_s] or [0.0]
    lo = max((1 - _CLIP_SD * v.demand_level_sd) * min(factors), 0.05)
    hi = min((1 + _CLIP_SD * v.demand_level_sd) * max(factors), MAX_DEMAND_FACTOR)
    s_lo = max(-_CLIP_SD * v.peak_shift_sd_s + min(extra), -MAX_PEAK_SHIFT_S)
    s_hi = min(_CLIP_SD * v.peak_shift_sd_s + max(extra), MAX_PEAK_SHIFT_S)
    if hi - lo < 0.1:    # no variability declared: still look ±10 %
        lo, hi = max(lo - 0.1, 0.05), hi + 0.1
    if s_hi - s_lo < 2 * FIT_SHIFT_STEP_S * n_shifts:   # likewise ±15 min
        s_lo, s_hi = s_lo - 900.0, s_hi + 900.0
    return Grid(levels=tuple(round(float(x), 4) for x in np.linspace(lo, hi, n_levels)),
                shifts_s=tuple(round(float(x), 1) for x in np.linspace(s_lo, s_hi, n_shifts)))


def reconstructed_scenario(scenario: Scenario, level: float, shift_s: float) -> Scenario:
    """Return ``scenario`` whose every day has demand ``level`` and peak shift ``shift_s``.

    The day-to-day draws are switched off and the mix replaced by one day type
    with exactly these factors (no incidents or extra flows); arrivals, routes
    and vehicles still come from the seed.
    """
    day = DayType(name="reconstructed", frequency=1.0, demand_factor=float(level),
                  peak_shift_s=(float(shift_s), float(shift_s)),
                  description="a history day reconstructed from its probe speeds")
    return replace(scenario, variability=Variability(), day_types=(day,))


def _stretch_bins(spec: RunSpec) -> tuple[np.ndarray, np.ndarray]:
    """Simulate one library day; return probe count and speed sum per (stretch, bin)."""
    out = run_one(spec)
    assert out.probes is not None
    c = out.probes.columns
    sc = spec.scenario
    rt = GpsRuntime(model_from_scenario(sc))
    x, y = rt.projection.to_xy(np.asarray(c["lat_deg"]), np.asarray(c["lon_deg"]))
    s = match_points(rt.index, x, y, np.asarray(c["heading_deg"], dtype=float))
    n_bins = int(np.ceil(sc.duration_s / LIBRARY_BIN_S))
    k = np.floor(np.asarray(c["time_sent_s"]) / LIBRARY_BIN_S).astype(np.int64)
    ok = (s >= 0) & (k >= 0) & (k < n_bins)
    count = np.zeros((len(rt.stretch_ids), n_bins))
    total = np.zeros_like(count)
    np.add.at(count, (s[ok], k[ok]), 1.0)
    np.add.at(total, (s[ok], k[ok]), np.asarray(c["speed_kmh"])[ok])
    return count, total


@dataclass(frozen=True, slots=True)
class Library:
    """Simulated probe counts and speed sums over the grid.

    ``count`` and ``speed_sum`` have shape (levels, shifts, stretches, bins);
    ``seeds`` the seed of each grid point (levels × shifts).
    """

    grid: Grid
    plan: str
    count: np.ndarray
    speed_sum: np.ndarray
    seeds: np.ndarray


def build_library(scenario: Scenario, plan: ControllerSpec, grid: Grid,
                  probes: ProbeSettings | None = None, first_seed: int = RECONSTRUCTION_SEEDS_FROM,
                  backend: LocalBackend | DaskBackend | None = None,
                  progress: Callable[[int, int], None] | None = None) -> Library:
    """Simulate the grid under ``plan`` with every vehicle reporting (see the module)."""
    feed = replace(probes or scenario.probes, penetration=1.0, dropout=0.0)
    seeds = first_seed + np.arange(len(grid.levels) * len(grid.shifts_s))
    tasks = [RunSpec(scenario=reconstructed_scenario(scenario, lv, sh), controller=plan,
                     seed=int(seeds[i * len(grid.shifts_s) + j]), probes=feed,
                     sample_probes=True)
             for i, lv in enumerate(grid.levels) for j, sh in enumerate(grid.shifts_s)]
    res = map_runs(_stretch_bins, tasks, backend, progress)
    shape = (len(grid.levels), len(grid.shifts_s), *res[0][0].shape)
    return Library(grid=grid, plan=plan.label,
                   count=np.array([r[0] for r in res]).reshape(shape),
                   speed_sum=np.array([r[1] for r in res]).reshape(shape),
                   seeds=seeds.reshape(shape[:2]))


def _displace(a: np.ndarray, bins: int) -> np.ndarray:
    """Move ``a`` (last axis = time bins) later by ``bins``, holding its ends."""
    n = a.shape[-1]
    idx = np.clip(np.arange(n) - bins, 0, n - 1)
    return a[..., idx]


def predicted_slot_speeds(lib: Library, levels: np.ndarray, shifts_s: np.ndarray,
                          slot_s: float, n_slots: int) -> np.ndarray:
    """Mean probe speed the library predicts per (shift, level, stretch, slot) [km/h].

    NaN where the library has no point.
    """
    g_lv = np.array(lib.grid.levels)
    g_sh = np.array(lib.grid.shifts_s)
    per_slot = int(round(slot_s / LIBRARY_BIN_S))
    n_bins = lib.count.shape[-1]
    pad = n_slots * per_slot - n_bins
    j_of = np.clip(np.searchsorted(g_sh, shifts_s, side="right") - 1, 0, len(g_sh) - 2)
    i_of = np.clip(np.searchsorted(g_lv, levels, side="right") - 1, 0, len(g_lv) - 2)
    a_of = np.clip((levels - g_lv[i_of]) / (g_lv[i_of + 1] - g_lv[i_of]), 0.0, 1.0)
    out = np.empty((len(shifts_s), len(levels), lib.count.shape[2], n_slots))
    for m, sh in enumerate(shifts_s):
        j = j_of[m]
        w = float(np.clip((sh - g_sh[j]) / (g_sh[j + 1] - g_sh[j]), 0.0, 1.0))
        parts = []
        for arr in (lib.count, lib.speed_sum):
            near = _displace(arr[:, j], int(round((sh - g_sh[j]) / LIBRARY_BIN_S)))
            far = _displace(arr[:, j + 1], int(round((sh - g_sh[j + 1]) / LIBRARY_BIN_S)))
            b = (1 - w) * near + w * far                          # (levels, stretches, bins)
            if pad > 0:
                b = np.concatenate([b, np.zeros((*b.shape[:-1], pad))], axis=-1)
            b = b[..., :n_slots * per_slot].reshape(*b.shape[:-1], n_slots, per_slot).sum(-1)
            parts.append((1 - a_of)[:, None, None] * b[i_of] + a_of[:, None, None] * b[i_of + 1])
        with np.errstate(invalid="ignore", divide="ignore"):
            out[m] = np.where(parts[0] > 0, parts[1] / parts[0], np.nan)
    return out


def day_prior(scenario: Scenario) -> tuple[float, float, float, float]:
    """Mean and standard deviation of the day's level [-] and shift [s] the scenario draws.

    Moments of :func:`gpssignal.sim.demand.draw_day`'s draws over the
    day-type mix (ignoring the 3-sd clipping): level = type factor × N(1,
    ``demand_level_sd``), shift = N(0, ``peak_shift_sd_s``) + the type's
    uniform extra shift. Returns ``(mean_level, sd_level, mean_shift_s,
    sd_shift_s)``; a standard deviation of 0 means no prior on that factor.
    """
    v = scenario.variability
    types = [(d.frequency, d.demand_factor, d.peak_shift_s) for d in scenario.day_types] \
        or [(1.0, 1.0, (0.0, 0.0))]
    total = sum(f for f, _, _ in types)
    m_l = sum(f * k for f, k, _ in types) / total
    e_l2 = sum(f * k * k * (1 + v.demand_level_sd ** 2) for f, k, _ in types) / total
    m_s = sum(f * (a + b) / 2 for f, _, (a, b) in types) / total
    e_s2 = sum(f * (v.peak_shift_sd_s ** 2 + (b - a) ** 2 / 12 + ((a + b) / 2) ** 2)
               for f, _, (a, b) in types) / total
    return (m_l, float(np.sqrt(max(e_l2 - m_l ** 2, 0.0))), m_s,
            float(np.sqrt(max(e_s2 - m_s ** 2, 0.0))))


@dataclass(frozen=True, slots=True)
class DayFit:
    """One history day's fitted factors and how well they fit.

    ``demand_level`` and ``peak_shift_s`` are the posterior mode (the
    estimate used), ``ls_level`` and ``ls_shift_s`` the least-squares one;
    ``rmse_kmh``: root-mean-square difference of the recorded and predicted
    slot speeds (weighted by points) at the estimate; ``rmse_mean_day_kmh``
    the same for the mean day (level 1, shift 0); ``cells``: slots compared.
    """

    date: str
    demand_level: float
    peak_shift_s: float
    rmse_kmh: float
    rmse_mean_day_kmh: float
    cells: int
    ls_level: float = float("nan")
    ls_shift_s: float = float("nan")

    def as_dict(self) -> dict[str, Any]:
        """Return the fit as plain JSON-ready data."""
        return {"date": self.date, "demand_level": self.demand_level,
                "peak_shift_s": self.peak_shift_s, "rmse_kmh": round(self.rmse_kmh, 3),
                "rmse_mean_day_kmh": round(self.rmse_mean_day_kmh, 3), "cells": self.cells,
                "ls_level": self.ls_level, "ls_shift_s": self.ls_shift_s}


def fit_days(data: TrainingData, lib: Library, days: list[int] | None = None,
             prior: tuple[float, float, float, float] | None = None) -> list[DayFit]:
    """Fit every history day's (or ``days``') level and shift to its recorded slot speeds.

    ``prior`` is :func:`day_prior`'s (mean, sd) of level and shift; None: least
    squares alone.
    """
    g = lib.grid
    levels = np.round(np.arange(g.levels[0], g.levels[-1] + 1e-9, FIT_LEVEL_STEP), 4)
    shifts = np.arange(g.shifts_s[0], g.shifts_s[-1] + 1e-9, FIT_SHIFT_STEP_S)
    if 1.0 not in levels:
        levels = np.sort(np.append(levels, 1.0))
    if not np.isclose(shifts, 0.0).any():
        shifts = np.sort(np.append(shifts, 0.0))
    n_slots = data.count.shape[2]
    pred = predicted_slot_speeds(lib, levels, shifts, data.slot_s, n_slots)
    i1, j0 = int(np.argmin(abs(levels - 1.0))), int(np.argmin(abs(shifts)))
    penalty = np.zeros((len(shifts), len(levels)))
    if prior is not None:
        m_l, s_l, m_s, s_s = prior
        if s_l > 0:
            penalty += 0.5 * ((levels[None, :] - m_l) / s_l) ** 2
        if s_s > 0:
            penalty += 0.5 * ((shifts[:, None] - m_s) / s_s) ** 2
    out = []
    for d in (range(len(data.dates)) if days is None else days):
        c = data.count[d]
        with np.errstate(invalid="ignore", divide="ignore"):
            obs = np.where(c >= MIN_CELL_POINTS, data.speed_sum[d] / c, np.nan)
        w = np.where(np.isfinite(obs), c, 0.0)
        diff2 = np.where(np.isfinite(pred) & (w > 0), (pred - obs) ** 2, 0.0)
        wsum = np.where(np.isfinite(pred), w, 0.0).sum(axis=(-2, -1))
        sse = (diff2 * w).sum(axis=(-2, -1))                      # points x km²/h²
        with np.errstate(invalid="ignore", divide="ignore"):
            mse = np.where(wsum > 0, sse / wsum, np.inf)
        m0, i0 = np.unravel_index(int(np.argmin(mse)), mse.shape)
        cells = int((w > 0).sum())
        # Noise of one point: E[points x residual²] per slot at the best fit
        # (2 factors fitted).
        sigma2 = max(float(sse[m0, i0]) / max(cells - 2, 1), 1e-6)
        cost = np.where(np.isfinite(mse), sse / (2 * sigma2), np.inf) + penalty
        m, i = np.unravel_index(int(np.argmin(cost)), cost.shape)
        out.append(DayFit(date=data.dates[d], demand_level=float(levels[i]),
                          peak_shift_s=float(shifts[m]), rmse_kmh=float(np.sqrt(mse[m, i])),
                          rmse_mean_day_kmh=float(np.sqrt(mse[j0, i1])), cells=cells,
                          ls_level=float(levels[i0]), ls_shift_s=float(shifts[m0])))
    return out
