"""Pedestrians at signalised crossings: when they cross, how long they wait, whom they stop.

Each crossing (:class:`~gpssignal.model.pedestrians.Crossing`) draws its
pedestrians for the day as a Poisson process at its 15-min rates (scaled and
shifted as the day's vehicle demand), each from one kerb or the other at
random. A pedestrian who arrives while the group is green (and shown) steps
off at once; otherwise at the start of the next green that is shown. A
pushbutton group shows its green only when a pedestrian was waiting when it
began. On a crossing with a refuge island a pedestrian who reaches the island
after green has ended waits there for the next green. The wait at the kerb
and on the island is the pedestrian's delay (their walking time is the same
under every program, so it is their time loss).

Simulated, not the HCM formula (docs/definitions.md#pedestrian-delay): the
formula d = (C − g)² / 2C holds for one fixed program with green every cycle
and random arrivals; here programs switch, pushbutton greens are skipped and
pedestrians hold up turning vehicles, so the delay is measured per
pedestrian. For a fixed program without pushbutton the mean agrees with the
formula (tests/sim/test_sim_pedestrians.py).

Turning vehicles that leave the junction over a crossing whose group may be
green with theirs yield to the pedestrians on the strip of it over the
outgoing motor lanes (right-hand traffic: at the kerb on the right, seen
from the junction; its width is those lanes' width).
:meth:`Pedestrians.step` gives, per crossing, until when that strip is
taken by a pedestrian on it or stepping onto it within the look-ahead
(the driver's critical gap); the vehicle kernel holds the yielding vehicles
until then.
"""

from __future__ import annotations

import numpy as np

from gpssignal.model.pedestrians import Crossing
from gpssignal.model.scenario import Scenario
from gpssignal.sim.demand import DayFactors, _segments
from gpssignal.sim.kernel import pedestrians_done, pedestrians_step
from gpssignal.sim.network import CompiledNetwork

__all__ = ["Pedestrians", "empty_state"]

_S_PER_H = 3600.0


def empty_state() -> tuple[np.ndarray, ...]:
    """Return the state of a network without crossings, as :attr:`Pedestrians.state` has it."""
    i0, f0 = np.zeros(0, dtype=np.int64), np.zeros(0)
    return (np.zeros(1, dtype=np.int64), f0, i0, f0, f0, i0, f0, f0, i0, i0, i0, i0, i0, i0, f0,
            i0, i0, i0, f0, f0, i0, f0, np.ones(2), np.zeros(1, dtype=np.int64))


def _zone_m(scenario: Scenario, junction: str, crossing: Crossing) -> float:
    """Width of the conflict strip of a crossing [m]: the outgoing motor lanes of its arm.

    Turning vehicles leave over those lanes; the strip lies at the kerb the
    outgoing lanes start from (right-hand traffic), and never beyond an island.
    """
    ref = f"{junction}.{crossing.arm}"
    width = max((len(lk.lanes) * lk.lane_width_m for lk in scenario.links
                 if lk.from_arm == ref and lk.mode == "motor"), default=crossing.length_m)
    limit = crossing.part_length_m
    return min(width, limit)


class Pedestrians:
    """The pedestrians of one day at every crossing of the network.

    Parameters
    ----------
    scenario, net : the scenario and its compiled network
    day : DayFactors
        The day's demand level and peak shift (applied as to vehicles).
    rng : numpy.random.Generator
        The day's pedestrian stream.
    group_state : ndarray
        The engine's signal state per global group (read at each step).
    """

    def __init__(self, scenario: Scenario, net: CompiledNetwork, day: DayFactors,
                 rng: np.random.Generator, group_state: np.ndarray) -> None:
        self.group_state = group_state
        self.group = net.crossing_group
        self.walk = scenario.pedestrians.walking_speed_mps
        self.look_ahead_s = scenario.driver.critical_gap_s
        crossings = [c for j in scenario.junctions for c in j.crossings]
        self.length = [c.length_m for c in crossings]
        self.zone = [_zone_m(scenario, j.id, c) for j in scenario.junctions
                     for c in j.crossings]
        self.island = [c.island for c in crossings]
        self.pushbutton = [c.pushbutton for c in crossings]
        self.arrival: list[np.ndarray] = []
        self.side: list[np.ndarray] = []
        for c in crossings:
            times = [rng.uniform(a, b, rng.poisson(q * day.demand_level * (b - a) / _S_PER_H))
                     for a, b, q in _segments(c.flow_pph, scenario.demand.interval_s,
                                              scenario.duration_s, day.peak_shift_s)]
            t = np.sort(np.concatenate(times)) if times else np.empty(0)
            self.arrival.append(t)
            self.side.append(rng.integers(0, 2, len(t)))
        n = len(crossings)
        counts = np.array([len(t) for t in self.arrival], dtype=np.int64)
        ptr = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(counts, out=ptr[1:])
        total = int(ptr[-1])
        arrival = np.concatenate(self.arrival) if n else np.empty(0)
        side = np.concatenate(self.side).astype(np.int64) if n else np.empty(0, np.int64)
        start = np.full(total, np.nan)
        island_wait = np.zeros(total)
        #: Per crossing, views of the flat arrays (arrival, start, wait on the island).
        self.arrival = [arrival[ptr[x]:ptr[x + 1]] for x in range(n)]
        self.start = [start[ptr[x]:ptr[x + 1]] for x in range(n)]
        self.island_wait = [island_wait[ptr[x]:ptr[x + 1]] for x in range(n)]
        self.block_until = np.full(n, -np.inf)
        # Per crossing, regions [ptr[x], ptr[x + 1]) of the flat arrays hold its
        # pedestrians walking to the island (index, time there), those waiting
        # on it, and the occupancies of its strip (from, until) [s]: each
        # pedestrian is in each at most once.
        #: The state as :func:`~gpssignal.sim.kernel.pedestrians_step` takes it
        #: (fields ``PD_*`` of :mod:`~gpssignal.sim.kernel`).
        self.state = (
            ptr, arrival, side, start, island_wait,
            np.asarray(net.crossing_group, dtype=np.int64),
            np.array(self.length, dtype=float).reshape(n),
            np.array(self.zone, dtype=float).reshape(n),
            np.array(self.island, dtype=np.int64).reshape(n),
            np.array(self.pushbutton, dtype=np.int64).reshape(n),
            ptr[:-1].copy(),                          # next to step off, per crossing
            np.zeros(n, dtype=np.int64),              # green shown
            np.zeros(n, dtype=np.int64),              # was green at the last step
            np.zeros(total, dtype=np.int64), np.zeros(total),   # walking to the island
            np.zeros(n, dtype=np.int64),
            np.zeros(total, dtype=np.int64), np.zeros(n, dtype=np.int64),  # on the island
            np.zeros(total), np.zeros(total), np.zeros(n, dtype=np.int64),  # strip taken
            self.block_until,
            np.array([self.walk, self.look_ahead_s]),
            np.ones(1, dtype=np.int64))              # the first step of the run

    def step(self, t: float, dt: float) -> None:
        """Advance every crossing over the step ``[t, t + dt)`` with the signals at ``t``."""
        pedestrians_step(self.state, self.group_state, t, dt)

    def done(self) -> bool:
        """Tell whether every pedestrian of the day has stepped off the kerb and the island."""
        return bool(pedestrians_done(self.state))

    def columns(self, crossing_ids: list[str]) -> dict[str, np.ndarray]:
        """Per pedestrian: crossing, arrival, start [s], delay at the kerb and island [s].

        ``delay_s`` is NaN for a pedestrian who had not crossed by the end of the run.
        """
        ids = np.array(crossing_ids, dtype=object)
        cross = np.concatenate([np.full(len(a), k, dtype=np.int64)
                                for k, a in enumerate(self.arrival)]) \
            if self.arrival else np.empty(0, np.int64)
        arrival = np.concatenate(self.arrival) if self.arrival else np.empty(0)
        start = np.concatenate(self.start) if self.start else np.empty(0)
        isl = np.concatenate(self.island_wait) if self.island_wait else np.empty(0)
        isl = np.where(isl < 0, np.nan, isl)  # still waiting on the island at the end
        return {"crossing": ids[cross] if len(cross) else np.empty(0, dtype=object),
                "arrival_s": arrival, "start_s": start,
                "delay_s": start - arrival + isl}
