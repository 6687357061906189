"""Vectorised vehicle kernels: car following and time integration.

Pure functions on numpy arrays (one element per vehicle); no Python loop
over vehicles.
"""

from __future__ import annotations

import numpy as np

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

import numba  # noqa: E402

from gpssignal.emissions.hbefa4 import co2_and_fuel_mg_s  # noqa: E402
from gpssignal.model.signals import GREEN, RED_AMBER  # noqa: E402

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
# committed to cross the stop line ahead (1: decided to go at amber, or could
# not stop at red; reset when it enters a new lane).
I_VID, I_LANE, I_K, I_NEXT, I_MARK, I_MOVING, I_CLS, I_COMMIT = range(8)
N_F, N_I = F_EMERG + 1, I_COMMIT + 1
#: Signal state codes (:mod:`gpssignal.model.signals`) as the kernel compares them.
RED_AMBER_CODE, GREEN_CODE = RED_AMBER, GREEN
#: A vehicle never closes up to its leader (or the stop line) nearer than this
#: within a step, so that the next step's gap stays positive [m].
MIN_CLEARANCE_M = 0.01
#: Sort key of a vehicle: lane × this + position; longer than any lane [m].
LANE_SORT_STRIDE_M = 1e5
# Roles of a vehicle in a step (``is_head``): it follows the vehicle ahead in
# its lane; it heads its lane and will cross the stop line; it heads its lane
# and stops at the stop line.
_FOLLOWER, _HEAD_GOES, _HEAD_STOPS = 0, 1, 2

__all__ += ["sample_queues", "sort_by_lane_position", "step_vehicles"]



@numba.njit(cache=True)
def step_vehicles(F, I, n, lane_state, lane_link, dt, amber_decel, delta,  # noqa: C901 - fused numba kernel, ~2x slower split (see docstring)
                  stop_speed, stops, tail, order, tmp_f, tmp_i, is_head, ecoef, ecoast,
                  hard_decel, events):
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

    One long function on purpose: split into helper functions (even inlined
    with ``inline="always"``) it ran about twice as slow per vehicle.
    """
    sort_by_lane_position(F, I, n, order, tmp_f, tmp_i)
    n_lanes = tail.shape[0]
    for k in range(n_lanes):
        tail[k] = -1
    for j in range(n - 1, -1, -1):
        tail[I[I_LANE, j]] = j
    # Pass 1: lane heads and whether they stop at their stop line.
    for j in range(n):
        lane = I[I_LANE, j]
        head = not (j + 1 < n and I[I_LANE, j + 1] == lane)
        is_head[j] = _FOLLOWER
        if head:
            v = F[F_V, j]
            dist = max(F[F_LLEN, j] - F[F_POS, j], 0.0)
            st = lane_state[lane]
            stop = False
            if v < stop_speed:
                I[I_COMMIT, j] = 0  # stopped (e.g. behind a blocked exit): it obeys again
            if st != GREEN_CODE and I[I_COMMIT, j] == 0:
                limit = F[F_EMERG, j] if st <= RED_AMBER_CODE else amber_decel
                stop = v * v <= 2.0 * limit * dist
                if not stop:
                    I[I_COMMIT, j] = 1
            is_head[j] = _HEAD_STOPS if stop else _HEAD_GOES
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
                link = lane_link[lane]
                for o in range(n):
                    if (is_head[o] == _HEAD_GOES and o != j and I[I_NEXT, o] == nl
                            and lane_link[I[I_LANE, o]] == link and F[F_POS, o] > pos):
                        g = F[F_POS, o] - F[F_LEN, o] - pos
                        if g < gap:
                            gap = g
                            dv = v - F[F_V, o]
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


@numba.njit(cache=True)
def sort_by_lane_position(F, I, n, order, tmp_f, tmp_i):
    """Sort the first ``n`` columns by (lane, position), in place (stable)."""
    for j in range(n):
        tmp_f[j] = I[I_LANE, j] * LANE_SORT_STRIDE_M + F[F_POS, j]
    for j in range(1, n):
        if tmp_f[j] < tmp_f[j - 1]:
            break
    else:
        return
    idx = np.argsort(tmp_f[:n], kind="mergesort")
    for j in range(n):
        order[j] = idx[j]
    for r in range(F.shape[0]):
        for j in range(n):
            tmp_f[j] = F[r, order[j]]
        for j in range(n):
            F[r, j] = tmp_f[j]
    for r in range(I.shape[0]):
        for j in range(n):
            tmp_i[j] = I[r, order[j]]
        for j in range(n):
            I[r, j] = tmp_i[j]


@numba.njit(cache=True)
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
