"""Shared fixtures for the scenario-model tests.

Test modules here are named ``test_model_*.py`` rather than ``test_io.py`` etc.:
``tests/`` has no ``__init__.py`` files, so with pytest's default import mode two
test files with the same basename in different folders (say
``tests/sim/test_signals.py``) would clash.
"""

from __future__ import annotations

import dataclasses
import math
import string
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import strategies as st

from gpssignal.model import (
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
    ScheduleEntry,
    SignalTiming,
    Stretch,
    Variability,
    VehicleClass,
    movement_targets,
    read_scenario,
)

REPO = Path(__file__).resolve().parents[2]
TINY_PATH = REPO / "scenarios" / "tiny.toml"


@pytest.fixture(scope="session")
def tiny_path() -> Path:
    return TINY_PATH


@pytest.fixture(scope="session")
def tiny_text() -> str:
    return TINY_PATH.read_text(encoding="utf-8")


@pytest.fixture(scope="session")
def tiny() -> Scenario:
    return read_scenario(TINY_PATH)


def _replace_once(text: str, old: str, new: str) -> str:
    # A replacement that silently matches nothing would turn a bad-input test
    # into a test of the unchanged (valid) file, so insist on exactly one match.
    n = text.count(old)
    assert n == 1, f"expected exactly one {old!r} in tiny.toml, found {n}"
    return text.replace(old, new)


@pytest.fixture(scope="session")
def tiny_variant(tiny_text: str) -> Callable[..., str]:
    """``tiny_variant((old, new), ...)``: tiny.toml with each ``old`` replaced once."""

    def make(*edits: tuple[str, str]) -> str:
        text = tiny_text
        for old, new in edits:
            text = _replace_once(text, old, new)
        return text

    return make


def one_junction_scenario(arms: dict[str, float], incoming: dict[str, tuple[str, ...]],
                          outgoing: tuple[str, ...] | None = None) -> Scenario:
    """A one-junction, one-signal-group scenario for topology tests.

    Parameters
    ----------
    arms : dict[str, float]
        Arm id to bearing [deg].
    incoming : dict[str, tuple[str, ...]]
        Arm id to the movements of the one lane of the link entering there
        (link id ``{arm}_in``); each movement gets a demand flow.
    outgoing : tuple[str, ...], optional
        Arms with an exit link ``{arm}_out``; default all arms.
    """
    junction = Junction(
        id="J", lat_deg=55.0, lon_deg=12.0,
        arms=tuple(Arm(id=a, bearing_deg=b) for a, b in arms.items()),
        groups=("G",), intergreen_s={}, default_program="p",
        programs=(Program(name="p", cycle_s=60, greens={"G": (0, 50)}),),
    )
    links = [Link(id=f"{a}_in", to_arm=f"J.{a}", length_m=200, speed_limit_kmh=50,
                  lanes=(Lane(movements=moves, group="G"),))
             for a, moves in incoming.items()]
    links += [Link(id=f"{a}_out", from_arm=f"J.{a}", length_m=200, speed_limit_kmh=50,
                   lanes=(Lane(),))
              for a in (arms if outgoing is None else outgoing)]
    flows = tuple(DemandFlow(link=f"{a}_in", movement=m, flow_vph=(100.0,))
                  for a, moves in incoming.items() for m in moves)
    return Scenario(name="topology", start_clock_s=7 * 3600, duration_s=900,
                    junctions=(junction,), links=tuple(links),
                    vehicle_classes=(VehicleClass(name="car", share=1.0),),
                    demand=Demand(interval_s=900, flows=flows))


@pytest.fixture(scope="session")
def build_one_junction() -> Callable[..., Scenario]:
    return one_junction_scenario


# ---------------------------------------------------------------------------
# Hypothesis strategies for random valid one-junction scenarios.
#
# They build valid scenarios by construction (the signal programs respect
# every rule of gpssignal.model.signals), so a rejection by the validator is a
# finding, not a filtered example. Tests get them through the session fixtures
# below and draw with ``st.data()``: a conftest is not importable as a module.
# ---------------------------------------------------------------------------

IDENT = st.text(alphabet=string.ascii_letters + string.digits + "_-", min_size=1,
                max_size=8)
TEXT = st.text(max_size=20)


def secs(lo: float, hi: float) -> st.SearchStrategy[float]:
    """Times in half seconds in [lo, hi]: ints when whole, so both TOML number
    types occur; halves keep all window arithmetic exact in binary floats."""
    return st.integers(math.ceil(2 * lo), math.floor(2 * hi)).map(
        lambda k: k // 2 if k % 2 == 0 else k / 2)


def pos_float(lo: float, hi: float) -> st.SearchStrategy[float]:
    return st.floats(min_value=lo, max_value=hi, allow_nan=False, allow_infinity=False)


@st.composite
def program_for(draw, name, groups, timing, ig):
    """A program whose green windows respect ``timing`` and intergreens ``ig``.

    Groups get green in the order listed, all pairs conflicting. Each start is
    the earliest the intergreens allow plus random slack; the cycle is the
    shortest that closes the ring plus slack. Cycle second 0 is then placed
    inside the green of ``groups[0]`` at least ``min_green_s`` before its end, so
    (a) no amber or red-amber spans second 0 (intergreens are >= amber and
    >= red-amber), (b) every program has ``{groups[0]}`` green at second 0 and
    (c) a switch between programs never shortens that green below min green.
    """
    n = len(groups)
    g = [draw(secs(timing.min_green_s, timing.min_green_s + 40)) for _ in range(n)]
    s, e = [0], [g[0]]
    for k in range(1, n):
        s.append(max(e[i] + ig[groups[i], groups[k]] for i in range(k))
                 + draw(secs(0, 10)))
        e.append(s[k] + g[k])
    cycle = max(e[i] + ig[groups[i], groups[j]] - s[j] for i in range(n) for j in range(i))
    cycle = max(cycle, max(g) + timing.amber_s + timing.red_amber_s) + draw(secs(0, 10))
    p = s[0] + draw(secs(0, g[0] - timing.min_green_s))
    greens = {grp: ((s[k] - p) % cycle, (e[k] - p) % cycle) for k, grp in enumerate(groups)}
    offset = draw(secs(0, cycle).filter(lambda x: x < cycle))
    return Program(name=name, cycle_s=cycle, offset_s=offset, greens=greens)


@st.composite
def junctions(draw):
    n = draw(st.sampled_from([2, 3]))
    groups = tuple(draw(st.lists(IDENT, min_size=n, max_size=n, unique=True)))
    timing = SignalTiming(amber_s=draw(secs(3, 5)), red_amber_s=draw(secs(0, 2)),
                          min_green_s=draw(secs(4, 10)))
    lo = max(timing.amber_s, timing.red_amber_s)
    ig = {(i, j): draw(secs(lo, timing.amber_s + 5)) for i in groups for j in groups if i != j}
    names = draw(st.lists(IDENT, min_size=1, max_size=3, unique=True))
    programs = tuple(draw(program_for(nm, groups, timing, ig)) for nm in names)
    arm_ids = draw(st.lists(IDENT.filter(lambda x: "." not in x), min_size=4, max_size=4,
                            unique=True))
    arms = tuple(Arm(id=a, bearing_deg=(base + draw(secs(-20, 20))) % 360, name=draw(TEXT))
                 for a, base in zip(arm_ids, (0, 90, 180, 270), strict=True))
    return Junction(id=draw(IDENT), name=draw(TEXT), lat_deg=draw(pos_float(-90, 90)),
                    lon_deg=draw(pos_float(-180, 180)), arms=arms, groups=groups,
                    intergreen_s=ig, programs=programs,
                    default_program=draw(st.sampled_from(names)), timing=timing)


@st.composite
def vehicle_classes(draw):
    names = draw(st.lists(IDENT, min_size=1, max_size=4, unique=True))
    weights = [draw(st.integers(1, 100)) for _ in names]
    out = []
    for name, w in zip(names, weights, strict=True):
        mean = draw(pos_float(0.5, 1.5))
        out.append(VehicleClass(
            name=name, share=w / sum(weights), length_m=draw(pos_float(2, 20)),
            max_accel_mps2=draw(pos_float(0.3, 4)),
            comfortable_decel_mps2=draw(pos_float(0.5, 5)),
            time_headway_s=draw(pos_float(0.5, 3)), min_gap_m=draw(pos_float(0, 5)),
            speed_factor_mean=mean, speed_factor_sd=draw(pos_float(0, 0.49 * mean)),
            emission_class=draw(TEXT)))
    return tuple(out)


@st.composite
def scenarios(draw):
    j = draw(junctions())
    arm_ids = [a.id for a in j.arms]
    in_arms = draw(st.lists(st.sampled_from(arm_ids), min_size=1, max_size=4, unique=True))
    links = []
    flows = []
    interval = draw(st.sampled_from([300, 600.0, 900, 450.5]))
    n_int = draw(st.integers(1, 4))
    duration = interval * (n_int - draw(st.integers(0, 9)) / 10)
    flow_list = st.lists(pos_float(0, 3000), min_size=n_int, max_size=n_int).map(tuple)
    for k, a in enumerate(in_arms):
        lanes = tuple(
            Lane(movements=tuple(draw(st.lists(st.sampled_from(MOVEMENTS), min_size=1,
                                               max_size=3, unique=True))),
                 group=draw(st.sampled_from(j.groups)))
            for _ in range(draw(st.integers(1, 3))))
        lid = f"in{k}"
        links.append(Link(id=lid, name=draw(TEXT), to_arm=f"{j.id}.{a}",
                          length_m=draw(pos_float(10, 20_000)),
                          speed_limit_kmh=draw(pos_float(5, 130)), lanes=lanes))
        allowed = sorted({m for ln in lanes for m in ln.movements})
        for m in draw(st.lists(st.sampled_from(allowed), min_size=1, unique=True)):
            flows.append(DemandFlow(link=lid, movement=m, flow_vph=draw(flow_list)))
    for k, a in enumerate(arm_ids):
        links.append(Link(id=f"out{k}", name=draw(TEXT), from_arm=f"{j.id}.{a}",
                          length_m=draw(pos_float(10, 20_000)),
                          speed_limit_kmh=draw(pos_float(5, 130)), lanes=(Lane(),)))
    # Whole clock seconds, and the demand period ends by midnight: the file
    # format cannot hold anything else (see the two xfail tests in test_model_io.py).
    start = draw(st.integers(0, math.floor(86_400 - duration)))
    end = math.floor(start + duration)
    peak = None
    if draw(st.booleans()):
        a = draw(st.integers(start, end - 1))
        peak = (a, draw(st.integers(a + 1, end)))
    names = [p.name for p in j.programs]
    times = draw(st.lists(st.integers(0, 86_400), max_size=3, unique=True).map(sorted))
    schedule = tuple(ScheduleEntry(at_clock_s=t, program=draw(st.sampled_from(names)))
                     for t in times)
    s = Scenario(
        name=draw(TEXT), description=draw(TEXT), start_clock_s=start, duration_s=duration,
        drain_s=draw(secs(0, 1800)), step_s=draw(st.sampled_from([0.1, 0.25, 0.5, 1])),
        peak_clock_s=peak, working_days_per_year=draw(st.integers(1, 366)),
        seed=draw(st.integers(0, 2**63 - 1)), junctions=(j,), links=tuple(links),
        vehicle_classes=draw(vehicle_classes()),
        demand=Demand(interval_s=interval, flows=tuple(flows)),
        variability=Variability(demand_level_sd=draw(pos_float(0, 0.33)),
                                peak_shift_sd_s=draw(pos_float(0, 900))),
        schedule=schedule,
        driver=Driver(idm_delta=draw(pos_float(1, 8)),
                      amber_max_decel_mps2=draw(pos_float(1, 6)),
                      max_decel_mps2=draw(pos_float(6, 12))))
    # Stretches: none, one on an entry link, or an entry link and the exit
    # link one of its movements leads to.
    kind = draw(st.sampled_from(["none", "one", "two"]))
    if kind != "none":
        first = s.link("in0")
        chain = [first]
        if kind == "two":
            m = draw(st.sampled_from(sorted(first.lane_movements())))
            chain.append(s.link(movement_targets(s)[first.id, m]))
        start_m = first.length_m * draw(pos_float(0, 0.45))
        end_m = None
        if draw(st.booleans()):
            end_m = chain[-1].length_m * draw(pos_float(0.5, 1))
        s = dataclasses.replace(s, stretches=(Stretch(
            id=draw(IDENT), links=tuple(lk.id for lk in chain), start_m=start_m,
            end_m=end_m, description=draw(TEXT)),))
    return s




@pytest.fixture(scope="session")
def junction_strategy() -> st.SearchStrategy[Junction]:
    return junctions()


@pytest.fixture(scope="session")
def scenario_strategy() -> st.SearchStrategy[Scenario]:
    return scenarios()
