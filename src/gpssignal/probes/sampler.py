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

import numpy as np

from gpssignal._compiled import njit
from gpssignal.model.geo import LinkGeometry
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


class ProbeFeed:
    """Delivers the sampler's points to a consumer in order of receipt.

    ``deliver(t_s)`` returns the points received in ``(previous t, t_s]``,
    sorted by their receipt time, as arrays named ``columns`` (empty arrays
    when there are none). This is the only view of the traffic that a GPS
    controller gets.
    """

    def __init__(self, columns: list[str]) -> None:
        self._columns = list(columns)
        self._pending: list[dict[str, np.ndarray]] = []
        self._carry: dict[str, np.ndarray] | None = None
        self._sources: list[Callable[[], None]] = []

    def add_source(self, flush: Callable[[], None]) -> None:
        """Call ``flush()`` before each delivery (a sampler that pushes its points lazily)."""
        self._sources.append(flush)

    def push(self, points: dict[str, np.ndarray]) -> None:
        """Queue points the sampler produced (columns of equal length)."""
        self._pending.append(points)

    def deliver(self, t_s: float) -> dict[str, np.ndarray]:
        """Return the points received in ``(previous t, t_s]``, in order of receipt."""
        for flush in self._sources:
            flush()
        parts = ([self._carry] if self._carry is not None else []) + self._pending
        self._pending = []
        if not parts:
            return {k: np.empty(0, dtype=object if k == "pseudonym" else float)
                    for k in self._columns}
        cols = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
        due = cols["time_received_s"] <= t_s
        self._carry = {k: v[~due] for k, v in cols.items()} if (~due).any() else None
        order = np.argsort(cols["time_received_s"][due], kind="stable")
        return {k: v[due][order] for k, v in cols.items()}


@njit
def _due_rows_steps(t_s, counts, vid, route_pos, pos_m, equipped, phase, last_period,
                    route_offset, route_length, trim_m, period, out, inside, per_step):
    """Rows of equipped vehicles whose next reporting period has begun, step after step.

    ``t_s`` and ``counts``: each step's time [s] and number of rows; the
    rows of the steps follow each other in ``vid``, ``route_pos`` and
    ``pos_m``. A due row marks its vehicle's period as reported; its index
    goes to ``out`` and whether it is farther than ``trim_m`` from both
    ends of its trip to ``inside``. Writes each step's number of due rows
    to ``per_step``; returns the total.

    The test is written out in the loop rather than called per row: a call
    with these arrays costs about 40 ns a row (measured), the test itself
    a few.
    """
    n = 0
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
                    out[n] = r
                    dist = route_offset[v, route_pos[r]] + pos_m[r]
                    inside[n] = (dist >= trim_m) and (dist <= route_length[v] - trim_m)
                    n += 1
            r += 1
        per_step[k] = n - start
    return n


@njit
def _report_step(rng, rows, inside, first, n_due, t, dropout, sigmas, jitter, vid, link,
                 lane, pos_m, speed_mps, raw_f, raw_i, n_raw):
    """Draw the fate of due rows ``first:first + n_due`` of one step; keep the reports.

    Draws from ``rng``, in this order: ``random(n_due)`` (a report is kept
    when inside the trimmed trip and its draw is at least ``dropout``), then
    per kept report ``normal(0, sigma, m)`` for each of ``sigmas`` (the noise
    kinds in draw order, none of them 0) and ``uniform(0, jitter, m)`` (the
    latency). The kept rows go to the raw buffers from column ``n_raw``:
    ``raw_f`` rows time [s], position [m], speed [m/s], then the draws in the
    same order; ``raw_i`` rows vehicle, link, lane. The buffers must have
    room for ``n_due`` more columns. Returns the new number of raw columns.
    """
    keep = rng.random(n_due) >= dropout
    m = 0
    for q in range(n_due):
        keep[q] = keep[q] and inside[first + q]
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
        r = rows[first + q]
        raw_i[0, j] = vid[r]
        raw_i[1, j] = link[r]
        raw_i[2, j] = lane[r]
        raw_f[0, j] = t
        raw_f[1, j] = pos_m[r]
        raw_f[2, j] = speed_mps[r]
        for d in range(noise.shape[0]):
            raw_f[3 + d, j] = noise[d, j - n_raw]
        j += 1
    return j


@njit
def _report_steps(rng, t_s, per_step, rows, inside, dropout, sigmas, jitter, vid, link, lane,
                  pos_m, speed_mps, raw_f, raw_i, n_raw):
    """:func:`_report_step` for each step with ``per_step`` due rows, one step after the other.

    The due rows of all steps are ``rows[:per_step.sum()]`` in step order;
    the buffers must have room for that many more columns. Returns the new
    number of raw columns.
    """
    first = 0
    for k in range(per_step.shape[0]):
        n_due = per_step[k]
        if n_due == 0:
            continue
        n_raw = _report_step(rng, rows, inside, first, n_due, t_s[k], dropout, sigmas, jitter,
                             vid, link, lane, pos_m, speed_mps, raw_f, raw_i, n_raw)
        first += n_due
    return n_raw


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
    Each step only picks the reporting vehicles, draws their dropouts and
    noise (in the order of :meth:`on_step`'s description) and keeps their
    state in raw buffers; the points themselves (positions, WGS84, rounded
    times, pseudonyms) are made in batches when the feed delivers or the
    stream is read. Every operation of a batch is element by element, so the
    points are those of one batch per step.
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
        self._rows = np.empty(256, dtype=np.int64)
        self._inside = np.empty(256, dtype=np.bool_)
        self._due_per_step = np.empty(64, dtype=np.int64)
        # The noise drawn per point, in draw order (a sigma of 0 draws nothing).
        s = settings
        drawn = [(k, sigma) for k, sigma in (("x", s.position_sigma_m),
                                             ("y", s.position_sigma_m),
                                             ("speed", s.speed_sigma_kmh),
                                             ("heading", s.heading_sigma_deg)) if sigma]
        self._noise = [k for k, _ in drawn]
        self._sigmas = np.array([sigma for _, sigma in drawn], dtype=np.float64)
        self._raw_f = np.empty((4 + len(self._noise), 1024))
        self._raw_i = np.empty((3, 1024), dtype=np.int64)
        self._n_raw = 0       # raw points kept
        self._n_flushed = 0   # of those, made into points
        self._flushed: list[dict[str, np.ndarray]] = []
        self._truth: list[dict[str, np.ndarray]] = []

    @property
    def _cols(self) -> list[dict[str, np.ndarray]]:
        """The points made so far, in batches (every raw point made first)."""
        self.flush()
        return self._flushed

    def attach(self, sim: Simulation) -> None:
        """Watch every step of ``sim`` (in blocks of steps where the engine offers them)."""
        add_block_hook = getattr(sim, "add_block_hook", None)
        if add_block_hook is not None:
            add_block_hook(self.on_steps)
        else:
            sim.add_step_hook(self.on_step)

    def _fit(self, rows: int) -> None:
        """Make the due-row buffers hold ``rows`` rows."""
        if len(self._rows) < rows:
            self._rows = np.empty(2 * rows, dtype=np.int64)
            self._inside = np.empty(2 * rows, dtype=np.bool_)

    def on_step(self, view: StepView) -> None:
        """Pick the probe vehicles due to report at this step and draw their fate.

        Draws, in this order: one dropout draw per due vehicle, then per kept
        report the x and y position noise, the speed noise, the heading noise
        (each only when its sigma is not 0) and the latency. The same
        compiled code as :meth:`on_steps`, on a block of one step.
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
        pass, and their fates drawn in another, step after step
        (:func:`_report_step`); only steps with a due vehicle draw.
        """
        s = self.settings
        self._fit(len(vid))
        if len(self._due_per_step) < len(counts):
            self._due_per_step = np.empty(2 * len(counts), dtype=np.int64)
        n = _due_rows_steps(t_s, counts, vid, route_pos, pos_m, self.equipped, self.phase,
                            self.last_period, self.route_offset, self.route_length,
                            s.trim_m, s.period_s, self._rows, self._inside,
                            self._due_per_step)
        if n == 0:
            return
        self._room(n)
        self._n_raw = _report_steps(self.rng, t_s, self._due_per_step[:len(counts)], self._rows,
                                    self._inside, s.dropout, self._sigmas, s.latency_jitter_s,
                                    vid, link, lane, pos_m, speed_mps, self._raw_f,
                                    self._raw_i, self._n_raw)

    def _room(self, n_due: int) -> None:
        """Make the raw buffers hold ``n_due`` more reports (at most one per due row)."""
        if self._n_raw + n_due > self._raw_f.shape[1]:
            grow = max(2 * self._raw_f.shape[1], self._n_raw + n_due)
            self._raw_f = np.concatenate([self._raw_f, np.empty((self._raw_f.shape[0], grow
                                                                 - self._raw_f.shape[1]))], 1)
            self._raw_i = np.concatenate([self._raw_i, np.empty((3, grow - self._raw_i.shape[1]),
                                                                dtype=np.int64)], 1)

    def flush(self) -> None:
        """Make the raw reports kept since the last flush into points; push them to the feed."""
        a, b = self._n_flushed, self._n_raw
        if a == b:
            return
        self._n_flushed = b
        s = self.settings
        f, i = self._raw_f[:, a:b], self._raw_i[:, a:b]
        t, pos, speed_mps = f[0], f[1].copy(), f[2].copy()
        vid, link, lane = i[0].copy(), i[1].copy(), i[2].copy()
        noise = dict(zip([*self._noise, "latency"], f[3:], strict=True))
        x, y = self.geometry.positions_xy(link, lane, pos)
        nx = x + noise["x"] if "x" in noise else x
        ny = y + noise["y"] if "y" in noise else y
        lat, lon = self.geometry.projection.to_latlon(nx, ny)
        speed = speed_mps * 3.6
        if "speed" in noise:
            speed = np.maximum(speed + noise["speed"], 0.0)
        heading = self.geometry.heading_deg[link]
        if "heading" in noise:
            heading = heading + noise["heading"]
        # Whole milliseconds, as in a probe file, so that a replay of the file
        # sees exactly what the simulation's controller saw.
        sent = np.round(t * 1000.0) / 1000.0
        received = np.round((sent + s.latency_fixed_s + noise["latency"]) * 1000.0) / 1000.0
        cols = {"time_sent_s": sent, "time_received_s": received, "lat_deg": lat,
                "lon_deg": lon, "speed_kmh": speed, "heading_deg": heading % 360.0}
        if s.anonymisation == "rotating":
            epoch = np.floor((t + self.rotation_phase[vid]) / s.rotation_s)
            cols["pseudonym"] = pseudonyms(self.salt, vid, epoch.astype(np.int64))
        elif s.anonymisation == "raw":
            cols["pseudonym"] = np.array([f"veh{v}" for v in vid.tolist()], dtype=object)
        self._flushed.append(cols)
        self._truth.append({"vid": vid, "link": link, "lane": lane, "pos_m": pos,
                            "speed_mps": speed_mps, "x_m": x, "y_m": y})
        self.feed.push(cols)

    def column_names(self) -> list[str]:
        """Columns of the points this sampler emits."""
        return probe_columns(self.settings)

    def stream(self) -> ProbeStream:
        """All points sampled so far."""
        names = self.column_names()
        tnames = ["vid", "link", "lane", "pos_m", "speed_mps", "x_m", "y_m"]
        self.flush()
        if self._flushed:
            cols = {k: np.concatenate([c[k] for c in self._flushed]) for k in names}
            truth = {k: np.concatenate([c[k] for c in self._truth]) for k in tnames}
        else:
            cols = {k: np.empty(0, dtype=object if k == "pseudonym" else float) for k in names}
            truth = {k: np.empty(0) for k in tnames}
        return ProbeStream(columns=cols, truth=truth, anonymisation=self.settings.anonymisation)
