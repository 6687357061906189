"""``sil``: software in the loop. Supervisor and virtual site on localhost, then the proof.

Both ends run in one process over real TCP sockets: the supervisor
(:class:`~gpssignal.live.supervisor.Supervisor`, feed clock) and the
simulated junctions (:class:`~gpssignal.live.site.VirtualSite`). Then the
same day runs through the one run path (``run --controller gps``) and the
two are compared: the decisions, the program switches of the signal runtime
(time, junction, programs, hold) and the KPI summary must be identical.
"""

from __future__ import annotations

import asyncio
import json
import math
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gpssignal.control.gps import GpsModel
from gpssignal.live.config import LiveConfig, SiteConfig
from gpssignal.live.feed import FeedParser, feed_lines
from gpssignal.live.site import SiteFaults, VirtualSite, site_ids
from gpssignal.live.supervisor import PlanEvent, Supervisor
from gpssignal.live.transport import MessageLog
from gpssignal.model.scenario import Scenario
from gpssignal.sim.engine import SimResult

__all__ = ["SilResult", "compare_with_simulation", "run_sil", "sil_config"]

#: How long both ends may take to connect before the day starts [s].
CONNECT_TIMEOUT_S = 30.0


@dataclass
class SilResult:
    """What a software-in-the-loop run produced."""

    result: SimResult
    decisions: list[dict[str, Any]]
    plans: list[PlanEvent]
    site_timeline: dict[str, list[tuple[int, str, str]]]
    supervisor_counts: dict[str, int]
    site_counts: dict[str, int]
    instants: int
    comparison: dict[str, Any] = field(default_factory=dict)


def sil_config(scenario: Scenario, security_code: str, **options: Any) -> LiveConfig:
    """Return the supervisor's configuration for the virtual sites of ``scenario``."""
    sites = []
    for j in scenario.junctions:
        sid, cid = site_ids(j.id)
        sites.append(SiteConfig(junction=j.id, site_id=sid, component_id=cid,
                                security_code=security_code,
                                plans={p.name: k + 1 for k, p in enumerate(j.programs)}))
    return LiveConfig(host="127.0.0.1", port=0, sites=sites, **options)


async def _run(scenario: Scenario, model: GpsModel, seed: int, speed: float,
               sup_log: MessageLog, site_log: MessageLog, faults: SiteFaults | None,
               config_options: dict[str, Any], dry_run: bool,
               supervisor_code: str | None) -> SilResult:
    code = secrets.token_hex(4)
    config = sil_config(scenario, supervisor_code or code, **config_options)
    sup = Supervisor(model, config, sup_log, clock="feed", dry_run=dry_run)
    port = await sup.start()
    site = VirtualSite(scenario, seed, model.decision_interval_s, ("127.0.0.1", port), code,
                       site_log, speed=speed, faults=faults,
                       max_unsupervised_s=model.stale_after_s,
                       ack_timeout_s=config.ack_timeout_s, watchdog_s=config.watchdog_s)
    feed_port = await site.start()
    try:
        if not await sup.wait_for_sites(CONNECT_TIMEOUT_S):
            raise ConnectionError("the virtual sites did not connect to the supervisor")
        try:
            await sup.run_feed(feed_lines(f"http://127.0.0.1:{feed_port}/probes"),
                               FeedParser())
        except ConnectionError:
            if site.error is None:
                raise
            # The simulation failed: its error, not the feed's, is what to report.
        await sup.shutdown()
    finally:
        await site.stop()
    if site.error is not None:
        raise site.error
    assert site.result is not None
    return SilResult(result=site.result, decisions=sup.runtime.decision_log(), plans=sup.plans,
                     site_timeline={j: st.timeline for j, st in site.states.items()},
                     supervisor_counts=sup_log.summary(), site_counts=site_log.summary(),
                     instants=site.instants)


def run_sil(scenario: Scenario, model: GpsModel, seed: int, speed: float = math.inf,
            log_dir: Path | None = None, faults: SiteFaults | None = None,
            config_options: dict[str, Any] | None = None, dry_run: bool = False,
            supervisor_code: str | None = None) -> SilResult:
    """Run supervisor and virtual site on localhost for one day.

    Parameters
    ----------
    scenario : Scenario
    model : GpsModel
    seed : int
    speed : float
        Simulated seconds per wall second (``inf``: unpaced).
    log_dir : Path, optional
        Writes ``supervisor.ndjson`` and ``site.ndjson`` (must not exist yet).
    faults : SiteFaults, optional
    config_options : dict, optional
        Overrides of :class:`LiveConfig` (time-outs, retries).
    dry_run : bool
        The supervisor only logs its commands.
    supervisor_code : str, optional
        Give the supervisor another security code than the site's (tests).
    """
    sup_log = MessageLog(log_dir / "supervisor.ndjson" if log_dir else None)
    site_log = MessageLog(log_dir / "site.ndjson" if log_dir else None)
    try:
        return asyncio.run(_run(scenario, model, seed, speed, sup_log, site_log, faults,
                                config_options or {}, dry_run, supervisor_code))
    finally:
        sup_log.close()
        site_log.close()


def compare_with_simulation(sil: SilResult, scenario: Scenario, model: GpsModel,
                            seed: int) -> dict[str, Any]:
    """Run ``run --controller gps`` on the same day and compare; return the findings."""
    from gpssignal.evaluate.metrics import summary_table
    from gpssignal.experiment.run import ControllerSpec, RunSpec, run_one

    ref = run_one(RunSpec(scenario=scenario, controller=ControllerSpec(kind="gps", model=model),
                          seed=seed))
    ref_decisions = ref.controller.runtime.decision_log()  # type: ignore[attr-defined]

    def switches(r: SimResult) -> list[tuple[float, str, str, str, float]]:
        return [(s.t_s, s.junction, s.from_program, s.to_program, s.hold_s)
                for s in r.switches]

    kpi_sil = summary_table(sil.result)
    kpi_ref = summary_table(ref.result)
    same_kpis = kpi_sil.equals(kpi_ref)
    out = {
        "decisions_sil": len(sil.decisions), "decisions_sim": len(ref_decisions),
        "same_decisions": _same(sil.decisions, ref_decisions),
        "switches_sil": len(sil.result.switches), "switches_sim": len(ref.result.switches),
        "same_switches": switches(sil.result) == switches(ref.result),
        "same_kpis": bool(same_kpis),
        "kpis": {str(r["kpi"]): [_num(r["period"]), _num(r_ref)]
                 for (_, r), r_ref in zip(kpi_sil.iterrows(), kpi_ref["period"], strict=True)},
        "switch_times_s": [s[0] for s in switches(sil.result)],
    }
    out["equal"] = bool(out["same_decisions"] and out["same_switches"] and same_kpis)
    sil.comparison = out
    return out


def _num(x: Any) -> float | None:
    v = float(x)
    return None if math.isnan(v) else v


def _same(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> bool:
    """Decision logs equal (NaN equal to NaN)."""
    return json.dumps(a, default=str, sort_keys=True) == json.dumps(b, default=str,
                                                                     sort_keys=True)
