"""Bad command-line input ends in one stderr line naming the option, exit 2, nothing written."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TINY = REPO / "scenarios" / "tiny.toml"
#: A path no one can create: /proc accepts no new folders.
UNCREATABLE = Path("/proc/gpssignal-no-such-folder/out")

FCD = """<fcd-export>
<timestep time="{t}"><vehicle id="a" x="12.40" y="55.65" speed="10" angle="90"/></timestep>
</fcd-export>
"""


def one_line_error(res: tuple[int, str, str], *words: str) -> str:
    code, _, err = res
    assert code == 2, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    for w in words:
        assert w in lines[0]
    return lines[0]


@pytest.fixture
def probe_csv(tmp_path: Path) -> Path:
    path = tmp_path / "in" / "p.csv"
    path.parent.mkdir()
    path.write_text("time_sent,time_received,lat_deg,lon_deg,speed_kmh,heading_deg\n"
                    "2019-05-06T07:00:00Z,2019-05-06T07:00:01Z,55.65,12.40,40,90\n",
                    encoding="utf-8")
    return path


@pytest.mark.parametrize("zone", ["/etc/passwd", "../../etc/passwd", "Mars/Olympus"])
def test_timezone_must_be_an_iana_name(cli, tmp_path: Path, probe_csv: Path, zone: str) -> None:
    one_line_error(cli("check-probes", probe_csv, "--timezone", zone),
                   f"--timezone = {zone!r}", "IANA")
    fcd = tmp_path / "f.xml"
    fcd.write_text(FCD.format(t=0), encoding="utf-8")
    out = tmp_path / "o.csv"
    one_line_error(cli("import-fcd", fcd, "--out", out, "--timezone", zone),
                   "--timezone")
    assert not out.exists()


@pytest.mark.parametrize("t", ["1e30", "inf", "-inf"])
def test_import_fcd_refuses_absurd_timestep_times(cli, tmp_path: Path, t: str) -> None:
    fcd = tmp_path / "f.xml"
    fcd.write_text(FCD.format(t=t), encoding="utf-8")
    one_line_error(cli("import-fcd", fcd, "--out", tmp_path / "o.csv"),
                   f"timestep time = {t!r}")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.xml"]


@pytest.mark.parametrize(("date", "which"), [("2019-03-31", "DST gap"),
                                             ("2019-10-27", "DST fold")])
def test_import_fcd_start_in_a_dst_gap_or_fold(cli, tmp_path: Path, date: str, which: str) -> None:
    fcd = tmp_path / "f.xml"
    fcd.write_text(FCD.format(t=0), encoding="utf-8")
    one_line_error(cli("import-fcd", fcd, "--out", tmp_path / "o.csv", "--date", date,
                       "--start", "02:30"), "--start = 02:30:00", date, which)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.xml"]


def test_unwritable_out_is_one_line(cli, tmp_path: Path, probe_csv: Path,
                                    tiny_relief_toml: Path) -> None:
    fcd = tmp_path / "f.xml"
    fcd.write_text(FCD.format(t=0), encoding="utf-8")
    one_line_error(cli("import-fcd", fcd, "--out", UNCREATABLE / "o.csv"), "--out = ")
    one_line_error(cli("check-probes", probe_csv, "--out", UNCREATABLE / "o.csv"),
                   "--out = ")
    one_line_error(cli("history", TINY, "--days", 1, "--out", UNCREATABLE, "-q",
                       "--workers", 1), "--out = ")
    hist = tmp_path / "hist"
    assert cli("history", tiny_relief_toml, "--days", 1, "--out", hist, "-q",
               "--workers", 1, "--period", 30)[0] == 0
    one_line_error(cli("train", tiny_relief_toml, "--history", hist, "--out",
                       UNCREATABLE / "m.json", "--candidates", 1, "-q",
                       "--workers", 1), "--out = ")
    model = tmp_path / "m.json"
    assert cli("train", tiny_relief_toml, "--history", hist, "--out", model,
               "--candidates", 1, "-q", "--workers", 1)[0] == 0
    one_line_error(cli("replay", probe_csv, "--model", model, "--out", UNCREATABLE),
                   "--out = ")


def test_train_out_at_an_existing_folder_is_refused_before_training(
        cli, tmp_path: Path, tiny_relief_toml: Path) -> None:
    folder = tmp_path / "models"
    folder.mkdir()
    # No history at all: the --out check must come first.
    one_line_error(cli("train", tiny_relief_toml, "--history", tmp_path / "none",
                       "--out", folder), f"--out = {str(folder)!r}", "is a folder")
    assert list(folder.iterdir()) == []


def test_evaluate_with_fixed_alone_works(cli, tmp_path: Path) -> None:
    out = tmp_path / "ev"
    code, _, err = cli("evaluate", TINY, "--controllers", "fixed", "--replications", 2,
                       "--out", out, "-q", "--workers", 1)
    assert code == 0, err
    assert (out / "report.html").exists() and (out / "kpis.csv").exists()
