"""The discrete-event simulator: SimPy owns the clock, numpy moves the vehicles.

Events (SimPy processes): vehicle arrivals at the network boundary, signal
state changes of every junction, the vehicle step every ``step_s``, and any
process a controller or probe sampler registers. The vehicle step is a
vectorised kernel over all vehicles (structure of arrays):

* each lane is a single file; a vehicle picks its lane when it enters a link,
  among the full lanes that carry its next movement (the one with fewest
  vehicles), and changes lanes on the link (into turn pockets, optionally to
  a faster lane: :func:`~gpssignal.sim.kernel.change_lanes`);
* car following is the IDM (:func:`gpssignal.sim.kernel.idm_acceleration`);
* the first vehicle of a lane sees a virtual stopped leader at the stop line
  when its signal is red or red-amber, or amber and it can stop with at most
  ``driver.amber_max_decel_mps2``; otherwise it follows the last vehicle of the
  lane it will enter downstream, so queues spill back through junctions;
* a vehicle that cannot enter an entry link waits outside; that wait counts
  toward its time loss.

The junction box is a point: vehicles pass from the stop line to the start of
the downstream link. Movements inside the junction interact only through
the give-way rules (permissive turns wait for a gap at the stop line, see
:func:`~gpssignal.sim.kernel.step_vehicles`).

The engine's state is a handful of named parts: the vehicles
(:class:`~gpssignal.sim.vehicles.VehicleArrays`) and their classes, the entry
queues (:mod:`~gpssignal.sim.entry`), the signal state, the markers
(:mod:`~gpssignal.sim.markers`) and the records of the run
(:mod:`~gpssignal.sim.records`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import simpy

from gpssignal.emissions.hbefa4 import EmissionModel, scenario_emissions
from gpssignal.model.scenario import Scenario
from gpssignal.sim.controller import Controller
from gpssignal.sim.demand import Arrivals, DayFactors, draw_day, generate_arrivals
from gpssignal.sim.entry import EntryQueues
from gpssignal.sim.incidents import IncidentGates
from gpssignal.sim.kernel import (
    CLEARING,
    F_ACC,
    F_AMAX,
    F_B,
    F_DX,
    F_EMERG,
    F_FACTOR,
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
    I_BLINK,
    I_CLS,
    I_COMMIT,
    I_K,
    I_LANE,
    I_LC,
    I_MARK,
    I_MOVE,
    I_MOVING,
    I_NEXT,
    I_VID,
    change_lanes,
    lane_rules,
    step_vehicles,
)
from gpssignal.sim.markers import CONTROL_DELAY_MARK_M, NO_MARKER, MarkerKind, Markers
from gpssignal.sim.network import NO_INDEX, CompiledNetwork, compile_network
from gpssignal.sim.pedestrians import Pedestrians
from gpssignal.sim.records import (
    QUEUE_MAX_CLEAR_M,
    QUEUE_SAMPLE_S,
    QUEUE_SPEED_MPS,
    PassageLog,
    QueueSampler,
    SignalState,
    TrajectoryLog,
    VehicleOutcomes,
)
from gpssignal.sim.signals import JunctionSignals, ProgramSwitch
from gpssignal.sim.vehicles import VehicleArrays, VehicleClasses, WorkBuffers, lane_tails

__all__ = [
    "CONTROL_DELAY_MARK_M",
    "QUEUE_MAX_CLEAR_M",
    "QUEUE_SAMPLE_S",
    "QUEUE_SPEED_MPS",
    "STOP_SPEED_MPS",
    "SimResult",
    "Simulation",
    "StepView",
    "day_streams",
]

log = logging.getLogger(__name__)

#: A vehicle is stopped below this speed (docs/definitions.md, `stops`) [m/s].
STOP_SPEED_MPS = 0.1
#: The progress callback is called about once per this much simulated time [s].
PROGRESS_EVERY_S = 600.0
#: Tolerance on the end of the run, against rounding in the step clock [s].
_END_TOL_S = 1e-9
#: Floor on a step's travelled distance when interpolating the time a vehicle
#: passed a point within the step (a vehicle standing on it passes at once) [m].
_MIN_STEP_DX_M = 1e-12
#: Weight of the lane offset against the number of vehicles when a vehicle
#: must change to the nearest lane that carries its next movement: the offset
#: decides, the count only breaks ties [vehicles per lane of offset].
_LANE_OFFSET_WEIGHT = 1_000_000
#: Marker kinds bound once: attribute lookups on an Enum class are slow in
#: the per-marker path.
_STRETCH_START, _STRETCH_END = MarkerKind.STRETCH_START, MarkerKind.STRETCH_END
#: Random streams of one day, in spawn order (see :func:`day_streams`).
_STREAM_NAMES = ("day", "demand", "probes", "day_type", "pedestrians")


def day_streams(seed: int) -> dict[str, np.random.SeedSequence]:
    """Independent random streams of one simulated day.

    ``demand`` (arrivals, routes, fleet), ``day`` (day factors),
    ``day_type`` (the day's type and its events) and ``pedestrians`` are
    shared by every controller run on this seed; ``probes`` is for the probe sampler.
    Each stream is the seed's child of its position in the spawn order, so a
    stream added at the end leaves the others unchanged.
    """
    children = np.random.SeedSequence(seed).spawn(len(_STREAM_NAMES))
    return dict(zip(_STREAM_NAMES, children, strict=True))


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
    ``red_crossings``: stop-line passages on red or red-amber (a vehicle
    that could not stop even with the emergency deceleration);
    ``emergency_brakings``: times a vehicle started braking harder than
    ``driver.emergency_braking_mps2``; ``held_back``: vehicle-steps in which
    even the emergency deceleration could not keep a vehicle behind what it
    follows (never expected); ``pedestrians``: per pedestrian, the crossing,
    arrival, start and delay (:mod:`gpssignal.sim.pedestrians`).
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
    emergency_brakings: int
    held_back: int
    wall_s: float
    n_steps: int
    emissions: EmissionModel
    co2_mg: np.ndarray
    fuel_mg: np.ndarray
    distance_m: np.ndarray
    #: Per pedestrian: crossing, arrival, start and delay (empty without crossings).
    pedestrians: dict[str, np.ndarray] | None = None
    #: Give-way turners that cleared the junction after red began, having
    #: taken their gap from their waiting point (not red crossings).
    red_clearances: int = 0


def _time_at(t: float, dt: float, covered_m: float, dx_m: float) -> float:
    """Interpolate when, within a step, a vehicle had covered ``covered_m``.

    The vehicle moved ``dx_m`` in the step ``[t, t + dt]``; the time is
    interpolated linearly.
    """
    frac = covered_m / max(dx_m, _MIN_STEP_DX_M)
    return t + dt * min(max(frac, 0.0), 1.0)


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
    day_type : str, optional
        Run the day as this type of the scenario's mix instead of the type
        the seed draws.
    """

    def __init__(self, scenario: Scenario, controller: Controller, seed: int,
                 record_trajectories: bool = True, day_type: str | None = None) -> None:
        self.scenario = scenario
        self.controller = controller
        self.seed = seed
        self.record_trajectories = record_trajectories
        self.net = compile_network(scenario)
        self.streams = day_streams(seed)
        self.day = draw_day(scenario, np.random.default_rng(self.streams["day"]),
                            np.random.default_rng(self.streams["day_type"]), day_type)
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
        """Create the parts of the engine's state."""
        sc, net = self.scenario, self.net
        n_total = len(self.arrivals)
        self.veh = VehicleArrays()
        self.classes = VehicleClasses.from_scenario(sc)
        self.emissions = scenario_emissions(sc)
        self.buf = WorkBuffers(net.n_lanes)
        self.entry = EntryQueues(sc, net, self.arrivals)
        self.signals = SignalState(net)
        self.markers = Markers.build(sc, net)
        self.out = VehicleOutcomes(n_total, len(sc.stretches))
        self.passages = PassageLog(n_total)
        self.queue_log = QueueSampler(net, len(self.entry.links), sc.duration_s + sc.drain_s,
                                      sc.step_s)
        self.trajectories = TrajectoryLog() if self.record_trajectories else None
        self.incidents = IncidentGates(self.day.incidents, net) if self.day.incidents else None
        self.junction_rt = [
            JunctionSignals(junction=j, group_base=int(net.group_offset[ji]),
                            group_state=self.signals.group_state, on_change=self.signals.changed,
                            request=self.controller.requested_program,
                            start_clock_s=sc.start_clock_s)
            for ji, j in enumerate(sc.junctions)]
        self.n_steps = 0
        #: Vehicles that have reached the network boundary so far (platoons
        #: from an upstream signal may arrive after the demand period).
        self.n_arrived = 0
        self._end_s = 0.0
        #: Kernel event counts: emergency brakings, vehicles held back (see
        #: :func:`~gpssignal.sim.kernel.step_vehicles`).
        self.events = np.zeros(2, dtype=np.int64)
        #: When the last yielding vehicle of each lane crossed its stop line [s].
        self.rules = lane_rules(net)
        self.yield_last = self.rules[1][1]   # a view: the kernel reads it
        #: Whether lane changes can happen at all (short lanes, or discretionary
        #: changes); without them the lane-change pass is skipped.
        self.lane_changes = bool((net.lane_start_m > 0).any() or sc.driver.lc_discretionary)
        self.n_lane_changes = 0
        self.pedestrians = Pedestrians(
            sc, net, self.day, np.random.default_rng(self.streams["pedestrians"]),
            self.signals.group_state) if net.crossing_ids else None
        #: The give-way rules whose vehicles yield to pedestrians, and their crossings.
        self._ped_rules = np.flatnonzero(net.yield_crossing >= 0)
        self._ped_rule_crossing = net.yield_crossing[self._ped_rules]

    # -- processes ----------------------------------------------------------
    def _arrival_process(self, env: simpy.Environment) -> Any:
        t = self.arrivals.t_s
        first = self.arrivals.route_links[:, 0]
        for i in range(len(t)):
            wait = t[i] - env.now
            if wait > 0:
                yield env.timeout(wait)
            self.entry.arrive(i, int(first[i]))
            self.n_arrived += 1

    def _step_process(self, env: simpy.Environment, end_s: float,
                      progress: Callable[[float], None] | None) -> Any:
        dt = self.dt
        every = max(1, int(PROGRESS_EVERY_S / dt))
        while env.now < end_s - _END_TOL_S:
            self._insert(env.now)
            if self.incidents is not None:
                self.incidents.update(env.now, self.signals.lane_state)
            self._advance(env.now)
            self.n_steps += 1
            if progress is not None and self.n_steps % every == 0:
                progress(min(1.0, (env.now + dt) / end_s))
            if (env.now >= self.scenario.duration_s and self.veh.n == 0
                    and self.entry.n_waiting == 0 and self.n_arrived == len(self.arrivals)
                    and (self.pedestrians is None or self.pedestrians.done())):
                break
            yield env.timeout(dt)
        self._end_s = env.now

    # -- entering the network -------------------------------------------------
    def _insert(self, t: float) -> None:
        """Let waiting vehicles enter their entry links, first come first served."""
        entry = self.entry
        if not entry.n_waiting:
            return
        veh, tail = self.veh, self.buf.tail
        lane_tails(veh.F[F_POS, :veh.n], veh.I[I_LANE, :veh.n], tail)
        counts = None
        for link, q in entry.queues.items():
            while q:
                i = q[0]
                slot = self._entry_slot(i, link, t)
                if slot is None:
                    break
                lane, pos, v_ins, v0, depart = slot
                entry.pop(link)
                if counts is None:
                    counts = np.bincount(veh.I[I_LANE, :veh.n], minlength=self.net.n_lanes)
                tail[lane] = self._place(i, link, lane, pos, v_ins, v0, depart, counts)

    def _entry_slot(self, i: int, link: int, t: float
                    ) -> tuple[int, float, float, float, float] | None:
        """Where and how fast vehicle ``i`` can enter ``link`` now, or None (it waits).

        Returns ``(lane, pos_m, speed_mps, desired_mps, depart_s)``. It takes
        the lane with most space behind its last vehicle, and enters at the
        desired speed or at the highest speed from which it can still stop
        behind that vehicle with comfortable deceleration and its time headway
        (free >= v T + (v² - v_lead²) / 2b), and only with at least the desired
        time headway at that speed; otherwise it waits outside (the wait is
        counted as time loss).
        """
        e, cls, F, tail = self.entry, self.classes, self.veh.F, self.buf.tail
        c = e.vehicle_class[i]
        v0 = min(e.link_vmax_mps[link], cls.max_speed_list[c]) * e.speed_factor[i]
        best, best_space, v_lead = NO_INDEX, -1.0, 0.0
        for ln in self.net.start_lanes[link][e.first_move[i]]:
            k = tail[ln]
            if k < 0:
                space, vl = np.inf, v0
            else:
                space = F[F_POS, k] - F[F_LEN, k]
                vl = F[F_V, k]
            if space > best_space:
                best, best_space, v_lead = ln, space, vl
        s0, T, b = cls.min_gap_list[c], cls.headway_list[c], cls.decel_list[c]
        free = best_space - s0
        if free < 0:
            return None
        v_safe = -b * T + float(np.sqrt(b * b * T * T + 2 * b * free + v_lead * v_lead))
        v_ins = min(v0, v_safe)
        if free < v_ins * T:
            return None
        t_arr = e.arrival_t_s[i]
        pos = min(v_ins * (t - t_arr), free - v_ins * T) if v_ins > 0 else 0.0
        depart = t - pos / v_ins if v_ins > 0 else t
        return best, pos, v_ins, v0, depart

    def _place(self, i: int, link: int, lane: int, pos: float, v_ins: float, v0: float,
               depart: float, counts: np.ndarray) -> int:
        """Add vehicle ``i`` to the network on ``lane``; return its column."""
        e, cls = self.entry, self.classes
        c = e.vehicle_class[i]
        self.out.depart_s[i] = depart
        j = self.veh.add()
        F, I = self.veh.F, self.veh.I
        F[F_POS, j], F[F_V, j] = pos, v_ins
        F[F_V0, j], F[F_FACTOR, j] = v0, e.speed_factor[i]
        F[F_LEN, j], F[F_AMAX, j], F[F_B, j] = (cls.length_m[c], cls.max_accel_mps2[c],
                                                cls.decel_mps2[c])
        F[F_T, j], F[F_S0, j] = cls.headway_list[c], cls.min_gap_list[c]
        F[F_ISQ, j] = cls.inv_two_sqrt_ab_list[c]
        F[F_EMERG, j] = cls.emergency_decel_list[c]
        F[F_LLEN, j] = self.net.lane_length_m[lane]
        F[F_TL, j] = depart - e.arrival_t_s[i]  # entry wait counts as time loss
        I[I_VID, j], I[I_LANE, j], I[I_K, j] = i, lane, 0
        I[I_CLS, j] = c
        I[I_MOVING, j] = 1 if v_ins > STOP_SPEED_MPS else 0
        I[I_COMMIT, j] = 0
        I[I_MOVE, j] = self.arrivals.route_moves[i, 0]
        I[I_BLINK, j], I[I_LC, j] = 0, 0
        counts[lane] += 1
        I[I_NEXT, j] = self._next_lane(i, 0, lane, counts)
        self._set_marker(j, link, pos, depart)
        return j

    def _next_lane(self, vid: int, k: int, lane: int, counts: np.ndarray) -> int:
        """Lane the vehicle in ``lane`` (route link ``k``) takes on its next link.

        The lane connection of ``lane`` for its movement, if that lane is one
        the vehicle drives onto the next link in (a full lane carrying its
        following movement, :attr:`CompiledNetwork.start_lanes`); otherwise
        the nearest such lane (fewest vehicles on a tie). -1 when the vehicle
        leaves the network.
        """
        arr, net = self.arrivals, self.net
        move = int(arr.route_moves[vid, k])
        if move < 0:
            return NO_INDEX
        target = int(net.lane_target[lane, move])
        link = int(arr.route_links[vid, k + 1])
        nxt_move = int(arr.route_moves[vid, k + 1])
        lanes = net.start_lanes[link][nxt_move] if nxt_move >= 0 else \
            net.link_lanes[link][net.lane_start_m[net.link_lanes[link]] == 0.0]
        if target in lanes:
            return target
        dist = np.abs(lanes - target) * _LANE_OFFSET_WEIGHT + counts[lanes]
        return int(lanes[np.argmin(dist)])

    # -- markers --------------------------------------------------------------
    def _set_marker(self, j: int, link: int, pos: float, t_at_pos: float) -> None:
        """Record markers at or behind ``pos`` on ``link``; arm the next one."""
        mk = self.markers
        nxt_pos, nxt = np.inf, NO_MARKER
        for m in mk.by_link[link]:
            if mk.pos_m[m] <= pos:
                self._hit_marker(j, m, t_at_pos)
            else:
                nxt_pos, nxt = mk.pos_m[m], m
                break
        self.veh.F[F_MPOS, j], self.veh.I[I_MARK, j] = nxt_pos, nxt

    def _hit_marker(self, j: int, m: int, t: float) -> None:
        """Vehicle column ``j`` passed marker ``m`` at ``t`` [s]."""
        F, I, mk = self.veh.F, self.veh.I, self.markers
        vid = int(I[I_VID, j])
        kind = int(mk.kind[m])  # a numpy scalar compared to an IntEnum is slow
        if kind == _STRETCH_START:
            self.out.stretch_enter_s[vid, mk.ref[m]] = t
        elif kind == _STRETCH_END:
            self.out.stretch_exit_s[vid, mk.ref[m]] = t
        else:  # MarkerKind.CONTROL_DELAY
            self.passages.close(vid, F[F_TL, j] - F[F_SEGTL, j])
            F[F_SEGTL, j] = F[F_TL, j]

    def _markers(self, t: float) -> None:
        """Record the markers vehicles passed in the step from ``t``."""
        F, I, n, dt = self.veh.F, self.veh.I, self.veh.n, self.dt
        pos = F[F_POS, :n]
        for j in np.flatnonzero(pos >= F[F_MPOS, :n]):
            while pos[j] >= F[F_MPOS, j]:
                m = int(I[I_MARK, j])
                self._hit_marker(int(j), m,
                                 _time_at(t, dt, F[F_MPOS, j] - F[F_POS_OLD, j], F[F_DX, j]))
                F[F_MPOS, j], I[I_MARK, j] = self.markers.next_after(m)

    # -- the vehicle step -----------------------------------------------------
    def _advance(self, t: float) -> None:
        """Move every vehicle one step from ``t``; handle markers and lane ends."""
        veh, dt = self.veh, self.dt
        n = veh.n
        t_next = t + dt
        if self.pedestrians is not None:
            self.pedestrians.step(t, dt)
            if len(self._ped_rules):
                self.rules[3][2, self._ped_rules] = \
                    self.pedestrians.block_until[self._ped_rule_crossing]
        if n == 0:
            self._record(t_next)
            return
        buf, drv = self.buf, self.scenario.driver
        buf.fit(veh.capacity)
        if self.lane_changes:
            changed = change_lanes(veh.F, veh.I, n, self.signals.lane_state, *self.rules[:3],
                                   drv.lc_safe_decel_mps2, drv.lc_discretionary,
                                   drv.lc_politeness, drv.lc_threshold_mps2, drv.idm_delta,
                                   buf.order, buf.f, buf.i, buf.tail)
            if changed:
                self._changed_lanes(changed)
        hits, ends = step_vehicles(veh.F, veh.I, n, self.signals.lane_state, self.net.lane_link,
                                   dt, drv.amber_max_decel_mps2, drv.idm_delta,
                                   STOP_SPEED_MPS, self.out.stops, buf.tail,
                                   buf.order, buf.f, buf.i, buf.is_head,
                                   self.emissions.coef, self.emissions.coast,
                                   drv.emergency_braking_mps2, self.events, *self.rules, t)
        if hits:  # rare
            self._markers(t)
        if ends:
            self._cross(t, np.flatnonzero(veh.F[F_POS, :n] >= veh.F[F_LLEN, :n]))
        self._record(t_next)

    def _changed_lanes(self, changed: int) -> None:
        """Pick the next lane of the vehicles that changed lanes in this step."""
        veh = self.veh
        I = veh.I
        self.n_lane_changes += changed
        counts = np.bincount(I[I_LANE, :veh.n], minlength=self.net.n_lanes)
        for j in np.flatnonzero(I[I_LC, :veh.n]):
            I[I_NEXT, j] = self._next_lane(int(I[I_VID, j]), int(I[I_K, j]), int(I[I_LANE, j]),
                                           counts)

    def _record(self, t_next: float) -> None:
        """Sample queues (every second), keep trajectories, call step hooks."""
        veh = self.veh
        if self.queue_log.due(self.n_steps):
            self.queue_log.sample(veh, self.buf, t_next, self.entry.waiting)
        if self.trajectories is not None:
            self.trajectories.record(veh)
        if self._step_hooks:
            # Views, not copies: hooks read them before the next step and must
            # not modify them (documented on StepView).
            n, F, I = veh.n, veh.F, veh.I
            lane = I[I_LANE, :n]
            view = StepView(t_s=t_next, vid=I[I_VID, :n], link=self.net.lane_link[lane],
                            lane=lane, route_pos=I[I_K, :n], pos_m=F[F_POS, :n],
                            speed_mps=F[F_V, :n], accel_mps2=F[F_ACC, :n])
            for fn in self._step_hooks:
                fn(view)

    def _cross(self, t: float, cross: np.ndarray) -> None:
        """Vehicle columns ``cross`` reached the end of their lane in the step from ``t``."""
        veh, lane_len = self.veh, self.net.lane_length_m
        F, I = veh.F, veh.I
        gone = []
        counts = np.bincount(I[I_LANE, :veh.n], minlength=self.net.n_lanes)
        for j in cross:
            ln = int(I[I_LANE, j])
            tc = _time_at(t, self.dt, lane_len[ln] - F[F_POS_OLD, j], F[F_DX, j])
            if self.net.link_junction[self.net.lane_link[ln]] == NO_INDEX:  # an exit lane
                self.out.exit_s[int(I[I_VID, j])] = tc
                gone.append(j)
                if self.incidents is not None:
                    self.incidents.passed(ln, tc)
            else:
                self._pass_junction(int(j), ln, tc, counts)
        if gone:
            self.out.flush(veh, gone)
            veh.remove(gone)

    def _pass_junction(self, j: int, ln: int, tc: float, counts: np.ndarray) -> None:
        """Column ``j`` crosses the stop line of lane ``ln`` at ``tc`` [s] into its next lane."""
        net, F, I = self.net, self.veh.F, self.veh.I
        vid, k = int(I[I_VID, j]), int(I[I_K, j])
        link = int(net.lane_link[ln])
        self.passages.add(vid=vid, junction=int(net.link_junction[link]), link=link,
                          movement=int(self.arrivals.route_moves[vid, k]), t_s=tc,
                          state=int(self.signals.lane_state[ln]), lane=ln,
                          clearing=bool(I[I_COMMIT, j] == CLEARING))
        move = int(self.arrivals.route_moves[vid, k])
        if net.lane_yield[ln, move] >= 0:
            self.yield_last[ln] = tc
        new_lane = int(I[I_NEXT, j])
        counts[ln] -= 1
        counts[new_lane] += 1
        F[F_POS, j] -= net.lane_length_m[ln]
        F[F_V0, j] = min(net.lane_vmax_mps[new_lane],
                         self.classes.max_speed_list[int(I[I_CLS, j])]) * F[F_FACTOR, j]
        F[F_LLEN, j] = net.lane_length_m[new_lane]
        I[I_LANE, j] = new_lane
        I[I_K, j] = k + 1
        I[I_COMMIT, j] = 0
        I[I_MOVE, j] = self.arrivals.route_moves[vid, k + 1]
        I[I_NEXT, j] = self._next_lane(vid, k + 1, new_lane, counts)
        self._set_marker(j, int(net.lane_link[new_lane]), F[F_POS, j], tc)

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
        """Collect the parts' records (vehicles still inside keep their emissions)."""
        net, veh, out, q = self.net, self.veh, self.out, self.queue_log
        out.flush_all(veh)
        traj = None
        if self.trajectories is not None:
            traj = self.trajectories.columns(self.dt, net.lane_link)
        return SimResult(
            scenario=self.scenario, network=net, controller=self.controller.name,
            seed=self.seed, day=self.day, arrivals=self.arrivals, depart_s=out.depart_s,
            exit_s=out.exit_s, stops=out.stops, stretch_enter_s=out.stretch_enter_s,
            stretch_exit_s=out.stretch_exit_s, passages=self.passages.columns(),
            queue_t_s=q.t_s, queue_lanes=q.lanes, queue_m=q.queue_m, queue_veh=q.queue_veh,
            waiting_outside=q.waiting_outside, entry_link_idx=self.entry.links,
            signal_log=self.signals.log(),
            switches=[s for rt in self.junction_rt for s in rt.switches],
            trajectories=traj, end_s=self._end_s, in_network=veh.n,
            waiting=self.entry.n_waiting,
            monitor_checks=sum(rt.monitor.checks for rt in self.junction_rt),
            red_crossings=self.passages.red_crossings,
            red_clearances=self.passages.red_clearances,
            emergency_brakings=int(self.events[0]), held_back=int(self.events[1]),
            wall_s=wall, n_steps=self.n_steps,
            emissions=self.emissions, co2_mg=out.co2_mg, fuel_mg=out.fuel_mg,
            distance_m=out.distance_m,
            pedestrians=self.pedestrians.columns(net.crossing_ids)
            if self.pedestrians is not None else None)
