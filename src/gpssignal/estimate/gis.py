"""The estimate as GIS layers: junction points and monitored stretches.

Two files, returned as bytes for the estimate's all-or-nothing writer
(:func:`gpssignal.evaluate.io.write_tables`):

``junctions.geojson``, ``stretches.geojson``
    RFC 7946 GeoJSON: WGS84 longitude, latitude (EPSG:4326), no ``crs``
    member, because RFC 7946 allows no other CRS.
``estimate.gpkg``
    One OGC GeoPackage with four layers: ``junctions_4326``,
    ``junctions_25832``, ``stretches_4326`` and ``stretches_25832``
    (EPSG:25832, ETRS89 / UTM zone 32N, the Danish municipal standard).
    Written by GDAL through pyogrio, with the GeoPackage's ``last_change``
    timestamps fixed at :data:`FIXED_TIMESTAMP`, so the same estimate gives
    the same bytes.

A junction point carries every column of ``junctions.csv`` as attributes
(status ``ok``, ``skipped`` or ``error``). A row whose position never passed
the checks (an error found while reading the list: bad or swapped lat/lon, a
missing column, ...) has no point and is only in ``junctions.csv``; a row that
failed later (its scenario could not be built) keeps its point. A stretch
line is the monitored stretch of the generated scenario of each ``ok`` or
``skipped`` junction, along the middle of its lanes, as the GPS model stores
it (:func:`gpssignal.control.gps.stretch_polylines`).

Notes
-----
Coordinates are transformed with pyproj (``always_xy``: longitude, easting
first); the stretch polylines come from the scenario's local frame
(:class:`gpssignal.model.geo.LocalProjection`) back to WGS84, then to UTM.
"""

from __future__ import annotations

import json
import math
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import shapely
import shapely.geometry
from pyproj import Transformer

from gpssignal.control.gps import stretch_polylines
from gpssignal.estimate.junctions import JunctionSpec, RowError, Template, build_scenario
from gpssignal.model.geo import LocalProjection
from gpssignal.model.scenario import Scenario

__all__ = [
    "FIXED_TIMESTAMP",
    "GEOPACKAGE_FILE",
    "JUNCTIONS_GEOJSON",
    "STRETCHES_GEOJSON",
    "UTM_EPSG",
    "WGS84_EPSG",
    "gis_files",
    "junction_layer",
    "stretch_layer",
]

#: WGS84 longitude/latitude, the only CRS of RFC 7946 GeoJSON.
WGS84_EPSG = 4326
#: ETRS89 / UTM zone 32N, the Danish municipal standard.
UTM_EPSG = 25832
JUNCTIONS_GEOJSON = "junctions.geojson"
STRETCHES_GEOJSON = "stretches.geojson"
GEOPACKAGE_FILE = "estimate.gpkg"
#: The GeoPackage's ``gpkg_contents.last_change`` (GDAL's ``OGR_CURRENT_DATE``):
#: the Unix epoch, plainly not a real time, so reruns are byte-identical.
FIXED_TIMESTAMP = "1970-01-01T00:00:00.000Z"

#: Text and integer attributes of a junction point; every other column of
#: ``junctions.csv`` is a real number (missing: null). Fixed by name, not
#: guessed from the values, so the layer schema is the same for every list.
_TEXT_COLUMNS = frozenset({
    "name", "municipality", "status", "junction_id", "plan", "capacity_check", "verdict",
    "existing_plan", "best_fixed", "gps_vs_best_fixed_verdict", "scenario_file",
    "model_file", "error"})
_INTEGER_COLUMNS = frozenset({"row", "days_simulated"})
#: The attributes of a stretch line, in order.
_STRETCH_COLUMNS = ("junction_id", "row", "name", "status", "verdict", "stretch_id",
                    "description", "length_m", "speed_limit_kmh")


def _utm(geoms: np.ndarray) -> np.ndarray:
    """Return WGS84 (lon, lat) geometries in EPSG:25832 (easting, northing [m])."""
    tr = Transformer.from_crs(WGS84_EPSG, UTM_EPSG, always_xy=True)

    def project(xy: np.ndarray) -> np.ndarray:
        x, y = tr.transform(xy[:, 0], xy[:, 1])
        return np.column_stack([x, y])

    return shapely.transform(geoms, project)


def _column(values: pd.Series, name: str) -> tuple[np.ndarray, np.ndarray | None]:
    """Return one attribute column for GDAL, and its null mask (integers only)."""
    if name in _TEXT_COLUMNS:
        return np.array([None if pd.isna(v) else str(v) for v in values], dtype=object), None
    number = pd.to_numeric(values, errors="coerce")
    if name in _INTEGER_COLUMNS:
        missing = number.isna().to_numpy()
        return number.fillna(0).astype("int64").to_numpy(), missing
    return number.astype("float64").to_numpy(), None


def junction_layer(jt: pd.DataFrame, specs: Sequence[JunctionSpec]) -> pd.DataFrame:
    """Return the junction points: ``jt``'s rows that have a checked position.

    Parameters
    ----------
    jt : pandas.DataFrame
        The junction table (:func:`gpssignal.estimate.junction_table`).
    specs : sequence of JunctionSpec
        Every row whose position passed the checks, whatever its status;
        matched to ``jt`` by ``row``.

    Returns
    -------
    pandas.DataFrame
        ``jt``'s columns and ``geometry`` (shapely points, lon/lat [deg]), in
        ``jt``'s order; rows without a spec are left out.
    """
    where = {s.row: (s.lon, s.lat) for s in specs}
    kept = jt[jt["row"].isin(where)].reset_index(drop=True)
    geoms = [shapely.Point(*where[int(r)]) for r in kept["row"]]
    return kept.assign(geometry=np.array(geoms, dtype=object))


def stretch_layer(jt: pd.DataFrame, scenarios: Mapping[str, Scenario]) -> pd.DataFrame:
    """Return the monitored stretches of each junction of ``scenarios`` as lon/lat lines.

    ``scenarios`` maps a junction id of ``jt`` to its generated scenario; the
    line follows the middle of the stretch's lanes, in driving order.
    """
    info = jt.set_index("junction_id")
    rows = []
    for jid, sc in scenarios.items():
        proj = LocalProjection.for_scenario(sc)
        polys = stretch_polylines(sc)
        limit = {lk.id: lk.speed_limit_kmh for lk in sc.links}
        j = info.loc[jid]
        for st in sc.stretches:
            xy, length_m = polys[st.id]
            lat, lon = proj.to_latlon(xy[:, 0], xy[:, 1])
            rows.append({"junction_id": jid, "row": j["row"], "name": j["name"],
                         "status": j["status"], "verdict": j["verdict"], "stretch_id": st.id,
                         "description": st.description, "length_m": length_m,
                         "speed_limit_kmh": limit[st.links[-1]],
                         "geometry": shapely.LineString(np.column_stack([lon, lat]))})
    return pd.DataFrame(rows, columns=[*_STRETCH_COLUMNS, "geometry"])


def _json_value(value: Any) -> Any:
    """Return a JSON value: NaN, ±inf and None as null, numpy scalars as Python ones.

    JSON has no NaN or infinity; an infinite value (an unbounded capture-ratio
    interval, ``capture_ci95_low = -inf``) becomes null like a missing one.
    The GeoPackage keeps it (SQLite stores ±inf).
    """
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return None
    return value


def _geojson(layer: pd.DataFrame) -> bytes:
    """Return ``layer`` (lon/lat geometries) as an RFC 7946 FeatureCollection."""
    columns = [c for c in layer.columns if c != "geometry"]
    features = [{"type": "Feature",
                 "geometry": shapely.geometry.mapping(rec["geometry"]),
                 "properties": {c: _json_value(rec[c]) for c in columns}}
                for _, rec in layer.iterrows()]
    # One feature a line: readable, and a rerun's changes show as line diffs.
    lines = ",\n".join(json.dumps(f, ensure_ascii=False, allow_nan=False) for f in features)
    return f'{{"type": "FeatureCollection", "features": [\n{lines}\n]}}\n'.encode()


def _write_layer(path: Path, name: str, layer: pd.DataFrame, kind: str, epsg: int,
                 append: bool) -> None:
    """Add ``layer`` (lon/lat geometries) to the GeoPackage at ``path`` in EPSG ``epsg``."""
    import pyogrio.raw

    geoms = layer["geometry"].to_numpy(dtype=object)
    if epsg != WGS84_EPSG:
        geoms = _utm(geoms)
    columns = [c for c in layer.columns if c != "geometry"]
    data, masks = zip(*(_column(layer[c], c) for c in columns), strict=True)
    pyogrio.raw.write(str(path), shapely.to_wkb(geoms), list(data), columns,
                      field_mask=list(masks), layer=name, driver="GPKG", geometry_type=kind,
                      crs=f"EPSG:{epsg}", append=append)


def _geopackage(layers: Mapping[str, tuple[pd.DataFrame, str]]) -> bytes:
    """Return a GeoPackage of ``layers`` (name -> (lon/lat layer, geometry type)).

    Each layer is written twice, as ``NAME_4326`` and ``NAME_25832``.
    """
    import pyogrio

    old = pyogrio.get_gdal_config_option("OGR_CURRENT_DATE")
    pyogrio.set_gdal_config_options({"OGR_CURRENT_DATE": FIXED_TIMESTAMP})
    try:
        with tempfile.TemporaryDirectory(prefix="gpssignal-gis-") as work:
            path = Path(work) / GEOPACKAGE_FILE
            for k, (name, (layer, kind)) in enumerate(layers.items()):
                for j, epsg in enumerate((WGS84_EPSG, UTM_EPSG)):
                    _write_layer(path, f"{name}_{epsg}", layer, kind, epsg,
                                 append=k > 0 or j > 0)
            return path.read_bytes()
    finally:
        pyogrio.set_gdal_config_options({"OGR_CURRENT_DATE": old})


def gis_files(jt: pd.DataFrame, specs: Sequence[JunctionSpec], tpl: Template
              ) -> dict[str, bytes]:
    """Return the estimate's GIS files (name -> bytes), see the module docstring.

    Parameters
    ----------
    jt : pandas.DataFrame
        The junction table (:func:`gpssignal.estimate.junction_table`).
    specs : sequence of JunctionSpec
        Every row of the list whose position passed the checks (estimated,
        skipped or failed later).
    tpl : Template
        The estimator's template: the stretches are those of each ``ok`` or
        ``skipped`` junction's scenario, generated again from its row (the
        same text as ``scenarios/<id>.toml``).
    """
    status = dict(zip(jt["row"], jt["status"], strict=True))
    scenarios: dict[str, Scenario] = {}
    for spec in specs:
        if status.get(spec.row) in ("ok", "skipped"):
            try:
                scenarios[spec.id] = build_scenario(spec, tpl)[0]
            except RowError:   # reported in junctions.csv already; no stretch to draw
                continue
    points = junction_layer(jt, specs)
    lines = stretch_layer(jt, scenarios)
    return {
        JUNCTIONS_GEOJSON: _geojson(points),
        STRETCHES_GEOJSON: _geojson(lines),
        GEOPACKAGE_FILE: _geopackage({"junctions": (points, "Point"),
                                      "stretches": (lines, "LineString")}),
    }
