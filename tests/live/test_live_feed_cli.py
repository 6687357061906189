"""The live feed's checks (those of check-probes) and the commands' input errors."""

from __future__ import annotations

import json
from pathlib import Path

from gpssignal.live.feed import FeedParser
from tests.conftest import run_cli

GOOD = {"time_sent": "2019-05-06T05:00:00.000Z", "time_received": "2019-05-06T05:00:01.500Z",
        "lat_deg": 55.63, "lon_deg": 12.38, "speed_kmh": 31.5, "heading_deg": 90.0}


def test_ndjson_rows_are_checked_like_a_probe_file() -> None:
    p = FeedParser()
    rows = [GOOD, {**GOOD, "speed_kmh": 400}, {**GOOD, "lat_deg": 95},
            {**GOOD, "time_sent": "yesterday"}, {**GOOD, "heading_deg": 360},
            {**GOOD, "time_received": "2019-05-06T04:59:59Z"}, {**GOOD, "lon_deg": None}]
    for r in rows:
        p.feed(json.dumps(r))
    p.feed("not json")
    p.feed(json.dumps({"clock": "2019-05-06T05:00:10Z"}))
    d = p.report.dropped
    assert (p.report.rows_read, p.report.rows_kept) == (8, 1)
    assert (d["speed_out_of_range"], d["lat_lon_out_of_range"], d["bad_timestamp"],
            d["heading_out_of_range"], d["received_before_sent"], d["missing_value"],
            d["ragged_row"]) == (1, 1, 1, 1, 1, 1, 1)
    assert p.clock_ms == 1_557_118_810_000
    pts = p.buffer.take(1_557_118_801_499)
    assert len(pts["t_sent_ms"]) == 0 and len(p.buffer) == 1  # not received yet
    pts = p.buffer.take(1_557_118_801_500)
    assert pts["t_sent_ms"].tolist() == [1_557_118_800_000]
    assert pts["speed_kmh"].tolist() == [31.5]


def test_csv_lines_with_naive_local_times() -> None:
    p = FeedParser("Europe/Copenhagen")
    p.feed("time_sent,lat_deg,lon_deg,speed_kmh,extra")
    p.feed("2019-05-06 07:00:00,55.63,12.38,20,x")
    p.feed("2019-05-06 07:00:00,55.63,12.38")           # ragged
    assert p.report.unknown_columns == ["extra"]
    assert (p.report.rows_kept, p.report.dropped["ragged_row"]) == (1, 1)
    pts = p.buffer.take(2**62)
    assert pts["t_received_ms"].tolist() == [1_557_118_800_000]  # 07:00 CEST = 05:00 UTC


def test_input_errors_are_one_line(tmp_path: Path, tiny_relief_toml: Path) -> None:
    model = tmp_path / "m.json"
    code, _, err = run_cli("serve", "--model", model, "--config", tmp_path / "c.toml",
                           "--feed", "-")
    assert code == 2 and err.count("\n") == 1 and "gpssignal serve: error:" in err
    code, _, err = run_cli("sil", tiny_relief_toml, "--model", model, "--message-log",
                           tmp_path / "logs", "--speed", "0")
    assert code == 2 and "--speed" in err
    cfg = tmp_path / "c.toml"
    cfg.write_text('[rsmp]\nlisten = "127.0.0.1:x"\n[[site]]\njunction = "J1"\n',
                   encoding="utf-8")
    from gpssignal.live.config import LiveConfigError, read_live_config
    try:
        read_live_config(cfg)
    except LiveConfigError as exc:
        assert "rsmp.listen" in str(exc)
    else:
        raise AssertionError("bad listen accepted")


def test_serve_dry_run_on_a_recorded_feed(tmp_path: Path, tiny_model) -> None:
    """serve --clock feed --dry-run on a file: decides, logs what it would send, exits 0."""
    from gpssignal.control.io import write_model

    model = write_model(tiny_model, tmp_path / "m.json")
    cfg = tmp_path / "live.toml"
    cfg.write_text('[rsmp]\nlisten = "127.0.0.1:0"\n[[site]]\njunction = "J1"\n'
                   'site_id = "S1"\ncomponent_id = "S1TC"\nsecurity_code = "1"\n'
                   'plans = { normal = 1, peak = 2 }\n', encoding="utf-8")
    feed = tmp_path / "feed.ndjson"
    feed.write_text("\n".join(json.dumps(x) for x in [
        GOOD, {"clock": "2019-05-06T05:00:10Z"}, {"clock": "2019-05-06T05:01:00Z"}]) + "\n",
        encoding="utf-8")
    log = tmp_path / "log.ndjson"
    code, out, err = run_cli("serve", "--model", model, "--config", cfg, "--feed", feed,
                             "--clock", "feed", "--no-follow", "--dry-run", "--message-log",
                             log)
    assert code == 0, err
    assert "not_sent CommandRequest" in out and "kept 1 of 1 rows" in out
    rows = [json.loads(x) for x in log.read_text(encoding="utf-8").splitlines()]
    # Nothing slow in the feed: no decision; at the end the default plan is handed back,
    # in dry-run only logged.
    assert [r["msg"]["type"] for r in rows if r["dir"] == "not_sent"] == ["CommandRequest"]
    assert not any(r["dir"] == "sent" for r in rows)
    code, _, err = run_cli("serve", "--model", model, "--config", cfg, "--feed", feed,
                           "--clock", "feed", "--no-follow", "--message-log", log)
    assert code == 2 and "never overwritten" in err


def test_a_config_without_the_models_junction_writes_nothing(tmp_path: Path,
                                                             tiny_model) -> None:
    from gpssignal.control.io import write_model

    model = write_model(tiny_model, tmp_path / "m.json")
    cfg = tmp_path / "live.toml"
    cfg.write_text('[[site]]\njunction = "J9"\nsite_id = "S9"\ncomponent_id = "S9TC"\n'
                   'security_code_env = "GPSSIGNAL_TEST_UNSET_VARIABLE"\n'
                   'plans = { normal = 1 }\n', encoding="utf-8")
    log = tmp_path / "log.ndjson"
    code, _, err = run_cli("serve", "--model", model, "--config", cfg, "--feed", "-",
                           "--message-log", log)
    assert code == 2 and "security_code_env" in err and err.count("\n") == 1
    cfg.write_text(cfg.read_text(encoding="utf-8").replace(
        'security_code_env = "GPSSIGNAL_TEST_UNSET_VARIABLE"', 'security_code = "1"'),
        encoding="utf-8")
    code, _, err = run_cli("serve", "--model", model, "--config", cfg, "--feed", "-",
                           "--message-log", log)
    assert code == 2 and "site.junction = 'J1'" in err
    assert not log.exists()


def test_sil_command_writes_both_logs_and_the_verdict(tmp_path: Path, tiny_relief_toml: Path,
                                                      tiny_model) -> None:
    from gpssignal.control.io import write_model

    model = write_model(tiny_model, tmp_path / "m.json")
    out = tmp_path / "sil"
    code, stdout, err = run_cli("sil", tiny_relief_toml, "--model", model,
                                "--allow-other-scenario", "--seed", 1, "--message-log", out)
    assert code == 0, err
    assert "EQUAL (decisions True, switch times True, KPIs True)" in stdout
    assert sorted(p.name for p in out.iterdir()) == ["sil.json", "site.ndjson",
                                                     "supervisor.ndjson"]
    summary = json.loads((out / "sil.json").read_text(encoding="utf-8"))
    assert summary["comparison"]["equal"] is True
    assert summary["supervisor_messages"]["sent CommandRequest"] == 5
    code, _, err = run_cli("sil", tiny_relief_toml, "--model", model,
                           "--allow-other-scenario", "--message-log", out)
    assert code == 2 and "not empty" in err


def test_the_documented_configuration_fits_the_shipped_model(tmp_path: Path,
                                                             monkeypatch) -> None:
    """docs/live.md's example parses and has a plan for both programs of the shipped model."""
    import re

    from gpssignal.control.io import read_model
    from gpssignal.live.config import check_config_model, read_live_config

    repo = Path(__file__).resolve().parents[2]
    doc = (repo / "docs" / "live.md").read_text(encoding="utf-8")
    example = re.search(r"```toml\n(.*?)```", doc, re.DOTALL)
    assert example is not None
    cfg = tmp_path / "live.toml"
    cfg.write_text(example.group(1), encoding="utf-8")
    monkeypatch.setenv("GPSSIGNAL_RSMP_CODE_J1", "4711")
    config = read_live_config(cfg)
    assert (config.host, config.port, config.command_retries) == ("0.0.0.0", 12111, 3)
    model = read_model(repo / "data" / "vallensbaek_model.json")
    check_config_model(config, [(j.id, j.default_program, j.relief_program)
                                for j in model.junctions])
    assert config.sites[0].security_code == "4711"
