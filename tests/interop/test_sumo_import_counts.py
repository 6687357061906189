"""import-sumo's counts CSV demand (``--counts``), on SUMO's RiLSA example 3.

The counts replace the routes' demand (the routes then give only vehicle
types); docs/import.md describes the format. No SUMO needed.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from gpssignal.interop.sumo_import import SumoImportError, import_sumo, parse_counts

DATA = Path(__file__).resolve().parents[1] / "data" / "sumo_import" / "rilsa3"
NET = DATA / "rilsa3.net.xml"
TLS = DATA / "rilsa3_tls.add.xml"
COUNTS = """link,movement,start,count
# a comment line
em,left,07:00,30
em,left,07:15,40
em,through,07:15,100
sm,right,07:30,12.5
"""


def _import(counts: str, routes: tuple[Path, ...] = (), **kw):
    return import_sumo(NET, routes, additional=[TLS], counts=counts, clock0_s=7 * 3600.0,
                       origin=(52.52, 13.40), **kw)


def test_counts_become_the_demand() -> None:
    sc = _import(COUNTS, (DATA / "vtypes.add.xml", DATA / "flows.rou.xml")).scenario
    assert sc.start_clock_s == 7 * 3600.0
    assert sc.duration_s == 3 * 900.0
    # Vehicles per 15 min × 4 = veh/h; an interval without a row is 0.
    got = {(f.link, f.movement): f.flow_vph for f in sc.demand.flows}
    assert got == {("em", "left"): (120.0, 160.0, 0.0), ("em", "through"): (0.0, 400.0, 0.0),
                   ("sm", "right"): (0.0, 0.0, 50.0)}
    # The routes still give the vehicle types (PKW and LKW of RiLSA's flows).
    assert sorted(c.name for c in sc.vehicle_classes) == ["LKW", "PKW"]


def test_counts_without_routes_use_sumo_default_car() -> None:
    sc = _import(COUNTS.replace(",", ";")).scenario   # semicolon-separated, as Excel writes
    assert [c.name for c in sc.vehicle_classes] == ["DEFAULT_VEHTYPE"]
    assert sc.vehicle_classes[0].length_m == 5.0      # SUMO's passenger default
    assert len(sc.demand.flows) == 3


def test_counts_start_later_than_sumo_time_zero() -> None:
    """The scenario starts at the first counted interval, whatever --start says."""
    sc = _import("\ufefflink,movement,start,count\nwm,through,08:45,50\n").scenario
    assert sc.start_clock_s == 8 * 3600 + 45 * 60
    assert [f.flow_vph for f in sc.demand.flows] == [(200.0,)]


def test_parse_counts_intervals() -> None:
    begin, n, out = parse_counts("link,movement,start,count\na,left,06:30,3\na,left,07:30,4\n",
                                 900.0)
    assert (begin, n) == (6.5 * 3600, 5)
    assert out == {("a", "left"): [3.0, 0.0, 0.0, 0.0, 4.0]}


@pytest.mark.parametrize(("text", "message"), [
    ("link,move,start,count\nem,left,07:00,1\n", "header = 'link,move,start,count'"),
    ("link,movement,start,count\n", "no rows"),
    ("link,movement,start,count\nem,left,07:00\n", "row 2: needs 4 columns, has 3"),
    ("link,movement,start,count\nem,uturn,07:00,1\n", "row 2 movement = 'uturn'"),
    ("link,movement,start,count\nem,left,7h,1\n", "row 2 start = '7h'"),
    ("link,movement,start,count\nem,left,07:05,1\n", "row 2 start = '07:05': must begin a 15-min"),
    ("link,movement,start,count\nem,left,07:00,-1\n", "row 2 count = '-1': must be >= 0"),
    ("link,movement,start,count\nem,left,07:00,x\n", "row 2 count = 'x': not a number"),
    ("link,movement,start,count\nem,left,07:00,nan\n", "row 2 count = 'nan'"),
    ("link,movement,start,count\nem,left,07:00,1\nem,left,07:00,2\n", "row 3: link em left at "
     "07:00 repeats row 2"),
])
def test_bad_counts_name_row_and_value(text: str, message: str) -> None:
    with pytest.raises(Exception, match="counts CSV") as err:
        parse_counts(text, 900.0)
    assert message in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize(("row", "what"), [
    ("me,left,07:00,5", "link 'me' movement 'left'"),        # an exit link
    ("em,right,07:00,5", None),                               # fine: lane 0 turns right
    ("nope,left,07:00,5", "link 'nope'"),
    ("wm,left,07:00,5", None),
    ("em,left,07:00,5\nnm,through,07:00,1", None),
])
def test_counts_must_name_entry_movements(row: str, what: str | None) -> None:
    text = f"link,movement,start,count\n{row}\n"
    if what is None:
        assert _import(text).scenario.demand.flows
        return
    with pytest.raises(SumoImportError, match="not an entry link movement") as err:
        _import(text)
    assert what in str(err.value)


def test_counts_and_placeholder_are_exclusive() -> None:
    with pytest.raises(SumoImportError, match="not both"):
        _import(COUNTS, default_vph=300.0)


def test_cli_counts(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from gpssignal.cli import main
    from gpssignal.model.io import read_scenario

    good, bad = tmp_path / "counts.csv", tmp_path / "bad.csv"
    good.write_text(COUNTS)
    bad.write_text(COUNTS + "em,left,07:10,3\n")
    args = ["import-sumo", str(NET), "--additional", str(TLS), "--start", "07:00"]
    assert main([*args, "--counts", str(bad), "--out", str(tmp_path / "b.toml")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "row 7 start = '07:10'" in err
    assert not (tmp_path / "b.toml").exists()
    assert main([*args, "--counts", str(tmp_path / "missing.csv"), "--out",
                 str(tmp_path / "m.toml")]) == 2
    assert "--counts" in capsys.readouterr().err
    assert main([*args, "--counts", str(good), "--out", str(tmp_path / "g.toml"), "-q"]) == 0
    sc = read_scenario(tmp_path / "g.toml")
    assert sum(sum(f.flow_vph) for f in sc.demand.flows) / 4 == pytest.approx(182.5)
