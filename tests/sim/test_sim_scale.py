"""The parts that keep the step's cost proportional to the vehicles.

The nearly-sorted merge sort, the one-pass lane tails, the merge search over
the crossing vehicle's own link, compact routes and columnar passages. Each
is checked against the plain (slower) computation it replaces.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import simpy
from hypothesis import given, settings
from hypothesis import strategies as st

from gpssignal.emissions import emission_model
from gpssignal.model import read_scenario
from gpssignal.model.signals import GREEN
from gpssignal.sim import kernel as K
from gpssignal.sim.demand import DayFactors, generate_arrivals
from gpssignal.sim.engine import Simulation, _arrival_schedule
from gpssignal.sim.network import compile_network
from gpssignal.sim.records import PassageLog
from gpssignal.sim.vehicles import VehicleArrays, lane_tails

TINY_PATH = Path(__file__).resolve().parents[2] / "scenarios" / "tiny.toml"
_EM = emission_model([("car", "PC_petrol_Euro-6ab", 1500.0, 1.8, 1.5)])


def _columns(lane: np.ndarray, pos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    n = len(lane)
    F = np.zeros((K.N_F, n))
    I = np.zeros((K.N_I, n), dtype=np.int64)
    F[K.F_POS], I[K.I_LANE], I[K.I_VID] = pos, lane, np.arange(n)
    return F, I


@settings(max_examples=200, deadline=None)
@given(n=st.integers(0, 150), moved=st.integers(0, 80), seed=st.integers(0, 2**32 - 1))
def test_sort_is_the_stable_sort(n: int, moved: int, seed: int) -> None:
    """Sorted columns with some moved to other lanes and positions (ties included)
    come out in the order of a stable sort by (lane, position), whether few
    (merged back one by one) or many (the full merge sort) are out of place."""
    rng = np.random.default_rng(seed)
    lane = np.sort(rng.integers(0, 8, n))
    pos = np.round(rng.uniform(0, 50, n), 0)   # whole metres: many ties
    order = np.lexsort((pos, lane))
    lane, pos = lane[order], pos[order]
    k = rng.choice(n, size=min(moved, n), replace=False) if n else np.empty(0, np.int64)
    lane[k] = rng.integers(0, 8, len(k))
    pos[k] = np.round(rng.uniform(0, 50, len(k)), 0)
    F, I = _columns(lane, pos)
    expected = np.argsort(lane * K.LANE_SORT_STRIDE_M + pos, kind="stable")
    K.sort_by_lane_position(F, I, n, np.zeros(n, np.int64), np.zeros(n), np.zeros(n, np.int64))
    np.testing.assert_array_equal(I[K.I_VID, :n], expected)
    np.testing.assert_array_equal(F[K.F_POS, :n], pos[expected])


@settings(max_examples=100, deadline=None)
@given(n=st.integers(0, 60), seed=st.integers(0, 2**32 - 1))
def test_lane_tails_match_the_sorting_definition(n: int, seed: int) -> None:
    """The rearmost column per lane, ties to the last column, as a stable sort
    by (lane, position descending) leaves it."""
    rng = np.random.default_rng(seed)
    lane = rng.integers(0, 5, n)
    pos = np.round(rng.uniform(0, 20, n), 0)
    tail = np.zeros(6, dtype=np.int64)
    lane_tails(pos, lane, tail)
    expected = np.full(6, -1)
    order = np.lexsort((-pos, lane))
    expected[lane[order]] = order
    np.testing.assert_array_equal(tail, expected)


def _merge_state(other_link: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Two lanes (0, 1) whose heads both enter lane 2; lane 1 may be on another link."""
    F = np.zeros((K.N_F, 2))
    I = np.zeros((K.N_I, 2), dtype=np.int64)
    F[K.F_EMERG] = 9.0
    F[K.F_POS], F[K.F_V], F[K.F_V0] = [80.0, 99.0], 10.0, 13.9
    F[K.F_LEN], F[K.F_AMAX], F[K.F_B], F[K.F_T], F[K.F_S0] = 4.5, 2.0, 2.5, 1.1, 2.0
    F[K.F_ISQ] = 0.5 / np.sqrt(F[K.F_AMAX] * F[K.F_B])
    F[K.F_LLEN], F[K.F_MPOS] = 100.0, np.inf
    I[K.I_VID], I[K.I_LANE], I[K.I_NEXT], I[K.I_MOVE] = [0, 1], [0, 1], 2, 1
    I[K.I_MOVING] = 1
    lane_link = np.array([0, 1 if other_link else 0, 2], dtype=np.int64)
    return F, I, lane_link


@pytest.mark.parametrize("other_link", [False, True])
def test_merge_follows_the_head_of_a_lane_of_the_same_link(other_link: bool) -> None:
    """The head 19 m behind another lane's head entering the same lane follows
    it (brakes) when both lanes belong to one link, and drives freely (empty
    downstream lane) when they do not."""
    F, I, lane_link = _merge_state(other_link)
    n = 2
    K.step_vehicles(F, I, n, np.full(3, GREEN), lane_link, 0.5, 3.5, 4.0, 0.1,
                    np.zeros(n, np.int64), np.zeros(3, np.int64), np.zeros(n, np.int64),
                    np.zeros(n), np.zeros(n, np.int64), np.zeros(n, np.int64), _EM.coef,
                    _EM.coast, 4.5, np.zeros(2, np.int64), *K.empty_rules(3), 0.0)
    rear = int(np.flatnonzero(I[K.I_VID] == 0)[0])
    assert (F[K.F_ACC, rear] > 0.0) == other_link


def test_remove_columns_keeps_order_like_vehicle_arrays() -> None:
    rng = np.random.default_rng(5)
    ref = VehicleArrays(capacity=4)
    for _ in range(9):
        j = ref.add()
        ref.F[:, j] = rng.uniform(size=K.N_F)
        ref.I[:, j] = rng.integers(0, 100, K.N_I)
    F, I = ref.F.copy(), ref.I.copy()
    gone = np.zeros(9, dtype=np.int64)
    gone[[0, 4, 8]] = 1
    left = K._remove_columns(F, I, 9, gone)
    ref.remove([0, 4, 8])
    assert left == ref.n == 6
    np.testing.assert_array_equal(F[:, :6], ref.F[:, :6])
    np.testing.assert_array_equal(I[:, :6], ref.I[:, :6])


@settings(max_examples=200, deadline=None)
@given(n=st.integers(1, 120), share=st.floats(0.0, 1.0), seed=st.integers(0, 2**32 - 1))
def test_remove_columns_keeps_every_row_of_the_others_in_order(n: int, share: float,
                                                               seed: int) -> None:
    """Any pattern of leavers (single columns, runs, all but one, all): the kept columns
    of every row, in order, as numpy's boolean indexing keeps them; the buffer may be
    longer than the vehicles."""
    rng = np.random.default_rng(seed)
    cap = n + int(rng.integers(0, 4))
    gone = np.zeros(cap, dtype=np.int64)
    gone[:n] = rng.random(n) < share
    if not gone[:n].any():
        gone[int(rng.integers(0, n))] = 1
    F = rng.uniform(size=(K.N_F, cap))
    I = rng.integers(0, 1000, (K.N_I, cap))
    keep = gone[:n] == 0
    F0, I0 = F[:, :n][:, keep].copy(), I[:, :n][:, keep].copy()
    left = K._remove_columns(F, I, n, gone)
    assert left == int(keep.sum())
    np.testing.assert_array_equal(F[:, :left], F0)
    np.testing.assert_array_equal(I[:, :left], I0)


def test_passage_log_grows_past_its_capacity() -> None:
    log = PassageLog(n_vehicles=40, capacity=2)
    for v in range(40):
        log.add(vid=v, junction=0, link=1, movement=1, t_s=float(v), state=GREEN, lane=0)
    log.close(39, 1.5)
    cols = log.columns()
    assert len(log) == 40
    np.testing.assert_array_equal(cols["vid"], np.arange(40))
    assert cols["control_delay_s"][39] == 1.5 and np.isnan(cols["control_delay_s"][:39]).all()


def test_routes_are_compact_and_match_the_padded_matrices() -> None:
    tiny = read_scenario(TINY_PATH)
    net = compile_network(tiny)
    a = generate_arrivals(tiny, net, DayFactors(demand_level=1.0, peak_shift_s=0.0),
                          np.random.default_rng(3))
    assert a.route_link.dtype == np.int32 and a.route_move.dtype == np.int32
    links, moves = a.route_links, a.route_moves
    assert links.shape == (len(a), net.max_route_links()) and links.dtype == np.int64
    for i in range(len(a)):
        r = a.route(i)
        np.testing.assert_array_equal(links[i, :len(r)], r)
        assert (links[i, len(r):] == -1).all() and (moves[i, len(r):] == -1).all()
        assert moves[i, len(r) - 1] == -1 and (moves[i, :len(r) - 1] >= 0).all()
    np.testing.assert_array_equal(a.first_link, links[:, 0])
    back = a.take(np.arange(len(a))[::-1])
    np.testing.assert_array_equal(back.route_links, links[::-1])
    np.testing.assert_array_equal(back.t_s, a.t_s[::-1])


@settings(max_examples=150, deadline=None)
@given(grid=st.lists(st.integers(0, 40), max_size=30), dt=st.sampled_from([0.5, 0.1, 0.3]))
def test_bulk_arrivals_match_an_arrival_process(grid: list[int], dt: float) -> None:
    """Arrivals applied in bulk before each step are those a SimPy process
    waiting from one arrival to the next would have delivered before that
    step, also for arrivals at the very time of a step (times on a grid of
    half steps, so ties are common; dt = 0.1 and 0.3 make the clock round)."""
    t_s = np.sort(np.array(grid, dtype=float)) * (dt / 2)
    env = simpy.Environment()
    log: list[tuple[str, int]] = []

    def arrivals(env: simpy.Environment):  # the process the bulk admission replaces
        for i in range(len(t_s)):
            wait = t_s[i] - env.now
            if wait > 0:
                yield env.timeout(wait)
            log.append(("a", i))

    step_times: list[float] = []

    def steps(env: simpy.Environment):
        for _ in range(30):
            step_times.append(env.now)
            log.append(("s", len(step_times) - 1))
            yield env.timeout(dt)

    env.process(arrivals(env))
    env.run(until=env.process(steps(env)))
    before = {k: sum(1 for e in log[:log.index(("s", k))] if e[0] == "a")
              for k in range(len(step_times))}
    sim = SimpleNamespace(n_arrived=0, _step_t=[], entry=SimpleNamespace(arrive_many=None))
    sim._arrive_t, sim._arrive_sched = _arrival_schedule(t_s)
    sim._arrives_first = lambda i, k: Simulation._arrives_first(sim, i, k)
    sim.entry.arrive_many = lambda a, b: None
    for k, now in enumerate(step_times):
        Simulation._admit(sim, now)
        assert sim.n_arrived == before[k], (k, now)


def test_back_to_back_steps_change_nothing() -> None:
    """A step hook that watches every step changes nothing: hooks only read,
    whether they see each step as it ends or the steps since the clock's
    last event in a batch (tests/sim/test_sim_compiled_steps.py compares the
    compiled steps with one timeout per step)."""
    from gpssignal.control import FixedTimeController

    sc = read_scenario(TINY_PATH)
    plain = Simulation(sc, FixedTimeController(sc), 2, record_trajectories=True)
    hooked = Simulation(sc, FixedTimeController(sc), 2, record_trajectories=True)
    hooked.add_step_hook(lambda view: None)
    a, b = plain.run(), hooked.run()
    assert a.n_steps == b.n_steps and a.end_s == b.end_s
    for name in ("depart_s", "exit_s", "stops", "co2_mg", "queue_m"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    for col in a.passages:
        np.testing.assert_array_equal(a.passages[col], b.passages[col])
    assert a.trajectories is not None and b.trajectories is not None
    for col in a.trajectories:
        np.testing.assert_array_equal(a.trajectories[col], b.trajectories[col])
