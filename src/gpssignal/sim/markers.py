"""Markers: positions on links where the engine records something about a vehicle.

A stretch has a start and an end marker (travel times along it); every link
leaving a junction has a control-delay mark, where the control delay of the
vehicle's last junction passage is closed.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import numpy as np

from gpssignal.model.scenario import Scenario
from gpssignal.sim.network import CompiledNetwork

__all__ = ["CONTROL_DELAY_MARK_M", "NO_MARKER", "MarkerKind", "Markers"]

#: Control delay at a junction is counted until this far past the stop line, so
#: that it includes the acceleration back to speed (HCM control delay) [m].
CONTROL_DELAY_MARK_M = 100.0

#: Marker id meaning "none" (no further marker on the link; no stretch).
NO_MARKER = -1


class MarkerKind(IntEnum):
    """What passing a marker records."""

    STRETCH_START = 0   #: the vehicle enters stretch ``ref``
    STRETCH_END = 1     #: the vehicle leaves stretch ``ref``
    CONTROL_DELAY = 2   #: closes the control delay of the last junction passage


@dataclass(frozen=True, slots=True)
class Markers:
    """All markers of the network, by marker id.

    Attributes
    ----------
    pos_m : ndarray
        Position on its link [m].
    kind : ndarray
        :class:`MarkerKind` code.
    ref : ndarray
        Stretch index, :data:`NO_MARKER` for control-delay marks.
    by_link : list[list[int]]
        Marker ids of each link, by position (ties in id order).
    following : ndarray
        The next marker id on the same link, :data:`NO_MARKER` after the last.
    """

    pos_m: np.ndarray
    kind: np.ndarray
    ref: np.ndarray
    by_link: list[list[int]]
    following: np.ndarray

    @classmethod
    def build(cls, scenario: Scenario, net: CompiledNetwork) -> Markers:
        """Stretch starts/ends, then one control-delay mark per link leaving a junction."""
        link: list[int] = []
        pos: list[float] = []
        kind: list[MarkerKind] = []
        ref: list[int] = []
        for si, st in enumerate(scenario.stretches):
            first, last = net.link_index(st.links[0]), net.link_index(st.links[-1])
            end = st.end_m if st.end_m is not None else float(net.link_length_m[last])
            link += [first, last]
            pos += [st.start_m, end]
            kind += [MarkerKind.STRETCH_START, MarkerKind.STRETCH_END]
            ref += [si, si]
        for k, lk in enumerate(scenario.links):
            if lk.from_arm is not None:
                link.append(k)
                pos.append(min(CONTROL_DELAY_MARK_M, lk.length_m))
                kind.append(MarkerKind.CONTROL_DELAY)
                ref.append(NO_MARKER)
        pos_m = np.array(pos, dtype=float)
        by_link: list[list[int]] = [[] for _ in range(net.n_links)]
        for m in np.argsort(pos_m, kind="stable"):
            by_link[link[m]].append(int(m))
        following = np.full(len(pos_m), NO_MARKER, dtype=np.int64)
        for ids in by_link:
            following[ids[:-1]] = ids[1:]
        return cls(pos_m=pos_m, kind=np.array(kind, dtype=np.int64),
                   ref=np.array(ref, dtype=np.int64), by_link=by_link, following=following)

    def next_after(self, m: int) -> tuple[float, int]:
        """Position and id of the marker after ``m`` on its link (``inf``, none after the last)."""
        nxt = int(self.following[m])
        if nxt == NO_MARKER:
            return np.inf, NO_MARKER
        return float(self.pos_m[nxt]), nxt
