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
# committed to cross the stop line ahead (1: decided to go at amber, could
# not stop at red, or could not stop when a give-way gap closed; reset when
# it enters a new lane), movement code at the end of the current link (-1:
# leaves the network), 1 + the lane a blocked mandatory lane change waits
# to enter (0: none; its followers there cooperate), changed lane in the last
# lane-change pass (1: the engine recomputes its next lane).
I_VID, I_LANE, I_K, I_NEXT, I_MARK, I_MOVING, I_CLS, I_COMMIT, I_MOVE, I_BLINK, I_LC = range(11)
N_F, N_I = F_EMERG + 1, I_LC + 1
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

__all__ += ["change_lanes", "empty_rules", "lane_rules", "sample_queues",
            "sort_by_lane_position", "step_vehicles"]



@numba.njit(cache=True)
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


@numba.njit(cache=True)
def _lane_bounds(I, n, tail, head):
    """Per lane, the first (rearmost) and last (front) column of the sorted vehicles."""
    for k in range(tail.shape[0]):
        tail[k] = -1
        head[k] = -1
    for j in range(n - 1, -1, -1):
        tail[I[I_LANE, j]] = j
    for j in range(n):
        head[I[I_LANE, j]] = j


@numba.njit(cache=True)
def _first_ahead(F, lo, hi, x):
    """First column in ``lo..hi`` (sorted by position) with position > ``x``; ``hi + 1`` if none."""
    while lo <= hi:
        mid = (lo + hi) // 2
        if F[F_POS, mid] > x:
            hi = mid - 1
        else:
            lo = mid + 1
    return lo


@numba.njit(cache=True)
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


@numba.njit(cache=True)
def _idm(F, j, gap, dv, delta):
    """IDM acceleration of column ``j`` behind a gap ``gap`` closing at ``dv`` [m/s²]."""
    v = F[F_V, j]
    r = v / F[F_V0, j]
    free = r * r * r * r if delta == IDM_DELTA_QUARTIC else r ** delta
    s_star = F[F_S0, j] + max(0.0, v * (F[F_T, j] + dv * F[F_ISQ, j]))
    ratio = s_star / max(gap, MIN_IDM_GAP_M)
    return F[F_AMAX, j] * (1.0 - free - ratio * ratio)


@numba.njit(cache=True)
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


@numba.njit(cache=True)
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


@numba.njit(cache=True)
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
    * ``lane_w`` int (2, n_lanes): work rows (lane heads, lanes entered);
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
