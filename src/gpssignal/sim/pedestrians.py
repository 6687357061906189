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
from gpssignal.sim.network import CompiledNetwork

__all__ = ["Pedestrians"]

_GREEN = 2
_S_PER_H = 3600.0


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
        self.start = [np.full(len(t), np.nan) for t in self.arrival]
        self.island_wait = [np.zeros(len(t)) for t in self.arrival]
        self._next = [0] * n
        self._shown = [False] * n
        self._was_green = [False] * n
        self._first = True
        #: Pedestrians walking the first half of an island crossing: (index, time at island).
        self._to_island: list[list[tuple[int, float]]] = [[] for _ in range(n)]
        #: Pedestrians waiting on the island: indices.
        self._on_island: list[list[int]] = [[] for _ in range(n)]
        #: Occupancy of the outgoing half: (from, until) [s].
        self._busy: list[list[tuple[float, float]]] = [[] for _ in range(n)]
        self.block_until = np.full(n, -np.inf)

    def step(self, t: float, dt: float) -> None:
        """Advance every crossing over the step ``[t, t + dt)`` with the signals at ``t``."""
        self._step_all(t, dt)
        self._first = False

    def _step_all(self, t: float, dt: float) -> None:
        for x in range(len(self.arrival)):
            green = self.group_state[self.group[x]] == _GREEN
            arr = self.arrival[x]
            if green and not self._was_green[x]:  # green begins: shown?
                waiting = self._next[x] < len(arr) and arr[self._next[x]] <= t
                # A green already on when the run starts counts as called (the
                # calls before the run are unknown).
                self._shown[x] = not self.pushbutton[x] or waiting or self._first
            self._was_green[x] = green
            go = green and self._shown[x]
            if go:
                k = self._next[x]
                while k < len(arr) and arr[k] < t + dt:
                    self._depart(x, k, max(arr[k], t))
                    k += 1
                self._next[x] = k
            if self.island[x]:
                self._island_step(x, t, dt, go)
            busy = self._busy[x]
            if busy:
                busy[:] = [(a, b) for a, b in busy if b > t]
                horizon = t + self.look_ahead_s
                self.block_until[x] = max((b for a, b in busy if a <= horizon), default=-np.inf)
            else:
                self.block_until[x] = -np.inf

    def _depart(self, x: int, k: int, t0: float) -> None:
        """Pedestrian ``k`` of crossing ``x`` steps off the kerb at ``t0``."""
        self.start[x][k] = t0
        if self.island[x]:
            half = self.length[x] / 2.0 / self.walk
            if self.side[x][k] == 0:         # the conflict strip is on its first half
                self._occupy(x, t0, 0.0)
            self._to_island[x].append((k, t0 + half))
        else:
            self._occupy(x, t0, 0.0 if self.side[x][k] == 0 else self.length[x])

    def _occupy(self, x: int, t0: float, from_m: float) -> None:
        """Add when a pedestrian ``from_m`` from the outgoing kerb at ``t0`` is on the strip."""
        z = self.zone[x]
        a = abs(from_m - (z if from_m > 0 else 0.0)) / self.walk
        self._busy[x].append((t0 + a, t0 + a + z / self.walk))

    def _island_step(self, x: int, t: float, dt: float, go: bool) -> None:
        """Pedestrians reaching the island go on if green is shown, else wait there."""
        still = []
        for k, t_isl in self._to_island[x]:
            if t_isl >= t + dt:
                still.append((k, t_isl))
            elif go:
                self._second_half(x, k, max(t_isl, t))
            else:
                self._on_island[x].append(k)
                self.island_wait[x][k] = -t_isl  # completed when it goes on
        self._to_island[x] = still
        if go and self._on_island[x]:
            for k in self._on_island[x]:
                self.island_wait[x][k] += t
                self._second_half(x, k, t)
            self._on_island[x] = []

    def _second_half(self, x: int, k: int, t0: float) -> None:
        """Pedestrian ``k`` walks the island's second half from ``t0``."""
        if self.side[x][k] == 1:             # the conflict strip is on its second half
            self._occupy(x, t0, self.length[x] / 2.0)

    def done(self) -> bool:
        """Tell whether every pedestrian of the day has stepped off the kerb and the island."""
        return all(k == len(a) for k, a in zip(self._next, self.arrival, strict=True)) and \
            not any(self._to_island) and not any(self._on_island)

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
