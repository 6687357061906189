"""The estimate's GIS files: GeoJSON (EPSG:4326) and a GeoPackage in EPSG:4326 and 25832.

Fast: the command runs with ``--skip-undersaturated`` on a light junction (it
writes without simulating), and the ``ok`` path is checked on a junction
table built from a hand-made summary (no simulation either).
"""

from __future__ import annotations

import contextlib
import io
import json
import sqlite3
import struct
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import shapely
from pyproj import Geod, Transformer

from gpssignal import cli
from gpssignal.estimate import JunctionSummary, junction_table, read_junctions, read_template
from gpssignal.estimate.gis import GEOPACKAGE_FILE, gis_files
from gpssignal.estimate.run import JUNCTION_COLUMNS
from tests.estimate.lists import CROSS, HEADER

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = REPO / "scenarios" / "estimate_template.toml"
# The list of tests/estimate/test_estimate.py: CROSS is under-saturated (so
# `--skip-undersaturated` skips it); BAD has a bad cycle and no checked position.
BAD = ("Broken,Town B,55.62,12.42,abc,07:00-08:00,07:00,,,"
       "1,50,0,300,0,1,50,0,100,0,0,,0,0,0,0,,0,0,0")
GIS_FILES = ("junctions.geojson", "stretches.geojson", GEOPACKAGE_FILE)
LAYERS = {"junctions_4326": 4326, "junctions_25832": 25832,
          "stretches_4326": 4326, "stretches_25832": 25832}
#: GRS80 (the ellipsoid of ETRS89) and UTM's scale on the central meridian.
UTM_SCALE = 0.9996
#: pyproj's own transform is the reference of the 25832 layers: the only
#: differences are float rounding through WKB (none) [m].
SAME_TRANSFORM_M = 1e-6


def _write(tmp_path: Path, *rows: str) -> Path:
    p = tmp_path / "junctions.csv"
    p.write_text("\n".join([HEADER, *rows]) + "\n", encoding="utf-8")
    return p


def _estimate(csv: Path, out: Path) -> int:
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        return cli.main(["estimate", str(csv), "--skip-undersaturated", "--out", str(out)])


@pytest.fixture(scope="module")
def estimated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Return the output folder of an estimate of CROSS (skipped) and BAD (error)."""
    tmp = tmp_path_factory.mktemp("gis")
    assert _estimate(_write(tmp, CROSS, BAD), tmp / "out") == 2   # BAD is a bad row
    return tmp / "out"


def _features(path: Path) -> list[dict]:
    doc = json.loads(path.read_text(encoding="utf-8"))
    assert doc["type"] == "FeatureCollection" and "crs" not in doc   # RFC 7946: WGS84 only
    return doc["features"]


def _gpkg_geometries(path: Path, layer: str) -> list[shapely.Geometry]:
    """Decode a layer's GeoPackageBinary blobs (GeoPackage 1.3, clause 2.1.3) with sqlite3."""
    envelope_bytes = {0: 0, 1: 32, 2: 48, 3: 48, 4: 64}
    out = []
    with contextlib.closing(sqlite3.connect(path)) as db:
        for (blob,) in db.execute(f'SELECT geom FROM "{layer}" ORDER BY fid'):
            assert blob[:2] == b"GP"
            flags = blob[3]
            start = 8 + envelope_bytes[(flags >> 1) & 0b111]
            out.append(shapely.from_wkb(blob[start:]))
    return out


def test_junction_points_are_lon_lat_with_the_table_columns(estimated: Path) -> None:
    (point,) = _features(estimated / "junctions.geojson")   # BAD has no position: left out
    assert point["geometry"] == {"type": "Point", "coordinates": [12.40, 55.60]}
    props = point["properties"]
    assert list(props) == JUNCTION_COLUMNS
    jt = pd.read_csv(estimated / "junctions.csv")
    assert list(jt["status"]) == ["skipped", "error"]        # the error row is in the table
    assert props["status"] == "skipped" and props["name"] == "Cross"
    assert props["max_x_existing"] == pytest.approx(jt.loc[0, "max_x_existing"])
    assert props["verdict"] is None                           # NaN is null, not NaN


def test_stretch_line_ends_at_the_stop_line_with_its_length(estimated: Path) -> None:
    (line,) = _features(estimated / "stretches.geojson")
    assert line["properties"]["stretch_id"] == "S_approach"
    (lon0, lat0), (lon1, lat1) = line["geometry"]["coordinates"]
    # Driving north on arm S up to the junction's centre line (lat 55.60),
    # offset right (east) to the lanes' middle by a few metres.
    assert lat0 < lat1 == pytest.approx(55.60, abs=1e-12)
    assert lon0 == lon1 and 0 < (lon0 - 12.40) * 111e3 * np.cos(np.radians(55.6)) < 10
    # The local equirectangular frame's north-south scale is a sphere's:
    # within 0.2 % of the ellipsoid at this latitude (model/geo.py).
    length = Geod(ellps="WGS84").inv(lon0, lat0, lon1, lat1)[2]
    assert length == pytest.approx(line["properties"]["length_m"], rel=0.002)


def test_geopackage_lists_the_layers_with_their_crs(estimated: Path) -> None:
    path = estimated / GEOPACKAGE_FILE
    with contextlib.closing(sqlite3.connect(path)) as db:
        (app,) = db.execute("PRAGMA application_id").fetchone()
        contents = dict(db.execute("SELECT table_name, srs_id FROM gpkg_contents"))
        stamps = {r[0] for r in db.execute("SELECT last_change FROM gpkg_contents")}
        srs = dict(db.execute("SELECT srs_id, organization_coordsys_id FROM "
                              "gpkg_spatial_ref_sys WHERE organization = 'EPSG'"))
    assert struct.pack(">i", app) == b"GPKG"
    assert contents == LAYERS
    assert stamps == {"1970-01-01T00:00:00.000Z"}
    assert srs == {4326: 4326, 25832: 25832}


def test_utm_layers_are_pyprojs_transform_of_the_wgs84_layers(estimated: Path) -> None:
    path = estimated / GEOPACKAGE_FILE
    to_utm = Transformer.from_crs(4326, 25832, always_xy=True)
    for kind in ("junctions", "stretches"):
        wgs = _gpkg_geometries(path, f"{kind}_4326")
        utm = _gpkg_geometries(path, f"{kind}_25832")
        assert len(wgs) == len(utm) == 1
        lonlat = shapely.get_coordinates(wgs[0])
        expected = np.column_stack(to_utm.transform(lonlat[:, 0], lonlat[:, 1]))
        np.testing.assert_allclose(shapely.get_coordinates(utm[0]), expected, rtol=0,
                                   atol=SAME_TRANSFORM_M)
    assert shapely.get_coordinates(_gpkg_geometries(path, "junctions_4326")[0]).tolist() == \
        [[12.40, 55.60]]


def test_utm32_reference_points() -> None:
    to_utm = Transformer.from_crs(4326, 25832, always_xy=True)
    # Copenhagen City Hall, 55.6761 N 12.5683 E: ≈ E 724,350 N 6,175,800; the
    # reference figures are rounded to the kilometre, hence the tolerance.
    e, n = to_utm.transform(12.5683, 55.6761)
    assert e == pytest.approx(724_000, abs=1000) and n == pytest.approx(6_175_000, abs=1000)
    # Closed form: on the central meridian (9° E) the easting is the false
    # easting and the northing is 0.9996 × the GRS80 meridian arc; the geodesic
    # along a meridian is that arc, to well under a millimetre.
    e, n = to_utm.transform(9.0, 55.6761)
    arc_m = Geod(ellps="GRS80").inv(9.0, 0.0, 9.0, 55.6761)[2]
    assert e == pytest.approx(500_000, abs=1e-6) and n == pytest.approx(UTM_SCALE * arc_m,
                                                                         abs=1e-3)


def test_a_rerun_is_byte_identical_and_leaves_other_files_alone(estimated: Path,
                                                                tmp_path: Path) -> None:
    out = tmp_path / "again"
    out.mkdir()
    (out / "notes.gpkg").write_bytes(b"mine")
    assert _estimate(_write(tmp_path, CROSS, BAD), out) == 2
    for name in GIS_FILES:
        assert (out / name).read_bytes() == (estimated / name).read_bytes(), name
    assert (out / "notes.gpkg").read_bytes() == b"mine"


def test_estimated_junctions_carry_their_savings_and_verdict(tmp_path: Path) -> None:
    tpl = read_template(TEMPLATE)
    (spec,), _ = read_junctions(_write(tmp_path, CROSS), tpl)
    summary = JunctionSummary(spec=spec, scenario_toml="", model_json=b"", seeds=(1, 2, 3),
                              time_loss_saved_veh_h=(1.0, 2.0, 3.0), co2_saved_kg=(4.0, 5.0, 6.0),
                              working_days_per_year=250.0,
                              columns={"verdict": "saves", "capture_ci95_high": np.inf})
    jt = junction_table([summary], [])
    files = gis_files(jt, [spec], tpl)
    (point,) = json.loads(files["junctions.geojson"])["features"]
    props = point["properties"]
    assert props["status"] == "ok" and props["verdict"] == "saves"
    assert props["time_loss_saved_veh_h_per_year"] == pytest.approx(500.0)   # 2 × 250
    assert props["time_loss_ci95_low"] < 500 < props["time_loss_ci95_high"]
    assert props["days_simulated"] == 3
    assert props["capture_ci95_high"] is None                  # JSON has no infinity
    path = tmp_path / GEOPACKAGE_FILE
    path.write_bytes(files[GEOPACKAGE_FILE])
    with contextlib.closing(sqlite3.connect(path)) as db:
        assert db.execute('SELECT capture_ci95_high, days_simulated, verdict FROM '
                          '"junctions_25832"').fetchone() == (np.inf, 3, "saves")
    (line,) = json.loads(files["stretches.geojson"])["features"]
    assert line["properties"]["verdict"] == "saves"
    assert gis_files(jt, [spec], tpl) == files


def test_rows_without_a_position_give_empty_layers(tmp_path: Path) -> None:
    tpl = read_template(TEMPLATE)
    _, errors = read_junctions(_write(tmp_path, BAD), tpl)
    files = gis_files(junction_table([], errors), [], tpl)
    assert json.loads(files["junctions.geojson"])["features"] == []
    path = tmp_path / GEOPACKAGE_FILE
    path.write_bytes(files[GEOPACKAGE_FILE])
    with contextlib.closing(sqlite3.connect(path)) as db:
        assert dict(db.execute("SELECT table_name, srs_id FROM gpkg_contents")) == LAYERS
        assert db.execute('SELECT COUNT(*) FROM "junctions_25832"').fetchone() == (0,)
