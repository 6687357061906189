"""Demand realisation: one simulated day's arrivals, routes and vehicles.

Everything here depends only on the scenario and the day's random stream, so
every controller run on the same seed sees exactly the same vehicles (common
random numbers).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gpssignal.model.scenario import Scenario
from gpssignal.sim.network import EXIT, MOVE_CODE, NO_INDEX, CompiledNetwork

__all__ = ["ORDINARY", "Arrivals", "DayFactors", "ExtraFlowWindow", "IncidentWindow",
           "draw_day", "generate_arrivals"]

#: The type of every day of a scenario without a day-type mix.
ORDINARY = "ordinary"

#: Flows are given per hour [s/h].
_S_PER_H = 3600.0
#: Day factors are normals clipped to mean ± this many standard deviations, so
#: that a rare draw cannot produce an absurd day [sd].
_DAY_CLIP_SD = 3
#: Speed factors are normals truncated (redrawn) beyond mean ± this many
#: standard deviations, as SUMO's speedDev distribution [sd].
_SPEED_FACTOR_TRUNC_SD = 2
#: Highest movement code a turn share can pick (``right``).
_LAST_MOVE = len(MOVE_CODE) - 1


@dataclass(frozen=True, slots=True)
class IncidentWindow:
    """An incident of the day.

    From ``t0_s`` to ``t1_s`` [s after simulation start] at most
    ``capacity_vph`` vehicles an hour pass the end of ``link``.
    """

    link: str
    t0_s: float
    t1_s: float
    capacity_vph: float


@dataclass(frozen=True, slots=True)
class ExtraFlowWindow:
    """Extra arrivals of the day.

    ``flow_vph`` on ``link`` (``movement``) from ``t0_s`` to ``t1_s`` [s after
    simulation start].
    """

    link: str
    movement: str
    flow_vph: float
    t0_s: float
    t1_s: float


@dataclass(frozen=True, slots=True)
class DayFactors:
    """What makes this day differ from the mean day.

    ``demand_level`` multiplies every flow [-]; ``peak_shift_s`` shifts the
    whole demand profile later (positive) or earlier (negative) [s];
    ``day_type`` names the day's type (``ordinary`` without a mix);
    ``incidents`` and ``extra_flows`` are its type's events, placed in time.
    """

    demand_level: float
    peak_shift_s: float
    day_type: str = ORDINARY
    incidents: tuple[IncidentWindow, ...] = ()
    extra_flows: tuple[ExtraFlowWindow, ...] = ()


@dataclass(frozen=True, slots=True)
class Arrivals:
    """The vehicles of one day, sorted by arrival time.

    Attributes
    ----------
    t_s : ndarray
        Arrival time at the network boundary [s after simulation start].
    route_links : ndarray, shape (n, K)
        Link indices of each route, padded with -1.
    route_moves : ndarray, shape (n, K)
        Movement code at the end of each route link (-1 = leaves the network).
    route_length_m : ndarray
        Route length [m].
    free_flow_time_s : ndarray
        Σ link length / (link speed limit × speed factor) [s].
    vehicle_class : ndarray
        Index into the scenario's vehicle classes.
    speed_factor : ndarray
        Desired speed / speed limit [-].
    """

    t_s: np.ndarray
    route_links: np.ndarray
    route_moves: np.ndarray
    route_length_m: np.ndarray
    free_flow_time_s: np.ndarray
    vehicle_class: np.ndarray
    speed_factor: np.ndarray

    def __len__(self) -> int:
        """Return the number of arrivals."""
        return len(self.t_s)


def draw_day(scenario: Scenario, rng: np.random.Generator,
             type_rng: np.random.Generator | None = None,
             day_type: str | None = None) -> DayFactors:
    """Draw the day: its type (from ``type_rng``) and its factors.

    The level and shift of :class:`Variability` come from ``rng`` as they
    always did (truncated normals), so a scenario without a day-type mix
    draws exactly the days it drew before mixes existed. The type, its
    extra shift and its events come from ``type_rng`` (its own stream);
    ``day_type`` forces a type instead of drawing it (the draw is still made,
    so the type's events come from the same numbers).
    """
    v = scenario.variability
    level = 1.0
    if v.demand_level_sd > 0:
        level = float(np.clip(rng.normal(1.0, v.demand_level_sd),
                              1 - _DAY_CLIP_SD * v.demand_level_sd,
                              1 + _DAY_CLIP_SD * v.demand_level_sd))
    shift = 0.0
    if v.peak_shift_sd_s > 0:
        shift = float(np.clip(rng.normal(0.0, v.peak_shift_sd_s),
                              -_DAY_CLIP_SD * v.peak_shift_sd_s, _DAY_CLIP_SD * v.peak_shift_sd_s))
    if not scenario.day_types or type_rng is None:
        return DayFactors(demand_level=level, peak_shift_s=shift)
    return _typed_day(scenario, type_rng, level, shift, day_type)


def _typed_day(scenario: Scenario, rng: np.random.Generator, level: float, shift: float,
               day_type: str | None) -> DayFactors:
    """Return the day's type from the mix, and its shift and events drawn uniformly."""
    types = scenario.day_types
    p = np.array([d.frequency for d in types])
    k = int(rng.choice(len(types), p=p / p.sum()))
    if day_type is not None:
        k = [d.name for d in types].index(day_type)
    d = types[k]
    start = scenario.start_clock_s

    def window(clock: tuple[float, float], duration: tuple[float, float]) -> tuple[float, float]:
        t0 = float(rng.uniform(*clock)) - start
        return t0, t0 + float(rng.uniform(*duration))

    extra_shift = float(rng.uniform(*d.peak_shift_s))
    incidents = tuple(IncidentWindow(i.link, *window(i.start_clock_s, i.duration_s),
                                     i.capacity_vph) for i in d.incidents)
    flows = tuple(ExtraFlowWindow(f.link, f.movement, f.flow_vph,
                                  *window(f.start_clock_s, f.duration_s))
                  for f in d.extra_flows)
    return DayFactors(demand_level=level * d.demand_factor, peak_shift_s=shift + extra_shift,
                      day_type=d.name, incidents=incidents, extra_flows=flows)


def _segments(flow_vph: tuple[float, ...], interval_s: float, duration_s: float,
              shift_s: float) -> list[tuple[float, float, float]]:
    """Piecewise-constant rate over [0, duration): ``(t0, t1, rate_vph)``.

    The profile is shifted by ``shift_s``; beyond its ends the first and last
    interval's rates hold.
    """
    edges = [k * interval_s + shift_s for k in range(len(flow_vph) + 1)]
    edges[0], edges[-1] = -np.inf, np.inf
    segs = []
    for k, q in enumerate(flow_vph):
        a, b = max(edges[k], 0.0), min(edges[k + 1], duration_s)
        if b > a and q > 0:
            segs.append((a, b, q))
    return segs


def _truncated_normal(rng: np.random.Generator, mean: np.ndarray, sd: np.ndarray) -> np.ndarray:
    """Draw normals truncated to mean ± 2 sd, by redrawing the ones outside."""
    x = rng.normal(mean, sd)
    bad = np.abs(x - mean) > _SPEED_FACTOR_TRUNC_SD * sd
    while bad.any():
        x[bad] = rng.normal(mean[bad], sd[bad])
        bad = np.abs(x - mean) > _SPEED_FACTOR_TRUNC_SD * sd
    return x


def generate_arrivals(scenario: Scenario, net: CompiledNetwork, day: DayFactors,
                      rng: np.random.Generator) -> Arrivals:
    """Poisson arrivals per entry flow with the day's piecewise-constant rates.

    Routes start with the flow's movement and continue by the turn shares of
    each link between junctions; class and speed factor are drawn per vehicle.
    The day's extra flows (a diversion) arrive the same way during their
    windows, on top of the scenario's flows.
    """
    times, links, moves = [], [], []
    for f in scenario.demand.flows:
        for a, b, q in _segments(f.flow_vph, scenario.demand.interval_s, scenario.duration_s,
                                 day.peak_shift_s):
            n = rng.poisson(q * day.demand_level * (b - a) / _S_PER_H)
            times.append(rng.uniform(a, b, n))
            links.append(np.full(n, net.link_index(f.link), dtype=np.int64))
            moves.append(np.full(n, MOVE_CODE[f.movement], dtype=np.int64))
    for ef in day.extra_flows:
        a, b = max(ef.t0_s, 0.0), min(ef.t1_s, scenario.duration_s)
        if b <= a:
            continue
        n = rng.poisson(ef.flow_vph * (b - a) / _S_PER_H)
        times.append(rng.uniform(a, b, n))
        links.append(np.full(n, net.link_index(ef.link), dtype=np.int64))
        moves.append(np.full(n, MOVE_CODE[ef.movement], dtype=np.int64))
    t = np.concatenate(times) if times else np.empty(0)
    first_link = np.concatenate(links) if links else np.empty(0, np.int64)
    first_move = np.concatenate(moves) if moves else np.empty(0, np.int64)
    order = np.argsort(t, kind="stable")
    t, first_link, first_move = t[order], first_link[order], first_move[order]
    n = len(t)
    kmax = net.max_route_links()
    route_links = np.full((n, kmax), NO_INDEX, dtype=np.int64)
    route_moves = np.full((n, kmax), EXIT, dtype=np.int64)
    route_links[:, 0] = first_link
    route_moves[:, 0] = first_move
    active = np.ones(n, dtype=bool)
    for k in range(1, kmax):
        prev = route_links[:, k - 1]
        mv = route_moves[:, k - 1]
        active &= mv >= 0
        idx = np.flatnonzero(active)
        nxt = net.link_next[prev[idx], mv[idx]]
        route_links[idx, k] = nxt
        internal = net.link_junction[nxt] >= 0
        u = rng.uniform(size=len(idx))
        cdf = net.link_turn_cdf[nxt]
        m = (u[:, None] >= cdf).sum(axis=1)
        route_moves[idx, k] = np.where(internal, np.minimum(m, _LAST_MOVE), EXIT)
    classes = scenario.vehicle_classes
    shares = np.array([c.share for c in classes])
    vclass = rng.choice(len(classes), size=n, p=shares / shares.sum())
    mean = np.array([c.speed_factor_mean for c in classes])[vclass]
    sd = np.array([c.speed_factor_sd for c in classes])[vclass]
    factor = _truncated_normal(rng, mean, sd)
    valid = route_links >= 0
    safe = np.where(valid, route_links, 0)
    length = np.where(valid, net.link_length_m[safe], 0.0).sum(axis=1)
    ff = np.where(valid, net.link_length_m[safe] / net.link_vmax_mps[safe], 0.0).sum(axis=1)
    return Arrivals(t_s=t, route_links=route_links, route_moves=route_moves,
                    route_length_m=length, free_flow_time_s=ff / factor,
                    vehicle_class=vclass.astype(np.int64), speed_factor=factor)
