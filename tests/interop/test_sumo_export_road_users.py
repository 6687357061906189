"""Cyclists in the SUMO export and the cross-check.

* the default scenario's cycle tracks are SUMO edges only bicycles may use,
  and its cyclists ride them with their own vType;
* in SUMO a right-turning car gives way to a cyclist going straight on (the
  road rule gpssignal applies, :func:`gpssignal.model.network.implicit_yields`);
* the cross-check keeps motor KPIs motor-only and has rows for cyclists.

The export-sumo -> import-sumo round trip of the three scenarios is
tests/interop/test_sumo_import_roundtrip.py.
"""

from __future__ import annotations

import dataclasses
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pandas as pd
import pytest

from gpssignal.interop.compare import summary, sumo_kpis
from gpssignal.interop.sumo import sumo_binary
from gpssignal.interop.sumo_export import SumoExport, export_sumo, link_edges
from gpssignal.model.io import read_scenario

pytestmark = pytest.mark.sumo

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> SumoExport:
    sc = read_scenario(ROOT / "scenarios" / "vallensbaek.toml")
    return export_sumo(sc, tmp_path_factory.mktemp("bikes"), seed=1)


def test_cyclists_ride_bicycle_only_edges_with_their_vtype(exported: SumoExport) -> None:
    sc = read_scenario(ROOT / "scenarios" / "vallensbaek.toml")
    bike = next(c for c in sc.vehicle_classes if c.mode == "bicycle")
    allow = {e.get("id"): {ln.get("allow") for ln in e.iter("lane")}
             for e in ET.parse(exported.net).getroot().iter("edge")
             if e.get("function") is None}
    bike_edges = {p.edge for lk in sc.links if lk.mode == "bicycle"
                  for p in link_edges(sc)[lk.id]}
    assert bike_edges and all(allow[e] == {"bicycle"} for e in bike_edges)
    assert all(None in v for e, v in allow.items() if e not in bike_edges)
    root = ET.parse(exported.folder / "routes.rou.xml").getroot()
    vt = next(v for v in root.iter("vType") if v.get("id") == bike.name)
    assert vt.get("vClass") == "bicycle" and vt.get("emissionClass") == "Zero"
    assert float(vt.get("desiredMaxSpeed")) == pytest.approx(20 / 3.6, abs=1e-6)
    for f, attr in (("length_m", "length"), ("min_gap_m", "minGap"),
                    ("max_accel_mps2", "accel"), ("comfortable_decel_mps2", "decel"),
                    ("emergency_decel_mps2", "emergencyDecel")):
        assert float(vt.get(attr)) == getattr(bike, f), attr
    n_bikes = 0
    for v in root.iter("vehicle"):
        edges = set(v.find("route").get("edges").split())
        is_bike = v.get("type") == bike.name
        n_bikes += is_bike
        # A cyclist only on cycle tracks, a motor vehicle never on one.
        assert (edges <= bike_edges) if is_bike else not edges & bike_edges
    assert n_bikes > 500   # ≈ 800 cyclists a morning (docs/validation.md)


def _exit_times(folder: Path, vehicles: list[tuple[str, str, float, str]]) -> dict[str, float]:
    """Run SUMO on the exported net with only ``vehicles`` (id, type, depart, edges).

    Returns each vehicle's exit time from the first edge of its route that
    ends at the junction (its stop line).
    """
    routes = ET.Element("routes")
    for vt in ET.parse(folder / "routes.rou.xml").getroot().iter("vType"):
        routes.append(vt)
    for vid, vtype, depart, edges in vehicles:
        ET.SubElement(routes, "vehicle", id=vid, type=vtype, depart=f"{depart:g}",
                      departSpeed="desired", speedFactor="1").append(
            ET.Element("route", edges=edges))
    (folder / "two.rou.xml").write_text(ET.tostring(routes, encoding="unicode"))
    out = folder / "two.vehroute.xml"
    subprocess.run([str(sumo_binary("sumo")), "-n", "net.net.xml", "-r", "two.rou.xml",
                    "-a", "tls.add.xml", "--vehroute-output", str(out),
                    "--vehroute-output.exit-times", "true", "--no-step-log", "true",
                    "--no-warnings", "true", "--end", "400"],
                   cwd=folder, check=True, capture_output=True)
    times = {}
    for v in ET.parse(out).getroot().iter("vehicle"):
        r = v.find("route")
        edges, exits = r.get("edges").split(), r.get("exitTimes").split()
        stop = next(i for i, e in enumerate(edges) if e in ("torvevej_s_in",
                                                            "torvevej_s_bike_in"))
        times[v.get("id")] = float(exits[stop])
    return times


def test_right_turning_car_yields_to_straight_cyclist(exported: SumoExport) -> None:
    """A car waiting at red turns right only after a cyclist arriving early in green.

    Program "normal" (the default): NB_TR, the car's and the cyclist's group, is
    green from cycle second 82 (SUMO time 172 in the second cycle). The car
    departs at 100 s and waits at red; the cyclist (1.6 m, 20 km/h) reaches the
    stop line about 5 s into green. Turning right, the car must let it pass;
    going straight on (control), it leaves at green and before the cyclist.
    """
    sc = read_scenario(ROOT / "scenarios" / "vallensbaek.toml")
    car = " ".join(p.edge for p in link_edges(sc)["torvevej_s_in"])
    bike = ("bicycle", 141.0, "torvevej_s_bike_in torvevej_n_bike_out")
    right = _exit_times(exported.folder, [("car", "car_petrol", 100.0, f"{car} parkalle_e_out"),
                                          ("bike", *bike)])
    straight = _exit_times(exported.folder, [("car", "car_petrol", 100.0,
                                              f"{car} torvevej_n_out"), ("bike", *bike)])
    assert 172 < straight["bike"] < 182          # the cyclist arrives early in green
    assert straight["car"] < straight["bike"]    # nothing to yield to going straight on
    assert right["bike"] == pytest.approx(straight["bike"], abs=0.5)
    assert right["car"] > right["bike"]          # the right turner waited for it


def _tripinfo(folder: Path, rows: list[tuple[str, str, float, float, float]]) -> None:
    """Write a tripinfo.xml: (id, vType, depart, arrival, timeLoss) per trip."""
    root = ET.Element("tripinfos")
    for vid, vtype, depart, arrival, loss in rows:
        t = ET.SubElement(root, "tripinfo", id=vid, vType=vtype, depart=f"{depart:g}",
                          departDelay="0", arrival=f"{arrival:g}", timeLoss=f"{loss:g}",
                          routeLength="1000")
        ET.SubElement(t, "emissions", CO2_abs="200000")
    ET.ElementTree(root).write(folder / "tripinfo.xml")


def test_cross_check_has_cyclist_rows_and_motor_only_vehicle_kpis(tmp_path: Path) -> None:
    sc = read_scenario(ROOT / "scenarios" / "vallensbaek.toml")
    sc = dataclasses.replace(sc, stretches=())    # no stretch.xml needed
    _tripinfo(tmp_path, [("0", "car_petrol", 10, 100, 30), ("1", "van", 20, 120, 50),
                         ("2", "bicycle", 30, 150, 12), ("3", "bicycle", 40, 160, 20),
                         ("4", "bicycle", 50, -1, 0)])   # still riding at the end
    k = sumo_kpis(tmp_path, sc)
    assert k["vehicles"] == 2 and k["mean_time_loss_s"] == 40       # motor only
    assert k["co2_g_per_veh_km"] == pytest.approx(200.0)            # 200 g over 1 km each
    assert k["cyclists"] == 3 and k["cyclist_mean_time_loss_s"] == 16
    assert k["cyclist_time_loss_person_h"] == pytest.approx(32 / 3600)
    assert pd.isna(k["pedestrian_mean_delay_s"])                    # not exported
    g = {**k, "cyclist_mean_time_loss_s": 20.0, "pedestrian_mean_delay_s": 40.0}
    df = pd.DataFrame([{"simulator": "gpssignal", **g}, {"simulator": "sumo", **k}])
    s = summary(df).set_index("kpi")
    assert s.loc["cyclist_mean_time_loss_s", "sumo_vs_gpssignal_pct"] == pytest.approx(-20)
    assert pd.isna(s.loc["pedestrian_mean_delay_s", "sumo"])
    assert "stretch_speed_peak_kmh" not in s.index                  # neither has it
