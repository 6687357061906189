"""Incident bottlenecks: a capacity drop at the end of an exit link.

During an incident (:class:`~gpssignal.sim.demand.IncidentWindow`) each lane
of the link lets at most one vehicle leave in every interval of
``h = lanes × 3600 / capacity_vph`` seconds, on a grid of such intervals
from the incident's start: the lane's end opens at each grid point and
closes behind the vehicle that passes. While closed it shows AMBER to the
vehicle kernel: a vehicle that can stop with the comfortable amber
deceleration stops there and waits (as behind a merge past a blocked lane),
one that cannot goes on, so the bottleneck never forces an emergency stop.
With a standing queue one vehicle leaves per interval (a vehicle's start-up
time does not add to the headway, as it would if each release were timed
from the previous vehicle), so the flow past the incident is
``capacity_vph``.

Only exit links carry incidents (a junction's own stop lines belong to its
signals); the queue behind the bottleneck spills back through the junction.
"""

from __future__ import annotations

import math

import numpy as np

from gpssignal.model.signals import AMBER, GREEN
from gpssignal.sim.demand import IncidentWindow
from gpssignal.sim.network import CompiledNetwork

__all__ = ["IncidentGates"]

#: Seconds per hour, to turn a flow [veh/h] into a headway [s].
_S_PER_H = 3600.0


class IncidentGates:
    """The day's incidents as per-lane release gates.

    Parameters
    ----------
    incidents : tuple of IncidentWindow
    net : CompiledNetwork
    """

    def __init__(self, incidents: tuple[IncidentWindow, ...], net: CompiledNetwork) -> None:
        lanes, t0, t1, headway = [], [], [], []
        for inc in incidents:
            link_lanes = np.flatnonzero(net.lane_link == net.link_index(inc.link))
            for ln in link_lanes:
                lanes.append(int(ln))
                t0.append(inc.t0_s)
                t1.append(inc.t1_s)
                headway.append(len(link_lanes) * _S_PER_H / inc.capacity_vph)
        self.lane = np.array(lanes, dtype=np.int64)
        self.t0_s = np.array(t0, dtype=float)
        self.t1_s = np.array(t1, dtype=float)
        self.headway_s = np.array(headway, dtype=float)
        self.next_open_s = np.full(len(lanes), -np.inf)
        self._row = {ln: k for k, ln in enumerate(lanes)}
        row_of_lane = np.full(net.n_lanes, -1, dtype=np.int64)
        row_of_lane[self.lane] = np.arange(len(lanes))
        #: The gates as the compiled steps take them
        #: (:func:`~gpssignal.sim.kernel.run_steps`).
        self.tables = (self.lane, self.t0_s, self.t1_s, self.headway_s, self.next_open_s,
                       row_of_lane)

    def update(self, t: float, lane_state: np.ndarray) -> None:
        """Set each gated lane's end to AMBER (closed) or GREEN at time ``t`` [s]."""
        active = (self.t0_s <= t) & (t < self.t1_s)
        closed = active & (t < self.next_open_s)
        lane_state[self.lane] = np.where(closed, AMBER, GREEN)

    def passed(self, lane: int, t: float) -> None:
        """Record that a vehicle left ``lane`` at ``t`` [s]: closed until the next grid point."""
        k = self._row.get(lane)
        if k is not None and self.t0_s[k] <= t < self.t1_s[k]:
            h = self.headway_s[k]
            self.next_open_s[k] = self.t0_s[k] + (math.floor((t - self.t0_s[k]) / h) + 1) * h
