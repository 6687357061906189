"""End-to-end tests (docs/architecture.md#conventions) of the probe commands:
``gpssignal probes``, ``history``, ``import-fcd`` and ``check-probes`` on the tiny scenario and the
FCD fixtures, run in-process through :func:`gpssignal.cli.main`, writing into
``tmp_path`` and checking the files they write and the lines they print.
"""

from __future__ import annotations

import json
import re
from datetime import date
from pathlib import Path

import pandas as pd
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

import gpssignal
from gpssignal.model.io import read_scenario, scenario_hash
from gpssignal.probes.io import DROP_REASONS, PROBE_COLUMNS, read_probes

REPO = Path(__file__).resolve().parents[2]
TINY = REPO / "scenarios" / "tiny.toml"
FCD_GEO = REPO / "tests" / "data" / "fcd_geo.xml"
FCD_XY = REPO / "tests" / "data" / "fcd_xy.xml"


def listing(folder: Path) -> set[str]:
    """Every file and folder below ``folder`` (hidden ones too), relative."""
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*")}


def one_error_line(err: str, *words: str) -> None:
    lines = err.strip("\n").split("\n")
    assert len(lines) == 1, err
    for w in words:
        assert w in lines[0], (w, lines[0])


# ---------------------------------------------------------------------------
# probes
# ---------------------------------------------------------------------------

def test_probes_writes_the_file_and_prints_a_summary(cli, tmp_path, capsys):
    out = tmp_path / "p.parquet"
    code = cli("probes", TINY, "--out", out, "--seed", 3, "--penetration", 0.5,
               "--anonymisation", "rotating", "--rotation", 60, "--date", "2019-05-07")[0]
    cap = capsys.readouterr()
    assert code == 0, cap.err
    assert listing(tmp_path) == {"p.parquet"}
    lines = cap.out.splitlines()
    m = re.match(r"([\d,]+) points from ([\d,]+) probe vehicles of ([\d,]+) \(50\.0% "
                 r"penetration, every 5 s, rotating\); [\d,.]+ points/min; seed 3, "
                 r"date 2019-05-07$", lines[0])
    assert m, lines[0]
    points, vehicles, total = (int(g.replace(",", "")) for g in m.groups())
    assert lines[1] == f"written: {out}"
    read = read_probes(out)
    assert len(read.frame) == points > 0
    assert list(read.frame.columns) == list(PROBE_COLUMNS)
    # ~half the ~200 vehicles report (Binomial(200, 0.5): sd 7).
    assert 150 <= total <= 250 and abs(vehicles - total / 2) <= 4.5 * (total / 4) ** 0.5
    # The date given sets the timestamps: tiny starts 07:00 CEST = 05:00Z.
    t = read.frame["time_sent"]
    assert t.min() >= pd.Timestamp("2019-05-07T05:00:00Z")
    assert t.max() <= pd.Timestamp("2019-05-07T05:20:00Z")
    meta = json.loads(pq.read_schema(out).metadata[b"gpssignal"])
    assert meta["seed"] == 3 and meta["date"] == "2019-05-07"
    assert meta["anonymisation"] == "rotating"
    assert meta["probe_settings"]["penetration"] == 0.5
    assert meta["probe_settings"]["rotation_s"] == 60
    assert meta["scenario_hash"] == scenario_hash(read_scenario(TINY))
    assert meta["version"] == gpssignal.__version__


def test_probes_csv_output_and_quiet(cli, tmp_path, capsys):
    out = tmp_path / "sub" / "p.csv"
    assert cli("probes", TINY, "--out", out, "-q")[0] == 0
    cap = capsys.readouterr()
    assert cap.out == "" and cap.err == ""
    header = out.read_text(encoding="utf-8").splitlines()[0]
    assert header == "time_sent,time_received,lat_deg,lon_deg,speed_kmh,heading_deg"  # idless


@pytest.mark.parametrize("args,words", [
    (("--penetration", "1.5"), ("probes.penetration", "1.5")),
    (("--anonymisation", "nonsense"), ("probes.anonymisation", "nonsense")),
    (("--period", "0"), ("probes.period_s", "0")),
    (("--dropout", "-0.1"), ("probes.dropout", "-0.1")),
    (("--penetration", "lots"), ("--penetration", "lots")),
    (("--date", "2019-02-30"), ("--date", "2019-02-30")),
])
def test_probes_bad_override_exits_2_with_one_line_and_no_file(cli, tmp_path, capsys, args, words):
    code = cli("probes", TINY, "--out", tmp_path / "p.parquet", *args)[0]
    cap = capsys.readouterr()
    assert code == 2
    one_error_line(cap.err, *words)
    assert cap.out == ""
    assert listing(tmp_path) == set()


def test_probes_bad_suffix_exits_2(cli, tmp_path, capsys):
    assert cli("probes", TINY, "--out", tmp_path / "p.txt")[0] == 2
    one_error_line(capsys.readouterr().err, "--out", "p.txt")
    assert listing(tmp_path) == set()


# ---------------------------------------------------------------------------
# history
# ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def history(cli, tmp_path_factory):
    """Two days from Friday 2019-05-10 (so Monday 2019-05-13 is the second)."""
    out = tmp_path_factory.mktemp("hist") / "h"
    code, printed, _ = cli("history", TINY, "--days", 2, "--out", out, "--seed", 7,
                           "--start-date", "2019-05-10", "--penetration", 0.5)
    assert code == 0
    return out, printed


def test_history_writes_manifest_probes_and_truth(history):
    out, stdout = history
    dates = ["2019-05-10", "2019-05-13"]
    assert listing(out) == {"manifest.json", "run.log.json", "probes", "truth"} \
        | {f"{k}/date={d}" for k in ("probes", "truth") for d in dates} \
        | {f"probes/date={d}/probes.parquet" for d in dates} \
        | {f"truth/date={d}/vehicles.parquet" for d in dates}
    assert listing(out.parent) == {"h"} | {f"h/{p}" for p in listing(out)}  # no temp dirs
    m = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert m["kind"] == "gpssignal-history"
    assert m["controller"] == "tod"                  # tiny has a schedule
    assert m["scenario_hash"] == scenario_hash(read_scenario(TINY))
    assert m["probe_settings"]["penetration"] == 0.5
    days = m["days"]
    assert [d["date"] for d in days] == dates
    assert [d["seed"] for d in days] == [7, 8]
    # Consecutive weekdays: the weekend is skipped.
    assert all(date.fromisoformat(d).weekday() < 5 for d in dates)
    for d in days:
        probes = read_probes(out / "probes" / f"date={d['date']}" / "probes.parquet")
        assert len(probes.frame) == d["points"] > 0
        # Each day's timestamps lie on its own date (07:00 CEST = 05:00Z).
        assert (probes.frame["time_sent"].dt.strftime("%Y-%m-%d") == d["date"]).all()
        truth = pd.read_parquet(out / "truth" / f"date={d['date']}" / "vehicles.parquet")
        assert len(truth) == d["vehicles"]
        assert {"vehicle", "arrival_s", "depart_s", "exit_s"} <= set(truth.columns)
        meta = json.loads(pq.read_schema(out / "probes" / f"date={d['date']}" /
                                          "probes.parquet").metadata[b"gpssignal"])
        assert meta["seed"] == d["seed"] and meta["date"] == d["date"]
    assert stdout.splitlines()[0].startswith("2 weekdays 2019-05-10 .. 2019-05-13 (seeds 7..8)")


def test_history_days_differ(history):
    out, _ = history
    m = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    a, b = m["days"]
    assert a["demand_level"] != b["demand_level"]
    ta = pd.read_parquet(out / "truth" / "date=2019-05-10" / "vehicles.parquet")
    tb = pd.read_parquet(out / "truth" / "date=2019-05-13" / "vehicles.parquet")
    n = min(len(ta), len(tb))
    assert len(ta) != len(tb) or not (ta["arrival_s"][:n] == tb["arrival_s"][:n]).all()
    pa_ = read_probes(out / "probes" / "date=2019-05-10" / "probes.parquet").frame
    pb_ = read_probes(out / "probes" / "date=2019-05-13" / "probes.parquet").frame
    assert not set(pa_["lat_deg"]) & set(pb_["lat_deg"])


def test_history_is_one_hive_partitioned_data_set(history):
    out, _ = history
    m = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    table = ds.dataset(out / "probes", partitioning="hive").to_table()
    assert table.num_rows == sum(d["points"] for d in m["days"])
    assert set(table.column("date").to_pylist()) == {d["date"] for d in m["days"]}
    # read_probes reads the folder as one file (the date keys are not columns).
    read = read_probes(out / "probes")
    assert read.report.rows_kept == table.num_rows
    assert read.report.unknown_columns == []


def test_history_refuses_a_non_history_folder_and_leaves_it(cli, tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me", encoding="utf-8")
    before = listing(tmp_path)
    code = cli("history", TINY, "--days", 1, "--out", out)[0]
    cap = capsys.readouterr()
    assert code == 2
    one_error_line(cap.err, str(out), "not a gpssignal history")
    assert listing(tmp_path) == before
    assert (out / "notes.txt").read_text(encoding="utf-8") == "keep me"


def test_simulate_history_refuses_a_non_history_folder(tmp_path):
    # The library guards the folder too, before simulating anything.
    from gpssignal.experiment.history import simulate_history

    out = tmp_path / "mine"
    out.mkdir()
    (out / "data.csv").write_text("1,2\n", encoding="utf-8")
    with pytest.raises(FileExistsError, match="not a gpssignal history"):
        simulate_history(read_scenario(TINY), 1, out)
    assert listing(tmp_path) == {"mine", "mine/data.csv"}


def test_history_replaces_an_earlier_history(cli, tmp_path, capsys):
    out = tmp_path / "h"
    assert cli("history", TINY, "--days", 1, "--out", out, "-q",
               "--start-date", "2019-05-06")[0] == 0
    assert cli("history", TINY, "--days", 1, "--out", out, "-q",
               "--start-date", "2019-05-08")[0] == 0
    assert sorted(p.name for p in (out / "probes").iterdir()) == ["date=2019-05-08"]
    assert listing(tmp_path) == {"h"} | {f"h/{p}" for p in listing(out)}


@pytest.mark.parametrize("args,words", [
    (("--days", "0"), ("--days", "0")),
    (("--days", "1", "--penetration", "2"), ("probes.penetration", "2")),
])
def test_history_bad_arguments_exit_2(cli, tmp_path, capsys, args, words):
    code = cli("history", TINY, "--out", tmp_path / "h", *args)[0]
    assert code == 2
    one_error_line(capsys.readouterr().err, *words)
    assert listing(tmp_path) == set()


def test_history_bad_start_date_names_the_option(cli, tmp_path, capsys):
    code = cli("history", TINY, "--out", tmp_path / "h", "--days", 1,
               "--start-date", "May")[0]
    assert code == 2
    one_error_line(capsys.readouterr().err, "--start-date", "May")
    assert listing(tmp_path) == set()


# ---------------------------------------------------------------------------
# import-fcd
# ---------------------------------------------------------------------------

def test_import_fcd_geo(cli, tmp_path, capsys):
    out = tmp_path / "geo.parquet"
    code = cli("import-fcd", FCD_GEO, "--out", out, "--start", "06:00",
               "--anonymisation", "raw")[0]
    cap = capsys.readouterr()
    assert code == 0, cap.err
    assert re.fullmatch(rf"{re.escape(str(FCD_GEO))}: kept 7 of 7 rows; dropped: none\n"
                        rf"7 points imported from {re.escape(str(FCD_GEO))} \(raw\) in "
                        rf"[\d.]+ s; written: {re.escape(str(out))}\n", cap.out)
    f = read_probes(out).frame
    assert f["pseudonym"].tolist()[:3] == ["veh0", "veh0", "veh1"]
    assert f["time_sent"][0] == pd.Timestamp("2019-05-06T04:00:00Z")
    assert f["lat_deg"][0] == 55.629985 and f["lon_deg"][0] == 12.374


def test_import_fcd_xy_with_origin_to_csv(cli, tmp_path, capsys):
    out = tmp_path / "xy.csv"
    code = cli("import-fcd", FCD_XY, "--out", out, "--origin", "55.625,12.371",
               "--date", "2019-01-07", "--start", "08:00", "-q")[0]
    cap = capsys.readouterr()
    assert code == 0, cap.err
    assert cap.out == ""
    f = read_probes(out).frame
    assert len(f) == 7 and "pseudonym" not in f.columns
    assert f["time_sent"][0] == pd.Timestamp("2019-01-07T07:00:00Z")
    assert f["lat_deg"][0] == pytest.approx(55.625 + 498.37 / 111_195.08, abs=1e-9)


BAD_FCD = """<fcd-export>
<timestep time="0.00">
  <vehicle id="ok" x="12.374" y="55.63" angle="90.00" speed="10.00"/>
  <vehicle id="nan" x="nan" y="55.63" angle="90.00" speed="10.00"/>
  <vehicle id="far" x="12.374" y="-91" angle="90.00" speed="10.00"/>
  <vehicle id="slow" x="12.374" y="55.63" angle="90.00" speed="-5"/>
  <vehicle id="fast" x="12.374" y="55.63" angle="90.00" speed="1000000"/>
  <vehicle id="spin" x="12.374" y="55.63" angle="-inf" speed="10.00"/>
</timestep>
<timestep>
  <vehicle id="when" x="12.374" y="55.63" angle="90.00" speed="10.00"/>
</timestep>
</fcd-export>
"""


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_import_fcd_drops_bad_points_and_reports_them(cli, tmp_path, capsys, suffix):
    src = tmp_path / "bad.xml"
    src.write_text(BAD_FCD, encoding="utf-8")
    out = tmp_path / f"p{suffix}"
    code = cli("import-fcd", src, "--out", out, "--anonymisation", "raw")[0]
    cap = capsys.readouterr()
    assert code == 0, cap.err
    lines = cap.out.splitlines()
    assert lines[0] == (f"{src}: kept 1 of 7 rows; dropped: bad_timestamp 1, missing_value 1, "
                        "lat_lon_out_of_range 1, speed_out_of_range 2, heading_out_of_range 1")
    assert lines[1].startswith(f"1 points imported from {src} (raw)")
    assert len(lines) == 2 and cap.err == ""
    assert read_probes(out).frame["pseudonym"].tolist() == ["ok"]


@pytest.mark.parametrize("args,words", [
    ((), ("origin",)),                                          # x/y need an origin
    (("--origin", "55.6"), ("--origin", "55.6")),
    (("--origin", "95,12"), ("--origin", "out of range")),
    (("--date", "tomorrow"), ("--date", "tomorrow")),
    (("--start", "25:99"), ("--start",)),
])
def test_import_fcd_bad_input_exits_2(cli, tmp_path, capsys, args, words):
    code = cli("import-fcd", FCD_XY, "--out", tmp_path / "xy.parquet", *args)[0]
    assert code == 2
    one_error_line(capsys.readouterr().err, *words)
    assert listing(tmp_path) == set()


def test_import_fcd_missing_file_exits_2(cli, tmp_path, capsys):
    missing = tmp_path / "none.xml"
    assert cli("import-fcd", missing, "--out", tmp_path / "p.parquet")[0] == 2
    one_error_line(capsys.readouterr().err, str(missing), "not found")


def test_import_fcd_unknown_timezone_exits_2(cli, tmp_path, capsys):
    code = cli("import-fcd", FCD_GEO, "--out", tmp_path / "p.parquet",
               "--timezone", "Mars/Base")[0]
    assert code == 2
    one_error_line(capsys.readouterr().err, "Mars/Base")


# ---------------------------------------------------------------------------
# check-probes
# ---------------------------------------------------------------------------

BAD_CSV = """time_sent,time_received,lat_deg,lon_deg,speed_kmh,heading_deg,vehicle
2019-05-06T04:00:00Z,2019-05-06T04:00:05Z,55.63,12.38,30,90,a
2019-05-06T04:00:01Z,2019-05-06T04:00:06Z,55.63,12.38,31,90,a
2019-05-06T04:00:01Z,2019-05-06T04:00:06Z,55.63,12.38,31,90,a
never,2019-05-06T04:00:06Z,55.63,12.38,31,90,b
2019-05-06T04:00:02Z,2019-05-06T04:00:07Z,,12.38,31,90,b
2019-05-06T04:00:03Z,2019-05-06T04:00:08Z,55.63,12.38,300,90,b
2019-05-06T04:00:04Z,2019-05-06T04:00:01Z,55.63,12.38,30,90,b
2019-05-06T04:00:05Z,2019-05-06T04:00:09Z,155.63,12.38,30,90,c
2019-05-06T04:00:06Z,2019-05-06T04:00:10Z,55.63,12.38,30,90
2019-05-06T04:00:07Z,2019-05-06T04:00:11Z,55.63,12.38,30,inf,d
"""


def test_check_probes_prints_the_drop_summary(cli, tmp_path, capsys):
    src = tmp_path / "in.csv"
    src.write_text(BAD_CSV, encoding="utf-8")
    assert cli("check-probes", src)[0] == 0
    out = capsys.readouterr().out
    assert out == (f"{src}: kept 2 of 10 rows; dropped: ragged_row 1, bad_timestamp 1, "
                   "missing_value 1, lat_lon_out_of_range 1, speed_out_of_range 1, "
                   "heading_out_of_range 1, received_before_sent 1, duplicate 1; "
                   "ignored columns: vehicle\n")
    assert listing(tmp_path) == {"in.csv"}


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_check_probes_writes_the_clean_file_and_drops_json(cli, tmp_path, capsys, suffix):
    src = tmp_path / "in.csv"
    src.write_text(BAD_CSV, encoding="utf-8")
    clean = tmp_path / "clean" / f"ok{suffix}"
    assert cli("check-probes", src, "--out", clean)[0] == 0
    lines = capsys.readouterr().out.splitlines()
    drops = clean.with_name(clean.name + ".drops.json")
    assert lines[1] == f"written: {clean}, {drops}"
    assert listing(tmp_path / "clean") == {clean.name, drops.name}
    report = json.loads(drops.read_text(encoding="utf-8"))
    assert report["rows_read"] == 10 and report["rows_kept"] == 2
    assert report["file"] == str(src)
    assert report["unknown_columns"] == ["vehicle"]
    assert report["time_received_filled"] is False
    assert report["dropped"] == dict.fromkeys(DROP_REASONS, 1)
    again = read_probes(clean)
    assert again.report.rows_read == again.report.rows_kept == 2
    assert again.report.unknown_columns == []
    assert again.frame["speed_kmh"].tolist() == [30.0, 31.0]


def test_check_probes_naive_times_in_a_zone(cli, tmp_path, capsys):
    src = tmp_path / "n.csv"
    src.write_text("time_sent,lat_deg,lon_deg,speed_kmh\n2019-05-06T06:00:00,55.6,12.3,20\n",
                   encoding="utf-8")
    out = tmp_path / "o.csv"
    assert cli("check-probes", src, "--timezone", "Europe/Copenhagen", "--out", out)[0] == 0
    assert out.read_text(encoding="utf-8").splitlines()[1].startswith(
        "2019-05-06T04:00:00.000Z,2019-05-06T04:00:00.000Z,")


def test_check_probes_missing_file_exits_2(cli, tmp_path, capsys):
    missing = tmp_path / "none.csv"
    assert cli("check-probes", missing)[0] == 2
    cap = capsys.readouterr()
    one_error_line(cap.err, "check-probes", str(missing), "not found")
    assert cap.out == ""


def test_check_probes_unreadable_file_exits_2(cli, tmp_path, capsys):
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"not parquet at all")
    assert cli("check-probes", bad, "--out", tmp_path / "o.parquet")[0] == 2
    one_error_line(capsys.readouterr().err, str(bad), "Parquet")
    assert listing(tmp_path) == {"bad.parquet"}


def test_check_probes_unknown_timezone_exits_2(cli, tmp_path, capsys):
    src = tmp_path / "n.csv"
    src.write_text("time_sent,lat_deg,lon_deg,speed_kmh\n2019-05-06T06:00:00,55.6,12.3,20\n",
                   encoding="utf-8")
    assert cli("check-probes", src, "--timezone", "Mars/Base")[0] == 2
    one_error_line(capsys.readouterr().err, "Mars/Base")
