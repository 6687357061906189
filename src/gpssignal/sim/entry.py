"""Entry links and the vehicles waiting outside them to enter the network."""

from __future__ import annotations

from collections import deque

import numpy as np

from gpssignal.model.scenario import Scenario
from gpssignal.sim.demand import Arrivals
from gpssignal.sim.network import CompiledNetwork

__all__ = ["EntryQueues"]


class EntryQueues:
    """A first-in first-out queue of vehicle ids per entry link.

    A vehicle joins its entry link's queue when it arrives at the network
    boundary and leaves it when it fits into a lane (see
    ``Simulation._insert``). Also holds, as Python lists, the arrival data the
    per-vehicle entry loop reads.

    Attributes
    ----------
    links : ndarray
        Entry link indices, ascending; an entry link's *slot* is its position here.
    queues : dict[int, deque[int]]
        Waiting vehicle ids per entry link, in arrival order.
    waiting : ndarray
        Number waiting per slot.
    n_waiting : int
        Number waiting in all.
    """

    def __init__(self, scenario: Scenario, net: CompiledNetwork, arrivals: Arrivals) -> None:
        self.links = np.array(sorted({int(x) for x in arrivals.route_links[:, 0]}
                                     | {net.link_index(f.link) for f in scenario.demand.flows}),
                              dtype=np.int64)
        self.queues: dict[int, deque[int]] = {int(k): deque() for k in self.links}
        self.waiting = np.zeros(len(self.links), dtype=np.int64)
        self.n_waiting = 0
        self._slot = {int(k): s for s, k in enumerate(self.links)}
        # Per vehicle id, for the entry loop.
        self.arrival_t_s: list[float] = arrivals.t_s.tolist()
        self.first_move: list[int] = arrivals.route_moves[:, 0].tolist()
        self.vehicle_class: list[int] = arrivals.vehicle_class.tolist()
        self.speed_factor: list[float] = arrivals.speed_factor.tolist()
        self.link_vmax_mps: list[float] = net.link_vmax_mps.tolist()

    def arrive(self, vid: int, link: int) -> None:
        """Vehicle ``vid`` arrives outside entry ``link``."""
        self.queues[link].append(vid)
        self.n_waiting += 1
        self.waiting[self._slot[link]] += 1

    def pop(self, link: int) -> int:
        """Let the first vehicle waiting at ``link`` enter; return its id."""
        vid = self.queues[link].popleft()
        self.n_waiting -= 1
        self.waiting[self._slot[link]] -= 1
        return vid
