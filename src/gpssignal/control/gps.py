"""The GPS speed-threshold controller: model, run-time path, simulator adapter, replay.

The run-time path works on batches of points and on all junctions at once:

1. **Match.** Each point is matched to a monitored stretch
   (:mod:`gpssignal.control.matching`). Points off every stretch are
   discarded and counted.
2. **Aggregate.** Per stretch, the points sent within the last
   ``window_s`` are aggregated into a count, a mean speed and a harmonic-mean
   speed. GPS points are samples in time, so a slow vehicle yields more
   points on a stretch. Their arithmetic mean speed therefore estimates the
   space-mean speed (length ÷ mean travel time), and the controller
   thresholds it. The harmonic mean is reported alongside. A window with
   fewer than ``min_points`` points carries no information: it is never
   "slow".
3. **Threshold, with hysteresis.** A junction switches to its relief program
   when any informative stretch of it has a mean below ``threshold_low``.
   It switches back when every informative stretch is above
   ``threshold_high``. Either change needs ``min_dwell_s`` since the last
   change.
4. **Decide.** This happens every ``decision_interval_s`` of UTC time, on a
   grid of epoch multiples, so the in-simulation path and an offline replay
   decide at the same instants. The signal runtime applies a decision at the
   junction's next synchronisation point (the safe transition of
   :mod:`gpssignal.model.signals`).
5. **Fail-safe.** A junction that has had matched points, but none for
   ``stale_after_s``, returns to its default program at once. The event is
   logged and counted.

Times are whole milliseconds since the Unix epoch (UTC) throughout. The
simulation rounds its probe times to milliseconds, as a file does, so both
paths see identical numbers.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from gpssignal._compiled import Resolved, njit
from gpssignal.control.matching import StretchIndex, build_index, index_arrays, match_append
from gpssignal.errors import ModelError, ScenarioError
from gpssignal.model.geo import LocalProjection, link_geometry
from gpssignal.model.scenario import Scenario
from gpssignal.sim.controller import decision_timeout

if TYPE_CHECKING:
    import simpy

    from gpssignal.probes.sampler import ProbeFeed
    from gpssignal.sim.engine import Simulation

__all__ = [
    "DECISION_COLUMNS",
    "GpsController",
    "GpsModel",
    "GpsRuntime",
    "JunctionModel",
    "StretchModel",
    "model_from_scenario",
    "replay",
    "stretch_polylines",
]

log = logging.getLogger(__name__)

#: Columns of a decision log.
DECISION_COLUMNS = ("t_ms", "junction", "from_program", "to_program", "reason",
                    "stretch", "mean_kmh", "points")


@dataclass(frozen=True, slots=True, kw_only=True)
class StretchModel:
    """A monitored stretch as the controller knows it (no scenario needed).

    ``polyline_deg`` is a list of ``[lat, lon]`` points in driving order;
    speeds are km/h.
    """

    id: str
    junction: str
    polyline_deg: list[list[float]]
    length_m: float
    speed_limit_kmh: float
    free_flow_kmh: float
    threshold_low_kmh: float
    threshold_high_kmh: float
    profile_kmh: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        """Check the thresholds; raise :class:`~gpssignal.errors.ModelError` if bad."""
        if not self.threshold_high_kmh >= self.threshold_low_kmh > 0:
            raise ModelError(f"stretch[{self.id}].threshold_high_kmh = "
                                f"{self.threshold_high_kmh}: must be >= threshold_low_kmh "
                                f"= {self.threshold_low_kmh} > 0")


@dataclass(frozen=True, slots=True, kw_only=True)
class JunctionModel:
    """A GPS-controlled junction: its programs and monitored stretches."""

    id: str
    default_program: str
    relief_program: str
    stretches: list[str]


@dataclass(frozen=True, slots=True, kw_only=True)
class GpsModel:
    """Everything the run-time path needs, plus the model's provenance.

    Parameters
    ----------
    projection_deg : (lat, lon)
        Origin of the local frame used for matching.
    junctions, stretches
        The controlled junctions and their monitored stretches.
    window_s : float
        Aggregation window [s].
    min_points : int
        Fewest points for a window to carry information [-].
    min_dwell_s : float
        Shortest time between two program decisions of a junction [s].
    stale_after_s : float
        Without matched points this long, a junction falls back to its default
        program [s].
    decision_interval_s : float
        Decisions every this many seconds of UTC time [s]; divides 3600.
    max_distance_m, max_heading_diff_deg : float
        Map-matching tolerances [m], [deg].
    provenance : dict
        Training data identity, search results, seeds, version (free form).
    """

    projection_deg: tuple[float, float]
    junctions: list[JunctionModel]
    stretches: list[StretchModel]
    window_s: float = 300.0
    min_points: int = 3
    min_dwell_s: float = 600.0
    stale_after_s: float = 600.0
    decision_interval_s: float = 10.0
    max_distance_m: float = 20.0
    max_heading_diff_deg: float = 45.0
    provenance: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        """Check the parameters; raise :class:`~gpssignal.errors.ModelError` if bad."""
        for f in ("window_s", "min_dwell_s", "stale_after_s", "decision_interval_s",
                  "max_distance_m", "max_heading_diff_deg"):
            v = getattr(self, f)
            if not (isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0):
                raise ModelError(f"model.{f} = {v!r}: must be a number >= 0")
        if self.window_s <= 0 or self.decision_interval_s <= 0:
            raise ModelError(f"model.window_s = {self.window_s!r}: window and decision "
                                "interval must be > 0")
        if 3600 % self.decision_interval_s:
            raise ModelError(f"model.decision_interval_s = {self.decision_interval_s!r}: "
                                "must divide 3600")
        if (not isinstance(self.min_points, int) or isinstance(self.min_points, bool)
                or self.min_points < 1):
            raise ModelError(f"model.min_points = {self.min_points!r}: must be an "
                                "integer >= 1")
        ids = {s.id for s in self.stretches}
        for j in self.junctions:
            for s in j.stretches:
                if s not in ids:
                    raise ModelError(f"model.junction[{j.id}].stretches = {s!r}: unknown "
                                        "stretch")

    def with_params(self, **changes: Any) -> GpsModel:
        """Return a copy with other parameters.

        Thresholds are per stretch: use ``low_fraction`` and ``hysteresis_kmh``
        to set them all from free-flow speeds.
        """
        low_fraction = changes.pop("low_fraction", None)
        hysteresis = changes.pop("hysteresis_kmh", None)
        stretches = self.stretches
        if low_fraction is not None or hysteresis is not None:
            new = []
            for s in stretches:
                low = s.free_flow_kmh * low_fraction if low_fraction is not None \
                    else s.threshold_low_kmh
                gap = hysteresis if hysteresis is not None else (s.threshold_high_kmh
                                                                 - s.threshold_low_kmh)
                new.append(replace(s, threshold_low_kmh=low, threshold_high_kmh=low + gap))
            stretches = new
        return replace(self, stretches=stretches, **changes)


def stretch_polylines(scenario: Scenario) -> dict[str, tuple[np.ndarray, float]]:
    """Polyline (local x, y [m], along the lanes' middle) and length [m] of each stretch."""
    geo = link_geometry(scenario)
    lane_of_link: dict[int, list[int]] = {}
    for ln, lk in enumerate(geo.lane_link):
        lane_of_link.setdefault(int(lk), []).append(ln)
    out = {}
    ids = [lk.id for lk in scenario.links]
    for st in scenario.stretches:
        pts = []
        total = 0.0
        for k, lid in enumerate(st.links):
            li = ids.index(lid)
            length = float(geo.length_m[li])
            a = st.start_m if k == 0 else 0.0
            b = (st.end_m if st.end_m is not None else length) if k == len(st.links) - 1 \
                else length
            total += b - a
            lanes = lane_of_link[li]
            offset = float(np.mean(geo.lane_offset_m[lanes]))
            start, end = geo.start_xy[li], geo.end_xy[li]
            d = end - start
            u = d / np.hypot(*d)
            right = np.array([u[1], -u[0]])
            for pos in (a, b):
                pts.append(start + d * (pos / length) + right * offset)
        out[st.id] = (np.array(pts), total)
    return out


@njit(nogil=True)
def _window_kernel(buf_s, buf_t, buf_v, length, start_ms, now_ms, count, total, inv):
    """Drop points sent at or before ``start_ms``; sum those sent by ``now_ms``.

    A dropped point's stretch becomes -1 in place (compacting here would
    rewrite the whole buffer whenever its first point leaves the window);
    returns how many of the ``length`` points are dropped, so the caller can
    compact when they are many. Sums run in buffer order, as before.
    """
    dropped = 0
    for i in range(length):
        s = buf_s[i]
        if s < 0:
            dropped += 1
            continue
        t = buf_t[i]
        if t <= start_ms:
            buf_s[i] = -1
            dropped += 1
            continue
        if t <= now_ms:
            v = buf_v[i]
            count[s] += 1
            total[s] += v
            inv[s] += 1.0 / max(v, 0.1)
    return dropped


@njit(nogil=True)
def _window_means(buf_s, buf_t, buf_v, length, start_ms, now_ms, count, total, inv, mean):
    """:func:`_window_kernel` on zeroed sums, then each stretch's mean speed (NaN: no point).

    Writes ``count``, ``total``, ``inv`` and ``mean`` (``total / count``, as
    numpy divides); returns how many of the ``length`` points are dropped.
    """
    count[:] = 0
    total[:] = 0.0
    inv[:] = 0.0
    dropped = _window_kernel(buf_s, buf_t, buf_v, length, start_ms, now_ms, count, total, inv)
    for s in range(count.shape[0]):
        mean[s] = total[s] / count[s] if count[s] > 0 else np.nan
    return dropped


#: Bits of a junction's entry in :func:`_decision_kernel`'s ``action``.
_TO_RELIEF, _TO_DEFAULT, _NEW_STALE = 1, 2, 4


@njit(nogil=True)
def _decision_kernel(buf_s, buf_t, buf_v, length, start_ms, now_ms, count, total, inv, mean,
                     min_points, low, high, by_junction, junction_start, stretch_last_ms,
                     mode, last_change_ms, stale, dwell_ms, stale_after_ms, action):
    """One decision's window (:func:`_window_means`) and each junction's verdict.

    Per junction ``k`` (its stretches ``by_junction[junction_start[k]:
    junction_start[k + 1]]``): a stretch is informative with at least
    ``min_points`` points, slow below ``low`` and fast above ``high``; the
    junction is stale when it has had points but none received for more
    than ``stale_after_ms``. Sets ``action[k]`` to the sum of
    ``_TO_RELIEF`` (default mode, a slow stretch, ``dwell_ms`` since the last
    change, not stale), ``_TO_DEFAULT`` (relief mode and stale, or every
    informative stretch fast after the dwell) and ``_NEW_STALE`` (stale now,
    not at the last decision), and ``stale[k]`` to whether it is stale.
    Returns the number of dropped points and of junctions with an action.
    """
    dropped = _window_means(buf_s, buf_t, buf_v, length, start_ms, now_ms, count, total, inv,
                            mean)
    never_ms = np.iinfo(np.int64).min
    flagged = 0
    for k in range(mode.shape[0]):
        any_slow = False
        n_info = 0
        n_fast = 0
        last_ms = never_ms // 2
        had = False
        for q in range(junction_start[k], junction_start[k + 1]):
            s = by_junction[q]
            if count[s] >= min_points:
                n_info += 1
                if mean[s] < low[s]:
                    any_slow = True
                if mean[s] > high[s]:
                    n_fast += 1
            last_ms = max(last_ms, stretch_last_ms[s])
            had = had or stretch_last_ms[s] > never_ms
        dwell_ok = now_ms - last_change_ms[k] >= dwell_ms
        is_stale = had and now_ms - last_ms > stale_after_ms
        a = 0
        if mode[k] == 0 and any_slow and dwell_ok and not is_stale:
            a += _TO_RELIEF
        if mode[k] == 1 and (is_stale or (n_info > 0 and n_fast == n_info and dwell_ok)):
            a += _TO_DEFAULT
        if is_stale and not stale[k]:
            a += _NEW_STALE
        stale[k] = is_stale
        action[k] = a
        flagged += a != 0
    return dropped, flagged


@njit(nogil=True)
def _compact(buf_s, buf_t, buf_v, length):
    """Move the kept points (stretch >= 0) to the front, in order; return how many."""
    m = 0
    for i in range(length):
        if buf_s[i] >= 0:
            if m != i:
                buf_s[m] = buf_s[i]
                buf_t[m] = buf_t[i]
                buf_v[m] = buf_v[i]
            m += 1
    return m


def _float64(a: np.ndarray) -> np.ndarray:
    """Return ``a`` as a contiguous, writeable, aligned float64 array (one type for kernels)."""
    a = np.ascontiguousarray(a, dtype=np.float64)
    f = a.flags
    return a if f.writeable and f.aligned else a.copy()


def _int64(a: np.ndarray) -> np.ndarray:
    """Return ``a`` as a contiguous, writeable, aligned int64 array."""
    a = np.ascontiguousarray(a, dtype=np.int64)
    f = a.flags
    return a if f.writeable and f.aligned else a.copy()


class GpsRuntime:
    """The stateful run-time path for all junctions of a model.

    ``ingest`` takes points as they are received; ``decide`` runs one
    decision at ``now_ms`` for every junction and returns the changes.
    """

    def __init__(self, model: GpsModel) -> None:
        self.model = model
        self.projection = LocalProjection(*model.projection_deg)
        polys = []
        for s in model.stretches:
            lat = np.array([p[0] for p in s.polyline_deg])
            lon = np.array([p[1] for p in s.polyline_deg])
            x, y = self.projection.to_xy(lat, lon)
            polys.append(np.column_stack([x, y]))
        self.index: StretchIndex = build_index(polys, model.max_distance_m,
                                               model.max_heading_diff_deg)
        jid = {j.id: k for k, j in enumerate(model.junctions)}
        self.n_j = len(model.junctions)
        self.stretch_junction = np.array([jid[s.junction] for s in model.stretches],
                                         dtype=np.int64)
        # Each junction's stretches as a CSR list (ascending within a junction).
        self._by_junction = np.argsort(self.stretch_junction, kind="stable")
        self._junction_start = np.searchsorted(self.stretch_junction[self._by_junction],
                                               np.arange(self.n_j + 1))
        self.low = np.array([s.threshold_low_kmh for s in model.stretches])
        self.high = np.array([s.threshold_high_kmh for s in model.stretches])
        self.programs = [(j.default_program, j.relief_program) for j in model.junctions]
        self.junction_ids = [j.id for j in model.junctions]
        self.stretch_ids = [s.id for s in model.stretches]
        self.keep_windows = False
        self._index_args = index_arrays(self.index)
        proj = self.projection
        self._projection_args = (proj.lat0_deg, proj.lon0_deg, *proj.scale_m_per_deg())
        # The model's times in whole milliseconds, as the decisions compare them.
        self._window_ms = int(round(model.window_s * 1000))
        self._dwell_ms = int(round(model.min_dwell_s * 1000))
        self._stale_after_ms = int(round(model.stale_after_s * 1000))
        # A decision's work arrays (replaced when windows are kept: they go to window_rows).
        k = self.index.n_stretches
        self._sums = (np.zeros(k, dtype=np.int64), np.zeros(k), np.zeros(k), np.zeros(k))
        self._action = np.zeros(self.n_j, dtype=np.int64)
        # The kernels' code for these arrays' types (resolved again when the
        # window buffer is replaced; points are made float64/int64 first).
        self._compact = Resolved(_compact)
        self._match = Resolved(match_append)
        self._decide = Resolved(_decision_kernel)
        self.reset()

    def reset(self) -> None:
        """Forget all points and decisions (a new day); keeps the compiled index."""
        never = np.iinfo(np.int64).min // 2
        self.mode = np.zeros(self.n_j, dtype=np.int64)        # 0 default, 1 relief
        self.last_change_ms = np.full(self.n_j, never, dtype=np.int64)
        # Latest receipt per stretch: the matching pass updates it for the
        # stretch it has just found (one access per point, where a junction's
        # receipt and flag took three); junctions' figures derive from it.
        self.stretch_last_ms = np.full(len(self.stretch_junction), np.iinfo(np.int64).min,
                                       dtype=np.int64)
        self.stale = np.zeros(self.n_j, dtype=bool)
        # The window buffer keeps its capacity from day to day (no page faults
        # while it refills).
        if not hasattr(self, "buf_s"):
            self.buf_s = np.empty(1024, dtype=np.int32)   # stretch; -1: dropped
            self.buf_t = np.empty(1024, dtype=np.int64)
            self.buf_v = np.empty(1024)
        self._len = 0
        self.points_in = 0
        self.points_matched = 0
        self.stale_events = 0
        self.log_rows: list[tuple[Any, ...]] = []
        self.window_rows: list[tuple[int, np.ndarray, np.ndarray, np.ndarray]] = []

    def ingest(self, t_sent_ms: np.ndarray, t_received_ms: np.ndarray, lat_deg: np.ndarray,
               lon_deg: np.ndarray, speed_kmh: np.ndarray, heading_deg: np.ndarray) -> int:
        """Match a batch of received points and keep the matched ones; return how many.

        One compiled pass (:func:`~gpssignal.control.matching.match_append`):
        projection, map matching, appending the matched points to the window
        buffer and noting each stretch's latest receipt.
        """
        n = len(t_sent_ms)
        self.points_in += n
        if n == 0:
            return 0
        if self._len + n > len(self.buf_t):   # make room: drop marked points, then grow
            self._len = self._compact(self.buf_s, self.buf_t, self.buf_v, self._len)
        if self._len + n > len(self.buf_t):
            cap = max(2 * len(self.buf_t), self._len + n)
            self.buf_s = np.resize(self.buf_s, cap)
            self.buf_t = np.resize(self.buf_t, cap)
            self.buf_v = np.resize(self.buf_v, cap)
            self._compact.forget()
            self._match.forget()
            self._decide.forget()
        f64 = _float64
        new_len = self._match(
            f64(lat_deg), f64(lon_deg), f64(heading_deg), _int64(t_sent_ms),
            _int64(t_received_ms), f64(speed_kmh),
            *self._projection_args, *self._index_args,
            self.buf_s, self.buf_t, self.buf_v, self._len, self.stretch_last_ms)
        m = new_len - self._len
        self._len = new_len
        self.points_matched += m
        return m

    @property
    def last_point_ms(self) -> np.ndarray:
        """Per junction: latest receipt of a matched point [ms UTC] (very negative: none)."""
        out = np.full(self.n_j, np.iinfo(np.int64).min // 2, dtype=np.int64)
        np.maximum.at(out, self.stretch_junction, self.stretch_last_ms)
        return out

    @property
    def had_points(self) -> np.ndarray:
        """Per junction: whether any point has matched one of its stretches."""
        out = np.zeros(self.n_j, dtype=bool)
        out[self.stretch_junction[self.stretch_last_ms > np.iinfo(np.int64).min]] = True
        return out

    def window_stats(self, now_ms: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per stretch: points in the window, mean and harmonic-mean speed [km/h].

        Points sent at or before the window's start are dropped from the
        buffer for good: windows only move forward.
        """
        k = self.index.n_stretches
        count, total, inv, mean = (np.zeros(k, dtype=np.int64), np.zeros(k), np.zeros(k),
                                   np.zeros(k))
        dropped = _window_means(self.buf_s, self.buf_t, self.buf_v, self._len,
                                now_ms - self._window_ms, now_ms, count, total, inv, mean)
        self._drop(dropped)
        return count, mean, self._harmonic_means(count, inv)

    def _drop(self, dropped: int) -> None:
        """Compact the window buffer when most of it is dropped points."""
        if 2 * dropped > self._len:
            self._len = self._compact(self.buf_s, self.buf_t, self.buf_v, self._len)

    @staticmethod
    def _harmonic_means(count: np.ndarray, inv: np.ndarray) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(count > 0, count / inv, np.nan)

    def decide(self, now_ms: int) -> list[tuple[int, str]]:
        """One decision for every junction; returns ``(junction index, program)`` changes.

        The window and every junction's verdict come from one compiled pass
        (:func:`_decision_kernel`); Python only logs and applies the rare
        changes.
        """
        md = self.model
        if self.keep_windows:
            n = self.index.n_stretches
            sums = (np.zeros(n, dtype=np.int64), np.zeros(n), np.zeros(n), np.zeros(n))
        else:
            sums = self._sums
        count, total, inv, mean = sums
        action = self._action
        now_ms = int(now_ms)
        dropped, flagged = self._decide(
            self.buf_s, self.buf_t, self.buf_v, self._len, now_ms - self._window_ms, now_ms,
            count, total, inv, mean, int(md.min_points), self.low, self.high, self._by_junction,
            self._junction_start, self.stretch_last_ms, self.mode, self.last_change_ms,
            self.stale, self._dwell_ms, self._stale_after_ms, action)
        self._drop(dropped)
        if self.keep_windows:
            self.window_rows.append((now_ms, count, mean, self._harmonic_means(count, inv)))
        if not flagged:
            return []
        new_stale = np.flatnonzero(action & _NEW_STALE)
        self.stale_events += len(new_stale)
        for k in new_stale:
            log.info("junction %s: no probe points for %.0f s, default program",
                     self.junction_ids[k], md.stale_after_s)
            if self.mode[k] == 0:
                self.log_rows.append((now_ms, self.junction_ids[k], self.programs[k][0],
                                      self.programs[k][0], "stale", "", np.nan, 0))
        info = count >= md.min_points
        changes = []
        for k in np.flatnonzero(action & (_TO_RELIEF | _TO_DEFAULT)):
            relief = bool(action[k] & _TO_RELIEF)
            sel = self._by_junction[self._junction_start[k]:self._junction_start[k + 1]]
            worst = sel[np.nanargmin(np.where(info[sel], mean[sel], np.inf))] if info[
                sel].any() else sel[0]
            reason = "slow" if relief else ("stale" if self.stale[k] else "recovered")
            frm, to = (self.programs[k][0], self.programs[k][1]) if relief else (
                self.programs[k][1], self.programs[k][0])
            self.log_rows.append((now_ms, self.junction_ids[k], frm, to, reason,
                                  self.stretch_ids[worst], float(mean[worst]),
                                  int(count[worst])))
            self.mode[k] = 1 if relief else 0
            self.last_change_ms[k] = now_ms
            changes.append((int(k), to))
        return changes

    def program(self, k: int) -> str:
        """Program junction ``k`` currently asks for."""
        return self.programs[k][int(self.mode[k])]

    def decision_log(self) -> list[dict[str, Any]]:
        """Decisions so far, as rows with :data:`DECISION_COLUMNS`."""
        return [dict(zip(DECISION_COLUMNS, r, strict=True)) for r in self.log_rows]


class GpsController:
    """The GPS controller inside the simulator (``Controller`` protocol).

    It reads only the probe feed and the clock. Every decision interval it
    takes the points received since the last decision, runs the run-time
    path, and answers the signal runtime's requests with the program of each
    junction's current mode. Junctions the model does not cover run their
    default program.

    Parameters
    ----------
    model : GpsModel
    scenario : Scenario
        Supplies the date and time zone that place simulation time in UTC.
    feed : ProbeFeed
        The probe sampler's feed.
    """

    name = "gps"

    def __init__(self, model: GpsModel, scenario: Scenario, feed: ProbeFeed) -> None:
        from gpssignal.probes.io import utc_from_sim_seconds

        self.model = model
        self.runtime = GpsRuntime(model)
        self.feed = feed
        self.t0_ms = int(utc_from_sim_seconds(scenario, np.array([0.0]))[0].value // 1_000_000)
        self.start_clock_s = scenario.start_clock_s
        self._jidx = {j: k for k, j in enumerate(self.runtime.junction_ids)}
        self._default = {j.id: j.default_program for j in scenario.junctions}
        for j in model.junctions:
            try:
                sj = scenario.junction(j.id)
            except KeyError:
                raise ModelError(f"model.junction = {j.id!r}: not in scenario "
                                    f"{scenario.name}") from None
            names = [p.name for p in sj.programs]
            for prog in (j.default_program, j.relief_program):
                if prog not in names:
                    raise ModelError(f"model.junction[{j.id}] program = {prog!r}: junction "
                                        f"has only {names}")

    def attach(self, sim: Simulation) -> None:
        """Register the decision process on the engine."""
        sim.add_process(self._process)

    def _process(self, env: simpy.Environment) -> Any:
        step_ms = int(round(self.model.decision_interval_s * 1000))
        first = -(-self.t0_ms // step_ms) * step_ms  # first grid instant at or after start
        now_ms = first
        wait = (first - self.t0_ms) / 1000.0
        if wait > 0:
            yield decision_timeout(env, wait)
        feed, runtime, t0_ms, step_s = self.feed, self.runtime, self.t0_ms, step_ms / 1000.0
        while True:
            pts = feed.deliver((now_ms - t0_ms) / 1000.0)
            if len(pts.get("time_sent_s", ())):
                runtime.ingest(t0_ms + np.round(pts["time_sent_s"] * 1000).astype(np.int64),
                               t0_ms + np.round(pts["time_received_s"] * 1000).astype(np.int64),
                               pts["lat_deg"], pts["lon_deg"], pts["speed_kmh"],
                               pts["heading_deg"])
            runtime.decide(now_ms)
            now_ms += step_ms
            yield decision_timeout(env, step_s)

    def requested_program(self, junction_id: str, clock_s: float) -> str:
        """Return the program the GPS runtime asks for (the default if unmonitored)."""
        k = self._jidx.get(junction_id)
        if k is None:
            return self._default[junction_id]
        return self.runtime.program(k)


def replay(model: GpsModel, t_sent_ms: np.ndarray, t_received_ms: np.ndarray,
           lat_deg: np.ndarray, lon_deg: np.ndarray, speed_kmh: np.ndarray,
           heading_deg: np.ndarray, start_ms: int | None = None, end_ms: int | None = None,
           keep_windows: bool = False) -> GpsRuntime:
    """Run the run-time path offline over recorded points.

    Decisions happen on the same UTC grid as in the simulator, from
    ``start_ms`` (default: the first receipt) to ``end_ms`` (default: one
    decision interval past the last receipt plus ``stale_after_s``, so a
    final fall-back shows). Points are
    given to the path in order of receipt, each at the first decision at or
    after its receipt.
    """
    order = np.argsort(t_received_ms, kind="stable")
    cols = [np.asarray(c)[order] for c in (t_sent_ms, t_received_ms, lat_deg, lon_deg,
                                             speed_kmh, heading_deg)]
    rt = GpsRuntime(model)
    rt.keep_windows = keep_windows
    step = int(round(model.decision_interval_s * 1000))
    recv = cols[1]
    if start_ms is None:
        start_ms = int(recv[0]) if len(recv) else 0
    if end_ms is None:
        end_ms = (int(recv[-1]) if len(recv) else start_ms) + int(
            round(model.stale_after_s * 1000)) + step
    now = -(-start_ms // step) * step
    i = 0
    while now <= end_ms:
        j = int(np.searchsorted(recv, now, side="right"))
        if j > i:
            rt.ingest(*(c[i:j] for c in cols))
            i = j
        rt.decide(now)
        now += step
    return rt


def model_from_scenario(scenario: Scenario, *, low_fraction: float = 0.6,
                        hysteresis_kmh: float = 5.0, free_flow_kmh: dict[str, float] | None = None,
                        **params: Any) -> GpsModel:
    """Return an (untrained) model for every junction of ``scenario`` with a relief program.

    A junction's monitored stretches are the scenario stretches whose last link
    leads into it. Thresholds: ``low = low_fraction × free-flow speed`` and
    ``high = low + hysteresis_kmh``; the free-flow speed defaults to the speed
    limit until training measures it.
    """
    polys = stretch_polylines(scenario)
    proj = LocalProjection.for_scenario(scenario)
    link = {lk.id: lk for lk in scenario.links}
    stretches, junctions = [], []
    for j in scenario.junctions:
        if j.relief_program is None:
            continue
        mine = [st for st in scenario.stretches
                if (link[st.links[-1]].to_arm or "").split(".")[0] == j.id]
        if not mine:
            raise ScenarioError(f"junction[{j.id}].relief_program = {j.relief_program!r}: no "
                                "[[stretch]] leads into this junction, so nothing to watch")
        for st in mine:
            xy, length = polys[st.id]
            lat, lon = proj.to_latlon(xy[:, 0], xy[:, 1])
            limit = link[st.links[-1]].speed_limit_kmh
            ff = (free_flow_kmh or {}).get(st.id, limit)
            low = ff * low_fraction
            stretches.append(StretchModel(
                id=st.id, junction=j.id, polyline_deg=[[float(a), float(b)] for a, b in
                                                       zip(lat, lon, strict=True)],
                length_m=length, speed_limit_kmh=limit, free_flow_kmh=ff,
                threshold_low_kmh=low, threshold_high_kmh=low + hysteresis_kmh))
        junctions.append(JunctionModel(id=j.id, default_program=j.default_program,
                                       relief_program=j.relief_program,
                                       stretches=[st.id for st in mine]))
    if not junctions:
        raise ScenarioError(f"scenario {scenario.name}: no junction has a relief_program, so "
                            "there is nothing for a GPS controller to switch")
    return GpsModel(projection_deg=(proj.lat0_deg, proj.lon0_deg), junctions=junctions,
                    stretches=stretches, **params)
