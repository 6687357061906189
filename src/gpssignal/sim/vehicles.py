"""The vehicles in the network, their class parameters and the kernels' work buffers.

The vehicles are held as a structure of arrays.

The matrices ``F`` (float rows ``F_*``) and ``I`` (integer rows ``I_*``) hold
one column per vehicle in the network; :mod:`gpssignal.sim.kernel` names the
rows. Nothing here holds a Python object per vehicle.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gpssignal.model.scenario import Scenario, VehicleClass
from gpssignal.sim.kernel import N_F, N_I, rearmost_per_lane

__all__ = ["INITIAL_CAPACITY_VEH", "VehicleArrays", "VehicleClasses", "WorkBuffers",
           "lane_tails"]

#: Columns allocated at first; doubled whenever the network fills them. Small
#: scenarios never grow, large ones grow a few times [vehicles].
INITIAL_CAPACITY_VEH = 256


class VehicleArrays:
    """Structure of arrays of the vehicles in the network (compact).

    Columns ``0 .. n-1`` of ``F`` and ``I`` are the vehicles; the rest is spare.
    """

    def __init__(self, capacity: int = INITIAL_CAPACITY_VEH) -> None:
        self.F = np.zeros((N_F, capacity))
        self.I = np.zeros((N_I, capacity), dtype=np.int64)
        self.n = 0

    @property
    def capacity(self) -> int:
        """Allocated columns [vehicles]."""
        return int(self.F.shape[1])

    def grow(self) -> None:
        """Double the capacity, keeping the vehicles."""
        cap = self.F.shape[1] * 2
        F = np.zeros((N_F, cap))
        I = np.zeros((N_I, cap), dtype=np.int64)
        F[:, :self.n] = self.F[:, :self.n]
        I[:, :self.n] = self.I[:, :self.n]
        self.F, self.I = F, I

    def add(self) -> int:
        """Append a zeroed vehicle column (growing if full); return its index."""
        if self.n == self.capacity:
            self.grow()
        j = self.n
        self.n += 1
        self.F[:, j] = 0.0
        return j

    def remove(self, columns: list[int]) -> None:
        """Drop vehicles (columns), keeping the others in order."""
        keep = np.ones(self.n, dtype=np.bool_)
        keep[columns] = False
        m = int(keep.sum())
        self.F[:, :m] = self.F[:, :self.n][:, keep]
        self.I[:, :m] = self.I[:, :self.n][:, keep]
        self.n = m


@dataclass(frozen=True, slots=True)
class VehicleClasses:
    """Car-following parameters per vehicle class (index = class index).

    The arrays are for vectorised use; the ``*_list`` fields hold the same
    values as Python floats for the per-vehicle entry loop, where indexing a
    list is cheaper than indexing an array.
    """

    length_m: np.ndarray
    max_accel_mps2: np.ndarray
    decel_mps2: np.ndarray
    headway_s: np.ndarray
    min_gap_m: np.ndarray
    min_gap_list: list[float]
    headway_list: list[float]
    decel_list: list[float]
    #: ``1 / (2 sqrt(a_max b))`` per class, the IDM's braking term [s²/m].
    inv_two_sqrt_ab_list: list[float]
    #: The most each class can brake (its own value, else the driver's) [m/s²].
    emergency_decel_list: list[float]
    #: Desired-speed cap per class (``max_speed_kmh``; inf without one) [m/s].
    max_speed_list: list[float]

    @classmethod
    def from_scenario(cls, scenario: Scenario) -> VehicleClasses:
        """Collect the class parameters of ``scenario``'s vehicle classes, in class order."""
        vc = scenario.vehicle_classes
        amax = np.array([c.max_accel_mps2 for c in vc])
        b = np.array([c.comfortable_decel_mps2 for c in vc])
        T = np.array([c.time_headway_s for c in vc])
        s0 = np.array([c.min_gap_m for c in vc])
        return cls(length_m=np.array([c.length_m for c in vc]), max_accel_mps2=amax,
                   decel_mps2=b, headway_s=T, min_gap_m=s0, min_gap_list=s0.tolist(),
                   headway_list=T.tolist(), decel_list=b.tolist(),
                   inv_two_sqrt_ab_list=(0.5 / np.sqrt(amax * b)).tolist(),
                   emergency_decel_list=[float(c.emergency_decel_mps2 or
                                               scenario.driver.max_decel_mps2) for c in vc],
                   max_speed_list=[class_speed_cap_mps(c) for c in vc])


def class_speed_cap_mps(c: VehicleClass) -> float:
    """Return a class's desired-speed cap [m/s] (``inf`` without one)."""
    return float("inf") if c.max_speed_kmh is None else c.max_speed_kmh / 3.6


class WorkBuffers:
    """Scratch arrays the kernels write into (contents are not kept between calls).

    ``f``, ``i``, ``order``, ``is_head`` have one element per vehicle column
    (see :meth:`fit`); ``tail`` and ``counts`` one per lane.
    """

    def __init__(self, n_lanes: int) -> None:
        self.tail = np.full(n_lanes, -1, dtype=np.int64)
        self.counts = np.zeros(n_lanes, dtype=np.int64)
        self.f = np.empty(0)
        self.i = np.empty(0, dtype=np.int64)
        self.order = np.empty(0, dtype=np.int64)
        self.is_head = np.empty(0, dtype=np.int64)

    def fit(self, capacity: int) -> None:
        """Make the per-vehicle buffers hold at least ``capacity`` columns."""
        if len(self.f) < capacity:
            self.f = np.empty(capacity)
            self.i = np.empty(capacity, dtype=np.int64)
            self.order = np.empty(capacity, dtype=np.int64)
            self.is_head = np.empty(capacity, dtype=np.int64)


def lane_tails(pos: np.ndarray, lane: np.ndarray, tail: np.ndarray) -> None:
    """Per lane, the column of its rearmost vehicle (-1 if the lane is empty).

    Called only while vehicles wait to enter: one compiled pass over the
    vehicles (:func:`~gpssignal.sim.kernel.rearmost_per_lane`), where a sort
    of all vehicles per step grew faster than their number.
    """
    rearmost_per_lane(pos, lane, tail)
