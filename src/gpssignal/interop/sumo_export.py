"""Export a gpssignal scenario (and one day's vehicles) as a runnable SUMO scenario.

What is written to ``OUTDIR``:

``net.nod.xml``, ``net.edg.xml``, ``net.con.xml``
    Plain network: a traffic-light node per junction at its position, a node
    at the open end of every boundary link, one edge per link with the
    scenario's length, lanes and speed limit, and the lane connections of
    :func:`gpssignal.sim.network.compile_network` (nothing else).
``net.net.xml``
    Built from those by SUMO's ``netconvert`` without internal lanes, so a
    junction is a point, as in gpssignal.
``tls.add.xml``
    Every signal program as a static ``tlLogic`` (same cycle, greens, amber,
    red-amber and offset); the default program is loaded last, so it runs.
``routes.rou.xml``
    One ``vType`` per vehicle class (IDM with the class's parameters, the
    HBEFA4 emission class, mass and size) and the day's vehicles with their
    arrival time, route and speed factor: the *same* demand realisation as
    gpssignal's run with that seed.
``stretch.add.xml``
    An entry/exit (E3) detector over the first monitored stretch.
``approach.add.xml``
    On every lane of every junction approach (a link with a ``to`` arm): a
    lane-area (E2) detector over the whole lane, jam output every 1 s with
    gpssignal's queue thresholds (``queue.xml``), and an instant induction
    loop 0.1 m before the stop line, one record per vehicle (``stopline.xml``).
    Detectors do not act on traffic.
``run.sumocfg``
    Step length, begin/end, and outputs: tripinfo with emissions, summary,
    the detectors, optionally FCD.

The signal-group → SUMO link-index mapping is read back from the built
``net.net.xml`` and checked against the intended connections
(:func:`check_connections`), not assumed.
"""

from __future__ import annotations

import subprocess
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from gpssignal.control.fixed import FixedTimeController
from gpssignal.errors import ScenarioError
from gpssignal.interop.sumo import sumo_binary
from gpssignal.model.geo import link_geometry
from gpssignal.model.scenario import MOVEMENTS, Scenario
from gpssignal.model.signals import AMBER, GREEN, RED, RED_AMBER, program_events, state_at
from gpssignal.probes.sampler import ProbeSampler
from gpssignal.sim.engine import (
    QUEUE_MAX_CLEAR_M,
    QUEUE_SAMPLE_S,
    QUEUE_SPEED_MPS,
    Simulation,
)
from gpssignal.sim.network import compile_network

if TYPE_CHECKING:
    from gpssignal.model.geo import LinkGeometry
    from gpssignal.sim.demand import Arrivals

__all__ = ["SumoExport", "check_connections", "export_sumo", "tl_phases"]

_LETTER = {GREEN: "G", AMBER: "y", RED: "r", RED_AMBER: "u"}


@dataclass(frozen=True)
class SumoExport:
    """Paths of an exported scenario and the checked link-index mapping."""

    folder: Path
    config: Path
    net: Path
    link_groups: dict[str, list[str]]   # tl id -> group of each link index


def _write(path: Path, root: ET.Element) -> None:
    ET.indent(root)
    path.write_text(ET.tostring(root, encoding="unicode") + "\n", encoding="utf-8")


def _connections(scenario: Scenario) -> list[tuple[str, int, str, int, str, str]]:
    """(from edge, from lane, to edge, to lane, junction, group) of every lane connection."""
    net = compile_network(scenario)
    out = []
    for ln in range(net.n_lanes):
        k = int(net.lane_link[ln])
        lanes = list(net.link_lanes[k])
        for mv in range(len(MOVEMENTS)):
            tgt = int(net.lane_target[ln, mv])
            if tgt < 0 or not net.lane_allows[ln, mv]:
                continue
            tk = int(net.lane_link[tgt])
            g = int(net.lane_group[ln])
            jid = net.junction_ids[int(net.group_junction[g])]
            gid = net.junction_groups[int(net.group_junction[g])][g - int(
                net.group_offset[int(net.group_junction[g])])]
            out.append((net.link_ids[k], lanes.index(ln), net.link_ids[tk],
                        list(net.link_lanes[tk]).index(tgt), jid, gid))
    # One connection per (from lane, to lane) even if several movements share it.
    return sorted(set(out))


def tl_phases(scenario: Scenario, junction_id: str, program_name: str,
              link_groups: list[str]) -> list[tuple[float, str]]:
    """(duration, state string) phases of one program, for SUMO's link order."""
    j = scenario.junction(junction_id)
    prog = next(p for p in j.programs if p.name == program_name)
    t = j.timing
    events = program_events(prog, j.groups, t.amber_s, t.red_amber_s)
    cuts = sorted({0.0, *[round(e[0], 6) for e in events]})
    phases = []
    for a, b in zip(cuts, [*cuts[1:], prog.cycle_s], strict=True):
        if b - a <= 1e-9:
            continue
        mid = (a + b) / 2
        states = {g: state_at(prog, g, mid, t.amber_s, t.red_amber_s) for g in j.groups}
        phases.append((b - a, "".join(_LETTER[states[g]] for g in link_groups)))
    return phases


def check_connections(net_xml: Path, scenario: Scenario) -> dict[str, list[str]]:
    """Read the built network's controlled connections and check them.

    Returns, per traffic light, the signal group of each link index.

    Raises
    ------
    ScenarioError
        If a connection is missing, unexpected, or a link index is ambiguous.
    """
    want = {(f, fl, t, tl): (j, g) for f, fl, t, tl, j, g in _connections(scenario)}
    got: dict[str, dict[int, str]] = {}
    seen = set()
    for c in ET.parse(net_xml).getroot().iter("connection"):
        key = (c.get("from"), int(c.get("fromLane", -1)), c.get("to"),
               int(c.get("toLane", -1)))
        if key[0] is None or key[0].startswith(":"):
            continue
        if key not in want:
            raise ScenarioError(f"SUMO export: netconvert made an unexpected connection {key}")
        seen.add(key)
        jid, gid = want[key]
        tl, idx = c.get("tl"), c.get("linkIndex")
        if tl != jid or idx is None:
            raise ScenarioError(f"SUMO export: connection {key} is not controlled by {jid}")
        prev = got.setdefault(jid, {}).get(int(idx))
        if prev is not None and prev != gid:
            raise ScenarioError(f"SUMO export: link index {idx} of {jid} serves groups "
                                f"{prev} and {gid}")
        got[jid][int(idx)] = gid
    missing = set(want) - seen
    if missing:
        raise ScenarioError(f"SUMO export: connections missing in the SUMO net: "
                            f"{sorted(missing)[:3]}")
    out = {}
    for jid, m in got.items():
        n = max(m) + 1
        if sorted(m) != list(range(n)):
            raise ScenarioError(f"SUMO export: link indices of {jid} are not 0..{n - 1}")
        out[jid] = [m[i] for i in range(n)]
    return out


def export_sumo(scenario: Scenario, out_dir: str | Path, seed: int | None = None,
                fcd: bool = False) -> SumoExport:
    """Write the SUMO scenario of ``scenario`` and the vehicles of day ``seed``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    geo = link_geometry(scenario)
    _write_plain_net(scenario, geo, out)
    net_xml = _netconvert(out)
    link_groups = check_connections(net_xml, scenario)
    _write_tls(scenario, link_groups, out)
    # Vehicle types and the day's vehicles.
    seed = scenario.seed if seed is None else seed
    sim = Simulation(scenario, FixedTimeController(scenario), seed=seed,
                     record_trajectories=False)
    arr = sim.arrivals
    _write_routes(scenario, arr, out)
    _write_stretch_detector(scenario, out)
    _write_approach_detectors(scenario, out)
    probe_ids = None
    if not fcd:
        sampler = ProbeSampler(scenario, scenario.probes, arr, geo,
                               np.random.default_rng(sim.streams["probes"]))
        probe_ids = np.flatnonzero(sampler.equipped)
    config = _write_config(scenario, out, probe_ids)
    return SumoExport(folder=out, config=config, net=net_xml, link_groups=link_groups)


def _write_plain_net(scenario: Scenario, geo: LinkGeometry, out: Path) -> None:
    """Write the plain network (nodes, edges, connections) netconvert builds on."""
    nodes = ET.Element("nodes")
    node_of_end: dict[tuple[int, str], str] = {}
    for j in scenario.junctions:
        x, y = geo.projection.to_xy(np.array(j.lat_deg), np.array(j.lon_deg))
        ET.SubElement(nodes, "node", id=j.id, x=f"{float(x):.2f}", y=f"{float(y):.2f}",
                      type="traffic_light", tl=j.id)
    for k, lk in enumerate(scenario.links):
        if lk.from_arm is None:
            nid = f"{lk.id}_start"
            x, y = geo.start_xy[k]
            ET.SubElement(nodes, "node", id=nid, x=f"{x:.2f}", y=f"{y:.2f}", type="priority")
            node_of_end[(k, "from")] = nid
        else:
            node_of_end[(k, "from")] = lk.from_arm.split(".")[0]
        if lk.to_arm is None:
            nid = f"{lk.id}_end"
            x, y = geo.end_xy[k]
            ET.SubElement(nodes, "node", id=nid, x=f"{x:.2f}", y=f"{y:.2f}", type="priority")
            node_of_end[(k, "to")] = nid
        else:
            node_of_end[(k, "to")] = lk.to_arm.split(".")[0]
    _write(out / "net.nod.xml", nodes)
    edges = ET.Element("edges")
    for k, lk in enumerate(scenario.links):
        ET.SubElement(edges, "edge", id=lk.id, attrib={
            "from": node_of_end[(k, "from")], "to": node_of_end[(k, "to")],
            "numLanes": str(len(lk.lanes)), "speed": f"{lk.speed_limit_mps:.4f}",
            "length": f"{lk.length_m:g}", "width": f"{lk.lane_width_m:g}"})
    _write(out / "net.edg.xml", edges)
    cons = ET.Element("connections")
    for f, fl, t, tl, _, _ in _connections(scenario):
        ET.SubElement(cons, "connection", attrib={"from": f, "to": t, "fromLane": str(fl),
                                                  "toLane": str(tl)})
    _write(out / "net.con.xml", cons)


def _netconvert(out: Path) -> Path:
    """Build ``net.net.xml`` from the plain network with netconvert."""
    net_xml = out / "net.net.xml"
    proc = subprocess.run(
        [str(sumo_binary("netconvert")), "--node-files", str(out / "net.nod.xml"),
         "--edge-files", str(out / "net.edg.xml"), "--connection-files",
         str(out / "net.con.xml"), "--output-file", str(net_xml), "--no-internal-links",
         "--no-turnarounds", "--tls.discard-simple", "false", "--offset.disable-normalization",
         "--no-warnings"], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise ScenarioError(f"SUMO export: netconvert failed: {proc.stderr.strip()[-300:]}")
    return net_xml


def _write_tls(scenario: Scenario, link_groups: dict[str, list[str]], out: Path) -> None:
    """Write the signal programs: the default one last (SUMO runs the program loaded last)."""
    add = ET.Element("additional")
    for j in scenario.junctions:
        groups = link_groups[j.id]
        progs = sorted(j.programs, key=lambda p: p.name == j.default_program)
        for p in progs:
            # gpssignal: cycle second = (clock - offset) mod cycle; SUMO time 0 is
            # the scenario's start clock.
            off = (p.offset_s - scenario.start_clock_s) % p.cycle_s
            logic = ET.SubElement(add, "tlLogic", id=j.id, type="static", programID=p.name,
                                  offset=f"{off:g}")
            for dur, state in tl_phases(scenario, j.id, p.name, groups):
                ET.SubElement(logic, "phase", duration=f"{dur:g}", state=state)
    _write(out / "tls.add.xml", add)


def _write_routes(scenario: Scenario, arr: Arrivals, out: Path) -> None:
    """Write the vehicle types (IDM, HBEFA4 classes) and the day's vehicles."""
    drv = scenario.driver
    routes = ET.Element("routes")
    for c in scenario.vehicle_classes:
        # No lane changes for speed gain or to keep right: gpssignal's lanes are
        # single file within a link (a vehicle picks its lane where it enters
        # one), and a marked turn lane may not be used to pass a queue. With
        # SUMO's defaults, through vehicles overtake an oversaturated queue in
        # the left-turn lane and cut back in at the stop line, costing about 7 %
        # of the through discharge (docs/validation.md, "Across the demand
        # range"). Strategic changes (to reach a lane of the route) stay on.
        ET.SubElement(routes, "vType", id=c.name, attrib={
            "lcSpeedGain": "0", "lcKeepRight": "0",
            "carFollowModel": "IDM", "accel": f"{c.max_accel_mps2:g}",
            "decel": f"{c.comfortable_decel_mps2:g}", "tau": f"{c.time_headway_s:g}",
            "minGap": f"{c.min_gap_m:g}", "length": f"{c.length_m:g}",
            "delta": f"{drv.idm_delta:g}",
            "emergencyDecel": f"{c.emergency_decel_mps2 or drv.max_decel_mps2:g}",
            "speedDev": "0", "emissionClass": f"HBEFA4/{c.emission_class}",
            "mass": f"{c.mass_kg:g}", "width": f"{c.width_m:g}", "height": f"{c.height_m:g}"})
    ids = [lk.id for lk in scenario.links]
    for i in range(len(arr)):
        r = arr.route_links[i]
        ET.SubElement(routes, "vehicle", id=str(i), type=scenario.vehicle_classes[
            int(arr.vehicle_class[i])].name, depart=f"{arr.t_s[i]:.3f}", departLane="best",
            departSpeed="desired", speedFactor=f"{arr.speed_factor[i]:.6f}").append(
            ET.Element("route", edges=" ".join(ids[int(x)] for x in r[r >= 0])))
    _write(out / "routes.rou.xml", routes)


def _write_stretch_detector(scenario: Scenario, out: Path) -> None:
    """Write the monitored stretch as an E3 detector (first stretch only)."""
    det = ET.Element("additional")
    if scenario.stretches:
        st = scenario.stretches[0]
        first = next(lk for lk in scenario.links if lk.id == st.links[0])
        last = next(lk for lk in scenario.links if lk.id == st.links[-1])
        end = st.end_m if st.end_m is not None else last.length_m
        e3 = ET.SubElement(det, "entryExitDetector", id=st.id, period="900",
                           file="stretch.xml", timeThreshold="2.0", speedThreshold="1.39")
        for k in range(len(first.lanes)):
            ET.SubElement(e3, "detEntry", lane=f"{first.id}_{k}", pos=f"{st.start_m:g}")
        for k in range(len(last.lanes)):
            ET.SubElement(e3, "detExit", lane=f"{last.id}_{k}",
                          pos=f"{min(end, last.length_m - 0.1):g}")
    _write(out / "stretch.add.xml", det)


def _write_approach_detectors(scenario: Scenario, out: Path) -> None:
    """Write an E2 queue detector and a stop-line E1 (instant) loop on every approach lane.

    E2 ``q|LINK|k`` covers lane ``k`` of approach ``LINK`` from its start to the
    stop line, with gpssignal's queue thresholds (``sim.engine``): halting
    below 5 km/h (``speedThreshold``) from the first step (``timeThreshold``
    0), and a jam goes on across clear gaps up to 20 m (``jamThreshold``).
    Output every 1 s, gpssignal's queue sampling period. The instant loop
    ``s|LINK|k`` 0.1 m before the stop line records each vehicle's crossing.
    """
    det = ET.Element("additional")
    for lk in scenario.links:
        if lk.to_arm is None:
            continue
        for k in range(len(lk.lanes)):
            lane = f"{lk.id}_{k}"
            ET.SubElement(det, "laneAreaDetector", id=f"q|{lk.id}|{k}", lane=lane, pos="0",
                          endPos=f"{lk.length_m:g}", friendlyPos="true",
                          period=f"{QUEUE_SAMPLE_S:g}", file="queue.xml", timeThreshold="0",
                          speedThreshold=f"{QUEUE_SPEED_MPS:.4f}",
                          jamThreshold=f"{QUEUE_MAX_CLEAR_M:g}")
            ET.SubElement(det, "instantInductionLoop", id=f"s|{lk.id}|{k}", lane=lane,
                          pos=f"{max(lk.length_m - 0.1, 0.0):g}", friendlyPos="true",
                          file="stopline.xml")
    _write(out / "approach.add.xml", det)


def _write_config(scenario: Scenario, out: Path, probe_ids: np.ndarray | None) -> Path:
    """Write ``run.sumocfg``; FCD of ``probe_ids`` only, or of all vehicles if None."""
    cfg = ET.Element("configuration")
    inp = ET.SubElement(cfg, "input")
    ET.SubElement(inp, "net-file", value="net.net.xml")
    ET.SubElement(inp, "route-files", value="routes.rou.xml")
    ET.SubElement(inp, "additional-files", value="tls.add.xml,stretch.add.xml,approach.add.xml")
    tim = ET.SubElement(cfg, "time")
    ET.SubElement(tim, "begin", value="0")
    ET.SubElement(tim, "end", value=f"{scenario.duration_s + scenario.drain_s:g}")
    ET.SubElement(tim, "step-length", value=f"{scenario.step_s:g}")
    outp = ET.SubElement(cfg, "output")
    ET.SubElement(outp, "tripinfo-output", value="tripinfo.xml")
    ET.SubElement(outp, "summary-output", value="summary.xml")
    # FCD: by default the probe share only (the vehicles gpssignal's probe
    # sampler equips on this day, as a probe feed would see them); all
    # vehicles with ``fcd=True``.
    ET.SubElement(outp, "fcd-output", value="fcd.xml")
    ET.SubElement(outp, "fcd-output.acceleration", value="true")
    ET.SubElement(outp, "precision", value="6")   # default 2 decimals round v and a
    proc_ = ET.SubElement(cfg, "processing")
    ET.SubElement(proc_, "time-to-teleport", value="-1")
    ET.SubElement(proc_, "default.emergencydecel", value="decel")
    dev = ET.SubElement(cfg, "emissions")
    ET.SubElement(dev, "device.emissions.probability", value="1")
    fcd_dev = ET.SubElement(cfg, "fcd_device")
    if probe_ids is not None:
        ET.SubElement(fcd_dev, "device.fcd.probability", value="0")
        ET.SubElement(fcd_dev, "device.fcd.explicit", value=",".join(map(str, probe_ids)))
    rep = ET.SubElement(cfg, "report")
    ET.SubElement(rep, "no-step-log", value="true")
    ET.SubElement(rep, "no-warnings", value="true")
    config = out / "run.sumocfg"
    _write(config, cfg)
    return config
