"""Demand realisation: one simulated day's arrivals, routes and vehicles.

Everything here depends only on the scenario and the day's random stream, so
every controller run on the same seed sees exactly the same vehicles (common
random numbers).

An entry link with an ``upstream_signal`` receives its vehicles in platoons
dispersed by Robertson's model (:func:`platoon_times`,
docs/references.md#platoon-dispersion).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np

from gpssignal.model.approach import UpstreamSignal
from gpssignal.model.scenario import DemandFlow, Link, Scenario, link_mode
from gpssignal.sim.network import EXIT, MOVE_CODE, NO_INDEX, CompiledNetwork
from gpssignal.sim.vehicles import class_speed_cap_mps

__all__ = ["ORDINARY", "Arrivals", "DayFactors", "ExtraFlowWindow", "IncidentWindow",
           "draw_day", "generate_arrivals", "platoon_lag", "platoon_times",
           "upstream_departures"]

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
#: Vehicles per block when summing route lengths over the padded route matrix
#: (bounds the temporary memory) [vehicles].
_ROUTE_SUM_ROWS = 65_536
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

    Routes are stored compactly (CSR): the links of vehicle ``i``'s route are
    ``route_link[route_ptr[i]:route_ptr[i + 1]]`` and the movement code at
    the end of each is ``route_move[...]`` (the last is -1: it leaves the
    network), so memory grows with the links driven, not with vehicles ×
    the longest possible route.

    Attributes
    ----------
    t_s : ndarray
        Arrival time at the network boundary [s after simulation start].
    route_ptr : ndarray of int64, shape (n + 1,)
        Start of each vehicle's route in ``route_link`` / ``route_move``.
    route_link : ndarray of int32
        Link indices of the routes, one after another.
    route_move : ndarray of int32
        Movement code at the end of each route link (-1 = leaves the network).
    route_length_m : ndarray
        Route length [m].
    free_flow_time_s : ndarray
        Σ link length / (link speed limit × speed factor) [s].
    vehicle_class : ndarray
        Index into the scenario's vehicle classes.
    speed_factor : ndarray
        Desired speed / speed limit [-].
    max_route_links : int
        The network's longest possible route [links]: the width of the
        padded matrices :attr:`route_links` and :attr:`route_moves`.
    """

    t_s: np.ndarray
    route_ptr: np.ndarray
    route_link: np.ndarray
    route_move: np.ndarray
    route_length_m: np.ndarray
    free_flow_time_s: np.ndarray
    vehicle_class: np.ndarray
    speed_factor: np.ndarray
    max_route_links: int
    #: The padded matrices, built on first access (:attr:`route_links`).
    _padded_cache: dict[str, np.ndarray] = field(default_factory=dict, init=False, repr=False,
                                                 compare=False)

    def __len__(self) -> int:
        """Return the number of arrivals."""
        return len(self.t_s)

    @property
    def first_link(self) -> np.ndarray:
        """Entry link of each vehicle (int32)."""
        return self.route_link[self.route_ptr[:-1]]

    @property
    def first_move(self) -> np.ndarray:
        """Movement code at the end of each vehicle's entry link (int32)."""
        return self.route_move[self.route_ptr[:-1]]

    def route(self, i: int) -> np.ndarray:
        """Link indices of vehicle ``i``'s route (a view)."""
        return self.route_link[self.route_ptr[i]:self.route_ptr[i + 1]]

    @property
    def route_links(self) -> np.ndarray:
        """Link indices of each route as a matrix (n, max_route_links), padded with -1.

        Built on first access and kept (vehicles × longest route, int64; the
        simulation never builds it): prefer :attr:`route_link` /
        :attr:`route_ptr`, :attr:`first_link` or :meth:`route`.
        """
        if "links" not in self._padded_cache:
            self._padded_cache["links"] = _padded(self.route_ptr, self.route_link,
                                                  self.max_route_links, NO_INDEX)
        return self._padded_cache["links"]

    @property
    def route_moves(self) -> np.ndarray:
        """Movement codes as a matrix (n, max_route_links), padded with -1 (as :attr:`route_links`)."""  # noqa: E501
        if "moves" not in self._padded_cache:
            self._padded_cache["moves"] = _padded(self.route_ptr, self.route_move,
                                                  self.max_route_links, EXIT)
        return self._padded_cache["moves"]

    def take(self, order: np.ndarray) -> Arrivals:
        """Return the vehicles ``order`` (indices), in that order."""
        start, length = self.route_ptr[:-1][order], np.diff(self.route_ptr)[order]
        ptr = np.zeros(len(order) + 1, dtype=np.int64)
        np.cumsum(length, out=ptr[1:])
        src = np.repeat(start - ptr[:-1], length) + np.arange(ptr[-1])
        return Arrivals(t_s=self.t_s[order], route_ptr=ptr, route_link=self.route_link[src],
                        route_move=self.route_move[src],
                        route_length_m=self.route_length_m[order],
                        free_flow_time_s=self.free_flow_time_s[order],
                        vehicle_class=self.vehicle_class[order],
                        speed_factor=self.speed_factor[order],
                        max_route_links=self.max_route_links)


def _padded(ptr: np.ndarray, values: np.ndarray, width: int, fill: int) -> np.ndarray:
    """Return CSR rows ``values[ptr[i]:ptr[i + 1]]`` as an int64 matrix of ``width`` columns."""
    n = len(ptr) - 1
    out = np.full((n, width), fill, dtype=np.int64)
    length = np.diff(ptr)
    row = np.repeat(np.arange(n), length)
    out[row, np.arange(len(values)) - np.repeat(ptr[:-1], length)] = values
    return out


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

    **Platooned arrivals.** On an entry link with an ``upstream_signal`` every
    vehicle (scenario and extra flows alike) is first drawn as above, route,
    class and speed factor included; then its Poisson time, moved earlier by
    the mean travel time βT(1 + α) from the upstream stop line, is taken as
    its arrival at the upstream signal, and :func:`platoon_times` gives its
    entry time: FIFO discharge at the saturation flow during the upstream
    green, then the travel time βT plus a geometric dispersion delay
    (Robertson's model, docs/references.md#platoon-dispersion). So the demand
    profile still describes the flow at the entry, lagged by the mean wait at
    the upstream signal. The vehicles are then re-sorted by entry time. An
    entry before simulation time 0 (a vehicle that drew a short lag early in
    the period) is set to 0; an entry after the demand period is kept (the
    vehicle is part of the drain), but one at or after the end of the run
    (``duration_s + drain_s``, only behind an upstream signal whose capacity,
    :meth:`~gpssignal.model.scenario.Link.upstream_capacity_vph`, is below
    the demand) is dropped, as it could never enter.

    The platoon draws come from a generator seeded by one number drawn from
    ``rng`` after every other draw, and only when some link has an upstream
    signal: the Poisson draws, routes, classes and speed factors are the same
    numbers with or without upstream signals, and a scenario without any
    draws exactly what it drew before they existed.

    **Cyclists.** Flows on cycle links (``mode = "bicycle"``) are drawn the
    same way, with the bicycle classes, from a generator seeded by one more
    number drawn last (only when there are such flows), so adding cycle
    tracks leaves every motor vehicle as it was; the two lists are merged by
    arrival time. A class's desired-speed cap (``max_speed_kmh``) enters the
    free-flow time.
    """
    bike_links = {lk.id for lk in scenario.links if lk.mode == "bicycle"}
    motor = [f for f in scenario.demand.flows if f.link not in bike_links]
    arrivals = _mode_arrivals(scenario, net, day, rng, motor, day.extra_flows, "motor")
    fed = [(net.link_index(lk.id), lk) for lk in scenario.links if lk.upstream_signal is not None]
    if fed:
        arrivals = _platoon_arrivals(scenario, arrivals, fed,
                                     np.random.default_rng(int(rng.integers(2**63))))
    bikes = [f for f in scenario.demand.flows if f.link in bike_links]
    if bikes:
        cyclists = _mode_arrivals(scenario, net, day,
                                  np.random.default_rng(int(rng.integers(2**63))), bikes, (),
                                  "bicycle")
        arrivals = _merge(arrivals, cyclists)
    return arrivals


def _mode_arrivals(scenario: Scenario, net: CompiledNetwork, day: DayFactors,
                   rng: np.random.Generator, flows: list[DemandFlow],
                   extra: tuple[ExtraFlowWindow, ...], mode: str) -> Arrivals:
    """Draw Poisson arrivals of ``flows`` and the day's ``extra`` flows, with ``mode`` classes."""
    # Per draw (a flow's segment): its times, and its flow's entry link and movement.
    times, links, moves = [], [], []
    for f in flows:
        link, move = net.link_index(f.link), MOVE_CODE[f.movement]
        for a, b, q in _segments(f.flow_vph, scenario.demand.interval_s, scenario.duration_s,
                                 day.peak_shift_s):
            n = rng.poisson(q * day.demand_level * (b - a) / _S_PER_H)
            times.append(rng.uniform(a, b, n))
            links.append(link)
            moves.append(move)
    for ef in extra:
        a, b = max(ef.t0_s, 0.0), min(ef.t1_s, scenario.duration_s)
        if b <= a:
            continue
        n = rng.poisson(ef.flow_vph * (b - a) / _S_PER_H)
        times.append(rng.uniform(a, b, n))
        links.append(net.link_index(ef.link))
        moves.append(MOVE_CODE[ef.movement])
    t = np.concatenate(times) if times else np.empty(0)
    counts = [len(x) for x in times]
    first_link = np.repeat(np.array(links, dtype=np.int64), counts)
    first_move = np.repeat(np.array(moves, dtype=np.int64), counts)
    order = np.argsort(t, kind="stable")
    t, first_link, first_move = t[order], first_link[order], first_move[order]
    n = len(t)
    kmax = net.max_route_links()
    # Route level k of the vehicles still driving on: their links and moves.
    # Same draws, in the same order, as a dense (n, kmax) construction.
    level_idx = [np.arange(n)]
    level_link = [first_link]
    level_move = [first_move]
    prev, mv = first_link, first_move
    idx = level_idx[0]
    for _k in range(1, kmax):
        go = mv >= 0
        idx, prev, mv = idx[go], prev[go], mv[go]
        nxt = net.link_next[prev, mv]
        internal = net.link_junction[nxt] >= 0
        u = rng.uniform(size=len(idx))
        cdf = net.link_turn_cdf[nxt]
        m = (u[:, None] >= cdf).sum(axis=1)
        prev, mv = nxt, np.where(internal, np.minimum(m, _LAST_MOVE), EXIT)
        level_idx.append(idx)
        level_link.append(prev)
        level_move.append(mv)
    length_links = np.zeros(n, dtype=np.int64)
    for idx in level_idx:
        length_links[idx] += 1
    ptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(length_links, out=ptr[1:])
    route_link = np.empty(ptr[-1], dtype=np.int32)
    route_move = np.empty(ptr[-1], dtype=np.int32)
    for k, (idx, lk, mv) in enumerate(zip(level_idx, level_link, level_move, strict=True)):
        route_link[ptr[idx] + k] = lk
        route_move[ptr[idx] + k] = mv
    del level_idx, level_link, level_move
    classes = scenario.vehicle_classes
    own = np.array([k for k, c in enumerate(classes) if link_mode(c.mode) == mode],
                   dtype=np.int64)
    shares = np.array([classes[k].share for k in own])
    vclass = own[rng.choice(len(own), size=n, p=shares / shares.sum())]
    mean = np.array([c.speed_factor_mean for c in classes])[vclass]
    sd = np.array([c.speed_factor_sd for c in classes])[vclass]
    factor = _truncated_normal(rng, mean, sd)
    cap = np.array([class_speed_cap_mps(c) for c in classes])[vclass]
    length, ff = np.empty(n), np.empty(n)
    for a in range(0, n, _ROUTE_SUM_ROWS):
        b = min(a + _ROUTE_SUM_ROWS, n)
        # Row sums over the padded (rows, kmax) block: the same pairwise
        # summation, so the same bits, as over the whole padded matrix.
        rl = _padded(ptr[a:b + 1] - ptr[a], route_link[ptr[a]:ptr[b]], kmax, NO_INDEX)
        valid = rl >= 0
        safe = np.where(valid, rl, 0)
        length[a:b] = np.where(valid, net.link_length_m[safe], 0.0).sum(axis=1)
        vmax = np.minimum(net.link_vmax_mps[safe], cap[a:b, None])
        ff[a:b] = np.where(valid, net.link_length_m[safe] / vmax, 0.0).sum(axis=1)
    return Arrivals(t_s=t, route_ptr=ptr, route_link=route_link, route_move=route_move,
                    route_length_m=length, free_flow_time_s=ff / factor,
                    vehicle_class=vclass.astype(np.int64), speed_factor=factor,
                    max_route_links=kmax)


def _merge(a: Arrivals, b: Arrivals) -> Arrivals:
    """Return the vehicles of ``a`` and ``b`` sorted by arrival time (``a`` first on ties)."""
    t = np.concatenate([a.t_s, b.t_s])
    order = np.argsort(t, kind="stable")
    both = Arrivals(
        t_s=t, route_ptr=np.concatenate([a.route_ptr[:-1], a.route_ptr[-1] + b.route_ptr]),
        route_link=np.concatenate([a.route_link, b.route_link]),
        route_move=np.concatenate([a.route_move, b.route_move]),
        **{f: np.concatenate([getattr(a, f), getattr(b, f)])
           for f in ("route_length_m", "free_flow_time_s", "vehicle_class", "speed_factor")},
        max_route_links=max(a.max_route_links, b.max_route_links))
    return both.take(order)


def _platoon_arrivals(scenario: Scenario, arr: Arrivals, fed: list[tuple[int, Link]],
                      rng: np.random.Generator) -> Arrivals:
    """Replace the arrival times on the ``fed`` links by platoon entry times; re-sort.

    ``fed`` lists ``(link index, link)`` in scenario order; ``arr`` is sorted
    by the Poisson times. See :func:`generate_arrivals` for the rules.
    """
    t = arr.t_s.copy()
    first = arr.first_link
    for li, lk in fed:
        sig = lk.upstream_signal
        assert sig is not None
        idx = np.flatnonzero(first == li)
        lag, f = platoon_lag(sig, lk.speed_limit_mps)
        mean_travel = lag + (1.0 - f) / f
        _, enter = platoon_times(t[idx] - mean_travel, sig, lk.full_lanes(),
                                 lk.speed_limit_mps, scenario.start_clock_s, rng)
        t[idx] = np.maximum(enter, 0.0)
    keep = np.flatnonzero(t < scenario.duration_s + scenario.drain_s)
    order = keep[np.argsort(t[keep], kind="stable")]
    return replace(arr.take(order), t_s=t[order])  # the entry times, not the Poisson times


def platoon_lag(signal: UpstreamSignal, speed_mps: float) -> tuple[float, float]:
    """Return Robertson's least travel time βT [s] and smoothing factor F = 1 / (1 + αβT).

    ``T`` is the travel time over ``distance_m`` at ``speed_mps`` (the link's
    speed limit), in seconds, as the recurrence's 1-s steps.
    """
    lag = signal.beta * signal.distance_m / speed_mps
    return lag, 1.0 / (1.0 + signal.alpha * lag)


def upstream_departures(arrive_s: np.ndarray, signal: UpstreamSignal, n_lanes: int,
                        start_clock_s: float) -> np.ndarray:
    """Return when vehicles reaching the upstream stop line at ``arrive_s`` (sorted) leave.

    First in, first out, only during green, and each no sooner than
    3600 / (``saturation_flow_vph`` × ``n_lanes``) s after the one before.
    Green runs from cycle second ``offset_s`` for ``green_s`` on the clock, so
    its starts are at simulation times ``offset_s - start_clock_s + k·cycle_s``.
    """
    h = _S_PER_H / (signal.saturation_flow_vph * n_lanes)
    cycle, green = signal.cycle_s, signal.green_s
    g0 = signal.offset_s - start_clock_s
    # A plain Python loop over floats (each departure waits for the one
    # before), appending to a list: item assignment into an array costs more.
    out: list[float] = []
    floor = math.floor
    prev = -math.inf
    for u in arrive_s.tolist():
        d = prev + h
        d = d if d > u else u   # max(u, prev + h)
        start = g0 + floor((d - g0) / cycle) * cycle
        if d - start >= green:
            d = start + cycle
        out.append(d)
        prev = d
    return np.array(out, dtype=float)


def platoon_times(arrive_s: np.ndarray, signal: UpstreamSignal, n_lanes: int, speed_mps: float,
                  start_clock_s: float, rng: np.random.Generator
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Return each vehicle's departure from the upstream stop line and entry time [s].

    Departures as :func:`upstream_departures`. The travel time to the entry
    is βT + G, G a whole number of seconds drawn per vehicle with
    P(G = k) = F (1 − F)^k, F = 1 / (1 + αβT) (:func:`platoon_lag`): Seddon's
    reading of Robertson's recurrence q_d(t + βT) = F q_u(t) + (1 − F)
    q_d(t + βT − 1) in 1-s steps, whose mean lag is βT(1 + α)
    (docs/references.md#platoon-dispersion). Entry times are not sorted.
    """
    depart = upstream_departures(arrive_s, signal, n_lanes, start_clock_s)
    lag, f = platoon_lag(signal, speed_mps)
    g = rng.geometric(f, size=len(depart)) - 1
    return depart, depart + lag + g
