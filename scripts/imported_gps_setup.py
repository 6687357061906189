"""Add what the GPS controller needs to an imported one-junction scenario.

A SUMO network carries no relief program, monitored stretch, probe feed or
day-to-day variability (docs/import.md). This script derives them the way
the CO2 estimator's template does (``gpssignal.estimate``:
src/gpssignal/scenarios/estimate_template.toml), so nothing is tuned:

* **monitored approach**: the entry link whose signal group has the highest
  degree of saturation X = flow / (saturation flow × lanes × green / cycle)
  under the imported default program in the busiest 15 min (the estimator's
  capacity check, ``gpssignal.estimate.capacity``, with the template's
  ``saturation_flow_vphpl``);
* **relief program** ``relief``: the template's ``relief_shift_s`` more
  green for that group, taken from the other stage: the cycle gets
  ``relief_shift_s`` inserted where the critical group's green ends (every
  group green then stays green that much longer, every later change moves
  with it) and loses as much from the longest stretch of the cycle in which
  no group changes state and the critical group is red (the groups green
  there lose it). Every clearance, amber and cycle length stays as imported;
  the program is turned to the same greens at cycle second 0 as the default
  (the synchronisation point);
* **stretch**: the last ``stretch_length_m`` (template) before the critical
  group's stop line (the whole link if shorter, less 10 m at its start);
* **probes, variability**: the template's base scenario's (``probes``,
  ``variability``: fleet GPS penetration and sampling, day-to-day demand
  level and peak shift);
* **peak**: the scenario's first hour.

It prints the choices and writes the new scenario (the import's header is
kept, the derivation added to it).

    .venv/bin/python scripts/imported_gps_setup.py IMPORTED.toml OUT.toml
"""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import tomli_w

from gpssignal.errors import ScenarioError
from gpssignal.estimate.capacity import capacity_check
from gpssignal.estimate.junctions import read_template
from gpssignal.model.io import (
    format_clock,
    parse_scenario,
    read_scenario,
    scenario_to_dict,
)
from gpssignal.model.scenario import Junction, Program, Scenario
from gpssignal.model.signals import greens_at_zero

#: Metres left at the start of a short link before the stretch begins [m]
#: (vehicles entering there are still accelerating to their desired speed).
STRETCH_START_MARGIN_M = 10.0


def critical_group(sc: Scenario, saturation_vphpl: float) -> tuple[str, str, float]:
    """Return (group, entry link, X) with the highest X under the default program."""
    j = sc.junctions[0]
    pr = j.program(j.default_program)
    lanes: dict[str, int] = {}
    flows: dict[tuple[str, str], list[float]] = {}
    for lk in sc.links:
        if lk.from_arm is not None or lk.to_arm is None or lk.mode != "motor":
            continue
        for ln in lk.lanes:
            if ln.group:
                lanes[ln.group] = lanes.get(ln.group, 0) + 1
        for f in sc.demand.flows:
            if f.link == lk.id:
                g = next(str(ln.group) for ln in lk.lanes if f.movement in ln.movements)
                acc = flows.setdefault((g, lk.id), [0.0] * len(f.flow_vph))
                for k, q in enumerate(f.flow_vph):
                    acc[k] += q
    by_group: dict[str, list[float]] = {}
    for (g, _), q in flows.items():
        acc = by_group.setdefault(g, [0.0] * len(q))
        for k, v in enumerate(q):
            acc[k] += v
    xs = {g: max(q) / (saturation_vphpl * lanes[g] * pr.green_duration_s(g) / pr.cycle_s)
          for g, q in by_group.items() if not pr.is_permanent(g)}
    g = max(xs, key=lambda k: xs[k])
    link = max((lk for (gg, lk) in flows if gg == g), key=lambda lk: max(flows[(g, lk)]))
    return g, link, xs[g]


def _events(j: Junction, pr: Program) -> list[float]:
    """Return the times in the cycle at which some group changes state [s]."""
    c, tm = pr.cycle_s, j.timing
    out = set()
    for g in pr.greens:
        if pr.is_permanent(g):
            continue
        a, b = pr.greens[g]
        out |= {a % c, b % c, (b + tm.amber_s) % c, (a - tm.red_amber_s) % c}
    return sorted(out)


def relief_program(j: Junction, group: str, shift_s: float) -> Program:
    """Return the default program with ``shift_s`` more green for ``group`` (module doc)."""
    pr = j.program(j.default_program)
    c = pr.cycle_s
    a_m, b = pr.greens[group]
    ev = _events(j, pr)
    gaps = [(ev[(k + 1) % len(ev)] - ev[k]) % c or c for k in range(len(ev))]
    best = None
    for k, length in enumerate(gaps):
        t0 = ev[k]
        mid = (t0 + length / 2) % c
        red = not ((mid - a_m) % c < (b - a_m) % c)
        if red and length >= shift_s and (best is None or length > best[1]):
            best = (t0, length)
    if best is None:
        raise ScenarioError(f"junction {j.id}: no {shift_s:g} s without a state change while "
                            f"{group} is red: no green to move")
    t0u = (best[0] - b) % c

    def moved(t: float, is_end: bool) -> float:
        u = (t - b) % c
        if is_end and u == 0:
            u = 0.0
        return round((b + (u + shift_s if u <= t0u else u)) % c, 6)

    greens = {g: w if pr.is_permanent(g) else (moved(w[0], False), moved(w[1], True) or c)
              for g, w in pr.greens.items()}
    return Program(name="relief", cycle_s=c, offset_s=pr.offset_s, greens=greens)


def turned(j: Junction, prog: Program) -> Program:
    """Return ``prog`` turned (whole seconds) until the junction with it validates."""
    base = greens_at_zero(j.program(j.default_program))
    c = int(prog.cycle_s)
    for r in sorted(range(-c // 2, c // 2 + 1), key=abs):
        cand = Program(name=prog.name, cycle_s=prog.cycle_s,
                       offset_s=round((prog.offset_s + r) % prog.cycle_s, 6),
                       greens={g: w if prog.is_permanent(g) else
                               (round((w[0] - r) % c, 6), round((w[1] - r) % c, 6) or c)
                               for g, w in prog.greens.items()})
        if greens_at_zero(cand) != base:
            continue
        try:
            replace(j, programs=(*j.programs, cand), relief_program=cand.name)
        except ScenarioError:
            continue
        return cand
    raise ScenarioError(f"junction {j.id}: no turn of the relief program passes the signal "
                        "rules")


def main() -> None:
    """Derive, print and write."""
    src, out = Path(sys.argv[1]), Path(sys.argv[2])
    sc = read_scenario(src)
    if len(sc.junctions) != 1:
        raise SystemExit("one junction only")
    tpl = read_template()
    t = tpl.values
    g, link, x = critical_group(sc, float(t["saturation_flow_vphpl"]))
    j = sc.junctions[0]
    relief = turned(j, relief_program(j, g, float(t["relief_shift_s"])))
    doc = scenario_to_dict(sc)
    jd = doc["junction"][0]
    jd["program"].append(scenario_to_dict(replace(
        sc, junctions=(replace(j, programs=(*j.programs, relief)),)))["junction"][0]["program"][-1])
    jd["relief_program"] = "relief"
    lk = sc.link(link)
    length = min(float(t["stretch_length_m"]), lk.length_m - STRETCH_START_MARGIN_M)
    doc["stretch"] = [{"id": f"{link}_approach", "links": [link],
                       "start_m": round(lk.length_m - length, 2), "end_m": lk.length_m,
                       "description": f"last {length:g} m before the stop line of {link} "
                                      f"(group {g}, the highest X under the imported program)"}]
    base = scenario_to_dict(tpl.base)
    doc["probes"], doc["variability"] = base["probes"], base["variability"]
    s0 = sc.start_clock_s
    doc["scenario"]["peak"] = [format_clock(s0), format_clock(min(s0 + 3600, 86_400))]
    head = [ln for ln in src.read_text().splitlines() if ln.startswith("#")]
    pr, rp = j.program(j.default_program), relief
    note = (f"# Relief program, stretch, probes and variability added by "
            f"scripts/imported_gps_setup.py: group {g} (link {link}) has the highest degree of "
            f"saturation X = {x:.2f} under '{pr.name}' in the busiest 15 min (saturation flow "
            f"{t['saturation_flow_vphpl']} veh/h/lane); 'relief' gives it "
            f"{t['relief_shift_s']} s more green (estimate template relief_shift_s), "
            f"{pr.green_duration_s(g):g} -> {rp.green_duration_s(g):g} s; stretch: the last "
            f"{length:g} m of {link}; probes and variability of {tpl.base.name}.")
    text = "\n".join([*head, note]) + "\n\n" + tomli_w.dumps(doc)
    new = parse_scenario(text)
    chk = capacity_check(new, float(t["saturation_flow_vphpl"]), float(t["busy_day_factor"]),
                         float(t["undersaturated_x"]))
    out.write_text(text + f"# capacity check: {chk.text()}\n")
    print(note.removeprefix("# "))
    print("greens", pr.name, dict(pr.greens))
    print("greens relief", dict(rp.greens), "offset", rp.offset_s)
    print("capacity check:", chk.text())


if __name__ == "__main__":
    main()
