"""Import a SUMO network (with its signal programs and demand) as a gpssignal scenario.

``import_sumo(net, routes=..., tls=...)`` reads a SUMO ``.net.xml`` (plain
or gzipped), optional additional files with ``tlLogic`` programs, and
route/trip/flow files, and builds a validated :class:`~gpssignal.model.scenario.Scenario`.
Nothing is dropped silently: everything the scenario model cannot hold is
listed in :attr:`SumoImport.unrepresented` (the CLI prints it and writes it
as a comment at the top of the TOML file). docs/import.md describes the
mapping; in short:

Junctions
    Every node of a chosen traffic light (``--tls``; default all) is a
    junction. Its position comes from SUMO's ``location`` (``netOffset`` and
    ``projParameter``, through pyproj); a network without a projection
    (``projParameter="!"``) is placed with gpssignal's own local projection
    (:class:`gpssignal.model.geo.LocalProjection`) around ``origin``.
Cycle tracks
    An edge whose lanes are all bicycle lanes (``allow`` names ``bicycle``
    and not ``passenger``) is a cycle track: chained and mapped as road edges
    are, it becomes a link with ``mode = "bicycle"`` on the arm nearest its
    bearing; its link indices join the road's signal group of that arm and
    timing. Bicycle lanes beside car lanes on one edge are listed as not
    represented. vTypes of vClass ``bicycle`` become ``mode = "bicycle"``
    classes (emission class ``Zero``, ``desiredMaxSpeed`` as
    ``max_speed_kmh``); SUMO's yields of turning cars to cyclists are
    gpssignal's road rule and not written as give-way rules.
Pedestrians
    A crossing (``:NODE_cK``) with a link index of the junction's traffic
    light becomes a ``[[junction.crossing]]`` over the arm whose edges it
    crosses (``crossingEdges``), with its lane length, a pedestrian group
    ``ped_ARM`` of its own (green windows, conflicts and clearances from the
    program and the request matrix as for vehicles; turning traffic yields
    to it by gpssignal's road rule, so no give-way rule is written), no
    island, no pushbutton, and as flow the persons whose walks cross it
    (routed through the walking areas with the fewest edges), per interval
    of their departure. A crossing that breaks a gpssignal rule (typically
    the pedestrian minimum green, which SUMO does not check) is left out and
    listed; so are unsignalised ones, a second one over an arm, and those
    of joined nodes. Walking areas are not modelled.
Traffic lights over several nodes
    Nodes of one traffic light joined by edges of at most
    :data:`JOIN_EDGE_M` are one junction (:func:`_join_nodes`).
Arms and links
    Every road edge (a lane a passenger car may use) into or out of a
    junction is followed away from it through nodes that only continue the
    road (one edge in, one edge on: shape nodes and the nodes where SUMO cuts
    an edge because a turn pocket begins) and the chain becomes one link:
    between two chosen junctions, or an entry / exit link at the network's
    boundary. The link is named after its edge at the stop line (entry and
    internal links) or its first edge (exit links). An incoming and an
    outgoing road at the same bearing (within 40°) form one arm.
Lanes and short lanes
    The lanes of the stop-line edge that passenger cars may use, numbered
    from the kerb as in SUMO. A lane that does not exist on the edge before
    (the edge is cut where a pocket begins) is a short lane whose length is
    the part of the chain it runs along. Movements come from the lane's
    connections, by gpssignal's arm geometry
    (:func:`gpssignal.model.network.movement_targets`); SUMO's ``dir``
    decides where two movements would reach the same arm.
Signal groups
    Link indices of a junction entering from the same arm that are green
    (``G`` or ``g``) at the same times in every program form one signal
    group (``sg1``, ``sg2``, ... in link-index order); approaches timed alike
    stay separate groups.
Programs
    Every ``tlLogic`` of a chosen traffic light: those of the network, or,
    when additional files give programs for it, those (they replace the
    network's; SUMO would run the one loaded last, which becomes the default
    program). Per group: the green window (``G``/``g``), amber ``y`` after it
    and red-amber ``u`` before it; ``r`` and ``s`` are red. The junction's
    amber is the shortest amber the programs show (a longer SUMO amber
    becomes red after it), its red-amber the shortest red-amber (0 if the
    programs have none). Actuated programs are imported as fixed time with
    their phase durations. States ``o`` and ``O`` (signal off) count as
    green; ``o`` links give way like ``g`` ones. A green SUMO starts while a
    conflicting group is still amber starts when the amber ends
    (:func:`_clear_ambers`). A program is turned (cycle second 0 moved to a
    phase start, the offset changed to match) if amber or red-amber would
    span second 0, gpssignal's synchronisation point.
Conflicts and give-way
    Two groups conflict when some of their link indices are ``foes`` in the
    junction's ``request`` matrix and no program shows both green; the
    intergreen is the shortest time any program leaves between the end of
    one's green and the start of the other's. Foes that programs show green
    together are permitted conflicts: where a link index is shown ``g`` (or
    ``o``) and must yield (``response``) to one shown green, its movement
    gets a :class:`~gpssignal.model.approach.GiveWay` rule to the other
    movement.
Demand
    Every vehicle (``vehicle``, ``trip``, ``flow`` with ``number``,
    ``vehsPerHour``, ``period`` or ``probability``, expected counts for the
    random ones) is followed along its route; it counts on the first
    imported link it reaches (which must be an entry link) with its movement
    there, in the 15-min interval of its arrival on that link (departure
    plus the free-flow time of the edges before it). Turn shares of links
    between junctions are the routes' shares. Trips without a route are
    routed through the connections (fewest edges). A counts CSV
    (:func:`parse_counts`) replaces the routes' demand.
"""

from __future__ import annotations

import csv
import gzip
import io
import itertools
import logging
import math
import os
import re
import tempfile
import xml.etree.ElementTree as ET
import zlib
from collections import Counter, defaultdict, deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from gpssignal._files import FileRefusedError, read_regular_bytes
from gpssignal.errors import ScenarioError
from gpssignal.model.approach import GiveWay
from gpssignal.model.geo import LocalProjection
from gpssignal.model.io import dump_scenario, format_clock, parse_clock, parse_scenario
from gpssignal.model.network import MAX_TURN_ERROR_DEG
from gpssignal.model.pedestrians import Crossing
from gpssignal.model.scenario import (
    MOVEMENTS,
    Arm,
    Demand,
    DemandFlow,
    Driver,
    Junction,
    Lane,
    Link,
    Program,
    Scenario,
    SignalTiming,
    VehicleClass,
    link_mode,
)

__all__ = ["SumoImport", "SumoImportError", "import_sumo", "parse_counts", "read_counts",
           "write_import"]

log = logging.getLogger(__name__)


_DOCTYPE = re.compile(rb"<!DOCTYPE", re.IGNORECASE)


class SumoImportError(ScenarioError):
    """A SUMO file the importer cannot handle; the message names the element."""


#: Largest SUMO file read [bytes] (uncompressed): a town's network is tens of MB.
MAX_FILE_BYTES = 256 * 2**20
#: An incoming and an outgoing road within this angle form one arm [deg].
ARM_PAIR_DEG = 40.0
#: How far along an edge its direction at the junction is measured [m].
BEARING_PROBE_M = 30.0
#: Largest counts CSV read [characters]: a day of 15-min counts of 100 movements
#: is about 250 kB.
MAX_COUNTS_CHARS = 50_000_000
#: Largest count of one movement in one interval [vehicles]: a lane discharges
#: at most about 2,000 veh/h (HCM base saturation flow 1,900 pc/h/ln), so even
#: a day-long interval of one movement on many lanes stays far below this.
MAX_INTERVAL_COUNT = 1_000_000
#: Most demand intervals of an import: four weeks of 15-min intervals (a
#: scenario is one day; a route file's stray departure time would otherwise
#: make a list per movement as long as its span).
MAX_INTERVALS = 4 * 7 * 96
#: Largest lane or link index read (SUMO's link indexes of one traffic light and
#: lanes of one edge are a few dozen; a state string is one character per link).
MAX_INDEX = 100_000
#: Longest chain of edges merged into one link [m] (gpssignal's link limit is 20 km).
MAX_CHAIN_M = 5000.0
#: Vehicle classes a gpssignal vehicle can stand for (SUMO ``vClass``).
ROAD_CLASSES = frozenset({"passenger", "private", "taxi", "bus", "coach", "delivery", "truck",
                          "trailer", "evehicle", "emergency", "authority", "army", "vip",
                          "custom1", "custom2"})
_DIR_MOVEMENT = {"s": "through", "l": "left", "L": "left", "r": "right", "R": "right"}
_TURN_DEG = {"through": 0.0, "right": 90.0, "left": -90.0}
#: States in which a link may drive: green (``G``), green that yields (``g``), and the
#: signal switched off (``O``: drive with priority; ``o``: blinking, drive and yield).
_GREEN = "GgOo"
#: Of those, the states in which a link yields to the links its ``response`` names.
_YIELDING = "go"
#: SUMO's defaults per vClass (sumo.dlr.de/docs/Vehicle_Type_Parameter_Defaults.html):
#: length, accel, decel, emergencyDecel, minGap, emission class.
_VCLASS_DEFAULTS = {
    "passenger": (5.0, 2.6, 4.5, 9.0, 2.5, "PC_petrol_Euro-4"),
    "bus": (12.0, 1.2, 4.0, 7.0, 2.5, "UBus_Std_gt15-18t_Euro-VI_A-C"),
    "coach": (14.0, 2.0, 4.0, 7.0, 2.5, "Coach_Std_le18t_Euro-VI_A-C"),
    "truck": (7.1, 1.3, 4.0, 7.0, 2.5, "RT_gt14-20t_Euro-VI_A-C"),
    "trailer": (16.5, 1.1, 4.0, 7.0, 2.5, "TT_AT_gt34-40t_Euro-VI_A-C"),
    "delivery": (6.5, 2.6, 4.5, 9.0, 2.5, "LCV_diesel_N1-III_Euro-6ab"),
    "bicycle": (1.6, 1.2, 3.0, 7.0, 0.5, "Zero"),
}
#: SUMO's default ``desiredMaxSpeed`` of a bicycle [m/s] (20 km/h).
_BICYCLE_DESIRED_MPS = 20.0 / 3.6
#: SUMO vClasses imported as ``mode = "bus"`` (occupants are bus passengers).
_BUS_CLASSES = frozenset({"bus", "coach"})


# ---------------------------------------------------------------------------
# The network as read
# ---------------------------------------------------------------------------

@dataclass
class _Lane:
    index: int
    speed_mps: float
    length_m: float
    shape: np.ndarray
    cars: bool
    width_m: float = 3.2
    bikes: bool = False       # a cycle lane: bicycles may use it, passenger cars may not


@dataclass
class _Edge:
    id: str
    src: str
    dst: str
    name: str
    lanes: list[_Lane]

    @property
    def car_lanes(self) -> list[_Lane]:
        return [ln for ln in self.lanes if ln.cars]

    def mode_lanes(self, mode: str) -> list[_Lane]:
        """Return the lanes of a link of ``mode`` on this edge.

        Car lanes, or (``bicycle``) the cycle lanes of a cycle track (an edge
        without car lanes).
        """
        if mode == "motor":
            return self.car_lanes
        return [] if self.car_lanes else [ln for ln in self.lanes if ln.bikes]

    @property
    def length_m(self) -> float:
        return max(ln.length_m for ln in self.lanes)


@dataclass(frozen=True)
class _Conn:
    src: str
    src_lane: int
    dst: str
    dst_lane: int
    dir: str
    tl: str
    index: int           # link index of the traffic light (-1: none)


@dataclass(frozen=True)
class _RawCrossing:
    """A SUMO pedestrian crossing (an internal edge ``:NODE_cK``)."""

    id: str
    node: str
    order: int                  # K: its place among the node's crossings
    edges: tuple[str, ...]      # the road edges it crosses (``crossingEdges``)
    length_m: float
    tl: str                     # traffic light ('' if none)
    indices: tuple[int, ...]    # its link indices (``linkIndex``, ``linkIndex2``)


@dataclass
class _Net:
    edges: dict[str, _Edge]
    nodes: dict[str, tuple[float, float, str, list[str]]]   # x, y, type, incLanes
    requests: dict[str, dict[int, tuple[str, str]]]       # node -> index -> (response, foes)
    conns: list[_Conn]
    programs: dict[str, list[tuple[str, str, float, list[tuple[float, str]]]]]
    net_offset: tuple[float, float]
    proj: str
    notes: list[str] = field(default_factory=list)
    #: Edges inside a junction of several nodes (:func:`_join_nodes`); routes skip them.
    inner: frozenset[str] = frozenset()
    #: Pedestrian crossings per node, in SUMO's order.
    crossings: dict[str, list[_RawCrossing]] = field(default_factory=dict)
    #: Pairs of edges a pedestrian walks between (connections through walking areas).
    walk_pairs: list[tuple[str, str]] = field(default_factory=list)

    def out_conns(self, edge: str) -> list[_Conn]:
        return self._by_src.get(edge, [])

    def __post_init__(self) -> None:
        self._by_src: dict[str, list[_Conn]] = defaultdict(list)
        self._by_dst: dict[str, list[_Conn]] = defaultdict(list)
        for c in self.conns:
            self._by_src[c.src].append(c)
            self._by_dst[c.dst].append(c)

    def in_conns(self, edge: str) -> list[_Conn]:
        return self._by_dst.get(edge, [])


def _open_xml(path: Path, what: str) -> ET.Element:
    """Parse an XML file (``.gz`` too) within :data:`MAX_FILE_BYTES`; one-line errors."""
    try:
        # A regular file within the limit: /dev/zero or a FIFO is refused unread.
        raw = read_regular_bytes(path, MAX_FILE_BYTES)
        if raw[:2] == b"\x1f\x8b":
            with gzip.GzipFile(fileobj=io.BytesIO(raw)) as gz:
                raw = gz.read(MAX_FILE_BYTES + 1)
    except FileRefusedError as exc:
        raise SumoImportError(f"{what} {path}: {exc}") from None
    except (OSError, EOFError, zlib.error) as exc:
        raise SumoImportError(f"{what} {path}: cannot read ({exc.__class__.__name__}: "
                              f"{exc})") from None
    if len(raw) > MAX_FILE_BYTES:
        raise SumoImportError(f"{what} {path}: more than {MAX_FILE_BYTES:,} bytes "
                              f"uncompressed, above the limit of {MAX_FILE_BYTES:,}")
    if _DOCTYPE.search(raw):
        # SUMO writes no DTD; entity definitions are the "billion laughs" attack
        # (expat's amplification guard only starts at 8 MiB of output).
        raise SumoImportError(f"{what} {path}: has a <!DOCTYPE> (entity definitions are "
                              "not read; SUMO files have none)")
    try:
        return ET.fromstring(raw)
    except ET.ParseError as exc:
        raise SumoImportError(f"{what} {path}: not valid XML ({exc})") from None


def _num(el: ET.Element, key: str, default: float | None = None) -> float:
    """Return a numeric attribute of ``el``; a bad one is an error naming the element."""
    raw = el.get(key)
    if raw is None:
        if default is None:
            raise SumoImportError(f"<{el.tag} id={el.get('id')!r}>: attribute {key!r} missing")
        return default
    try:
        v = float(raw)
    except ValueError:
        raise SumoImportError(f"<{el.tag} id={el.get('id')!r}> {key}={raw!r}: not a "
                              "number") from None
    if not math.isfinite(v):
        raise SumoImportError(f"<{el.tag} id={el.get('id')!r}> {key}={raw!r}: not finite")
    return v


def _index(el: ET.Element, key: str, default: int | None = None) -> int:
    """Return a lane or link index of ``el``: a whole number 0-:data:`MAX_INDEX`.

    ``default`` (``-1``: no link index) is returned when the attribute is absent.
    """
    if el.get(key) is None and default is not None:
        return default
    v = _num(el, key)
    if not (v == int(v) and (0 <= v <= MAX_INDEX or v == default == -1)):
        raise SumoImportError(f"<{el.tag} id={el.get('id')!r}> {key}={el.get(key)!r}: must be "
                              f"a whole number 0-{MAX_INDEX:,}")
    return int(v)


def _shape(text: str | None) -> np.ndarray:
    if not text:
        return np.zeros((0, 2))
    try:
        return np.array([[float(v) for v in p.split(",")[:2]] for p in text.split()])
    except ValueError:
        raise SumoImportError(f"shape {text[:40]!r}: not 'x,y x,y ...'") from None


def _cars_allowed(lane: ET.Element) -> bool:
    allow, disallow = lane.get("allow"), lane.get("disallow")
    if allow is not None:
        kinds = set(allow.split())
        return "all" in kinds or "passenger" in kinds
    if disallow is not None:
        kinds = set(disallow.split())
        return "all" not in kinds and "passenger" not in kinds
    return True


def _bikes_only(lane: ET.Element) -> bool:
    """Whether ``lane`` is a cycle lane: ``allow`` names bicycles and not passenger cars."""
    kinds = set((lane.get("allow") or "").split())
    return "bicycle" in kinds and not kinds & {"all", "passenger"}


def _phases(tl: ET.Element) -> list[tuple[float, str]]:
    out = []
    for ph in tl.iter("phase"):
        state = ph.get("state", "")
        out.append((_num(ph, "duration"), state))
    if not out:
        raise SumoImportError(f"<tlLogic id={tl.get('id')!r} programID="
                              f"{tl.get('programID')!r}>: no phases")
    return out


_Programs = dict[str, list[tuple[str, str, float, list[tuple[float, str]]]]]


def _tl_logics(root: ET.Element) -> _Programs:
    """Per traffic light id, its programs (programID, type, offset, phases) in file order."""
    out: _Programs = defaultdict(list)
    for tl in root.iter("tlLogic"):
        tid = tl.get("id")
        if tid is None:
            raise SumoImportError("<tlLogic>: attribute 'id' missing")
        out[tid].append((tl.get("programID", "0"), tl.get("type", "static"),
                         _num(tl, "offset", 0.0), _phases(tl)))
    return out


def read_net(path: Path, additional: Sequence[Path] = ()) -> _Net:  # noqa: C901 - one pass per element kind
    """Read a SUMO network and the ``tlLogic`` programs of ``additional`` files."""
    root = _open_xml(path, "network")
    if root.tag != "net":
        raise SumoImportError(f"network {path}: root element <{root.tag}>, expected <net>")
    loc = root.find("location")
    offset, proj = (0.0, 0.0), "!"
    if loc is not None:
        try:
            ox, oy = (float(v) for v in loc.get("netOffset", "0,0").split(","))
        except ValueError:
            raise SumoImportError(f"<location netOffset={loc.get('netOffset')!r}>: not "
                                  "'x,y'") from None
        offset, proj = (ox, oy), loc.get("projParameter", "!")
    edges: dict[str, _Edge] = {}
    notes = []
    kinds = Counter(e.get("function", "normal") for e in root.iter("edge"))
    if kinds["internal"]:
        notes.append(f"{kinds['internal']} internal edges (the area inside junctions): a "
                     "gpssignal junction is a point, links end at its centre")
    if kinds["walkingarea"]:
        notes.append(f"{kinds['walkingarea']} walking areas (pedestrians' paths between "
                     "sidewalks and crossings) are not modelled; signalised crossings at the "
                     "imported junctions become [[junction.crossing]] (no islands, no "
                     "pushbuttons, gpssignal's walking speeds)")
    for e in root.iter("edge"):
        if e.get("function") in ("internal", "crossing", "walkingarea"):
            continue
        eid = e.get("id", "")
        lanes = [_Lane(index=_index(ln, "index"), speed_mps=_num(ln, "speed"),
                       length_m=_num(ln, "length"), shape=_shape(ln.get("shape")),
                       cars=_cars_allowed(ln), width_m=_num(ln, "width", 3.2),
                       bikes=_bikes_only(ln))
                 for ln in e.iter("lane")]
        if not lanes:
            raise SumoImportError(f"<edge id={eid!r}>: no lanes")
        if sorted(ln.index for ln in lanes) != list(range(len(lanes))):
            # Connections name lanes by index, taken as the position in the edge.
            raise SumoImportError(f"<edge id={eid!r}>: lane indexes "
                                  f"{sorted(ln.index for ln in lanes)[:10]} must be 0-"
                                  f"{len(lanes) - 1}, each once")
        edges[eid] = _Edge(id=eid, src=e.get("from", ""), dst=e.get("to", ""),
                           name=e.get("name", ""), lanes=sorted(lanes, key=lambda x: x.index))
    nodes, requests = {}, {}
    for j in root.iter("junction"):
        jid = j.get("id", "")
        if j.get("type") == "internal":
            continue
        nodes[jid] = (_num(j, "x"), _num(j, "y"), j.get("type", ""),
                      j.get("incLanes", "").split())
        requests[jid] = {_index(r, "index"): (r.get("response", ""), r.get("foes", ""))
                         for r in j.iter("request")}
    for ed in edges.values():
        for end, node in (("from", ed.src), ("to", ed.dst)):
            if node not in nodes:
                raise SumoImportError(f"<edge id={ed.id!r}> {end}={node!r}: no such "
                                      "<junction>")
    crossings, walk_pairs = _read_crossings(root)
    conns = []
    for c in root.iter("connection"):
        src = c.get("from", "")
        if src.startswith(":") or src not in edges or c.get("to", "") not in edges:
            continue
        conns.append(_Conn(src, _index(c, "fromLane"), c.get("to", ""),
                           _index(c, "toLane"), c.get("dir", ""), c.get("tl", ""),
                           _index(c, "linkIndex", -1)))
    programs = _tl_logics(root)
    for p in additional:
        extra = _tl_logics(_open_xml(p, "additional file"))
        for tid, progs in extra.items():
            if tid in programs:
                notes.append(f"tlLogic {tid}: the programs of {p.name} "
                             f"({', '.join(x[0] for x in progs)}) replace the network's "
                             f"({', '.join(x[0] for x in programs[tid])})")
            programs[tid] = progs
    return _Net(edges=edges, nodes=nodes, requests=requests, conns=conns,
                programs=dict(programs), net_offset=offset, proj=proj, notes=notes,
                crossings=crossings, walk_pairs=walk_pairs)


_CROSSING_ID = re.compile(r":(.+)_c(\d+)")


def _read_crossings(root: ET.Element) -> tuple[dict[str, list[_RawCrossing]],
                                               list[tuple[str, str]]]:
    """Return the network's crossings per node and the pedestrian links between edges."""
    kinds = {e.get("id", ""): e.get("function", "normal") for e in root.iter("edge")}
    signal: dict[str, tuple[str, list[int]]] = {}
    walk_pairs = []
    for c in root.iter("connection"):
        a, b = c.get("from", ""), c.get("to", "")
        if kinds.get(a) == "walkingarea" or kinds.get(b) == "walkingarea":
            walk_pairs.append((a, b))
        if kinds.get(b) == "crossing" and c.get("tl"):
            idx = [_index(c, k) for k in ("linkIndex", "linkIndex2") if c.get(k)]
            signal[b] = (c.get("tl", ""), idx)
    out: dict[str, list[_RawCrossing]] = defaultdict(list)
    for e in root.iter("edge"):
        m = _CROSSING_ID.fullmatch(e.get("id", ""))
        if e.get("function") != "crossing" or m is None:
            continue
        lane = e.find("lane")
        tl, idx = signal.get(e.get("id", ""), ("", []))
        out[m.group(1)].append(_RawCrossing(
            id=e.get("id", ""), node=m.group(1), order=int(m.group(2)),
            edges=tuple((e.get("crossingEdges") or "").split()),
            length_m=_num(lane, "length") if lane is not None else 0.0, tl=tl,
            indices=tuple(idx)))
    return {n: sorted(v, key=lambda x: x.order) for n, v in out.items()}, walk_pairs


# ---------------------------------------------------------------------------
# Traffic lights over several nodes
# ---------------------------------------------------------------------------

#: Nodes of one traffic light joined by an edge of at most this length [m] are one
#: junction (a divided road's two carriageways; netconvert's own joining distance,
#: ``--junctions.join-dist``, is 10 m by default).
JOIN_EDGE_M = 20.0


def _root(parent: dict[str, str], n: str) -> str:
    while parent[n] != n:
        n = parent[n]
    return n


def _clusters(net: _Net, tls: Sequence[str]) -> list[tuple[str, list[str], list[str]]]:
    """Return the groups of nodes to join: (traffic light, nodes, edges between them)."""
    out = []
    for tl in tls:
        nodes = sorted({net.edges[c.src].dst for c in net.conns if c.tl == tl})
        parent = {n: n for n in nodes}
        inner = [e.id for e in net.edges.values() if e.src in parent and e.dst in parent
                 and e.src != e.dst and e.length_m <= JOIN_EDGE_M]
        for e in inner:
            parent[_root(parent, net.edges[e].src)] = _root(parent, net.edges[e].dst)
        roots = {n: _root(parent, n) for n in nodes}
        for r in sorted(set(roots.values())):
            members = sorted(n for n in nodes if roots[n] == r)
            if len(members) > 1:
                out.append((tl, members, sorted(e for e in inner
                                                if net.edges[e].src in members)))
    return out


def _through(net: _Net, c: _Conn, inner: set[str], depth: int = 0) -> list[list[_Conn]]:
    """Every path of connections from ``c`` through ``inner`` edges to an outer edge."""
    if c.dst not in inner:
        return [[c]]
    if depth > len(inner):
        return []
    return [[c, *rest] for d in net.out_conns(c.dst) if d.src_lane == c.dst_lane
            for rest in _through(net, d, inner, depth + 1)]


def _joined_conns(net: _Net, members: set[str], inner: set[str]
                  ) -> tuple[list[_Conn], list[list[str]], list[list[str]]]:
    """Return the paths through a joined junction and their response and foes rows.

    Row ``a`` has character ``n - 1 - b`` set where path ``a`` yields to
    (is a foe of) path ``b`` at a node both pass, as SUMO writes its rows.
    """
    order = {m: _request_order(net, m) for m in members}
    paths = [p for c in net.conns if net.edges[c.src].dst in members and c.src not in inner
             for p in _through(net, c, inner)]
    joined = []
    for path in paths:
        signal = next((c for c in path if c.tl), path[0])
        dirs = [c.dir for c in path if c.dir not in ("s", "")]
        joined.append(_Conn(path[0].src, path[0].src_lane, path[-1].dst, path[-1].dst_lane,
                            dirs[0] if dirs else "s", signal.tl, signal.index))
    n = len(joined)
    resp, foes = [["0"] * n for _ in range(n)], [["0"] * n for _ in range(n)]
    parts = [{net.edges[c.src].dst: order[net.edges[c.src].dst][c] for c in p} for p in paths]
    for a, b in itertools.permutations(range(n), 2):
        for m in parts[a].keys() & parts[b].keys():
            row_resp, row_foes = net.requests[m].get(parts[a][m], ("", ""))
            if _bit(row_resp, parts[b][m]):
                resp[a][n - 1 - b] = "1"
            if _bit(row_foes, parts[b][m]):
                foes[a][n - 1 - b] = "1"
    return joined, resp, foes


def _join_nodes(net: _Net, tls: Sequence[str], notes: list[str]) -> _Net:
    """Return ``net`` with the nodes of each traffic light that lie together joined.

    SUMO models a junction of a divided road as several nodes under one
    traffic light (RiLSA example 2). They become one node at their mean
    position; the short edges between them are the junction's inside (not
    links); a connection into the junction is followed through them to the
    edge it leaves by, and keeps the link index of its signalised part. The
    joined right-of-way matrix has two paths foes (or one yielding to the
    other) where their parts are at a node they share.
    """
    clusters = _clusters(net, tls)
    if not clusters:
        return net
    edges, nodes, requests = dict(net.edges), dict(net.nodes), dict(net.requests)
    conns = list(net.conns)
    all_inner: set[str] = set()
    for tl, members, inner_edges in clusters:
        cid = tl if tl not in nodes else "+".join(members)
        inner, mset = set(inner_edges), set(members)
        all_inner |= inner
        joined, resp, foes = _joined_conns(net, mset, inner)
        n = len(joined)
        inc = [ln for m in members for ln in nodes[m][3] if ln.rpartition("_")[0] not in inner]
        xs = [nodes[m][0] for m in members]
        ys = [nodes[m][1] for m in members]
        dropped = [x.id for m in members for x in net.crossings.get(m, [])]
        if dropped:
            notes.append(f"crossings {', '.join(dropped)} of the joined junction {cid} are not "
                         "represented (crossings are read at single-node junctions only)")
        for m in members:
            del nodes[m], requests[m]
        nodes[cid] = (sum(xs) / len(xs), sum(ys) / len(ys), "traffic_light", inc)
        for eid in inner:
            del edges[eid]
        for eid, ed in list(edges.items()):
            if ed.src in mset or ed.dst in mset:
                edges[eid] = replace(ed, src=cid if ed.src in mset else ed.src,
                                     dst=cid if ed.dst in mset else ed.dst)
        conns = [c for c in conns if c.src not in inner and c.dst not in inner
                 and not (c.src in edges and edges[c.src].dst == cid)] + joined
        notes.append(f"traffic light {tl}: nodes {', '.join(members)} joined into one junction "
                     f"{cid} at their mean position; the edges between them "
                     f"({', '.join(f'{e} {net.edges[e].length_m:g} m' for e in inner_edges)})"
                     " are its inside, not links")
        tmp = _Net(edges=edges, nodes=nodes, requests=requests, conns=conns,
                   programs=net.programs, net_offset=net.net_offset, proj=net.proj)
        k = {c: r for c, r in _request_order(tmp, cid).items()}
        perm = [k[c] for c in joined]      # joined position -> request index
        requests[cid] = {}
        for a in range(n):
            new_resp, new_foes = ["0"] * n, ["0"] * n
            for b in range(n):
                new_resp[n - 1 - perm[b]] = resp[a][n - 1 - b]
                new_foes[n - 1 - perm[b]] = foes[a][n - 1 - b]
            requests[cid][perm[a]] = ("".join(new_resp), "".join(new_foes))
    return _Net(edges=edges, nodes=nodes, requests=requests, conns=conns,
                programs=net.programs, net_offset=net.net_offset, proj=net.proj,
                notes=net.notes, inner=frozenset(all_inner),
                crossings={n: v for n, v in net.crossings.items() if n in nodes},
                walk_pairs=net.walk_pairs)


# ---------------------------------------------------------------------------
# Geometry
# ---------------------------------------------------------------------------

def _bearing(dx: float, dy: float) -> float:
    return math.degrees(math.atan2(dx, dy)) % 360.0


def _angle_diff(a: float, b: float) -> float:
    return abs((a - b + 180.0) % 360.0 - 180.0)


def _shape_bearing(shape: np.ndarray, at_end: bool) -> float:
    """Bearing [deg] from one end of ``shape`` toward a point BEARING_PROBE_M along it."""
    pts = shape[::-1] if at_end else shape
    if len(pts) < 2:
        raise SumoImportError("lane shape with fewer than two points")
    seg = np.diff(pts, axis=0)
    cum = np.concatenate([[0.0], np.cumsum(np.hypot(seg[:, 0], seg[:, 1]))])
    d = min(BEARING_PROBE_M, cum[-1])
    k = int(np.searchsorted(cum, d, side="left"))
    k = min(max(k, 1), len(pts) - 1)
    f = (d - cum[k - 1]) / max(cum[k] - cum[k - 1], 1e-9)
    p = pts[k - 1] + f * (pts[k] - pts[k - 1])
    return _bearing(float(p[0] - pts[0][0]), float(p[1] - pts[0][1]))


def _to_latlon(net: _Net, xy: Sequence[tuple[float, float]], origin: tuple[float, float]
               ) -> list[tuple[float, float]]:
    """Network coordinates to (lat, lon): SUMO's projection, or a local one about ``origin``."""
    xs = np.array([p[0] for p in xy]) - net.net_offset[0]
    ys = np.array([p[1] for p in xy]) - net.net_offset[1]
    if net.proj.strip() in ("", "!"):
        lat, lon = LocalProjection(*origin).to_latlon(xs, ys)
        return list(zip(np.atleast_1d(lat).tolist(), np.atleast_1d(lon).tolist(), strict=True))
    try:
        import pyproj
        tf = pyproj.Transformer.from_proj(pyproj.Proj(net.proj), "EPSG:4326", always_xy=True)
        lon, lat = tf.transform(xs, ys)
    except Exception as exc:
        raise SumoImportError(f"<location projParameter={net.proj!r}>: cannot convert to "
                              f"lat/lon ({exc.__class__.__name__})") from None
    return list(zip(np.atleast_1d(lat).tolist(), np.atleast_1d(lon).tolist(), strict=True))


# ---------------------------------------------------------------------------
# Links: chains of edges between junctions
# ---------------------------------------------------------------------------

def _car_conns(net: _Net, conns: Iterable[_Conn], mode: str = "motor") -> list[_Conn]:
    """Return the connections between lanes of links of ``mode``, no turnarounds.

    ``motor``: lanes a passenger car may use; ``bicycle``: the lanes of cycle
    tracks (:meth:`_Edge.mode_lanes`).
    """
    out = []
    for c in conns:
        a, b = net.edges[c.src], net.edges[c.dst]
        if c.src_lane >= len(a.lanes) or c.dst_lane >= len(b.lanes):
            raise SumoImportError(f"<connection from={c.src!r} to={c.dst!r} fromLane="
                                  f"{c.src_lane} toLane={c.dst_lane}>: no such lane")
        if a.lanes[c.src_lane] in a.mode_lanes(mode) and \
                b.lanes[c.dst_lane] in b.mode_lanes(mode) and c.dir != "t":
            out.append(c)
    return out


def _mergeable(net: _Net, u: str, e: str, junction_nodes: set[str], mode: str) -> bool:
    """Whether edge ``u`` flows only into ``e`` and ``e`` only from ``u``, unsignalled."""
    if net.edges[e].src in junction_nodes:
        return False
    outs = _car_conns(net, net.out_conns(u), mode)
    ins = _car_conns(net, net.in_conns(e), mode)
    return ({c.dst for c in outs} == {e} and {c.src for c in ins} == {u}
            and not any(c.tl for c in outs))


def _chain_up(net: _Net, e: str, junction_nodes: set[str], mode: str) -> list[str]:
    """``e`` and the edges before it that only continue the road (upstream first)."""
    chain, length = [e], net.edges[e].length_m
    while length < MAX_CHAIN_M:
        srcs = {c.src for c in _car_conns(net, net.in_conns(chain[0]), mode)}
        if len(srcs) != 1:
            break
        u = srcs.pop()
        if u in chain or not _mergeable(net, u, chain[0], junction_nodes, mode):
            break
        chain.insert(0, u)
        length += net.edges[u].length_m
    return chain


def _chain_down(net: _Net, e: str, junction_nodes: set[str], mode: str) -> list[str]:
    """``e`` and the edges after it that only continue the road."""
    chain, length = [e], net.edges[e].length_m
    while length < MAX_CHAIN_M:
        dsts = {c.dst for c in _car_conns(net, net.out_conns(chain[-1]), mode)}
        if len(dsts) != 1:
            break
        d = dsts.pop()
        if d in chain or not _mergeable(net, chain[-1], d, junction_nodes, mode):
            break
        chain.append(d)
        length += net.edges[d].length_m
    return chain


@dataclass
class _LinkDraft:
    id: str
    edges: list[str]
    src: str | None            # junction node it leaves (None: boundary)
    dst: str | None            # junction node it enters (None: boundary)
    lanes: list[int]           # SUMO lane indices (car lanes) of the stop-line / first edge
    short_m: dict[int, float]  # SUMO lane index -> short-lane length [m]
    length_m: float
    speed_kmh: float
    mode: str = "motor"


def _safe_id(raw: str, taken: set[str]) -> str:
    """Return an id without '.' (gpssignal's reference separator), unique in ``taken``."""
    base = raw.replace(".", "_") or "x"
    out, k = base, 1
    while out in taken:
        k += 1
        out = f"{base}~{k}"
    taken.add(out)
    return out


def _pocket_lengths(net: _Net, chain: list[str], notes: list[str], mode: str = "motor"
                    ) -> dict[int, float]:
    """Short lanes of the stop-line edge of ``chain``: SUMO lane index -> length [m]."""
    last = net.edges[chain[-1]]
    pos = {ln.index: k for k, ln in enumerate(last.mode_lanes(mode))}  # lane -> position
    length = {ln.index: last.length_m for ln in last.mode_lanes(mode)}
    for u_id, e_id in zip(reversed(chain[:-1]), reversed(chain[1:]), strict=True):
        u, e = net.edges[u_id], net.edges[e_id]
        nu, ne = len(u.mode_lanes(mode)), len(e.mode_lanes(mode))
        if ne < nu:
            notes.append(f"edge {e_id}: {ne} lanes after {nu} on {u_id} (a lane drop); the "
                         f"link keeps the {len(last.mode_lanes(mode))} lanes of its stop-line "
                         "edge")
        shift = 0
        if ne > nu:
            upos = {ln.index: k for k, ln in enumerate(u.mode_lanes(mode))}
            epos = {ln.index: k for k, ln in enumerate(e.mode_lanes(mode))}
            pairs = {(upos[c.src_lane], epos[c.dst_lane]) for c in _car_conns(
                net, net.out_conns(u_id), mode) if c.dst == e_id}
            # The upstream lanes continue into stop-line lanes ``shift`` further
            # from the kerb (``shift`` pockets on the kerb side, the rest on the
            # centre side); besides, a pocket is entered from the lane beside it.
            # Where several shifts fit (one lane before a pocket is connected to
            # it and to the lane it continues in), the lanes' geometry decides:
            # a lane continues into the lane it ends next to.
            fits = [k for k in range(ne - nu + 1) if all((i, i + k) in pairs for i in range(nu))]
            shift = min(fits, key=lambda k: _lane_jump_m(u, e, k, mode)) if fits else 0
        alive = {}
        for lane, p in pos.items():
            q = p - shift
            if 0 <= q < nu and p < ne:
                alive[lane] = q
                length[lane] += u.length_m
        pos = alive
    full = max(length.values())
    return {lane: round(v, 2) for lane, v in length.items() if v < full - 1e-6}


def _lane_jump_m(u: _Edge, e: _Edge, shift: int, mode: str) -> float:
    """Return how far lanes jump [m] if lane ``i`` of ``u`` continues in ``i + shift`` of ``e``.

    The summed distance from each lane's end to the start of its continuation
    (lanes of ``mode``, from the kerb); inf without shapes.
    """
    a, b = u.mode_lanes(mode), e.mode_lanes(mode)
    if any(len(ln.shape) == 0 for ln in [*a, *b]):
        return math.inf
    return float(sum(np.hypot(*(a[i].shape[-1] - b[i + shift].shape[0]))
                     for i in range(len(a))))


def _link_speed_kmh(net: _Net, chain: list[str], notes: list[str], mode: str = "motor"
                    ) -> float:
    speeds = [max(ln.speed_mps for ln in net.edges[e].mode_lanes(mode)) for e in chain]
    lens = [net.edges[e].length_m for e in chain]
    v = sum(s * w for s, w in zip(speeds, lens, strict=True)) / sum(lens) * 3.6
    if max(speeds) * 3.6 - min(speeds) * 3.6 > 1.0:
        notes.append(f"edges {' '.join(chain)}: speed limits {min(speeds) * 3.6:.0f}-"
                     f"{max(speeds) * 3.6:.0f} km/h merged into one link at the "
                     f"length-weighted mean {v:.1f} km/h")
    return round(v, 2)


def _drafts(net: _Net, nodes: set[str], notes: list[str]) -> list[_LinkDraft]:
    """Every link of the imported network, as chains of SUMO edges.

    Road links (car lanes) first, then cycle tracks (``mode = "bicycle"``:
    edges whose only lanes are cycle lanes, ``allow="bicycle"``).
    """
    taken: set[str] = set()
    out: list[_LinkDraft] = []
    for mode in ("motor", "bicycle"):
        out += _mode_drafts(net, nodes, notes, mode, taken)
    return out


def _mode_drafts(net: _Net, nodes: set[str], notes: list[str], mode: str, taken: set[str]
                 ) -> list[_LinkDraft]:
    """Return the links of ``mode`` (:func:`_drafts`)."""
    out: list[_LinkDraft] = []
    first_edges = set()
    for n in sorted(nodes):
        for e in sorted(x for x, ed in net.edges.items() if ed.dst == n and ed.mode_lanes(mode)):
            if not any(c for c in _car_conns(net, net.out_conns(e), mode)):
                what = "a car" if mode == "motor" else "a bicycle"
                notes.append(f"edge {e}: enters junction {n} without a connection {what} "
                             "may use; left out")
                continue
            chain = _chain_up(net, e, nodes, mode)
            src = net.edges[chain[0]].src
            first_edges.add(chain[0])
            last = net.edges[chain[-1]]
            out.append(_LinkDraft(
                id=_safe_id(e, taken), edges=chain, src=src if src in nodes else None, dst=n,
                lanes=[ln.index for ln in last.mode_lanes(mode)],
                short_m=_pocket_lengths(net, chain, notes, mode),
                length_m=round(sum(net.edges[x].length_m for x in chain), 2),
                speed_kmh=_link_speed_kmh(net, chain, notes, mode), mode=mode))
    for n in sorted(nodes):
        for e in sorted(x for x, ed in net.edges.items() if ed.src == n and ed.mode_lanes(mode)):
            if e in first_edges:
                continue
            chain = _chain_down(net, e, nodes, mode)
            out.append(_LinkDraft(
                id=_safe_id(e, taken), edges=chain, src=n, dst=None,
                lanes=[ln.index for ln in net.edges[e].mode_lanes(mode)], short_m={},
                length_m=round(sum(net.edges[x].length_m for x in chain), 2),
                speed_kmh=_link_speed_kmh(net, chain, notes, mode), mode=mode))
    return out


# ---------------------------------------------------------------------------
# Arms and movements
# ---------------------------------------------------------------------------

_COMPASS = ("N", "NE", "E", "SE", "S", "SW", "W", "NW")


def _grid_north_deg(net: _Net, node: str, origin: tuple[float, float]) -> float:
    """Return the true bearing of the network's grid north at ``node`` [deg].

    A projected network's y axis points to true north only on its central
    meridian (UTM: about 2° off at 12.4° E in zone 32); arm bearings measured
    in the grid are turned by this angle so that they are true bearings, as a
    scenario's arms are.
    """
    x, y = net.nodes[node][:2]
    (lat0, lon0), (lat1, lon1) = _to_latlon(net, [(x, y), (x, y + 100.0)], origin)
    return math.degrees(math.atan2((lon1 - lon0) * math.cos(math.radians(lat0)),
                                   lat1 - lat0))


def _arms(net: _Net, node: str, drafts: list[_LinkDraft], north_deg: float = 0.0
          ) -> tuple[list[Arm], dict[str, str], dict[str, str]]:
    """Arms of ``node``; and per link id the arm it enters / leaves by.

    The arms come from the road links; a cycle track belongs to the arm
    nearest its bearing (it runs beside the road). ``north_deg`` turns grid
    bearings into true ones (:func:`_grid_north_deg`).
    """
    ins = [d for d in drafts if d.dst == node and d.mode == "motor"]
    outs = [d for d in drafts if d.src == node and d.mode == "motor"]
    b_in = {d.id: _shape_bearing(net.edges[d.edges[-1]].lanes[d.lanes[0]].shape, True)
            for d in ins}
    b_out = {d.id: _shape_bearing(net.edges[d.edges[0]].lanes[d.lanes[0]].shape, False)
             for d in outs}
    pairs = sorted((_angle_diff(b_in[i.id], b_out[o.id]), i.id, o.id) for i in ins for o in outs)
    used: set[str] = set()
    groups: list[tuple[float, list[str], list[str]]] = []
    for diff, i, o in pairs:
        if diff > ARM_PAIR_DEG or i in used or o in used:
            continue
        used |= {i, o}
        mean = _bearing(math.sin(math.radians(b_in[i])) + math.sin(math.radians(b_out[o])),
                        math.cos(math.radians(b_in[i])) + math.cos(math.radians(b_out[o])))
        groups.append((mean, [i], [o]))
    groups += [(b_in[i.id], [i.id], []) for i in ins if i.id not in used]
    groups += [(b_out[o.id], [], [o.id]) for o in outs if o.id not in used]
    arms, arm_in, arm_out = [], {}, {}
    taken: set[str] = set()
    for bearing, i_ids, o_ids in sorted(groups):
        b = round((bearing + north_deg) % 360.0, 2) % 360.0
        aid = _safe_id(_COMPASS[int((b + 22.5) // 45) % 8], taken)
        edge_id = ([d.edges[-1] for d in ins if d.id in i_ids]
                   or [d.edges[0] for d in outs if d.id in o_ids])[0]
        arms.append(Arm(id=aid, bearing_deg=b, name=net.edges[edge_id].name))
        for i in i_ids:
            arm_in[i] = aid
        for o in o_ids:
            arm_out[o] = aid
    for d in drafts:
        if d.mode == "motor" or node not in (d.src, d.dst):
            continue
        edge = net.edges[d.edges[-1] if d.dst == node else d.edges[0]]
        b = (_shape_bearing(edge.lanes[d.lanes[0]].shape, d.dst == node) + north_deg) % 360.0
        near = min(arms, key=lambda a: _angle_diff(a.bearing_deg, b)).id if arms else None
        if near is not None:
            (arm_in if d.dst == node else arm_out)[d.id] = near
    return arms, arm_in, arm_out


def _movement(arms: list[Arm], arm_in: str, arm_out: str, sumo_dir: str) -> str | None:
    """Return the movement from ``arm_in`` that reaches ``arm_out`` (None: none does)."""
    bearing = {a.id: a.bearing_deg for a in arms}
    others = [a for a in arms if a.id != arm_in]
    found = []
    for m in MOVEMENTS:
        heading = (bearing[arm_in] + 180.0 + _TURN_DEG[m]) % 360.0
        best = min(others, key=lambda a: _angle_diff(a.bearing_deg, heading))
        if best.id == arm_out and _angle_diff(best.bearing_deg, heading) <= MAX_TURN_ERROR_DEG:
            found.append(m)
    if not found:
        return None
    pref = _DIR_MOVEMENT.get(sumo_dir)
    return pref if pref in found else found[0]


# ---------------------------------------------------------------------------
# Signal groups and programs
# ---------------------------------------------------------------------------

@dataclass
class _Window:
    start: float
    end: float
    amber: float          # 'y' after the green [s]
    red_amber: float      # 'u' before it [s]
    green_s: float = 0.0  # length of the green [s]
    permanent: bool = False


def _window(phases: list[tuple[float, str]], index: int) -> _Window | str:
    """Return the green window of one link index in one program, or why there is none."""
    chars = [st[index] for _, st in phases]
    durs = [d for d, _ in phases]
    starts = np.concatenate([[0.0], np.cumsum(durs)])
    cycle = float(starts[-1])
    bad = sorted({c for c in chars if c not in "GgOoyurs"})
    if bad:
        return f"states {''.join(bad)!r} are not a fixed-time program"
    green = [c in _GREEN for c in chars]
    n = len(chars)
    if all(green):
        return _Window(0.0, cycle, 0.0, 0.0, permanent=True)
    firsts = [i for i in range(n) if green[i] and not green[i - 1]]
    if len(firsts) != 1:
        return "never green" if not firsts else f"green {len(firsts)} times per cycle"
    i0 = firsts[0]
    k, green_s = i0, durs[i0]
    while green[(k + 1) % n]:
        k = (k + 1) % n
        green_s += durs[k]
    start, end = float(starts[i0]), float(starts[k] + durs[k])
    amber = 0.0
    j = (k + 1) % n
    while chars[j] == "y" and j != i0:
        amber += durs[j]
        j = (j + 1) % n
    red_amber = 0.0
    j = (i0 - 1) % n
    while chars[j] == "u" and j != k:
        red_amber += durs[j]
        j = (j - 1) % n
    return _Window(round(start, 6), round(end, 6), round(amber, 6), round(red_amber, 6),
                   green_s=round(green_s, 6))


def _bit(row: str, j: int) -> bool:
    # Bit j of a request row is character -1 - j (SUMO writes the highest index first).
    return 0 <= j < len(row) and row[-1 - j] == "1"


@dataclass
class _Signals:
    """What one junction's traffic light gives: groups, programs, conflicts, give-way."""

    group_of: dict[int, str]                      # link index -> group
    groups: list[str]
    programs: list[Program]
    default: str
    timing: SignalTiming
    intergreen: dict[tuple[str, str], float]
    yields: dict[int, set[int]]                   # minor link index -> indices it yields to


def _green_together(phases: list[tuple[float, str]], i: int, j: int) -> bool:
    return any(st[i] in _GREEN and st[j] in _GREEN for d, st in phases if d > 0)


def _programs_of(net: _Net, tl: str, indices: list[int], notes: list[str]
                 ) -> list[tuple[str, float, list[tuple[float, str]]]]:
    """Return the tlLogic programs of ``tl`` usable for ``indices`` (others noted)."""
    out = []
    for pid, kind, offset, phases in net.programs.get(tl, []):
        where = f"tlLogic {tl} program {pid}"
        short = [st for _, st in phases if len(st) <= max(indices)]
        if short:
            raise SumoImportError(f"<tlLogic id={tl!r} programID={pid!r}>: state "
                                  f"{short[0]!r} has no link index {max(indices)}")
        if kind != "static":
            notes.append(f"{where}: type {kind!r} imported as fixed time with its phase "
                         "durations")
        problems = {i: w for i in indices if isinstance(w := _window(phases, i), str)}
        if problems:
            i, why = next(iter(problems.items()))
            notes.append(f"{where}: left out: link index {i} is {why} (gpssignal gives each "
                         "group one green window per cycle)")
            continue
        out.append((pid, offset, phases))
    if not out:
        raise SumoImportError(f"<tlLogic id={tl!r}>: no program gpssignal can represent "
                              "(each signal group needs one green window per cycle)")
    return out


def _group_links(progs: list[tuple[str, float, list[tuple[float, str]]]], indices: list[int],
                 arm_of: dict[int, str]) -> tuple[dict[int, str], list[str], dict[str, int]]:
    """Link indices of one arm green at the same times in every program form a group.

    Arms are kept apart: SUMO's states name no groups, and two approaches
    timed alike (e.g. both side roads) are two signal groups in Danish
    practice and in gpssignal, which may retime them apart. A cycle track's
    link indices join the road's group of the same arm and timing.
    """
    sig: dict[tuple[object, ...], str] = {}
    group_of, rep = {}, {}
    for i in sorted(indices):
        key = (arm_of.get(i), *(tuple(st[i] in _GREEN for _, st in ph) for _, _, ph in progs))
        if key not in sig:
            sig[key] = f"sg{len(sig) + 1}"
            rep[sig[key]] = i
        group_of[i] = sig[key]
    return group_of, list(sig.values()), rep


def _timing(windows: list[_Window], notes: list[str], tl: str) -> SignalTiming:
    windows = [w for w in windows if not w.permanent]
    ambers = sorted({w.amber for w in windows if w.amber > 0})
    reds = sorted({w.red_amber for w in windows})
    greens = [w.green_s for w in windows]
    if len(ambers) > 1:
        notes.append(f"tlLogic {tl}: ambers of {', '.join(f'{a:g}' for a in ambers)} s; "
                     f"gpssignal shows the shortest, {ambers[0]:g} s, the rest as red")
    if any(w.amber == 0 for w in windows):
        notes.append(f"tlLogic {tl}: some greens end without amber; gpssignal shows amber "
                     "after every green")
    red_amber = reds[0] if reds else 0.0
    if len(reds) > 1:
        notes.append(f"tlLogic {tl}: red-ambers of {', '.join(f'{a:g}' for a in reds)} s; "
                     f"gpssignal shows {red_amber:g} s before every green")
    min_green = min([6.0, *[g for g in greens if g > 0]])
    return SignalTiming(amber_s=ambers[0] if ambers else 3.0, red_amber_s=red_amber,
                        min_green_s=min_green)


def _signals(net: _Net, node: str, tl: str, indices: list[int], notes: list[str],
             arm_of: dict[int, str], peds: dict[int, tuple[str, int]] | None = None
             ) -> _Signals:
    """Derive groups, programs, timing, conflicts and give-way of the light at ``node``.

    ``arm_of``: the arm each link index enters from. ``peds``: per crossing
    link index, its pedestrian group and request index; a crossing whose
    green is not one window per cycle in every program is left out (listed).
    """
    progs = _programs_of(net, tl, indices, notes)
    group_of, groups, rep = _group_links(progs, indices, arm_of)
    vehicle_groups = list(groups)
    local: dict[int, list[int]] = defaultdict(list)   # link index -> request indices
    indices = [*indices, *_crossing_groups(progs, peds or {}, group_of, rep, groups, local,
                                           notes, tl)]
    wins = {(pid, g): _window(ph, rep[g]) for pid, _, ph in progs for g in groups}
    timing = _timing([w for (_, g), w in wins.items() if isinstance(w, _Window)
                      and g in vehicle_groups], notes, tl)
    for c, k in _request_order(net, node).items():
        if c.tl == tl:
            local[c.index].append(k)
    req = net.requests.get(node, {})

    def bits(i: int, j: int, what: int) -> bool:   # what: 0 response, 1 foes
        return any(_bit(req.get(a, ("", ""))[what], b) for a in local[i] for b in local[j])

    intergreen: dict[tuple[str, str], float] = {}
    yields: dict[int, set[int]] = defaultdict(set)
    _note_off_states(progs, indices, tl, notes)
    for i in indices:
        for j in indices:
            if i == j or not bits(i, j, 1):
                continue
            gi, gj = group_of[i], group_of[j]
            together = [ph for _, _, ph in progs if _green_together(ph, i, j)]
            if not together:
                gaps = []
                for pid, _, ph in progs:
                    wi, wj = wins[(pid, gi)], wins[(pid, gj)]
                    assert isinstance(wi, _Window) and isinstance(wj, _Window)
                    cycle = sum(d for d, _ in ph)
                    gaps.append(round((wj.start - wi.end) % cycle, 6))
                    gaps.append(round((wi.start - wj.end) % cycle, 6))
                intergreen[(gi, gj)] = min([*gaps[0::2], intergreen.get((gi, gj), math.inf)])
                intergreen[(gj, gi)] = min([*gaps[1::2], intergreen.get((gj, gi), math.inf)])
            elif i in (peds or {}) or j in (peds or {}):
                continue    # turning traffic yields to pedestrians by gpssignal's road rule
            elif bits(i, j, 0) and any(
                    st[i] in _YIELDING and st[j] in _GREEN for ph in together for _, st in ph):
                yields[i].add(j)
            elif not bits(j, i, 0):
                notes.append(f"tlLogic {tl}: link indices {i} and {j} are foes, shown green "
                             "together, and neither yields; gpssignal lets both go")
    _clear_ambers(progs, wins, intergreen, timing.amber_s, notes, tl)
    # SUMO has no intergreen matrix: each group gets the shortest clearance the
    # programs give it before any conflicting green (module docstring).
    clearance: dict[str, float] = {}
    for (gi, _), v in intergreen.items():
        clearance[gi] = min(v, clearance.get(gi, math.inf))
    intergreen = {(gi, gj): clearance[gi] for gi, gj in intergreen}
    default = progs[-1][0]
    programs = _turn_programs(progs, groups, rep, wins, timing, intergreen, node, notes, tl)
    if default not in {p.name for p in programs}:
        default = programs[0].name
    return _Signals(group_of=group_of, groups=groups, programs=programs, default=default,
                    timing=timing, intergreen=intergreen, yields=dict(yields))


def _crossing_groups(progs: list[tuple[str, float, list[tuple[float, str]]]],
                     peds: dict[int, tuple[str, int]], group_of: dict[int, str],
                     rep: dict[str, int], groups: list[str], local: dict[int, list[int]],
                     notes: list[str], tl: str) -> list[int]:
    """Add each crossing's group (in place); return the crossings' link indices kept.

    A crossing needs one green window per cycle in every program (and not
    green all cycle: a pedestrian group conflicts with the traffic crossing
    it); otherwise it is left out and listed.
    """
    kept = []
    for i, (g, k) in sorted(peds.items()):
        bad = [(pid, w) for pid, _, ph in progs if isinstance(w := _window(ph, i), str)
               or w.permanent]
        if bad:
            why = bad[0][1] if isinstance(bad[0][1], str) else "green all cycle"
            notes.append(f"tlLogic {tl} program {bad[0][0]}: crossing link index {i} is {why};"
                         " the crossing is left out")
            continue
        group_of[i], rep[g] = g, i
        groups.append(g)
        local[i].append(k)
        kept.append(i)
    return kept


def _clear_ambers(progs: list[tuple[str, float, list[tuple[float, str]]]],
                  wins: dict[tuple[str, str], _Window | str],
                  intergreen: dict[tuple[str, str], float], amber_s: float, notes: list[str],
                  tl: str) -> None:
    """Start a green no earlier than a conflicting group's amber ends (in place).

    SUMO lets a program show a green while a conflicting link is still amber
    (RiLSA example 3 does); gpssignal's intergreen must cover the amber, so
    the later green starts when the amber ends and is that much shorter.
    """
    for (gi, gj), gap in sorted(intergreen.items()):
        if gap >= amber_s - 1e-9:
            continue
        for pid, _, ph in progs:
            wi, wj = wins[(pid, gi)], wins[(pid, gj)]
            assert isinstance(wi, _Window) and isinstance(wj, _Window)
            cycle = sum(d for d, _ in ph)
            late = amber_s - round((wj.start - wi.end) % cycle, 6)
            if late <= 1e-9:
                continue
            if late >= wj.green_s:
                raise SumoImportError(f"<tlLogic id={tl!r} programID={pid!r}>: a green starts "
                                      f"during a conflicting amber and ends before it does")
            wins[(pid, gj)] = replace(wj, start=round((wj.start + late) % cycle, 6),
                                      green_s=round(wj.green_s - late, 6))
            notes.append(f"tlLogic {tl} program {pid}: {gj}'s green starts {late:g} s later "
                         f"(at {(wj.start + late) % cycle:g} s): SUMO shows it while the "
                         f"conflicting {gi} is still amber; gpssignal's intergreen covers the "
                         "amber")
        intergreen[(gi, gj)] = amber_s


def _request_order(net: _Net, node: str) -> dict[_Conn, int]:
    """Return the request index of each connection into ``node``.

    SUMO numbers a junction's requests (rows of its right-of-way matrix) by
    its incoming lanes in ``incLanes`` order and, per lane, its connections in
    file order (turnarounds included); pedestrian crossings come after them.
    """
    inc = {lane: k for k, lane in enumerate(net.nodes[node][3])}
    conns = [c for c in net.conns if net.edges[c.src].dst == node]
    ranked = sorted(range(len(conns)), key=lambda k: (
        inc.get(f"{conns[k].src}_{conns[k].src_lane}", len(inc)), k))
    return {conns[k]: r for r, k in enumerate(ranked)}


def _note_off_states(progs: list[tuple[str, float, list[tuple[float, str]]]],
                     indices: list[int], tl: str, notes: list[str]) -> None:
    """List the link indices whose signal is switched off (``o``/``O``) some of the time."""
    for pid, _, ph in progs:
        cycle = sum(d for d, _ in ph)
        for state, how in (("o", "blinking: drive and yield"), ("O", "off: drive with "
                                                                   "priority")):
            off = {i: sum(d for d, st in ph if st[i] == state) for i in indices}
            for i, t in off.items():
                if t > 0:
                    notes.append(
                        f"tlLogic {tl} program {pid}: link index {i} is {state!r} (signal "
                        f"{how}) for {t:g} of {cycle:g} s; imported as green"
                        + (" that gives way to the links its response names"
                           if state == "o" else ""))


def _program(pid: str, offset: float, cycle: float, greens: dict[str, tuple[float, float]],
             shift: float) -> Program:
    """Return a program with cycle second 0 moved ``shift`` s on (the offset with it)."""
    def moved(x: float) -> float:
        return round((x - shift) % cycle, 6)

    out = {}
    for g, (a, b) in greens.items():
        if a == 0 and b == cycle:
            out[g] = (a, b)
        else:
            out[g] = (moved(a), moved(b) or cycle)
    return Program(name=pid, cycle_s=round(cycle, 6), offset_s=round((offset + shift) % cycle, 6),
                   greens=out)


def _turn_programs(progs: list[tuple[str, float, list[tuple[float, str]]]], groups: list[str],
                   rep: dict[str, int], wins: dict[tuple[str, str], _Window | str],
                   timing: SignalTiming, intergreen: dict[tuple[str, str], float], node: str,
                   notes: list[str], tl: str) -> list[Program]:
    """Gpssignal programs, each turned to the first phase start that passes validation.

    Validation needs amber and red-amber clear of cycle second 0 and the same
    greens there in every program (the synchronisation point).
    """
    accepted: list[Program] = []
    for pid, offset, ph in progs:
        cycle = float(sum(d for d, _ in ph))
        greens = {}
        for g in groups:
            w = wins[(pid, g)]
            assert isinstance(w, _Window)
            greens[g] = (w.start, w.end)
        starts = [0.0, *np.cumsum([d for d, _ in ph])[:-1].tolist()]
        error = ""
        for shift in starts:
            prog = _program(pid, offset, cycle, greens, shift)
            try:
                Junction(id=node, lat_deg=0.0, lon_deg=0.0,
                         arms=(Arm(id="a", bearing_deg=0), Arm(id="b", bearing_deg=180)),
                         groups=tuple(groups), intergreen_s=intergreen,
                         programs=(*accepted, prog), default_program=pid, timing=timing)
            except ScenarioError as exc:
                error = error or str(exc)
                continue
            if shift:
                notes.append(f"tlLogic {tl} program {pid}: cycle second 0 moved {shift:g} s on "
                             "(to a phase start clear of amber; the offset moved with it)")
            accepted.append(prog)
            break
        else:
            notes.append(f"tlLogic {tl} program {pid}: left out: {error}")
    if not accepted:
        raise SumoImportError(f"<tlLogic id={tl!r}>: no program passes gpssignal's signal "
                              f"rules ({notes[-1].split(': ', 2)[-1]})")
    return accepted


# ---------------------------------------------------------------------------
# Junctions and links
# ---------------------------------------------------------------------------

@dataclass
class _Network:
    """The imported network before demand: junctions, links and how routes map to them."""

    junctions: list[Junction]
    links: dict[str, Link]                      # without turn shares yet
    link_of_edge: dict[str, str]
    movement_of: dict[tuple[str, str], str]     # (link in, link out) -> movement
    drafts: dict[str, _LinkDraft]
    #: SUMO crossing edge -> (junction id, arm) of the imported crossings.
    crossing_of: dict[str, tuple[str, str]] = field(default_factory=dict)


def _approach_lanes(net: _Net, d: _LinkDraft, arms: list[Arm], arm_in: dict[str, str],
                    arm_out: dict[str, str], out_by_edge: dict[str, _LinkDraft],
                    notes: list[str]) -> tuple[list[tuple[int, list[str], list[int]]],
                                               dict[str, str], dict[int, tuple[str, str]]]:
    """Per SUMO lane of an approach: its movements and link indices; movement per target."""
    lanes = []
    target_move: dict[str, str] = {}
    index_move: dict[int, tuple[str, str]] = {}
    stop = d.edges[-1]
    for li in d.lanes:
        moves, idx = [], []
        for c in _car_conns(net, net.out_conns(stop), d.mode):
            if c.src_lane != li:
                continue
            o = out_by_edge.get(c.dst)
            m = None if o is None else _movement(arms, arm_in[d.id], arm_out[o.id], c.dir)
            if o is None or m is None:
                notes.append(f"connection {stop}_{li} -> {c.dst}_{c.dst_lane} (dir {c.dir!r}):"
                             " no left/through/right movement reaches it; left out")
                continue
            if not c.tl or c.index < 0:
                notes.append(f"connection {stop}_{li} -> {c.dst}_{c.dst_lane}: not "
                             "signal-controlled at a signalised junction; left out")
                continue
            target_move[o.id] = m
            index_move[c.index] = (d.id, m)
            if m not in moves:
                moves.append(m)
            idx.append(c.index)
        lanes.append((li, [m for m in MOVEMENTS if m in moves], idx))
    return lanes, target_move, index_move


def _network(net: _Net, tls: list[str], origin: tuple[float, float], notes: list[str]
             ) -> _Network:
    """Junctions and links of the chosen traffic lights."""
    node_tl: dict[str, str] = {}
    for c in net.conns:
        if c.tl in tls:
            node = net.edges[c.src].dst
            if node_tl.setdefault(node, c.tl) != c.tl:
                raise SumoImportError(f"<junction id={node!r}>: controlled by traffic lights "
                                      f"{node_tl[node]!r} and {c.tl!r}")
    for t in tls:
        if t not in node_tl.values():
            raise SumoImportError(f"<tlLogic id={t!r}>: controls no connection of the network")
    nodes = set(node_tl)
    drafts = _drafts(net, nodes, notes)
    by_id = {d.id: d for d in drafts}
    taken: set[str] = set()
    jid = {n: _safe_id(n, taken) for n in sorted(nodes)}
    pos = _to_latlon(net, [net.nodes[n][:2] for n in sorted(nodes)], origin)
    junctions, links = [], {}
    movement_of: dict[tuple[str, str], str] = {}
    crossing_of: dict[str, tuple[str, str]] = {}
    for (n, (lat, lon)) in zip(sorted(nodes), pos, strict=True):
        arms, arm_in, arm_out = _arms(net, n, drafts, _grid_north_deg(net, n, origin))
        out_by_edge = {d.edges[0]: d for d in drafts if d.src == n}
        lane_info, index_move = {}, {}
        for d in (x for x in drafts if x.dst == n):
            lanes, moves, idx = _approach_lanes(net, d, arms, arm_in, arm_out, out_by_edge,
                                                notes)
            lane_info[d.id] = lanes
            index_move.update(idx)
            movement_of.update({(d.id, o): m for o, m in moves.items()})
        indices = sorted(index_move)
        if not indices:
            raise SumoImportError(f"<junction id={n!r}>: no signal-controlled connection a "
                                  "car may use")
        peds = _node_crossings(net, n, node_tl[n], drafts, arm_in, arm_out, notes)
        sig = _signals(net, n, node_tl[n], indices, notes,
                       {i: arm_in[lid] for i, (lid, _) in index_move.items()},
                       {x.indices[0]: (f"ped_{arm}", len(_request_order(net, n)) + x.order)
                        for x, arm in peds})
        crossing_of.update({x.id: (jid[n], arm) for x, arm in peds
                            if f"ped_{arm}" in sig.groups})
        junctions.append(Junction(
            id=jid[n], name=n, lat_deg=round(lat, 7), lon_deg=round(lon, 7), arms=tuple(arms),
            groups=tuple(sig.groups), intergreen_s=sig.intergreen,
            programs=tuple(sig.programs), default_program=sig.default, timing=sig.timing,
            crossings=tuple(Crossing(arm=arm, group=f"ped_{arm}", length_m=round(x.length_m, 2),
                                     flow_pph=(0.0,))
                            for x, arm in peds if f"ped_{arm}" in sig.groups)))
        for d in (x for x in drafts if x.dst == n):
            links[d.id] = _approach_link(net, d, lane_info[d.id], sig, index_move,
                                         f"{jid[n]}.{arm_in[d.id]}", notes,
                                         {x.id for x in drafts if x.mode == "bicycle"})
        for d in (x for x in drafts if x.src == n):
            if d.dst is None:
                links[d.id] = _exit_link(net, d, f"{jid[n]}.{arm_out[d.id]}")
    # Links between junctions: the leaving arm is known only now.
    for d in drafts:
        if d.src is not None and d.dst is not None:
            _, _, arm_out = _arms(net, d.src, drafts, _grid_north_deg(net, d.src, origin))
            lk = links[d.id]
            links[d.id] = replace(lk, from_arm=f"{jid[d.src]}.{arm_out[d.id]}")
    link_of_edge = {e: d.id for d in drafts for e in d.edges}
    return _Network(junctions=junctions, links=links, link_of_edge=link_of_edge,
                    movement_of=movement_of, drafts=by_id, crossing_of=crossing_of)


def _node_crossings(net: _Net, node: str, tl: str, drafts: list[_LinkDraft],
                    arm_in: dict[str, str], arm_out: dict[str, str], notes: list[str]
                    ) -> list[tuple[_RawCrossing, str]]:
    """Return the signalised crossings of ``node`` with the arm each crosses.

    The arm is the one whose links' edges at the junction the crossing
    crosses (``crossingEdges``); a crossing without a link index of ``tl``,
    or a second one over the same arm, is listed and left out.
    """
    arm_of_edge = {}
    for d in drafts:
        if d.dst == node:
            arm_of_edge[d.edges[-1]] = arm_in.get(d.id)
        if d.src == node:
            arm_of_edge[d.edges[0]] = arm_out.get(d.id)
    out, used = [], set()
    for x in net.crossings.get(node, []):
        arms = Counter(a for e in x.edges if (a := arm_of_edge.get(e)) is not None)
        if not arms:
            notes.append(f"crossing {x.id}: crosses no imported link ({' '.join(x.edges)}); "
                         "left out")
            continue
        arm = arms.most_common(1)[0][0]
        if x.tl != tl or not x.indices:
            notes.append(f"crossing {x.id}: not controlled by traffic light {tl}; left out "
                         "(gpssignal's crossings are signalised)")
        elif arm in used:
            notes.append(f"crossing {x.id}: a second crossing over arm {arm}; left out "
                         "(gpssignal has one crossing per arm)")
        else:
            used.add(arm)
            out.append((x, arm))
            if len(x.indices) > 1:
                notes.append(f"crossing {x.id}: link indices {', '.join(map(str, x.indices))} "
                             f"(one per direction); the timing of {x.indices[0]} is used")
    return out


def _width(net: _Net, d: _LinkDraft) -> float:
    edge = net.edges[d.edges[-1] if d.dst is not None else d.edges[0]]
    return round(float(np.mean([edge.lanes[i].width_m for i in d.lanes])), 2)


def _approach_link(net: _Net, d: _LinkDraft, lanes: list[tuple[int, list[str], list[int]]],
                   sig: _Signals, index_move: dict[int, tuple[str, str]], to_arm: str,
                   notes: list[str], bike_links: set[str]) -> Link:
    """Return the approach link of draft ``d``: lanes, groups and give-way rules.

    Yielding to cyclists is left to gpssignal's road rule (turning motor
    traffic gives way to cyclists going straight on,
    :func:`gpssignal.model.network.implicit_yields`), so SUMO's yields of a
    motor movement to a cycle track's are not written as rules; cyclists'
    own yields (SUMO's geometric right of way) have no gpssignal counterpart.
    """
    out = []
    for li, moves, idx in lanes:
        if not moves:
            notes.append(f"lane {d.edges[-1]}_{li}: no movement gpssignal can represent; "
                         "left out")
            continue
        groups = Counter(sig.group_of[i] for i in idx)
        group = groups.most_common(1)[0][0]
        if len(groups) > 1:
            notes.append(f"lane {d.edges[-1]}_{li}: its movements have different signals "
                         f"({', '.join(sorted(groups))}); gpssignal gives a lane one group, "
                         f"{group}")
        out.append(Lane(movements=tuple(moves), group=group, length_m=d.short_m.get(li)))
    if not out:
        raise SumoImportError(f"<edge id={d.edges[-1]!r}>: no lane with a movement into the "
                              "junction")
    rules: dict[str, set[str]] = defaultdict(set)
    for i, js in sig.yields.items():
        lid, move = index_move[i]
        if lid != d.id:
            continue
        for j in js:
            other, omove = index_move[j]
            if d.id in bike_links or other in bike_links:
                continue
            if other != d.id:
                rules[move].add(f"{other}.{omove}")
    give_way = tuple(GiveWay(movement=m, to=tuple(sorted(rules[m])))
                     for m in MOVEMENTS if rules.get(m))
    return Link(id=d.id, name=net.edges[d.edges[-1]].name, from_arm=None, to_arm=to_arm,
                length_m=d.length_m, speed_limit_kmh=d.speed_kmh, lanes=tuple(out),
                lane_width_m=_width(net, d), give_way=give_way, mode=d.mode)


def _exit_link(net: _Net, d: _LinkDraft, from_arm: str) -> Link:
    return Link(id=d.id, name=net.edges[d.edges[0]].name, from_arm=from_arm, to_arm=None,
                length_m=d.length_m, speed_limit_kmh=d.speed_kmh,
                lanes=tuple(Lane() for _ in d.lanes), lane_width_m=_width(net, d),
                mode=d.mode)


# ---------------------------------------------------------------------------
# Demand
# ---------------------------------------------------------------------------

@dataclass
class _Demand:
    """Vehicles counted on entry links; turn counts on links between junctions."""

    events: list[tuple[str, str, float, float]] = field(default_factory=list)
    random: list[tuple[str, str, float, float, float]] = field(default_factory=list)
    turns: dict[str, dict[str, float]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(float)))
    types: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    speed: dict[str, list[tuple[float, float, float]]] = field(
        default_factory=lambda: defaultdict(list))      # type -> (weight, factor, dev)
    skipped: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    #: Pedestrians: (departure times, random flow (begin, end, rate), walks as edge lists).
    persons: list[tuple[list[float], tuple[float, float, float], list[list[str]]]] = field(
        default_factory=list)


def _route_edges(net: _Net, src: str, dst: str, via: list[str], where: str) -> list[str]:
    """Fewest-edge route through the connections from ``src`` via ``via`` to ``dst``."""
    path = [src]
    for goal in [*via, dst]:
        start = path[-1]
        prev: dict[str, str] = {start: ""}
        queue = deque([start])
        while queue and goal not in prev:
            e = queue.popleft()
            for c in _car_conns(net, net.out_conns(e)):
                if c.dst not in prev:
                    prev[c.dst] = e
                    queue.append(c.dst)
        if goal not in prev:
            raise SumoImportError(f"{where}: no route from edge {start!r} to {goal!r}")
        leg = [goal]
        while leg[-1] != start:
            leg.append(prev[leg[-1]])
        path += leg[-2::-1]
    return path


def _flow_times(el: ET.Element, end_cap: float) -> tuple[list[float], float, float, float]:
    """Departures of a ``flow``: explicit times, or (begin, end, rate [1/s]) if random."""
    begin = _num(el, "begin", 0.0)
    end = min(_num(el, "end", end_cap), end_cap)
    if begin < 0:
        raise SumoImportError(f"<{el.tag} id={el.get('id')!r}> begin={el.get('begin')!r}: must "
                              "be >= 0 (SUMO time)")
    if "number" in el.attrib and "vehsPerHour" not in el.attrib and "period" not in el.attrib:
        n = int(_num(el, "number"))
        period = (end - begin) / max(n, 1)
    elif "vehsPerHour" in el.attrib:
        period = 3600.0 / _num(el, "vehsPerHour")
    elif "period" in el.attrib:
        raw = el.get("period", "")
        if raw.startswith("exp(") and raw.endswith(")"):
            return [], begin, end, float(raw[4:-1])
        period = _num(el, "period")
    elif "probability" in el.attrib:
        return [], begin, end, _num(el, "probability")
    else:
        raise SumoImportError(f"<flow id={el.get('id')!r}>: needs number, vehsPerHour, period "
                              "or probability")
    if period <= 0:
        raise SumoImportError(f"<flow id={el.get('id')!r}>: period must be > 0")
    n = math.ceil((end - begin) / period - 1e-9)
    if "number" in el.attrib:
        n = min(n, int(_num(el, "number")))
    if n > 10**6:
        raise SumoImportError(f"<flow id={el.get('id')!r}>: {n} vehicles, above the limit of "
                              "1,000,000")
    return [begin + k * period for k in range(max(n, 0))], begin, end, 0.0


class _Routes:
    """Reads route files: types, named routes and every vehicle, trip and flow."""

    def __init__(self, net: _Net, end_cap: float) -> None:
        self.net, self.end_cap = net, end_cap
        self.vtypes: dict[str, dict[str, str]] = {}
        self.dists: dict[str, list[tuple[str, float]]] = {}
        self.routes: dict[str, list[tuple[list[str], float]]] = {}

    def read(self, root: ET.Element, counter: _Counter) -> None:
        for el in root:
            tag = el.tag
            if tag == "vType":
                self.vtypes[el.get("id", "")] = dict(el.attrib)
            elif tag == "vTypeDistribution":
                self._distribution(el)
            elif tag in ("route", "routeDistribution"):
                self.routes[el.get("id", "")] = self._route_choices(el)
            elif tag in ("vehicle", "trip", "flow"):
                self._vehicle(el, counter)
            elif tag in ("person", "personFlow"):
                self._person(el, counter)
            elif tag in ("container", "containerFlow"):
                counter.skip(f"{tag} elements (freight has no road users in gpssignal)")
            elif tag not in ("interval", "include"):
                counter.skip(f"<{tag}> elements")

    def _distribution(self, el: ET.Element) -> None:
        members = []
        for v in el.iter("vType"):
            self.vtypes[v.get("id", "")] = dict(v.attrib)
            members.append((v.get("id", ""), _num(v, "probability", 1.0)))
        if not members and el.get("vTypes"):
            probs = el.get("probabilities", "").split()
            members = [(t, float(probs[k]) if k < len(probs) else 1.0)
                       for k, t in enumerate(el.get("vTypes", "").split())]
        total = sum(p for _, p in members) or 1.0
        self.dists[el.get("id", "")] = [(t, p / total) for t, p in members]

    def _route_choices(self, el: ET.Element) -> list[tuple[list[str], float]]:
        if el.tag == "route":
            return [(el.get("edges", "").split(), 1.0)]
        out = []
        for r in el.iter("route"):
            if r.get("refId"):
                out += [(e, p * _num(r, "probability", 1.0))
                        for e, p in self.routes.get(r.get("refId", ""), [])]
            else:
                out.append((r.get("edges", "").split(), _num(r, "probability", 1.0)))
        total = sum(p for _, p in out) or 1.0
        return [(e, p / total) for e, p in out]

    def _choices(self, el: ET.Element) -> list[tuple[list[str], float]]:
        where = f"<{el.tag} id={el.get('id')!r}>"
        if el.get("route"):
            if el.get("route") not in self.routes:
                raise SumoImportError(f"{where}: unknown route {el.get('route')!r}")
            return self.routes[el.get("route", "")]
        inner = el.find("route")
        if inner is None:
            inner = el.find("routeDistribution")
        if inner is not None:
            return self._route_choices(inner)
        if el.get("from") and el.get("to"):
            return [(_route_edges(self.net, el.get("from", ""), el.get("to", ""),
                                  el.get("via", "").split(), where), 1.0)]
        raise SumoImportError(f"{where}: no route, and no from/to edges (TAZ trips need "
                              "duarouter first)")

    def _person(self, el: ET.Element, counter: _Counter) -> None:
        """Keep a person's (or person flow's) walks for the crossings' flows."""
        if el.tag == "personFlow":
            attrib = dict(el.attrib)
            if "perHour" in attrib:
                attrib["vehsPerHour"] = attrib.pop("perHour")
            times, begin, end, rate = _flow_times(ET.Element("flow", attrib), self.end_cap)
        else:
            try:
                times, begin, end, rate = [float(el.get("depart", "0"))], 0.0, 0.0, 0.0
            except ValueError:
                times = [math.nan]
            if not (math.isfinite(times[0]) and times[0] >= 0):
                counter.skip(f"persons departing {_brief(el.get('depart'))} (not a time)")
                return
        walks = []
        for w in el:
            if w.tag in ("walk", "personTrip"):
                edges = (w.get("edges") or "").split() or [
                    e for e in (w.get("from"), w.get("to")) if e]
                walks.append(edges)
            else:
                counter.skip(f"<{w.tag}> stages of persons (only walks cross a crossing)")
        counter.d.persons.append((times, (begin, end, rate), walks))

    def _types(self, name: str) -> list[tuple[str, float]]:
        return self.dists.get(name, [(name, 1.0)])

    def _vehicle(self, el: ET.Element, counter: _Counter) -> None:
        if el.tag == "flow":
            times, begin, end, rate = _flow_times(el, self.end_cap)
        else:
            raw = el.get("depart", "0")
            try:
                times, begin, end, rate = [float(raw)], 0.0, 0.0, 0.0
            except ValueError:
                times = [math.nan]
            if not (math.isfinite(times[0]) and times[0] >= 0):  # also -1e308, inf, nan
                counter.skip(f"vehicles departing {_brief(raw)} (not a time)")
                return
            if times[0] >= self.end_cap:
                return
        choices = self._choices(el)
        vtype = el.get("type", "DEFAULT_VEHTYPE")
        sf = el.get("speedFactor")
        for edges, p in choices:
            for t, q in self._types(vtype):
                counter.add(edges, times, (begin, end, rate), p * q, t,
                            None if sf is None else float(sf))


class _Counter:
    """Counts vehicles per entry link, movement and interval along their routes."""

    def __init__(self, net: _Net, nw: _Network, vtypes: dict[str, dict[str, str]]) -> None:
        self.net, self.nw, self.vtypes = net, nw, vtypes
        self.d = _Demand()

    def skip(self, why: str, weight: float = 1.0) -> None:
        self.d.skipped[why] += weight

    def _free_time(self, edges: list[str]) -> float:
        t = 0.0
        for e in edges:
            ed = self.net.edges.get(e)
            if ed is not None:
                t += ed.length_m / max(max(ln.speed_mps for ln in ed.lanes), 0.1)
        return t

    def add(self, edges: list[str], times: list[float], rnd: tuple[float, float, float],
            weight: float, vtype: str, speed_factor: float | None) -> None:
        """Count vehicles on route ``edges`` at ``times`` (or a random flow ``rnd``)."""
        lof = self.nw.link_of_edge
        edges = [e for e in edges if e not in self.net.inner]
        walk: list[str] = []
        first = next((k for k, e in enumerate(edges) if e in lof), None)
        n = len(times) * weight + (rnd[2] * (rnd[1] - rnd[0]) * weight if rnd[2] else 0.0)
        if first is None:
            self.skip("vehicles whose route misses the imported junctions", n)
            return
        for e in edges[first:]:
            lk = lof.get(e)
            if lk is None:
                break
            if not walk or walk[-1] != lk:
                walk.append(lk)
        entry = self.nw.links[walk[0]]
        if entry.from_arm is not None:
            self.skip("vehicles entering between junctions or on an exit link (their route "
                      "starts inside the network)", n)
            return
        if len(walk) < 2 or (walk[0], walk[1]) not in self.nw.movement_of:
            self.skip("vehicles whose route ends before the junction", n)
            return
        ahead = self._free_time(edges[:first])
        move = self.nw.movement_of[(walk[0], walk[1])]
        for a, b in itertools.pairwise(walk[1:]):
            if (a, b) not in self.nw.movement_of:
                break
            self.d.turns[a][self.nw.movement_of[(a, b)]] += n
        key = (walk[0], move)
        self.d.events += [(*key, t + ahead, weight) for t in times]
        if rnd[2]:
            self.d.random.append((*key, rnd[0] + ahead, rnd[1] + ahead, rnd[2] * weight))
        self.d.types[vtype] += n
        vt = self.vtypes.get(vtype, {})
        dev = float(vt.get("speedDev", 0.1 if speed_factor is None else 0.0))
        self.d.speed[vtype].append((n, speed_factor if speed_factor is not None
                                    else float(vt.get("speedFactor", 1.0)), dev))


def _walk_crossings(net: _Net, walk: list[str], wanted: set[str]) -> list[str]:
    """Return the crossings in ``wanted`` a walk along ``walk`` (edges to pass) uses.

    The path between consecutive edges is the one with the fewest edges
    through the walking areas and crossings (SUMO routes pedestrians by
    length; at one junction the two agree but for ties).
    """
    adj: dict[str, set[str]] = defaultdict(set)
    for a, b in net.walk_pairs:
        adj[a].add(b)
        adj[b].add(a)
    out: list[str] = []
    for start, goal in itertools.pairwise(walk):
        prev: dict[str, str] = {start: ""}
        queue = deque([start])
        while queue and goal not in prev:
            e = queue.popleft()
            for f in sorted(adj[e]):
                if f not in prev:
                    prev[f] = e
                    queue.append(f)
        node = goal if goal in prev else ""
        while node:
            if node in wanted:
                out.append(node)
            node = prev[node]
    return out


def _crossing_flows(net: _Net, nw: _Network, d: _Demand, begin: float, n: int,
                    interval_s: float, notes: list[str]) -> dict[str, list[float]]:
    """Pedestrians per imported crossing and interval [ped/h], from the persons' walks.

    A pedestrian counts on each crossing of its walks in the interval of its
    departure (the walk to the kerb is not timed).
    """
    flows = {x: [0.0] * n for x in nw.crossing_of}
    outside = missed = 0.0
    for times, (t0, t1, rate), walks in d.persons:
        used = [x for w in walks for x in _walk_crossings(net, w, set(nw.crossing_of))]
        if not used:
            missed += len(times) + rate * (t1 - t0)
            continue
        for x in used:
            for t in times:
                k = math.floor((t - begin) / interval_s)
                if 0 <= k < n:
                    flows[x][k] += 3600.0 / interval_s
                else:
                    outside += 1
            for k in range(n if rate else 0):
                a, b = begin + k * interval_s, begin + (k + 1) * interval_s
                flows[x][k] += rate * max(0.0, min(b, t1) - max(a, t0)) * 3600.0 / interval_s
    if missed:
        notes.append(f"pedestrians: {missed:.0f} persons whose walks cross no imported "
                     "crossing not counted")
    if outside:
        notes.append(f"pedestrians: {outside:.0f} crossings outside the demand period not "
                     "counted")
    if nw.crossing_of and not d.persons:
        notes.append("pedestrians: the route files have no persons; the crossings' flows are 0")
    return flows


def _class_mode(vt: dict[str, str]) -> str:
    """Return the gpssignal class mode of a SUMO vType: ``bicycle``, ``bus`` or ``motor``."""
    vclass = vt.get("vClass", "passenger")
    return "bicycle" if vclass == "bicycle" else "bus" if vclass in _BUS_CLASSES else "motor"


def _vehicle_classes(d: _Demand, vtypes: dict[str, dict[str, str]], notes: list[str]
                     ) -> tuple[list[VehicleClass], Driver]:
    """One class per vType used, with its share of the counted vehicles of its kind.

    Bicycles (vClass ``bicycle``) are ``mode = "bicycle"`` classes, whose
    shares sum to 1 among themselves, with SUMO's zero-emission class and
    ``desiredMaxSpeed`` as their speed cap.
    """
    from gpssignal.emissions.hbefa4 import coefficients

    known = {*coefficients()["emission_class"], "Zero"}
    totals: dict[str, float] = defaultdict(float)
    for name, n in d.types.items():
        totals[link_mode(_class_mode(vtypes.get(name, {})))] += n
    classes: list[VehicleClass] = []
    taken: set[str] = set()
    deltas: set[float] = set()
    for name, n in sorted(d.types.items()):
        vt = vtypes.get(name, {})
        vclass = vt.get("vClass", "passenger")
        mode = _class_mode(vt)
        dflt = _VCLASS_DEFAULTS.get(vclass, _VCLASS_DEFAULTS["passenger"])
        if vclass not in ROAD_CLASSES and mode != "bicycle":
            notes.append(f"vType {name}: vClass {vclass!r} driven as a car")
        emis = vt.get("emissionClass", f"HBEFA4/{dflt[5]}").split("/")[-1]
        if mode == "bicycle" and emis.lower() != "zero":
            notes.append(f"vType {name}: emission class {vt.get('emissionClass')!r} of a "
                         "bicycle; Zero used")
            emis = "Zero"
        elif emis.lower() == "zero":
            emis = "Zero"
        if emis not in known:
            notes.append(f"vType {name}: emission class {vt.get('emissionClass')!r} not in "
                         f"gpssignal's HBEFA4 table; {dflt[5]} used")
            emis = dflt[5]
        if vt.get("carFollowModel", "Krauss") != "IDM":
            notes.append(f"vType {name}: car-following model "
                         f"{vt.get('carFollowModel', 'Krauss')!r} replaced by gpssignal's IDM "
                         "with the type's accel, decel, tau and minGap")
        deltas.add(float(vt.get("delta", 4.0)))
        w = np.array([x[0] for x in d.speed[name]])
        f = np.array([x[1] for x in d.speed[name]])
        dev = np.array([x[2] for x in d.speed[name]])
        mean = float(np.average(f, weights=w))
        sd = float(np.sqrt(np.average(dev ** 2 + (f - mean) ** 2, weights=w)))
        sd = min(sd, mean / 2 * 0.99)
        decel = float(vt.get("decel", dflt[2]))
        cap = vt.get("desiredMaxSpeed")
        cap_mps = float(cap) if cap is not None else \
            _BICYCLE_DESIRED_MPS if mode == "bicycle" else None
        classes.append(VehicleClass(
            name=_safe_id(name, taken), share=n / totals[link_mode(mode)],
            length_m=float(vt.get("length", dflt[0])), mode=mode,
            max_speed_kmh=None if cap_mps is None else round(cap_mps * 3.6, 4),
            max_accel_mps2=float(vt.get("accel", dflt[1])), comfortable_decel_mps2=decel,
            time_headway_s=float(vt.get("tau", 1.0)), min_gap_m=float(vt.get("minGap", dflt[4])),
            speed_factor_mean=round(mean, 4), speed_factor_sd=round(sd, 4), emission_class=emis,
            emergency_decel_mps2=max(float(vt.get("emergencyDecel", dflt[3])), decel),
            mass_kg=float(vt.get("mass", 1500.0)), width_m=float(vt.get("width", 1.8)),
            height_m=float(vt.get("height", 1.5))))
    # Shares rounded to 6 digits, per kind the largest one taking the rounding remainder.
    shares = [round(c.share, 6) for c in classes]
    for kind in totals:
        own = [k for k, c in enumerate(classes) if link_mode(c.mode) == kind]
        big = max(own, key=lambda k: shares[k])
        shares[big] = round(1.0 - sum(shares[k] for k in own) + shares[big], 6)
    classes = [replace(c, share=s) for c, s in zip(classes, shares, strict=True)]
    if len(deltas) > 1:
        notes.append(f"vTypes: IDM delta {sorted(deltas)}; gpssignal has one, {max(deltas):g}")
    return classes, Driver(idm_delta=max(deltas))


def _binned(d: _Demand, interval_s: float, end_cap: float
            ) -> tuple[float, int, dict[tuple[str, str], list[float]]]:
    """Bin counts per (entry link, movement) and interval; first interval start [SUMO s]."""
    times = [t for _, _, t, _ in d.events] + [x for r in d.random for x in r[2:4]]
    times = [t for t in times if t < end_cap]
    if not times:
        raise SumoImportError("routes: no vehicle reaches an entry link of the imported "
                              "junctions (see the list of what was left out)")
    begin = math.floor(min(times) / interval_s) * interval_s
    n = max(1, math.ceil((max(times) - begin) / interval_s - 1e-9))
    if max(times) >= begin + n * interval_s:
        n += 1
    if n > MAX_INTERVALS:  # each (link, movement) gets a list of n counts
        raise SumoImportError(f"routes: departures from {min(times):g} s to {max(times):g} s "
                              f"span {n:,} intervals of {interval_s:g} s, above the limit of "
                              f"{MAX_INTERVALS:,} (give --end, or check the depart/begin "
                              "times)")
    out: dict[tuple[str, str], list[float]] = defaultdict(lambda: [0.0] * n)
    for lk, m, t, w in d.events:
        if t < end_cap:
            out[(lk, m)][min(int((t - begin) // interval_s), n - 1)] += w
    for lk, m, t0, t1, rate in d.random:
        for k in range(n):
            a, b = begin + k * interval_s, begin + (k + 1) * interval_s
            out[(lk, m)][k] += rate * max(0.0, min(b, t1, end_cap) - max(a, t0))
    return begin, n, dict(out)


def _brief(value: object, limit: int = 60) -> str:
    """Return ``repr(value)`` cut to ``limit`` characters (a message stays one short line)."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text):,} characters)"


def read_counts(path: str | Path, field: str = "counts CSV") -> str:
    """Return the text of a counts CSV file (:func:`parse_counts` reads it).

    ``field`` names the file in messages (the command line: ``--counts``).

    Raises
    ------
    SumoImportError
        If it is not a regular file within :data:`MAX_COUNTS_CHARS` bytes of
        UTF-8 text (``/dev/zero`` and FIFOs are refused unread).
    """
    try:
        return read_regular_bytes(path, MAX_COUNTS_CHARS).decode("utf-8")
    except FileRefusedError as exc:
        raise SumoImportError(f"{field} {str(path)!r}: {exc}") from None
    except OSError as exc:
        raise SumoImportError(f"{field} {str(path)!r}: cannot read "
                              f"({exc.strerror or exc})") from None
    except UnicodeDecodeError as exc:
        raise SumoImportError(f"{field} {str(path)!r}: not UTF-8 text (byte "
                              f"{exc.object[exc.start]:#04x} at offset {exc.start:,})") from None


def parse_counts(text: str, interval_s: float) -> tuple[float, int, dict[tuple[str, str],
                                                                         list[float]]]:
    """Parse a counts CSV ``link,movement,start,count`` (start ``HH:MM`` clock).

    One row per entry link, movement and interval: ``link`` an imported link
    id (the SUMO edge at the stop line), ``movement`` ``left``, ``through`` or
    ``right``, ``start`` the clock time the interval begins (a multiple of
    ``interval_s``), ``count`` the vehicles counted in it. Comma- or
    semicolon-separated (as spreadsheets export it, a byte-order mark is
    ignored); lines starting with ``#`` are comments; an interval without a
    row counts 0.

    Parameters
    ----------
    text : str
        The file's text.
    interval_s : float
        Length of one interval [s].

    Returns
    -------
    begin_s, n, counts
        The first interval's clock time [s after midnight], the number of
        intervals, and per (link, movement) the vehicles of each interval.

    Raises
    ------
    SumoImportError
        Naming the row (1-based, header = row 1), the column and the value.
    """
    text = text.removeprefix("\ufeff")
    first = next((ln for ln in text.splitlines() if ln.strip()), "")
    delim = ";" if ";" in first and "," not in first else ","
    if len(text) > MAX_COUNTS_CHARS:
        raise SumoImportError(f"counts CSV: {len(text):,} characters, above the limit of "
                              f"{MAX_COUNTS_CHARS:,}")
    try:
        rows = [(k, r) for k, r in enumerate(csv.reader(io.StringIO(text), delimiter=delim), 1)
                if r and any(c.strip() for c in r) and not r[0].lstrip().startswith("#")]
    except csv.Error as exc:  # a field above csv's size limit, a NUL byte
        raise SumoImportError(f"counts CSV: not a readable CSV ({exc})") from None
    header = ["link", "movement", "start", "count"]
    if not rows or [c.strip().lower() for c in rows[0][1]] != header:
        got = ",".join(rows[0][1]) if rows else ""
        raise SumoImportError(f"counts CSV header = {_brief(got)}: must be "
                              "'link,movement,start,count'")
    recs = []
    seen: dict[tuple[str, str, float], int] = {}
    for k, r in rows[1:]:
        if len(r) != 4:
            raise SumoImportError(f"counts CSV row {k}: needs 4 columns, has {len(r)}")
        link, move = r[0].strip(), r[1].strip()
        if move not in MOVEMENTS:
            raise SumoImportError(f"counts CSV row {k} movement = {_brief(move)}: must be one of "
                                  f"{', '.join(MOVEMENTS)}")
        if len(r[2]) > 20:  # parse_clock names the value, in full
            raise SumoImportError(f"counts CSV row {k} start = {_brief(r[2])}: must be a clock "
                                  "time 'HH:MM'")
        start = parse_clock(r[2].strip(), f"counts CSV row {k} start")
        if abs(start / interval_s - round(start / interval_s)) > 1e-9:
            raise SumoImportError(f"counts CSV row {k} start = {_brief(r[2].strip())}: must "
                                  f"begin a {interval_s / 60:g}-min interval")
        try:
            count = float(r[3])
        except ValueError:
            raise SumoImportError(f"counts CSV row {k} count = {_brief(r[3])}: not a "
                                  "number") from None
        if not (math.isfinite(count) and 0 <= count <= MAX_INTERVAL_COUNT):
            raise SumoImportError(f"counts CSV row {k} count = {_brief(r[3])}: must be >= 0 "
                                  f"and at most {MAX_INTERVAL_COUNT:,} (more is beyond any "
                                  "lane's capacity in one interval)")
        key = (link, move, start)
        if key in seen:
            shown = link if link.isprintable() and len(link) <= 60 else _brief(link)
            raise SumoImportError(f"counts CSV row {k}: link {shown} {move} at "
                                  f"{r[2].strip()} repeats row {seen[key]}")
        seen[key] = k
        recs.append((link, move, start, count))
    if not recs:
        raise SumoImportError("counts CSV: no rows below the header")
    begin = min(x[2] for x in recs)
    n = round((max(x[2] for x in recs) - begin) / interval_s) + 1
    out: dict[tuple[str, str], list[float]] = defaultdict(lambda: [0.0] * n)
    for lk, m, t, c in recs:
        out[(lk, m)][round((t - begin) / interval_s)] += c
    return begin, n, dict(out)


def _turn_shares(nw: _Network, d: _Demand, notes: list[str]) -> None:
    """Set the turn shares of links between junctions from the routes."""
    for lid, lk in list(nw.links.items()):
        if lk.from_arm is None or lk.to_arm is None:
            continue
        moves = lk.lane_movements()
        counts = {m: n for m, n in d.turns.get(lid, {}).items() if m in moves and n > 0}
        if not counts:
            m = "through" if "through" in moves else sorted(moves)[0]
            notes.append(f"link {lid}: no route uses it; turn shares set to {m} only")
            counts = {m: 1.0}
        total = sum(counts.values())
        shares = {m: round(n / total, 6) for m, n in sorted(counts.items())}
        top = max(shares, key=lambda m: shares[m])
        shares[top] = round(1.0 - sum(v for m, v in shares.items() if m != top), 6)
        nw.links[lid] = replace(lk, turn_shares=shares)


# ---------------------------------------------------------------------------
# The import
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class SumoImport:
    """An imported scenario and everything of the SUMO files it does not represent."""

    scenario: Scenario
    unrepresented: tuple[str, ...]


def _placeholder_demand(nw: _Network, vph: float, interval_s: float, clock0_s: float
                       ) -> tuple[float, int, dict[tuple[str, str], list[float]]]:
    """``vph`` per entry link for one hour, split evenly over its movements."""
    n = max(1, round(3600.0 / interval_s))
    out = {}
    for lk in nw.links.values():
        if lk.from_arm is None and lk.to_arm is not None and lk.mode == "motor":
            moves = sorted(lk.lane_movements())
            for m in moves:
                out[(lk.id, m)] = [vph / len(moves) * interval_s / 3600.0] * n
    return clock0_s, n, out


def _demand_of(net: _Net, nw: _Network, routes: Sequence[Path], counts: str | None,
               default_vph: float | None, interval_s: float, clock0_s: float, end_s: float,
               notes: list[str]) -> tuple[float, int, dict[tuple[str, str], list[float]], _Demand,
                          dict[str, dict[str, str]]]:
    if counts is not None and default_vph is not None:
        raise SumoImportError("demand: give a counts CSV or default_vph (--default-vph), "
                              "not both")
    reader = _Routes(net, end_s)
    counter = _Counter(net, nw, reader.vtypes)
    for r in routes:
        reader.read(_open_xml(r, "route file"), counter)
    d = counter.d
    for why, n in sorted(d.skipped.items()):
        notes.append(f"demand: {n:.0f} {why} not counted")
    if counts is not None or default_vph is not None:
        if counts is not None:
            begin_clock, n, binned = parse_counts(counts, interval_s)
        else:
            begin_clock, n, binned = _placeholder_demand(nw, float(default_vph or 0),
                                                         interval_s, clock0_s)
            notes.append(f"demand: a placeholder of {default_vph:g} veh/h per entry link, "
                         "split evenly over its movements, for one hour (--default-vph); "
                         "replace it with counts")
        begin = begin_clock - clock0_s
        if not d.types:
            d.types["DEFAULT_VEHTYPE"] = 1.0
            d.speed["DEFAULT_VEHTYPE"].append((1.0, 1.0, 0.1))
    else:
        if not routes:
            raise SumoImportError("no demand: give route files (--routes), a counts CSV "
                                  "(--counts) or --default-vph")
        begin, n, binned = _binned(d, interval_s, end_s)
    return begin, n, binned, d, reader.vtypes


def import_sumo(net_path: str | Path, routes: Sequence[str | Path] = (), *,
                tls: Sequence[str] | None = None, additional: Sequence[str | Path] = (),
                counts: str | None = None, name: str | None = None, clock0_s: float = 0.0,
                end_s: float | None = None, origin: tuple[float, float] = (0.0, 0.0),
                interval_s: float = 900.0, default_vph: float | None = None) -> SumoImport:
    """Build a gpssignal scenario from a SUMO network, its programs and its demand.

    Parameters
    ----------
    net_path : str or Path
        The SUMO network (``.net.xml``, optionally gzipped).
    routes : sequence of str or Path
        Route, trip or flow files (``.rou.xml``).
    tls : sequence of str, optional
        Traffic-light ids to import (default: every one with a program).
    additional : sequence of str or Path
        Additional files with ``tlLogic`` programs (they replace the network's
        programs of the same traffic light).
    counts : str, optional
        Text of a counts CSV (:func:`parse_counts`), used instead of the routes'
        counts; the routes then only give vehicle types.
    name : str, optional
        Scenario name (default: the network file's name).
    clock0_s : float
        Clock time of SUMO's time 0 [s after midnight].
    end_s : float, optional
        Count vehicles departing before this SUMO time [s] (default: all,
        flows up to their end, at most until midnight).
    origin : (float, float)
        (lat, lon) [deg] of network point (0, 0) when the network has no
        projection (``projParameter="!"``).
    interval_s : float
        Demand interval [s].
    default_vph : float, optional
        Without routes or counts: a placeholder demand of this many vehicles
        per hour on every entry link, for one hour [veh/h].

    Raises
    ------
    SumoImportError
        A file or element the importer cannot handle, named in one line.
    """
    path = Path(net_path)
    notes: list[str] = []
    net = read_net(path, [Path(a) for a in additional])
    notes += net.notes
    chosen = list(tls) if tls else sorted(net.programs)
    for t in chosen:
        if t not in net.programs:
            raise SumoImportError(f"--tls {t}: no tlLogic {t!r} in {path.name} or the "
                                  "additional files")
    if not chosen:
        raise SumoImportError(f"network {path}: no traffic light (tlLogic) to import")
    other = sorted(set(net.programs) - set(chosen))
    if other:
        notes.append(f"traffic lights not imported (not in --tls): {', '.join(other)}")
    if net.proj.strip() in ("", "!"):
        notes.append(f"network without projection (projParameter '!'): network point (0, 0) "
                     f"placed at lat/lon {origin[0]:g}, {origin[1]:g} (--origin)")
    _note_network(net, notes)
    net = _join_nodes(net, chosen, notes)
    nw = _network(net, chosen, origin, notes)
    cap = 86_400.0 - clock0_s if end_s is None else end_s
    begin, n, binned, d, vtypes = _demand_of(net, nw, [Path(r) for r in routes], counts,
                                             default_vph, interval_s, clock0_s, cap, notes)
    _turn_shares(nw, d, notes)
    flows = []
    for (lk, m), vals in sorted(binned.items()):
        if lk not in nw.links or nw.links[lk].from_arm is not None or \
                m not in nw.links[lk].lane_movements():
            raise SumoImportError(f"counts: link {lk!r} movement {m!r} is not an entry link "
                                  "movement of the imported network")
        if sum(vals) > 0:
            flows.append(DemandFlow(link=lk, movement=m, flow_vph=tuple(
                round(v * 3600.0 / interval_s, 6) for v in vals)))
    classes, driver = _vehicle_classes(d, vtypes, notes)
    start = clock0_s + begin
    if not 0 <= start < 86_400 or start + n * interval_s > 86_400:
        raise SumoImportError(f"demand from SUMO time {begin:g} s for {n * interval_s:g} s "
                              "does not fit in one day at --start; give --end or --start")
    sc_name = name or re.sub(r"\.net\.xml(\.gz)?$", "", path.name) or "imported"
    peds = _crossing_flows(net, nw, d, begin, n, interval_s, notes)
    junctions = [_with_flows(j, nw, peds) for j in nw.junctions]

    def build(js: list[Junction]) -> Scenario:
        return Scenario(
            name=sc_name, description=f"Imported from the SUMO network {path.name} by "
            "gpssignal import-sumo.", start_clock_s=float(start), duration_s=n * interval_s,
            drain_s=600.0, step_s=0.5, junctions=tuple(js),
            links=tuple(nw.links.values()), vehicle_classes=tuple(classes),
            demand=Demand(interval_s=interval_s, flows=tuple(flows)), driver=driver)

    try:
        try:
            sc = build(junctions)
        except ScenarioError:
            if not any(j.crossings for j in junctions):
                raise
            sc = build(_valid_crossings(junctions, build, notes))
    except ScenarioError as exc:
        raise SumoImportError(f"network {path.name}: the imported scenario is not valid: "
                              f"{exc}") from None
    # What is written must read back unchanged (the file passes `validate`).
    parse_scenario(dump_scenario(sc))
    return SumoImport(scenario=sc, unrepresented=tuple(dict.fromkeys(notes)))


def _with_flows(j: Junction, nw: _Network, peds: dict[str, list[float]]) -> Junction:
    """Return ``j`` with its crossings' pedestrian flows [ped/h, rounded to 1e-6]."""
    by_arm = {arm: peds[x] for x, (jid, arm) in nw.crossing_of.items() if jid == j.id}
    return replace(j, crossings=tuple(
        replace(c, flow_pph=tuple(round(q, 6) for q in by_arm[c.arm])) for c in j.crossings))


def _valid_crossings(junctions: list[Junction], build: Callable[[list[Junction]], Scenario],
                     notes: list[str]) -> list[Junction]:
    """Keep, crossing by crossing, those with which the scenario stays valid.

    SUMO's programs need not meet gpssignal's pedestrian minimum green (green
    plus clearance covers a slow walker's crossing, docs/references.md
    #pedestrian-timing); a crossing that breaks it (or another rule) is left
    out and listed with the rule.
    """
    kept = [_without_crossings(j) for j in junctions]
    for k, j in enumerate(junctions):
        for c in j.crossings:
            trial = _only_crossings(j, {*(x.group for x in kept[k].crossings), c.group})
            try:
                build([*kept[:k], trial, *kept[k + 1:]])
            except ScenarioError as exc:
                notes.append(f"crossing {j.id}.{c.arm}: left out: {exc}")
                continue
            kept[k] = trial
    return kept


def _only_crossings(j: Junction, groups: set[str]) -> Junction:
    """Return ``j`` with only the crossings of ``groups`` (and their groups)."""
    drop = j.crossing_groups() - groups
    return replace(
        j, crossings=tuple(c for c in j.crossings if c.group in groups),
        groups=tuple(g for g in j.groups if g not in drop),
        intergreen_s={k: v for k, v in j.intergreen_s.items() if not set(k) & drop},
        programs=tuple(replace(p, greens={g: w for g, w in p.greens.items() if g not in drop})
                       for p in j.programs))


def _without_crossings(j: Junction) -> Junction:
    """Return ``j`` without its crossings and their groups."""
    return _only_crossings(j, set())


def _note_network(net: _Net, notes: list[str]) -> None:
    """List what of the network as a whole gpssignal does not model."""
    ped = sum(1 for e in net.edges.values() for ln in e.lanes
              if not ln.cars and ln not in e.mode_lanes("bicycle"))
    if ped:
        notes.append(f"{ped} lanes closed to passenger cars (sidewalks, bicycle lanes beside "
                     "car lanes on one edge, bus or rail lanes) are not modelled; cycle "
                     "tracks (edges of bicycle lanes only) are imported as bicycle links")


def _comment(text: str) -> str:
    """One TOML comment line: control characters replaced, so it cannot end early."""
    return "# " + "".join(c if c.isprintable() else "?" for c in text)


def write_import(result: SumoImport, out: str | Path) -> Path:
    """Write the imported scenario as TOML (atomically), the unrepresented list on top."""
    path = Path(out)
    head = [_comment("Imported from SUMO by gpssignal import-sumo. Not represented:")]
    head += [_comment(f"- {x}") for x in result.unrepresented] or [_comment("- (nothing)")]
    text = "\n".join(head) + "\n\n" + dump_scenario(result.scenario)
    parse_scenario(text)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def clock_text(seconds: float) -> str:
    """Clock time ``HH:MM[:SS]`` of ``seconds`` after midnight."""
    return format_clock(seconds)
