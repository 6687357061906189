"""Export a gpssignal scenario (and one day's vehicles) as a runnable SUMO scenario.

What is written to ``OUTDIR``:

``net.nod.xml``, ``net.edg.xml``, ``net.con.xml``
    Plain network: a traffic-light node per junction at its position, a node
    at the open end of every boundary link, the edges of every link
    (:func:`link_edges`) with the scenario's lengths, lanes and speed limit,
    and the lane connections of :func:`gpssignal.sim.network.compile_network`
    (nothing else).
``net.net.xml``
    Built from those by SUMO's ``netconvert`` without internal lanes, so a
    junction is a point, as in gpssignal.
``tls.add.xml``
    Every signal program as a static ``tlLogic`` (same cycle, greens, amber,
    red-amber and offset); the default program is loaded last, so it runs.
``routes.rou.xml``
    One ``vType`` per vehicle class (IDM with the class's parameters, the
    HBEFA4 emission class, mass and size) and the day's vehicles with their
    arrival time, route (every edge of every link) and speed factor: the
    *same* demand realisation as gpssignal's run with that seed. Platoons
    from an upstream signal (``Link.upstream_signal``) are part of that
    realisation (gpssignal's arrival times), so SUMO gets them as they are.
``stretch.add.xml``
    An entry/exit (E3) detector over the first monitored stretch (entry and
    exit on the edge of their link that holds the position).
``approach.add.xml``
    On every lane of every junction approach (a link with a ``to`` arm): a
    lane-area (E2) detector over the whole lane (across the link's edges when
    it has several), jam output every 1 s with gpssignal's queue thresholds
    (``queue.xml``), and an instant induction loop 0.1 m before the stop line,
    one record per vehicle (``stopline.xml``). Detectors do not act on traffic.
``run.sumocfg``
    Step length, begin/end, and outputs: tripinfo with emissions, summary,
    the detectors, optionally FCD.

The signal-group → SUMO link-index mapping is read back from the built
``net.net.xml`` and checked against the intended connections
(:func:`check_connections`), not assumed; so are the give-way conflicts
(:func:`check_give_way`).

Cyclists and pedestrians
------------------------
Cycle tracks (``Link.mode = "bicycle"``)
    Each is its own edge (``allow="bicycle"``) between the same nodes as the
    road beside it, drawn right of the road's kerb lane (the road's width
    from its line), with its connections on the link indices of its signal
    group. The bicycle classes are ``vClass="bicycle"`` vTypes
    (``desiredMaxSpeed`` = ``max_speed_kmh``, emission class ``Zero``).
    Turning motor traffic gives way to cyclists going straight on
    (:func:`gpssignal.model.network.implicit_yields`) as to a give-way rule:
    minor green ``g`` and a ``prohibition`` (below).
Pedestrians (``[[junction.crossing]]``, ``export_sumo(pedestrians=True)``)
    Each crossing is a SUMO crossing over every edge of its arm (roads and
    cycle tracks), with a sidewalk stub of its own on each side
    (``allow="pedestrian"``, :func:`_write_sidewalks`), so no road edge gains
    a lane and every lane index this module, its detectors,
    :mod:`gpssignal.interop.sumo_gps` and the importer use stays the same.
    Road edges are closed to pedestrians (SUMO crosses only such lanes).
    Its link index follows the vehicle ones, shows ``G`` while the group is
    green and ``r`` otherwise, and is read back (:func:`check_crossings`).
    The persons are gpssignal's pedestrians of the day (same arrival times
    at the kerb, same side). SUMO builds crossings only as internal edges,
    so this network has internal links: its junctions are not points.
    Not represented: pushbuttons (the static program shows the green every
    cycle) and refuge islands (SUMO's pedestrians finish on red).
    Without ``pedestrians`` nothing of this is written.

How the approach features map to SUMO
-------------------------------------
Short lanes (``Lane.length_m``: turn pockets, flares)
    A link with short lanes becomes a chain of edges, cut where a short lane
    begins (:func:`link_edges`): the part at the stop line keeps the link's
    id and has all its lanes; each part upstream, ``LINK.0``, ``LINK.1``, ...
    from the start, has only the lanes that exist there. Every lane continues
    into itself across a cut (plain connections, no signal), and the lane
    beside a short lane's start (the one gpssignal's vehicles change from)
    also continues into the short lane: the lane splits where the pocket
    begins. So SUMO's turners enter the pocket at its start and, when it is
    full, wait behind its last vehicle in the lane before it, blocking that
    lane, as gpssignal's do. (Without that connection SUMO's vehicles must
    reach the pocket by a lane change on the last edge; SUMO's LC2013 does
    not see the pocket's queue from the edge before, so a turner overran the
    full pocket, drove on beside its queue to the stop line of the through
    lane and waited there for a gap: on an overflowing 20 m pocket SUMO's
    left turns then discharged 19 % and the through lane 24 % less than
    gpssignal's, docs/validation.md.) Lane ``k`` of the link is
    SUMO lane ``k`` at the stop line, and on an upstream part the k-th of the
    lanes there (both counted from the kerb). Parts missing centre-side lanes
    are drawn shifted to the kerb, so each lane keeps gpssignal's lateral
    position (:mod:`gpssignal.model.geo`). Routes list every part; detectors
    are placed by position along the link, and :mod:`gpssignal.interop.sumo_gps`
    maps a vehicle's edge, lane and position back to the link's.
Give-way (``Link.give_way``)
    The connections of a yielding movement get SUMO's minor green ``g``
    instead of ``G`` wherever gpssignal's state is green; a vehicle there
    passes only if no vehicle approaching a conflicting connection it must
    yield to is due. Whom it yields to is the junction's right-of-way matrix:
    ``net.con.xml`` gives every named movement right of way over the yielding
    one (a ``prohibition``; netconvert then makes the two conflict even where
    their paths do not cross), and :func:`check_give_way` checks the built
    matrix. Not representable: a named movement into another lane of the same
    exit, typically the opposing right turn when it and the left turn enter
    different lanes of a two-lane exit; SUMO has no conflict between the two
    and a prohibition does not add one, so the left turner does not yield to
    it. The export lists such pairs (``SumoExport.give_way_unmapped``) and
    logs a warning.
    Other conflicting connections follow netconvert's geometric right-of-way,
    so SUMO may also make the movement yield to one the rule does not name
    (e.g. the opposing right turn into the same exit), which gpssignal
    ignores. A ``G`` connection never yields in SUMO, as gpssignal's
    movements without a rule.

    Gap acceptance: SUMO lets a minor vehicle go when the next foe is due
    more than ``jmTimegapMinor`` after the vehicle's own (estimated) time to
    clear the junction. The export sets ``jmTimegapMinor`` per vehicle class
    to the critical gap less the time that class needs to clear the junction
    point from a standstill (its length at its maximum acceleration), at
    least 0. One value per class: the critical gap of the rules if they all
    have the same one, else the ``[driver]`` default; per-rule critical gaps
    that differ are not represented. ``follow_up_s`` has no SUMO parameter
    (SUMO's follow-up headway results from car following and the same gap
    check). SUMO's ``impatience`` stays 0 (no forced entries after a long
    wait, as in gpssignal). Differences that remain: SUMO's estimate of its
    own clearing time for a vehicle waiting at the stop line is long with
    IDM, so SUMO's permissive turns wait for markedly longer gaps than the
    critical gap (SUMO 1.28, a saturated left turn against 400 veh/h: it
    used gaps between opposing vehicles only from about 11 s on, half of
    those of 13-15 s, gpssignal's from 5 s; its capacity was 444 veh/h
    against gpssignal's 839 and the HCM's 1,000; with SUMO's Krauss model
    it was 1,015, docs/validation.md); and a minor-green vehicle slows down
    before the junction until it sees the foes (SUMO's visibility
    distance), which gpssignal's does not.
Lane changes (``[driver]`` ``lc_*``)
    SUMO's default lane-change model (LC2013) with its strategic and
    cooperative changes at their defaults: changes to reach a lane of the
    route are always on, as gpssignal's mandatory changes (a pocket itself
    is entered through the lane split above, without a change).
    ``lc_discretionary`` maps to ``lcSpeedGain``: SUMO's default 1
    when true, 0 (no speed-gain changes) when false; ``lcKeepRight`` is 0
    (gpssignal has no keep-right rule). MOBIL's ``lc_politeness``,
    ``lc_threshold_mps2`` and ``lc_safe_decel_mps2`` have no one-to-one LC2013
    parameter and are not exported: SUMO decides speed gain with its own
    thresholds and accepts a change when the new gaps are safe for its car
    following.
Stop line
    Not mapped: SUMO's vehicles stop ``jmStoplineGap`` (default 1 m) before
    a red stop line, gpssignal's lane heads their jam distance ``s0`` (2 m
    for the usual car classes) before it, so SUMO's queues stand 1 m further
    forward and start a little earlier at green. It matters for short greens
    (an overflowing pocket with a 10 s green discharged about 6 % more in
    SUMO; with ``jmStoplineGap`` = ``s0`` the two agree within 0.4 %); on
    the default scenario it moved SUMO's time loss further above
    gpssignal's (+9.7 % to +11.9 % over six ordinary days), so the export
    leaves SUMO's default (docs/validation.md, "Turn pockets, lane changes
    and give-way against SUMO").
"""

from __future__ import annotations

import itertools
import logging
import math
import subprocess
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from gpssignal.control.fixed import FixedTimeController
from gpssignal.errors import ScenarioError
from gpssignal.interop.sumo import sumo_binary
from gpssignal.model.geo import link_geometry
from gpssignal.model.network import implicit_yields
from gpssignal.model.scenario import MOVEMENTS, Link, Scenario, VehicleClass
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

__all__ = ["EdgePart", "SumoExport", "check_connections", "check_crossings", "check_give_way",
           "crossings", "export_sumo", "link_edges", "tl_phases"]

log = logging.getLogger(__name__)

_LETTER = {GREEN: "G", AMBER: "y", RED: "r", RED_AMBER: "u"}

#: Detector positions are kept this far inside their lane [m].
_INSIDE_M = 0.1


@dataclass(frozen=True)
class SumoExport:
    """Paths of an exported scenario and the checked link-index mapping.

    ``yielding[tl][i]``: link index ``i`` of traffic light ``tl`` belongs to a
    give-way movement (minor green ``g``). ``give_way_unmapped``: the pairs of
    a give-way rule SUMO cannot represent (:func:`check_give_way`).
    """

    folder: Path
    config: Path
    net: Path
    link_groups: dict[str, list[str]]   # tl id -> group of each link index
    yielding: dict[str, list[bool]] | None = None
    give_way_unmapped: tuple[str, ...] = ()
    persons: int = 0                    # pedestrians exported (``pedestrians=True``)


@dataclass(frozen=True)
class EdgePart:
    """One SUMO edge of a link: the stretch ``[start_m, end_m]`` of link ``link``.

    ``lanes[i]`` is the link's lane index (0 = kerb) of the edge's SUMO lane ``i``.
    """

    edge: str
    link: str
    start_m: float
    end_m: float
    lanes: tuple[int, ...]

    @property
    def length_m(self) -> float:
        """Return the edge's length [m]."""
        return self.end_m - self.start_m

    def lane_id(self, lane: int) -> str:
        """SUMO lane id of the link's lane ``lane`` on this edge."""
        return f"{self.edge}_{self.lanes.index(lane)}"


def link_edges(scenario: Scenario) -> dict[str, list[EdgePart]]:
    """Per link id, its SUMO edges from upstream to the stop line.

    A link without short lanes is one edge with the link's id. A link with
    short lanes is cut where each begins; the last part (at the stop line)
    keeps the link's id and every lane, the parts before it are ``LINK.0``,
    ``LINK.1``, ... with the lanes that exist there.
    """
    ids = {lk.id for lk in scenario.links}
    out: dict[str, list[EdgePart]] = {}
    for lk in scenario.links:
        starts = [ln.start_m(lk.length_m) for ln in lk.lanes]
        cuts = sorted({0.0, *starts})
        ends = [*cuts[1:], float(lk.length_m)]
        parts = []
        for i, (a, b) in enumerate(zip(cuts, ends, strict=True)):
            eid = lk.id if i == len(cuts) - 1 else f"{lk.id}.{i}"
            if eid != lk.id and eid in ids:
                raise ScenarioError(f"SUMO export: edge id {eid!r} of link {lk.id!r} is also "
                                    "a link id; rename that link")
            lanes = tuple(k for k, s in enumerate(starts) if s <= a)
            parts.append(EdgePart(edge=eid, link=lk.id, start_m=a, end_m=b, lanes=lanes))
        out[lk.id] = parts
    return out


def _part_at(parts: list[EdgePart], pos_m: float, downstream: bool) -> EdgePart:
    """Return the edge holding ``pos_m``; at a cut the one after it (``downstream``) or before."""
    for p in parts:
        if (p.start_m <= pos_m < p.end_m) if downstream else (p.start_m < pos_m <= p.end_m):
            return p
    return parts[-1] if downstream or pos_m > 0 else parts[0]


def _m(x: float) -> str:
    """Format a length or position [m] for SUMO's files."""
    return f"{x:.10g}"


def _write(path: Path, root: ET.Element) -> None:
    ET.indent(root)
    path.write_text(ET.tostring(root, encoding="unicode") + "\n", encoding="utf-8")


class _Conn(NamedTuple):
    """A lane-to-lane connection at a junction of the SUMO network."""

    from_edge: str
    from_lane: int
    to_edge: str
    to_lane: int
    junction: str
    group: str
    yields: bool          # a give-way movement (minor green)


def _connections(scenario: Scenario) -> list[_Conn]:
    """Every lane connection at a junction, in SUMO's edge and lane numbers.

    From the stop-line edge of a link (all its lanes) to the first edge of the
    next link; a target lane that begins later (a short lane) is replaced by
    the full lane nearest to it, where such vehicles enter the link.
    """
    net = compile_network(scenario)
    edges = link_edges(scenario)
    yields = {link_move for _, link_move, _, _, _ in _give_way_pairs(scenario)}
    out: dict[tuple[str, int, str, int], _Conn] = {}
    for ln in range(net.n_lanes):
        k = int(net.lane_link[ln])
        lanes = list(net.link_lanes[k])
        for mv in range(len(MOVEMENTS)):
            tgt = int(net.lane_target[ln, mv])
            if tgt < 0 or not net.lane_allows[ln, mv]:
                continue
            tk = int(net.lane_link[tgt])
            first = edges[net.link_ids[tk]][0]
            want = list(net.link_lanes[tk]).index(tgt)
            to_lane = min(range(len(first.lanes)), key=lambda i: abs(first.lanes[i] - want))
            g = int(net.lane_group[ln])
            jn = int(net.group_junction[g])
            key = (net.link_ids[k], lanes.index(ln), first.edge, to_lane)
            y = (net.link_ids[k], MOVEMENTS[mv]) in yields
            prev = out.get(key)
            out[key] = _Conn(*key, net.junction_ids[jn],
                             net.junction_groups[jn][g - int(net.group_offset[jn])],
                             y or (prev is not None and prev.yields))
    # One connection per (from lane, to lane) even if several movements share it.
    return [out[k] for k in sorted(out)]


def _part_connections(scenario: Scenario) -> list[tuple[str, int, str, int]]:
    """Return the connections across the cuts of a link.

    Every lane continues into itself, and a short lane that begins at the
    cut is also reached from the nearest lane before it (the lane a
    gpssignal vehicle changes from), so that the lane splits there.
    """
    out = []
    for parts in link_edges(scenario).values():
        for a, b in itertools.pairwise(parts):
            out += [(a.edge, i, b.edge, b.lanes.index(k)) for i, k in enumerate(a.lanes)]
            for k in b.lanes:
                if k not in a.lanes:
                    i = min(range(len(a.lanes)), key=lambda x: abs(a.lanes[x] - k))
                    out.append((a.edge, i, b.edge, b.lanes.index(k)))
    return out


def tl_phases(scenario: Scenario, junction_id: str, program_name: str,
              link_groups: list[str], yielding: list[bool] | None = None
              ) -> list[tuple[float, str]]:
    """(duration, state string) phases of one program, for SUMO's link order.

    Link indices with ``yielding[i]`` (a give-way movement) show green as
    SUMO's minor green ``g``. A pedestrian group's link index (a crossing)
    is green ``G`` while the group is green, else red ``r``: gpssignal's
    pedestrians step off only at green, and SUMO's would also at amber.
    """
    j = scenario.junction(junction_id)
    walk = {c.group for c in j.crossings}
    prog = next(p for p in j.programs if p.name == program_name)
    t = j.timing
    minor = yielding if yielding is not None else [False] * len(link_groups)
    events = program_events(prog, j.groups, t.amber_s, t.red_amber_s)
    cuts = sorted({0.0, *[round(e[0], 6) for e in events]})
    phases = []
    for a, b in zip(cuts, [*cuts[1:], prog.cycle_s], strict=True):
        if b - a <= 1e-9:
            continue
        mid = (a + b) / 2
        states = {g: state_at(prog, g, mid, t.amber_s, t.red_amber_s) for g in j.groups}
        phases.append((b - a, "".join(
            ("G" if states[g] == GREEN else "r") if g in walk
            else "g" if states[g] == GREEN and y else _LETTER[states[g]]
            for g, y in zip(link_groups, minor, strict=True))))
    return phases


def _controlled(net_xml: Path, scenario: Scenario) -> dict[str, list[_Conn]]:
    """Per traffic light, the intended connection of each link index (checked)."""
    want = {(c.from_edge, c.from_lane, c.to_edge, c.to_lane): c for c in _connections(scenario)}
    plain = set(_part_connections(scenario))
    walk = {e for x in crossings(scenario) for e in (x.sidewalk_in, x.sidewalk_out)}
    got: dict[str, dict[int, _Conn]] = {}
    seen = set()
    for c in ET.parse(net_xml).getroot().iter("connection"):
        key = (c.get("from"), int(c.get("fromLane", -1)), c.get("to"),
               int(c.get("toLane", -1)))
        if key[0] is None or key[0].startswith(":") or key[2] is None \
                or key[2].startswith(":") or key[0] in walk or key[2] in walk:
            continue   # internal, walking-area, crossing and sidewalk connections
        if key in plain:
            if c.get("tl"):
                raise ScenarioError(f"SUMO export: connection {key} within a link is "
                                    "signal-controlled")
            seen.add(key)
            continue
        if key not in want:
            raise ScenarioError(f"SUMO export: netconvert made an unexpected connection {key}")
        seen.add(key)
        conn = want[key]
        tl, idx = c.get("tl"), c.get("linkIndex")
        if tl != conn.junction or idx is None:
            raise ScenarioError(f"SUMO export: connection {key} is not controlled by "
                                f"{conn.junction}")
        prev = got.setdefault(conn.junction, {}).get(int(idx))
        if prev is not None and prev.group != conn.group:
            raise ScenarioError(f"SUMO export: link index {idx} of {conn.junction} serves "
                                f"groups {prev.group} and {conn.group}")
        if prev is not None and prev.yields != conn.yields:
            raise ScenarioError(f"SUMO export: link index {idx} of {conn.junction} serves "
                                "a give-way movement and one with priority")
        got[conn.junction][int(idx)] = conn
    missing = (set(want) | plain) - seen
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


def check_connections(net_xml: Path, scenario: Scenario) -> dict[str, list[str]]:
    """Read the built network's connections and check them.

    Returns, per traffic light, the signal group of each link index.

    Raises
    ------
    ScenarioError
        If a connection is missing, unexpected, or a link index is ambiguous.
    """
    return {jid: [c.group for c in cs] for jid, cs in _controlled(net_xml, scenario).items()}


def _give_way_pairs(scenario: Scenario
                    ) -> list[tuple[str, tuple[str, str], tuple[str, str], str, tuple[str, str]]]:
    """Return every (junction, (link, movement), yielding edges, named movement, its edges).

    The pairs of the scenario's ``give_way`` rules, and those of the road
    rule that turning motor traffic gives way to cyclists going straight on
    (:func:`gpssignal.model.network.implicit_yields`; its pedestrian half is
    not exported, module docstring). Edges as SUMO (from, to) pairs: the
    stop-line edge of the link and the first edge of the movement's target
    link.
    """
    net = compile_network(scenario)
    first = {lid: parts[0].edge for lid, parts in link_edges(scenario).items()}

    def edges(link_id: str, move: str) -> tuple[str, str]:
        k = net.link_index(link_id)
        return link_id, first[net.link_ids[int(net.link_next[k, MOVEMENTS.index(move)])]]

    implicit = implicit_yields(scenario)
    out = []
    for lk in scenario.links:
        jid = (lk.to_arm or "").split(".")[0]
        written = {gw.movement: list(gw.to) for gw in lk.give_way}
        for move in MOVEMENTS:
            refs = [*written.get(move, []), *implicit.get((lk.id, move), (None, []))[1]]
            for ref in dict.fromkeys(refs):
                other, other_move = ref.split(".")
                out.append((jid, (lk.id, move), edges(lk.id, move), ref,
                            edges(other, other_move)))
    return out


def check_give_way(net_xml: Path, scenario: Scenario
                   ) -> tuple[dict[str, list[bool]], list[str]]:
    """Check that SUMO makes every give-way movement yield to the movements it names.

    Reads each traffic light's right-of-way matrix (``request``: ``foes``, the
    link indices a link conflicts with, and ``response``, those it must yield
    to) from the built network.

    Returns
    -------
    yielding : dict[str, list[bool]]
        Per traffic light, whether each link index is a give-way movement.
    unmapped : list[str]
        The named movements SUMO cannot make the rule's movement yield to,
        because their connections do not conflict in SUMO (different lanes
        of the same exit), one line per pair of link indices.

    Raises
    ------
    ScenarioError
        If a connection of a give-way movement conflicts with one of a
        movement its rule names but does not yield to it.
    """
    ctl = _controlled(net_xml, scenario)
    request: dict[str, dict[int, tuple[str, str]]] = {}
    for jn in ET.parse(net_xml).getroot().iter("junction"):
        jid = jn.get("id")
        if jid in ctl:
            request[jid] = {int(r.get("index", -1)): (r.get("foes", ""), r.get("response", ""))
                            for r in jn.iter("request")}

    def bit(row: str, j: int) -> bool:
        # Bit j of a row is character -1 - j (SUMO writes it from the highest index).
        return j < len(row) and row[-1 - j] == "1"

    unmapped = []
    for jid, (link_id, move), mine, ref, prio in _give_way_pairs(scenario):
        rule = f"{link_id}.{move}"
        conns = ctl.get(jid, [])
        named = [i for i, c in enumerate(conns) if (c.from_edge, c.to_edge) == prio]
        for i, c in enumerate(conns):
            if (c.from_edge, c.to_edge) != mine:
                continue
            foes, response = request.get(jid, {}).get(i, ("", ""))
            for f in named:
                if not bit(foes, f):
                    unmapped.append(f"{rule} -> {ref} (link indices {i}, {f} of {jid})")
                elif not bit(response, f):
                    raise ScenarioError(
                        f"SUMO export: {rule} (link index {i} of {jid}) does not yield to "
                        f"{ref} (link index {f}) in the built network's right-of-way")
    return {jid: [c.yields for c in cs] for jid, cs in ctl.items()}, unmapped


def export_sumo(scenario: Scenario, out_dir: str | Path, seed: int | None = None,
                fcd: bool = False, pedestrians: bool = False) -> SumoExport:
    """Write the SUMO scenario of ``scenario`` and the vehicles of day ``seed``.

    With ``pedestrians``, also the crossings, their sidewalk stubs and the
    day's pedestrians (module docstring); the network then has internal
    links (SUMO builds crossings only with them), so its junctions are no
    longer points.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    geo = link_geometry(scenario)
    _write_plain_net(scenario, geo, out, pedestrians)
    net_xml = _netconvert(out, internal_links=pedestrians)
    link_groups = check_connections(net_xml, scenario)
    yielding, unmapped = check_give_way(net_xml, scenario)
    if unmapped:
        log.warning("SUMO export: give-way conflicts SUMO cannot represent (the movements "
                    "do not conflict there): %s", "; ".join(unmapped))
    if pedestrians:
        for jid, groups in check_crossings(net_xml, scenario).items():
            link_groups[jid] = [*link_groups.get(jid, []), *groups]
            yielding[jid] = [*yielding.get(jid, []), *[False] * len(groups)]
    _write_tls(scenario, link_groups, yielding, out)
    # Vehicle types and the day's vehicles.
    seed = scenario.seed if seed is None else seed
    sim = Simulation(scenario, FixedTimeController(scenario), seed=seed,
                     record_trajectories=False)
    arr = sim.arrivals
    _write_routes(scenario, arr, out)
    n_persons = _write_persons(scenario, sim, out, net_xml) if pedestrians else 0
    _write_stretch_detector(scenario, out)
    _write_approach_detectors(scenario, out)
    probe_ids = None
    if not fcd:
        sampler = ProbeSampler(scenario, scenario.probes, arr, geo,
                               np.random.default_rng(sim.streams["probes"]))
        probe_ids = np.flatnonzero(sampler.equipped)
    config = _write_config(scenario, out, probe_ids)
    return SumoExport(folder=out, config=config, net=net_xml, link_groups=link_groups,
                      yielding=yielding, give_way_unmapped=tuple(unmapped),
                      persons=n_persons)


def _write_plain_net(scenario: Scenario, geo: LinkGeometry, out: Path,
                     pedestrians: bool = False) -> None:
    """Write the plain network (nodes, edges, connections) netconvert builds on.

    With ``pedestrians``, road edges are closed to pedestrians (SUMO builds
    a crossing only over lanes they may not use) and each crossing gets its
    sidewalk stubs (:func:`_write_sidewalks`).
    """
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
    edges = ET.Element("edges")
    parts_of = link_edges(scenario)
    for k, lk in enumerate(scenario.links):
        parts = parts_of[lk.id]
        a, b = geo.start_xy[k], geo.end_xy[k]
        # Node at each cut (the end of every part but the last), on the link's line.
        ends = [node_of_end[(k, "from")]]
        for p in parts[:-1]:
            x, y = a + (b - a) * (p.end_m / lk.length_m)
            ET.SubElement(nodes, "node", id=p.edge, x=f"{x:.2f}", y=f"{y:.2f}",
                          type="priority")
            ends.append(p.edge)
        ends.append(node_of_end[(k, "to")])
        for i, p in enumerate(parts):
            attrib = {"from": ends[i], "to": ends[i + 1], "numLanes": str(len(p.lanes)),
                      "speed": f"{lk.speed_limit_mps:.4f}", "length": _m(p.length_m),
                      "width": f"{lk.lane_width_m:g}"}
            shape = _part_shape(lk, p, a, b, _kerb_offset_m(scenario, lk))
            if shape:
                attrib["shape"] = shape
            if lk.mode == "bicycle":
                # A one-way cycle track: its own edge beside the road.
                attrib["allow"] = "bicycle"
            elif pedestrians:
                attrib["disallow"] = "pedestrian"
            ET.SubElement(edges, "edge", id=p.edge, attrib=attrib)
    cons = ET.Element("connections")
    if pedestrians:
        _write_sidewalks(scenario, geo, nodes, edges, cons)
    _write(out / "net.nod.xml", nodes)
    _write(out / "net.edg.xml", edges)
    for f, fl, t, tl in [(c.from_edge, c.from_lane, c.to_edge, c.to_lane)
                         for c in _connections(scenario)] + _part_connections(scenario):
        ET.SubElement(cons, "connection", attrib={"from": f, "to": t, "fromLane": str(fl),
                                                  "toLane": str(tl)})
    # Give-way: the named movements have right of way over the yielding one
    # (netconvert's right-of-way otherwise follows geometry).
    for _, _, mine, _, prio in _give_way_pairs(scenario):
        ET.SubElement(cons, "prohibition", prohibitor="->".join(prio), prohibited="->".join(mine))
    _write(out / "net.con.xml", cons)


def _kerb_offset_m(scenario: Scenario, lk: Link) -> float:
    """How far right of its line a cycle track lies: the width of the road beside it [m].

    The road is the motor link of the same arm and direction (into the
    junction for a track into it, out of it for one leaving); 0 for motor
    links and tracks without a road beside them.
    """
    if lk.mode != "bicycle":
        return 0.0
    return max((len(r.lanes) * r.lane_width_m for r in scenario.links if r.mode == "motor"
                and (r.to_arm, r.from_arm) == (lk.to_arm, lk.from_arm)), default=0.0)


def _part_shape(lk: Link, part: EdgePart, a: np.ndarray, b: np.ndarray,
                kerb_m: float = 0.0) -> str:
    """Shape of a part shifted right of the link's line; '' if it is not shifted.

    SUMO lays an edge's lanes to the right of its line, its last lane next to
    it; gpssignal lane ``k`` of ``n`` lies ``(n - k - 0.5)`` lane widths right
    of the link's line whatever part it is on, so a part that lacks
    centre-side lanes is shifted toward the kerb. A cycle track is shifted
    ``kerb_m`` (:func:`_kerb_offset_m`): beside the road's kerb lane, not on
    the road's line, so that SUMO's geometry (and its right of way at the
    junction) sees it on the kerb side: right turners cross it, through
    traffic does not.
    """
    missing = len(lk.lanes) - 1 - part.lanes[-1]
    if missing == 0 and kerb_m == 0:
        return ""
    d = b - a
    u = d / float(np.hypot(d[0], d[1]))
    right = np.array([u[1], -u[0]]) * (missing * lk.lane_width_m + kerb_m)
    p0 = a + d * (part.start_m / lk.length_m) + right
    p1 = a + d * (part.end_m / lk.length_m) + right
    return f"{p0[0]:.2f},{p0[1]:.2f} {p1[0]:.2f},{p1[1]:.2f}"


def _netconvert(out: Path, internal_links: bool = False) -> Path:
    """Build ``net.net.xml`` from the plain network with netconvert.

    Without internal links (a junction is a point) unless ``internal_links``:
    SUMO builds crossings and walking areas only as internal edges.
    """
    net_xml = out / "net.net.xml"
    internal = (["--junctions.limit-turn-speed", "-1"] if internal_links
                else ["--no-internal-links"])
    proc = subprocess.run(
        [str(sumo_binary("netconvert")), "--node-files", str(out / "net.nod.xml"),
         "--edge-files", str(out / "net.edg.xml"), "--connection-files",
         str(out / "net.con.xml"), "--output-file", str(net_xml), *internal,
         "--no-turnarounds", "--tls.discard-simple", "false", "--offset.disable-normalization",
         "--no-warnings"], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise ScenarioError(f"SUMO export: netconvert failed: {proc.stderr.strip()[-300:]}")
    return net_xml


def _write_tls(scenario: Scenario, link_groups: dict[str, list[str]],
               yielding: dict[str, list[bool]], out: Path) -> None:
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
            for dur, state in tl_phases(scenario, j.id, p.name, groups, yielding.get(j.id)):
                ET.SubElement(logic, "phase", duration=f"{dur:g}", state=state)
    _write(out / "tls.add.xml", add)


def _critical_gap_s(scenario: Scenario) -> float:
    """Return the give-way rules' critical gap if they agree, else the ``[driver]`` default."""
    drv = scenario.driver
    gaps = {gw.critical_gap_s if gw.critical_gap_s is not None else drv.critical_gap_s
            for lk in scenario.links for gw in lk.give_way}
    return gaps.pop() if len(gaps) == 1 else drv.critical_gap_s


def _write_routes(scenario: Scenario, arr: Arrivals, out: Path) -> None:
    """Write the vehicle types (IDM, HBEFA4 classes) and the day's vehicles."""
    drv = scenario.driver
    gap = _critical_gap_s(scenario)
    routes = ET.Element("routes")
    for c in scenario.vehicle_classes:
        # Speed-gain changes only with discretionary lane changes; never to
        # keep right. gpssignal's lanes without them are single file within a
        # link (a vehicle changes only to reach a lane of its movement), and a
        # marked turn lane may not be used to pass a queue: with SUMO's
        # defaults, through vehicles overtake an oversaturated queue in the
        # left-turn lane and cut back in at the stop line, costing about 7 %
        # of the through discharge (docs/validation.md, "Across the demand
        # range"). Strategic changes (to reach a lane of the route) stay on.
        # jmTimegapMinor: the critical gap less the time to clear the
        # junction point from a standstill (module docstring).
        clear_s = math.sqrt(2.0 * c.length_m / c.max_accel_mps2)
        ET.SubElement(routes, "vType", id=c.name, attrib={
            **_class_attrib(c),
            "lcSpeedGain": "1" if drv.lc_discretionary else "0", "lcKeepRight": "0",
            "jmTimegapMinor": f"{max(gap - clear_s, 0.0):.3f}",
            "carFollowModel": "IDM", "accel": f"{c.max_accel_mps2:g}",
            "decel": f"{c.comfortable_decel_mps2:g}", "tau": f"{c.time_headway_s:g}",
            "minGap": f"{c.min_gap_m:g}", "length": f"{c.length_m:g}",
            "delta": f"{drv.idm_delta:g}",
            "emergencyDecel": f"{c.emergency_decel_mps2 or drv.max_decel_mps2:g}",
            "speedDev": "0", "mass": f"{c.mass_kg:g}", "width": f"{c.width_m:g}",
            "height": f"{c.height_m:g}"})
    edges = link_edges(scenario)
    ids = [" ".join(p.edge for p in edges[lk.id]) for lk in scenario.links]
    for i in range(len(arr)):
        r = arr.route_links[i]
        ET.SubElement(routes, "vehicle", id=str(i), type=scenario.vehicle_classes[
            int(arr.vehicle_class[i])].name, depart=f"{arr.t_s[i]:.3f}", departLane="best",
            departSpeed="desired", speedFactor=f"{arr.speed_factor[i]:.6f}").append(
            ET.Element("route", edges=" ".join(ids[int(x)] for x in r[r >= 0])))
    _write(out / "routes.rou.xml", routes)


def _class_attrib(c: VehicleClass) -> dict[str, str]:
    """SUMO attributes that depend on the class's mode: vClass, emission class, speed cap.

    Bicycles are SUMO's ``bicycle`` vClass (they may use the cycle tracks,
    ``allow="bicycle"``) with SUMO's zero-emission class ``Zero``; motor
    classes keep SUMO's default vClass (passenger) and their HBEFA4 class.
    ``max_speed_kmh`` is SUMO's ``desiredMaxSpeed``: both take the desired
    speed as speed factor × min(lane speed, cap).
    """
    out = {"emissionClass": "Zero" if c.emission_class == "Zero"
           else f"HBEFA4/{c.emission_class}"}
    if c.mode == "bicycle":
        out["vClass"] = "bicycle"
    if c.max_speed_kmh is not None:
        out["desiredMaxSpeed"] = f"{c.max_speed_kmh / 3.6:.6f}"
    return out


def _write_stretch_detector(scenario: Scenario, out: Path) -> None:
    """Write the monitored stretch as an E3 detector (first stretch only).

    Entry and exit are on the edge of their link that holds their position,
    on every lane of that edge.
    """
    det = ET.Element("additional")
    if scenario.stretches:
        st = scenario.stretches[0]
        edges = link_edges(scenario)
        last = next(lk for lk in scenario.links if lk.id == st.links[-1])
        end = st.end_m if st.end_m is not None else last.length_m
        e3 = ET.SubElement(det, "entryExitDetector", id=st.id, period="900",
                           file="stretch.xml", timeThreshold="2.0", speedThreshold="1.39")
        p = _part_at(edges[st.links[0]], st.start_m, downstream=True)
        for i in range(len(p.lanes)):
            ET.SubElement(e3, "detEntry", lane=f"{p.edge}_{i}", pos=_m(st.start_m - p.start_m))
        p = _part_at(edges[last.id], end, downstream=False)
        for i in range(len(p.lanes)):
            ET.SubElement(e3, "detExit", lane=f"{p.edge}_{i}",
                          pos=_m(min(end - p.start_m, p.length_m - _INSIDE_M)))
    _write(out / "stretch.add.xml", det)


def _write_approach_detectors(scenario: Scenario, out: Path) -> None:
    """Write an E2 queue detector and a stop-line E1 (instant) loop on every approach lane.

    E2 ``q|LINK|k`` covers lane ``k`` of approach ``LINK`` from its start (a
    short lane's start) to the stop line, across the link's edges when there
    are several, with gpssignal's queue thresholds (``sim.engine``): halting
    below 5 km/h (``speedThreshold``) from the first step (``timeThreshold``
    0), and a jam goes on across clear gaps up to 20 m (``jamThreshold``).
    Output every 1 s, gpssignal's queue sampling period. The instant loop
    ``s|LINK|k`` 0.1 m before the stop line records each vehicle's crossing.
    """
    det = ET.Element("additional")
    edges = link_edges(scenario)
    for lk in scenario.links:
        if lk.to_arm is None:
            continue
        parts = edges[lk.id]
        for k in range(len(lk.lanes)):
            on = [p.lane_id(k) for p in parts if k in p.lanes]
            where = ({"lane": on[0], "pos": "0", "endPos": _m(parts[-1].length_m)}
                     if len(on) == 1 else
                     {"lanes": " ".join(on), "pos": "0", "endPos": _m(parts[-1].length_m)})
            ET.SubElement(det, "laneAreaDetector", id=f"q|{lk.id}|{k}", attrib={
                **where, "friendlyPos": "true", "period": f"{QUEUE_SAMPLE_S:g}",
                "file": "queue.xml", "timeThreshold": "0",
                "speedThreshold": f"{QUEUE_SPEED_MPS:.4f}",
                "jamThreshold": f"{QUEUE_MAX_CLEAR_M:g}"})
            ET.SubElement(det, "instantInductionLoop", id=f"s|{lk.id}|{k}",
                          lane=parts[-1].lane_id(k),
                          pos=_m(max(parts[-1].length_m - _INSIDE_M, 0.0)),
                          friendlyPos="true", file="stopline.xml")
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
    # Pedestrians walk at their speed: no random slow-down of SUMO's
    # pedestrian model (default 0.2, which made them reach the kerb about
    # 1 s after gpssignal's and wait that much less; gpssignal's walk at a
    # constant speed).
    ET.SubElement(proc_, "pedestrian.striping.dawdling", value="0")
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


# ---------------------------------------------------------------------------
# Pedestrians (``pedestrians=True``)
# ---------------------------------------------------------------------------

#: Width of an exported sidewalk [m] (SUMO's default sidewalk width).
SIDEWALK_WIDTH_M = 2.0
#: Length of the sidewalk stub on each side of a crossing, from the junction [m].
SIDEWALK_LENGTH_M = 20.0
#: A pedestrian starts this far before the kerb, so that it reaches the kerb
#: within a step of gpssignal's arrival time there [m].
PED_START_M = 0.5
#: SUMO's vType of the exported pedestrians.
PED_TYPE = "pedestrian"


class _Crossing(NamedTuple):
    """An exported crossing: where it is, what it crosses, its link index and sidewalks."""

    junction: str
    arm: str
    group: str
    crossed: tuple[str, ...]        # the road and cycle-track edges it crosses
    link_index: int                 # its requested traffic-light link index
    sidewalk_in: str                # beside the edges into the junction (ends at it)
    sidewalk_out: str               # beside the edges out of it (starts at it)


def _arm_links(scenario: Scenario, ref: str) -> tuple[list[int], list[int]]:
    """Link indices into and out of arm ``ref`` ("JUNCTION.ARM")."""
    into = [k for k, lk in enumerate(scenario.links) if lk.to_arm == ref]
    out = [k for k, lk in enumerate(scenario.links) if lk.from_arm == ref]
    return into, out


def crossings(scenario: Scenario) -> list[_Crossing]:
    """Every crossing of the scenario as exported, in gpssignal's crossing order.

    A crossing's requested link index follows the junction's vehicle link
    indices (one per lane connection, :func:`_connections`), crossings in
    the junction's order; the built network's are read back
    (:func:`check_crossings`). Raises :class:`ScenarioError` for a crossing over an arm without a
    link.
    """
    edges = link_edges(scenario)
    n_conn: dict[str, int] = {}
    for conn in _connections(scenario):
        n_conn[conn.junction] = n_conn.get(conn.junction, 0) + 1
    out = []
    for j in scenario.junctions:
        for i, c in enumerate(j.crossings):
            ref = f"{j.id}.{c.arm}"
            into, away = _arm_links(scenario, ref)
            if not into and not away:
                raise ScenarioError(f"SUMO export: crossing {ref} is over an arm without links")
            crossed = tuple([edges[scenario.links[k].id][-1].edge for k in into]
                            + [edges[scenario.links[k].id][0].edge for k in away])
            out.append(_Crossing(j.id, c.arm, c.group, crossed, n_conn.get(j.id, 0) + i,
                                 f"{j.id}.{c.arm}.walk_in", f"{j.id}.{c.arm}.walk_out"))
    return out


def _write_sidewalks(scenario: Scenario, geo: LinkGeometry, nodes: ET.Element,
                     edges: ET.Element, cons: ET.Element) -> None:
    """Add each crossing's two sidewalk stubs and the crossing itself to the plain network.

    The stubs are their own edges (``allow="pedestrian"``), beside the
    outermost edge on each side of the arm (the road's kerb lane or the
    cycle track beside it), so no road edge gains a lane and every lane
    index stays as without pedestrians. SUMO builds the walking areas where
    a stub meets the crossing.
    """
    for x in crossings(scenario):
        into, away = _arm_links(scenario, f"{x.junction}.{x.arm}")
        k0 = (into or away)[0]
        d = geo.end_xy[k0] - geo.start_xy[k0]
        u = d / float(np.hypot(d[0], d[1])) * (-1.0 if into else 1.0)   # outward along the arm
        jxy = geo.end_xy[k0] if into else geo.start_xy[k0]
        for sid, links, sign in ((x.sidewalk_in, into, -1.0), (x.sidewalk_out, away, 1.0)):
            # Right of the direction of travel of the links on that side.
            w = sum(len(scenario.links[k].lanes) * scenario.links[k].lane_width_m
                    for k in links) + SIDEWALK_WIDTH_M / 2
            along = u * sign
            right = np.array([along[1], -along[0]]) * w
            near, far = jxy + right, jxy + right + u * SIDEWALK_LENGTH_M
            ET.SubElement(nodes, "node", id=f"{sid}.end", x=f"{far[0]:.2f}", y=f"{far[1]:.2f}",
                          type="priority")
            a, b = (far, near) if sign < 0 else (near, far)
            ET.SubElement(edges, "edge", id=sid, attrib={
                "from": f"{sid}.end" if sign < 0 else x.junction,
                "to": x.junction if sign < 0 else f"{sid}.end", "numLanes": "1",
                "speed": "2.78", "length": _m(SIDEWALK_LENGTH_M),
                "width": f"{SIDEWALK_WIDTH_M:g}", "allow": "pedestrian",
                "shape": f"{a[0]:.2f},{a[1]:.2f} {b[0]:.2f},{b[1]:.2f}"})
        ET.SubElement(cons, "crossing", node=x.junction, edges=" ".join(x.crossed),
                      priority="true", tlLinkIndex=str(x.link_index),
                      tlLinkIndex2=str(x.link_index))


def check_crossings(net_xml: Path, scenario: Scenario) -> dict[str, list[str]]:
    """Check that the built network has each crossing, on a link index of its own.

    Returns, per traffic light, the pedestrian group of each link index
    after the vehicle ones, read back from the network: netconvert orders a
    junction's crossings around it and does not keep the requested
    ``tlLinkIndex`` of each (SUMO 1.28 swapped two of the default
    scenario's), so the mapping is not assumed.

    Raises
    ------
    ScenarioError
        If a crossing is missing, has no or several link indices, or the
        crossings' indices do not follow the vehicle links' without a gap.
    """
    root = ET.parse(net_xml).getroot()
    built = {(e.get("id") or ""): frozenset((e.get("crossingEdges") or "").split())
             for e in root.iter("edge") if e.get("function") == "crossing"}
    index: dict[str, set[tuple[str, int]]] = {}
    for c in root.iter("connection"):
        to = c.get("to") or ""
        if to in built and c.get("linkIndex") is not None:
            index.setdefault(to, set()).add((c.get("tl") or "", int(c.get("linkIndex", -1))))
    got: dict[str, dict[int, str]] = {}
    first: dict[str, int] = {}
    for x in crossings(scenario):
        ids = [e for e, crossed in built.items() if crossed == frozenset(x.crossed)]
        where = f"SUMO export: crossing {x.junction}.{x.arm} over {' '.join(x.crossed)}"
        if len(ids) != 1:
            raise ScenarioError(f"{where} is not in the SUMO net")
        idx = index.get(ids[0], set())
        if len(idx) != 1 or next(iter(idx))[0] != x.junction:
            raise ScenarioError(f"{where} is on link indices {sorted(idx)}, not on one of "
                                f"{x.junction}")
        i = next(iter(idx))[1]
        if i in got.setdefault(x.junction, {}):
            raise ScenarioError(f"{where} shares link index {i} with another crossing")
        got[x.junction][i] = x.group
        first[x.junction] = min(first.get(x.junction, x.link_index), x.link_index)
    out = {}
    for jid, m in got.items():
        want = list(range(first[jid], first[jid] + len(m)))
        if sorted(m) != want:
            raise ScenarioError(f"SUMO export: the crossings of {jid} are on link indices "
                                f"{sorted(m)}, not {want[0]}..{want[-1]}")
        out[jid] = [m[i] for i in want]
    return out


def _walking_area_m(net_xml: Path) -> dict[str, float]:
    """Per sidewalk stub, the length of the walking area between it and its crossing [m]."""
    root = ET.parse(net_xml).getroot()
    length = {(e.get("id") or ""): float(ln.get("length", "0"))
              for e in root.iter("edge") if e.get("function") == "walkingarea"
              for ln in e.iter("lane")}
    out = {}
    for c in root.iter("connection"):
        a, b = c.get("from") or "", c.get("to") or ""
        if b in length and not a.startswith(":"):
            out[a] = length[b]
        elif a in length and not b.startswith(":"):
            out[b] = length[a]
    return out


def _write_persons(scenario: Scenario, sim: Simulation, out: Path, net_xml: Path) -> int:
    """Append the day's pedestrians (gpssignal's, same arrival times) to the routes file.

    Each is a person who walks from the sidewalk stub on its side across the
    crossing to the stub on the other. It starts :data:`PED_START_M` before
    the stub's end, early by the time it takes to walk that and the walking
    area to the crossing, so that it is at the crossing (where SUMO's
    pedestrians wait) when gpssignal's pedestrian arrives at the kerb.
    Returns the number of persons.
    """
    peds = sim.pedestrians
    area_m = _walking_area_m(net_xml)
    routes = ET.parse(out / "routes.rou.xml").getroot()
    walk = scenario.pedestrians.walking_speed_mps
    routes.insert(0, ET.Element("vType", id=PED_TYPE, vClass="pedestrian",
                                desiredMaxSpeed=f"{walk:g}", speedDev="0"))
    persons = []
    if peds is not None:
        for x, cr in enumerate(crossings(scenario)):
            for k, (t, side) in enumerate(zip(peds.arrival[x], peds.side[x], strict=True)):
                a, b = ((cr.sidewalk_in, cr.sidewalk_out) if side == 0
                        else (cr.sidewalk_out, cr.sidewalk_in))
                depart = max(float(t) - (PED_START_M + area_m.get(a, 0.0)) / walk, 0.0)
                pos = SIDEWALK_LENGTH_M - PED_START_M if a == cr.sidewalk_in else PED_START_M
                end = PED_START_M if b == cr.sidewalk_out else SIDEWALK_LENGTH_M - PED_START_M
                p = ET.Element("person", id=f"ped.{cr.junction}.{cr.arm}.{k}", type=PED_TYPE,
                               depart=f"{depart:.3f}", departPos=_m(pos))
                ET.SubElement(p, "walk", attrib={"from": a, "to": b, "arrivalPos": _m(end)})
                persons.append((depart, p))
    # SUMO wants routes sorted by departure.
    vehicles = [el for el in routes if el.tag == "vehicle"]
    for el in vehicles:
        routes.remove(el)
    merged = sorted([(float(v.get("depart", "0")), v) for v in vehicles] + persons,
                    key=lambda e: e[0])
    routes.extend(el for _, el in merged)
    _write(out / "routes.rou.xml", routes)
    return len(persons)
