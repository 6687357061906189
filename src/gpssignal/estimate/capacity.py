"""A capacity check before simulating: can switching programs help at this junction.

For each signal group of a generated scenario and each of its programs, the
degree of saturation X = flow / capacity of every 15-min slot, with
capacity = saturation flow × lanes × green / cycle (HCM; docs/references.md
#saturation-flow) and the flow of a busy day (the template's
``busy_day_factor`` times the profile). Three answers, in seconds:

* **under-saturated**: X stays below the template's ``undersaturated_x`` in
  every slot under the default program, even on a busy day. Queues clear
  every cycle, so a relief program has no queue to relieve and can only
  move delay between the phases (which may still save a little when the
  default split is poor: the simulation says). ``gpssignal estimate`` flags the
  junction (and skips it with ``--skip-undersaturated``);
* **over capacity under every program**: some group's X exceeds 1 in some
  slot whichever program runs: no program switch relieves it (the junction
  is still simulated, and flagged);
* otherwise: some group is near or over capacity under the default program
  and a program gives it more green: switching may help; simulated.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from gpssignal.model.scenario import Scenario

__all__ = ["SATURATION_FLOW_VPHPL", "CapacityCheck", "capacity_check", "movement_capacity",
           "permitted_capacity_vph"]

#: Saturation flow per lane for the v/c of a scenario that names none [veh/h/lane]:
#: the estimator template's value (docs/references.md#saturation-flow: practical
#: 1,700-1,900 veh/h/lane; the simulator's default car discharges at ≈ 1,850).
SATURATION_FLOW_VPHPL = 1850.0

UNDERSATURATED = "under-saturated"
OVERSATURATED = "over capacity under every program"
MAY_HELP = "switching may help"


@dataclass(frozen=True)
class CapacityCheck:
    """The check's answer for one junction.

    ``max_x`` is the highest degree of saturation per program (over groups and
    slots); ``critical`` names the group and slot where the default program's
    maximum occurs.
    """

    verdict: str
    max_x: dict[str, float]
    critical: str
    busy_day_factor: float
    threshold: float
    #: The highest X under the default program (the existing plan's).
    existing_x: float

    @property
    def skip(self) -> bool:
        """Tell whether simulating cannot change the answer (under-saturated)."""
        return self.verdict == UNDERSATURATED

    def text(self) -> str:
        """Return the answer in one line, with the figures."""
        xs = ", ".join(f"{p} {x:.2f}" for p, x in self.max_x.items())
        if self.verdict == UNDERSATURATED:
            why = (f"highest X {xs} on a busy day (x{self.busy_day_factor:g}), below "
                   f"{self.threshold:g} in every slot: no queue for plan selection to "
                   "relieve, it can only move delay between the phases")
        elif self.verdict == OVERSATURATED:
            why = (f"highest X {xs} (busy day x{self.busy_day_factor:g}); {self.critical} is "
                   "over capacity whichever program runs: a program switch cannot relieve it")
        else:
            why = (f"highest X {xs} (busy day x{self.busy_day_factor:g}, at {self.critical}): "
                   "a program gives the critical group more green")
        return f"{self.verdict}: {why}"


def _group_demand(sc: Scenario, busy_day_factor: float
                  ) -> tuple[dict[str, int], dict[str, list[float]]]:
    """Return each group's approach lanes and its busy-day flow per slot [veh/h]."""
    j = sc.junctions[0]
    lanes: dict[str, int] = {}
    flows: dict[str, list[float]] = {}
    for lk in sc.links:
        if lk.to_arm is None or lk.to_arm.split(".")[0] != j.id or lk.mode != "motor":
            continue
        groups = [ln.group for ln in lk.lanes if ln.group]
        for g in set(groups):
            lanes[g] = lanes.get(g, 0) + groups.count(g)
        for f in sc.demand.flows:
            if f.link != lk.id:
                continue
            g = next(str(ln.group) for ln in lk.lanes if f.movement in ln.movements)
            acc = flows.setdefault(g, [0.0] * len(f.flow_vph))
            for k, q in enumerate(f.flow_vph):
                acc[k] += q * busy_day_factor
    return lanes, flows


def capacity_check(sc: Scenario, saturation_flow_vphpl: float, busy_day_factor: float,
                   undersaturated_x: float) -> CapacityCheck:
    """Return the capacity check of ``sc``'s first junction (see the module docstring)."""
    j = sc.junctions[0]
    lanes, flows = _group_demand(sc, busy_day_factor)

    def x(g: str, program: str, q: float) -> float:
        pr = j.program(program)
        return q / (saturation_flow_vphpl * lanes[g] * pr.green_duration_s(g) / pr.cycle_s)

    max_x: dict[str, float] = {}
    critical = ""
    for pr in j.programs:
        cells = [(x(g, pr.name, v), f"group {g}, slot {k + 1}")
                 for g, q in flows.items() for k, v in enumerate(q)]
        worst = max(cells, default=(0.0, ""))
        max_x[pr.name] = worst[0]
        if pr.name == j.default_program:
            critical = worst[1]
    # A turn that gives way has less capacity than its group's green: its own v/c
    # (movement_capacity's, in the busiest interval, scaled to the busy day; the
    # opposing flow is not scaled, so this stays a lower bound) counts too.
    yielding = {(lk.id, gw.movement) for lk in sc.links for gw in lk.give_way}
    for m in movement_capacity(sc, saturation_flow_vphpl):
        if m["junction"] != j.id or (m["approach"], m["movement"]) not in yielding:
            continue
        for name, xm in m["x"].items():
            if xm * busy_day_factor > max_x.get(name, 0.0):
                max_x[name] = xm * busy_day_factor
                if name == j.default_program:
                    critical = f"{m['approach']} {m['movement']} (busiest 15 min)"
    over = sorted(g for g, q in flows.items()
                  if all(x(g, pr.name, max(q)) > 1.0 for pr in j.programs))
    if max_x[j.default_program] < undersaturated_x:
        verdict = UNDERSATURATED
    elif over:
        verdict, critical = OVERSATURATED, "group " + ", ".join(over)
    else:
        verdict = MAY_HELP
    return CapacityCheck(verdict=verdict, max_x=max_x, critical=critical,
                         busy_day_factor=busy_day_factor, threshold=undersaturated_x,
                         existing_x=max_x[j.default_program])


def permitted_capacity_vph(opposing_vph: float, critical_gap_s: float,
                           follow_up_s: float) -> float:
    """Return the flow a yielding stream can take from gaps in ``opposing_vph`` [veh/h].

    The gap-acceptance capacity of an uninterrupted opposing stream with
    random (exponential) headways, q e^{-q tc} / (1 - e^{-q tf}) with q in
    veh/s (HCM's permitted left-turn model; docs/references.md
    #permitted-left-turn); with no opposing flow, one vehicle per follow-up
    time.
    """
    q = opposing_vph / 3600.0
    if q <= 0:
        return 3600.0 / follow_up_s
    return 3600.0 * q * math.exp(-q * critical_gap_s) / (1.0 - math.exp(-q * follow_up_s))


def movement_capacity(sc: Scenario, saturation_flow_vphpl: float = SATURATION_FLOW_VPHPL
                      ) -> list[dict[str, Any]]:
    """Return each movement's flow and degree of saturation (v/c) under every program.

    One row per junction approach fed by the scenario's demand (an entry link
    into a junction; an approach fed by an upstream junction has no demand of
    its own in the scenario and is left out) and movement with demand:
    ``junction``, ``approach`` (link id), ``movement``, ``group`` (the signal
    group of its lanes), ``lanes`` (lanes carrying it), ``flow_vph`` (its
    flow in the approach's busiest demand interval of an average day) and
    ``x`` by program name.

    ``x`` is HCM's v/c of the movement's lane group (docs/references.md
    #saturation-flow): lanes of one signal group carrying the same movements
    form a lane group; a movement's flow is shared among the lane groups
    carrying it in proportion to their lanes; a lane group's v/c is its flow
    ÷ (saturation flow × lanes × green ÷ cycle); a movement in several lane
    groups gets the highest. A short lane (turn pocket) counts as a full lane
    (its storage may run out first), which makes ``x`` a lower bound there.

    A turn that gives way (``give_way``) can use only gaps in the traffic it
    yields to: its capacity is the gap-acceptance formula's
    (:func:`permitted_capacity_vph`, with the opposing movements' flow in the
    same interval, concentrated into their green) plus one vehicle per cycle
    that clears at amber, and its ``x`` is the higher of that and its lane
    group's. The opposing queue's discharge at the start of green, which
    blocks turners longer still, is not counted: ``x`` stays a lower bound.
    """
    rows: list[dict[str, Any]] = []
    by_link: dict[str, list[Any]] = {}
    for f in sc.demand.flows:
        by_link.setdefault(f.link, []).append(f)
    movement_flow = {(f.link, f.movement): f.flow_vph for f in sc.demand.flows}
    group_of = {(lk.id, m): ln.group for lk in sc.links for ln in lk.lanes
                for m in ln.movements if ln.group}
    order = {"left": 0, "through": 1, "right": 2}
    for lk in sc.links:
        if lk.to_arm is None or lk.mode != "motor" or lk.id not in by_link:
            continue
        jid = lk.to_arm.split(".")[0]
        j = next((x for x in sc.junctions if x.id == jid), None)
        if j is None:
            continue
        flows = by_link[lk.id]
        busiest = max(range(len(flows[0].flow_vph)),
                      key=lambda k: sum(f.flow_vph[k] for f in flows))
        q = {f.movement: float(f.flow_vph[busiest]) for f in flows}
        # Lane groups: (signal group, movements) -> lanes.
        groups: dict[tuple[str, tuple[str, ...]], int] = {}
        for ln in lk.lanes:
            if ln.group:
                key = (ln.group, tuple(sorted(ln.movements)))
                groups[key] = groups.get(key, 0) + 1
        carrying = {m: sum(n for (_, ms), n in groups.items() if m in ms) for m in q}
        load = {key: sum(q[m] * n / carrying[m] for m in key[1] if carrying.get(m))
                for key, n in groups.items()}
        for m in sorted(q, key=lambda m: order.get(m, 9)):
            mine = [key for key in groups if m in key[1]]
            if not mine or q[m] <= 0:
                continue
            gw = next((g for g in lk.give_way if g.movement == m), None)
            xs: dict[str, float] = {}
            for pr in j.programs:
                vals = [load[key] / (saturation_flow_vphpl * groups[key]
                                     * pr.green_duration_s(key[0]) / pr.cycle_s)
                        for key in mine if key[0] in pr.greens]
                if gw is not None and vals:
                    g_s = max(pr.green_duration_s(key[0]) for key in mine)
                    opposing = 0.0
                    for ref in gw.to:
                        link_id, mv = ref.split(".")
                        flow = movement_flow.get((link_id, mv))
                        og = group_of.get((link_id, mv))
                        if flow is None or og is None or og not in pr.greens:
                            continue
                        # Its hourly flow arrives in its green: the rate the turner faces.
                        opposing += flow[busiest] * pr.cycle_s / max(
                            pr.green_duration_s(og), 1.0)
                    tc = gw.critical_gap_s or sc.driver.critical_gap_s
                    tf = gw.follow_up_s or sc.driver.follow_up_s
                    cap = (permitted_capacity_vph(opposing, tc, tf) * g_s / pr.cycle_s
                           + 3600.0 / pr.cycle_s)
                    vals.append(q[m] / cap)
                if vals:
                    xs[pr.name] = max(vals)
            rows.append({"junction": jid, "approach": lk.id, "movement": m,
                         "group": "/".join(sorted({key[0] for key in mine})),
                         "lanes": carrying[m], "flow_vph": q[m], "x": xs})
    return rows
