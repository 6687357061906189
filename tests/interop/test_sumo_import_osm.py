"""``gpssignal import-osm`` on a hand-written OpenStreetMap crossing.

``tests/data/sumo_import/crossing.osm`` is one signalised 4-arm crossing
(centre node ``highway=traffic_signals``): an east-west secondary road with
two lanes each way at 50 km/h and a north-south residential street with one
lane each way at 30 km/h, arms about 200 m long. netconvert (the sumo extra)
builds the network; the importer turns it into a scenario.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from gpssignal.errors import SumoNotFound
from gpssignal.model.io import read_scenario

ROOT = Path(__file__).resolve().parents[2]
OSM = ROOT / "tests" / "data" / "sumo_import" / "crossing.osm"


@pytest.fixture(scope="module")
def imported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    from gpssignal.cli import main

    tmp = tmp_path_factory.mktemp("osm")
    out = tmp / "crossing.toml"
    assert main(["import-osm", str(OSM), "--default-vph", "300", "--out", str(out),
                 "--keep-net", str(tmp / "crossing.net.xml"), "-q"]) == 0
    return out, out.read_text(encoding="utf-8")


@pytest.mark.sumo
def test_import_osm_builds_a_valid_crossing(imported: tuple[Path, str]) -> None:
    from gpssignal.cli import main

    out, text = imported
    assert text.startswith("# Imported from SUMO")
    assert "placeholder" in text  # OSM has no demand: --default-vph is listed
    assert main(["validate", str(out)]) == 0
    sc = read_scenario(out)
    assert len(sc.junctions) == 1
    j = sc.junctions[0]
    # netconvert's UTM projection is inverted back to the node's position
    # (1e-5 deg is about 1 m; the junction centre moves a little in netconvert).
    assert (j.lat_deg, j.lon_deg) == pytest.approx((55.65, 12.40), abs=1e-5)
    assert sorted(a.id for a in j.arms) == ["E", "N", "S", "W"]
    # The OSM ways run along meridians and parallels: true bearings 0/90/180/270°.
    # netconvert projects to UTM zone 33, whose grid north is ≈ 2.1° off true
    # north at 12.4° E; the importer turns grid bearings into true ones (before,
    # N came out at 2.15°). 0.2° allows for the arms' first shape segments.
    bearings = {a.id: a.bearing_deg for a in j.arms}
    for aid, true in (("N", 0.0), ("E", 90.0), ("S", 180.0), ("W", 270.0)):
        assert abs((bearings[aid] - true + 180) % 360 - 180) < 0.2, bearings
    assert len(j.programs) == 1 and j.default_program == j.programs[0].name
    prog = j.programs[0]
    assert set(prog.greens) == set(j.groups) and len(j.groups) >= 2
    approaches = [lk for lk in sc.links if lk.to_arm is not None]
    assert len(approaches) == 4 and len(sc.links) == 8  # 4 approaches, 4 exits
    by_arm = {str(lk.to_arm).split(".")[1]: lk for lk in approaches}
    # lanes=4 on a two-way secondary is 2 per direction; lanes=2 residential, 1.
    assert {a: len(lk.lanes) for a, lk in by_arm.items()} == {"E": 2, "W": 2, "N": 1, "S": 1}
    assert by_arm["E"].speed_limit_kmh == pytest.approx(50.0, abs=0.1)
    assert by_arm["N"].speed_limit_kmh == pytest.approx(30.0, abs=0.1)
    for lk in approaches:
        assert {m for lane in lk.lanes for m in lane.movements} == {"left", "through", "right"}


@pytest.mark.sumo
def test_imported_crossing_runs(imported: tuple[Path, str], tmp_path: Path) -> None:
    from gpssignal.cli import main

    out, _ = imported
    assert main(["run", str(out), "--out", str(tmp_path / "run"), "-q"]) == 0


@pytest.mark.sumo
def test_import_osm_netconvert_failure_is_one_line(tmp_path: Path, capsys) -> None:
    from gpssignal.cli import main

    bad = tmp_path / "bad.osm"
    bad.write_text("<osm><node id='1' lat='x'/></osm>", encoding="utf-8")
    assert main(["import-osm", str(bad), "--out", str(tmp_path / "b.toml")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "netconvert failed" in err and "bad.osm" in err
    assert not (tmp_path / "b.toml").exists()


def test_import_osm_without_netconvert_is_one_line(tmp_path: Path, capsys,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """No SUMO (simulated, so this runs everywhere): one line naming the extra."""
    import gpssignal.interop.sumo_osm as sumo_osm
    from gpssignal.cli import main

    def missing(name: str) -> Path:
        raise SumoNotFound("Eclipse SUMO not found: install the optional extra "
                           "(pip install 'gpssignal[sumo]') or set SUMO_HOME")

    monkeypatch.setattr(sumo_osm, "sumo_binary", missing)
    assert main(["import-osm", str(OSM), "--default-vph", "300",
                 "--out", str(tmp_path / "c.toml")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "gpssignal import-osm: error:" in err and "sumo" in err
    assert not (tmp_path / "c.toml").exists()
