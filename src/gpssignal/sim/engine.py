"""The discrete-event simulator: SimPy owns the clock, numpy moves the vehicles.

Events (SimPy processes): the synchronisation points of every junction's
signals (and, where the compiled steps cannot play them, every state
change: :class:`~gpssignal.sim.signals.SignalPlayer`), the vehicle step
every ``step_s``, and any process a controller registers.
Steps with no other event between them run back to back, without waking the
event queue, in one compiled call (:func:`~gpssignal.sim.kernel.run_steps`):
the signal changes due are applied, vehicles reach the network boundary in
bulk (their times are known in advance), enter, pedestrians and incident
gates step, the vehicles step,
queues are sampled and the vehicles' states buffered for the trajectories
and the step hooks (such as the probe sampler), which Python calls on those
steps, in order, before the clock's next event. With a step clock that is
not a binary fraction the same steps run one per iteration in Python, with
the same results. The vehicle step is a compiled kernel over all vehicles
(structure of arrays):

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

What happens between two car-following steps (markers passed, stop-line
crossings, exits, the lane a vehicle takes next) runs in compiled loops over
the same arrays (:mod:`~gpssignal.sim.kernel`); no part of a step scans
all vehicles for each vehicle or sorts them from scratch, so a step costs in
proportion to the vehicles in the network.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
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
    F_ACC,
    F_POS,
    F_V,
    I_K,
    I_LANE,
    I_VID,
    RS_ARRIVED,
    RS_FIELDS,
    RS_FINISHED,
    RS_LANE_CHANGES,
    RS_N,
    RS_NEED_LOG,
    RS_NEED_ROOM,
    RS_QUEUE_K,
    RS_STATUS,
    RS_STEPS,
    RS_TRAJ_COLS,
    RS_TRAJ_STEPS,
    RS_WAITING,
    TransferTables,
    advance,
    insert_waiting,
    lane_rules,
    run_steps,
)
from gpssignal.sim.markers import CONTROL_DELAY_MARK_M, Markers
from gpssignal.sim.network import CompiledNetwork, compile_network
from gpssignal.sim.pedestrians import Pedestrians, empty_state
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
from gpssignal.sim.signals import JunctionSignals, ProgramSwitch, SignalPlayer, no_player
from gpssignal.sim.vehicles import VehicleArrays, VehicleClasses, WorkBuffers

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
#: Back-to-back steps need a step of a whole number of these fractions of a
#: second (a power of two), and a run shorter than :data:`_EXACT_CLOCK_S`, so
#: that sums of steps are exact (:func:`_exact_clock`).
_EXACT_DT_DENOMINATOR = 2**10
_EXACT_CLOCK_S = 2.0**30
#: Columns of the trajectory buffer the compiled steps fill before the
#: engine hands it to the trajectory log: at least this many, and at least
#: a few times the vehicle arrays' capacity [vehicle-steps].
_TRAJ_BUFFER_COLUMNS = 1 << 16
_TRAJ_BUFFER_CAPACITIES = 4
#: No limit on the steps of one compiled call (they stop at the next event).
_UNLIMITED_STEPS = 1 << 62
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


def _exact_clock(dt: float, end_s: float) -> bool:
    """Tell whether every step time ``k dt`` up to ``end_s`` is exact in floating point.

    Then a run of steps can skip the event queue and one timeout brings the
    clock exactly to the next step (``now + (t - now) == t``): ``dt`` a
    binary fraction (0.5 s, 0.25 s, 1 s, not 0.1 s) and the times far below
    2⁵³ of its units.
    """
    frac = Fraction(dt)
    return (frac.denominator & (frac.denominator - 1)) == 0 and \
        frac.denominator <= _EXACT_DT_DENOMINATOR and end_s + dt < _EXACT_CLOCK_S


def _arrival_schedule(t_s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return when each arrival happens on the event clock, and when its timeout was scheduled.

    Arrivals are applied in bulk at each step (:meth:`Simulation._admit`),
    at the times a process waiting ``t_s[i] - now`` from one arrival to the
    next would have had them (the clock adds each wait to the time it was
    scheduled at, which can round differently from ``t_s[i]``). The second
    array is NaN where the arrival needs no wait (it comes with the one
    before); it orders an arrival due at the very time of a step.
    """
    tau = np.empty(len(t_s))
    sched = np.full(len(t_s), np.nan)
    now = 0.0
    for i, ti in enumerate(t_s.tolist()):
        wait = ti - now
        if wait > 0:
            sched[i] = now
            now = now + wait
        tau[i] = now
    return tau, sched


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

    #: Run the steps compiled where the clock allows (tests turn it off to
    #: compare the two step loops).
    use_compiled_steps = True
    #: Let the compiled steps play the signal changes within each cycle where
    #: they can (tests turn it off to compare with the runtimes' own events).
    play_signals = True

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
        self._block_hooks: list[Callable[..., None]] = []
        #: Every hook in the order added: (True, step hook) or (False, block hook).
        self._hooks: list[tuple[bool, Callable[..., None]]] = []
        self._build()

    # -- public hooks -----------------------------------------------------
    def add_step_hook(self, fn: Callable[[StepView], None]) -> None:
        """Call ``fn(view)`` after every vehicle step."""
        self._step_hooks.append(fn)
        self._hooks.append((True, fn))

    def add_block_hook(self, fn: Callable[..., None]) -> None:
        """Call ``fn`` on blocks of steps, in order, each before the clock's next event.

        ``fn(t_s, counts, vid, link, lane, route_pos, pos_m, speed_mps)``:
        each step's end time [s] and number of vehicles, then the steps'
        vehicles one step after the other (``counts.sum()`` rows, as
        :class:`StepView`'s arrays; views valid during the call, read only).
        What a step hook sees, without a Python call per step. With step
        hooks too, every hook sees each step in the order the hooks were
        added (the blocks are then single steps).
        """
        self._block_hooks.append(fn)
        self._hooks.append((False, fn))

    @property
    def _hooked(self) -> bool:
        """Whether any step or block hook watches the steps."""
        return bool(self._step_hooks or self._block_hooks)

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
        # Room for every passage the day's routes can make (one per junction).
        self.passages = PassageLog(n_total, len(self.arrivals.route_link) - n_total)
        arr = self.arrivals
        self.tables = TransferTables.build(net, arr.route_ptr, arr.route_link, arr.route_move,
                                           self.markers, self.classes.max_speed_list)
        out = self.out
        #: Per-vehicle records the compiled transfers write (see
        #: :func:`~gpssignal.sim.kernel.cross_stop_lines`).
        self._outcomes = (out.exit_s, out.co2_mg, out.fuel_mg, out.distance_m,
                          out.stretch_enter_s, out.stretch_exit_s)
        #: Per vehicle id (arrival, class, speed factor), per link (speed
        #: limit) and the routes' entry movements, for the compiled insertion.
        self._arrival_tables = (arr.t_s, arr.vehicle_class.astype(np.int64), arr.speed_factor,
                                net.link_vmax_mps.astype(float), arr.route_ptr, arr.route_move)
        cls = self.classes
        self._class_tables = tuple(np.array(x, dtype=float) for x in (
            cls.length_m, cls.max_accel_mps2, cls.decel_mps2, cls.headway_list,
            cls.min_gap_list, cls.inv_two_sqrt_ab_list, cls.emergency_decel_list,
            cls.max_speed_list))
        drv = sc.driver
        #: The driver parameters as the compiled step takes them (see
        #: :func:`~gpssignal.sim.kernel.advance`).
        self._driver = (drv.amber_max_decel_mps2, drv.idm_delta, STOP_SPEED_MPS,
                        drv.emergency_braking_mps2, drv.lc_safe_decel_mps2,
                        drv.lc_discretionary, drv.lc_politeness, drv.lc_threshold_mps2)
        self.queue_log = QueueSampler(net, len(self.entry.links), sc.duration_s + sc.drain_s,
                                      sc.step_s)
        self.trajectories = TrajectoryLog() if self.record_trajectories else None
        self.incidents = IncidentGates(self.day.incidents, net) if self.day.incidents else None
        self.junction_rt = [
            JunctionSignals(junction=j, group_base=int(net.group_offset[ji]),
                            group_state=self.signals.group_state, on_change=self.signals.changed,
                            request=self.controller.requested_program,
                            start_clock_s=sc.start_clock_s,
                            clock_only=bool(getattr(self.controller, "clock_only", False)),
                            horizon_s=sc.duration_s + sc.drain_s)
            for ji, j in enumerate(sc.junctions)]
        self.n_steps = 0
        #: Vehicles that have reached the network boundary so far (platoons
        #: from an upstream signal may arrive after the demand period).
        self.n_arrived = 0
        #: When each vehicle arrives as the event clock sees it, and when the
        #: event that brings it was scheduled (see :func:`_arrival_schedule`).
        self._arrive_t, self._arrive_sched = _arrival_schedule(self.arrivals.t_s)
        #: The times of the steps so far [s].
        self._step_t: list[float] = []
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
        tb = self.tables
        #: The arguments of the compiled step after the vehicles, the time and
        #: the work buffers (:func:`~gpssignal.sim.kernel.advance`), fixed for the run.
        self._step_args = (self.lane_changes, self._driver, self.signals.lane_state,
                           net.lane_link, self.out.stops, self.events, self.emissions.coef,
                           self.emissions.coast, self.rules, tb.net, tb.routes, tb.markers,
                           self._outcomes, self.passages.tables, self.yield_last)
        self._work: tuple[np.ndarray, ...] = ()
        #: The give-way rules whose vehicles yield to pedestrians, and their crossings.
        self._ped_rules = np.flatnonzero(net.yield_crossing >= 0)
        self._ped_rule_crossing = net.yield_crossing[self._ped_rules]
        #: Whether the steps run compiled, many per call (:meth:`_compiled_steps`):
        #: with an exact step clock (:func:`_exact_clock`). Otherwise one step
        #: at a time in Python (:meth:`_python_steps`), with the same results.
        self.compiled_steps = self.use_compiled_steps and \
            _exact_clock(self.dt, sc.duration_s + sc.drain_s)
        #: The compiled steps play the signal changes within each cycle (the
        #: runtimes wake at the synchronisation points only) where they play
        #: them as the runtimes would (:meth:`SignalPlayer.fits`).
        self.player: SignalPlayer | None = None
        if self.compiled_steps and self.play_signals and SignalPlayer.fits(self.junction_rt,
                                                                           self.dt):
            self.player = SignalPlayer(self.junction_rt, self.signals)
            for ji, rt in enumerate(self.junction_rt):
                rt.play(self.player, ji)

    # -- processes ----------------------------------------------------------
    def _admit(self, now: float) -> None:
        """Vehicles reach the network boundary: those due by the step at ``now``, in bulk.

        A vehicle arrives at its arrival time, before the step at that time
        (see :func:`_arrival_schedule` for an arrival at the very time of a step).
        """
        k = len(self._step_t)
        self._step_t.append(now)
        tau = self._arrive_t
        i0 = self.n_arrived
        i = int(np.searchsorted(tau, now, side="left"))
        while i < len(tau) and tau[i] == now and self._arrives_first(i, k):
            i += 1
        if i > i0:
            self.entry.arrive_many(i0, i)
            self.n_arrived = i

    def _arrives_first(self, i: int, k: int, step_t: Any = None) -> bool:
        """Whether arrival ``i``, due exactly at step ``k``'s time, comes before that step.

        As the event queue orders them: the arrival is first if the timeout
        that brings it was scheduled before the step's (at the step before);
        scheduled at that same time, as the events that scheduled them were
        ordered. At time 0 the arrivals come first (their process starts first).
        """
        while k > 0:
            j = i
            while np.isnan(self._arrive_sched[j]):   # arrived with the one before
                j -= 1
            sched = self._arrive_sched[j]
            prev = self._step_t[k - 1] if step_t is None else step_t[k - 1]
            if sched != prev:
                return bool(sched < prev)
            i, k = j - 1, k - 1
        return True

    def _step_process(self, env: simpy.Environment, end_s: float,
                      progress: Callable[[float], None] | None) -> Any:
        """Step the vehicles every ``dt`` until the end of the run (or an empty network after it).

        Steps with no other event before the next one run back to back
        without going through the event queue (see :func:`_exact_clock`):
        the step times, and the order of every event, are those of one
        timeout per step.
        """
        if self.compiled_steps:
            return self._compiled_steps(env, end_s, progress)
        return self._python_steps(env, end_s, progress)

    def _python_steps(self, env: simpy.Environment, end_s: float,
                      progress: Callable[[float], None] | None) -> Any:
        """Run the step loop in Python, one step per iteration (any step clock)."""
        dt = self.dt
        every = max(1, int(PROGRESS_EVERY_S / dt))
        back_to_back = _exact_clock(dt, end_s)
        t = env.now
        while t < end_s - _END_TOL_S:
            self._admit(t)
            self._insert(t)
            if self.incidents is not None:
                self.incidents.update(t, self.signals.lane_state)
            self._advance(t)
            self.n_steps += 1
            if progress is not None and self.n_steps % every == 0:
                progress(min(1.0, (t + dt) / end_s))
            if (t >= self.scenario.duration_s and self.veh.n == 0
                    and self.entry.n_waiting == 0 and self.n_arrived == len(self.arrivals)
                    and (self.pedestrians is None or self.pedestrians.done())):
                break
            t_next = t + dt
            if back_to_back and not self._hooked and env.peek() > t_next:
                t = t_next   # nothing else happens before the next step
                continue
            yield env.timeout(dt if env.now == t else t_next - env.now)
            t = env.now
        self._end_s = t

    def _compiled_steps(self, env: simpy.Environment, end_s: float,
                        progress: Callable[[float], None] | None) -> Any:
        """Run the steps compiled, as many per call as come before the clock's next event.

        The same steps, in the same order with the events, as
        :meth:`_python_steps`; Python wakes for the progress callback and the
        clock's other events, and calls the step hooks on the steps since the
        last wake, in order, before the next event.
        """
        dt = self.dt
        every = max(1, int(PROGRESS_EVERY_S / dt))
        self._prepare_compiled(end_s)
        st = self._st
        hooks = self._hooked
        t = env.now
        while t < end_s - _END_TOL_S:
            max_steps = _UNLIMITED_STEPS
            if progress is not None:
                max_steps = min(max_steps, every - self.n_steps % every)
            t = self._run_compiled(t, max_steps, env.peek())
            if self.player is not None:
                self.player.observe_played()
            if hooks:
                # The hooks see every step before the clock's next event: they
                # only read (StepView), so they can follow the steps in a batch.
                self._drain_buffer()
            if progress is not None and self.n_steps % every == 0:
                progress(min(1.0, (t + dt) / end_s))
            if st[RS_STATUS] == RS_FINISHED:
                break
            t_next = t + dt
            if env.peek() > t_next:
                t = t_next   # nothing else happens before the next step
                continue
            yield env.timeout(dt if env.now == t else t_next - env.now)
            t = env.now
        self._end_s = t
        self._sync_counters()
        self._drain_buffer()

    def _prepare_compiled(self, end_s: float) -> None:
        """Set up what the compiled steps read and write (:func:`.kernel.run_steps`)."""
        dt = self.dt
        n_max_steps = int(np.ceil(end_s / dt)) + 2
        # Vehicles arrived by each step: at step k (at k dt, exactly) those due
        # before it, and those due at its very time that come first.
        step_t = np.arange(n_max_steps) * dt
        tau = self._arrive_t
        upto = np.searchsorted(tau, step_t, side="left")
        for k in np.flatnonzero((upto < len(tau)) & (tau[np.minimum(upto, len(tau) - 1)]
                                                     == step_t)).tolist() if len(tau) else []:
            i = int(upto[k])
            while i < len(tau) and tau[i] == step_t[k] and self._arrives_first(i, k, step_t):
                i += 1
            upto[k] = i
        self._admit_upto = upto.astype(np.int64)
        st = np.zeros(RS_FIELDS, dtype=np.int64)
        st[RS_N], st[RS_ARRIVED], st[RS_WAITING] = self.veh.n, self.n_arrived, \
            self.entry.n_waiting
        st[RS_STEPS], st[RS_QUEUE_K] = self.n_steps, self.queue_log.k
        self._st = st
        out, q = self.out, self.queue_log
        self._insert_args = (STOP_SPEED_MPS, self.entry.tables, out.depart_s,
                             self._arrival_tables, self._class_tables, out.stretch_enter_s,
                             out.stretch_exit_s)
        self._queue_args = (q.lane_slot, q.every, QUEUE_SPEED_MPS, QUEUE_MAX_CLEAR_M,
                            q.t_buffer, q.m_buffer, q.veh_buffer, q.waiting_buffer)
        self._traj_buffers(self.veh.capacity)
        buf = self.buf
        buf.fit(self.veh.capacity)
        self._work = (buf.tail, buf.order, buf.f, buf.i, buf.is_head, buf.counts)
        if self.incidents is not None:
            self._gates = self.incidents.tables
        else:
            i0, f0 = np.zeros(0, dtype=np.int64), np.zeros(0)
            self._gates = (i0, f0, f0, f0, f0, np.full(self.net.n_lanes, -1, dtype=np.int64))
        self._end_run_s = end_s - _END_TOL_S
        self._ped_args: tuple[Any, ...]
        if self.pedestrians is not None:
            self._ped_args = (self.pedestrians.state, self.signals.group_state)
        else:
            self._ped_args = (empty_state(), self.signals.group_state)
        self._player_args = self.player.tables if self.player is not None else no_player()
        self._fixed_args()

    def _fixed_args(self) -> None:
        """Collect the arguments of the compiled steps that stay the same from call to call."""
        self._steps_code: Callable[..., float] | None = None   # looked up at the next call
        self._rs_fixed = (self._st, self.dt, float(self.scenario.duration_s), self._end_run_s,
                          self._admit_upto, self.entry.vehicle_slot, len(self.arrivals),
                          self._step_args, self._insert_args, *self._ped_args, self._ped_rules,
                          self._ped_rule_crossing, self._gates, self._queue_args,
                          self._traj_args, self._player_args)

    def _traj_buffers(self, capacity: int) -> None:
        """(Re)allocate the buffer of the vehicles' states after each step.

        Filled when trajectories are recorded or step hooks watch the run
        (:meth:`_drain_buffer` empties it), for vehicle arrays of ``capacity``.
        """
        if self.trajectories is None and not self._hooked:
            self._traj_args = (False, np.empty((3, 0)), np.empty((3, 0), dtype=np.int64),
                               np.empty(0, dtype=np.int64), np.empty(0))
            return
        cols = max(_TRAJ_BUFFER_COLUMNS, _TRAJ_BUFFER_CAPACITIES * capacity)
        steps = max(1, cols // _TRAJ_BUFFER_CAPACITIES)
        self._traj_args = (True, np.empty((3, cols)), np.empty((3, cols), dtype=np.int64),
                           np.empty(steps, dtype=np.int64), np.empty(steps))

    def _drain_buffer(self) -> None:
        """Call the step hooks on the buffered steps, in order, and keep their trajectories."""
        st = self._st
        steps = int(st[RS_TRAJ_STEPS])
        if steps == 0:
            return
        _, f, i, counts, times = self._traj_args
        cols = int(st[RS_TRAJ_COLS])
        if self._step_hooks:
            lane_link = self.net.lane_link
            c0 = 0
            for n, t_s in zip(counts[:steps].tolist(), times[:steps].tolist(), strict=True):
                c1 = c0 + n
                lane = i[1, c0:c1]
                # Views of the buffer, valid during the call (documented on StepView).
                view = StepView(t_s=t_s, vid=i[0, c0:c1], link=lane_link[lane], lane=lane,
                                route_pos=i[2, c0:c1], pos_m=f[0, c0:c1],
                                speed_mps=f[1, c0:c1], accel_mps2=f[2, c0:c1])
                self._call_in_order(view)
                c0 = c1
        elif self._block_hooks:
            lane = i[1, :cols]
            block = (times[:steps], counts[:steps], i[0, :cols], self.net.lane_link[lane], lane,
                     i[2, :cols], f[0, :cols], f[1, :cols])
            for fb in self._block_hooks:
                fb(*block)
        if self.trajectories is not None:
            self.trajectories.record_block(f[:, :cols], i[:2, :cols], counts[:steps])
        st[RS_TRAJ_COLS] = st[RS_TRAJ_STEPS] = 0

    def _run_compiled(self, t: float, max_steps: int, stop_before: float) -> float:
        """Run steps from ``t`` (:func:`.kernel.run_steps`); return the last one's time.

        Updates the vehicle count and the step count; the other counters are
        copied back from the compiled steps' at the end (:meth:`_sync_counters`).
        """
        st, veh = self._st, self.veh
        last = self._call_steps(t, max_steps, stop_before)
        while st[RS_STATUS] >= RS_NEED_ROOM:   # make room, then go on from the step it stopped at
            done = int(st[RS_STEPS]) - self.n_steps
            if st[RS_STATUS] == RS_NEED_LOG and self.player is not None:   # never without
                self.player.grow_log()
                self._player_args = self.player.tables
                self._fixed_args()
            elif st[RS_STATUS] == RS_NEED_ROOM:
                veh.n = int(st[RS_N])   # grow() keeps the first n columns
                while veh.capacity < st[RS_N] + st[RS_WAITING]:
                    veh.grow()
                buf = self.buf
                buf.fit(veh.capacity)
                self._work = (buf.tail, buf.order, buf.f, buf.i, buf.is_head, buf.counts)
                self._steps_code = None   # new arrays: look their types up again
            else:
                self._drain_buffer()
                if self._traj_args[1].shape[1] < 2 * veh.capacity:
                    self._traj_buffers(veh.capacity)
                    self._fixed_args()
            t_from = t if done == 0 else last + self.dt
            last_run = self._call_steps(t_from, max_steps - done, stop_before)
            if int(st[RS_STEPS]) - self.n_steps > done:
                last = last_run
        veh.n = int(st[RS_N])
        self.n_steps = int(st[RS_STEPS])
        return last

    def _call_steps(self, t: float, max_steps: int, stop_before: float) -> float:
        """Call :func:`.kernel.run_steps`, ahead-of-time code when built (``gpssignal._compiled``).

        The code for the arguments' types is looked up at the first call and
        again whenever arrays are replaced (they grow), not at every call:
        looking them up costs more than a call, and code compiled ahead of
        time reads arrays of other types wrongly instead of refusing them.
        """
        args = (float(t), int(max_steps), float(stop_before), self.veh.F, self.veh.I,
                self._work, *self._rs_fixed)
        if self._steps_code is None:
            self._steps_code = run_steps.resolve(*args)
        return float(self._steps_code(*args))

    def _sync_counters(self) -> None:
        """Copy the compiled steps' counters to the parts of the engine."""
        st = self._st
        self.veh.n = int(st[RS_N])
        self.n_steps = int(st[RS_STEPS])
        self.n_arrived = int(st[RS_ARRIVED])
        self.entry.n_waiting = int(st[RS_WAITING])
        self.queue_log.k = int(st[RS_QUEUE_K])
        self.n_lane_changes = int(st[RS_LANE_CHANGES])

    # -- entering the network and the vehicle step ---------------------------
    def _insert(self, t: float) -> None:
        """Let waiting vehicles enter their entry links, first come first served.

        See :func:`~gpssignal.sim.kernel.insert_waiting` (which vehicle
        enters where and how fast, and :meth:`Simulation` for the rule).
        """
        entry, veh = self.entry, self.veh
        if not entry.n_waiting:
            return
        while veh.capacity < veh.n + entry.n_waiting:
            veh.grow()
        tb, out = self.tables, self.out
        n = insert_waiting(veh.F, veh.I, veh.n, t, self.dt, STOP_SPEED_MPS, self.buf.tail,
                           self.buf.counts, entry.tables, out.depart_s, tb.net, tb.routes,
                           self._arrival_tables, self._class_tables, tb.markers,
                           out.stretch_enter_s, out.stretch_exit_s, self.passages.tables)
        entry.entered(n - veh.n)
        veh.n = n

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
        buf = self.buf
        buf.fit(veh.capacity)
        if not self._work or self._work[2] is not buf.f:   # the buffers were reallocated
            self._work = (buf.tail, buf.order, buf.f, buf.i, buf.is_head, buf.counts)
        veh.n, n_exits, changed = advance(veh.F, veh.I, n, t, dt, self._work, *self._step_args)
        self.n_lane_changes += changed
        if n_exits and self.incidents is not None:
            for q in range(n_exits):
                self.incidents.passed(int(buf.i[q]), float(buf.f[q]))
        self._record(t_next)

    def _record(self, t_next: float) -> None:
        """Sample queues (every second), keep trajectories, call step hooks."""
        veh = self.veh
        if self.queue_log.due(self.n_steps):
            self.queue_log.sample(veh, self.buf, t_next, self.entry.waiting)
        if self.trajectories is not None:
            self.trajectories.record(veh)
        if self._hooked:
            self._call_hooks(t_next)

    def _call_hooks(self, t_next: float) -> None:
        """Call the hooks with the vehicles after the step that ends at ``t_next``."""
        # Views, not copies: hooks read them before the next step and must
        # not modify them (documented on StepView).
        n, F, I = self.veh.n, self.veh.F, self.veh.I
        lane = I[I_LANE, :n]
        view = StepView(t_s=t_next, vid=I[I_VID, :n], link=self.net.lane_link[lane],
                        lane=lane, route_pos=I[I_K, :n], pos_m=F[F_POS, :n],
                        speed_mps=F[F_V, :n], accel_mps2=F[F_ACC, :n])
        self._call_in_order(view)

    def _call_in_order(self, view: StepView) -> None:
        """Call every hook on one step, in the order the hooks were added."""
        block = None
        for is_step, fn in self._hooks:
            if is_step:
                fn(view)
                continue
            if block is None:
                block = (np.array([view.t_s]), np.array([len(view.vid)], dtype=np.int64),
                         view.vid, view.link, view.lane, view.route_pos, view.pos_m,
                         view.speed_mps)
            fn(*block)

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
