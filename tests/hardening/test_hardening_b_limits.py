"""Hardening B: resource bounds at scenario load and sweep bounds.

Each hostile value (a drain of 10⁹ s, a flow of 10⁹ veh/h, a 1 ns step, a
10⁹ s cycle, ``/dev/zero`` as the demand file, TOML nested 100,000 deep, a
grid of a million points, a demand scale of 10⁶, a corrupt or locked result
store) is refused at once with one line naming the field, the figure and the
limit; a caller can raise a limit.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gpssignal.control.gps import model_from_scenario
from gpssignal.errors import ScenarioError, SweepSpecError
from gpssignal.experiment.sweep import (
    MAX_POINTS,
    ResultStore,
    grid_points,
    model_identity,
    parse_grid,
    parse_range,
    random_points,
    run_sweep,
)
from gpssignal.model.io import parse_scenario, read_scenario
from gpssignal.model.scenario import DEFAULT_LIMITS, ScenarioLimits, expected_vehicles

REPO = Path(__file__).resolve().parents[2]
TINY = REPO / "scenarios" / "tiny.toml"
TEXT = TINY.read_text(encoding="utf-8")
PROGRAM = 'cycle_s = 60\noffset_s = 0\ngreens = { A = [50, 30], B = [36, 44] }'


def _variant(old: str, new: str) -> str:
    assert TEXT.count(old) == 1, old
    return TEXT.replace(old, new)


HOSTILE = [
    ("drain", _variant("drain_s = 300", "drain_s = 1e9"),
     ["scenario.drain_s = 1000000000.0", "steps", "500,000", "max_steps"]),
    ("step", _variant("step_s = 0.5", "step_s = 1e-9"),
     ["scenario.step_s = 1e-09", "max_steps"]),
    ("flow", _variant("flow_vph = [600]", "flow_vph = [1e9]"),
     ["demand.flow[W_in.through].flow_vph", "vehicles", "100,000", "max_vehicles"]),
    ("cycle", _variant(PROGRAM, PROGRAM.replace("cycle_s = 60", "cycle_s = 1e9")),
     ["junction[J1].program[normal].cycle_s = 1000000000.0", "300 s", "max_cycle_s"]),
    ("dev_zero", _variant("[demand]\n", '[demand]\nfile = "/dev/zero"\n'),
     ["demand.file = '/dev/zero'", "not a regular file"]),
    ("deep", "a = " + "[" * 100_000 + "]" * 100_000, ["nested too deep"]),
    ("interval_zero", _variant("[demand]\n", "[demand]\ninterval_s = 0\n")
     .replace("interval_s = 900\n", ""), ["interval_s = 0"]),
]


@pytest.mark.parametrize("label, text, parts", HOSTILE, ids=[h[0] for h in HOSTILE])
def test_hostile_scenarios_are_refused_at_once_with_one_line(label: str, text: str,
                                                             parts: list[str]) -> None:
    t0 = time.perf_counter()
    with pytest.raises(ScenarioError) as info:
        parse_scenario(text, base_dir=TINY.parent)
    message = str(info.value)
    assert time.perf_counter() - t0 < 5
    assert "\n" not in message
    for part in parts:
        assert part in message, (part, message)


def test_a_caller_can_raise_a_limit() -> None:
    text = _variant("drain_s = 300", "drain_s = 300000")
    with pytest.raises(ScenarioError, match="max_steps"):
        parse_scenario(text)
    sc = parse_scenario(text, limits=ScenarioLimits(max_steps=10**6))
    assert sc.drain_s == 300000
    with pytest.raises(ScenarioError, match=r"limits\.max_steps"):
        ScenarioLimits(max_steps=0)


def test_shipped_scenarios_stay_well_inside_the_default_limits() -> None:
    for path in REPO.glob("scenarios/[tv]*.toml"):
        sc = read_scenario(path)
        assert expected_vehicles(sc) < DEFAULT_LIMITS.max_vehicles / 5, path


def test_a_device_a_folder_or_an_oversized_file_is_not_read(tmp_path: Path) -> None:
    for path in ("/dev/zero", str(tmp_path)):
        with pytest.raises(ScenarioError, match="not a regular file"):
            read_scenario(path)
    big = tmp_path / "big.toml"
    big.write_text(TEXT + "#" * 2000, encoding="utf-8")
    with pytest.raises(ScenarioError, match=r"bytes, above the limit of 1,000 bytes"):
        read_scenario(big, limits=ScenarioLimits(max_file_bytes=1000))
    demand = tmp_path / "demand.csv"
    demand.write_bytes(b"link,movement,07:00\n\xff\xfe,through,1\n")
    text = _variant("[demand]\n", '[demand]\nfile = "demand.csv"\n')
    with pytest.raises(ScenarioError, match=r"demand\.file = 'demand\.csv': not UTF-8"):
        parse_scenario(text, base_dir=tmp_path)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_a_fifo_as_demand_file_does_not_hang(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "fifo.csv")
    text = _variant("[demand]\n", '[demand]\nfile = "fifo.csv"\n')
    with pytest.raises(ScenarioError, match="not a regular file"):
        parse_scenario(text, base_dir=tmp_path)


# --- sweeps -------------------------------------------------------------------------------

def test_a_grid_of_a_million_points_is_refused_before_it_is_made() -> None:
    t0 = time.perf_counter()
    with pytest.raises(SweepSpecError) as info:
        parse_grid("threshold_low_kmh=1:1000000:0.001")
    assert time.perf_counter() - t0 < 1
    assert "points, above the limit of 10,000" in str(info.value)
    _, values = parse_grid("threshold_low_kmh=1:130:1", max_points=200)
    assert len(values) == 130
    grids = [parse_grid("threshold_low_kmh=1:100:1"), parse_grid("penetration=0:1:0.01")]
    with pytest.raises(SweepSpecError, match="10,100 points"):
        grid_points(grids)
    assert len(grid_points(grids, max_points=20_000)) == 10_100
    with pytest.raises(SweepSpecError, match="samples"):
        random_points([("penetration", 0.1, 0.2)], MAX_POINTS + 1, seed=1)


@pytest.mark.parametrize("spec, part", [
    ("demand_scale=1e6", "demand_scale = 1e+06 is outside its range (0, 3]"),
    ("demand_scale=0", "(0, 3]"),
    ("penetration=0.5,1.5", "penetration = 1.5 is outside its range [0, 1]"),
    ("dropout=-0.1", "[0, 1]"),
    ("window_s=0", "window_s = 0"),
    ("threshold_low_kmh=1000", "threshold_low_kmh = 1000"),
])
def test_grid_values_outside_their_physical_range_are_refused(spec: str, part: str) -> None:
    with pytest.raises(SweepSpecError) as info:
        parse_grid(spec)
    assert part in str(info.value) and str(info.value).startswith("grid = ")


def test_random_ranges_are_checked_too() -> None:
    with pytest.raises(SweepSpecError, match="penetration = 2"):
        parse_range("penetration=0:2")


def test_a_scaled_scenario_beyond_the_vehicle_limit_is_refused_before_any_run(
        tiny_relief, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    model = model_from_scenario(tiny_relief)
    store = ResultStore(tmp_path / "runs.duckdb", tiny_relief, model_identity(model))
    try:
        with pytest.raises(SweepSpecError, match="max_vehicles"):
            run_sweep(tiny_relief, model, [{"demand_scale": 3.0}], [1], store, None,
                      limits=ScenarioLimits(max_vehicles=300))
        assert store.done_keys() == set()
    finally:
        store.close()


def test_a_corrupt_store_is_one_line_and_left_as_it_is(tiny_relief, tmp_path: Path
                                                       ) -> None:  # type: ignore[no-untyped-def]
    model = model_from_scenario(tiny_relief)
    good = tmp_path / "good.duckdb"
    ResultStore(good, tiny_relief, model_identity(model)).close()
    data = good.read_bytes()
    for name, content in [("truncated.duckdb", data[: len(data) // 3]),
                          ("text.duckdb", b"my notes\n" * 50)]:
        path = tmp_path / name
        path.write_bytes(content)
        with pytest.raises(SweepSpecError) as info:
            ResultStore(path, tiny_relief, model_identity(model))
        message = str(info.value)
        assert "\n" not in message and "cannot be opened as a result store" in message
        assert path.read_bytes() == content  # nothing of the user's is overwritten


def test_a_second_sweep_on_a_locked_store_is_one_line(tiny_relief, tmp_path: Path
                                                      ) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "runs.duckdb"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); "
         "print('ready', flush=True); time.sleep(60)", str(path)],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
        model = model_from_scenario(tiny_relief)
        with pytest.raises(SweepSpecError) as info:
            ResultStore(path, tiny_relief, model_identity(model))
        assert "in use by another sweep" in str(info.value)
        assert "\n" not in str(info.value)
    finally:
        holder.kill()
        holder.wait()
