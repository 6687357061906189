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

from dataclasses import dataclass

import numba
import numpy as np

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

    def push(self, points: dict[str, np.ndarray]) -> None:
        """Queue points the sampler produced (columns of equal length)."""
        self._pending.append(points)

    def deliver(self, t_s: float) -> dict[str, np.ndarray]:
        """Return the points received in ``(previous t, t_s]``, in order of receipt."""
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


@numba.njit(cache=True)
def _due_rows(vid, equipped, phase, last_period, t, period, out):
    """Rows of equipped vehicles whose next reporting period has begun.

    Marks their period as reported; returns how many rows were written to ``out``.
    """
    n = 0
    for r in range(vid.shape[0]):
        v = vid[r]
        if not equipped[v]:
            continue
        k = np.int64(np.floor((t - phase[v]) / period))
        if k > last_period[v]:
            last_period[v] = k
            out[n] = r
            n += 1
    return n


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
        self._rows = np.empty(256, dtype=np.int64)
        self._cols: list[dict[str, np.ndarray]] = []
        self._truth: list[dict[str, np.ndarray]] = []

    def attach(self, sim: Simulation) -> None:
        """Watch every step of ``sim``."""
        sim.add_step_hook(self.on_step)

    def on_step(self, view: StepView) -> None:
        """Sample the probe vehicles due to report at this step."""
        s = self.settings
        if len(self._rows) < len(view.vid):
            self._rows = np.empty(2 * len(view.vid), dtype=np.int64)
        n_due = _due_rows(view.vid, self.equipped, self.phase, self.last_period, view.t_s,
                          s.period_s, self._rows)
        if n_due == 0:
            return
        rows = self._rows[:n_due].copy()
        vid = view.vid[rows]
        dist = self.route_offset[vid, view.route_pos[rows]] + view.pos_m[rows]
        keep = (dist >= s.trim_m) & (dist <= self.route_length[vid] - s.trim_m)
        keep &= self.rng.random(len(rows)) >= s.dropout
        if not keep.any():
            return
        rows, vid = rows[keep], vid[keep]
        m = len(rows)
        link, lane, pos = view.link[rows], view.lane[rows], view.pos_m[rows]
        x, y = self.geometry.positions_xy(link, lane, pos)
        nx = x + self.rng.normal(0.0, s.position_sigma_m, m) if s.position_sigma_m else x
        ny = y + self.rng.normal(0.0, s.position_sigma_m, m) if s.position_sigma_m else y
        lat, lon = self.geometry.projection.to_latlon(nx, ny)
        speed = view.speed_mps[rows] * 3.6
        if s.speed_sigma_kmh:
            speed = np.maximum(speed + self.rng.normal(0.0, s.speed_sigma_kmh, m), 0.0)
        heading = self.geometry.heading_deg[link]
        if s.heading_sigma_deg:
            heading = heading + self.rng.normal(0.0, s.heading_sigma_deg, m)
        # Whole milliseconds, as in a probe file, so that a replay of the file
        # sees exactly what the simulation's controller saw.
        sent = np.full(m, np.round(view.t_s * 1000.0) / 1000.0)
        received = np.round((sent + s.latency_fixed_s + self.rng.uniform(
            0.0, s.latency_jitter_s, m)) * 1000.0) / 1000.0
        cols = {"time_sent_s": sent, "time_received_s": received, "lat_deg": lat,
                "lon_deg": lon, "speed_kmh": speed, "heading_deg": heading % 360.0}
        if s.anonymisation == "rotating":
            epoch = np.floor((view.t_s + self.rotation_phase[vid]) / s.rotation_s)
            cols["pseudonym"] = pseudonyms(self.salt, vid, epoch.astype(np.int64))
        elif s.anonymisation == "raw":
            cols["pseudonym"] = np.array([f"veh{v}" for v in vid.tolist()], dtype=object)
        self._cols.append(cols)
        self._truth.append({"vid": vid, "link": link, "lane": lane, "pos_m": pos,
                            "speed_mps": view.speed_mps[rows].copy(), "x_m": x, "y_m": y})
        self.feed.push(cols)

    def column_names(self) -> list[str]:
        """Columns of the points this sampler emits."""
        return probe_columns(self.settings)

    def stream(self) -> ProbeStream:
        """All points sampled so far."""
        names = self.column_names()
        tnames = ["vid", "link", "lane", "pos_m", "speed_mps", "x_m", "y_m"]
        if self._cols:
            cols = {k: np.concatenate([c[k] for c in self._cols]) for k in names}
            truth = {k: np.concatenate([c[k] for c in self._truth]) for k in tnames}
        else:
            cols = {k: np.empty(0, dtype=object if k == "pseudonym" else float) for k in names}
            truth = {k: np.empty(0) for k in tnames}
        return ProbeStream(columns=cols, truth=truth, anonymisation=self.settings.anonymisation)
