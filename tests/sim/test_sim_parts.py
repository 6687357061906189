"""The named parts of the engine's state: streams, markers, entry queues, passage log."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gpssignal.control.fixed import FixedTimeController
from gpssignal.model.io import read_scenario
from gpssignal.model.signals import GREEN, RED
from gpssignal.sim import CONTROL_DELAY_MARK_M, Simulation, day_streams
from gpssignal.sim.markers import NO_MARKER, MarkerKind, Markers
from gpssignal.sim.network import compile_network
from gpssignal.sim.records import PassageLog
from gpssignal.sim.vehicles import VehicleArrays

TINY = Path(__file__).resolve().parents[2] / "scenarios" / "tiny.toml"


@pytest.fixture(scope="module")
def tiny():
    return read_scenario(TINY)


def test_day_streams_are_children_by_position():
    """Each named stream is the seed's child of its position: adding or
    removing a stream at the end never changes the others."""
    streams = day_streams(11)
    assert list(streams) == ["day", "demand", "probes", "day_type", "pedestrians"]
    children = np.random.SeedSequence(11).spawn(5)
    for k, ss in enumerate(streams.values()):
        assert ss.spawn_key == (k,)
        np.testing.assert_array_equal(ss.generate_state(4), children[k].generate_state(4))


def test_markers(tiny):
    net = compile_network(tiny)
    mk = Markers.build(tiny, net)
    kinds = [MarkerKind(k) for k in mk.kind]
    assert kinds.count(MarkerKind.STRETCH_START) == len(tiny.stretches)
    assert kinds.count(MarkerKind.STRETCH_END) == len(tiny.stretches)
    n_out = sum(lk.from_arm is not None for lk in tiny.links)
    assert kinds.count(MarkerKind.CONTROL_DELAY) == n_out
    for m, kind in enumerate(kinds):
        if kind == MarkerKind.CONTROL_DELAY:
            assert mk.ref[m] == NO_MARKER and mk.pos_m[m] <= CONTROL_DELAY_MARK_M
    for ids in mk.by_link:
        assert list(mk.pos_m[ids]) == sorted(mk.pos_m[ids])
        chain = [int(mk.following[m]) for m in ids]
        assert chain == [*ids[1:], NO_MARKER] if ids else chain == []
        if ids:
            assert mk.next_after(ids[-1]) == (np.inf, NO_MARKER)


def test_passage_log_columns_and_control_delay():
    log = PassageLog(n_vehicles=3)
    log.add(vid=2, junction=0, link=1, movement=1, t_s=10.5, state=GREEN, lane=4)
    log.add(vid=0, junction=0, link=1, movement=0, t_s=11.0, state=RED, lane=3)
    log.close(2, 4.25)
    log.close(1, 9.0)      # vehicle 1 has no open passage: nothing happens
    cols = log.columns()
    assert list(cols) == ["vid", "junction", "link", "movement", "t_s", "state",
                          "control_delay_s", "lane"]
    assert cols["vid"].dtype == np.int64 and cols["t_s"].dtype == np.float64
    np.testing.assert_array_equal(cols["vid"], [2, 0])
    np.testing.assert_array_equal(cols["control_delay_s"], [4.25, np.nan])
    assert log.red_crossings == 1
    # A give-way turner clearing from its waiting point is counted apart.
    log.add(vid=1, junction=0, link=1, movement=0, t_s=12.0, state=RED, lane=3,
            clearing=True)
    assert log.red_crossings == 1 and log.red_clearances == 1
    empty = PassageLog(n_vehicles=0).columns()
    assert all(len(v) == 0 for v in empty.values())
    assert empty["lane"].dtype == np.int64


def test_vehicle_arrays_grow_and_remove():
    veh = VehicleArrays(capacity=2)
    cols = [veh.add() for _ in range(5)]
    assert cols == [0, 1, 2, 3, 4] and veh.capacity == 8
    veh.F[0, :5] = np.arange(5)
    veh.remove([1, 3])
    np.testing.assert_array_equal(veh.F[0, :veh.n], [0, 2, 4])


def test_entry_queues_empty_after_run(tiny):
    sim = Simulation(tiny, FixedTimeController(tiny), seed=1, record_trajectories=False)
    res = sim.run()
    assert res.waiting == sim.entry.n_waiting == sum(len(q) for q in sim.entry.queues.values())
    assert int(sim.entry.waiting.sum()) == sim.entry.n_waiting
    np.testing.assert_array_equal(res.entry_link_idx, sim.entry.links)
