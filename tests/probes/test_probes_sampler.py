"""Statistical and structural tests of the GPS probe sampler
(gpssignal.probes.sampler) on the tiny scenario.

Every run uses a fixed seed, so each test is deterministic; the statistical
tolerances are still chosen so that a correct sampler would fail them with
probability < 1e-5 on a fresh seed (about 4.5 standard deviations), and each
is justified where it is used.

Most tests need the sampler object itself (``equipped``, ``phase``), which
:func:`gpssignal.experiment.run.run_one` does not return; ``sample``
wires it exactly as ``run_one`` does, and the first test checks that the two
give the same stream.
"""

from __future__ import annotations

import dataclasses
import math
import re
from pathlib import Path

import numpy as np
import pytest

from gpssignal.errors import ScenarioError
from gpssignal.experiment.run import (
    ControllerSpec,
    RunSpec,
    make_controller,
    run_one,
    run_scenario,
)
from gpssignal.model.geo import LocalProjection, link_geometry
from gpssignal.model.io import read_scenario
from gpssignal.model.scenario import ProbeSettings
from gpssignal.probes.io import stream_to_frame, write_probes
from gpssignal.probes.sampler import ProbeFeed, ProbeSampler, pseudonyms
from gpssignal.sim.engine import Simulation

REPO = Path(__file__).resolve().parents[2]
TINY = REPO / "scenarios" / "tiny.toml"
VALLENSBAEK = REPO / "scenarios" / "vallensbaek.toml"

#: Settings with every random effect off: the tests switch on one at a time.
EXACT = ProbeSettings(penetration=1.0, period_s=5.0, position_sigma_m=0.0,
                      speed_sigma_kmh=0.0, heading_sigma_deg=0.0, dropout=0.0,
                      latency_fixed_s=0.0, latency_jitter_s=0.0, anonymisation="raw",
                      trim_m=0.0)

#: Number of standard deviations allowed in the statistical checks below: a
#: normal deviate exceeds 4.5 sd with probability 7e-6.
Z = 4.5


@pytest.fixture(scope="module")
def tiny():
    return read_scenario(TINY)


def sample(scenario, settings, controller="fixed", seed=None, trajectories=False):
    """One run with a probe sampler, wired like ``run_one``; returns
    (result, sampler)."""
    ctrl = make_controller(controller, scenario)
    sim = Simulation(scenario, ctrl, seed=scenario.seed if seed is None else seed,
                     record_trajectories=trajectories)
    sampler = ProbeSampler(scenario, settings, sim.arrivals, link_geometry(scenario),
                           np.random.default_rng(sim.streams["probes"]))
    sampler.attach(sim)
    return sim.run(), sampler


def run_with_probes(scenario, controller="fixed", seed=None, probes=None):
    """``run_one`` with the probe stream sampled: (result, stream, meta)."""
    out = run_one(RunSpec(scenario=scenario, controller=ControllerSpec.parse(controller),
                          seed=scenario.seed if seed is None else seed, probes=probes,
                          sample_probes=True))
    return out.result, out.probes, out.meta


def chi2_sd_bounds(n: int, z: float = Z) -> tuple[float, float]:
    """Bounds on s / sigma for a sample sd of n normal values: (n - 1) s^2 /
    sigma^2 is chi-square with k = n - 1 degrees of freedom; its quantiles by
    the Wilson-Hilferty approximation (relative error < 1e-4 for k > 100)."""
    k = n - 1
    q = [k * (1 - 2 / (9 * k) + s * z * math.sqrt(2 / (9 * k))) ** 3 for s in (-1, 1)]
    return math.sqrt(q[0] / k), math.sqrt(q[1] / k)


# ---------------------------------------------------------------------------
# Wiring and settings
# ---------------------------------------------------------------------------

def test_sample_helper_gives_the_same_stream_as_run_one(tiny):
    settings = dataclasses.replace(tiny.probes, penetration=0.3, anonymisation="rotating")
    _, stream, meta = run_with_probes(tiny, "fixed", probes=settings)
    _, sampler = sample(tiny, settings)
    mine = sampler.stream()
    assert len(stream) > 0
    assert stream.columns.keys() == mine.columns.keys()
    for k in stream.columns:
        np.testing.assert_array_equal(stream.columns[k], mine.columns[k], err_msg=k)
    assert meta.seed == tiny.seed


def test_run_one_defaults_to_the_scenarios_probe_settings(tiny):
    sc = dataclasses.replace(tiny, probes=dataclasses.replace(tiny.probes, penetration=0.0))
    _, stream, _ = run_with_probes(sc)
    assert len(stream) == 0
    assert set(stream.columns) == {"time_sent_s", "time_received_s", "lat_deg", "lon_deg",
                                   "speed_kmh", "heading_deg"}


def test_the_sampler_only_observes_the_simulation(tiny):
    # Probes draw from their own stream: the vehicles and their trips are the
    # same with and without a sampler (common random numbers).
    plain, _ = run_scenario(tiny, "fixed", record_trajectories=False)
    probed, _, _ = run_with_probes(tiny, "fixed", probes=EXACT)
    np.testing.assert_array_equal(plain.arrivals.t_s, probed.arrivals.t_s)
    np.testing.assert_array_equal(plain.exit_s, probed.exit_s)


@pytest.mark.parametrize("field,value", [("penetration", 1.5), ("penetration", -0.1),
                                         ("dropout", 2.0), ("period_s", 0.0),
                                         ("rotation_s", -5.0), ("position_sigma_m", -1.0),
                                         ("latency_jitter_s", float("nan")),
                                         ("anonymisation", "nonsense")])
def test_bad_probe_settings_are_rejected(field, value):
    with pytest.raises(ScenarioError, match=rf"probes\.{field}"):
        ProbeSettings(**{field: value})


# ---------------------------------------------------------------------------
# 1. Penetration and reporting period
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("p", [0.05, 0.3])
def test_equipped_vehicles_are_binomial(p):
    # The equipped flags are drawn when the sampler is built, so no run is
    # needed: vallensbaek's ~6,600 vehicles give a tight check. The count is
    # Binomial(N, p) over the N motor vehicles (cyclists never report); allow Z
    # standard deviations.
    sc = read_scenario(VALLENSBAEK)
    sim = Simulation(sc, make_controller("fixed", sc), seed=sc.seed, record_trajectories=False)
    bikes = [k for k, c in enumerate(sc.vehicle_classes) if c.mode == "bicycle"]
    n = int((~np.isin(sim.arrivals.vehicle_class, bikes)).sum())
    sampler = ProbeSampler(sc, ProbeSettings(penetration=p), sim.arrivals, link_geometry(sc),
                           np.random.default_rng(sim.streams["probes"]))
    k = int(sampler.equipped.sum())
    assert n > 5000
    assert abs(k - n * p) <= Z * math.sqrt(n * p * (1 - p)), (k, n * p)


def test_reporting_vehicles_are_exactly_the_equipped_ones(tiny):
    # With dropout 0 every equipped vehicle that travels more than 2 * trim
    # reports (tiny's routes are 500 and 600 m); no other vehicle does.
    settings = dataclasses.replace(EXACT, penetration=0.3, trim_m=100.0)
    result, sampler = sample(tiny, settings)
    stream = sampler.stream()
    assert np.all(result.arrivals.route_length_m > 2 * settings.trim_m)
    assert np.isfinite(result.exit_s).all()
    assert set(stream.truth["vid"].tolist()) == set(np.flatnonzero(sampler.equipped).tolist())
    n, k = len(result.arrivals), int(sampler.equipped.sum())
    assert abs(k - 0.3 * n) <= Z * math.sqrt(n * 0.3 * 0.7)


@pytest.mark.parametrize("penetration,expected", [(0.0, "none"), (1.0, "all")])
def test_penetration_zero_and_one(tiny, penetration, expected):
    result, sampler = sample(tiny, dataclasses.replace(EXACT, penetration=penetration))
    vids = set(sampler.stream().truth["vid"].tolist())
    assert vids == (set() if expected == "none" else set(range(len(result.arrivals))))


@pytest.mark.parametrize("period", [5.0, 3.7])
def test_points_per_vehicle_follow_the_reporting_period(tiny, period):
    # A probe vehicle reports at the first step of each period [phase + kP,
    # phase + (k+1)P) it is seen in. Seen from t_first to t_last (D = t_last -
    # t_first), it reports floor((t_last - phase)/P) - floor((t_first - phase)/P)
    # + 1 times: strictly between D/P and D/P + 2, i.e. D/P + 1 +- 1 because of
    # the random phase. Exactly that count with the sampler's own phases.
    settings = dataclasses.replace(EXACT, period_s=period)
    result, sampler = sample(tiny, settings, trajectories=True)
    tr = result.trajectories
    vids = np.arange(len(result.arrivals))
    t_first = np.full(len(vids), np.inf)
    t_last = np.full(len(vids), -np.inf)
    np.minimum.at(t_first, tr["vid"], tr["t_s"])
    np.maximum.at(t_last, tr["vid"], tr["t_s"])
    counts = np.bincount(sampler.stream().truth["vid"], minlength=len(vids))
    d_over_p = (t_last - t_first) / period
    assert np.all(counts > d_over_p) and np.all(counts < d_over_p + 2)
    phase = sampler.phase
    exact = (np.floor((t_last - phase) / period) - np.floor((t_first - phase) / period) + 1)
    np.testing.assert_array_equal(counts, exact)
    # With a uniform random phase the expected count is D/P + 1 exactly: with
    # f the fractional part of D/P, the excess is -f or 1 - f (a shifted
    # Bernoulli, sd <= 0.5), so its mean over N vehicles is 0 within Z * 0.5 / sqrt(N).
    excess = counts - d_over_p - 1
    assert abs(excess.mean()) <= Z * 0.5 / math.sqrt(len(vids))
    # Reports are sent at simulation steps: the first when the vehicle is first
    # seen, then at the first step of each later period, so consecutive later
    # reports are P +- one step apart.
    st = sampler.stream()
    step = tiny.step_s
    for v in vids[:20]:
        gaps = np.diff(st.columns["time_sent_s"][st.truth["vid"] == v])[1:]
        assert np.all((gaps >= period - step - 1e-9) & (gaps <= period + step + 1e-9))


def test_dropout_keeps_a_binomial_subset_of_the_reports(tiny):
    # The reports that are due do not depend on dropout (the phases are drawn
    # first and the sampler does not change the traffic), so with dropout d the
    # kept reports are a subset of the dropout-0 ones, Binomial(n0, 1 - d).
    _, s0 = sample(tiny, EXACT)
    _, s1 = sample(tiny, dataclasses.replace(EXACT, dropout=0.25))
    a, b = s0.stream(), s1.stream()
    key = lambda s: set(zip(s.truth["vid"].tolist(), s.columns["time_sent_s"].tolist(),  # noqa: E731
                            strict=True))
    assert key(b) < key(a)
    n0, k = len(a), len(b)
    assert abs(k - 0.75 * n0) <= Z * math.sqrt(n0 * 0.25 * 0.75), (k, n0)


# ---------------------------------------------------------------------------
# 2. Noise
# ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def noisy(tiny):
    """Every vehicle reports every second with sigma 5 m, 3 km/h, 5 deg."""
    settings = dataclasses.replace(EXACT, period_s=1.0, position_sigma_m=5.0,
                                   speed_sigma_kmh=3.0, heading_sigma_deg=5.0)
    _, sampler = sample(tiny, settings)
    return settings, sampler.stream()


def test_position_noise_has_the_configured_sigma(tiny, noisy):
    settings, st = noisy
    proj = LocalProjection.for_scenario(tiny)
    x, y = proj.to_xy(st.columns["lat_deg"], st.columns["lon_deg"])
    n = len(st)
    assert n > 5000
    lo, hi = chi2_sd_bounds(n)
    for err in (x - st.truth["x_m"], y - st.truth["y_m"]):
        # Mean 0 within Z standard errors; sd within the chi-square bounds.
        assert abs(err.mean()) <= Z * settings.position_sigma_m / math.sqrt(n)
        ratio = err.std(ddof=1) / settings.position_sigma_m
        assert lo <= ratio <= hi, (ratio, lo, hi)
    # The two axes are independent: correlation within Z / sqrt(n).
    r = np.corrcoef(x - st.truth["x_m"], y - st.truth["y_m"])[0, 1]
    assert abs(r) <= Z / math.sqrt(n)


def test_speed_and_heading_noise_have_the_configured_sigma(tiny, noisy):
    settings, st = noisy
    # Reported speeds are clipped at 0. Keep points whose true speed is over
    # 10 sigma (30 km/h): selected on the truth, independent of the noise, and
    # never clipped (P(N(0,1) < -10) ~ 1e-23).
    true_kmh = st.truth["speed_mps"] * 3.6
    fast = true_kmh > 10 * settings.speed_sigma_kmh
    err = st.columns["speed_kmh"][fast] - true_kmh[fast]
    n = int(fast.sum())
    assert n > 3000
    lo, hi = chi2_sd_bounds(n)
    assert abs(err.mean()) <= Z * settings.speed_sigma_kmh / math.sqrt(n)
    assert lo <= err.std(ddof=1) / settings.speed_sigma_kmh <= hi
    assert (st.columns["speed_kmh"] >= 0).all()
    # Heading: the link's direction plus N(0, 5 deg), reported in [0, 360).
    geo = link_geometry(tiny)
    h = st.columns["heading_deg"]
    assert ((h >= 0) & (h < 360)).all()
    dh = (h - geo.heading_deg[st.truth["link"]] + 180) % 360 - 180
    lo, hi = chi2_sd_bounds(len(st))
    assert lo <= dh.std(ddof=1) / settings.heading_sigma_deg <= hi


def test_without_noise_reports_are_exact(tiny):
    _, sampler = sample(tiny, EXACT)
    st = sampler.stream()
    proj = LocalProjection.for_scenario(tiny)
    x, y = proj.to_xy(st.columns["lat_deg"], st.columns["lon_deg"])
    # Only the projection's round-trip rounding (~1e-9 m) remains.
    assert np.abs(x - st.truth["x_m"]).max() < 1e-6
    assert np.abs(y - st.truth["y_m"]).max() < 1e-6
    np.testing.assert_array_equal(st.columns["speed_kmh"], st.truth["speed_mps"] * 3.6)
    geo = link_geometry(tiny)
    np.testing.assert_array_equal(st.columns["heading_deg"],
                                  geo.heading_deg[st.truth["link"]] % 360.0)
    # Truth positions are the link geometry's positions of the truth state.
    tx, ty = geo.positions_xy(st.truth["link"], st.truth["lane"], st.truth["pos_m"])
    np.testing.assert_array_equal(tx, st.truth["x_m"])
    np.testing.assert_array_equal(ty, st.truth["y_m"])
    np.testing.assert_array_equal(st.columns["time_received_s"], st.columns["time_sent_s"])


# ---------------------------------------------------------------------------
# 3. Latency and the feed
# ---------------------------------------------------------------------------

LATE = dataclasses.replace(EXACT, latency_fixed_s=5.0, latency_jitter_s=25.0)


def test_latency_is_fixed_plus_uniform_jitter_and_reorders_points(tiny):
    _, sampler = sample(tiny, LATE)
    st = sampler.stream()
    sent, recv = st.columns["time_sent_s"], st.columns["time_received_s"]
    delay = recv - sent
    n = len(st)
    assert delay.min() >= 5.0 and delay.max() <= 30.0
    # Uniform on [5, 30]: mean 17.5, sd 25/sqrt(12); the extremes of n > 1000
    # uniform draws lie within 25 * 20 / n of the ends (P ~ e^-20).
    assert abs(delay.mean() - 17.5) <= Z * 25 / math.sqrt(12 * n)
    assert delay.min() - 5.0 < 25 * 20 / n and 30.0 - delay.max() < 25 * 20 / n
    # The stream is in order of sending; with jitter (25 s) > period (5 s)
    # receipt order differs, also for one vehicle's own points.
    assert np.all(np.diff(sent) >= 0)
    assert np.any(np.diff(recv) < 0)
    vids = st.truth["vid"]
    reordered = [v for v in np.unique(vids) if np.any(np.diff(recv[vids == v]) < 0)]
    assert len(reordered) > 10


def test_feed_delivers_each_point_once_in_order_of_receipt(tiny):
    # A consumer polls the feed after every step (hooks run in the order they
    # were added, so after the sampler): every call returns exactly the points
    # received in (previous t, t], sorted by receipt.
    ctrl = make_controller("fixed", tiny)
    sim = Simulation(tiny, ctrl, seed=tiny.seed, record_trajectories=False)
    sampler = ProbeSampler(tiny, LATE, sim.arrivals, link_geometry(tiny),
                           np.random.default_rng(sim.streams["probes"]))
    sampler.attach(sim)
    calls: list[tuple[float, dict]] = []
    sim.add_step_hook(lambda view: calls.append((view.t_s, sampler.feed.deliver(view.t_s))))
    sim.run()
    calls.append((np.inf, sampler.feed.deliver(np.inf)))
    prev = -np.inf
    got = []
    for t, pts in calls:
        r = pts.get("time_received_s", np.empty(0))
        assert np.all((r > prev) & (r <= t))
        assert np.all(np.diff(r) >= 0)
        got += list(zip(pts.get("time_sent_s", []), pts.get("pseudonym", []),
                        r.tolist(), strict=True))
        prev = t
    st = sampler.stream()
    expected = list(zip(st.columns["time_sent_s"], st.columns["pseudonym"],
                        st.columns["time_received_s"].tolist(), strict=True))
    assert len(got) == len(expected) == len(set(expected))
    assert sorted(got) == sorted(expected)
    assert len(sampler.feed.deliver(np.inf).get("time_sent_s", [])) == 0


def test_points_do_not_depend_on_when_the_feed_is_read(tiny):
    # The sampler keeps each step's reports raw and makes the points in one
    # batch when the feed is read: reading it after every step (one batch
    # per step) or never until the end (one batch) must give the same points,
    # bit for bit, with every random effect on (the draws are per step).
    settings = dataclasses.replace(tiny.probes, penetration=0.5, period_s=2.0,
                                   dropout=0.3, latency_jitter_s=20.0, trim_m=30.0,
                                   anonymisation="rotating", rotation_s=60.0)
    streams = []
    for every_step in (True, False):
        ctrl = make_controller("fixed", tiny)
        sim = Simulation(tiny, ctrl, seed=tiny.seed, record_trajectories=False)
        sampler = ProbeSampler(tiny, settings, sim.arrivals, link_geometry(tiny),
                               np.random.default_rng(sim.streams["probes"]))
        sampler.attach(sim)
        if every_step:
            sim.add_step_hook(lambda view, s=sampler: s.feed.deliver(view.t_s))
        sim.run()
        streams.append((sampler.stream(), sampler._n_batches))
    (per_step, batches), (at_end, one) = streams
    assert one == 1 and batches > 100   # the two really batch differently
    assert len(per_step) > 100
    _assert_same_stream(per_step, at_end)


def _assert_same_stream(one, other) -> None:
    """The two probe streams hold the same points and truth, bit for bit."""
    for part in ("columns", "truth"):
        a, b = getattr(one, part), getattr(other, part)
        assert list(a) == list(b)
        for k in a:
            assert a[k].dtype == b[k].dtype, k
            np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def test_blocks_of_steps_give_the_points_of_single_steps(tiny):
    # ``on_steps`` (an engine that hands its hooks blocks of steps) picks the
    # due vehicles of a whole block at once: the draws and the points must be
    # those of ``on_step`` called on each step, bit for bit, however the steps
    # are cut into blocks.
    settings = dataclasses.replace(tiny.probes, penetration=0.5, period_s=2.0,
                                   dropout=0.3, latency_jitter_s=20.0, trim_m=30.0,
                                   anonymisation="rotating", rotation_s=60.0)
    ctrl = make_controller("fixed", tiny)
    sim = Simulation(tiny, ctrl, seed=tiny.seed, record_trajectories=False)

    def sampler():
        return ProbeSampler(tiny, settings, sim.arrivals, link_geometry(tiny),
                            np.random.default_rng(sim.streams["probes"]))

    single = sampler()
    steps = []
    sim.add_step_hook(single.on_step)
    sim.add_step_hook(lambda v: steps.append((v.t_s, v.vid.copy(), v.link.copy(),
                                              v.lane.copy(), v.route_pos.copy(),
                                              v.pos_m.copy(), v.speed_mps.copy())))
    sim.run()
    blocks = sampler()
    cuts = np.cumsum(np.random.default_rng(0).integers(1, 40, len(steps)))
    for a, b in zip([0, *cuts.tolist()], cuts.tolist(), strict=False):
        part = steps[a:b]
        if not part:
            break
        blocks.on_steps(np.array([p[0] for p in part]),
                        np.array([len(p[1]) for p in part], dtype=np.int64),
                        *(np.concatenate([p[k] for p in part]) for k in range(1, 7)))
    one, many = single.stream(), blocks.stream()
    assert len(one) > 100
    _assert_same_stream(one, many)


def test_feed_unit_carry_and_repeated_calls():
    feed = ProbeFeed(["time_sent_s", "time_received_s"])
    empty = feed.deliver(10.0)
    assert set(empty) == {"time_sent_s", "time_received_s"}
    assert all(len(v) == 0 for v in empty.values())
    feed.push({"time_sent_s": np.array([0.0, 1.0, 2.0]),
               "time_received_s": np.array([9.0, 3.0, 5.0])})
    out = feed.deliver(4.0)
    np.testing.assert_array_equal(out["time_received_s"], [3.0])
    feed.push({"time_sent_s": np.array([4.0]), "time_received_s": np.array([4.5])})
    out = feed.deliver(6.0)
    np.testing.assert_array_equal(out["time_received_s"], [4.5, 5.0])
    np.testing.assert_array_equal(out["time_sent_s"], [4.0, 2.0])
    out = feed.deliver(8.0)
    assert len(out["time_received_s"]) == 0          # 9.0 still pending
    out = feed.deliver(9.0)
    np.testing.assert_array_equal(out["time_received_s"], [9.0])
    assert all(len(v) == 0 for v in feed.deliver(100.0).values())


# ---------------------------------------------------------------------------
# 4. Trip ends
# ---------------------------------------------------------------------------

def test_no_point_within_the_trimmed_trip_ends(tiny):
    # tiny: W_in (400 m) -> E_out (200 m), S_in (300 m) -> N_out (200 m).
    # With trim 150 m nothing is reported before 150 m on the entry links nor
    # after 200 - 150 = 50 m on the exit links. With trim 0, points there exist.
    ids = [lk.id for lk in tiny.links]
    entry = np.isin(np.arange(len(ids)), [ids.index("W_in"), ids.index("S_in")])
    for trim, expect_inside in ((150.0, False), (0.0, True)):
        _, sampler = sample(tiny, dataclasses.replace(EXACT, period_s=1.0, trim_m=trim))
        t = sampler.stream().truth
        on_entry = entry[t["link"]]
        in_start = on_entry & (t["pos_m"] < 150.0)
        in_end = ~on_entry & (t["pos_m"] > 50.0)
        assert bool(in_start.any()) is expect_inside, trim
        assert bool(in_end.any()) is expect_inside, trim
        if trim:
            # The limits themselves are reached within one step at 50 km/h (7 m).
            assert t["pos_m"][on_entry].min() < 160.0
            assert t["pos_m"][~on_entry].max() > 43.0


# ---------------------------------------------------------------------------
# 5. Anonymisation
# ---------------------------------------------------------------------------

def test_rotating_pseudonyms_live_at_most_the_rotation_period(tiny):
    rotation = 20.0
    settings = dataclasses.replace(EXACT, period_s=1.0, anonymisation="rotating",
                                   rotation_s=rotation)
    _, sampler = sample(tiny, settings)
    st = sampler.stream()
    p, t, vid = st.columns["pseudonym"], st.columns["time_sent_s"], st.truth["vid"]
    assert all(re.fullmatch(r"p[0-9a-f]{16}", s) for s in set(p.tolist()))
    per_pseudonym: dict[str, list[int]] = {}
    spans = []
    for name in set(p.tolist()):
        sel = p == name
        spans.append(t[sel].max() - t[sel].min())
        per_pseudonym[name] = sorted(set(vid[sel].tolist()))
    assert max(spans) < rotation
    # One vehicle per pseudonym: pseudonyms of different vehicles differ.
    assert all(len(v) == 1 for v in per_pseudonym.values())
    # Long trips (40-100 s here) get several pseudonyms.
    n_per_vid = np.bincount([v[0] for v in per_pseudonym.values()])
    assert n_per_vid.max() >= 3
    assert (n_per_vid[np.flatnonzero(n_per_vid)] >= 2).mean() > 0.9
    # The rotation instants have a random phase per vehicle: the times of the
    # first point under each later pseudonym are spread over the period.
    changes = []
    for v in np.unique(vid)[:50]:
        sel = vid == v
        pv, tv = p[sel], t[sel]
        changes += [tv[i] % rotation for i in range(1, len(pv)) if pv[i] != pv[i - 1]]
    assert np.std(changes) > rotation / 6


def test_pseudonyms_are_keyed_by_salt():
    vid = np.array([0, 1, 0, 1])
    epoch = np.array([0, 0, 1, 1])
    a = pseudonyms(123, vid, epoch)
    assert len(set(a.tolist())) == 4
    np.testing.assert_array_equal(a, pseudonyms(123, vid, epoch))
    assert not set(a.tolist()) & set(pseudonyms(124, vid, epoch).tolist())


def test_idless_has_no_pseudonym_column_anywhere(tiny, tmp_path):
    settings = dataclasses.replace(EXACT, anonymisation="idless")
    _, sampler = sample(tiny, settings)
    st = sampler.stream()
    assert len(st) > 0
    assert "pseudonym" not in st.columns
    frame = stream_to_frame(st, tiny)
    assert "pseudonym" not in frame.columns
    write_probes(frame, tmp_path / "p.csv")
    write_probes(frame, tmp_path / "p.parquet")
    header = (tmp_path / "p.csv").read_text(encoding="utf-8").splitlines()[0].split(",")
    assert "pseudonym" not in header
    import pyarrow.parquet as pq

    assert "pseudonym" not in pq.read_schema(tmp_path / "p.parquet").names


def test_raw_mode_reports_vehicle_ids(tiny):
    _, sampler = sample(tiny, EXACT)
    st = sampler.stream()
    assert st.columns["pseudonym"].tolist() == [f"veh{v}" for v in st.truth["vid"].tolist()]


# ---------------------------------------------------------------------------
# 6. Determinism and common random numbers
# ---------------------------------------------------------------------------

def test_same_seed_gives_an_identical_stream(tiny):
    settings = dataclasses.replace(tiny.probes, penetration=0.4, anonymisation="rotating")
    _, a, _ = run_with_probes(tiny, "fixed", seed=3, probes=settings)
    _, b, _ = run_with_probes(tiny, "fixed", seed=3, probes=settings)
    assert len(a) > 0
    for k in a.columns:
        np.testing.assert_array_equal(a.columns[k], b.columns[k], err_msg=k)
    for k in a.truth:
        np.testing.assert_array_equal(a.truth[k], b.truth[k], err_msg=k)


def test_controllers_on_one_seed_share_the_probe_vehicles(tiny):
    settings = dataclasses.replace(tiny.probes, penetration=0.3)
    r_fixed, s_fixed = sample(tiny, settings, controller="fixed", seed=4)
    r_tod, s_tod = sample(tiny, settings, controller="tod", seed=4)
    # The runs differ (tod switches to the peak program at 07:05) ...
    assert not np.array_equal(r_fixed.exit_s, r_tod.exit_s)
    # ... but the probe vehicles, their phases and the salt are the same.
    np.testing.assert_array_equal(s_fixed.equipped, s_tod.equipped)
    np.testing.assert_array_equal(s_fixed.phase, s_tod.phase)
    assert s_fixed.salt == s_tod.salt
    assert set(s_fixed.stream().truth["vid"].tolist()) == \
        set(s_tod.stream().truth["vid"].tolist())
    # Another seed is another day with other probe vehicles.
    _, s_other = sample(tiny, settings, controller="fixed", seed=5)
    n = min(len(s_other.equipped), len(s_fixed.equipped))
    assert not np.array_equal(s_other.equipped[:n], s_fixed.equipped[:n])
