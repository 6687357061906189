"""What the engine records during a run.

Per-vehicle outcomes, junction passages, signal changes, queue samples and
trajectories.

Each part grows or fills its own columns and hands them to
:class:`gpssignal.sim.engine.SimResult` at the end of the run.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from gpssignal.model.signals import GREEN, RED_AMBER
from gpssignal.sim.kernel import (
    F_ACC,
    F_CO2,
    F_DIST,
    F_FC,
    F_POS,
    I_LANE,
    I_VID,
    NO_PASSAGE,
    P_CLEARANCES,
    P_COUNT,
    P_DELAY,
    P_FLOAT_ROWS,
    P_INT_ROWS,
    P_JUNCTION,
    P_LANE,
    P_LINK,
    P_MOVE,
    P_REDS,
    P_STATE,
    P_T,
    P_VID,
    SL_SEQ,
    sample_queues,
)
from gpssignal.sim.network import NO_INDEX, CompiledNetwork
from gpssignal.sim.vehicles import VehicleArrays, WorkBuffers

if TYPE_CHECKING:
    from gpssignal.sim.signals import SignalPlayer

__all__ = ["QUEUE_MAX_CLEAR_M", "QUEUE_SAMPLE_S", "QUEUE_SPEED_MPS", "PassageLog",
           "QueueSampler", "SignalState", "TrajectoryLog", "VehicleOutcomes"]

#: A vehicle counts as queued below this speed (5 km/h) [m/s].
QUEUE_SPEED_MPS = 5.0 / 3.6
#: Queues are sampled at this interval [s].
QUEUE_SAMPLE_S = 1.0
#: A queue goes on while the clear distance to the vehicle ahead is at most
#: this (VISSIM's default "max. clear distance" of its queue counters) [m].
QUEUE_MAX_CLEAR_M = 20.0
#: Queue samples allocated beyond the run's nominal length (the first sample
#: and a rounding margin) [samples].
_SPARE_QUEUE_SAMPLES = 2


class VehicleOutcomes:
    """Per vehicle id: times, stops, stretch times, emissions and distance."""

    def __init__(self, n_vehicles: int, n_stretches: int) -> None:
        self.depart_s = np.full(n_vehicles, np.nan)
        self.exit_s = np.full(n_vehicles, np.nan)
        self.stops = np.zeros(n_vehicles, dtype=np.int64)
        self.stretch_enter_s = np.full((n_vehicles, n_stretches), np.nan)
        self.stretch_exit_s = np.full((n_vehicles, n_stretches), np.nan)
        # Emissions and distance, moved here from the kernel's rows when a
        # vehicle leaves (and for those still inside at the end).
        self.co2_mg = np.zeros(n_vehicles)
        self.fuel_mg = np.zeros(n_vehicles)
        self.distance_m = np.zeros(n_vehicles)

    def flush(self, veh: VehicleArrays, columns: list[int] | np.ndarray) -> None:
        """Move the accumulated emissions and distance of vehicle columns to per-id arrays."""
        F, I = veh.F, veh.I
        vid = I[I_VID, columns]
        self.co2_mg[vid] += F[F_CO2, columns]
        self.fuel_mg[vid] += F[F_FC, columns]
        self.distance_m[vid] += F[F_DIST, columns]

    def flush_all(self, veh: VehicleArrays) -> None:
        """Flush every vehicle in the network and zero its rows.

        So a second flush adds nothing.
        """
        self.flush(veh, np.arange(veh.n))
        veh.F[[F_CO2, F_FC, F_DIST], :veh.n] = 0.0


class PassageLog:
    """Junction passages (stop-line crossings), one entry per passage, in columns.

    A passage's control delay is known only when the vehicle reaches the next
    control-delay mark (:class:`~gpssignal.sim.markers.MarkerKind`); until then
    it is NaN and the passage is *open* for that vehicle.

    The columns are preallocated arrays (``capacity`` passages; a run passes
    the most its routes can make, so the compiled crossing loop,
    :func:`~gpssignal.sim.kernel.cross_stop_lines`, writes into them
    directly through :attr:`tables`); :meth:`add` grows them when full.
    """

    def __init__(self, n_vehicles: int, capacity: int = 0) -> None:
        self._i = np.zeros((P_INT_ROWS, capacity), dtype=np.int64)
        self._f = np.zeros((P_FLOAT_ROWS, capacity))
        self._open = np.full(n_vehicles, NO_PASSAGE, dtype=np.int64)
        #: Passages so far, red crossings, red clearances (see the properties).
        self._count = np.zeros(3, dtype=np.int64)

    @property
    def tables(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``(ints, floats, open, counters)`` as the compiled loops take them."""
        return self._i, self._f, self._open, self._count

    def __len__(self) -> int:
        """Return the number of passages recorded."""
        return int(self._count[P_COUNT])

    @property
    def red_crossings(self) -> int:
        """Passages on red or red-amber of vehicles that had not entered the junction (never expected)."""  # noqa: E501
        return int(self._count[P_REDS])

    @property
    def red_clearances(self) -> int:
        """Passages on red of give-way turners that took their gap from their waiting point.

        Inside the junction on a real one: not red crossings.
        """
        return int(self._count[P_CLEARANCES])

    def add(self, *, vid: int, junction: int, link: int, movement: int, t_s: float,
            state: int, lane: int, clearing: bool = False) -> None:
        """Record a passage; it stays open until :meth:`close`.

        ``clearing``: a give-way turner that took its gap from its waiting
        point (the point junction puts that point just behind the stop line).
        """
        p = len(self)
        if p == self._i.shape[1]:
            cap = max(2 * p, 16)
            grown_i = np.zeros((P_INT_ROWS, cap), dtype=np.int64)
            grown_f = np.zeros((P_FLOAT_ROWS, cap))
            grown_i[:, :p], grown_f[:, :p] = self._i[:, :p], self._f[:, :p]
            self._i, self._f = grown_i, grown_f
        if state <= RED_AMBER:
            self._count[P_CLEARANCES if clearing else P_REDS] += 1
        self._i[:, p] = (vid, junction, link, movement, state, lane)
        self._f[:, p] = (t_s, np.nan)
        self._open[vid] = p
        self._count[P_COUNT] = p + 1

    def close(self, vid: int, control_delay_s: float) -> None:
        """Set the control delay of vehicle ``vid``'s open passage, if any."""
        p = self._open[vid]
        if p != NO_PASSAGE:
            self._f[P_DELAY, p] = control_delay_s
            self._open[vid] = NO_PASSAGE

    def columns(self) -> dict[str, np.ndarray]:
        """Return the passages as ``SimResult.passages`` (copies, trimmed to the passages made)."""
        n = len(self)
        i, f = self._i, self._f
        return {"vid": i[P_VID, :n].copy(), "junction": i[P_JUNCTION, :n].copy(),
                "link": i[P_LINK, :n].copy(), "movement": i[P_MOVE, :n].copy(),
                "t_s": f[P_T, :n].copy(), "state": i[P_STATE, :n].copy(),
                "control_delay_s": f[P_DELAY, :n].copy(), "lane": i[P_LANE, :n].copy()}


class SignalState:
    """Signal state per group and per lane, and the log of every change.

    Lanes without a stop line (exit lanes) are always GREEN. The changes
    come from the signal runtimes (:meth:`changed`) and, when a
    :class:`~gpssignal.sim.signals.SignalPlayer` plays the changes within
    each cycle, from the compiled steps; each carries a sequence number in
    the order they were applied.
    """

    def __init__(self, net: CompiledNetwork) -> None:
        self.group_state = np.zeros(net.n_groups, dtype=np.int64)
        self.lane_state = np.full(net.n_lanes, GREEN, dtype=np.int64)
        # Python lists of each group's few lanes: setting them one by one costs
        # less than numpy's indexing with an array, at every signal change.
        self._group_lanes: list[list[int]] = [[] for _ in range(net.n_groups)]
        for lane, g in enumerate(net.lane_group.tolist()):
            if g >= 0:
                self._group_lanes[g].append(lane)
        #: The same as flat arrays (lanes of group g: group_lanes[ptr[g]:ptr[g + 1]]).
        self.group_lane_ptr = np.zeros(net.n_groups + 1, dtype=np.int64)
        self.group_lane_ptr[1:] = np.cumsum([len(x) for x in self._group_lanes])
        self.group_lanes = np.array([lane for x in self._group_lanes for lane in x],
                                    dtype=np.int64)
        #: Each group's junction (index), for the log's order.
        self._group_junction = np.searchsorted(net.group_offset, np.arange(net.n_groups),
                                               side="right") - 1
        #: Counters shared with the compiled steps (``SL_*``): their log entries,
        #: and the next change's sequence number.
        self.log_n = np.zeros(2, dtype=np.int64)
        #: The player of the changes within cycles, if any (it sets itself).
        self.played: SignalPlayer | None = None
        self._t_s: list[float] = []
        self._group: list[int] = []
        self._state: list[int] = []
        self._seq: list[int] = []

    def changed(self, t: float, g: int, state: int) -> None:
        """Group ``g`` changed to ``state`` at ``t`` [s] (the runtime's ``on_change``)."""
        lane_state = self.lane_state
        for lane in self._group_lanes[g]:
            lane_state[lane] = state
        self._t_s.append(t)
        self._group.append(g)
        self._state.append(state)
        n = self.log_n
        self._seq.append(int(n[SL_SEQ]))
        n[SL_SEQ] += 1

    def log(self) -> dict[str, np.ndarray]:
        """Return the changes as ``SimResult.signal_log``.

        In order of time; at one time, junction by junction (in the
        scenario's order), each junction's changes in the order they were
        applied. (The event clock's own order at one time depends on when
        each event was scheduled, which says nothing about the signals.)
        """
        t = np.array(self._t_s, dtype=float)
        g = np.array(self._group, dtype=np.int64)
        s = np.array(self._state, dtype=np.int64)
        seq = np.array(self._seq, dtype=np.int64)
        if self.played is not None:
            pt, pg, ps, pseq = self.played.played()
            t, g, s, seq = (np.concatenate(x) for x in ((t, pt), (g, pg), (s, ps), (seq, pseq)))
        order = np.lexsort((seq, self._group_junction[g], t))
        return {"t_s": t[order], "group": g[order], "state": s[order]}


class QueueSampler:
    """Samples of queues and of vehicles waiting to enter.

    Queue length and count on every approach lane every
    :data:`QUEUE_SAMPLE_S`, and the vehicles waiting outside each entry link.

    Parameters
    ----------
    net : CompiledNetwork
    n_entry : int
        Number of entry links.
    horizon_s : float
        Longest the run can last [s].
    step_s : float
        Vehicle step [s].
    """

    def __init__(self, net: CompiledNetwork, n_entry: int, horizon_s: float,
                 step_s: float) -> None:
        self.lanes = np.flatnonzero(net.lane_group >= 0)
        self.every = max(1, int(round(QUEUE_SAMPLE_S / step_s)))  # [steps]
        self.lane_slot = np.full(net.n_lanes, NO_INDEX, dtype=np.int64)  # not sampled
        self.lane_slot[self.lanes] = np.arange(len(self.lanes))
        n = int(np.ceil(horizon_s / QUEUE_SAMPLE_S)) + _SPARE_QUEUE_SAMPLES
        self.t_buffer = np.full(n, np.nan)
        self.m_buffer = np.zeros((n, len(self.lanes)))
        self.veh_buffer = np.zeros((n, len(self.lanes)), dtype=np.int64)
        self.waiting_buffer = np.zeros((n, n_entry), dtype=np.int64)
        self.k = 0  # samples taken

    def due(self, step: int) -> bool:
        """Whether step number ``step`` (from 0) takes a sample."""
        return step % self.every == 0

    def sample(self, veh: VehicleArrays, buf: WorkBuffers, t_s: float,
               waiting: np.ndarray) -> None:
        """Take one sample at ``t_s`` [s]; ``waiting`` per entry link. Sorts ``veh``."""
        k = self.k
        buf.fit(veh.capacity)
        sample_queues(veh.F, veh.I, veh.n, self.lane_slot, QUEUE_SPEED_MPS, QUEUE_MAX_CLEAR_M,
                      self.m_buffer[k], self.veh_buffer[k], buf.order, buf.f, buf.i)
        self.t_buffer[k] = t_s
        self.waiting_buffer[k] = waiting
        self.k += 1

    @property
    def t_s(self) -> np.ndarray:
        """Sample times [s]."""
        return self.t_buffer[:self.k]

    @property
    def queue_m(self) -> np.ndarray:
        """Queue length per sample and lane [m]."""
        return self.m_buffer[:self.k]

    @property
    def queue_veh(self) -> np.ndarray:
        """Queued vehicles per sample and lane."""
        return self.veh_buffer[:self.k]

    @property
    def waiting_outside(self) -> np.ndarray:
        """Vehicles waiting to enter per sample and entry link."""
        return self.waiting_buffer[:self.k]


class TrajectoryLog:
    """Every vehicle's position, speed and acceleration at every step (ground truth).

    The states are kept in memory, one array per column and block of steps
    (vehicle ids and lane indices as int32 when they fit; single steps are
    gathered in a buffer of ``BUFFER_ROWS`` first), until :meth:`columns`
    joins them column by column, releasing each column's blocks as it goes.
    After :meth:`stream`, they are instead handed to a sink every
    ``STREAM_ROWS`` vehicle-steps or so and not kept: a run that writes its
    trajectories to a file holds one block at a time.
    """

    #: Vehicle-steps handed to a sink at a time after :meth:`stream` (a few MB).
    STREAM_ROWS: ClassVar[int] = 1 << 16
    #: Vehicle-steps :meth:`record` gathers before they become a block.
    BUFFER_ROWS: ClassVar[int] = 1 << 14
    #: Columns held per block (``t_s`` and ``link`` follow from the steps and lanes).
    _KEPT: ClassVar[tuple[str, ...]] = ("vid", "lane", "pos_m", "speed_mps", "accel_mps2")
    _INT32: ClassVar[np.iinfo] = np.iinfo(np.int32)

    def __init__(self) -> None:
        self._blocks: dict[str, list[np.ndarray]] = {k: [] for k in self._KEPT}
        self._counts: list[int] = []   # vehicles after each step held in _blocks
        self._rows = 0                 # vehicle-steps held in _blocks
        self._steps = 0                # steps recorded (held, streamed or joined)
        self._sink: Callable[[dict[str, np.ndarray]], None] | None = None
        self._step_s = 0.0
        self._lane_link = np.empty(0, dtype=np.int64)
        self._joined: dict[str, np.ndarray] | None = None
        # record()'s buffer: columns used, and the vehicles after each of its steps.
        self._buf_f = np.empty((3, 0))
        self._buf_i = np.empty((2, 0), dtype=np.int64)
        self._buf_rows = 0
        self._buf_counts: list[int] = []

    def stream(self, sink: Callable[[dict[str, np.ndarray]], None], step_s: float,
               lane_link: np.ndarray) -> None:
        """Hand the states to ``sink`` from now on instead of keeping them.

        ``sink`` is called with blocks of consecutive steps, in order, as
        columns like those of :meth:`columns` (arrays the sink may keep);
        :meth:`columns` hands over the last block and returns no rows.

        Parameters
        ----------
        sink : callable
            Called with each block's columns.
        step_s : float
            The step [s] (the time of step ``k`` from 1 is ``k * step_s``).
        lane_link : numpy.ndarray
            The link of each lane index.
        """
        if self._steps or self._buf_counts:
            raise RuntimeError("TrajectoryLog.stream: call it before the first step is recorded")
        self._sink, self._step_s, self._lane_link = sink, step_s, lane_link

    def record(self, veh: VehicleArrays) -> None:
        """Keep the state after a step."""
        n = veh.n
        k = self._buf_rows
        if k + n > self._buf_f.shape[1]:
            self._flush_buffer()
            k = 0
            if n > self._buf_f.shape[1]:
                self._buf_f = np.empty((3, max(n, self.BUFFER_ROWS)))
                self._buf_i = np.empty((2, max(n, self.BUFFER_ROWS)), dtype=np.int64)
        # Rows F_POS, F_V, F_ACC and I_VID, I_LANE are contiguous (see kernel.py).
        self._buf_f[:, k:k + n] = veh.F[F_POS:F_ACC + 1, :n]
        self._buf_i[:, k:k + n] = veh.I[I_VID:I_LANE + 1, :n]
        self._buf_rows = k + n
        self._buf_counts.append(n)

    def record_block(self, f: np.ndarray, i: np.ndarray, counts: np.ndarray) -> None:
        """Keep the states after several steps at once.

        ``f`` rows position, speed, acceleration and ``i`` rows vehicle id,
        lane, one column per vehicle and step, steps in order; ``counts[s]``
        the vehicles after step ``s`` (``counts.sum()`` columns in all).
        """
        self._flush_buffer()
        self._add(f, i, counts.tolist())

    def _flush_buffer(self) -> None:
        """Turn the steps gathered by :meth:`record` into a block."""
        if self._buf_counts:
            counts, self._buf_counts = self._buf_counts, []
            k, self._buf_rows = self._buf_rows, 0
            self._add(self._buf_f[:, :k], self._buf_i[:, :k], counts)

    def _add(self, f: np.ndarray, i: np.ndarray, counts: list[int]) -> None:
        """Copy a block (the caller reuses ``f`` and ``i``) into the held blocks."""
        b = self._blocks
        for k, name in enumerate(("pos_m", "speed_mps", "accel_mps2")):
            b[name].append(f[k].copy())
        for k, name in enumerate(("vid", "lane")):
            b[name].append(self._compact(i[k]))
        self._counts.extend(counts)
        self._rows += f.shape[1]
        self._steps += len(counts)
        if self._sink is not None and self._rows >= self.STREAM_ROWS:
            self._sink(self._join(self._step_s, self._lane_link))

    @classmethod
    def _compact(cls, a: np.ndarray) -> np.ndarray:
        """Return a copy of ``a`` (integers) as int32 if every value fits, else as it is."""
        if a.size and (a.min() < cls._INT32.min or a.max() > cls._INT32.max):
            return a.copy()
        return a.astype(np.int32)

    def _join(self, step_s: float, lane_link: np.ndarray) -> dict[str, np.ndarray]:
        """Return the held blocks as columns and release them."""
        first = self._steps - len(self._counts)   # steps before the held ones
        steps_t = np.arange(first + 1, self._steps + 1) * step_s
        cols = {"t_s": np.repeat(steps_t, self._counts)}
        self._counts, self._rows = [], 0
        for name in self._KEPT:
            # One column at a time, its blocks released as soon as it is joined.
            parts = self._blocks[name]
            self._blocks[name] = []
            dtype = np.int64 if name in ("vid", "lane") else float
            cols[name] = (parts[0].astype(dtype, copy=False) if len(parts) == 1
                          else np.concatenate(parts, dtype=dtype) if parts
                          else np.empty(0, dtype=dtype))
            del parts
        cols["link"] = lane_link[cols["lane"]]
        return {k: cols[k] for k in ("t_s", "vid", "link", "lane", "pos_m", "speed_mps",
                                     "accel_mps2")}

    def columns(self, step_s: float, lane_link: np.ndarray) -> dict[str, np.ndarray]:
        """Return the trajectories as ``SimResult.trajectories``.

        After :meth:`stream`, the last block goes to the sink and the
        columns returned have no rows.
        """
        self._flush_buffer()
        if self._sink is not None:
            if self._rows:
                self._sink(self._join(step_s, lane_link))
            return self._join(step_s, lane_link)
        if self._joined is None:
            self._joined = self._join(step_s, lane_link)
        return self._joined
