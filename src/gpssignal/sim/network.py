"""The scenario network compiled to flat numpy arrays for the vehicle kernel.

Links, lanes, signal groups and movements get integer indices. Movement codes:
``0`` left, ``1`` through, ``2`` right, ``-1`` leave the network.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gpssignal.model.network import implicit_yields, movement_targets
from gpssignal.model.scenario import MOVEMENTS, Scenario

__all__ = ["EXIT", "MOVE_CODE", "NO_INDEX", "CompiledNetwork", "compile_network"]

#: Movement code per movement name (``left`` 0, ``through`` 1, ``right`` 2).
MOVE_CODE = {m: k for k, m in enumerate(MOVEMENTS)}
#: Movement code of leaving the network.
EXIT = -1
#: Index meaning "none": no link, junction or signal group.
NO_INDEX = -1


@dataclass(frozen=True, slots=True)
class CompiledNetwork:
    """Index arrays of a scenario's network.

    Attributes
    ----------
    link_ids : list[str]
        Link id per link index.
    link_length_m, link_vmax_mps : ndarray
        Length [m] and speed limit [m/s] per link.
    link_junction : ndarray
        Index of the junction a link leads into, -1 for exit links.
    link_next : ndarray, shape (n_links, 3)
        Outgoing link index per movement code, -1 where not allowed.
    link_turn_cdf : ndarray, shape (n_links, 3)
        Cumulative turn shares for internal links (zeros elsewhere).
    link_lanes : list[ndarray]
        Lane indices of each link, kerb lane first.
    lane_link, lane_length_m, lane_vmax_mps : ndarray
        Per lane: link index, length [m], speed limit [m/s].
    lane_group : ndarray
        Global signal group index controlling the lane's stop line, -1 for exit lanes.
    lane_allows : ndarray, shape (n_lanes, 3)
        Whether a lane carries each movement.
    lane_target : ndarray, shape (n_lanes, 3)
        Lane connection: the downstream lane (global index) a vehicle leaving
        this lane by each movement drives into, -1 where not allowed. The j-th
        lane (from the kerb) carrying a through or right movement feeds the
        j-th downstream full lane from the kerb; the j-th lane carrying a left
        turn (from the centre) feeds the j-th downstream full lane from the
        centre; lanes beyond the downstream link's full lanes merge into its
        last one. Short lanes downstream are reached by changing lanes.
    lane_start_m : ndarray
        Where each lane begins, from the start of its link [m]: 0 for a full
        lane, later for a short lane (a turn pocket or flare).
    lane_toward : ndarray, shape (n_lanes, 3)
        For a vehicle of each movement in a lane that does not carry it: the
        neighbouring lane toward the nearest lane of the link that does (its
        mandatory lane change); -1 where the lane carries the movement or no
        lane of the link does.
    lane_side : ndarray, shape (n_lanes, 2)
        Neighbouring lane toward the kerb (column 0) and toward the centre
        (column 1), -1 where there is none.
    start_lanes : list[list[ndarray]]
        ``start_lanes[link][move]``: the full lanes a vehicle of that movement
        drives onto the link in: those carrying the movement, or, when only
        short lanes carry it, the full lane beside them.
    lane_yield : ndarray, shape (n_lanes, 3)
        Give-way rule of a vehicle of each movement in the lane, -1: none.
    yield_gap_s, yield_follow_s : ndarray
        Per give-way rule: critical gap and follow-up time [s].
    yield_ptr, yield_lane, yield_move : ndarray
        The opposing traffic of rule ``r``: pairs ``(yield_lane[k],
        yield_move[k])`` for ``k`` in ``yield_ptr[r]:yield_ptr[r + 1]``; a
        vehicle of movement code ``yield_move[k]`` in lane ``yield_lane[k]``
        has priority over the rule's vehicles.
    yield_crossing : ndarray
        Per rule, the pedestrian crossing (index into ``crossing_ids``) whose
        pedestrians the rule's vehicles yield to, -1: none. The rules are the
        scenario's ``give_way`` rules merged with those the road rules add
        (:func:`gpssignal.model.network.implicit_yields`).
    crossing_ids : list[str]
        ``"JUNCTION.ARM"`` per pedestrian crossing, junction by junction.
    crossing_group : ndarray
        Global signal group index of each crossing.
    junction_ids : list[str]
    junction_groups : list[list[str]]
        Group ids per junction; global group index = ``group_offset[j] + k``.
    group_offset : ndarray
    group_junction : ndarray
        Junction index per global group.
    """

    link_ids: list[str]
    link_length_m: np.ndarray
    link_vmax_mps: np.ndarray
    link_junction: np.ndarray
    link_next: np.ndarray
    link_turn_cdf: np.ndarray
    link_lanes: list[np.ndarray]
    lane_link: np.ndarray
    lane_length_m: np.ndarray
    lane_vmax_mps: np.ndarray
    lane_group: np.ndarray
    lane_allows: np.ndarray
    lane_target: np.ndarray
    lane_start_m: np.ndarray
    lane_toward: np.ndarray
    lane_side: np.ndarray
    start_lanes: list[list[np.ndarray]]
    lane_yield: np.ndarray
    yield_gap_s: np.ndarray
    yield_follow_s: np.ndarray
    yield_ptr: np.ndarray
    yield_lane: np.ndarray
    yield_move: np.ndarray
    yield_crossing: np.ndarray
    crossing_ids: list[str]
    crossing_group: np.ndarray
    junction_ids: list[str]
    junction_groups: list[list[str]]
    group_offset: np.ndarray
    group_junction: np.ndarray

    @property
    def n_links(self) -> int:
        """Return the number of links."""
        return len(self.link_ids)

    @property
    def n_lanes(self) -> int:
        """Return the number of lanes."""
        return len(self.lane_link)

    @property
    def n_groups(self) -> int:
        """Return the number of signal groups."""
        return len(self.group_junction)

    def link_index(self, link_id: str) -> int:
        """Index of ``link_id``."""
        return self.link_ids.index(link_id)

    def max_route_links(self) -> int:
        """Longest possible route, in links."""
        memo: dict[int, int] = {}

        def depth(k: int) -> int:
            if k not in memo:
                nxt = [int(x) for x in self.link_next[k] if x >= 0]
                memo[k] = 1 + max((depth(x) for x in nxt), default=0)
            return memo[k]

        return max(depth(k) for k in range(self.n_links))


def compile_network(scenario: Scenario) -> CompiledNetwork:
    """Compile ``scenario``'s network into index arrays."""
    link_ids = [lk.id for lk in scenario.links]
    junction_ids = [j.id for j in scenario.junctions]
    jidx = {jid: k for k, jid in enumerate(junction_ids)}
    junction_groups = [list(j.groups) for j in scenario.junctions]
    group_offset = np.cumsum([0] + [len(g) for g in junction_groups[:-1]]).astype(np.int64)
    group_junction = np.concatenate(
        [np.full(len(g), k, dtype=np.int64) for k, g in enumerate(junction_groups)])
    link_next = _link_next(scenario, link_ids)
    link_junction = np.array([NO_INDEX if lk.to_arm is None else jidx[_junction_of(lk.to_arm)]
                              for lk in scenario.links], dtype=np.int64)
    lanes = _compile_lanes(scenario, link_junction, junction_groups, group_offset)
    toward, side, start = _lane_changes(lanes)
    crossing_ids = [f"{j.id}.{c.arm}" for j in scenario.junctions for c in j.crossings]
    crossing_group = np.array([int(group_offset[jk]) + j.groups.index(c.group)
                               for jk, j in enumerate(scenario.junctions) for c in j.crossings],
                              dtype=np.int64)
    yields = _give_way(scenario, link_ids, lanes, crossing_ids)
    return CompiledNetwork(
        link_ids=link_ids,
        link_length_m=np.array([lk.length_m for lk in scenario.links], dtype=float),
        link_vmax_mps=np.array([lk.speed_limit_mps for lk in scenario.links], dtype=float),
        link_junction=link_junction,
        link_next=link_next,
        link_turn_cdf=_turn_cdf(scenario),
        link_lanes=lanes.link_lanes,
        lane_link=lanes.lane_link,
        lane_length_m=lanes.length_m,
        lane_vmax_mps=lanes.vmax_mps,
        lane_group=lanes.group,
        lane_allows=lanes.allows,
        lane_target=_lane_targets(link_next, lanes.link_lanes, lanes.allows, lanes.start_m),
        lane_start_m=lanes.start_m,
        lane_toward=toward,
        lane_side=side,
        start_lanes=start,
        lane_yield=yields.lane_rule,
        yield_gap_s=yields.gap_s,
        yield_follow_s=yields.follow_s,
        yield_ptr=yields.ptr,
        yield_lane=yields.lane,
        yield_move=yields.move,
        yield_crossing=yields.crossing,
        crossing_ids=crossing_ids,
        crossing_group=crossing_group,
        junction_ids=junction_ids,
        junction_groups=junction_groups,
        group_offset=group_offset,
        group_junction=group_junction,
    )


def _junction_of(arm: str) -> str:
    """Junction id of an arm reference ``"JUNCTION.ARM"``."""
    return arm.split(".")[0]


def _link_next(scenario: Scenario, link_ids: list[str]) -> np.ndarray:
    """Outgoing link index per (link, movement code), :data:`NO_INDEX` where not allowed."""
    lidx = {lid: k for k, lid in enumerate(link_ids)}
    link_next = np.full((len(link_ids), len(MOVEMENTS)), NO_INDEX, dtype=np.int64)
    for (lid, m), target in movement_targets(scenario).items():
        link_next[lidx[lid], MOVE_CODE[m]] = lidx[target]
    return link_next


def _turn_cdf(scenario: Scenario) -> np.ndarray:
    """Cumulative turn shares per link (zeros for links without turn shares)."""
    turn_cdf = np.zeros((len(scenario.links), len(MOVEMENTS)))
    for k, lk in enumerate(scenario.links):
        if lk.turn_shares:
            turn_cdf[k] = np.cumsum([lk.turn_shares.get(m, 0.0) for m in MOVEMENTS])
            turn_cdf[k, -1] = 1.0
    return turn_cdf


@dataclass(frozen=True, slots=True)
class _Lanes:
    """Per-lane arrays (see :class:`CompiledNetwork`) and each link's lanes."""

    link_lanes: list[np.ndarray]
    lane_link: np.ndarray
    length_m: np.ndarray
    vmax_mps: np.ndarray
    group: np.ndarray
    allows: np.ndarray
    start_m: np.ndarray


def _compile_lanes(scenario: Scenario, link_junction: np.ndarray,
                   junction_groups: list[list[str]], group_offset: np.ndarray) -> _Lanes:
    """Assign lane numbers link by link, kerb lane first."""
    lane_link: list[int] = []
    lane_len: list[float] = []
    lane_vmax: list[float] = []
    lane_group: list[int] = []
    lane_allows: list[list[bool]] = []
    lane_start: list[float] = []
    link_lanes: list[np.ndarray] = []
    for k, lk in enumerate(scenario.links):
        jn = int(link_junction[k])
        lanes_here = []
        for lane in lk.lanes:
            lanes_here.append(len(lane_link))
            lane_link.append(k)
            lane_len.append(lk.length_m)
            lane_start.append(lane.start_m(lk.length_m))
            lane_vmax.append(lk.speed_limit_mps)
            if jn != NO_INDEX and lane.group is not None:
                g = junction_groups[jn].index(lane.group)
                lane_group.append(int(group_offset[jn]) + g)
            else:
                lane_group.append(NO_INDEX)
            lane_allows.append([m in lane.movements for m in MOVEMENTS])
        link_lanes.append(np.array(lanes_here, dtype=np.int64))
    return _Lanes(link_lanes=link_lanes, lane_link=np.array(lane_link, dtype=np.int64),
                  length_m=np.array(lane_len, dtype=float),
                  vmax_mps=np.array(lane_vmax, dtype=float),
                  group=np.array(lane_group, dtype=np.int64),
                  allows=np.array(lane_allows, dtype=bool).reshape(-1, len(MOVEMENTS)),
                  start_m=np.array(lane_start, dtype=float))


def _lane_changes(lanes: _Lanes) -> tuple[np.ndarray, np.ndarray, list[list[np.ndarray]]]:
    """Mandatory lane-change targets, neighbours and start lanes (see :class:`CompiledNetwork`)."""
    n = len(lanes.lane_link)
    toward = np.full((n, len(MOVEMENTS)), NO_INDEX, dtype=np.int64)
    side = np.full((n, 2), NO_INDEX, dtype=np.int64)
    start: list[list[np.ndarray]] = []
    for ll in lanes.link_lanes:
        side[ll[1:], 0] = ll[:-1]
        side[ll[:-1], 1] = ll[1:]
        full = ll[lanes.start_m[ll] == 0.0]
        per_move = []
        for mv in range(len(MOVEMENTS)):
            good = ll[lanes.allows[ll, mv]]
            for k, ln in enumerate(ll):
                if len(good) and not lanes.allows[ln, mv]:
                    nearest = good[np.argmin(np.abs(good - ln))]
                    toward[ln, mv] = ll[k + 1] if nearest > ln else ll[k - 1]
            ok = full[lanes.allows[full, mv]]
            if not len(ok) and len(good):   # only short lanes carry it: the full lane beside
                ok = full[[int(np.argmin(np.abs(full - good[0])))]]
            per_move.append(ok)
        start.append(per_move)
    return toward, side, start


@dataclass(frozen=True, slots=True)
class _GiveWay:
    """Compiled give-way rules (see ``CompiledNetwork.lane_yield``)."""

    lane_rule: np.ndarray
    gap_s: np.ndarray
    follow_s: np.ndarray
    ptr: np.ndarray
    lane: np.ndarray
    move: np.ndarray
    crossing: np.ndarray


def _give_way(scenario: Scenario, link_ids: list[str], lanes: _Lanes,
              crossing_ids: list[str]) -> _GiveWay:
    """Compile every link's give-way rules, and those the road rules add, to index arrays.

    One rule per yielding (link, movement): the opposing movements of its
    ``give_way`` rule and the cycle links it turns across, and the crossing
    whose pedestrians it yields to. A rule the scenario writes keeps its
    critical gap and follow-up time; the others take the ``[driver]``
    critical gap and no follow-up time: when no cyclist or pedestrian is near,
    turning vehicles discharge as any queue does (a follow-up time is the
    headway of a queue that shares gaps in an opposing stream).
    """
    lidx = {lid: k for k, lid in enumerate(link_ids)}
    lane_rule = np.full((len(lanes.lane_link), len(MOVEMENTS)), NO_INDEX, dtype=np.int64)
    gap: list[float] = []
    follow: list[float] = []
    ptr: list[int] = [0]
    opp_lane: list[int] = []
    opp_move: list[int] = []
    crossing: list[int] = []
    drv = scenario.driver
    implicit = implicit_yields(scenario)
    for k, lk in enumerate(scenario.links):
        written = {gw.movement: gw for gw in lk.give_way}
        for m in MOVEMENTS:
            gw = written.get(m)
            extra_crossing, cyclists = implicit.get((lk.id, m), (None, []))
            if gw is None and extra_crossing is None and not cyclists:
                continue
            r = len(gap)
            mv = MOVE_CODE[m]
            ll = lanes.link_lanes[k]
            lane_rule[ll[lanes.allows[ll, mv]], mv] = r
            gap.append(gw.critical_gap_s if gw is not None and gw.critical_gap_s is not None
                       else drv.critical_gap_s)
            if gw is None:   # only road-rule yields: no follow-up headway when clear
                follow.append(0.0)
            else:
                follow.append(gw.follow_up_s if gw.follow_up_s is not None else drv.follow_up_s)
            for ref in [*(gw.to if gw is not None else ()), *cyclists]:
                other, move = ref.split(".")
                om = MOVE_CODE[move]
                for ln in lanes.link_lanes[lidx[other]]:
                    if lanes.allows[ln, om]:
                        opp_lane.append(int(ln))
                        opp_move.append(om)
            ptr.append(len(opp_lane))
            crossing.append(crossing_ids.index(extra_crossing) if extra_crossing else NO_INDEX)
    return _GiveWay(lane_rule=lane_rule, gap_s=np.array(gap, dtype=float),
                    follow_s=np.array(follow, dtype=float),
                    ptr=np.array(ptr, dtype=np.int64), lane=np.array(opp_lane, dtype=np.int64),
                    move=np.array(opp_move, dtype=np.int64),
                    crossing=np.array(crossing, dtype=np.int64))


def _lane_targets(link_next: np.ndarray, link_lanes: list[np.ndarray],
                  lane_allows: np.ndarray, start_m: np.ndarray) -> np.ndarray:
    """Lane connections (see ``CompiledNetwork.lane_target``).

    They count the downstream link's full lanes only: a vehicle enters a
    link on a full lane, so a short lane at the kerb (a right-turn pocket)
    must not take the kerb through lane's place (mapped onto it, the kerb
    lane's traffic was moved to the next full lane, which then carried two
    lanes' worth while the other stood empty).
    """
    lane_target = np.full((len(lane_allows), len(MOVEMENTS)), NO_INDEX, dtype=np.int64)
    for k, lanes in enumerate(link_lanes):
        for mv in range(len(MOVEMENTS)):
            target = link_next[k, mv]
            if target < 0:
                continue
            carrying = [ln for ln in lanes if lane_allows[ln, mv]]
            down = link_lanes[target][start_m[link_lanes[target]] == 0.0]
            for rank, ln in enumerate(carrying):
                if MOVEMENTS[mv] == "left":
                    slot = len(down) - 1 - (len(carrying) - 1 - rank)
                else:
                    slot = rank
                lane_target[ln, mv] = down[min(max(slot, 0), len(down) - 1)]
    return lane_target
