"""Entry links and the vehicles waiting outside them to enter the network."""

from __future__ import annotations

import numpy as np

from gpssignal.model.scenario import Scenario
from gpssignal.sim.demand import Arrivals
from gpssignal.sim.network import CompiledNetwork

__all__ = ["EntryQueues"]


class EntryQueues:
    """A first-in first-out queue of vehicle ids per entry link.

    A vehicle joins its entry link's queue when it arrives at the network
    boundary and leaves it when it fits into a lane (see
    ``Simulation._insert``). Vehicles arrive in id order, so each entry
    link's queue is a window ``[head, tail)`` of that link's vehicle ids in
    ascending order (``ids[ptr[s]:ptr[s + 1]]``, ``s`` the link's slot):
    flat arrays the compiled insertion reads
    (:func:`~gpssignal.sim.kernel.insert_waiting`).

    Attributes
    ----------
    links : ndarray
        Entry link indices, ascending; an entry link's *slot* is its position here.
    waiting : ndarray
        Number waiting per slot.
    n_waiting : int
        Number waiting in all.
    """

    def __init__(self, scenario: Scenario, net: CompiledNetwork, arrivals: Arrivals) -> None:
        first = arrivals.first_link
        self.links = np.array(sorted({int(x) for x in first}
                                     | {net.link_index(f.link) for f in scenario.demand.flows}),
                              dtype=np.int64)
        slot_of_link = np.full(net.n_links, -1, dtype=np.int64)
        slot_of_link[self.links] = np.arange(len(self.links))
        slot = slot_of_link[first]
        #: Entry slot per vehicle id.
        self.vehicle_slot = slot
        #: Vehicle ids per slot, ascending (stable sort of the ids by slot).
        self.ids = np.argsort(slot, kind="stable").astype(np.int64)
        self.ptr = np.zeros(len(self.links) + 1, dtype=np.int64)
        np.cumsum(np.bincount(slot, minlength=len(self.links)), out=self.ptr[1:])
        #: Per slot: vehicles that entered, and vehicles that arrived.
        self.head = np.zeros(len(self.links), dtype=np.int64)
        self.tail = np.zeros(len(self.links), dtype=np.int64)
        self.waiting = np.zeros(len(self.links), dtype=np.int64)
        self.n_waiting = 0
        self._slot = {int(k): s for s, k in enumerate(self.links)}
        #: The queue state as the compiled insertion takes it.
        self.tables = (self.links, self.ptr, self.ids, self.head, self.tail, self.waiting)

    @property
    def queues(self) -> dict[int, np.ndarray]:
        """Waiting vehicle ids per entry link, in arrival order (a copy, for inspection)."""
        return {int(k): self.ids[self.ptr[s] + self.head[s]:self.ptr[s] + self.tail[s]].copy()
                for s, k in enumerate(self.links)}

    def arrive(self, vid: int, link: int) -> None:
        """Vehicle ``vid`` arrives outside entry ``link`` (vehicles arrive in id order)."""
        s = self._slot[link]
        self.tail[s] += 1
        self.n_waiting += 1
        self.waiting[s] += 1

    def entered(self, count: int) -> None:
        """``count`` waiting vehicles entered (the compiled insertion moved the queues)."""
        self.n_waiting -= count

    def arrive_many(self, first: int, stop: int) -> None:
        """Vehicles ``first .. stop - 1`` arrive outside their entry links."""
        if stop - first == 1:
            s = self.vehicle_slot[first]
            self.tail[s] += 1
            self.waiting[s] += 1
        else:
            counts = np.bincount(self.vehicle_slot[first:stop], minlength=len(self.links))
            self.tail += counts
            self.waiting += counts
        self.n_waiting += stop - first
