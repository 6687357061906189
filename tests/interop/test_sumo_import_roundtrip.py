"""export-sumo then import-sumo gives back an equivalent scenario.

"Equivalent" here means, for every junction, link, program and demand flow
(groups and arms are matched, not named: SUMO has link indices, not group
names, and compass directions, not arm ids):

* junctions: same ids and positions (within 1e-6 deg: the export writes
  coordinates to 0.01 m, about 1e-7 deg);
* arms: the same bearings (within 0.1 deg: 0.01 m of rounding over the
  shortest, 200 m, link is 0.003 deg);
* links: same ids, modes (cycle tracks stay ``mode = "bicycle"``), ends,
  lengths (0.01 m: the importer's rounding) and speed limits (0.01 km/h: the
  export writes m/s to 4 decimals, 0.0004 km/h); same lanes in the same
  order with the same movements (as sets: the order a lane lists its
  movements in carries no meaning, and the importer writes them in
  ``MOVEMENTS`` order), signal groups (up to renaming: the lane -> group map
  must be a bijection of the groups lanes use) and short lane lengths
  (0.01 m);
* programs: same names, cycles, offsets and green windows per group under
  that renaming (exact: the export writes whole-second phase durations);
  the same default program;
* conflicts: the same pairs of groups; each imported intergreen lies between
  the junction's amber and the original intergreen (SUMO has no intergreen
  matrix: the importer takes the shortest clearance the programs give);
* give-way: every movement a rule names is kept, except the pairs the
  export reports it cannot represent in SUMO (``give_way_unmapped``);
* pedestrians: this export leaves crossings out (``pedestrians=False``), so
  their groups and ``[[junction.crossing]]`` are outside this round trip;
  test_sumo_import_pedestrians.py exports them and reads them back;
* demand: per entry link, movement and 15 min the number of vehicles the
  export wrote to routes.rou.xml (counted here independently), within
  ±1 vehicle (a departure within 0.5 ms of an interval boundary is written
  rounded to ms and may change interval); class shares and turn shares of
  links between junctions within 4 binomial standard errors (+1 vehicle) of
  the scenario's, since the export's vehicles are one sampled day; shares
  among classes of the same kind (motor and bus, or bicycle), bicycle
  classes with their mode, emission class and speed cap.

What SUMO files do not carry (stretches, schedules, relief programs, day
types, probe settings, upstream-signal feeds, which the export bakes into
arrival times) is outside the round trip (docs/import.md).
"""

from __future__ import annotations

import itertools
import math
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

import pytest

from gpssignal.interop.sumo_export import export_sumo
from gpssignal.interop.sumo_import import SumoImport, import_sumo, write_import
from gpssignal.model.io import read_scenario
from gpssignal.model.network import movement_targets
from gpssignal.model.scenario import Scenario

pytestmark = pytest.mark.sumo

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = ["tiny", "vallensbaek", "vallensbaek_corridor"]


def _roundtrip(name: str, tmp: Path) -> tuple[Scenario, Scenario, object, Path]:
    sc = read_scenario(ROOT / "scenarios" / f"{name}.toml")
    ex = export_sumo(sc, tmp / "x", seed=sc.seed)
    j = sc.junctions[0]
    res = import_sumo(ex.net, [ex.folder / "routes.rou.xml"],
                      additional=[ex.folder / "tls.add.xml"], clock0_s=sc.start_clock_s,
                      origin=(j.lat_deg, j.lon_deg), name=sc.name)
    return sc, res.scenario, ex, ex.folder


@pytest.fixture(scope="module", params=SCENARIOS)
def trip(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    return _roundtrip(request.param, tmp_path_factory.mktemp(request.param))


def _arm_map(a, b) -> dict[str, str]:
    """Original arm id -> imported arm id, matched by bearing."""
    out = {}
    for arm in a.arms:
        best = min(b.arms, key=lambda x: abs((x.bearing_deg - arm.bearing_deg + 180) % 360 - 180))
        assert abs((best.bearing_deg - arm.bearing_deg + 180) % 360 - 180) < 0.1
        out[arm.id] = best.id
    assert len(set(out.values())) == len(a.arms) == len(b.arms)
    return out


def _group_map(orig: Scenario, imp: Scenario) -> dict[str, dict[str, str]]:
    """Per junction: original group -> imported group, from the lanes (a bijection)."""
    out: dict[str, dict[str, str]] = {j.id: {} for j in orig.junctions}
    for lk in orig.links:
        if lk.to_arm is None:
            continue
        jid = lk.to_arm.split(".")[0]
        for a, b in zip(lk.lanes, imp.link(lk.id).lanes, strict=True):
            assert out[jid].setdefault(a.group, b.group) == b.group, (lk.id, a.group)
    for j in orig.junctions:
        m = out[j.id]
        assert sorted(m) == sorted(set(j.groups) - j.crossing_groups())
        assert sorted(m.values()) == sorted(imp.junction(j.id).groups)
    return out


def test_network_is_the_same(trip) -> None:
    orig, imp, _, _ = trip
    assert [j.id for j in imp.junctions] == [j.id for j in orig.junctions]
    assert sorted(lk.id for lk in imp.links) == sorted(lk.id for lk in orig.links)
    arms = {}
    for j in orig.junctions:
        ij = imp.junction(j.id)
        assert ij.lat_deg == pytest.approx(j.lat_deg, abs=1e-6)
        assert ij.lon_deg == pytest.approx(j.lon_deg, abs=1e-6)
        arms[j.id] = _arm_map(j, ij)

    def ref(r: str | None) -> str | None:
        if r is None:
            return None
        jid, arm = r.split(".")
        return f"{jid}.{arms[jid][arm]}"

    for lk in orig.links:
        il = imp.link(lk.id)
        assert (il.from_arm, il.to_arm) == (ref(lk.from_arm), ref(lk.to_arm))
        assert il.length_m == pytest.approx(lk.length_m, abs=0.01)
        assert il.speed_limit_kmh == pytest.approx(lk.speed_limit_kmh, abs=0.01)
        assert il.mode == lk.mode
        assert [set(ln.movements) for ln in il.lanes] == [set(ln.movements) for ln in lk.lanes]
        for a, b in zip(lk.lanes, il.lanes, strict=True):
            assert (a.length_m is None) == (b.length_m is None)
            if a.length_m is not None:
                assert b.length_m == pytest.approx(a.length_m, abs=0.01)


def test_programs_and_conflicts_are_the_same(trip) -> None:
    orig, imp, ex, _ = trip
    gmap = _group_map(orig, imp)
    for j in orig.junctions:
        ij, m = imp.junction(j.id), gmap[j.id]
        peds = j.crossing_groups()
        assert ij.default_program == j.default_program
        assert sorted(p.name for p in ij.programs) == sorted(p.name for p in j.programs)
        for p in j.programs:
            ip = ij.program(p.name)
            assert (ip.cycle_s, ip.offset_s) == (p.cycle_s, p.offset_s)
            assert {m[g]: tuple(w) for g, w in p.greens.items() if g not in peds} == \
                dict(ip.greens)
        vehicle_pairs = {(a, b): v for (a, b), v in j.intergreen_s.items()
                         if a not in peds and b not in peds}
        assert {(m[a], m[b]) for a, b in vehicle_pairs} == set(ij.intergreen_s)
        # Each group's clearance: the shortest time any program leaves between
        # the end of its green and the start of a conflicting vehicle green
        # (exact: whole-second phases); that is at least the amber and keeps
        # every program valid.
        gap: dict[str, float] = {}
        for (a, b) in vehicle_pairs:
            for p in j.programs:
                ga, gb = p.greens[a], p.greens[b]
                gap[a] = min(gap.get(a, math.inf), (gb[0] - ga[1]) % p.cycle_s)
        for (a, b) in vehicle_pairs:
            assert ij.intergreen_s[(m[a], m[b])] == pytest.approx(gap[a], abs=1e-6)
            assert ij.timing.amber_s <= gap[a]
        assert (ij.timing.amber_s, ij.timing.red_amber_s) == (j.timing.amber_s,
                                                              j.timing.red_amber_s)
    unmapped = " ".join(ex.give_way_unmapped)
    for lk in orig.links:
        rules = {g.movement: set(g.to) for g in imp.link(lk.id).give_way}
        for g in lk.give_way:
            want = {t for t in g.to if f"{lk.id}.{g.movement} -> {t} " not in unmapped}
            assert want <= rules.get(g.movement, set()), (lk.id, g.movement)


def _exported_counts(orig: Scenario, folder: Path) -> tuple[Counter, Counter, Counter]:
    """Vehicles per (entry link, movement, interval), per class, per (link, movement)."""
    nxt = {(a, b): m for (a, m), b in movement_targets(orig).items()}
    entry, classes, turns = Counter(), Counter(), Counter()
    for v in ET.parse(folder / "routes.rou.xml").getroot().iter("vehicle"):
        links = list(dict.fromkeys(e.split(".")[0] for e in
                                   v.find("route").get("edges").split()))
        k = int(float(v.get("depart")) // orig.demand.interval_s)
        entry[(links[0], nxt[(links[0], links[1])], k)] += 1
        classes[v.get("type")] += 1
        for a, b in itertools.pairwise(links[1:]):
            turns[(a, nxt[(a, b)])] += 1
    return entry, classes, turns


def test_demand_is_the_exported_one(trip) -> None:
    orig, imp, _, folder = trip
    entry, classes, turns = _exported_counts(orig, folder)
    assert imp.start_clock_s == orig.start_clock_s
    got = Counter()
    for f in imp.demand.flows:
        for k, q in enumerate(f.flow_vph):
            got[(f.link, f.movement, k)] = q * imp.demand.interval_s / 3600
    for key in set(got) | set(entry):
        assert got[key] == pytest.approx(entry[key], abs=1), key
    bikes = {c.name for c in orig.vehicle_classes if c.mode == "bicycle"}
    for c in orig.vehicle_classes:
        n = sum(v for k, v in classes.items() if (k in bikes) == (c.name in bikes))
        ic = next(x for x in imp.vehicle_classes if x.name == c.name)
        for f in ("length_m", "max_accel_mps2", "comfortable_decel_mps2", "time_headway_s",
                  "min_gap_m", "emission_class", "mass_kg"):
            assert getattr(ic, f) == getattr(c, f), (c.name, f)
        if c.mode == "bicycle":
            assert ic.mode == "bicycle"
            # The export writes desiredMaxSpeed in m/s to 6 decimals.
            assert ic.max_speed_kmh == pytest.approx(c.max_speed_kmh, abs=1e-4)
        tol = 4 * math.sqrt(c.share * (1 - c.share) / n) + 1 / n
        assert ic.share == pytest.approx(c.share, abs=tol)
        assert ic.share == pytest.approx(classes[c.name] / n, abs=1e-5)
    for lk in orig.links:
        if lk.turn_shares:
            il = imp.link(lk.id)
            n_l = sum(turns[(lk.id, m)] for m in lk.turn_shares)
            for m, p in lk.turn_shares.items():
                tol = 4 * math.sqrt(p * (1 - p) / n_l) + 1 / n_l
                assert il.turn_shares.get(m, 0.0) == pytest.approx(p, abs=tol), (lk.id, m)


def test_imported_tiny_runs_with_safety_checks(tmp_path: Path) -> None:
    from gpssignal.cli import main

    _, imp, _, _ = _roundtrip("tiny", tmp_path)
    toml = write_import(SumoImport(scenario=imp, unrepresented=("a note",)), tmp_path / "t.toml")
    assert toml.read_text().startswith("# Imported from SUMO")
    assert main(["validate", str(toml)]) == 0
    assert main(["run", str(toml), "--out", str(tmp_path / "run"), "-q"]) == 0


def test_unhandled_network_is_a_one_line_error(tmp_path: Path, capsys) -> None:
    from gpssignal.cli import main

    sc = read_scenario(ROOT / "scenarios" / "tiny.toml")
    ex = export_sumo(sc, tmp_path / "x", seed=1)
    assert main(["import-sumo", str(ex.net), "--tls", "nope", "--out",
                 str(tmp_path / "a.toml")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "nope" in err
    bad = tmp_path / "bad.net.xml"
    bad.write_text(ex.net.read_text().replace('linkIndex="0"', 'linkIndex="x"'))
    assert main(["import-sumo", str(bad), "--routes", str(ex.folder / "routes.rou.xml"),
                 "--out", str(tmp_path / "b.toml")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "<connection" in err and not (tmp_path / "b.toml").exists()
