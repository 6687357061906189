"""Software in the loop on the tiny variant: equality with the simulated GPS run, and
the fail-safes with their plan timelines (docs/live.md#fail-safes).

The model switches four times on seed 1 in simulation (relief at 130 s and 400 s,
back at 190 s and, stale, at 490 s of decisions; switches at 180, 240, 420, 540 s),
so every fault below lands while something is at stake.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from gpssignal.control.gps import GpsModel
from gpssignal.live.sil import compare_with_simulation, run_sil
from gpssignal.live.site import SiteFaults
from gpssignal.model.scenario import Scenario

#: Fast retries for tests (the defaults are seconds, as a real network needs).
FAST = {"ack_timeout_s": 2.0, "command_timeout_s": 2.0, "retry_backoff_s": 0.01,
        "command_retries": 2}


def t_s(scenario_t0_ms: int, t_ms: int) -> float:
    return (t_ms - scenario_t0_ms) / 1000


def events(path: Path, name: str) -> list[dict]:
    rows = [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()]
    return [r for r in rows if r.get("event") == name]


@pytest.fixture(scope="module")
def clean(tiny_relief: Scenario, tiny_model: GpsModel, tmp_path_factory) -> tuple:
    out = tmp_path_factory.mktemp("sil")
    sil = run_sil(tiny_relief, tiny_model, 1, log_dir=out, config_options=FAST)
    return sil, compare_with_simulation(sil, tiny_relief, tiny_model, 1), out


def test_sil_equals_the_simulated_gps_run(clean) -> None:
    sil, cmp, out = clean
    assert cmp["equal"], cmp
    assert cmp["switches_sil"] == cmp["switches_sim"] == 4
    assert cmp["switch_times_s"] == [180.0, 240.0, 420.0, 540.0]
    # Every decision became one confirmed M0002; the shutdown one more (status False).
    assert [(p.program, p.reason, p.confirmed, p.attempts) for p in sil.plans] == [
        ("peak", "slow", True, 1), ("normal", "recovered", True, 1), ("peak", "slow", True, 1),
        ("normal", "stale", True, 1), ("normal", "shutdown", True, 1)]
    assert not sil.plans[-1].forced
    assert sil.supervisor_counts["sent CommandRequest"] == 5
    assert sil.site_counts["received CommandRequest"] == 5
    assert sil.site_counts["sent CommandResponse"] == 5
    assert "sent MessageNotAck" not in sil.supervisor_counts
    assert "sent MessageNotAck" not in sil.site_counts
    # Both logs hold every message once, one JSON object per line, with no code in clear.
    sup = (out / "supervisor.ndjson").read_text(encoding="utf-8")
    site = (out / "site.ndjson").read_text(encoding="utf-8")
    assert sup.count('"dir":"sent"') == sum(v for k, v in sil.supervisor_counts.items()
                                            if k.startswith("sent "))
    assert all(json.loads(x) for x in site.splitlines())
    assert '"securityCode","cO":"setPlan","v":"****"' in sup


def test_sil_is_repeatable(clean, tiny_relief: Scenario, tiny_model: GpsModel) -> None:
    sil, _, _ = clean
    # Paced this time (5,000x: 0.24 s of wall time): pacing must not change anything.
    again = run_sil(tiny_relief, tiny_model, 1, config_options=FAST, speed=5000.0)
    # NaN speeds (stale rows) compare equal as text.
    assert json.dumps(again.decisions, default=str) == json.dumps(sil.decisions, default=str)
    assert [(p.t_ms, p.program, p.reason) for p in again.plans] == [
        (p.t_ms, p.program, p.reason) for p in sil.plans]


def test_dry_run_sends_no_command(tiny_relief: Scenario, tiny_model: GpsModel,
                                  tmp_path: Path) -> None:
    sil = run_sil(tiny_relief, tiny_model, 1, log_dir=tmp_path, dry_run=True,
                  config_options=FAST)
    assert "sent CommandRequest" not in sil.supervisor_counts
    assert sil.supervisor_counts["not_sent CommandRequest"] == 5
    assert sil.site_timeline["J1"] == []          # the junction never left its own plan
    assert sil.result.switches == []
    assert len(sil.decisions) == 5                # the controller still decided


def test_refused_command_is_retried_within_limits(tiny_relief: Scenario,
                                                  tiny_model: GpsModel, tmp_path: Path) -> None:
    sil = run_sil(tiny_relief, tiny_model, 1, log_dir=tmp_path, config_options=FAST,
                  faults=SiteFaults(refuse_commands=1))
    first = sil.plans[0]
    assert (first.program, first.confirmed, first.attempts) == ("peak", True, 2)
    failed = events(tmp_path / "supervisor.ndjson", "command_failed")
    assert len(failed) == 1 and "refused" in failed[0]["why"]
    # The retry came at the same decision instant, so nothing else changed.
    assert compare_with_simulation(sil, tiny_relief, tiny_model, 1)["equal"]


def test_wrong_security_code_is_refused_and_given_up(tiny_relief: Scenario,
                                                     tiny_model: GpsModel,
                                                     tmp_path: Path) -> None:
    sil = run_sil(tiny_relief, tiny_model, 1, log_dir=tmp_path, config_options=FAST,
                  supervisor_code="0000")
    assert all(not p.confirmed and p.attempts == 1 + FAST["command_retries"]
               for p in sil.plans)
    failed = events(tmp_path / "supervisor.ndjson", "command_failed")
    assert failed and all("wrong security code" in f["why"] for f in failed)
    assert len(events(tmp_path / "supervisor.ndjson", "command_gave_up")) == len(sil.plans)
    assert sil.site_counts["sent MessageNotAck"] == 3 * len(sil.plans)
    assert sil.result.switches == []


def test_stale_feed_returns_to_the_default_plan(tiny_relief: Scenario, tiny_model: GpsModel,
                                                tmp_path: Path) -> None:
    # No points after 150 s: relief was asked at 130 s; 120 s later the feed is stale.
    sil = run_sil(tiny_relief, tiny_model, 1, log_dir=tmp_path, config_options=FAST,
                  faults=SiteFaults(feed_silent_from_s=150.0))
    t0 = sil.site_timeline["J1"][0][0] - 130_000
    timeline = [(t_s(t0, t), p, how) for t, p, how in sil.site_timeline["J1"]]
    assert timeline[:2] == [(130.0, "peak", "forced"), (260.0, "normal", "forced")]
    assert [d["reason"] for d in sil.decisions] == ["slow", "stale"]
    # Back at the next synchronisation point (cycle 60 s): switches at 180 and 300 s.
    assert [s.t_s for s in sil.result.switches] == [180.0, 300.0]


def test_connection_drop_mid_relief_falls_back_within_the_limit(
        tiny_relief: Scenario, tiny_model: GpsModel, tmp_path: Path) -> None:
    # Relief asked at 400 s; the link drops at 410 s for 400 s. The site ends the
    # commanded plan itself after the model's stale_after_s (120 s) without a supervisor.
    # Paced at 200x so that the 400-s outage lasts 2 s of wall time: the back-off
    # (0.05, 0.1, 0.2, ... s) then makes at least 4 attempts however loaded the machine;
    # unpaced, the outage may pass in less than the first wait.
    sil = run_sil(tiny_relief, tiny_model, 1, log_dir=tmp_path, config_options=FAST,
                  faults=SiteFaults(drop_at_s=410.0, down_for_s=400.0), speed=200.0)
    site_log = tmp_path / "site.ndjson"
    t0 = sil.site_timeline["J1"][0][0] - 130_000
    timeline = [(t_s(t0, t), p, how) for t, p, how in sil.site_timeline["J1"]]
    assert (530.0, "normal", "own") in timeline          # 410 + 120 s
    assert [s.t_s for s in sil.result.switches][-1] <= 530.0 + 60.0  # next cycle start
    fails = events(site_log, "connect_failed")
    assert len(fails) >= 4                               # retried, with doubling back-off
    waits = [f["retry_in_s"] for f in fails]
    assert waits[:3] == sorted(waits[:3]) and waits[1] == 2 * waits[0]
    gave_up = events(tmp_path / "supervisor.ndjson", "command_gave_up")
    assert gave_up and gave_up[0]["program"] == "normal"  # the stale decision at 490 s
    assert sil.supervisor_counts["received Version"] == 2  # reconnected after the outage


def test_reconnect_reasserts_the_wanted_plan(tiny_relief: Scenario, tiny_model: GpsModel,
                                             tmp_path: Path) -> None:
    # Down 410-500 s (< 120 s): the site is still on relief when it comes back, while the
    # supervisor decided 'normal' (stale) at 490 s and could not send it; on reconnection
    # it sends it at once (a restarted supervisor does the same on the first connection).
    sil = run_sil(tiny_relief, tiny_model, 1, log_dir=tmp_path, config_options=FAST,
                  faults=SiteFaults(drop_at_s=410.0, down_for_s=90.0))
    reasons = [(p.program, p.reason, p.confirmed) for p in sil.plans]
    assert ("normal", "stale", False) in reasons
    assert ("normal", "reconnect", True) in reasons
    assert not any(e["event"] == "unsupervised_fallback" for e in
                   events(tmp_path / "site.ndjson", "unsupervised_fallback"))
    assert sil.site_timeline["J1"][-1][1:] == ("normal", "own")  # shutdown: own programming


def test_restarted_supervisor_takes_over_a_junction_left_on_relief(
        tiny_relief: Scenario, tiny_model: GpsModel) -> None:
    """A supervisor that dies after commanding relief (no shutdown) and a new one on the
    same port: the site reconnects with back-off, and the new supervisor, whose runtime
    starts in default mode, commands the default plan at once."""
    import asyncio

    from gpssignal.live.sil import sil_config
    from gpssignal.live.site import VirtualSite
    from gpssignal.live.supervisor import Supervisor
    from gpssignal.live.transport import MessageLog

    async def main() -> tuple[list, list]:
        cfg = sil_config(tiny_relief, "1234", **FAST)
        first = Supervisor(tiny_model, cfg, MessageLog(None), clock="feed")
        port = await first.start()
        site = VirtualSite(tiny_relief, 1, 10.0, ("127.0.0.1", port), "1234",
                           MessageLog(None), ack_timeout_s=2.0)
        await site.start()
        try:
            assert await first.wait_for_sites(10.0)
            assert await first.command("J1", "peak")
            assert site.states["J1"].program == "peak"
            # Crash: the listener and the connection go, no shutdown commands.
            assert first._server is not None
            first._server.close()
            for sess in list(first.sessions.values()):
                await sess.close()
            second = Supervisor(tiny_model, dataclasses.replace(cfg, port=port),
                                MessageLog(None), clock="feed")
            await second.start()
            assert await second.wait_for_sites(10.0)
            return second.plans, site.states["J1"].timeline
        finally:
            await site.stop()

    plans, timeline = asyncio.run(main())
    assert [(p.program, p.reason, p.confirmed) for p in plans] == [
        ("normal", "reconnect", True)]
    assert [(p, how) for _, p, how in timeline] == [("peak", "forced"), ("normal", "forced")]
