"""The gpssignal GPS controller driving SUMO through libsumo.

SUMO simulates the exported scenario (same vehicles as gpssignal's run of the
seed). Every step, the probe vehicles (the same equipped vehicles as in
gpssignal: :class:`~gpssignal.probes.sampler.ProbeSampler` with the seed's
``probes`` stream) are read from SUMO (edge, lane, position, speed) and
sampled exactly as in gpssignal: period, noise, dropout, latency, trip-end
trimming. The points go through the same :class:`~gpssignal.probes.sampler.ProbeFeed`
into the same run-time path (:class:`~gpssignal.control.gps.GpsRuntime`),
which decides on the same UTC grid. A requested program is applied at the
running program's synchronisation point (cycle second 0, where every program
has the same green set), as gpssignal's signal runtime does: ``setProgram``
then phase 0. The hold that gpssignal adds when two programs have different
offsets is not reproduced (the default scenario's programs share offset 0).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gpssignal.control.fixed import FixedTimeController
from gpssignal.control.gps import GpsController, GpsModel
from gpssignal.errors import SumoNotFound
from gpssignal.interop.sumo import sumo_binary
from gpssignal.interop.sumo_export import export_sumo, link_edges
from gpssignal.model.geo import link_geometry
from gpssignal.model.scenario import ProbeSettings, Scenario
from gpssignal.probes.sampler import ProbeFeed, ProbeSampler, probe_columns
from gpssignal.sim.engine import Simulation, StepView
from gpssignal.sim.network import compile_network

__all__ = ["SumoGpsRun", "run_gps_in_sumo"]


@dataclass
class SumoGpsRun:
    """What a GPS-controlled SUMO run produced."""

    folder: Path
    switches: list[tuple[float, str, str, str]]   # (t_s, junction, from, to)
    probe_points: int
    wall_s: float


def run_gps_in_sumo(scenario: Scenario, model: GpsModel, seed: int, folder: str | Path,
                    probes: ProbeSettings | None = None) -> SumoGpsRun:
    """Simulate day ``seed`` in SUMO under the GPS controller; outputs in ``folder``."""
    try:
        import libsumo  # type: ignore[import-not-found]
    except ImportError:
        raise SumoNotFound("libsumo not found: install the optional extra "
                           "(pip install 'gpssignal[sumo]')") from None
    ex = export_sumo(scenario, folder, seed=seed)
    settings = scenario.probes if probes is None else probes
    sim = Simulation(scenario, FixedTimeController(scenario), seed=seed,
                     record_trajectories=False)
    feed = ProbeFeed(probe_columns(settings))
    sampler = ProbeSampler(scenario, settings, sim.arrivals, link_geometry(scenario),
                           np.random.default_rng(sim.streams["probes"]), feed=feed)
    ctrl = GpsController(model, scenario, feed)
    rt = ctrl.runtime
    net = compile_network(scenario)
    # SUMO edge -> (link index, its part of the link): a link with short lanes
    # is several edges (sumo_export.link_edges).
    edges_of = link_edges(scenario)
    parts = {pt.edge: (net.link_index(pt.link), pt) for pts in edges_of.values() for pt in pts}
    n_parts = np.array([len(edges_of[lid]) for lid in net.link_ids])
    route_links = sim.arrivals.route_links
    link_pos_of: dict[int, np.ndarray] = {}   # vehicle -> link position per route edge

    def route_pos(v: int, edge_index: int) -> int:
        if v not in link_pos_of:
            r = route_links[v][route_links[v] >= 0]
            link_pos_of[v] = np.repeat(np.arange(len(r)), n_parts[r])
        return int(link_pos_of[v][edge_index])
    equipped = sampler.equipped
    step = scenario.step_s
    step_ms = int(round(model.decision_interval_s * 1000))
    next_ms = -(-ctrl.t0_ms // step_ms) * step_ms
    programs = {j.id: {p.name: p for p in j.programs} for j in scenario.junctions}
    current = {j.id: j.default_program for j in scenario.junctions}
    switches: list[tuple[float, str, str, str]] = []
    t_wall = time.perf_counter()
    libsumo.start([str(sumo_binary("sumo")), "-c", str(ex.config), "--no-step-log", "true",
                   "--tripinfo-output.write-unfinished", "true"])
    try:
        while libsumo.simulation.getMinExpectedNumber() > 0:
            libsumo.simulationStep()
            t = libsumo.simulation.getTime()
            ids = [v for v in libsumo.vehicle.getIDList() if equipped[int(v)]]
            if ids:
                vid = np.array([int(v) for v in ids], dtype=np.int64)
                edge = [libsumo.vehicle.getRoadID(v) for v in ids]
                ok = np.array([e in parts for e in edge], dtype=bool)
                if ok.any():
                    vid = vid[ok]
                    sel = [v for v, k in zip(ids, ok, strict=True) if k]
                    on = [parts[e] for e, k in zip(edge, ok, strict=True) if k]
                    link = np.array([lk for lk, _ in on], dtype=np.int64)
                    lane = np.array([int(net.link_lanes[lk][pt.lanes[
                        libsumo.vehicle.getLaneIndex(v)]]) for (lk, pt), v in zip(
                            on, sel, strict=True)], dtype=np.int64)
                    sampler.on_step(StepView(
                        t_s=t, vid=vid, link=link, lane=lane,
                        route_pos=np.array([route_pos(int(v), libsumo.vehicle.getRouteIndex(v))
                                            for v in sel], dtype=np.int64),
                        pos_m=np.array([pt.start_m + libsumo.vehicle.getLanePosition(v)
                                        for (_, pt), v in zip(on, sel, strict=True)]),
                        speed_mps=np.array([libsumo.vehicle.getSpeed(v) for v in sel]),
                        accel_mps2=np.array([libsumo.vehicle.getAcceleration(v)
                                             for v in sel])))
            now_ms = ctrl.t0_ms + int(round(t * 1000))
            while next_ms <= now_ms:
                pts = feed.deliver((next_ms - ctrl.t0_ms) / 1000.0)
                if len(pts.get("time_sent_s", ())):
                    rt.ingest(ctrl.t0_ms + np.round(pts["time_sent_s"] * 1000).astype(np.int64),
                              ctrl.t0_ms + np.round(pts["time_received_s"] * 1000).astype(
                                  np.int64), pts["lat_deg"], pts["lon_deg"], pts["speed_kmh"],
                              pts["heading_deg"])
                rt.decide(next_ms)
                next_ms += step_ms
            # Apply requests at the synchronisation point (cycle second 0).
            for jid, cur in current.items():
                want = ctrl.requested_program(jid, scenario.start_clock_s + t)
                if want == cur:
                    continue
                p = programs[jid][cur]
                cs = (scenario.start_clock_s + t - p.offset_s) % p.cycle_s
                if min(cs, p.cycle_s - cs) < step / 2:
                    libsumo.trafficlight.setProgram(jid, want)
                    libsumo.trafficlight.setPhase(jid, 0)
                    switches.append((t, jid, cur, want))
                    current[jid] = want
    finally:
        libsumo.close()
    return SumoGpsRun(folder=ex.folder, switches=switches,
                      probe_points=sum(len(c["time_sent_s"]) for c in sampler._cols),
                      wall_s=time.perf_counter() - t_wall)
