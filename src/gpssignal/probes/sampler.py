"""The GPS probe sampler: what a real feed would give a controller.

The sampler watches the running simulation through the engine's step hook, so
a controller can react to the points while the run goes on. The steps are:

1. **Penetration.** A share ``penetration`` of the motor vehicles report
   (cyclists never do). Which ones is drawn per vehicle from the seed's
   ``probes`` stream, so every controller run on one seed has the same
   probe vehicles.
2. **Reporting period.** A probe vehicle reports at the first step of each
   of its reporting periods. The periods have a random phase per vehicle.
3. **Trip ends.** Nothing is reported within ``trim_m`` of the start or the
   end of a trip (distance along the route).
4. **Dropouts.** Each report is lost with probability ``dropout``.
5. **Noise.** Gaussian position noise of ``position_sigma_m`` per axis in
   the local metric frame, then conversion to WGS84
   (:class:`gpssignal.model.geo.LocalProjection`). Gaussian speed noise of
   ``speed_sigma_kmh``, clipped at 0. The heading is the link's direction of
   travel plus Gaussian noise of ``heading_sigma_deg``.
6. **Latency.** A report is received ``latency_fixed_s + U(0,
   latency_jitter_s)`` after it was sent, so reports arrive late and out of
   order. Times are kept in whole milliseconds, as in a probe file.
7. **Anonymisation.** The modes are:
   - ``idless``: no identifier at all;
   - ``rotating``: a pseudonym that changes every ``rotation_s``, with a
     random phase per vehicle. Pseudonyms are a keyed hash (splitmix64) of
     the vehicle, the rotation index and a secret salt drawn per run, so two
     pseudonyms cannot be linked without the salt;
   - ``raw``: ``veh<id>``, for tests only.

Times are simulation seconds here. :mod:`gpssignal.probes.io` writes them as
UTC timestamps.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from gpssignal._compiled import Kernel, Resolved, njit
from gpssignal.model.geo import EARTH_RADIUS_M, LinkGeometry
from gpssignal.model.scenario import ProbeSettings, Scenario
from gpssignal.sim.demand import Arrivals
from gpssignal.sim.engine import Simulation, StepView

__all__ = ["ProbeFeed", "ProbeSampler", "ProbeStream", "probe_columns", "pseudonyms"]

_MASK64 = np.uint64(0xFFFFFFFFFFFFFFFF)


def _splitmix64(x: np.ndarray) -> np.ndarray:
    """Apply the splitmix64 finaliser, vectorised on uint64 (wrapping arithmetic)."""
    with np.errstate(over="ignore"):
        z = (x + np.uint64(0x9E3779B97F4A7C15)) & _MASK64
        z = ((z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)) & _MASK64
        z = ((z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)) & _MASK64
        return z ^ (z >> np.uint64(31))


def pseudonyms(salt: int, vid: np.ndarray, epoch: np.ndarray) -> np.ndarray:
    """Keyed pseudonyms ``p<16 hex digits>`` for (vehicle, rotation index)."""
    with np.errstate(over="ignore"):
        key = (np.asarray(vid, dtype=np.uint64) * np.uint64(0x100000001B3)
               ^ _splitmix64(np.asarray(epoch, dtype=np.int64).astype(np.uint64)
                             ^ np.uint64(salt)))
    h = _splitmix64(key ^ np.uint64(salt))
    return np.array([f"p{v:016x}" for v in h.tolist()], dtype=object)


def probe_columns(settings: ProbeSettings) -> list[str]:
    """Columns of the points a feed with ``settings`` emits."""
    names = ["time_sent_s", "time_received_s", "lat_deg", "lon_deg", "speed_kmh",
             "heading_deg"]
    if settings.anonymisation != "idless":
        names.append("pseudonym")
    return names


@dataclass
class ProbeStream:
    """Probe points of one run, in the order they were sent.

    Attributes
    ----------
    columns : dict[str, ndarray]
        ``time_sent_s``, ``time_received_s`` [simulation s], ``lat_deg``,
        ``lon_deg``, ``speed_kmh``, ``heading_deg`` and, unless the mode is
        ``idless``, ``pseudonym``.
    truth : dict[str, ndarray]
        Ground truth of each point, for tests and evaluation only (never
        given to a controller): ``vid``, ``link``, ``lane``, ``pos_m``,
        ``speed_mps``, ``x_m``, ``y_m``.
    anonymisation : str
    """

    columns: dict[str, np.ndarray]
    truth: dict[str, np.ndarray]
    anonymisation: str

    def __len__(self) -> int:
        """Return the number of points."""
        return len(self.columns["time_sent_s"])


@njit
def _deliver_due(points, n, received_row, t_s):
    """Take the points of ``points[:, :n]`` received by ``t_s``; keep the others in front.

    Returns the due points as a matrix sorted by receipt time (stably, so
    points received at the same instant stay in the order they came), their
    columns in ``points`` before the call, and how many points are kept: the
    rest, moved to the first columns in their order.
    """
    received = points[received_row, :n]
    due = np.flatnonzero(received <= t_s)
    order = due[np.argsort(received[due], kind="mergesort")]
    out = np.empty((points.shape[0], order.shape[0]))
    for i in range(order.shape[0]):
        out[:, i] = points[:, order[i]]
    kept = 0
    for j in range(n):
        if not received[j] <= t_s:
            if kept != j:
                points[:, kept] = points[:, j]
            kept += 1
    return out, order, kept


class ProbeFeed:
    """Delivers the sampler's points to a consumer in order of receipt.

    ``deliver(t_s)`` returns the points received in ``(previous t, t_s]``,
    sorted by their receipt time, as arrays named ``columns`` (empty arrays
    when there are none). This is the only view of the traffic that a GPS
    controller gets.

    Notes
    -----
    The points wait in one float64 matrix of the numeric columns (a row per
    column), in the order they came, and the pseudonyms, if any, beside it.
    A delivery is one compiled pass over the matrix (:func:`_deliver_due`):
    it comes every decision interval with a few points, so the cost of a
    numpy call per column and step would dominate it.
    """

    def __init__(self, columns: list[str]) -> None:
        self._columns = list(columns)
        self._numeric = [k for k in self._columns if k != "pseudonym"]
        self._named = "pseudonym" in self._columns
        self._received = self._numeric.index("time_received_s")
        self._points = np.empty((len(self._numeric), 64))
        self._deliver_due = Resolved(_deliver_due)   # for this matrix's type
        self._n = 0                               # points waiting
        self._names = np.empty(0, dtype=object)   # their pseudonyms (when named)
        self._sources: list[Callable[[], None]] = []

    def add_source(self, flush: Callable[[], None]) -> None:
        """Call ``flush()`` before each delivery (a sampler that pushes its points lazily)."""
        self._sources.append(flush)

    def push(self, points: dict[str, np.ndarray]) -> None:
        """Queue points the sampler produced (the feed's columns, of equal length).

        The numeric columns are kept (and delivered) as float64.
        """
        block = np.array([points[k] for k in self._numeric], dtype=np.float64)
        self.push_block(block, np.asarray(points["pseudonym"]) if self._named else None)

    def push_block(self, numeric: np.ndarray, pseudonym: np.ndarray | None = None) -> None:
        """Queue points given as a matrix of the numeric columns (rows, in column order).

        ``pseudonym`` is the object array of the ``pseudonym`` column when the
        feed has one. The points are copied.
        """
        n, m = self._n, numeric.shape[1]
        if n + m > self._points.shape[1]:
            grown = np.empty((self._points.shape[0], max(2 * self._points.shape[1], n + m)))
            grown[:, :n] = self._points[:, :n]
            self._points = grown
            self._deliver_due.forget()
        self._points[:, n:n + m] = numeric
        self._n = n + m
        if self._named:
            self._names = np.concatenate([self._names, pseudonym])

    def deliver(self, t_s: float) -> dict[str, np.ndarray]:
        """Return the points received in ``(previous t, t_s]``, in order of receipt."""
        for flush in self._sources:
            flush()
        if self._n == 0:
            return {k: np.empty(0, dtype=object if k == "pseudonym" else float)
                    for k in self._columns}
        n = self._n
        out, order, self._n = self._deliver_due(self._points, n, self._received, float(t_s))
        cols = dict(zip(self._numeric, out, strict=True))
        if self._named:
            names = self._names
            kept = np.ones(n, dtype=bool)
            kept[order] = False
            cols["pseudonym"], self._names = names[order], names[kept]
        return {k: cols[k] for k in self._columns}


@njit
def _due_rows_steps(t_s, counts, vid, link, lane, route_pos, pos_m, speed_mps, equipped,
                    phase, last_period, route_offset, route_length, trim_m, period, due_i,
                    due_f, step_t, step_n, waiting):
    """Keep the rows of equipped vehicles whose next reporting period has begun, step after step.

    ``t_s`` and ``counts``: each step's time [s] and number of rows; the
    rows of the steps follow each other in the other arrays. A due row marks
    its vehicle's period as reported and is appended to the rows waiting
    for their draws: ``due_i`` (vehicle, link, lane, and 1 when farther than
    ``trim_m`` from both ends of its trip, else 0) and ``due_f`` (position
    [m], speed [m/s]). Each step with due rows appends its time and number
    of due rows to ``step_t`` and ``step_n``. ``waiting`` holds the numbers
    of waiting rows and steps, updated here; the buffers must have room for
    ``counts.sum()`` more rows and ``len(counts)`` more steps.

    The test is written out in the loop rather than called per row: a call
    with these arrays costs about 40 ns a row (measured), the test itself
    a few.
    """
    n = waiting[0]
    n_steps = waiting[1]
    r = 0
    for k in range(counts.shape[0]):
        t = t_s[k]
        start = n
        for _ in range(counts[k]):
            v = vid[r]
            if equipped[v]:
                p = np.int64(np.floor((t - phase[v]) / period))
                if p > last_period[v]:
                    last_period[v] = p
                    dist = route_offset[v, route_pos[r]] + pos_m[r]
                    due_i[0, n] = v
                    due_i[1, n] = link[r]
                    due_i[2, n] = lane[r]
                    due_i[3, n] = (dist >= trim_m) and (dist <= route_length[v] - trim_m)
                    due_f[0, n] = pos_m[r]
                    due_f[1, n] = speed_mps[r]
                    n += 1
            r += 1
        if n > start:
            step_t[n_steps] = t
            step_n[n_steps] = n - start
            n_steps += 1
    waiting[0] = n
    waiting[1] = n_steps


@njit
def _report_step(rng, due_i, due_f, first, n_due, t, dropout, sigmas, jitter, raw_f, raw_i,
                 n_raw):
    """Draw the fate of due rows ``first:first + n_due`` of one step; keep the reports.

    Draws from ``rng``, in this order: ``random(n_due)`` (a report is kept
    when inside the trimmed trip, ``due_i[3]``, and its draw is at least
    ``dropout``), then per kept report ``normal(0, sigma, m)`` for each of
    ``sigmas`` (the noise kinds in draw order, none of them 0) and
    ``uniform(0, jitter, m)`` (the latency). The kept rows go to the raw
    buffers from column ``n_raw``: ``raw_f`` rows time [s], position [m],
    speed [m/s], then the draws in the same order; ``raw_i`` rows vehicle,
    link, lane. The buffers must have room for ``n_due`` more columns.
    Returns the new number of raw columns.
    """
    keep = rng.random(n_due) >= dropout
    m = 0
    for q in range(n_due):
        keep[q] = keep[q] and due_i[3, first + q] != 0
        m += keep[q]
    if m == 0:
        return n_raw
    noise = np.empty((sigmas.shape[0] + 1, m))
    for d in range(sigmas.shape[0]):
        noise[d] = rng.normal(0.0, sigmas[d], m)
    noise[-1] = rng.uniform(0.0, jitter, m)
    j = n_raw
    for q in range(n_due):
        if not keep[q]:
            continue
        r = first + q
        raw_i[0, j] = due_i[0, r]
        raw_i[1, j] = due_i[1, r]
        raw_i[2, j] = due_i[2, r]
        raw_f[0, j] = t
        raw_f[1, j] = due_f[0, r]
        raw_f[2, j] = due_f[1, r]
        for d in range(noise.shape[0]):
            raw_f[3 + d, j] = noise[d, j - n_raw]
        j += 1
    return j


@njit
def _report_steps(rng, step_t, step_n, n_steps, due_i, due_f, dropout, sigmas, jitter, raw_f,
                  raw_i, n_raw):
    """:func:`_report_step` for the first ``n_steps`` waiting steps, one after the other.

    The due rows of all steps are the first ``step_n[:n_steps].sum()``
    columns of ``due_i`` and ``due_f``, in step order; the raw buffers must
    have room for that many more columns. Returns the new number of raw
    columns.
    """
    first = 0
    for k in range(n_steps):
        n_due = step_n[k]
        n_raw = _report_step(rng, due_i, due_f, first, n_due, step_t[k], dropout, sigmas,
                             jitter, raw_f, raw_i, n_raw)
        first += n_due
    return n_raw


@njit
def _make_points(raw_f, raw_i, a, b, noise_row, start_xy, delta_xy, direction_xy, length_m,
                 lane_offset_m, heading_deg, lat0_deg, lon0_deg, radius_m, parallel_radius_m,
                 latency_fixed_s, points):
    """Make raw reports ``a:b`` into points: columns ``a:b`` of ``points``.

    ``points`` rows: time sent and received [s], latitude and longitude
    [deg], speed [km/h], heading [deg], then the true x and y [m].
    ``noise_row``: the ``raw_f`` row of the x, y, speed, heading and latency
    draws (-1: not drawn). The arithmetic is that of the numpy statements it
    replaced, operation for operation and in the same order, so the points
    are the same to the last bit: the position is
    :meth:`~gpssignal.model.geo.LinkGeometry.positions_xy`, the conversion
    :meth:`~gpssignal.model.geo.LocalProjection.to_latlon`; ``np.maximum(v,
    0.0)`` is ``v if v >= 0 or v is NaN else 0.0`` and ``np.round`` is
    ``np.rint``. ``tests/probes/test_probes_draws.py`` checks this.
    """
    deg_per_rad = 180.0 / np.pi
    ix, iy, ispeed, iheading, ilatency = (noise_row[0], noise_row[1], noise_row[2],
                                          noise_row[3], noise_row[4])
    for j in range(a, b):
        link = raw_i[1, j]
        frac = raw_f[1, j] / length_m[link]
        off = lane_offset_m[raw_i[2, j]]
        x = start_xy[link, 0] + frac * delta_xy[link, 0] + off * direction_xy[link, 1]
        y = start_xy[link, 1] + frac * delta_xy[link, 1] - off * direction_xy[link, 0]
        nx = x + raw_f[ix, j] if ix >= 0 else x
        ny = y + raw_f[iy, j] if iy >= 0 else y
        speed = raw_f[2, j] * 3.6
        if ispeed >= 0:
            speed = speed + raw_f[ispeed, j]
            if not (speed >= 0.0 or speed != speed):
                speed = 0.0
        heading = heading_deg[link]
        if iheading >= 0:
            heading = heading + raw_f[iheading, j]
        # Whole milliseconds, as in a probe file, so that a replay of the file
        # sees exactly what the simulation's controller saw.
        sent = np.rint(raw_f[0, j] * 1000.0) / 1000.0
        points[0, j] = sent
        points[1, j] = np.rint((sent + latency_fixed_s + raw_f[ilatency, j]) * 1000.0) / 1000.0
        points[2, j] = lat0_deg + ny / radius_m * deg_per_rad
        points[3, j] = lon0_deg + nx / parallel_radius_m * deg_per_rad
        points[4, j] = speed
        points[5, j] = heading % 360.0
        points[6, j] = x
        points[7, j] = y


class ProbeSampler:
    """Samples GPS points from a running :class:`~gpssignal.sim.engine.Simulation`.

    Parameters
    ----------
    scenario : Scenario
    settings : ProbeSettings
        Usually ``scenario.probes``, possibly with per-run overrides.
    arrivals : Arrivals
        The run's vehicles (for route lengths and positions along routes).
    geometry : LinkGeometry
    rng : numpy.random.Generator
        The seed's ``probes`` stream.
    feed : ProbeFeed, optional
        Where points are delivered (a controller may hold it before the
        sampler exists); a new one by default.

    Notes
    -----
    Each step only picks the reporting vehicles and keeps their state. Their
    draws (dropouts and noise, in the order of :meth:`on_step`'s description)
    and the points themselves (positions, WGS84, rounded times, pseudonyms)
    are made in batches when the feed delivers or the stream is read. Nothing
    else draws from ``rng`` during the run and the draws go step after step,
    so a batch draws what the steps would have drawn one by one; every other
    operation of a batch is element by element, so the points are those of
    one batch per step. Batching matters: passing a ``Generator`` to compiled
    code costs tens of microseconds, and the engine hands over thousands of
    blocks of steps a day.
    """

    def __init__(self, scenario: Scenario, settings: ProbeSettings, arrivals: Arrivals,
                 geometry: LinkGeometry, rng: np.random.Generator,
                 feed: ProbeFeed | None = None) -> None:
        self.settings = settings
        self.geometry = geometry
        self.rng = rng
        n = len(arrivals)
        # Per-vehicle draws first, in a fixed order, so that they do not depend
        # on how the run unfolds (same probe vehicles for every controller).
        self.equipped = rng.random(n) < settings.penetration
        # The feed is a motor-vehicle feed (connected cars, navigation apps
        # in cars): cyclists never report, whatever the draw.
        bikes = [k for k, c in enumerate(scenario.vehicle_classes) if c.mode == "bicycle"]
        if bikes:
            self.equipped &= ~np.isin(arrivals.vehicle_class, bikes)
        self.phase = rng.uniform(0.0, settings.period_s, n)
        self.rotation_phase = rng.uniform(0.0, settings.rotation_s, n)
        self.salt = int(rng.integers(0, 2**63 - 1))
        self.last_period = np.full(n, np.iinfo(np.int64).min, dtype=np.int64)
        links = arrivals.route_links
        lengths = np.where(links >= 0, geometry.length_m[np.maximum(links, 0)], 0.0)
        self.route_offset = np.cumsum(lengths, axis=1) - lengths
        self.route_length = arrivals.route_length_m
        self.feed = feed if feed is not None else ProbeFeed(self.column_names())
        self.feed.add_source(self.flush)
        # Due rows waiting for their draws (see _due_rows_steps), and their steps.
        self._due_i = np.empty((4, 256), dtype=np.int64)
        self._due_f = np.empty((2, 256))
        self._step_t = np.empty(64)
        self._step_n = np.empty(64, dtype=np.int64)
        self._waiting = np.zeros(2, dtype=np.int64)   # rows, steps
        # The noise drawn per point, in draw order (a sigma of 0 draws nothing).
        s = settings
        drawn = [(k, sigma) for k, sigma in (("x", s.position_sigma_m),
                                             ("y", s.position_sigma_m),
                                             ("speed", s.speed_sigma_kmh),
                                             ("heading", s.heading_sigma_deg)) if sigma]
        self._noise = [k for k, _ in drawn]
        self._sigmas = np.array([sigma for _, sigma in drawn], dtype=np.float64)
        # The raw_f row of each kind of draw for _make_points (-1: not drawn).
        rows = {k: 3 + d for d, k in enumerate([*self._noise, "latency"])}
        self._noise_row = np.array([rows.get(k, -1) for k in ("x", "y", "speed", "heading",
                                                              "latency")], dtype=np.int64)
        proj = geometry.projection
        self._frame = (geometry.start_xy, geometry.delta_xy, geometry.direction_xy,
                       geometry.length_m, geometry.lane_offset_m, geometry.heading_deg,
                       proj.lat0_deg, proj.lon0_deg, EARTH_RADIUS_M, proj.parallel_radius_m(),
                       float(s.latency_fixed_s))
        # Every report kept (raw) and, in the same columns, its point (see
        # _make_points); the numeric columns of the feed are the first rows.
        self._raw_f = np.empty((4 + len(self._noise), 1024))
        self._raw_i = np.empty((3, 1024), dtype=np.int64)
        self._points = np.empty((8, 1024))
        self._n_raw = 0       # raw points kept
        self._draw: Callable[..., Any] | None = None   # _report_steps for the buffers
        self._make_points = Resolved(_make_points)
        self._due_rows = Resolved(_due_rows_steps)
        self._n_flushed = 0   # of those, made into points
        self._n_batches = 0   # batches of points made
        self._pseudonyms: list[np.ndarray] = []

    @property
    def _cols(self) -> list[dict[str, np.ndarray]]:
        """The points made so far, as one batch (every raw point made first).

        Kept for :mod:`gpssignal.interop.sumo_gps`, which counts them.
        """
        return [self.stream().columns]

    def attach(self, sim: Simulation) -> None:
        """Watch every step of ``sim`` (in blocks of steps where the engine offers them)."""
        add_block_hook = getattr(sim, "add_block_hook", None)
        if add_block_hook is not None:
            add_block_hook(self.on_steps)
        else:
            sim.add_step_hook(self.on_step)

    def on_step(self, view: StepView) -> None:
        """Pick the probe vehicles due to report at this step.

        Their fate is drawn in order, at the next :meth:`flush`: one dropout
        draw per due vehicle, then per kept report the x and y position
        noise, the speed noise, the heading noise (each only when its sigma
        is not 0) and the latency. The same compiled code as
        :meth:`on_steps`, on a block of one step.
        """
        self.on_steps(np.array([view.t_s], dtype=np.float64),
                      np.array([len(view.vid)], dtype=np.int64), view.vid, view.link,
                      view.lane, view.route_pos, view.pos_m, view.speed_mps)

    def on_steps(self, t_s: np.ndarray, counts: np.ndarray, vid: np.ndarray,
                 link: np.ndarray, lane: np.ndarray, route_pos: np.ndarray,
                 pos_m: np.ndarray, speed_mps: np.ndarray) -> None:
        """:meth:`on_step` for several steps at once, with the same draws and points.

        ``t_s`` and ``counts``: each step's time [s] and number of vehicles;
        the other arrays hold the steps' vehicles one step after the other
        (``counts.sum()`` rows, as :class:`~gpssignal.sim.engine.StepView`'s
        arrays). The due vehicles of every step are picked in one compiled
        pass (:func:`_due_rows_steps`).
        """
        s = self.settings
        rows, steps = self._waiting.tolist()
        if rows + len(vid) > self._due_i.shape[1] or steps + len(counts) > len(self._step_t):
            self._fit_waiting(rows + len(vid), steps + len(counts))
        args = (t_s, counts, vid, link, lane, route_pos, pos_m, speed_mps, self.equipped,
                self.phase, self.last_period, self.route_offset, self.route_length, s.trim_m,
                s.period_s, self._due_i, self._due_f, self._step_t, self._step_n, self._waiting)
        # The engine hands each block's arrays of the same types (slices and
        # gathers of its own buffers), so the code is looked up once, and
        # again when this sampler replaces a buffer of its own.
        self._due_rows(*args)

    def _fit_waiting(self, rows: int, steps: int) -> None:
        """Make the waiting buffers hold ``rows`` rows and ``steps`` steps, keeping theirs."""
        n, k = self._waiting.tolist()
        if rows > self._due_i.shape[1]:
            due_i, due_f = np.empty((4, 2 * rows), dtype=np.int64), np.empty((2, 2 * rows))
            due_i[:, :n], due_f[:, :n] = self._due_i[:, :n], self._due_f[:, :n]
            self._due_i, self._due_f, self._draw = due_i, due_f, None
            self._due_rows.forget()
        if steps > len(self._step_t):
            step_t, step_n = np.empty(2 * steps), np.empty(2 * steps, dtype=np.int64)
            step_t[:k], step_n[:k] = self._step_t[:k], self._step_n[:k]
            self._step_t, self._step_n, self._draw = step_t, step_n, None
            self._due_rows.forget()

    def _room(self, n_due: int) -> None:
        """Make the raw and point buffers hold ``n_due`` more reports (at most one per due row)."""
        have = self._raw_f.shape[1]
        if self._n_raw + n_due > have:
            grow = max(2 * have, self._n_raw + n_due) - have
            self._raw_f = np.concatenate([self._raw_f, np.empty((self._raw_f.shape[0], grow))], 1)
            self._raw_i = np.concatenate([self._raw_i, np.empty((3, grow), dtype=np.int64)], 1)
            self._points = np.concatenate([self._points, np.empty((8, grow))], 1)
            self._draw = None
            self._make_points.forget()

    def flush(self) -> None:
        """Draw the waiting reports' fate, make the kept ones into points; push them to the feed."""
        rows, steps = self._waiting.tolist()
        s = self.settings
        if steps:
            self._room(rows)
            args = (self.rng, self._step_t, self._step_n, steps, self._due_i, self._due_f,
                    s.dropout, self._sigmas, s.latency_jitter_s, self._raw_f, self._raw_i,
                    self._n_raw)
            if self._draw is None:
                self._draw = Kernel.of(_report_steps).resolve(*args)
            self._n_raw = self._draw(*args)
            self._waiting[:] = 0
        a, b = self._n_flushed, self._n_raw
        if a == b:
            return
        self._n_flushed = b
        self._n_batches += 1
        self._make_points(self._raw_f, self._raw_i, a, b, self._noise_row, *self._frame,
                          self._points)
        names = None
        if s.anonymisation == "rotating":
            t, vid = self._raw_f[0, a:b], self._raw_i[0, a:b]
            epoch = np.floor((t + self.rotation_phase[vid]) / s.rotation_s)
            names = pseudonyms(self.salt, vid, epoch.astype(np.int64))
        elif s.anonymisation == "raw":
            names = np.array([f"veh{v}" for v in self._raw_i[0, a:b].tolist()], dtype=object)
        if names is not None:
            self._pseudonyms.append(names)
        self.feed.push_block(self._points[:6, a:b], names)

    def column_names(self) -> list[str]:
        """Columns of the points this sampler emits."""
        return probe_columns(self.settings)

    def stream(self) -> ProbeStream:
        """All points sampled so far."""
        names = self.column_names()
        tnames = ["vid", "link", "lane", "pos_m", "speed_mps", "x_m", "y_m"]
        self.flush()
        n = self._n_flushed
        if n:
            cols = {k: self._points[r, :n].copy() for r, k in enumerate(names)
                    if k != "pseudonym"}
            if "pseudonym" in names:
                cols["pseudonym"] = np.concatenate(self._pseudonyms)
            p, f, i = self._points, self._raw_f, self._raw_i
            truth = dict(zip(tnames, (i[0, :n].copy(), i[1, :n].copy(), i[2, :n].copy(),
                                      f[1, :n].copy(), f[2, :n].copy(), p[6, :n].copy(),
                                      p[7, :n].copy()), strict=True))
        else:
            cols = {k: np.empty(0, dtype=object if k == "pseudonym" else float) for k in names}
            truth = {k: np.empty(0) for k in tnames}
        return ProbeStream(columns=cols, truth=truth, anonymisation=self.settings.anonymisation)
