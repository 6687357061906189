"""Tests of the geo-reference (gpssignal.model.geo): the local projection, its
accuracy against the haversine distance as the module docstring claims, and the
straight-segment link geometry the probe sampler draws positions from.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose

from gpssignal.model.geo import (
    EARTH_RADIUS_M,
    LocalProjection,
    bearing_deg,
    link_geometry,
)
from gpssignal.model.io import parse_scenario, read_scenario
from gpssignal.sim.network import compile_network

REPO = Path(__file__).resolve().parents[2]
TINY = REPO / "scenarios" / "tiny.toml"
VALLENSBAEK = REPO / "scenarios" / "vallensbaek.toml"
TWO_JUNCTIONS = REPO / "tests" / "data" / "two_junctions.toml"

#: Tiny's junction J1 (scenarios/tiny.toml), the reference point of its frame.
LAT0, LON0 = 55.63, 12.38


def haversine_m(lat1, lon1, lat2, lon2, radius=EARTH_RADIUS_M):
    """Great-circle distance on the sphere of ``radius`` [m] (independent oracle)."""
    p1, p2 = np.radians(lat1), np.radians(lat2)
    dp = np.radians(np.asarray(lat2) - np.asarray(lat1))
    dl = np.radians(np.asarray(lon2) - np.asarray(lon1))
    a = np.sin(dp / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dl / 2) ** 2
    return 2 * radius * np.arcsin(np.sqrt(a))


def circ_diff_deg(a, b):
    """Signed angular difference a - b in (-180, 180] [deg]."""
    return (np.asarray(a) - np.asarray(b) + 180.0) % 360.0 - 180.0


@pytest.fixture(scope="module")
def tiny():
    return read_scenario(TINY)


@pytest.fixture(scope="module")
def tiny_geo(tiny):
    return link_geometry(tiny)


# ---------------------------------------------------------------------------
# LocalProjection
# ---------------------------------------------------------------------------

def test_reference_point_is_the_origin_and_axes_point_east_and_north():
    proj = LocalProjection(LAT0, LON0)
    x, y = proj.to_xy(np.array(LAT0), np.array(LON0))
    assert float(x) == 0.0 and float(y) == 0.0
    x, y = proj.to_xy(np.array([LAT0, LAT0 + 0.01]), np.array([LON0 + 0.01, LON0]))
    assert x[0] > 0 and y[0] == 0.0      # east of the reference: +x only
    assert x[1] == 0.0 and y[1] > 0      # north of the reference: +y only


def test_projection_scalar_empty_and_nan_inputs():
    proj = LocalProjection(LAT0, LON0)
    lat, lon = proj.to_latlon(100.0, -50.0)
    assert np.ndim(lat) == 0 and np.ndim(lon) == 0
    x, y = proj.to_xy(lat, lon)
    assert float(x) == pytest.approx(100.0, abs=1e-9)
    assert float(y) == pytest.approx(-50.0, abs=1e-9)
    ex, ey = proj.to_xy(np.empty(0), np.empty(0))
    assert ex.shape == (0,) and ey.shape == (0,)
    nx, ny = proj.to_xy(np.array([np.nan, LAT0]), np.array([LON0, np.nan]))
    assert np.isnan(nx[1]) and np.isnan(ny[0])
    assert nx[0] == 0.0 and ny[1] == 0.0


@settings(max_examples=200, deadline=None)
@given(lat0=st.floats(-80, 80), lon0=st.floats(-179, 179),
       x=st.floats(-20_000, 20_000), y=st.floats(-20_000, 20_000))
def test_projection_round_trip_is_exact(lat0, lon0, x, y):
    # The inverse is algebraically exact: only float rounding remains, far
    # below 1e-9 deg (0.1 mm) and 1e-6 m.
    proj = LocalProjection(lat0, lon0)
    lat, lon = proj.to_latlon(np.array([x]), np.array([y]))
    x2, y2 = proj.to_xy(lat, lon)
    assert_allclose(x2, [x], rtol=0, atol=1e-6)
    assert_allclose(y2, [y], rtol=0, atol=1e-6)
    lat3, lon3 = proj.to_latlon(x2, y2)
    assert_allclose(lat3, lat, rtol=0, atol=1e-9)
    assert_allclose(lon3, lon, rtol=0, atol=1e-9)


def test_north_south_distances_equal_the_haversine_on_the_same_sphere():
    # y = R * dlat is the meridian arc of the sphere of radius R, which is
    # exactly what the haversine measures north-south: only rounding remains.
    proj = LocalProjection(LAT0, LON0)
    y = np.array([-5000.0, -1000.0, 250.0, 3000.0, 5000.0])
    lat, lon = proj.to_latlon(np.zeros_like(y), y)
    d = haversine_m(LAT0, LON0, lat, lon)
    assert_allclose(d, np.abs(y), rtol=1e-9)


def test_east_west_distance_error_matches_the_documented_tan_lat0_rule():
    # Docstring: the east-west scale error is about tan(lat0) * dy / R, so an
    # east-west distance of 1 km measured 5 km north of the reference is off by
    # ~1.2 m at 55.6 N. The exact error is cos(lat0) / cos(lat) - 1, whose
    # first-order term is that rule; the second-order term is (dy/R)^2 ~ 1e-6
    # relative, so the rule holds within a few per cent of itself.
    proj = LocalProjection(LAT0, LON0)
    for dy in (-5000.0, -2000.0, 1000.0, 5000.0):
        lat, lon = proj.to_latlon(np.array([0.0, 1000.0]), np.array([dy, dy]))
        true = haversine_m(lat[0], lon[0], lat[1], lon[1])
        rel = 1000.0 / true - 1.0          # local-frame distance vs the sphere
        predicted = math.tan(math.radians(LAT0)) * dy / EARTH_RADIUS_M
        assert rel == pytest.approx(predicted, rel=0.03), dy
    lat, lon = proj.to_latlon(np.array([0.0, 1000.0]), np.array([5000.0, 5000.0]))
    err = 1000.0 - haversine_m(lat[0], lon[0], lat[1], lon[1])
    assert 1.0 < abs(err) < 1.4            # "off by ~1.2 m"
    # On the reference parallel there is no scale error; what remains is the
    # great circle being shorter than the parallel, by (d/R)^2 tan^2(lat0) / 24
    # relative: 2.2e-9 for 1 km here.
    lat, lon = proj.to_latlon(np.array([-500.0, 500.0]), np.array([0.0, 0.0]))
    assert haversine_m(lat[0], lon[0], lat[1], lon[1]) == pytest.approx(1000.0, rel=1e-8)


@settings(max_examples=200, deadline=None)
@given(lat0=st.floats(-70, 70), x1=st.floats(-3000, 3000), y1=st.floats(-3000, 3000),
       x2=st.floats(-3000, 3000), y2=st.floats(-3000, 3000))
def test_local_distances_stay_within_the_documented_error(lat0, x1, y1, x2, y2):
    # For points a few km apart the relative error of the local distance is at
    # most the east-west scale error tan|lat0| * max|y| / R (docstring), plus
    # its second-order term (1 + tan^2) * (max|y| / R)^2, plus the great circle
    # being shorter than the straight local line by about (d/R)^2 tan^2 / 24
    # (bounded here by (1 + tan^2) (d/R)^2 / 8), plus rounding: coordinates in
    # degrees carry ~1e-14 deg (~1e-9 m) each, so 1e-8 m / d relative.
    proj = LocalProjection(lat0, 12.0)
    d_local = math.hypot(x2 - x1, y2 - y1)
    if d_local < 1.0:
        return  # relative errors of sub-metre distances are rounding noise
    lat, lon = proj.to_latlon(np.array([x1, x2]), np.array([y1, y2]))
    d_true = float(haversine_m(lat[0], lon[0], lat[1], lon[1]))
    t = math.tan(math.radians(abs(lat0)))
    ymax = max(abs(y1), abs(y2)) / EARTH_RADIUS_M
    dr = d_local / EARTH_RADIUS_M
    bound = t * ymax + (1 + t * t) * (ymax**2 + dr**2 / 8) + 1e-8 / d_local
    assert abs(d_local / d_true - 1.0) <= bound


def test_sphere_is_within_0_2_percent_of_wgs84_north_south_at_the_junction():
    # Docstring: the north-south scale (a sphere of radius R) is within 0.2 %
    # of the WGS84 ellipsoid at this latitude. The ellipsoid's meridional
    # radius of curvature is M = a (1 - e^2) / (1 - e^2 sin^2 lat)^1.5.
    a, f = 6_378_137.0, 1 / 298.257223563
    e2 = f * (2 - f)
    s = math.sin(math.radians(LAT0))
    m = a * (1 - e2) / (1 - e2 * s * s) ** 1.5
    assert abs(EARTH_RADIUS_M / m - 1) <= 0.002


def test_for_scenario_uses_the_first_junction(tiny):
    proj = LocalProjection.for_scenario(tiny)
    assert (proj.lat0_deg, proj.lon0_deg) == (LAT0, LON0)


# ---------------------------------------------------------------------------
# bearing_deg and link_geometry
# ---------------------------------------------------------------------------

def test_bearing_is_clockwise_from_north():
    dx = np.array([0.0, 1.0, 0.0, -1.0, 1.0])
    dy = np.array([1.0, 0.0, -1.0, 0.0, 1.0])
    assert_allclose(bearing_deg(dx, dy), [0.0, 90.0, 180.0, 270.0, 45.0], atol=1e-12)


def test_bearing_stays_below_360_for_rounding_noise(tiny_geo):
    assert bearing_deg(np.array([-1e-20]), np.array([1.0]))[0] < 360.0
    assert ((tiny_geo.heading_deg >= 0) & (tiny_geo.heading_deg < 360)).all()


def test_incoming_link_ends_at_its_junction_and_starts_out_along_the_arm(tiny, tiny_geo):
    g = tiny_geo
    ids = [lk.id for lk in tiny.links]
    w, s = ids.index("W_in"), ids.index("S_in")
    # J1 is the reference point, so its centre is the origin. The arm bearings
    # are 270 (W) and 180 (S); sin/cos of those leave ~1e-14 m of rounding.
    assert_allclose(g.end_xy[w], [0.0, 0.0], atol=1e-9)
    assert_allclose(g.start_xy[w], [-400.0, 0.0], atol=1e-9)
    assert_allclose(g.end_xy[s], [0.0, 0.0], atol=1e-9)
    assert_allclose(g.start_xy[s], [0.0, -300.0], atol=1e-9)
    # Drawn length equals the nominal length for boundary links.
    d = g.end_xy - g.start_xy
    assert_allclose(np.hypot(d[:, 0], d[:, 1]), [lk.length_m for lk in tiny.links],
                    rtol=1e-12)
    # Headings: W_in eastbound (90), S_in northbound (~0, compared on the circle).
    assert abs(circ_diff_deg(g.heading_deg[w], 90.0)) < 1e-9
    assert abs(circ_diff_deg(g.heading_deg[s], 0.0)) < 1e-9


def test_outgoing_link_starts_at_the_centre_and_runs_along_the_arm(tiny, tiny_geo):
    g = tiny_geo
    ids = [lk.id for lk in tiny.links]
    e, n = ids.index("E_out"), ids.index("N_out")
    assert_allclose(g.start_xy[e], [0.0, 0.0], atol=1e-9)
    assert_allclose(g.end_xy[e], [200.0, 0.0], atol=1e-9)
    assert_allclose(g.end_xy[n], [0.0, 200.0], atol=1e-9)
    assert abs(circ_diff_deg(g.heading_deg[e], 90.0)) < 1e-9
    assert abs(circ_diff_deg(g.heading_deg[n], 0.0)) < 1e-9


def test_link_between_junctions_runs_centre_to_centre():
    sc = read_scenario(TWO_JUNCTIONS)
    g = link_geometry(sc)
    k = [lk.id for lk in sc.links].index("J1_J2")
    proj = g.projection
    c1 = proj.to_xy(np.array(sc.junctions[0].lat_deg), np.array(sc.junctions[0].lon_deg))
    c2 = proj.to_xy(np.array(sc.junctions[1].lat_deg), np.array(sc.junctions[1].lon_deg))
    assert_allclose(g.start_xy[k], np.ravel(c1), atol=1e-9)
    assert_allclose(g.end_xy[k], np.ravel(c2), atol=1e-9)
    assert abs(circ_diff_deg(g.heading_deg[k], 90.0)) < 1e-9
    # 0.0024 deg of longitude at 55.65 N is ~151 m: the drawn length may differ
    # from the nominal 150 m, and a position maps to the fraction pos / length.
    x, _y = g.positions_xy(np.array([k]), np.array([g.lane_link.tolist().index(k)]),
                          np.array([75.0]))
    assert float(x[0]) == pytest.approx((c1[0] + c2[0]) / 2, abs=1e-9)


def test_positions_lie_on_the_segment_with_lanes_offset_to_the_right(tiny, tiny_geo):
    g = tiny_geo
    ids = [lk.id for lk in tiny.links]
    w, s = ids.index("W_in"), ids.index("S_in")
    lane_w = g.lane_link.tolist().index(w)
    lane_s = g.lane_link.tolist().index(s)
    half = 0.5 * 3.25  # one lane: offset (1 - 0 - 0.5) * lane_width_m (default 3.25 m)
    x, y = g.positions_xy(np.array([w, w, s]), np.array([lane_w, lane_w, lane_s]),
                          np.array([0.0, 400.0, 100.0]))
    # Eastbound: right is south (-y). Northbound: right is east (+x).
    assert_allclose(x, [-400.0, 0.0, half], atol=1e-9)
    assert_allclose(y, [-half, -half, -200.0], atol=1e-9)


def test_multi_lane_link_kerb_lane_is_furthest_right():
    text = TINY.read_text(encoding="utf-8")
    old = 'lane = [ { movements = ["through"], group = "A" } ]'
    assert text.count(old) == 1
    text = text.replace(old, 'lane = [ { movements = ["through"], group = "A" }, '
                             '{ movements = ["through"], group = "A" } ]')
    sc = parse_scenario(text)
    g = link_geometry(sc)
    w = [lk.id for lk in sc.links].index("W_in")
    lanes = np.flatnonzero(g.lane_link == w)
    assert len(lanes) == 2
    # Lane k of n (0 = kerb) is offset (n - k - 0.5) * 3.25 m to the right.
    assert_allclose(g.lane_offset_m[lanes], [1.5 * 3.25, 0.5 * 3.25])
    x, y = g.positions_xy(np.array([w, w]), lanes, np.array([200.0, 200.0]))
    assert_allclose(x, [-200.0, -200.0], atol=1e-9)
    assert_allclose(y, [-1.5 * 3.25, -0.5 * 3.25], atol=1e-9)  # eastbound: right = south


def test_lane_order_matches_the_compiled_network():
    sc = read_scenario(VALLENSBAEK)
    g = link_geometry(sc)
    net = compile_network(sc)
    assert g.lane_link.tolist() == list(net.lane_link)
    assert len(g.lane_offset_m) == net.n_lanes
    # Every incoming link ends at the (single) junction, the origin.
    for k, lk in enumerate(sc.links):
        if lk.to_arm is not None:
            assert_allclose(g.end_xy[k], [0.0, 0.0], atol=1e-9)
        else:
            assert_allclose(g.start_xy[k], [0.0, 0.0], atol=1e-9)
