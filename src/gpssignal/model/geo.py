"""Geo-reference: a local metric frame around the network and link geometry.

Projection
----------
An equirectangular (plate carrée) projection about a reference point
``(lat0, lon0)``, the first junction of the scenario:

    x = R · cos(lat0) · (lon − lon0),   y = R · (lat − lat0),   R = 6,371,008.8 m

with angles in radians, ``x`` east and ``y`` north in metres. It is exact at
the reference point and inverted exactly by :meth:`LocalProjection.to_latlon`,
so positions survive a round trip unchanged. Distances are off by the
variation of cos(lat) across the area: the east-west scale error is about
``tan(lat0) · Δy / R``, 0.023 % per kilometre north or south of the
reference at 55.6° N (an east-west distance of 1 km measured 5 km north of
the reference is off by ≈1.2 m). The north-south scale is that of a sphere,
within 0.2 % of the WGS84 ellipsoid at this latitude; being uniform, it
cancels when points are matched back to links with the same projection.
Over the few kilometres of a corridor both are far below GPS noise (≈5 m);
``tests/model/test_model_geo.py`` checks them against the haversine distance.

Why not pyproj here. GIS output (EPSG:4326/25832, :mod:`gpssignal.estimate.gis`)
uses pyproj; this frame does not, for two measured reasons. Speed: the GPS
controller projects every probe point at run time (``GpsRuntime``), and on
this machine the projection above runs at 29 M points/s against 0.9 M points/s
for a pyproj transverse Mercator about the same point (33× slower; 10^6 points
within ±3 km of the pilot junction, best of 5, one core), which would cap the
run-time path far below its target of tens of millions of points per second.
Results: the frames differ by up to 3.4 m within 1 km and 13 m at 3 km (the
sphere against the GRS80 ellipsoid), and lengths by up to 0.13 %; every
probe position written and every map-matching decision near a segment's end
would change, so outputs would not stay byte-identical to today's, with no
gain in accuracy that matters against ≈5 m GPS noise (both directions use
the same frame, so the scale cancels). A swap would need a benchmark showing
the contrary.

Link geometry
-------------
Every link is a straight segment:

* a link into junction ``J`` through arm ``a`` ends at ``J``'s centre and
  starts ``length_m`` out along the arm's bearing;
* a link out of ``J`` through arm ``a`` starts at ``J``'s centre and runs
  ``length_m`` along the bearing;
* a link between two junctions runs from centre to centre.

A position ``pos_m`` along the link maps to the fraction ``pos_m /
length_m`` of the segment (on links between junctions the drawn distance
may differ from ``length_m``). Lanes lie to the right of the segment (right-hand
traffic): lane ``k`` of ``n`` (0 = kerb) is offset ``(n − k − 0.5) ·
lane_width_m``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from gpssignal.model.scenario import Scenario

__all__ = [
    "EARTH_RADIUS_M",
    "LinkGeometry",
    "LocalProjection",
    "bearing_deg",
    "link_geometry",
]

#: Mean Earth radius (IUGG) [m].
EARTH_RADIUS_M = 6_371_008.8


@dataclass(frozen=True, slots=True)
class LocalProjection:
    """Equirectangular projection about ``(lat0_deg, lon0_deg)``."""

    lat0_deg: float
    lon0_deg: float

    def to_xy(self, lat_deg: np.ndarray, lon_deg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """WGS84 degrees to local metres (x east, y north)."""
        k = math.pi / 180.0
        x = EARTH_RADIUS_M * math.cos(self.lat0_deg * k) * (np.asarray(lon_deg) - self.lon0_deg) * k
        y = EARTH_RADIUS_M * (np.asarray(lat_deg) - self.lat0_deg) * k
        return x, y

    def to_latlon(self, x_m: np.ndarray, y_m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Local metres to WGS84 degrees (latitude, longitude).

        ``lat = lat0 + y / R · (180/π)`` and ``lon = lon0 + x / R_p · (180/π)``
        with ``R_p`` = :meth:`parallel_radius_m`, in this order of operations
        (the probe sampler's compiled kernel repeats it, bit for bit).
        """
        k = 180.0 / math.pi
        lat = self.lat0_deg + np.asarray(y_m) / EARTH_RADIUS_M * k
        lon = self.lon0_deg + np.asarray(x_m) / self.parallel_radius_m() * k
        return lat, lon

    def parallel_radius_m(self) -> float:
        """Radius of the parallel through the reference, ``R · cos(lat0)`` [m]."""
        return EARTH_RADIUS_M * math.cos(self.lat0_deg / (180.0 / math.pi))

    def scale_m_per_deg(self) -> tuple[float, float]:
        """Metres per degree of longitude and of latitude at the reference."""
        k = math.pi / 180.0
        return (EARTH_RADIUS_M * math.cos(self.lat0_deg * k) * k, EARTH_RADIUS_M * k)

    @classmethod
    def for_scenario(cls, scenario: Scenario) -> LocalProjection:
        """Return the projection about the scenario's first junction."""
        j = scenario.junctions[0]
        return cls(j.lat_deg, j.lon_deg)


def bearing_deg(dx: np.ndarray, dy: np.ndarray) -> np.ndarray:
    """Direction of travel of a displacement, clockwise from north [deg, 0-360)."""
    b = np.degrees(np.arctan2(dx, dy)) % 360.0
    # x % 360 rounds to 360.0 for tiny negative x; fold it back to 0.
    return np.where(b >= 360.0, 0.0, b)


@dataclass(frozen=True, slots=True)
class LinkGeometry:
    """Straight-segment geometry of every link, in the local frame.

    Arrays are indexed by link index (scenario order) and lane index (global,
    in the order of :func:`gpssignal.sim.network.compile_network`).
    """

    projection: LocalProjection
    start_xy: np.ndarray      # (n_links, 2) [m]
    end_xy: np.ndarray        # (n_links, 2) [m]
    length_m: np.ndarray      # nominal lengths (scenario) [m]
    heading_deg: np.ndarray   # direction of travel [deg]
    lane_offset_m: np.ndarray  # per global lane: offset to the right of the link [m]
    lane_link: np.ndarray     # per global lane: link index
    #: Per link: ``end_xy - start_xy`` [m] and its unit vector [-], worked out
    #: once here rather than per point (the same element-wise numbers).
    delta_xy: np.ndarray = field(init=False, repr=False, compare=False)
    direction_xy: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        """Work out each link's displacement and direction."""
        d = self.end_xy - self.start_xy
        norm = np.hypot(d[:, 0], d[:, 1])
        # A link of no extent has no direction (NaN), as it always had; its
        # positions warned when asked for, not when the geometry is built.
        with np.errstate(invalid="ignore", divide="ignore"):
            u = np.column_stack([d[:, 0] / norm, d[:, 1] / norm])
        object.__setattr__(self, "delta_xy", d)
        object.__setattr__(self, "direction_xy", u)

    def positions_xy(self, link: np.ndarray, lane: np.ndarray,
                     pos_m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Local coordinates of vehicles at ``pos_m`` on ``lane`` of ``link`` [m].

        ``x = start_x + frac · d_x + offset · u_y`` and ``y = start_y + frac ·
        d_y − offset · u_x`` with ``frac = pos_m / length_m``, ``d`` =
        :attr:`delta_xy` and ``u`` = :attr:`direction_xy`, in this order of
        operations (the probe sampler's compiled kernel repeats it, bit for bit).
        """
        a, d, u = self.start_xy[link], self.delta_xy[link], self.direction_xy[link]
        frac = np.asarray(pos_m) / self.length_m[link]
        off = self.lane_offset_m[lane]
        # Right of the direction of travel (ux, uy) is (uy, -ux).
        x = a[:, 0] + frac * d[:, 0] + off * u[:, 1]
        y = a[:, 1] + frac * d[:, 1] - off * u[:, 0]
        return x, y


def link_geometry(scenario: Scenario) -> LinkGeometry:
    """Build the straight-segment geometry of ``scenario``'s links."""
    proj = LocalProjection.for_scenario(scenario)
    centre = {}
    for j in scenario.junctions:
        x, y = proj.to_xy(np.array(j.lat_deg), np.array(j.lon_deg))
        centre[j.id] = np.array([float(x), float(y)])

    def arm_vec(ref: str) -> tuple[np.ndarray, np.ndarray]:
        jid, arm = ref.split(".")
        j = scenario.junction(jid)
        b = math.radians(next(a.bearing_deg for a in j.arms if a.id == arm))
        return centre[jid], np.array([math.sin(b), math.cos(b)])

    n = len(scenario.links)
    start = np.zeros((n, 2))
    end = np.zeros((n, 2))
    offsets: list[float] = []
    lane_link: list[int] = []
    for k, lk in enumerate(scenario.links):
        if lk.from_arm is not None and lk.to_arm is not None:
            start[k] = centre[lk.from_arm.split(".")[0]]
            end[k] = centre[lk.to_arm.split(".")[0]]
        elif lk.to_arm is not None:
            c, u = arm_vec(lk.to_arm)
            end[k], start[k] = c, c + lk.length_m * u
        else:
            assert lk.from_arm is not None
            c, u = arm_vec(lk.from_arm)
            start[k], end[k] = c, c + lk.length_m * u
        nl = len(lk.lanes)
        for idx in range(nl):
            offsets.append((nl - idx - 0.5) * lk.lane_width_m)
            lane_link.append(k)
    d = end - start
    return LinkGeometry(projection=proj, start_xy=start, end_xy=end,
                        length_m=np.array([lk.length_m for lk in scenario.links]),
                        heading_deg=bearing_deg(d[:, 0], d[:, 1]),
                        lane_offset_m=np.array(offsets), lane_link=np.array(lane_link))
