"""Network topology: how links, junction arms and movements connect.

A movement at a junction leads from the incoming arm to the arm whose bearing
is closest to the turned heading (right-hand traffic): a vehicle arriving on
arm ``a`` heads ``bearing(a) + 180°``; *through* keeps that heading, *right*
turns +90°, *left* −90°. The chosen arm must lie within
:data:`MAX_TURN_ERROR_DEG` of that heading.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gpssignal.errors import ScenarioError
from gpssignal.model.checks import MOVEMENTS

if TYPE_CHECKING:
    from gpssignal.model.scenario import Junction, Link, Scenario

__all__ = [
    "MAX_TURN_ERROR_DEG",
    "entry_links",
    "exit_links",
    "implicit_yields",
    "movement_targets",
    "split_arm_ref",
    "validate_network",
]

#: Largest angle between a movement's heading and the arm it is resolved to [deg].
MAX_TURN_ERROR_DEG = 60.0
_TURN_DEG = {"through": 0.0, "right": 90.0, "left": -90.0}


def split_arm_ref(ref: str, fieldname: str, scenario: Scenario) -> tuple[Junction, str]:
    """Resolve ``"JUNCTION.ARM"`` to the junction and arm id, or raise naming ``fieldname``."""
    if ref.count(".") != 1:
        raise ScenarioError(f"{fieldname} = {ref!r}: must be 'JUNCTION.ARM'")
    jid, arm = ref.split(".")
    try:
        j = scenario.junction(jid)
    except KeyError:
        raise ScenarioError(f"{fieldname} = {ref!r}: unknown junction {jid!r}") from None
    if arm not in [a.id for a in j.arms]:
        raise ScenarioError(f"{fieldname} = {ref!r}: junction {jid} has no arm {arm!r}")
    return j, arm


def _of_mode(mode: str) -> str:
    """Return what to add to a message about links of ``mode`` (nothing for motor links)."""
    return "" if mode == "motor" else f" (of mode {mode})"


def _angle_diff(a: float, b: float) -> float:
    return abs((a - b + 180.0) % 360.0 - 180.0)


def movement_targets(scenario: Scenario) -> dict[tuple[str, str], str]:
    """Map ``(incoming link id, movement)`` to the outgoing link id.

    Covers every movement some lane of each incoming link allows.
    """
    outgoing: dict[tuple[str, str, str], str] = {}
    for lk in scenario.links:
        if lk.from_arm is not None:
            j, arm = split_arm_ref(lk.from_arm, f"link[{lk.id}].from", scenario)
            if (j.id, arm, lk.mode) in outgoing:
                raise ScenarioError(f"link[{lk.id}].from = {lk.from_arm!r}: arm already has "
                                    f"outgoing link {outgoing[(j.id, arm, lk.mode)]}"
                                    + _of_mode(lk.mode))
            outgoing[(j.id, arm, lk.mode)] = lk.id
    targets: dict[tuple[str, str], str] = {}
    for lk in scenario.links:
        if lk.to_arm is None:
            continue
        j, arm_in = split_arm_ref(lk.to_arm, f"link[{lk.id}].to", scenario)
        bearing_in = next(a.bearing_deg for a in j.arms if a.id == arm_in)
        for m in sorted(lk.lane_movements()):
            heading = (bearing_in + 180.0 + _TURN_DEG[m]) % 360.0
            others = [a for a in j.arms if a.id != arm_in]
            best = others[int(min(range(len(others)),
                                  key=lambda k: _angle_diff(others[k].bearing_deg, heading)))]
            err = _angle_diff(best.bearing_deg, heading)
            if err > MAX_TURN_ERROR_DEG:
                raise ScenarioError(
                    f"link[{lk.id}].lanes.movements = {m!r}: no arm of junction {j.id} lies "
                    f"within {MAX_TURN_ERROR_DEG:g} deg of heading {heading:g} deg")
            if (j.id, best.id, lk.mode) not in outgoing:
                raise ScenarioError(
                    f"link[{lk.id}].lanes.movements = {m!r}: leads to arm {j.id}.{best.id}, "
                    "which has no outgoing link" + _of_mode(lk.mode))
            targets[(lk.id, m)] = outgoing[(j.id, best.id, lk.mode)]
    return targets


def entry_links(scenario: Scenario) -> list[Link]:
    """Links where vehicles enter the network."""
    return [lk for lk in scenario.links if lk.from_arm is None]


def exit_links(scenario: Scenario) -> list[Link]:
    """Links where vehicles leave the network."""
    return [lk for lk in scenario.links if lk.to_arm is None]


def validate_network(scenario: Scenario) -> None:
    """Check that the network is connected and every demand can be routed.

    Raises
    ------
    ScenarioError
        Naming the field and the value that breaks the network.
    """
    _check_incoming(scenario)
    targets = movement_targets(scenario)
    by_id = {lk.id: lk for lk in scenario.links}
    _check_turn_shares(scenario)
    _check_demand_links(scenario, by_id)
    _check_routes_end(scenario, targets, by_id)
    _check_stretches(scenario, targets, by_id)
    _check_give_way(scenario, by_id)
    _check_crossings(scenario)


def _check_incoming(scenario: Scenario) -> None:
    """Check that each arm has at most one incoming link, whose lanes name its groups."""
    incoming: dict[tuple[str, str, str], str] = {}
    for lk in scenario.links:
        if lk.to_arm is not None:
            j, arm = split_arm_ref(lk.to_arm, f"link[{lk.id}].to", scenario)
            if (j.id, arm, lk.mode) in incoming:
                raise ScenarioError(f"link[{lk.id}].to = {lk.to_arm!r}: arm already has "
                                    f"incoming link {incoming[(j.id, arm, lk.mode)]}"
                                    + _of_mode(lk.mode))
            incoming[(j.id, arm, lk.mode)] = lk.id
            for k, lane in enumerate(lk.lanes):
                if lane.group not in j.groups:
                    raise ScenarioError(f"link[{lk.id}].lanes[{k}].group = {lane.group!r}: "
                                        f"junction {j.id} has no such signal group")


def _check_turn_shares(scenario: Scenario) -> None:
    """Check that links between junctions have turn shares, each for an allowed movement."""
    for lk in scenario.links:
        internal = lk.from_arm is not None and lk.to_arm is not None
        if internal:
            if not lk.turn_shares:
                raise ScenarioError(f"link[{lk.id}].turn_shares = {{}}: a link between "
                                    "junctions needs turn shares for its through traffic")
            for m, share in lk.turn_shares.items():
                if share > 0 and m not in lk.lane_movements():
                    raise ScenarioError(f"link[{lk.id}].turn_shares.{m} = {share}: no lane "
                                        "allows this movement")


def _check_demand_links(scenario: Scenario, by_id: dict[str, Link]) -> None:
    """Check that every demand flow enters on an entry link that allows its movement."""
    for f in scenario.demand.flows:
        if f.link not in by_id:
            raise ScenarioError(f"demand.flow.link = {f.link!r}: unknown link")
        lk = by_id[f.link]
        if lk.from_arm is not None:
            raise ScenarioError(f"demand.flow.link = {f.link!r}: not an entry link "
                                "(it starts at a junction)")
        if lk.to_arm is None:
            raise ScenarioError(f"demand.flow.link = {f.link!r}: leads nowhere")
        if f.movement not in lk.lane_movements():
            raise ScenarioError(f"demand.flow[{f.link}].movement = {f.movement!r}: no lane of "
                                f"link {f.link} allows it (lanes allow "
                                f"{sorted(lk.lane_movements())})")


def _check_routes_end(scenario: Scenario, targets: dict[tuple[str, str], str],
                      by_id: dict[str, Link]) -> None:
    """Check that routes end: no cycle of links reachable with positive turn shares."""
    succ: dict[str, list[str]] = {lk.id: [] for lk in scenario.links}
    for (lid, m), nxt in targets.items():
        lk = by_id[lid]
        if lk.from_arm is None or lk.turn_shares.get(m, 0) > 0:
            succ[lid].append(nxt)
    state: dict[str, int] = {}

    def visit(lid: str, path: list[str]) -> None:
        state[lid] = 1
        for nxt in succ[lid]:
            if state.get(nxt) == 1:
                raise ScenarioError(f"link[{nxt}].turn_shares: routes can loop forever through "
                                    f"{' -> '.join([*path, lid, nxt])}")
            if nxt not in state:
                visit(nxt, [*path, lid])
        state[lid] = 2

    for lk in scenario.links:
        if lk.id not in state:
            visit(lk.id, [])


def _check_stretches(scenario: Scenario, targets: dict[tuple[str, str], str],
                     by_id: dict[str, Link]) -> None:
    """Check that each stretch follows junction movements and lies within its links."""
    for s in scenario.stretches:
        p = f"stretch[{s.id}]"
        for k, lid in enumerate(s.links):
            if lid not in by_id:
                raise ScenarioError(f"{p}.links = {lid!r}: unknown link")
            if k > 0:
                prev = by_id[s.links[k - 1]]
                if lid not in {targets.get((prev.id, m)) for m in MOVEMENTS}:
                    raise ScenarioError(f"{p}.links = {lid!r}: does not follow "
                                        f"{prev.id} through a junction movement")
        first, last = by_id[s.links[0]], by_id[s.links[-1]]
        if s.start_m >= first.length_m:
            raise ScenarioError(f"{p}.start_m = {s.start_m}: beyond the end of link {first.id} "
                                f"({first.length_m} m)")
        if s.end_m is not None and s.end_m > last.length_m:
            raise ScenarioError(f"{p}.end_m = {s.end_m}: beyond the end of link {last.id} "
                                f"({last.length_m} m)")


def _check_give_way(scenario: Scenario, by_id: dict[str, Link]) -> None:
    """Check that each give-way rule names movements of other links into the same junction."""
    for lk in scenario.links:
        for k, gw in enumerate(lk.give_way):
            where = f"link[{lk.id}].give_way[{k}].to"
            for ref in gw.to:
                other_id, move = ref.split(".")
                other = by_id.get(other_id)
                if other is None:
                    raise ScenarioError(f"{where} = {ref!r}: unknown link {other_id!r}")
                if other.id == lk.id:
                    raise ScenarioError(f"{where} = {ref!r}: a link cannot yield to itself")
                if other.to_arm is None or lk.to_arm is None or \
                        other.to_arm.split(".")[0] != lk.to_arm.split(".")[0]:
                    raise ScenarioError(f"{where} = {ref!r}: {other_id} does not lead into "
                                        f"the junction of link {lk.id}")
                if move not in other.lane_movements():
                    raise ScenarioError(f"{where} = {ref!r}: no lane of {other_id} carries "
                                        f"{move!r}")


def _check_crossings(scenario: Scenario) -> None:
    """Check that every lane entering over a crossing conflicts with its pedestrian group.

    Stop lines lie before the crossing, so vehicles (and cyclists) leaving a
    stop line drive over their own arm's crossing at once: the two groups
    must never be green together.
    """
    for lk in scenario.links:
        if lk.to_arm is None:
            continue
        j, arm = split_arm_ref(lk.to_arm, f"link[{lk.id}].to", scenario)
        for c in j.crossings:
            if c.arm != arm:
                continue
            for k, lane in enumerate(lk.lanes):
                if lane.group is not None and not j.conflicts(lane.group, c.group):
                    raise ScenarioError(
                        f"link[{lk.id}].lanes[{k}].group = {lane.group!r}: its traffic "
                        f"crosses the pedestrian crossing over arm {arm} (group {c.group}) "
                        f"at the stop line, so junction[{j.id}].intergreen_s must list "
                        f"{lane.group}/{c.group} as a conflict")


def implicit_yields(scenario: Scenario) -> dict[tuple[str, str], tuple[str | None,
                                                                        list[str]]]:
    """Return the give-way rules the road rules add, per ``(link id, movement)``.

    Value ``(crossing, cyclists)``: ``crossing`` is ``"JUNCTION.ARM"`` of the
    pedestrian crossing the movement drives over when it leaves the junction,
    if its group is not kept apart from every lane of the movement by a
    conflict (the vehicles then yield to the pedestrians on it), else
    ``None``; ``cyclists`` lists ``"LINK.through"`` of the cycle links whose
    straight-on riders a turning motor movement crosses while both may have
    green (Danish road traffic act: turning traffic gives way to cyclists
    going straight on; docs/references.md#turning-vehicles-yield): a right
    turn yields to the cycle link of its own arm, a left turn to the cycle
    link of the arm it turns across (whose through movement leads into the
    arm it comes from).
    """
    targets = movement_targets(scenario)
    by_id = {lk.id: lk for lk in scenario.links}
    # The cycle links with straight-on riders into each junction, in link order.
    bikes_into: dict[str, list[Link]] = {}
    for b in scenario.links:
        if b.mode == "bicycle" and b.to_arm is not None and "through" in b.lane_movements():
            bikes_into.setdefault(b.to_arm.split(".")[0], []).append(b)
    out: dict[tuple[str, str], tuple[str | None, list[str]]] = {}
    for lk in scenario.links:
        if lk.to_arm is None:
            continue
        j, arm_in = split_arm_ref(lk.to_arm, f"link[{lk.id}].to", scenario)
        bikes_in = bikes_into.get(j.id, [])
        for m in sorted(lk.lane_movements()):
            groups = {ln.group for ln in lk.lanes if m in ln.movements and ln.group}
            exit_link = by_id[targets[(lk.id, m)]]
            arm_out = exit_link.from_arm.split(".")[1] if exit_link.from_arm else None
            crossing = None
            for c in j.crossings:
                if c.arm == arm_out and not all(j.conflicts(g, c.group) for g in groups):
                    crossing = f"{j.id}.{c.arm}"
            cyclists: list[str] = []
            if lk.mode == "motor" and m in ("left", "right"):
                for b in bikes_in:
                    b_arm = b.to_arm.split(".")[1] if b.to_arm else ""
                    b_to = by_id[targets[(b.id, "through")]].from_arm or ""
                    crosses = (b_arm == arm_in if m == "right"
                               else b_to.split(".")[-1] == arm_in)
                    b_groups = {ln.group for ln in b.lanes if "through" in ln.movements}
                    if crosses and not all(j.conflicts(g, bg) for g in groups
                                           for bg in b_groups if bg):
                        cyclists.append(f"{b.id}.through")
            if crossing is not None or cyclists:
                out[(lk.id, m)] = (crossing, cyclists)
    return out
