"""The discrete-event simulator: SimPy owns the clock, numpy moves the vehicles.

Events (SimPy processes): vehicle arrivals at the network boundary, signal
state changes of every junction, the vehicle step every ``step_s``, and any
process a controller or probe sampler registers. The vehicle step is a
vectorised kernel over all vehicles (structure of arrays):

* each lane is a single file; a vehicle picks its lane when it enters a link,
  among the lanes that carry its next movement (the one with fewest vehicles);
* car following is the IDM (:func:`gpssignal.sim.kernel.idm_acceleration`);
* the first vehicle of a lane sees a virtual stopped leader at the stop line
  when its signal is red or red-amber, or amber and it can stop with at most
  ``driver.amber_max_decel_mps2``; otherwise it follows the last vehicle of the
  lane it will enter downstream, so queues spill back through junctions;
* a vehicle that cannot enter an entry link waits outside; that wait counts
  toward its time loss.

The junction box is a point: vehicles pass from the stop line to the start of
the downstream link. Movements inside the junction do not interact, so
permitted (filtered) turns must be given their own signal groups.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import simpy

from gpssignal.emissions.hbefa4 import EmissionModel, scenario_emissions
from gpssignal.model.scenario import Scenario
from gpssignal.model.signals import GREEN, RED_AMBER
from gpssignal.sim.controller import Controller
from gpssignal.sim.demand import Arrivals, DayFactors, draw_day, generate_arrivals
from gpssignal.sim.kernel import (
    F_ACC,
    F_AMAX,
    F_B,
    F_CO2,
    F_DIST,
    F_DX,
    F_FACTOR,
    F_FC,
    F_ISQ,
    F_LEN,
    F_LLEN,
    F_MPOS,
    F_POS,
    F_POS_OLD,
    F_S0,
    F_SEGTL,
    F_T,
    F_TL,
    F_V,
    F_V0,
    I_CLS,
    I_K,
    I_LANE,
    I_MARK,
    I_MOVING,
    I_NEXT,
    I_VID,
    N_F,
    N_I,
    sample_queues,
    step_vehicles,
)
from gpssignal.sim.network import CompiledNetwork, compile_network
from gpssignal.sim.signals import JunctionSignals, ProgramSwitch

__all__ = ["CONTROL_DELAY_MARK_M", "QUEUE_MAX_CLEAR_M", "QUEUE_SPEED_MPS", "STOP_SPEED_MPS",
           "StepView",
           "SimResult", "Simulation", "day_streams"]

log = logging.getLogger(__name__)

#: A vehicle is stopped below this speed (DESIGN.md §5 "Stop") [m/s].
STOP_SPEED_MPS = 0.1
#: A vehicle counts as queued below this speed (5 km/h) [m/s].
QUEUE_SPEED_MPS = 5.0 / 3.6
#: Control delay at a junction is counted until this far past the stop line, so
#: that it includes the acceleration back to speed (HCM control delay) [m].
CONTROL_DELAY_MARK_M = 100.0

#: Queues are sampled at this interval [s].
QUEUE_SAMPLE_S = 1.0
#: A queue goes on while the clear distance to the vehicle ahead is at most
#: this (VISSIM's default "max. clear distance" of its queue counters) [m].
QUEUE_MAX_CLEAR_M = 20.0


def day_streams(seed: int) -> dict[str, np.random.SeedSequence]:
    """Independent random streams of one simulated day.

    ``demand`` (arrivals, routes, fleet) and ``day`` (day factors) are shared by
    every controller run on this seed; ``probes`` and ``control`` are for the
    probe sampler and controllers.
    """
    names = ("day", "demand", "probes", "control")
    return dict(zip(names, np.random.SeedSequence(seed).spawn(len(names)), strict=True))


@dataclass(frozen=True, slots=True)
class StepView:
    """Read-only view of the vehicles after a step, for hooks (e.g. probes).

    ``vid`` vehicle id, ``link`` link index, ``lane`` global lane index,
    ``pos_m`` position on the link [m], ``speed_mps`` [m/s], ``accel_mps2``
    [m/s²], ``route_pos`` index of the link in the vehicle's route; arrays
    share one order. They are views of the engine's state, valid only during
    the hook call: hooks must not modify them and must copy what they keep.
    """

    t_s: float
    vid: np.ndarray
    link: np.ndarray
    lane: np.ndarray
    route_pos: np.ndarray
    pos_m: np.ndarray
    speed_mps: np.ndarray
    accel_mps2: np.ndarray


@dataclass
class SimResult:
    """Everything one run produced, in columnar numpy form.

    See :mod:`gpssignal.evaluate.metrics` for the tables built from it.
    """

    scenario: Scenario
    network: CompiledNetwork
    controller: str
    seed: int
    day: DayFactors
    arrivals: Arrivals
    depart_s: np.ndarray
    exit_s: np.ndarray
    stops: np.ndarray
    stretch_enter_s: np.ndarray
    stretch_exit_s: np.ndarray
    passages: dict[str, np.ndarray]
    queue_t_s: np.ndarray
    queue_lanes: np.ndarray
    queue_m: np.ndarray
    queue_veh: np.ndarray
    waiting_outside: np.ndarray
    entry_link_idx: np.ndarray
    signal_log: dict[str, np.ndarray]
    switches: list[ProgramSwitch]
    trajectories: dict[str, np.ndarray] | None
    end_s: float
    in_network: int
    waiting: int
    monitor_checks: int
    red_crossings: int
    wall_s: float
    n_steps: int
    emissions: EmissionModel
    co2_mg: np.ndarray
    fuel_mg: np.ndarray
    distance_m: np.ndarray


def _lane_tails(pos: np.ndarray, lane: np.ndarray, tail: np.ndarray) -> None:
    """Per lane, the column of its rearmost vehicle (-1 if the lane is empty).

    Called only while vehicles wait to enter; plain numpy (a compiled helper
    would cost more to load at start-up than it saves).
    """
    tail[:] = -1
    if len(pos):
        order = np.lexsort((-pos, lane))  # by lane, then position descending
        tail[lane[order]] = order          # the last write per lane is its rearmost


class _Vehicles:
    """Structure of arrays of the vehicles in the network (compact)."""

    def __init__(self, capacity: int = 256) -> None:
        self.F = np.zeros((N_F, capacity))
        self.I = np.zeros((N_I, capacity), dtype=np.int64)
        self.n = 0

    def grow(self) -> None:
        cap = self.F.shape[1] * 2
        F = np.zeros((N_F, cap))
        I = np.zeros((N_I, cap), dtype=np.int64)
        F[:, :self.n] = self.F[:, :self.n]
        I[:, :self.n] = self.I[:, :self.n]
        self.F, self.I = F, I

    def remove(self, columns: list[int]) -> None:
        """Drop vehicles (columns), keeping the others in order."""
        keep = np.ones(self.n, dtype=np.bool_)
        keep[columns] = False
        m = int(keep.sum())
        self.F[:, :m] = self.F[:, :self.n][:, keep]
        self.I[:, :m] = self.I[:, :self.n][:, keep]
        self.n = m


class Simulation:
    """One simulated day of a scenario under one controller.

    Parameters
    ----------
    scenario : Scenario
    controller : Controller
    seed : int
        Identifies the day: demand and day factors come from it only, so runs
        of different controllers on one seed see the same vehicles.
    record_trajectories : bool
        Keep every vehicle's state at every step (ground truth).
    """

    def __init__(self, scenario: Scenario, controller: Controller, seed: int,
                 record_trajectories: bool = True) -> None:
        self.scenario = scenario
        self.controller = controller
        self.seed = seed
        self.record_trajectories = record_trajectories
        self.net = compile_network(scenario)
        self.streams = day_streams(seed)
        self.day = draw_day(scenario, np.random.default_rng(self.streams["day"]))
        self.arrivals = generate_arrivals(scenario, self.net, self.day,
                                          np.random.default_rng(self.streams["demand"]))
        self.env = simpy.Environment()
        self.dt = scenario.step_s
        self._step_hooks: list[Callable[[StepView], None]] = []
        self._build()

    # -- public hooks -----------------------------------------------------
    def add_step_hook(self, fn: Callable[[StepView], None]) -> None:
        """Call ``fn(view)`` after every vehicle step."""
        self._step_hooks.append(fn)

    def add_process(self, factory: Callable[[simpy.Environment], Any]) -> None:
        """Register a SimPy process ``factory(env)`` (a generator)."""
        self.env.process(factory(self.env))

    @property
    def clock_s(self) -> float:
        """Current clock time [s after midnight]."""
        return self.scenario.start_clock_s + self.env.now

    # -- set-up -----------------------------------------------------------
    def _build(self) -> None:
        sc, net = self.scenario, self.net
        n_total = len(self.arrivals)
        self.veh = _Vehicles()
        self.depart = np.full(n_total, np.nan)
        self.exit = np.full(n_total, np.nan)
        self.stops = np.zeros(n_total, dtype=np.int64)
        # Emissions and distance per vehicle, moved here from the kernel's rows
        # when a vehicle leaves (and for those still inside at the end).
        self.co2_mg = np.zeros(n_total)
        self.fuel_mg = np.zeros(n_total)
        self.dist_m = np.zeros(n_total)
        cls = sc.vehicle_classes
        self.emissions = scenario_emissions(sc)
        self.cls_len = np.array([c.length_m for c in cls])
        self.cls_amax = np.array([c.max_accel_mps2 for c in cls])
        self.cls_b = np.array([c.comfortable_decel_mps2 for c in cls])
        self.cls_T = np.array([c.time_headway_s for c in cls])
        self.cls_s0 = np.array([c.min_gap_m for c in cls])
        # Entry links and their waiting queues.
        self.entry_links = np.array(sorted({int(x) for x in self.arrivals.route_links[:, 0]}
                                           | {net.link_index(f.link) for f in sc.demand.flows}),
                                    dtype=np.int64)
        self.queues: dict[int, deque[int]] = {int(k): deque() for k in self.entry_links}
        # Lane signal state: GREEN for exit lanes (no stop line).
        self.group_state = np.zeros(net.n_groups, dtype=np.int64)
        self.lane_state = np.full(net.n_lanes, GREEN, dtype=np.int64)
        self.group_lanes = [np.flatnonzero(net.lane_group == g) for g in range(net.n_groups)]
        self.lane_exit = net.link_junction[net.lane_link] < 0
        self.lane_len = net.lane_length_m
        # Markers: stretch starts/ends and control-delay marks, sorted per link.
        mk_link, mk_pos, mk_kind, mk_ref = [], [], [], []
        for si, st in enumerate(sc.stretches):
            first, last = net.link_index(st.links[0]), net.link_index(st.links[-1])
            end = st.end_m if st.end_m is not None else float(net.link_length_m[last])
            mk_link += [first, last]
            mk_pos += [st.start_m, end]
            mk_kind += [0, 1]
            mk_ref += [si, si]
        for k, lk in enumerate(sc.links):
            if lk.from_arm is not None:
                mk_link.append(k)
                mk_pos.append(min(CONTROL_DELAY_MARK_M, lk.length_m))
                mk_kind.append(2)
                mk_ref.append(-1)
        self.mk_pos = np.array(mk_pos, dtype=float)
        self.mk_kind = np.array(mk_kind, dtype=np.int64)
        self.mk_ref = np.array(mk_ref, dtype=np.int64)
        self.link_markers: list[list[int]] = [[] for _ in range(net.n_links)]
        for m in np.argsort(self.mk_pos, kind="stable"):
            self.link_markers[mk_link[m]].append(int(m))
        n_st = len(sc.stretches)
        self.st_enter = np.full((n_total, n_st), np.nan)
        self.st_exit = np.full((n_total, n_st), np.nan)
        # Junction passages (stop-line crossings) with their control delay.
        self.pass_rows: list[list[float]] = []
        self.pending_pass = np.full(n_total, -1, dtype=np.int64)
        self.red_crossings = 0
        # Queue sampling on approach lanes.
        self.q_lanes = np.flatnonzero(net.lane_group >= 0)
        self.traj_f: list[np.ndarray] = []
        self.traj_i: list[np.ndarray] = []
        self.traj_n: list[int] = []
        self._q_every = max(1, int(round(QUEUE_SAMPLE_S / sc.step_s)))
        self._tail = np.full(net.n_lanes, -1, dtype=np.int64)
        self._lane_slot = np.full(net.n_lanes, -1, dtype=np.int64)
        self._lane_slot[self.q_lanes] = np.arange(len(self.q_lanes))
        self._n_waiting = 0
        arr = self.arrivals
        self._arr_lists = (arr.t_s.tolist(), arr.route_moves[:, 0].tolist(),
                           arr.vehicle_class.tolist(), arr.speed_factor.tolist())
        self._link_vmax = net.link_vmax_mps.tolist()
        self._cls_s0 = self.cls_s0.tolist()
        self._cls_T = self.cls_T.tolist()
        self._cls_b = self.cls_b.tolist()
        self._cls_isq = (0.5 / np.sqrt(self.cls_amax * self.cls_b)).tolist()
        self._entry_lanes = {
            (int(k), m): [int(x) for x in net.link_lanes[k][net.lane_allows[net.link_lanes[k], m]]]
            for k in self.entry_links for m in range(3)}
        self._waiting = np.zeros(len(self.entry_links), dtype=np.int64)
        self._entry_slot = {int(k): s for s, k in enumerate(self.entry_links)}
        n_q = int(np.ceil((sc.duration_s + sc.drain_s) / QUEUE_SAMPLE_S)) + 2
        self.q_t = np.full(n_q, np.nan)
        self.q_m = np.zeros((n_q, len(self.q_lanes)))
        self.q_n = np.zeros((n_q, len(self.q_lanes)), dtype=np.int64)
        self.q_wait = np.zeros((n_q, len(self.entry_links)), dtype=np.int64)
        self.q_k = 0
        self._buf_f = np.empty(0)
        self._buf_i = np.empty(0, dtype=np.int64)
        self.sig_rows: list[tuple[float, int, int]] = []
        self.junction_rt = []
        for ji, j in enumerate(sc.junctions):
            rt = JunctionSignals(junction=j, group_base=int(net.group_offset[ji]),
                                 group_state=self.group_state, on_change=self._signal_changed,
                                 request=self.controller.requested_program,
                                 start_clock_s=sc.start_clock_s)
            self.junction_rt.append(rt)
        self.n_steps = 0

    def _signal_changed(self, t: float, g: int, state: int) -> None:
        self.lane_state[self.group_lanes[g]] = state
        self.sig_rows.append((t, g, state))

    # -- processes ----------------------------------------------------------
    def _arrival_process(self, env: simpy.Environment) -> Any:
        t = self.arrivals.t_s
        first = self.arrivals.route_links[:, 0]
        for i in range(len(t)):
            wait = t[i] - env.now
            if wait > 0:
                yield env.timeout(wait)
            link = int(first[i])
            self.queues[link].append(i)
            self._n_waiting += 1
            self._waiting[self._entry_slot[link]] += 1

    def _step_process(self, env: simpy.Environment, end_s: float,
                      progress: Callable[[float], None] | None) -> Any:
        dt = self.dt
        every = max(1, int(600 / dt))
        while env.now < end_s - 1e-9:
            self._insert(env.now)
            self._advance(env.now)
            self.n_steps += 1
            if progress is not None and self.n_steps % every == 0:
                progress(min(1.0, (env.now + dt) / end_s))
            if (env.now >= self.scenario.duration_s and self.veh.n == 0
                    and not any(self.queues.values())):
                break
            yield env.timeout(dt)
        self._end_s = env.now

    # -- the vehicle step -----------------------------------------------------
    def _insert(self, t: float) -> None:
        if not self._n_waiting:
            return
        net, veh = self.net, self.veh
        tail = self._tail
        _lane_tails(veh.F[F_POS, :veh.n], veh.I[I_LANE, :veh.n], tail)
        counts = None
        t_arr, move0, vclass, factor = self._arr_lists
        for link, q in self.queues.items():
            while q:
                i = q[0]
                c = vclass[i]
                v0 = self._link_vmax[link] * factor[i]
                best, best_space, v_lead = -1, -1.0, 0.0
                F = veh.F
                for ln in self._entry_lanes[(link, move0[i])]:
                    k = tail[ln]
                    if k < 0:
                        space, vl = np.inf, v0
                    else:
                        space = F[F_POS, k] - F[F_LEN, k]
                        vl = F[F_V, k]
                    if space > best_space:
                        best, best_space, v_lead = ln, space, vl
                s0, T, b = self._cls_s0[c], self._cls_T[c], self._cls_b[c]
                # Enter at the desired speed, or at the highest speed from which
                # the vehicle can still stop behind the last vehicle of the lane
                # with comfortable deceleration and its time headway
                # (free >= v T + (v² - v_lead²) / 2b), and only with at least the
                # desired time headway at that speed; otherwise wait outside (the
                # wait is counted as time loss).
                free = best_space - s0
                if free < 0:
                    break
                v_safe = -b * T + float(np.sqrt(b * b * T * T + 2 * b * free + v_lead * v_lead))
                v_ins = min(v0, v_safe)
                if free < v_ins * T:
                    break
                pos = min(v_ins * (t - t_arr[i]), free - v_ins * T) if v_ins > 0 else 0.0
                depart = t - pos / v_ins if v_ins > 0 else t
                self.depart[i] = depart
                q.popleft()
                self._n_waiting -= 1
                self._waiting[self._entry_slot[link]] -= 1
                if counts is None:
                    counts = np.bincount(veh.I[I_LANE, :veh.n], minlength=net.n_lanes)
                if veh.n == veh.F.shape[1]:
                    veh.grow()
                j = veh.n
                veh.n += 1
                F, I = veh.F, veh.I
                F[:, j] = 0.0
                F[F_POS, j], F[F_V, j] = pos, v_ins
                F[F_V0, j], F[F_FACTOR, j] = v0, factor[i]
                F[F_LEN, j], F[F_AMAX, j], F[F_B, j] = self.cls_len[c], self.cls_amax[c], \
                    self.cls_b[c]
                F[F_T, j], F[F_S0, j], F[F_ISQ, j] = T, s0, self._cls_isq[c]
                F[F_LLEN, j] = self.lane_len[best]
                F[F_TL, j] = depart - t_arr[i]  # entry wait counts as time loss
                I[I_VID, j], I[I_LANE, j], I[I_K, j] = i, best, 0
                I[I_CLS, j] = c
                I[I_MOVING, j] = 1 if v_ins > STOP_SPEED_MPS else 0
                counts[best] += 1
                I[I_NEXT, j] = self._next_lane(i, 0, best, counts)
                self._set_marker(j, link, pos, depart)
                tail[best] = j

    def _next_lane(self, vid: int, k: int, lane: int, counts: np.ndarray) -> int:
        """Lane the vehicle in ``lane`` (route link ``k``) takes on its next link.

        The lane connection of ``lane`` for its movement, if that lane carries
        the vehicle's following movement; otherwise the nearest lane that does
        (fewest vehicles on a tie). -1 when the vehicle leaves the network.
        """
        arr, net = self.arrivals, self.net
        move = int(arr.route_moves[vid, k])
        if move < 0:
            return -1
        target = int(net.lane_target[lane, move])
        link = int(arr.route_links[vid, k + 1])
        nxt_move = int(arr.route_moves[vid, k + 1])
        lanes = net.link_lanes[link]
        if nxt_move >= 0:
            lanes = lanes[net.lane_allows[lanes, nxt_move]]
        if target in lanes:
            return target
        dist = np.abs(lanes - target) * 1_000_000 + counts[lanes]
        return int(lanes[np.argmin(dist)])

    def _set_marker(self, j: int, link: int, pos: float, t_at_pos: float) -> None:
        """Record markers at or behind ``pos`` on ``link``; arm the next one."""
        F, I = self.veh.F, self.veh.I
        nxt_pos, nxt = np.inf, -1
        for m in self.link_markers[link]:
            if self.mk_pos[m] <= pos:
                self._hit_marker(j, m, t_at_pos)
            else:
                nxt_pos, nxt = self.mk_pos[m], m
                break
        F[F_MPOS, j], I[I_MARK, j] = nxt_pos, nxt

    def _hit_marker(self, j: int, m: int, t: float) -> None:
        F, I = self.veh.F, self.veh.I
        vid = int(I[I_VID, j])
        kind = self.mk_kind[m]
        if kind == 0:
            self.st_enter[vid, self.mk_ref[m]] = t
        elif kind == 1:
            self.st_exit[vid, self.mk_ref[m]] = t
        else:
            p = self.pending_pass[vid]
            if p >= 0:
                self.pass_rows[p][6] = F[F_TL, j] - F[F_SEGTL, j]
                self.pending_pass[vid] = -1
            F[F_SEGTL, j] = F[F_TL, j]

    def _advance(self, t: float) -> None:
        veh, dt = self.veh, self.dt
        n = veh.n
        t_next = t + dt
        if n == 0:
            self._record(t_next)
            return
        if len(self._buf_f) < veh.F.shape[1]:
            self._grow_buffers()
        drv = self.scenario.driver
        F, I = veh.F, veh.I
        hits, ends = step_vehicles(F, I, n, self.lane_state, self.net.lane_link, dt,
                                   drv.amber_max_decel_mps2, drv.idm_delta,
                                   drv.max_decel_mps2, STOP_SPEED_MPS, self.stops, self._tail,
                                   self._buf_o, self._buf_f, self._buf_i, self._buf_h,
                                   self.emissions.coef, self.emissions.coast)
        pos = F[F_POS, :n]
        # Markers (rare).
        if hits:
            self._markers(t)
        if ends:
            self._cross(t, np.flatnonzero(pos >= F[F_LLEN, :n]))
        self._record(t_next)

    def _grow_buffers(self) -> None:
        cap = self.veh.F.shape[1]
        self._buf_f = np.empty(cap)
        self._buf_i = np.empty(cap, dtype=np.int64)
        self._buf_o = np.empty(cap, dtype=np.int64)
        self._buf_h = np.empty(cap, dtype=np.int64)

    def _markers(self, t: float) -> None:
        F, I, n, dt = self.veh.F, self.veh.I, self.veh.n, self.dt
        pos = F[F_POS, :n]
        for j in np.flatnonzero(pos >= F[F_MPOS, :n]):
            while pos[j] >= F[F_MPOS, j]:
                m = int(I[I_MARK, j])
                frac = (F[F_MPOS, j] - F[F_POS_OLD, j]) / max(F[F_DX, j], 1e-12)
                self._hit_marker(int(j), m, t + dt * min(max(frac, 0.0), 1.0))
                lst = self.link_markers[int(self.net.lane_link[I[I_LANE, j]])]
                nxt = lst.index(m) + 1
                if nxt < len(lst):
                    F[F_MPOS, j], I[I_MARK, j] = self.mk_pos[lst[nxt]], lst[nxt]
                else:
                    F[F_MPOS, j], I[I_MARK, j] = np.inf, -1

    def _record(self, t_next: float) -> None:
        """Sample queues (every second), keep trajectories, call step hooks."""
        veh, net = self.veh, self.net
        n = veh.n
        F, I = veh.F, veh.I
        if self.n_steps % self._q_every == 0:
            k = self.q_k
            if len(self._buf_f) < veh.F.shape[1]:
                self._grow_buffers()
            sample_queues(F, I, n, self._lane_slot, QUEUE_SPEED_MPS, QUEUE_MAX_CLEAR_M,
                          self.q_m[k], self.q_n[k], self._buf_o, self._buf_f, self._buf_i)
            self.q_t[k] = t_next
            self.q_wait[k] = self._waiting
            self.q_k += 1
        if self.record_trajectories:
            # Rows F_POS, F_V, F_ACC and I_VID, I_LANE are contiguous (see kernel.py).
            self.traj_f.append(F[F_POS:F_ACC + 1, :n].copy())
            self.traj_i.append(I[I_VID:I_LANE + 1, :n].copy())
            self.traj_n.append(n)
        if self._step_hooks:
            # Views, not copies: hooks read them before the next step and must
            # not modify them (documented on StepView).
            lane = I[I_LANE, :n]
            view = StepView(t_s=t_next, vid=I[I_VID, :n], link=net.lane_link[lane], lane=lane,
                            route_pos=I[I_K, :n], pos_m=F[F_POS, :n], speed_mps=F[F_V, :n],
                            accel_mps2=F[F_ACC, :n])
            for fn in self._step_hooks:
                fn(view)

    def _cross(self, t: float, cross: np.ndarray) -> None:
        veh, net, arr, dt = self.veh, self.net, self.arrivals, self.dt
        F, I = veh.F, veh.I
        gone = []
        counts = np.bincount(I[I_LANE, :veh.n], minlength=net.n_lanes)
        for j in cross:
            ln = int(I[I_LANE, j])
            vid = int(I[I_VID, j])
            frac = (self.lane_len[ln] - F[F_POS_OLD, j]) / max(F[F_DX, j], 1e-12)
            tc = t + dt * min(max(frac, 0.0), 1.0)
            if self.lane_exit[ln]:
                self.exit[vid] = tc
                gone.append(j)
                continue
            k = int(I[I_K, j])
            link = int(net.lane_link[ln])
            state = int(self.lane_state[ln])
            if state <= RED_AMBER:
                self.red_crossings += 1
            self.pass_rows.append([vid, float(net.link_junction[link]), link,
                                   float(arr.route_moves[vid, k]), tc, state, np.nan, ln])
            self.pending_pass[vid] = len(self.pass_rows) - 1
            new_lane = int(I[I_NEXT, j])
            new_link = int(net.lane_link[new_lane])
            counts[ln] -= 1
            counts[new_lane] += 1
            F[F_POS, j] -= self.lane_len[ln]
            F[F_V0, j] = net.lane_vmax_mps[new_lane] * F[F_FACTOR, j]
            F[F_LLEN, j] = self.lane_len[new_lane]
            I[I_LANE, j] = new_lane
            I[I_K, j] = k + 1
            I[I_NEXT, j] = self._next_lane(vid, k + 1, new_lane, counts)
            self._set_marker(j, new_link, F[F_POS, j], tc)
        if gone:
            self._flush(gone)
            veh.remove(gone)

    def _flush(self, columns: list[int] | np.ndarray) -> None:
        """Move the accumulated emissions and distance of vehicles to per-id arrays."""
        F, I = self.veh.F, self.veh.I
        vid = I[I_VID, columns]
        self.co2_mg[vid] += F[F_CO2, columns]
        self.fuel_mg[vid] += F[F_FC, columns]
        self.dist_m[vid] += F[F_DIST, columns]

    # -- run ------------------------------------------------------------------
    def run(self, progress: Callable[[float], None] | None = None) -> SimResult:
        """Simulate the demand period plus the drain time; return the results.

        Raises
        ------
        SafetyViolation
            If any signal state breaks a safety rule (never expected).
        """
        wall0 = time.perf_counter()
        sc = self.scenario
        end_s = sc.duration_s + sc.drain_s
        self.controller.attach(self)
        for rt in self.junction_rt:
            self.env.process(rt.process(self.env))
        self.env.process(self._arrival_process(self.env))
        stepper = self.env.process(self._step_process(self.env, end_s, progress))
        self.env.run(until=stepper)
        wall = time.perf_counter() - wall0
        return self._result(wall)

    def _result(self, wall: float) -> SimResult:
        net = self.net
        inside = np.arange(self.veh.n)
        self._flush(inside)
        self.veh.F[[F_CO2, F_FC, F_DIST], :self.veh.n] = 0.0
        rows = np.array(self.pass_rows, dtype=float).reshape(-1, 8)
        passages = {
            "vid": rows[:, 0].astype(np.int64), "junction": rows[:, 1].astype(np.int64),
            "link": rows[:, 2].astype(np.int64), "movement": rows[:, 3].astype(np.int64),
            "t_s": rows[:, 4], "state": rows[:, 5].astype(np.int64),
            "control_delay_s": rows[:, 6], "lane": rows[:, 7].astype(np.int64),
        }
        sig = np.array(self.sig_rows, dtype=float).reshape(-1, 3)
        signal_log = {"t_s": sig[:, 0], "group": sig[:, 1].astype(np.int64),
                      "state": sig[:, 2].astype(np.int64)}
        traj = None
        if self.record_trajectories:
            f = np.concatenate(self.traj_f, axis=1) if self.traj_f else np.empty((3, 0))
            i = (np.concatenate(self.traj_i, axis=1) if self.traj_i
                 else np.empty((2, 0), dtype=np.int64))
            steps_t = (np.arange(1, len(self.traj_n) + 1) * self.dt)
            traj = {"t_s": np.repeat(steps_t, self.traj_n), "vid": i[0],
                    "link": net.lane_link[i[1]], "pos_m": f[0], "speed_mps": f[1],
                    "accel_mps2": f[2]}
        waiting = sum(len(q) for q in self.queues.values())
        return SimResult(
            scenario=self.scenario, network=net, controller=self.controller.name,
            seed=self.seed, day=self.day, arrivals=self.arrivals, depart_s=self.depart,
            exit_s=self.exit, stops=self.stops, stretch_enter_s=self.st_enter,
            stretch_exit_s=self.st_exit, passages=passages,
            queue_t_s=self.q_t[:self.q_k], queue_lanes=self.q_lanes,
            queue_m=self.q_m[:self.q_k], queue_veh=self.q_n[:self.q_k],
            waiting_outside=self.q_wait[:self.q_k],
            entry_link_idx=self.entry_links, signal_log=signal_log,
            switches=[s for rt in self.junction_rt for s in rt.switches],
            trajectories=traj, end_s=self._end_s, in_network=self.veh.n, waiting=waiting,
            monitor_checks=sum(rt.monitor.checks for rt in self.junction_rt),
            red_crossings=self.red_crossings, wall_s=wall, n_steps=self.n_steps,
            emissions=self.emissions, co2_mg=self.co2_mg, fuel_mg=self.fuel_mg,
            distance_m=self.dist_m)
