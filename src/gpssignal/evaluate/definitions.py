"""The written definitions of every reported quantity, one function each.

These are the project's definitions as formulas; ``docs/definitions.md`` states them in
words. All functions accept scalars or numpy arrays; NaN propagates (a vehicle
that has not finished has NaN travel time and NaN time loss).
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "LOS_BOUNDS_S",
    "entry_wait_s",
    "free_flow_time_s",
    "level_of_service",
    "space_mean_speed_kmh",
    "time_loss_s",
    "travel_time_s",
]

#: HCM signalised-intersection LOS upper bounds of control delay for A–E [s/veh];
#: above the last bound is F. (HCM 6th ed., Exhibit 19-8.)
LOS_BOUNDS_S = (10.0, 20.0, 35.0, 55.0, 80.0)


def free_flow_time_s(link_length_m: np.ndarray, desired_speed_mps: np.ndarray) -> np.ndarray:
    """Free-flow travel time: route length ÷ the vehicle's desired speed [s].

    With links of different speed limits the desired speed differs per link,
    so it is summed per link: Σ length_i / (limit_i × speed factor).

    Parameters
    ----------
    link_length_m : ndarray, shape (..., n_links)
        Lengths of the route's links [m] (0 for padding).
    desired_speed_mps : ndarray, shape (..., n_links)
        Desired speed on each link [m/s].
    """
    return np.sum(np.asarray(link_length_m) / np.asarray(desired_speed_mps), axis=-1)


def travel_time_s(depart_s: np.ndarray, exit_s: np.ndarray) -> np.ndarray:
    """Travel time inside the network: exit time − departure (entry) time [s]."""
    return np.asarray(exit_s) - np.asarray(depart_s)


def entry_wait_s(arrival_s: np.ndarray, depart_s: np.ndarray) -> np.ndarray:
    """Wait to enter the network: departure time − arrival time at the boundary [s].

    Equals SUMO's ``departDelay``; positive when the entry lane is full.
    """
    return np.asarray(depart_s) - np.asarray(arrival_s)


def time_loss_s(travel_s: np.ndarray, free_flow_s: np.ndarray,
                wait_s: np.ndarray) -> np.ndarray:
    """Time loss ("waste time", *spildtid*) of a vehicle [s].

    ``travel time − free-flow travel time + entry wait``; equals SUMO's
    ``timeLoss + departDelay``.
    """
    return np.asarray(travel_s) - np.asarray(free_flow_s) + np.asarray(wait_s)


def space_mean_speed_kmh(length_m: float, traversal_s: np.ndarray) -> float:
    """Space-mean speed over a stretch: length ÷ mean travel time across it [km/h].

    Only vehicles that traversed the whole stretch count (NaN entries are
    ignored); NaN when none did. This is the harmonic mean of the vehicles'
    stretch speeds, the quantity behind "32 → 38 km/h".
    """
    t = np.asarray(traversal_s, dtype=float)
    t = t[~np.isnan(t)]
    if t.size == 0:
        return float("nan")
    return float(length_m / t.mean() * 3.6)


def level_of_service(control_delay_s: np.ndarray | float) -> np.ndarray:
    """HCM level of service A–F from control delay [s/veh]; ``""`` for NaN."""
    d = np.atleast_1d(np.asarray(control_delay_s, dtype=float))
    letters = np.array(list("ABCDEF"))[np.searchsorted(LOS_BOUNDS_S, d, side="left")]
    return np.where(np.isnan(d), "", letters)
