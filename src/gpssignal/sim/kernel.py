"""Vehicle kernels: car following, time integration and lane transfers.

Pure functions on numpy arrays (one element per vehicle); no Python loop
over vehicles. The numpy reference functions come first, then the compiled
kernels the engine runs: the fused car-following step, lane changes, and the
lane transfers (markers passed, stop-line crossings, exits, lane choice,
entering the network), and ``advance``, one whole vehicle step in one call.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from gpssignal.sim.markers import Markers
    from gpssignal.sim.network import CompiledNetwork

__all__ = ["ballistic_update", "idm_acceleration"]

#: The IDM's interaction term divides by the gap; gaps are floored at this so
#: that touching vehicles brake hard instead of dividing by zero [m].
MIN_IDM_GAP_M = 1e-3
#: Smallest deceleration used to compute a stopping distance, so that a
#: vehicle stopping within a step never divides by zero [m/s²].
MIN_STOP_DECEL_MPS2 = 1e-9
#: The common IDM exponent; with it ``r**4`` is computed as ``r*r*r*r`` (faster).
IDM_DELTA_QUARTIC = 4.0


def idm_acceleration(v: np.ndarray, v0: np.ndarray, gap: np.ndarray, dv: np.ndarray,
                     a_max: np.ndarray, b: np.ndarray, headway: np.ndarray, s0: np.ndarray,
                     delta: float, *, inv_two_sqrt_ab: np.ndarray | None = None) -> np.ndarray:
    """Intelligent Driver Model acceleration [m/s²].

    Parameters
    ----------
    v : ndarray
        Speed [m/s].
    v0 : ndarray
        Desired speed [m/s].
    gap : ndarray
        Net distance to the leader (or a virtual stopped leader at a stop
        line) [m]; ``inf`` for a free road.
    dv : ndarray
        Approach rate ``v - v_leader`` [m/s].
    a_max, b : ndarray
        Maximum acceleration and comfortable deceleration [m/s²].
    headway : ndarray
        Desired time headway [s].
    s0 : ndarray
        Jam distance [m].
    delta : float
        Acceleration exponent [-].
    inv_two_sqrt_ab : ndarray, optional
        ``1 / (2 sqrt(a_max b))`` precomputed [s²/m]; saves work in the hot loop.

    Returns
    -------
    ndarray
        Acceleration [m/s²]; unbounded below (callers clip it).

    References
    ----------
    Treiber, Hennecke, Helbing (2000), "Congested traffic states in empirical
    observations and microscopic simulations", Phys. Rev. E 62, 1805.
    """
    r = v / v0
    free = r * r * r * r if delta == IDM_DELTA_QUARTIC else np.power(r, delta)
    if inv_two_sqrt_ab is None:
        inv_two_sqrt_ab = 0.5 / np.sqrt(a_max * b)
    s_star = s0 + np.maximum(0.0, v * (headway + dv * inv_two_sqrt_ab))
    ratio = s_star / np.maximum(gap, MIN_IDM_GAP_M)
    return a_max * (1.0 - free - ratio * ratio)


def ballistic_update(v: np.ndarray, acc: np.ndarray, dt: float) -> tuple[np.ndarray, np.ndarray]:
    """Advance speeds and positions by one step of constant acceleration.

    A vehicle that would reach negative speed stops within the step at the
    point where its speed hits zero (as SUMO's ballistic update).

    Returns
    -------
    (v_new, dx) : tuple of ndarray
        New speed [m/s] and distance travelled [m].
    """
    v_new = v + acc * dt
    dx = 0.5 * (v + v_new) * dt
    stopping = v_new < 0.0
    if stopping.any():
        # -v²/(2a) with a < 0: distance to standstill.
        dx = np.where(stopping, -v * v / (2.0 * np.minimum(acc, -MIN_STOP_DECEL_MPS2)), dx)
        v_new = np.where(stopping, 0.0, v_new)
    return v_new, dx


# ---------------------------------------------------------------------------
# The fused step kernel used by the engine.
#
# The engine keeps the vehicles as two matrices, one row per attribute (float
# rows F_*, integer rows I_*), one column per vehicle. ``step_vehicles`` sorts
# the columns by (lane, position), finds each vehicle's leader, evaluates the
# IDM (the same equations as ``idm_acceleration``) and integrates one step
# (as ``ballistic_update``), all in one compiled pass: at junction scale (tens
# to hundreds of vehicles) the per-call overhead of ~50 separate numpy calls
# would cost more than the arithmetic itself. ``tests/sim/test_kernel.py``
# checks this kernel against the numpy reference functions above.
# ---------------------------------------------------------------------------

from gpssignal._compiled import njit  # noqa: E402
from gpssignal.emissions.hbefa4 import co2_and_fuel_mg_s  # noqa: E402
from gpssignal.model.signals import AMBER, GREEN, RED_AMBER  # noqa: E402

# Float rows: position [m], speed [m/s], acceleration [m/s²], desired speed
# [m/s], speed factor [-], length [m], IDM a_max, b [m/s²], T [s], s0 [m],
# next marker position [m], time loss [s], time loss at the last control-delay
# mark [s], lane length [m], 1/(2 sqrt(a_max b)) [s²/m], position before the
# step [m], distance of the step [m], CO2 [mg], fuel [mg], distance [m],
# emergency deceleration (the most it can ever brake) [m/s²].
F_POS, F_V, F_ACC, F_V0, F_FACTOR, F_LEN, F_AMAX, F_B, F_T, F_S0, F_MPOS, F_TL, F_SEGTL, \
    F_LLEN, F_ISQ, F_POS_OLD, F_DX, F_CO2, F_FC, F_DIST, F_EMERG = range(21)
# Integer rows: vehicle id, lane, index of the link in the route, next lane
# (-1: leaves), next marker id (-1: none), moving (0/1), vehicle class,
# committed to cross the stop line ahead (1: decided to go at amber, could
# not stop at red, or could not stop when a give-way gap closed; reset when
# it enters a new lane), movement code at the end of the current link (-1:
# leaves the network), 1 + the lane a blocked mandatory lane change waits
# to enter (0: none; its followers there cooperate), changed lane in the last
# lane-change pass (1: the engine recomputes its next lane).
I_VID, I_LANE, I_K, I_NEXT, I_MARK, I_MOVING, I_CLS, I_COMMIT, I_MOVE, I_BLINK, I_LC = range(11)
N_F, N_I = F_EMERG + 1, I_LC + 1
#: Signal state codes (:mod:`gpssignal.model.signals`) as the kernel compares them.
RED_AMBER_CODE, GREEN_CODE, AMBER_CODE = RED_AMBER, GREEN, AMBER
#: A vehicle never closes up to its leader (or the stop line) nearer than this
#: within a step, so that the next step's gap stays positive [m].
MIN_CLEARANCE_M = 0.01
#: Sort key of a vehicle: lane × this + position; longer than any lane [m].
LANE_SORT_STRIDE_M = 1e5
#: Most columns out of (lane, position) order that the sort merges back one by
#: one; with more it sorts them all (a merge sort) [vehicles].
FEW_OUT_OF_PLACE = 64
# Roles of a vehicle in a step (``is_head``): it follows the vehicle ahead in
# its lane; it heads its lane and will cross the stop line; it heads its lane
# and stops at the stop line.
_FOLLOWER, _HEAD_GOES, _HEAD_STOPS = 0, 1, 2
# Values of row I_COMMIT: it obeys its signal; it goes whatever the signal
# shows (committed); a give-way turner waiting at its waiting point during
# green, which may still clear during amber (a "sneaker"); such a turner
# that took its gap from the waiting point (committed, and on a real
# junction already inside it: its stop-line passage is not a red crossing).
_OBEYS, _COMMITTED, _IN_JUNCTION, _CLEARING = 0, 1, 2, 3
#: The I_COMMIT value of a waiting turner clearing the junction (for the engine).
CLEARING = _CLEARING
#: Columns of the per-lane table ``lane_i`` (:func:`lane_rules`), each + the
#: movement code (0-2) or the side (0 kerb, 1 centre).
LC_ALLOWS, LC_TOWARD, LC_YIELD, LC_SIDE, LC_COLUMNS = 0, 3, 6, 9, 11
#: A give-way turner standing at most this far behind its waiting point (its
#: jam distance before the stop line) counts as waiting there [m].
WAITING_POINT_TOL_M = 0.5

__all__ += [
    "change_lanes",
    "check_changes",
    "empty_rules",
    "lane_rules",
    "rearmost_per_lane",
    "sample_queues",
    "sort_by_lane_position",
    "step_vehicles",
]
__all__ += ["LX_COLUMNS", "P_CLEARANCES", "P_COUNT", "P_REDS", "TransferTables", "advance",
            "cross_stop_lines", "insert_waiting", "next_lane", "next_lanes_changed",
            "pass_markers", "place_marker"]



@njit
def step_vehicles(F, I, n, lane_state, lane_link, dt, amber_decel, delta,  # noqa: C901 - fused numba kernel, ~2x slower split (see docstring)
                  stop_speed, stops, tail, order, tmp_f, tmp_i, is_head, ecoef, ecoast,
                  hard_decel, events, lane_i, lane_f, lane_w, rule_f, rule_i, t):
    """Advance ``n`` vehicles by one step of ``dt`` seconds, in place.

    Each vehicle's CO₂ and fuel (HBEFA4, :mod:`gpssignal.emissions.hbefa4`,
    at the speed at the end of the step and the step's mean acceleration,
    as SUMO does) and distance are accumulated in rows ``F_CO2`` [mg],
    ``F_FC`` [mg] and ``F_DIST`` [m]; ``ecoef[c, p]`` are the coefficients of
    class ``c`` (``I_CLS``) for CO₂ (p = 0) and fuel (p = 1), ``ecoast[c]``
    its coasting-deceleration parameters.

    Returns ``(marker_hits, lane_ends)``: how many vehicles passed their next
    marker and how many reached the end of their lane (handled by the engine).
    ``stops`` (indexed by vehicle id) is incremented for each new stop.
    ``tail``, ``order``, ``tmp_f``, ``tmp_i``, ``is_head`` are work buffers.

    No vehicle ever decelerates harder than its emergency deceleration
    (row ``F_EMERG``, its class's value) [m/s²]:

    * a lane head at amber stops if it can with ``amber_decel``, otherwise it
      is *committed* and goes on; at red or red-amber it stops if it can
      with the emergency deceleration, otherwise it is committed (and
      crosses on red, which the engine counts); a committed vehicle is not
      asked to stop again;
    * a vehicle whose step would take it past what it follows brakes, within
      the emergency deceleration, exactly as much as it needs to stop short
      of it.

    ``events`` counts, added to in place: ``[0]`` emergency brakings (a
    vehicle starts braking harder than ``hard_decel`` [m/s²]), ``[1]``
    vehicle-steps in which even the emergency deceleration could not keep a
    vehicle behind the vehicle it follows, so it was held back (never expected with
    the IDM: a test checks it stays 0).

    The first vehicle of a lane that will cross its stop line follows the
    nearest of: the last vehicle of the lane it enters, and the first vehicle
    of a neighbouring lane of the same link that is further ahead and enters
    the same lane (a merge inside the junction, taken in zipper order).

    ``lane_i``, ``lane_f``, ``lane_w``, ``rule_f``, ``rule_i``
    (:func:`lane_rules`) hold the lanes' movements, the mandatory lane
    changes, the give-way rules and per-lane work arrays; ``t`` is the time
    at the start of the step [s]. With them:

    * a vehicle in a lane that does not carry its movement (it still has to
      change lanes) stops at the stop line, and also follows the nearest
      vehicle ahead in the lane it must change into (it waits behind the
      last vehicle of a full turn pocket, blocking its own lane);
    * a vehicle whose rear a blocked lane changer waits beside (``I_BLINK``)
      treats the changer as its leader if it can stop behind it with its
      comfortable deceleration (cooperation, so a change is never blocked
      for good);
    * a lane head under a give-way rule, at green, goes only if each
      opposing vehicle that will cross (the first of its movement in each
      opposing lane whose head is not stopping) reaches the stop line at
      least the critical gap after it would reach its waiting point (its jam
      distance before the stop line; now, if it is waiting there: the gap is
      counted from where a waiting driver stands), both accelerating at
      their maximum up to their desired speed, and it not before the
      follow-up time after the last yielding vehicle of its lane crossed,
      nor before the pedestrians on the crossing it leaves over are clear of
      its path (``rule_f[2]``, :mod:`gpssignal.sim.pedestrians`)
      (a vehicle that takes a gap from its waiting point is committed);
      otherwise it stops at the stop line (the conflict point of the point
      junction) if it can with ``amber_decel``, else it is committed and
      goes. The first turner waiting at its waiting point when green ends may
      still take a gap during amber (it has pulled into the junction: a
      "sneaker", one per lane and cycle); at red it waits for the next green.

    One long function on purpose: split into helper functions (even inlined
    with ``inline="always"``) it ran about twice as slow per vehicle.
    """
    head = lane_w[0]
    y_last = lane_f[1]
    n_rules = rule_f.shape[1]
    opp0 = n_rules + 1                # opposing lanes in rule_i[opp0:opp0 + n_opp]
    n_opp = rule_i[n_rules]           # then their movement codes
    sort_by_lane_position(F, I, n, order, tmp_f, tmp_i)
    _lane_bounds(I, n, tail, head)
    # Cooperation: the follower of each blocked lane changer in its target lane.
    coop = tmp_i  # free after the sort
    blinkers = False
    for j in range(n):
        coop[j] = -1
        if I[I_BLINK, j] > 0:
            blinkers = True
    if blinkers:
        for j in range(n):
            tl = I[I_BLINK, j] - 1
            if tl >= 0 and tail[tl] >= 0:
                f = _first_ahead(F, tail[tl], head[tl], F[F_POS, j] - F[F_LEN, j]) - 1
                if f >= tail[tl] and (coop[f] < 0 or F[F_POS, j] < F[F_POS, coop[f]]):
                    coop[f] = j
    # Pass 1: lane heads and whether they stop at their stop line.
    for j in range(n):
        lane = I[I_LANE, j]
        is_head[j] = _FOLLOWER
        if head[lane] == j:
            v = F[F_V, j]
            dist = max(F[F_LLEN, j] - F[F_POS, j], 0.0)
            st = lane_state[lane]
            mv = I[I_MOVE, j]
            stop = mv >= 0 and lane_i[lane, LC_ALLOWS + mv] == 0  # must still change lanes
            if v < stop_speed and (I[I_COMMIT, j] == _COMMITTED
                                   or I[I_COMMIT, j] == _CLEARING):
                I[I_COMMIT, j] = 0  # stopped (e.g. behind a blocked exit): it obeys again
            if st <= RED_AMBER_CODE and I[I_COMMIT, j] == _IN_JUNCTION:
                I[I_COMMIT, j] = 0  # a turner left waiting at red waits for the next green
            if not stop and st != GREEN_CODE and I[I_COMMIT, j] == 0:
                limit = F[F_EMERG, j] if st <= RED_AMBER_CODE else amber_decel
                stop = v * v <= 2.0 * limit * dist
                if not stop:
                    I[I_COMMIT, j] = 1
            is_head[j] = _HEAD_STOPS if stop else _HEAD_GOES
    # Pass 1b: give-way heads at green wait for a gap (needs every head's role).
    if n_rules > 0:
        for j in range(n):
            lane = I[I_LANE, j]
            mv = I[I_MOVE, j]
            if (is_head[j] != _HEAD_GOES or I[I_COMMIT, j] == _COMMITTED
                    or I[I_COMMIT, j] == _CLEARING or mv < 0
                    or lane_i[lane, LC_YIELD + mv] < 0):
                continue
            if lane_state[lane] != GREEN_CODE and I[I_COMMIT, j] != _IN_JUNCTION:
                continue
            r = lane_i[lane, LC_YIELD + mv]
            v = F[F_V, j]
            dist = max(F[F_LLEN, j] - F[F_POS, j], 0.0)
            # When it would reach the conflict point, taken where a vehicle
            # waiting at the stop line stands (its jam distance before it), and
            # not before the follow-up time after the last yielding vehicle of
            # its lane crossed.
            t_self = 0.0 if v < stop_speed else _time_to_cover(dist - F[F_S0, j], v,
                                                                F[F_AMAX, j], F[F_V0, j])
            t_self = max(t_self, y_last[lane] + rule_f[1, r] - t)
            ok = t + t_self >= rule_f[2, r]  # pedestrians on its exit crossing
            k = rule_i[r]
            while ok and k < rule_i[r + 1]:
                o = rule_i[opp0 + k]
                om = rule_i[opp0 + n_opp + k]
                k += 1
                h = head[o]
                if h < 0 or is_head[h] == _HEAD_STOPS:
                    continue
                i = h
                while i >= tail[o]:
                    if I[I_MOVE, i] == om:
                        t_opp = _time_to_cover(max(F[F_LLEN, i] - F[F_POS, i], 0.0), F[F_V, i],
                                               F[F_AMAX, i], F[F_V0, i])
                        ok = t_opp - t_self >= rule_f[0, r]
                        break
                    i -= 1
            if ok:
                if v < stop_speed or dist <= F[F_S0, j]:
                    # At its waiting point: it takes the gap (clearing, if it
                    # had waited there: it stands inside the junction).
                    I[I_COMMIT, j] = (_CLEARING if I[I_COMMIT, j] == _IN_JUNCTION
                                      else _COMMITTED)
            elif v * v <= 2.0 * amber_decel * dist:
                is_head[j] = _HEAD_STOPS
                if v < stop_speed and dist <= F[F_S0, j] + WAITING_POINT_TOL_M:
                    I[I_COMMIT, j] = _IN_JUNCTION  # waiting for a gap: clears at amber
            else:
                I[I_COMMIT, j] = _COMMITTED
    # The lane heads that will cross, chained per link in column order
    # (``link_go[link]`` the first, ``next_go[j]`` the next): the merge search
    # below visits only the heads of the crossing vehicle's own link.
    link_go = lane_w[1]               # indexed by link (a network has no more links than lanes)
    next_go = order                   # free after the sort
    for j in range(n):
        if is_head[j] == _HEAD_GOES:
            link_go[lane_link[I[I_LANE, j]]] = -1
    for j in range(n - 1, -1, -1):
        if is_head[j] == _HEAD_GOES:
            link = lane_link[I[I_LANE, j]]
            next_go[j] = link_go[link]
            link_go[link] = j
    # Pass 2: each vehicle's gap to what it follows, IDM, ballistic step.
    marker_hits = 0
    lane_ends = 0
    v_next = tmp_f  # reuse: every new speed is computed before any vehicle moves
    for j in range(n):
        v = F[F_V, j]
        pos = F[F_POS, j]
        lane = I[I_LANE, j]
        if is_head[j] == _FOLLOWER:
            gap = F[F_POS, j + 1] - F[F_LEN, j + 1] - pos
            dv = v - F[F_V, j + 1]
        elif is_head[j] == _HEAD_STOPS:
            gap = F[F_LLEN, j] - pos
            dv = v
        else:
            dist = F[F_LLEN, j] - pos
            nl = I[I_NEXT, j]
            gap = np.inf
            dv = 0.0
            if nl >= 0:
                t = tail[nl]
                if t >= 0:
                    gap = dist + F[F_POS, t] - F[F_LEN, t]
                    dv = v - F[F_V, t]
                o = link_go[lane_link[lane]]
                while o >= 0:
                    if o != j and I[I_NEXT, o] == nl and F[F_POS, o] > pos:
                        g = F[F_POS, o] - F[F_LEN, o] - pos
                        if g < gap:
                            gap = g
                            dv = v - F[F_V, o]
                    o = next_go[o]
        mv = I[I_MOVE, j]
        if mv >= 0 and lane_i[lane, LC_ALLOWS + mv] == 0:
            # Adapt to the lane it must change into: wait behind its last vehicle.
            tl = lane_i[lane, LC_TOWARD + mv]
            if tl >= 0 and tail[tl] >= 0:
                a = _first_ahead(F, tail[tl], head[tl], pos)
                if a <= head[tl]:
                    g = F[F_POS, a] - F[F_LEN, a] - pos
                    if 0.0 < g < gap:
                        gap = g
                        dv = v - F[F_V, a]
        c = coop[j]
        if c >= 0:
            g = F[F_POS, c] - F[F_LEN, c] - pos
            if 0.0 < g < gap and v * v <= 2.0 * F[F_B, j] * g:
                gap = g
                dv = v - F[F_V, c]
        r = v / F[F_V0, j]
        free = r * r * r * r if delta == IDM_DELTA_QUARTIC else r ** delta
        s_star = F[F_S0, j] + max(0.0, v * (F[F_T, j] + dv * F[F_ISQ, j]))
        ratio = s_star / max(gap, MIN_IDM_GAP_M)
        acc = F[F_AMAX, j] * (1.0 - free - ratio * ratio)
        max_decel = F[F_EMERG, j]
        if acc < -max_decel:
            acc = -max_decel
        v_new = v + acc * dt
        if v_new < 0.0:
            dx = -v * v / (2.0 * min(acc, -MIN_STOP_DECEL_MPS2))
            v_new = 0.0
        else:
            dx = 0.5 * (v + v_new) * dt
        room = max(gap - MIN_CLEARANCE_M, 0.0)
        if dx > room:
            # Brake just enough to stop short of what it follows, if that
            # is within the emergency deceleration (a physical stop, not a
            # jump); otherwise it cannot stop: held back and counted.
            if v * v <= 2.0 * max_decel * room:
                need = v * v / (2.0 * room) if room > 0.0 else max_decel
                if v <= need * dt:   # standstill within the step, at `room`
                    dx = room
                    v_new = 0.0
                else:
                    v_new = v - need * dt
                    dx = 0.5 * (v + v_new) * dt
            else:
                events[1] += 1
                dx = room
                v_new = min(v_new, room / dt)
        F[F_DX, j] = dx
        v_next[j] = v_new
    # Pass 3: move, and accumulate time loss, emissions, stops.
    for j in range(n):
        v_new = v_next[j]
        dx = F[F_DX, j]
        F[F_POS_OLD, j] = F[F_POS, j]
        F[F_POS, j] += dx
        F[F_TL, j] += dt - dx / F[F_V0, j]
        acc = (v_new - F[F_V, j]) / dt
        if acc < -hard_decel and F[F_ACC, j] >= -hard_decel:
            events[0] += 1
        F[F_ACC, j] = acc
        F[F_V, j] = v_new
        c = I[I_CLS, j]
        e_co2, e_fc = co2_and_fuel_mg_s(ecoef, c, v_new, acc, ecoast[c, 0], ecoast[c, 1])
        F[F_CO2, j] += e_co2 * dt
        F[F_FC, j] += e_fc * dt
        F[F_DIST, j] += dx
        moving = 1 if v_new > stop_speed else 0
        if I[I_MOVING, j] == 1 and moving == 0:
            stops[I[I_VID, j]] += 1
        I[I_MOVING, j] = moving
        if F[F_POS, j] >= F[F_MPOS, j]:
            marker_hits += 1
        if F[F_POS, j] >= F[F_LLEN, j]:
            lane_ends += 1
    return marker_hits, lane_ends


@njit
def _lane_bounds(I, n, tail, head):
    """Per lane, the first (rearmost) and last (front) column of the sorted vehicles."""
    for k in range(tail.shape[0]):
        tail[k] = -1
        head[k] = -1
    for j in range(n - 1, -1, -1):
        tail[I[I_LANE, j]] = j
    for j in range(n):
        head[I[I_LANE, j]] = j


@njit
def rearmost_per_lane(pos, lane, tail):
    """Per lane, the column of its rearmost vehicle (-1 if the lane is empty), in place.

    One pass over the vehicles (no sort): the smallest position ``pos`` [m]
    per lane ``lane``; of vehicles at the same position the last column, as
    a stable sort by (lane, position descending) would leave it.
    """
    for k in range(tail.shape[0]):
        tail[k] = -1
    for j in range(pos.shape[0]):
        ln = lane[j]
        k = tail[ln]
        if k < 0 or pos[j] <= pos[k]:
            tail[ln] = j


@njit
def _first_ahead(F, lo, hi, x):
    """First column in ``lo..hi`` (sorted by position) with position > ``x``; ``hi + 1`` if none."""
    while lo <= hi:
        mid = (lo + hi) // 2
        if F[F_POS, mid] > x:
            hi = mid - 1
        else:
            lo = mid + 1
    return lo


@njit
def _time_to_cover(d, v, a, v0):
    """Time to cover ``d`` metres from speed ``v`` accelerating at ``a`` up to ``v0`` [s]."""
    if d <= 0.0:
        return 0.0
    if v >= v0:
        return d / v0
    d_acc = (v0 * v0 - v * v) / (2.0 * a)
    if d <= d_acc:
        return (np.sqrt(v * v + 2.0 * a * d) - v) / a
    return (v0 - v) / a + (d - d_acc) / v0


@njit
def _idm(F, j, gap, dv, delta):
    """IDM acceleration of column ``j`` behind a gap ``gap`` closing at ``dv`` [m/s²]."""
    v = F[F_V, j]
    r = v / F[F_V0, j]
    free = r * r * r * r if delta == IDM_DELTA_QUARTIC else r ** delta
    s_star = F[F_S0, j] + max(0.0, v * (F[F_T, j] + dv * F[F_ISQ, j]))
    ratio = s_star / max(gap, MIN_IDM_GAP_M)
    return F[F_AMAX, j] * (1.0 - free - ratio * ratio)


@njit
def _gap_ahead(F, j, lane, lane_state, head):
    """Gap and closing speed of column ``j`` in ``lane`` to what is ahead of it there.

    The next vehicle of the lane (columns sorted), else the stop line when
    the lane is not green, else a free road.
    """
    if j < head[lane] and head[lane] >= 0:
        return F[F_POS, j + 1] - F[F_LEN, j + 1] - F[F_POS, j], F[F_V, j] - F[F_V, j + 1]
    if lane_state[lane] != GREEN_CODE:
        return F[F_LLEN, j] - F[F_POS, j], F[F_V, j]
    return np.inf, 0.0


@njit
def _change_gain(F, j, lane, tl, lane_state, tail, head, b_safe, politeness, delta,
                 mandatory):
    """MOBIL for column ``j`` changing from ``lane`` to ``tl``: its gain, or -inf if unsafe.

    Safe: positive gaps to the new leader and follower, and neither the
    changer nor the new follower then has to brake harder than ``b_safe``.
    A mandatory change needs only safety (gain 0). Otherwise the gain is the
    changer's acceleration advantage plus ``politeness`` times that of the
    new and old followers (Kesting, Treiber, Helbing 2007).
    """
    pos = F[F_POS, j]
    v = F[F_V, j]
    rear = pos - F[F_LEN, j]
    lead, fol = -1, -1
    if tail[tl] >= 0:
        a = _first_ahead(F, tail[tl], head[tl], pos)
        if a <= head[tl]:
            lead = a
        if a - 1 >= tail[tl]:
            fol = a - 1
    if lead >= 0:
        g_new = F[F_POS, lead] - F[F_LEN, lead] - pos
        dv_new = v - F[F_V, lead]
        if g_new <= 0.0:
            return -np.inf
    elif lane_state[tl] != GREEN_CODE:
        g_new, dv_new = F[F_LLEN, j] - pos, v
    else:
        g_new, dv_new = np.inf, 0.0
    acc_new = _idm(F, j, g_new, dv_new, delta)
    if acc_new < -b_safe:
        return -np.inf
    acc_f_new = 0.0
    if fol >= 0:
        g = rear - F[F_POS, fol]
        if g <= 0.0:
            return -np.inf
        acc_f_new = _idm(F, fol, g, F[F_V, fol] - v, delta)
        if acc_f_new < -b_safe:
            return -np.inf
    if mandatory:
        return 0.0
    g_old, dv_old = _gap_ahead(F, j, lane, lane_state, head)
    gain = acc_new - _idm(F, j, g_old, dv_old, delta)
    if politeness > 0.0:
        if fol >= 0:
            g_f, dv_f = _gap_ahead(F, fol, tl, lane_state, head)
            gain += politeness * (acc_f_new - _idm(F, fol, g_f, dv_f, delta))
        o = j - 1
        if o >= tail[lane]:
            po, vo = F[F_POS, o], F[F_V, o]
            acc_o = _idm(F, o, rear - po, vo - v, delta)
            # Without j, o follows j's leader (or stop line, or free road).
            acc_o_new = _idm(F, o, g_old + pos - po, vo - v + dv_old, delta)
            gain += politeness * (acc_o_new - acc_o)
    return gain


@njit
def change_lanes(F, I, n, lane_state, lane_i, lane_f, lane_w, b_safe, discretionary,
                 politeness, threshold, delta, order, tmp_f, tmp_i, tail):
    """Lane changes at the start of a step (MOBIL safety; LC2013-style strategy), in place.

    Each vehicle in a lane that does not carry its movement changes toward
    the nearest lane that does, into the neighbouring lane, as soon as that
    lane exists beside it (a short lane starts) and the change is safe
    (:func:`_change_gain`); if it is not, the vehicle marks that lane in
    ``I_BLINK`` so that its follower there cooperates
    (:func:`step_vehicles`). With ``discretionary``, a vehicle already in a
    lane of its movement changes to a neighbouring lane of its movement when
    the MOBIL gain exceeds ``threshold``. At most one vehicle enters a lane
    per step, so that every check is made against the lane as it is. Changed
    vehicles get ``I_LC = 1`` (the engine then picks their next lane).

    Returns the number of changes.
    """
    head, entered, lane_start = lane_w[0], lane_w[1], lane_f[0]
    sort_by_lane_position(F, I, n, order, tmp_f, tmp_i)
    _lane_bounds(I, n, tail, head)
    for k in range(entered.shape[0]):
        entered[k] = 0
    changes = 0
    for j in range(n):
        I[I_BLINK, j] = 0
        I[I_LC, j] = 0
        mv = I[I_MOVE, j]
        if mv < 0:
            continue
        lane = I[I_LANE, j]
        pos = F[F_POS, j]
        target = -1
        if lane_i[lane, LC_ALLOWS + mv] == 0:
            tl = lane_i[lane, LC_TOWARD + mv]
            if tl < 0 or pos < lane_start[tl]:
                continue
            if entered[tl] == 0 and _change_gain(F, j, lane, tl, lane_state, tail, head, b_safe,
                                                 0.0, delta, True) > -np.inf:
                target = tl
            else:
                I[I_BLINK, j] = tl + 1
        elif discretionary:
            best = threshold
            for sd in range(2):
                tl = lane_i[lane, LC_SIDE + sd]
                if (tl < 0 or lane_i[tl, LC_ALLOWS + mv] == 0 or pos < lane_start[tl]
                        or entered[tl] != 0):
                    continue
                gain = _change_gain(F, j, lane, tl, lane_state, tail, head, b_safe, politeness,
                                    delta, False)
                if gain > best:
                    best, target = gain, tl
        if target >= 0:
            I[I_LANE, j] = target
            I[I_LC, j] = 1
            entered[target] = 1
            changes += 1
    return changes


def lane_rules(net) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Return the lane and give-way tables of a compiled network, as the kernels take them.

    Five arrays (few, because each array argument costs call overhead):

    * ``lane_i`` int (n_lanes, 11): per lane, whether it carries each
      movement (columns ``LC_ALLOWS + m``), its mandatory lane change per
      movement (``LC_TOWARD + m``), its give-way rule per movement
      (``LC_YIELD + m``) and its neighbours toward the kerb and the centre
      (``LC_SIDE + 0/1``), -1 where none;
    * ``lane_f`` float (2, n_lanes): where each lane begins [m], and when the
      last yielding vehicle of each lane crossed its stop line [s] (the
      engine updates row 1);
    * ``lane_w`` int (2, n_lanes): work rows (lane heads; lanes entered, or
      per link the first lane head that will cross);
    * ``rule_f`` float (3, n_rules): critical gap and follow-up time [s],
      and until when pedestrians on the rule's exit crossing block its
      vehicles [s] (the engine updates row 2; -inf: never);
    * ``rule_i`` int: the rules' start offsets into the opposing pairs
      (n_rules + 1 values), then the opposing lanes, then their movements.
    """
    n_lanes = len(net.lane_link)
    lane_i = np.concatenate([net.lane_allows.astype(np.int64), net.lane_toward, net.lane_yield,
                             net.lane_side], axis=1)
    lane_f = np.vstack([net.lane_start_m, np.full(n_lanes, -np.inf)])
    n_rules = len(net.yield_gap_s)
    rule_f = np.vstack([net.yield_gap_s, net.yield_follow_s,
                        np.full(n_rules, -np.inf)]).reshape(3, -1)
    rule_i = np.concatenate([net.yield_ptr, net.yield_lane, net.yield_move]).astype(np.int64)
    return lane_i, lane_f, np.zeros((2, n_lanes), dtype=np.int64), rule_f, rule_i


def empty_rules(n_lanes: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray,
                                       np.ndarray]:
    """Return :func:`lane_rules` for lanes carrying every movement, no give-way (for tests)."""
    lane_i = np.full((n_lanes, LC_COLUMNS), -1, dtype=np.int64)
    lane_i[:, LC_ALLOWS:LC_ALLOWS + 3] = 1
    return (lane_i, np.vstack([np.zeros(n_lanes), np.full(n_lanes, -np.inf)]),
            np.zeros((2, n_lanes), dtype=np.int64), np.zeros((3, 0)),
            np.zeros(1, dtype=np.int64))


@njit
def sort_by_lane_position(F, I, n, order, tmp_f, tmp_i):
    """Sort the first ``n`` columns by (lane, position), in place (stable).

    Between two sorts only a few vehicles change lane (stop-line crossings,
    lane changes) and new ones are appended, so the columns are nearly
    sorted: they are split into a sorted majority, kept in order, and the
    few out of place (at most :data:`FEW_OUT_OF_PLACE`, else a full merge
    sort), which are sorted by (key, column) and merged back. That is the
    permutation a stable sort gives, found in one pass.
    """
    key = tmp_f
    for j in range(n):
        key[j] = I[I_LANE, j] * LANE_SORT_STRIDE_M + F[F_POS, j]
    for j in range(1, n):
        if key[j] < key[j - 1]:
            break
    else:
        return
    if not _merge_order(key, n, order, tmp_i):
        idx = np.argsort(key[:n], kind="mergesort")
        for j in range(n):
            order[j] = idx[j]
    _apply_order(F, I, n, order, tmp_f, tmp_i)


@njit
def _apply_order(F, I, n, order, tmp_f, tmp_i):
    """Put column ``order[j]`` of ``F`` and ``I`` at ``j``, for every ``j < n``.

    Only the columns from the first to the last that move are rewritten,
    and as blocks: a nearly sorted order is a few runs of consecutive
    columns (``order[j + 1] == order[j] + 1``), each copied as a block. The
    runs are kept in ``tmp_i`` as (first column, length) pairs; with more
    runs than it holds, the columns are gathered one by one. ``tmp_f`` holds
    a row meanwhile (as int64 for ``I``'s rows: the same bits). The loops
    index slices from 0 (an index numba knows is not negative needs no
    wrap-around test, so the copies vectorise): measured on a 200-column
    order with one insertion and one move, 1.7x as fast as gathering every
    column, and 3-5x as fast as the same loops indexed from ``lo``.
    """
    lo = 0
    while lo < n and order[lo] == lo:
        lo += 1
    hi = n
    while hi > lo and order[hi - 1] == hi - 1:
        hi -= 1
    if lo >= hi:
        return
    runs = 0
    cap = tmp_i.shape[0] // 2
    j = lo
    while j < hi and runs < cap:
        first = order[j]
        length = 1
        while j + length < hi and order[j + length] == first + length:
            length += 1
        tmp_i[2 * runs] = first
        tmp_i[2 * runs + 1] = length
        runs += 1
        j += length
    if j < hi:   # too many runs to keep: gather
        _gather_columns(F, order[lo:hi], lo, tmp_f)
        _gather_columns(I, order[lo:hi], lo, tmp_f.view(np.int64))
        return
    width = hi - lo
    _copy_runs(F, tmp_i, runs, lo, width, tmp_f)
    _copy_runs(I, tmp_i, runs, lo, width, tmp_f.view(np.int64))


@njit(inline="always")
def _copy_runs(M, runs_at, runs, lo, width, tmp):
    """Each row of ``M``: its runs (``runs_at``) in turn into ``tmp``, then back at ``lo``."""
    for r in range(M.shape[0]):
        row = M[r]
        d = 0
        for k in range(runs):
            src = row[runs_at[2 * k]:]
            dst = tmp[d:]
            length = runs_at[2 * k + 1]
            for m in range(length):
                dst[m] = src[m]
            d += length
        dst = row[lo:lo + width]
        for m in range(width):
            dst[m] = tmp[m]


@njit(inline="always")
def _gather_columns(M, order, lo, tmp):
    """Columns ``order`` of each row of ``M`` into columns ``lo, lo + 1, ...``, one by one."""
    width = order.shape[0]
    for r in range(M.shape[0]):
        row = M[r]
        for m in range(width):
            tmp[m] = row[order[m]]
        dst = row[lo:lo + width]
        for m in range(width):
            dst[m] = tmp[m]


@njit
def _merge_order(key, n, order, work):
    """Stable sorting permutation of nearly sorted ``key[:n]`` into ``order`` (False: too unsorted).

    Columns are kept, in order, while their keys do not decrease; a column
    whose key is below the last kept one is set aside, unless it is also at
    least the one kept before that, in which case the last kept one (too
    high: moved to a later lane) is set aside instead. The set-aside columns
    (at the end of ``work``) are sorted by (key, column) and merged with the
    kept ones, ties going to the lower column: the stable order.
    """
    ns = 0
    nd = 0
    for j in range(n):
        if ns == 0 or key[j] >= key[order[ns - 1]]:
            order[ns] = j
            ns += 1
        else:
            if nd == FEW_OUT_OF_PLACE:
                return False
            nd += 1
            if ns >= 2 and key[j] >= key[order[ns - 2]]:
                work[n - nd] = order[ns - 1]
                order[ns - 1] = j
            else:
                work[n - nd] = j
    # Insertion sort of the set-aside columns work[n - nd:] by (key, column).
    d0 = n - nd
    for a in range(d0 + 1, n):
        c = work[a]
        b = a - 1
        while b >= d0 and (key[work[b]] > key[c] or (key[work[b]] == key[c] and work[b] > c)):
            work[b + 1] = work[b]
            b -= 1
        work[b + 1] = c
    # Merge into work[0:n] (a write never passes the next set-aside column read).
    i_s, i_d, w = 0, d0, 0
    while i_s < ns or i_d < n:
        if i_d >= n or (i_s < ns and (key[order[i_s]] < key[work[i_d]]
                                      or (key[order[i_s]] == key[work[i_d]]
                                          and order[i_s] < work[i_d]))):
            work[w] = order[i_s]
            i_s += 1
        else:
            work[w] = work[i_d]
            i_d += 1
        w += 1
    for j in range(n):
        order[j] = work[j]
    return True


@njit
def sample_queues(F, I, n, lane_slot, queue_speed, max_clear_m, out_m, out_n,
                  order, tmp_f, tmp_i):
    """Queue per sampled lane, as a queue counter at the stop line sees it.

    Walking back from the stop line over the lane's vehicles, the queue goes
    on while the clear distance to the vehicle (or the stop line) ahead is at
    most ``max_clear_m``. Its length reaches the back of the rearmost vehicle
    slower than ``queue_speed`` in that stretch. ``out_m`` gets metres from
    the stop line, and ``out_n`` the number of queued vehicles. ``lane_slot[lane]``
    is a lane's output column (-1: not sampled).
    """
    sort_by_lane_position(F, I, n, order, tmp_f, tmp_i)
    for k in range(out_m.shape[0]):
        out_m[k] = 0.0
        out_n[k] = 0
    j = n - 1
    while j >= 0:
        lane = I[I_LANE, j]
        s = lane_slot[lane]
        front = F[F_LLEN, j]           # the stop line
        walking = s >= 0
        while j >= 0 and I[I_LANE, j] == lane:
            if walking:
                if front - F[F_POS, j] > max_clear_m:
                    walking = False
                else:
                    back = F[F_POS, j] - F[F_LEN, j]
                    if F[F_V, j] < queue_speed:
                        out_m[s] = F[F_LLEN, j] - max(back, 0.0)
                        out_n[s] += 1
                    front = back
            j -= 1


# ---------------------------------------------------------------------------
# Lane transfers: what happens to a vehicle between two car-following steps
# (markers passed, stop-line crossings, exits, the lane it takes next,
# entering the network), and the whole step in one call (``advance``), as
# compiled loops over the same arrays. In this module, not another one:
# numba's cache is invalidated only by changes to the file of the cached
# function, not to the files of the compiled functions it calls.
# ---------------------------------------------------------------------------

#: Columns of the per-lane table ``lane_x``: link, junction the link leads
#: into (-1: an exit lane), give-way rule per movement (3), lane connection
#: per movement (3).
LX_LINK, LX_JUNCTION, LX_YIELD, LX_TARGET, LX_COLUMNS = 0, 1, 2, 5, 8
#: Rows of the passages' integer table.
P_VID, P_JUNCTION, P_LINK, P_MOVE, P_STATE, P_LANE, P_INT_ROWS = 0, 1, 2, 3, 4, 5, 6
#: Rows of the passages' float table: time [s], control delay [s].
P_T, P_DELAY, P_FLOAT_ROWS = 0, 1, 2
#: Slots of the passages' counters: passages, red crossings, red clearances.
P_COUNT, P_REDS, P_CLEARANCES = 0, 1, 2
#: Open-passage value meaning none awaits its control delay.
NO_PASSAGE = -1
#: Column of the start-lane table for a vehicle that leaves the network at
#: the end of its next link (its full lanes).
_LEAVING = 3
#: Weight of the lane offset against the number of vehicles when a vehicle
#: must change to the nearest lane that carries its next movement: the offset
#: decides, the count only breaks ties [vehicles per lane of offset].
LANE_OFFSET_WEIGHT = 1_000_000
#: Floor on a step's travelled distance when interpolating the time a vehicle
#: passed a point within the step (a vehicle standing on it passes at once) [m].
MIN_STEP_DX_M = 1e-12
# Marker kinds (:class:`~gpssignal.sim.markers.MarkerKind`) as the loops compare them.
_STRETCH_START, _STRETCH_END = 0, 1


@dataclass(frozen=True, slots=True)
class TransferTables:
    """The network, route and marker tables the compiled transfers read.

    ``net``: ``(lane_x, lane_length_m, lane_vmax_mps, start_ptr, start_lane,
    class_max_speed_mps)``; ``start_lane[start_ptr[4 link + m]:start_ptr[4 link + m + 1]]``
    are the lanes a vehicle of movement ``m`` drives onto ``link`` in
    (``m = 3``: it leaves at the link's end: the full lanes). ``routes``:
    ``(route_ptr, route_link, route_move)`` (:class:`~gpssignal.sim.demand.Arrivals`).
    ``markers``: ``(link_ptr, ids, pos_m, kind, ref, following)``, the marker
    ids of each link by position in ``ids[link_ptr[l]:link_ptr[l + 1]]``.
    """

    net: tuple[np.ndarray, ...]
    routes: tuple[np.ndarray, np.ndarray, np.ndarray]
    markers: tuple[np.ndarray, ...]

    @classmethod
    def build(cls, net: CompiledNetwork, route_ptr: np.ndarray, route_link: np.ndarray,
              route_move: np.ndarray, markers: Markers,
              class_max_speed_mps: list[float]) -> TransferTables:
        """Collect the tables of a compiled network, the day's routes and the markers."""
        lane_x = np.concatenate([
            net.lane_link[:, None], net.link_junction[net.lane_link][:, None], net.lane_yield,
            net.lane_target], axis=1).astype(np.int64)
        starts: list[np.ndarray] = []
        for link in range(net.n_links):
            ll = net.link_lanes[link]
            starts += [*net.start_lanes[link], ll[net.lane_start_m[ll] == 0.0]]
        start_ptr = np.zeros(len(starts) + 1, dtype=np.int64)
        np.cumsum([len(s) for s in starts], out=start_ptr[1:])
        start_lane = (np.concatenate(starts).astype(np.int64) if starts
                      else np.empty(0, dtype=np.int64))
        mk_ptr = np.zeros(net.n_links + 1, dtype=np.int64)
        np.cumsum([len(ids) for ids in markers.by_link], out=mk_ptr[1:])
        mk_ids = np.array([m for ids in markers.by_link for m in ids], dtype=np.int64)
        return cls(
            net=(lane_x, net.lane_length_m.astype(float), net.lane_vmax_mps.astype(float),
                 start_ptr, start_lane, np.array(class_max_speed_mps, dtype=float)),
            routes=(route_ptr, route_link, route_move),
            markers=(mk_ptr, mk_ids, markers.pos_m.astype(float), markers.kind, markers.ref,
                     markers.following))


@njit
def _time_at(t, dt, covered_m, dx_m):
    """When, within the step ``[t, t + dt]`` in which it moved ``dx_m``, a vehicle had covered ``covered_m`` (linear)."""  # noqa: E501
    frac = covered_m / max(dx_m, MIN_STEP_DX_M)
    return t + dt * min(max(frac, 0.0), 1.0)


@njit
def next_lane(vid, k, lane, counts, net, routes):
    """Lane the vehicle ``vid`` in ``lane`` (route link ``k``) takes on its next link.

    The lane connection of ``lane`` for its movement, if that lane is one
    the vehicle drives onto the next link in (a full lane carrying its
    following movement); otherwise the nearest such lane (fewest vehicles,
    ``counts`` per lane, on a tie). -1 when the vehicle leaves the network.
    """
    lane_x, start_ptr, start_lane = net[0], net[3], net[4]
    route_ptr, route_link, route_move = routes
    base = route_ptr[vid] + k
    move = route_move[base]
    if move < 0:
        return -1
    target = lane_x[lane, LX_TARGET + move]
    link = route_link[base + 1]
    nxt_move = route_move[base + 1]
    col = link * 4 + (nxt_move if nxt_move >= 0 else _LEAVING)
    lo, hi = start_ptr[col], start_ptr[col + 1]
    for q in range(lo, hi):
        if start_lane[q] == target:
            return target
    best, best_d = -1, 0
    for q in range(lo, hi):
        ln = start_lane[q]
        d = abs(ln - target) * LANE_OFFSET_WEIGHT + counts[ln]
        if best < 0 or d < best_d:
            best, best_d = ln, d
    return best


@njit
def _hit_marker(F, I, j, m, t, markers, stretch_enter, stretch_exit, passages):
    """Column ``j`` passed marker ``m`` at ``t`` [s]."""
    kind, ref = markers[3], markers[4]
    vid = I[I_VID, j]
    if kind[m] == _STRETCH_START:
        stretch_enter[vid, ref[m]] = t
    elif kind[m] == _STRETCH_END:
        stretch_exit[vid, ref[m]] = t
    else:  # a control-delay mark closes the vehicle's open passage
        p_f, p_open = passages[1], passages[2]
        p = p_open[vid]
        if p != NO_PASSAGE:
            p_f[P_DELAY, p] = F[F_TL, j] - F[F_SEGTL, j]
            p_open[vid] = NO_PASSAGE
        F[F_SEGTL, j] = F[F_TL, j]


@njit
def place_marker(F, I, j, link, pos, t_at_pos, markers, stretch_enter, stretch_exit, passages):
    """Record the markers at or behind ``pos`` on ``link`` (at ``t_at_pos``); arm the next one."""
    mk_ptr, mk_ids, mk_pos = markers[0], markers[1], markers[2]
    nxt_pos, nxt = np.inf, -1
    for q in range(mk_ptr[link], mk_ptr[link + 1]):
        m = mk_ids[q]
        if mk_pos[m] <= pos:
            _hit_marker(F, I, j, m, t_at_pos, markers, stretch_enter, stretch_exit, passages)
        else:
            nxt_pos, nxt = mk_pos[m], m
            break
    F[F_MPOS, j] = nxt_pos
    I[I_MARK, j] = nxt


@njit
def pass_markers(F, I, n, t, dt, markers, stretch_enter, stretch_exit, passages):
    """Record the markers the first ``n`` columns passed in the step from ``t`` [s]."""
    mk_pos, following = markers[2], markers[5]
    for j in range(n):
        while F[F_POS, j] >= F[F_MPOS, j]:
            m = I[I_MARK, j]
            tm = _time_at(t, dt, F[F_MPOS, j] - F[F_POS_OLD, j], F[F_DX, j])
            _hit_marker(F, I, j, m, tm, markers, stretch_enter, stretch_exit, passages)
            nxt = following[m]
            if nxt < 0:
                F[F_MPOS, j] = np.inf
                I[I_MARK, j] = -1
            else:
                F[F_MPOS, j] = mk_pos[nxt]
                I[I_MARK, j] = nxt


@njit
def next_lanes_changed(I, n, counts, net, routes):
    """Pick the next lane of the columns that changed lanes (``I_LC``); return how many."""
    for k in range(counts.shape[0]):
        counts[k] = 0
    for j in range(n):
        counts[I[I_LANE, j]] += 1
    changed = 0
    for j in range(n):
        if I[I_LC, j] != 0:
            I[I_NEXT, j] = next_lane(I[I_VID, j], I[I_K, j], I[I_LANE, j], counts, net, routes)
            changed += 1
    return changed


@njit
def cross_stop_lines(F, I, n, t, dt, lane_state, yield_last, counts, gone, exit_lane, exit_t,
                     net, routes, markers, outcomes, passages):
    """Handle the columns that reached the end of their lane in the step from ``t`` [s].

    In column order: on an exit lane the vehicle leaves (exit time,
    emissions and distance added to ``outcomes = (exit_s, co2_mg, fuel_mg,
    distance_m, stretch_enter_s, stretch_exit_s)`` by vehicle id); otherwise
    it passes the stop line into its chosen lane (a passage appended to
    ``passages = (ints, floats, open, counters)``, which hold room for every
    passage of the day), picks the lane after, and records the markers it
    passed on the new link. The leavers' columns are then removed (the
    others keep their order); their lanes and exit times go to
    ``exit_lane`` / ``exit_t`` (for incident gates). ``counts``, ``gone``
    are work arrays (per lane, per column).

    Returns ``(n_left, n_exits)``: columns now in use and vehicles that left.
    """
    lane_x, lane_len, lane_vmax, max_speed = net[0], net[1], net[2], net[5]
    route_ptr, route_move = routes[0], routes[2]
    exit_s, co2, fuel, dist, stretch_enter, stretch_exit = outcomes
    p_i, p_f, p_open, p_count = passages
    for k in range(counts.shape[0]):
        counts[k] = 0
    for j in range(n):
        counts[I[I_LANE, j]] += 1
    n_exits = 0
    for j in range(n):
        gone[j] = 0
        if F[F_POS, j] < F[F_LLEN, j]:
            continue
        ln = I[I_LANE, j]
        tc = _time_at(t, dt, lane_len[ln] - F[F_POS_OLD, j], F[F_DX, j])
        vid = I[I_VID, j]
        if lane_x[ln, LX_JUNCTION] < 0:  # an exit lane: it leaves
            exit_s[vid] = tc
            co2[vid] += F[F_CO2, j]
            fuel[vid] += F[F_FC, j]
            dist[vid] += F[F_DIST, j]
            gone[j] = 1
            exit_lane[n_exits] = ln
            exit_t[n_exits] = tc
            n_exits += 1
            continue
        k = I[I_K, j]
        base = route_ptr[vid] + k
        move = route_move[base]
        state = lane_state[ln]
        p = p_count[P_COUNT]
        p_i[P_VID, p] = vid
        p_i[P_JUNCTION, p] = lane_x[ln, LX_JUNCTION]
        p_i[P_LINK, p] = lane_x[ln, LX_LINK]
        p_i[P_MOVE, p] = move
        p_i[P_STATE, p] = state
        p_i[P_LANE, p] = ln
        p_f[P_T, p] = tc
        p_f[P_DELAY, p] = np.nan
        if state <= RED_AMBER:
            if I[I_COMMIT, j] == CLEARING:
                p_count[P_CLEARANCES] += 1
            else:
                p_count[P_REDS] += 1
        p_open[vid] = p
        p_count[P_COUNT] = p + 1
        if lane_x[ln, LX_YIELD + move] >= 0:
            yield_last[ln] = tc
        new_lane = I[I_NEXT, j]
        counts[ln] -= 1
        counts[new_lane] += 1
        F[F_POS, j] -= lane_len[ln]
        F[F_V0, j] = min(lane_vmax[new_lane], max_speed[I[I_CLS, j]]) * F[F_FACTOR, j]
        F[F_LLEN, j] = lane_len[new_lane]
        I[I_LANE, j] = new_lane
        I[I_K, j] = k + 1
        I[I_COMMIT, j] = 0
        I[I_MOVE, j] = route_move[base + 1]
        I[I_NEXT, j] = next_lane(vid, k + 1, new_lane, counts, net, routes)
        place_marker(F, I, j, lane_x[new_lane, LX_LINK], F[F_POS, j], tc, markers,
                     stretch_enter, stretch_exit, passages)
    if n_exits == 0:
        return n, 0
    return _remove_columns(F, I, n, gone), n_exits


@njit
def _remove_columns(F, I, n, gone):
    """Drop the columns with ``gone[j] != 0`` (at least one), keeping the others in order; return how many are left.

    The columns kept after the first dropped one move left in runs of
    consecutive columns, each copied as a block (loops indexed from 0, which
    vectorise; see :func:`_apply_order`). The runs are noted in ``gone``
    itself as (first column, length) pairs from the first dropped column on:
    each pair is written over flags already read (every run and every gap
    before it is at least one column), so ``gone`` is spoilt afterwards.
    """  # noqa: E501
    first = 0
    while gone[first] == 0:
        first += 1
    runs = 0
    j = first + 1
    while j < n:
        if gone[j] != 0:
            j += 1
            continue
        a = j
        while j < n and gone[j] == 0:
            j += 1
        gone[first + 2 * runs] = a
        gone[first + 2 * runs + 1] = j - a
        runs += 1
    _shift_runs(F, gone, first, runs)
    return _shift_runs(I, gone, first, runs)


@njit(inline="always")
def _shift_runs(M, runs_at, first, runs):
    """Move each row's runs (``runs_at`` from ``first``) left, one after another from ``first``."""
    w = first
    for r in range(M.shape[0]):
        row = M[r]
        w = first
        for k in range(runs):
            a = runs_at[first + 2 * k]
            length = runs_at[first + 2 * k + 1]
            src = row[a:]
            dst = row[w:]
            for m in range(length):
                dst[m] = src[m]
            w += length
    return w


@njit
def _entry_slot(F, i, link, t, dt, tail, net, arrivals, classes):
    """Where and how fast vehicle ``i`` can enter ``link`` now: ``(lane, pos_m, speed_mps, desired_mps, depart_s)``; lane -1: it waits.

    It takes the lane with most space behind its last vehicle, and enters at
    the desired speed or at the highest speed from which it can still stop
    behind that vehicle with comfortable deceleration and its time headway
    (free >= v T + (v² - v_lead²) / 2b), and only with at least the desired
    time headway at that speed; otherwise it waits outside (the wait is
    counted as time loss).
    """  # noqa: E501
    start_ptr, start_lane = net[3], net[4]
    arrival_t, vclass, factor, link_vmax, route_ptr, route_move = arrivals
    _length, _amax, decel, headway, min_gap, _isq, _emerg, max_speed = classes
    c = vclass[i]
    v0 = min(link_vmax[link], max_speed[c]) * factor[i]
    best, best_space, v_lead = -1, -1.0, 0.0
    col = link * 4 + route_move[route_ptr[i]]
    for q in range(start_ptr[col], start_ptr[col + 1]):
        ln = start_lane[q]
        k = tail[ln]
        if k < 0:
            space, vl = np.inf, v0
        else:
            space = F[F_POS, k] - F[F_LEN, k]
            vl = F[F_V, k]
        if space > best_space:
            best, best_space, v_lead = ln, space, vl
    s0, T, b = min_gap[c], headway[c], decel[c]
    free = best_space - s0
    if free < 0:
        return -1, 0.0, 0.0, 0.0, 0.0
    v_safe = -b * T + np.sqrt(b * b * T * T + 2 * b * free + v_lead * v_lead)
    v_ins = min(v0, v_safe)
    if free < v_ins * T:
        return -1, 0.0, 0.0, 0.0, 0.0
    if v_ins > 0:
        # It drives in from the network edge since it arrived, but not for
        # longer than one step: a vehicle that waited outside could not move
        # before this step found it room (it would otherwise be placed far
        # into an empty lane, even past the stop line).
        pos = min(v_ins * min(t - arrival_t[i], dt), free - v_ins * T)
        depart = t - pos / v_ins
    else:
        pos, depart = 0.0, t
    return best, pos, v_ins, v0, depart


@njit
def insert_waiting(F, I, n, t, dt, stop_speed, tail, counts, queues, depart_s, net, routes,
                   arrivals, classes, markers, stretch_enter, stretch_exit, passages):
    """Let waiting vehicles enter their entry links, first come first served.

    Entry link by entry link (ascending), the first vehicle waiting enters
    if it fits (:func:`_entry_slot`), then the next, until one does not.
    ``queues`` are :attr:`~gpssignal.sim.entry.EntryQueues.tables`; ``F``,
    ``I`` must have room for every waiting vehicle. An entering vehicle gets
    a new column with its class parameters, its entry wait as time loss, its
    next lane and its markers. ``tail``, ``counts`` are work arrays (per lane).

    Returns the number of columns now in use.
    """
    slot_link, ptr, ids, head, arrived, waiting = queues
    arrival_t, vclass, factor = arrivals[0], arrivals[1], arrivals[2]
    length, amax, decel, headway, min_gap, isq, emerg, _max_speed = classes
    lane_len = net[1]
    route_ptr, route_move = routes[0], routes[2]
    rearmost_per_lane(F[F_POS, :n], I[I_LANE, :n], tail)
    for k in range(counts.shape[0]):
        counts[k] = 0
    for j in range(n):
        counts[I[I_LANE, j]] += 1
    for s in range(slot_link.shape[0]):
        link = slot_link[s]
        while head[s] < arrived[s]:
            i = ids[ptr[s] + head[s]]
            lane, pos, v_ins, v0, depart = _entry_slot(F, i, link, t, dt, tail, net, arrivals,
                                                       classes)
            if lane < 0:
                break
            head[s] += 1
            waiting[s] -= 1
            c = vclass[i]
            depart_s[i] = depart
            j = n
            n += 1
            for r in range(F.shape[0]):
                F[r, j] = 0.0
            F[F_POS, j], F[F_V, j], F[F_V0, j], F[F_FACTOR, j] = pos, v_ins, v0, factor[i]
            F[F_LEN, j], F[F_AMAX, j], F[F_B, j] = length[c], amax[c], decel[c]
            F[F_T, j], F[F_S0, j], F[F_ISQ, j] = headway[c], min_gap[c], isq[c]
            F[F_EMERG, j] = emerg[c]
            F[F_LLEN, j] = lane_len[lane]
            F[F_TL, j] = depart - arrival_t[i]  # entry wait counts as time loss
            I[I_VID, j], I[I_LANE, j], I[I_K, j], I[I_CLS, j] = i, lane, 0, c
            I[I_MOVING, j] = 1 if v_ins > stop_speed else 0
            I[I_COMMIT, j] = 0
            I[I_MOVE, j] = route_move[route_ptr[i]]
            I[I_BLINK, j], I[I_LC, j] = 0, 0
            counts[lane] += 1
            I[I_NEXT, j] = next_lane(i, 0, lane, counts, net, routes)
            place_marker(F, I, j, link, pos, depart, markers, stretch_enter, stretch_exit,
                         passages)
            tail[lane] = j
    return n


@njit(inline="always")
def advance(F, I, n, t, dt, work, lane_changes, drv, lane_state, lane_link, stops, events,
            ecoef, ecoast, rules, net, routes, markers, outcomes, passages, yield_last):
    """One vehicle step of the first ``n`` columns from ``t`` [s], in place.

    Lane changes (when ``lane_changes``) and the next lane of those that
    changed, car following (:func:`~gpssignal.sim.kernel.step_vehicles`),
    markers passed, and stop-line crossings and exits
    (:func:`cross_stop_lines`). ``drv``: the driver parameters as given
    (amber deceleration, IDM exponent, stop speed, hard-braking threshold,
    lane-change safe deceleration, discretionary changes (bool), politeness,
    threshold); ``work``: ``(tail, order, tmp_f, tmp_i, is_head, counts)``;
    ``rules``: :func:`~gpssignal.sim.kernel.lane_rules`.

    Returns ``(n_left, n_exits, lane_changes)``; the exits' lanes and times
    are in ``tmp_i`` / ``tmp_f`` (for incident gates).
    """
    tail, order, tmp_f, tmp_i, is_head, counts = work
    lane_i, lane_f, lane_w, rule_f, rule_i = rules
    changed = 0
    if lane_changes:
        changed = change_lanes(F, I, n, lane_state, lane_i, lane_f, lane_w, drv[4], drv[5],
                               drv[6], drv[7], drv[1], order, tmp_f, tmp_i, tail)
        if changed:
            next_lanes_changed(I, n, counts, net, routes)
    hits, ends = step_vehicles(F, I, n, lane_state, lane_link, dt, drv[0], drv[1], drv[2],
                               stops, tail, order, tmp_f, tmp_i, is_head, ecoef, ecoast,
                               drv[3], events, lane_i, lane_f, lane_w, rule_f, rule_i, t)
    if hits:
        pass_markers(F, I, n, t, dt, markers, outcomes[4], outcomes[5], passages)
    n_exits = 0
    if ends:
        n, n_exits = cross_stop_lines(F, I, n, t, dt, lane_state, yield_last, counts, is_head,
                                      tmp_i, tmp_f, net, routes, markers, outcomes, passages)
    return n, n_exits, changed


# ---------------------------------------------------------------------------
# Pedestrians at crossings (the state of :class:`~gpssignal.sim.pedestrians.
# Pedestrians` as flat arrays) and many steps in one call (``run_steps``).
# ---------------------------------------------------------------------------

#: Fields of the pedestrians' state tuple (:attr:`~gpssignal.sim.pedestrians.Pedestrians.state`).
(PD_PTR, PD_ARRIVAL, PD_SIDE, PD_START, PD_ISLAND_WAIT, PD_GROUP, PD_LENGTH, PD_ZONE,
 PD_ISLAND, PD_PUSHBUTTON, PD_NEXT, PD_SHOWN, PD_WAS_GREEN, PD_TI_K, PD_TI_T, PD_TI_N,
 PD_OI_K, PD_OI_N, PD_BUSY_A, PD_BUSY_B, PD_BUSY_N, PD_BLOCK, PD_PARAMS, PD_FIRST) = range(24)


@njit
def _ped_occupy(ped, x, t0, from_m):
    """Mark the strip taken by a pedestrian ``from_m`` from the outgoing kerb at ``t0``."""
    z, walk = ped[PD_ZONE][x], ped[PD_PARAMS][0]
    a = abs(from_m - (z if from_m > 0 else 0.0)) / walk
    b = ped[PD_PTR][x] + ped[PD_BUSY_N][x]
    ped[PD_BUSY_A][b] = t0 + a
    ped[PD_BUSY_B][b] = t0 + a + z / walk
    ped[PD_BUSY_N][x] += 1


@njit
def _ped_second_half(ped, x, k, t0):
    """Pedestrian ``k`` walks the island's second half from ``t0``."""
    if ped[PD_SIDE][k] == 1:             # the conflict strip is on its second half
        _ped_occupy(ped, x, t0, ped[PD_LENGTH][x] / 2.0)


@njit
def _ped_island_step(ped, x, t, dt, go):
    """Pedestrians reaching the island go on if green is shown, else wait there."""
    p0 = ped[PD_PTR][x]
    ti_k, ti_t, oi_k = ped[PD_TI_K], ped[PD_TI_T], ped[PD_OI_K]
    n_still = 0
    n_waiting = ped[PD_OI_N][x]   # waiting before this step
    for q in range(ped[PD_TI_N][x]):
        k, t_isl = ti_k[p0 + q], ti_t[p0 + q]
        if t_isl >= t + dt:
            ti_k[p0 + n_still] = k
            ti_t[p0 + n_still] = t_isl
            n_still += 1
        elif go:
            _ped_second_half(ped, x, k, max(t_isl, t))
        else:
            oi_k[p0 + ped[PD_OI_N][x]] = k
            ped[PD_OI_N][x] += 1
            ped[PD_ISLAND_WAIT][k] = -t_isl  # completed when it goes on
    ped[PD_TI_N][x] = n_still
    if go and n_waiting > 0:
        # (a pedestrian reaching the island in this step with green shown went
        # on above, so only those waiting from earlier steps are here)
        for q in range(ped[PD_OI_N][x]):
            k = oi_k[p0 + q]
            ped[PD_ISLAND_WAIT][k] += t
            _ped_second_half(ped, x, k, t)
        ped[PD_OI_N][x] = 0


@njit
def pedestrians_step(ped, group_state, t, dt):
    """Advance every crossing over the step ``[t, t + dt)`` with the signals at ``t``.

    See :class:`~gpssignal.sim.pedestrians.Pedestrians` for the rules; this is
    its step over the flat state ``ped``. Sets ``ped[PD_BLOCK]``: per
    crossing, until when its conflict strip is taken (−inf: free).
    """
    ptr, arrival, side = ped[PD_PTR], ped[PD_ARRIVAL], ped[PD_SIDE]
    walk, look_ahead = ped[PD_PARAMS][0], ped[PD_PARAMS][1]
    first = ped[PD_FIRST][0] != 0
    busy_a, busy_b = ped[PD_BUSY_A], ped[PD_BUSY_B]
    for x in range(ped[PD_GROUP].shape[0]):
        end = ptr[x + 1]
        green = group_state[ped[PD_GROUP][x]] == GREEN_CODE
        if green and ped[PD_WAS_GREEN][x] == 0:   # green begins: shown?
            nxt = ped[PD_NEXT][x]
            waiting = nxt < end and arrival[nxt] <= t
            # A green already on when the run starts counts as called (the
            # calls before the run are unknown).
            ped[PD_SHOWN][x] = 1 if (ped[PD_PUSHBUTTON][x] == 0 or waiting or first) else 0
        ped[PD_WAS_GREEN][x] = 1 if green else 0
        go = green and ped[PD_SHOWN][x] != 0
        island = ped[PD_ISLAND][x] != 0
        if go:
            k = ped[PD_NEXT][x]
            while k < end and arrival[k] < t + dt:
                t0 = max(arrival[k], t)
                ped[PD_START][k] = t0
                if island:
                    half = ped[PD_LENGTH][x] / 2.0 / walk
                    if side[k] == 0:         # the conflict strip is on its first half
                        _ped_occupy(ped, x, t0, 0.0)
                    q = ptr[x] + ped[PD_TI_N][x]
                    ped[PD_TI_K][q] = k
                    ped[PD_TI_T][q] = t0 + half
                    ped[PD_TI_N][x] += 1
                else:
                    _ped_occupy(ped, x, t0, 0.0 if side[k] == 0 else ped[PD_LENGTH][x])
                k += 1
            ped[PD_NEXT][x] = k
        if island:
            _ped_island_step(ped, x, t, dt, go)
        nb = ped[PD_BUSY_N][x]
        block = -np.inf
        if nb > 0:
            p0 = ptr[x]
            horizon = t + look_ahead
            kept = 0
            for q in range(nb):
                if busy_b[p0 + q] > t:
                    busy_a[p0 + kept] = busy_a[p0 + q]
                    busy_b[p0 + kept] = busy_b[p0 + q]
                    kept += 1
            ped[PD_BUSY_N][x] = kept
            for q in range(kept):
                if busy_a[p0 + q] <= horizon and busy_b[p0 + q] > block:
                    block = busy_b[p0 + q]
        ped[PD_BLOCK][x] = block
    ped[PD_FIRST][0] = 0


@njit
def pedestrians_done(ped):
    """Whether every pedestrian has stepped off the kerb and left the island."""
    ptr = ped[PD_PTR]
    for x in range(ped[PD_GROUP].shape[0]):
        if ped[PD_NEXT][x] != ptr[x + 1] or ped[PD_TI_N][x] > 0 or ped[PD_OI_N][x] > 0:
            return False
    return True


@njit
def _gates_update(gates, lane_state, t):
    """Set each gated lane's end to amber (closed) or green at ``t``.

    As :meth:`~gpssignal.sim.incidents.IncidentGates.update`.
    """
    lane, t0, t1, next_open = gates[0], gates[1], gates[2], gates[4]
    for k in range(lane.shape[0]):
        closed = t0[k] <= t < t1[k] and t < next_open[k]
        lane_state[lane[k]] = AMBER_CODE if closed else GREEN_CODE


@njit
def _gates_passed(gates, lane, t):
    """Close the gate of ``lane``, which a vehicle left at ``t``, until the next grid point."""
    k = gates[5][lane]
    t0, t1, headway, next_open = gates[1], gates[2], gates[3], gates[4]
    if k >= 0 and t0[k] <= t < t1[k]:
        h = headway[k]
        next_open[k] = t0[k] + (math.floor((t - t0[k]) / h) + 1) * h


#: Fields of ``run_steps``' counters (an int64 array the engine keeps):
#: vehicles in the network, arrived at the boundary, waiting outside, steps
#: taken, queue samples taken, trajectory columns and steps buffered, lane
#: changes, and why the call returned.
(RS_N, RS_ARRIVED, RS_WAITING, RS_STEPS, RS_QUEUE_K, RS_TRAJ_COLS, RS_TRAJ_STEPS,
 RS_LANE_CHANGES, RS_STATUS, RS_FIELDS) = range(10)
#: ``RS_STATUS`` values: stopped as asked (step limit, next event, end of the
#: period), the network emptied after the demand period, the vehicle arrays
#: need room for the waiting vehicles, the trajectory buffer is full, the
#: log of signal changes is full.
RS_STOPPED, RS_FINISHED, RS_NEED_ROOM, RS_NEED_FLUSH, RS_NEED_LOG = 0, 1, 2, 3, 4

#: Rows of the signal player's per-junction state (:class:`~gpssignal.sim.
#: signals.SignalPlayer`): floats (cycle start, time of the last change,
#: time of the next change, the program's cycle, and the cycle end from
#: which the junction's process takes over again: the compiled steps play
#: the synchronisation points before it) and integers (next event, end of
#: the events of the cycle, first event of the program, number of changes
#: to the states of cycle second 0 and where they are in the tables).
SP_CYCLE_START, SP_NOW, SP_NEXT, SP_CYCLE, SP_UNTIL = 0, 1, 2, 3, 4
SP_PTR, SP_STOP, SP_LO, SP_ZN, SP_ZBASE = 0, 1, 2, 3, 4
#: Fields of the signal change log's counters: entries written by the
#: compiled steps, and the sequence number of the next change (Python's
#: changes and the compiled steps' share it: the order they were applied in).
SL_N, SL_SEQ = 0, 1


#: Columns of the conflict monitors' per-junction limits (:func:`check_changes`):
#: minimum green less the tolerance, amber, red-amber [s]; and the tolerance.
ML_MIN_GREEN, ML_AMBER, ML_RED_AMBER = 0, 1, 2
MONITOR_TOL_S = 1e-6


@njit
def check_changes(log_t, log_i, k0, n, m_state, m_since, m_green_end, m_junction, j_next,
                  j_limits, c_ptr, c_other, c_limit, checks):
    """Check the logged signal changes ``k0`` to ``n - 1`` in order; return the first bad one.

    The rules and state of :class:`~gpssignal.sim.signals.ConflictMonitor`,
    over every junction's groups by global index: ``m_state``, ``m_since``
    (when it took that state) and ``m_green_end`` (when its last green
    ended) per group, ``m_junction`` its junction; per junction ``j_next``
    (the state each state must change to) and ``j_limits`` (``ML_*``); each
    group's conflicting groups ``c_other[c_ptr[g]:c_ptr[g + 1]]`` with the
    intergreen less the tolerance (``c_limit``). A change that passes
    updates the state and counts in ``checks`` (per junction). Returns
    ``n`` if every change passed, else the index of the first that did not,
    with the state as it was before it (the Python monitor then says why).
    """
    for k in range(k0, n):
        t = log_t[k]
        g = log_i[0, k]
        new = log_i[1, k]
        j = m_junction[g]
        old = m_state[g]
        if new != j_next[j, old]:
            return k
        dur = t - m_since[g]
        if old == GREEN_CODE:
            if dur < j_limits[j, ML_MIN_GREEN]:
                return k
        elif old in (AMBER_CODE, RED_AMBER_CODE):
            want = j_limits[j, ML_AMBER] if old == AMBER_CODE else j_limits[j, ML_RED_AMBER]
            if abs(dur - want) > MONITOR_TOL_S and np.isfinite(dur):
                return k
        if new == GREEN_CODE:
            for q in range(c_ptr[g], c_ptr[g + 1]):
                o = c_other[q]
                if m_state[o] == GREEN_CODE or m_state[o] == AMBER_CODE:
                    return k
                if t - m_green_end[o] < c_limit[q]:
                    return k
        if old == GREEN_CODE:
            m_green_end[g] = t
        m_state[g] = new
        m_since[g] = t
        checks[j] += 1
    return n


@njit(inline="always")
def _after_cycle(f, j, now):
    """Time of junction ``j``'s next synchronisation point its player plays, or inf.

    ``now`` is the time of the cycle's last change (its start if none): the
    end comes ``cycle_start + cycle - now`` later, added as the event clock
    adds a wait (:meth:`~gpssignal.sim.signals.JunctionSignals.process`).
    Only points before ``f[SP_UNTIL]`` are the player's; the junction's
    process wakes at that one.
    """
    wait = f[SP_CYCLE_START, j] + f[SP_CYCLE, j] - now
    end = now + wait if wait > 0 else now
    return end if end < f[SP_UNTIL, j] else np.inf


@njit(inline="always")
def _apply_change(g, s, now, group_state, lane_state, lane_ptr, lanes, log_t, log_i, log_n):
    """Set group ``g`` and its lanes to state ``s`` and log the change at ``now`` (room assured)."""
    group_state[g] = s
    for q in range(lane_ptr[g], lane_ptr[g + 1]):
        lane_state[lanes[q]] = s
    k = log_n[SL_N]
    log_t[k] = now
    log_i[0, k] = g
    log_i[1, k] = s
    log_i[2, k] = log_n[SL_SEQ]
    log_n[SL_N] = k + 1
    log_n[SL_SEQ] += 1


@njit(inline="always")
def play_signal_changes(t, player, group_state, lane_state):
    """Apply every signal change due at or before the step at ``t`` [s]; False if the log is full.

    ``player``: ``(next_min, f, i, ev_tc, ev_group, ev_state, group_lane_ptr,
    group_lanes, log_t, log_i, log_n, z_group, z_state)``
    (:class:`~gpssignal.sim.signals.SignalPlayer`). Each junction plays the
    events ``i[SP_PTR]`` to ``i[SP_STOP]`` of its current cycle as the
    signal runtime's SimPy process would: an event ``cycle_start + tc``
    seconds into the run comes ``cycle_start + tc - now`` after the last
    change at ``now`` (added to ``now`` as the event clock adds a wait), or
    with it when that is not positive. A change sets its group's state and
    its lanes' states and is logged (time, group, state, sequence number).
    Changes due at a step's very time come before the step: the runtime's
    events then were scheduled more than a step earlier
    (:meth:`~gpssignal.sim.signals.SignalPlayer.fits`).

    A junction whose program stays the same at its next synchronisation
    points (``f[SP_UNTIL]`` after them) has them played here too, as the
    runtime's process plays them: at the cycle's end, the changes to the
    states of cycle second 0 (``z_group``, ``z_state`` from
    ``i[SP_ZBASE]``, ``i[SP_ZN]`` of them), then the next cycle of the
    program's events from ``i[SP_LO]``, starting at that time. Stops, to go
    on at the same change, when the log has no room.
    """
    next_min = player[0]
    if t < next_min[0]:
        return True
    f, i, ev_tc, ev_group, ev_state = player[1], player[2], player[3], player[4], player[5]
    lane_ptr, lanes, log_t, log_i, log_n = player[6], player[7], player[8], player[9], \
        player[10]
    z_group, z_state = player[11], player[12]
    new_min = np.inf
    for j in range(f.shape[1]):
        nxt = f[SP_NEXT, j]
        if nxt <= t:
            p, stop = i[SP_PTR, j], i[SP_STOP, j]
            cycle_start, now = f[SP_CYCLE_START, j], f[SP_NOW, j]
            while nxt <= t:
                now = nxt
                if p >= stop:
                    # A synchronisation point: the states of cycle second 0, then
                    # the next cycle (all its changes logged at once, or none).
                    zb, zn = i[SP_ZBASE, j], i[SP_ZN, j]
                    if log_n[SL_N] + zn > log_t.shape[0]:
                        next_min[0] = -np.inf
                        return False
                    for q in range(zb, zb + zn):
                        _apply_change(z_group[q], z_state[q], now, group_state, lane_state,
                                      lane_ptr, lanes, log_t, log_i, log_n)
                    cycle_start = now
                    f[SP_CYCLE_START, j] = now
                    p = i[SP_LO, j]
                    i[SP_PTR, j] = p
                else:
                    if log_n[SL_N] >= log_t.shape[0]:
                        next_min[0] = -np.inf   # unchanged junctions are looked at again
                        return False
                    _apply_change(ev_group[p], ev_state[p], now, group_state, lane_state,
                                  lane_ptr, lanes, log_t, log_i, log_n)
                    p += 1
                    i[SP_PTR, j] = p
                f[SP_NOW, j] = now
                if p < stop:
                    wait = cycle_start + ev_tc[p] - now
                    nxt = now + wait if wait > 0 else now
                else:
                    nxt = _after_cycle(f, j, now)
                f[SP_NEXT, j] = nxt
        if nxt < new_min:
            new_min = nxt
    next_min[0] = new_min
    return True


@njit(inline="always")
def _pedestrians_block(ped, group_state, t, dt, ped_rules, ped_rule_crossing, rule_f):
    """Step the pedestrians; the turns that yield to them wait until their strips are free."""
    pedestrians_step(ped, group_state, t, dt)
    for r in range(ped_rules.shape[0]):
        rule_f[2, ped_rules[r]] = ped[PD_BLOCK][ped_rule_crossing[r]]


@njit(inline="always")
def _admit(st, upto, vehicle_slot, q_tail, q_waiting):
    """Vehicles up to ``upto`` (exclusive) reach the boundary and join their entry queues."""
    for v in range(st[RS_ARRIVED], upto):
        s = vehicle_slot[v]
        q_tail[s] += 1
        q_waiting[s] += 1
    if upto > st[RS_ARRIVED]:
        st[RS_WAITING] += upto - st[RS_ARRIVED]
        st[RS_ARRIVED] = upto


@njit(inline="always")
def _buffer_states(F, I, n, t_next, st, traj_f, traj_i, traj_counts, traj_t):
    """Append the vehicles' states after the step that ends at ``t_next`` to the buffer."""
    c0 = st[RS_TRAJ_COLS]
    for j in range(n):
        traj_f[0, c0 + j] = F[F_POS, j]
        traj_f[1, c0 + j] = F[F_V, j]
        traj_f[2, c0 + j] = F[F_ACC, j]
        traj_i[0, c0 + j] = I[I_VID, j]
        traj_i[1, c0 + j] = I[I_LANE, j]
        traj_i[2, c0 + j] = I[I_K, j]
    st[RS_TRAJ_COLS] = c0 + n
    traj_counts[st[RS_TRAJ_STEPS]] = n
    traj_t[st[RS_TRAJ_STEPS]] = t_next
    st[RS_TRAJ_STEPS] += 1


@njit
def run_steps(t, max_steps, stop_before, F, I, work, st, dt, duration_s, end_s, admit_upto,  # noqa: C901 - the engine's step loop, one stage per branch
              vehicle_slot, n_total, step_args, insert_args, ped, group_state, ped_rules,
              ped_rule_crossing, gates, queues, trajectories, player):
    """Run the steps at ``t``, ``t + dt``, ... in one call: the engine's step loop, compiled.

    Each step: the signal changes due by then are applied
    (:func:`play_signal_changes`; ``player``), vehicles reach the boundary
    (``admit_upto[k]`` arrived by step ``k``), the waiting ones enter (:func:`insert_waiting`),
    incident gates open or close (``gates``: :attr:`~gpssignal.sim.incidents.
    IncidentGates.tables`), pedestrians step (:func:`pedestrians_step`) and
    block the turns that yield to them, the vehicles step (:func:`advance`), queues are sampled
    every ``queues[1]`` steps and the vehicles' states buffered (when
    ``trajectories[0]``: position, speed, acceleration; id, lane, route
    index; per step their number and its end time). Another step
    follows while it comes before ``stop_before`` (the next event of the
    clock), before ``end_s`` (the end of the run less its rounding
    tolerance), and within ``max_steps``; ``group_state`` is the signal
    state per group, which the pedestrians see. The counters in
    ``st`` (``RS_*``) carry the state from call to call.

    Returns the time of the last step taken (``t`` if none); ``st[RS_STATUS]``
    tells why it returned. It returns before a step's insertion when the
    vehicle arrays or the trajectory buffer lack room for every vehicle that
    could be in the network after it, or the signal log for its changes (the
    engine makes room and calls again; the arrivals and signal changes of
    that step, already applied, are not applied twice).
    """
    tail, order, tmp_f, tmp_i, _is_head, counts = work
    (lane_changes, drv, lane_state, lane_link, stops, events, ecoef, ecoast, rules, net, routes,
     markers, outcomes, passages, yield_last) = step_args
    (stop_speed, queue_tables, depart_s, arrivals, classes, stretch_enter, stretch_exit) = \
        insert_args
    q_tail, q_waiting = queue_tables[4], queue_tables[5]
    lane_slot, every, q_speed, q_clear, q_t, q_m, q_veh, q_wait = queues
    record, traj_f, traj_i, traj_counts, traj_t = trajectories
    rule_f = rules[3]
    n = st[RS_N]
    steps = 0
    last_t = t
    st[RS_STATUS] = RS_STOPPED
    while True:
        k = st[RS_STEPS]
        if not play_signal_changes(t, player, group_state, lane_state):
            st[RS_STATUS] = RS_NEED_LOG
            break
        # Vehicles reach the network boundary (idempotent: a second call for
        # the same step applies nothing).
        _admit(st, admit_upto[k], vehicle_slot, q_tail, q_waiting)
        room = n + st[RS_WAITING]
        if room > F.shape[1] or room > tmp_f.shape[0]:
            st[RS_STATUS] = RS_NEED_ROOM
            break
        if record and (st[RS_TRAJ_COLS] + room > traj_f.shape[1]
                       or st[RS_TRAJ_STEPS] >= traj_counts.shape[0]):
            st[RS_STATUS] = RS_NEED_FLUSH
            break
        if st[RS_WAITING] > 0:
            n2 = insert_waiting(F, I, n, t, dt, stop_speed, tail, counts, queue_tables, depart_s,
                                net, routes, arrivals, classes, markers, stretch_enter,
                                stretch_exit, passages)
            st[RS_WAITING] -= n2 - n
            n = n2
        if gates[0].shape[0] > 0:
            _gates_update(gates, lane_state, t)
        if ped[PD_GROUP].shape[0] > 0:
            _pedestrians_block(ped, group_state, t, dt, ped_rules, ped_rule_crossing, rule_f)
        if n > 0:
            n, n_exits, changed = advance(F, I, n, t, dt, work, lane_changes, drv, lane_state,
                                          lane_link, stops, events, ecoef, ecoast, rules, net,
                                          routes, markers, outcomes, passages, yield_last)
            st[RS_LANE_CHANGES] += changed
            if gates[0].shape[0] > 0:
                for q in range(n_exits):
                    _gates_passed(gates, tmp_i[q], tmp_f[q])
        t_next = t + dt
        if k % every == 0:
            qk = st[RS_QUEUE_K]
            sample_queues(F, I, n, lane_slot, q_speed, q_clear, q_m[qk], q_veh[qk], order,
                          tmp_f, tmp_i)
            q_t[qk] = t_next
            for s in range(q_waiting.shape[0]):
                q_wait[qk, s] = q_waiting[s]
            st[RS_QUEUE_K] = qk + 1
        if record:
            _buffer_states(F, I, n, t_next, st, traj_f, traj_i, traj_counts, traj_t)
        st[RS_STEPS] = k + 1
        st[RS_N] = n
        steps += 1
        last_t = t
        if (t >= duration_s and n == 0 and st[RS_WAITING] == 0 and st[RS_ARRIVED] == n_total
                and (ped[PD_GROUP].shape[0] == 0 or pedestrians_done(ped))):
            st[RS_STATUS] = RS_FINISHED
            break
        if steps >= max_steps or not (t_next < stop_before) or not (t_next < end_s):
            break
        t = t_next
    st[RS_N] = n
    return last_t
