"""Demand realisation: one simulated day's arrivals, routes and vehicles.

Everything here depends only on the scenario and the day's random stream, so
every controller run on the same seed sees exactly the same vehicles (common
random numbers).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gpssignal.model.scenario import Scenario
from gpssignal.sim.network import EXIT, MOVE_CODE, CompiledNetwork

__all__ = ["DayFactors", "Arrivals", "draw_day", "generate_arrivals"]


@dataclass(frozen=True, slots=True)
class DayFactors:
    """What makes this day differ from the mean day.

    ``demand_level`` multiplies every flow [-]; ``peak_shift_s`` shifts the
    whole demand profile later (positive) or earlier (negative) [s].
    """

    demand_level: float
    peak_shift_s: float


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
        return len(self.t_s)


def draw_day(scenario: Scenario, rng: np.random.Generator) -> DayFactors:
    """Draw the day-to-day factors (truncated normals, see :class:`Variability`)."""
    v = scenario.variability
    level = 1.0
    if v.demand_level_sd > 0:
        level = float(np.clip(rng.normal(1.0, v.demand_level_sd), 1 - 3 * v.demand_level_sd,
                              1 + 3 * v.demand_level_sd))
    shift = 0.0
    if v.peak_shift_sd_s > 0:
        shift = float(np.clip(rng.normal(0.0, v.peak_shift_sd_s), -3 * v.peak_shift_sd_s,
                              3 * v.peak_shift_sd_s))
    return DayFactors(demand_level=level, peak_shift_s=shift)


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
    """Normal draws truncated to mean ± 2 sd, by redrawing the ones outside."""
    x = rng.normal(mean, sd)
    bad = np.abs(x - mean) > 2 * sd
    while bad.any():
        x[bad] = rng.normal(mean[bad], sd[bad])
        bad = np.abs(x - mean) > 2 * sd
    return x


def generate_arrivals(scenario: Scenario, net: CompiledNetwork, day: DayFactors,
                      rng: np.random.Generator) -> Arrivals:
    """Poisson arrivals per entry flow with the day's piecewise-constant rates.

    Routes start with the flow's movement and continue by the turn shares of
    each link between junctions; class and speed factor are drawn per vehicle.
    """
    times, links, moves = [], [], []
    for f in scenario.demand.flows:
        for a, b, q in _segments(f.flow_vph, scenario.demand.interval_s, scenario.duration_s,
                                 day.peak_shift_s):
            n = rng.poisson(q * day.demand_level * (b - a) / 3600.0)
            times.append(rng.uniform(a, b, n))
            links.append(np.full(n, net.link_index(f.link), dtype=np.int64))
            moves.append(np.full(n, MOVE_CODE[f.movement], dtype=np.int64))
    t = np.concatenate(times) if times else np.empty(0)
    first_link = np.concatenate(links) if links else np.empty(0, np.int64)
    first_move = np.concatenate(moves) if moves else np.empty(0, np.int64)
    order = np.argsort(t, kind="stable")
    t, first_link, first_move = t[order], first_link[order], first_move[order]
    n = len(t)
    kmax = net.max_route_links()
    route_links = np.full((n, kmax), -1, dtype=np.int64)
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
        route_moves[idx, k] = np.where(internal, np.minimum(m, 2), EXIT)
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
