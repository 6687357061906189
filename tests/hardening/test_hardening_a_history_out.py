"""``history --out DIR`` never deletes or overwrites files it did not write.

The manifest lists the files the tool wrote; a rerun replaces or removes only
those, and refuses (exit 2, one line, nothing changed) when a file of
someone else's is where it would write.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TINY = REPO / "scenarios" / "tiny.toml"


@pytest.fixture
def history(cli):
    """``history(out, days, *extra)``: ``gpssignal history`` of tiny into ``out``."""
    def run(out: Path, days: int, *extra: object) -> tuple[int, str, str]:
        return cli("history", TINY, "--days", days, "--out", out, "-q", "--workers", 1,
                   *extra)
    return run


def test_rerun_keeps_files_the_tool_did_not_write(history, tmp_path: Path) -> None:
    out = tmp_path / "hist"
    assert history(out, 2)[0] == 0
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert "probes/date=2019-05-07/probes.parquet" in manifest["files"]
    (out / "NOTES.txt").write_text("mine\n", encoding="utf-8")
    foreign = out / "probes" / "date=1999-01-01"
    foreign.mkdir()
    (foreign / "other.parquet").write_bytes(b"not the tool's")
    mine_in_day = out / "truth" / "date=2019-05-07" / "notes.md"
    mine_in_day.write_text("kept\n", encoding="utf-8")
    code, _, err = history(out, 1)  # fewer days: day 2's files are the tool's to remove
    assert code == 0, err
    assert (out / "NOTES.txt").read_text(encoding="utf-8") == "mine\n"
    assert (foreign / "other.parquet").read_bytes() == b"not the tool's"
    assert mine_in_day.read_text(encoding="utf-8") == "kept\n"
    assert not (out / "probes" / "date=2019-05-07").exists()
    assert not (out / "truth" / "date=2019-05-07" / "vehicles.parquet").exists()
    assert (out / "probes" / "date=2019-05-06" / "probes.parquet").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["hist"]  # no temporary folder left


def test_rerun_refuses_to_overwrite_a_file_it_did_not_write(
        history, snapshot, tmp_path: Path) -> None:
    out = tmp_path / "hist"
    assert history(out, 1)[0] == 0
    user = out / "probes" / "date=2019-05-07"
    user.mkdir()
    (user / "probes.parquet").write_bytes(b"the user's")
    before = snapshot(out)
    code, stdout, err = history(out, 2)
    assert code == 2 and stdout == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err
    assert lines[0].startswith("gpssignal history: error: --out = ")
    assert "date=2019-05-07/probes.parquet" in lines[0] and "not overwriting" in lines[0]
    assert snapshot(out) == before
    assert [p.name for p in tmp_path.iterdir()] == ["hist"]


def test_rerun_over_an_older_manifest_without_a_file_list(history, tmp_path: Path) -> None:
    out = tmp_path / "hist"
    assert history(out, 2)[0] == 0
    path = out / "manifest.json"
    manifest = json.loads(path.read_text(encoding="utf-8"))
    del manifest["files"]
    path.write_text(json.dumps(manifest), encoding="utf-8")
    (out / "run.log.json").unlink()
    (out / "NOTES.txt").write_text("mine\n", encoding="utf-8")
    assert history(out, 1)[0] == 0
    assert (out / "NOTES.txt").exists()
    assert not (out / "probes" / "date=2019-05-07").exists()
    assert json.loads(path.read_text(encoding="utf-8"))["files"][-2:] == [
        "manifest.json", "run.log.json"]


def test_a_folder_that_is_not_a_history_is_refused(history, snapshot, tmp_path: Path) -> None:
    out = tmp_path / "hist"
    out.mkdir()
    (out / "NOTES.txt").write_text("mine\n", encoding="utf-8")
    code, _, err = history(out, 1)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "--out" in err and "not a gpssignal history" in err
    assert snapshot(out) == {"NOTES.txt": b"mine\n"}
