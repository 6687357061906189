"""Safety under the GPS controller (property test, docs/architecture.md#conventions):
whatever the thresholds, windows and dwell, the junction only changes program at a synchronisation
point, and nothing crosses on red.

The simulation's independent :class:`~gpssignal.sim.signals.ConflictMonitor`
checks every signal change and raises ``SafetyViolation`` on a conflicting
green, a cut intergreen or a short minimum green, so a run that completes is
itself part of the check.
"""

from __future__ import annotations

import dataclasses

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gpssignal.control.gps import model_from_scenario
from gpssignal.experiment.run import ControllerSpec, RunSpec, run_one

#: Tolerance for "on the cycle grid" [s]: switch times are sums of event
#: times that are whole or half seconds; 1e-6 s is far above float rounding
#: (~1e-12 s at these magnitudes) and far below the 0.5-s simulation step.
GRID_TOL_S = 1e-6


def off_grid_s(clock_s: float, offset_s: float, cycle_s: float) -> float:
    r = (clock_s - offset_s) % cycle_s
    return min(r, cycle_s - r)


@settings(max_examples=15, derandomize=True, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(low_fraction=st.floats(0.74, 0.95), hysteresis=st.floats(0.0, 4.0),
       window=st.sampled_from([20.0, 30.0, 60.0, 120.0]),
       dwell=st.sampled_from([0.0, 10.0, 30.0, 60.0, 120.0]),
       min_points=st.integers(1, 3), seed=st.integers(1, 50),
       peak_offset=st.sampled_from([0.0, 13.0, 30.0, 47.5]))
def test_gps_switches_are_safe_and_synchronised(tiny_relief, probes_30, low_fraction,
                                                hysteresis, window, dwell, min_points, seed,
                                                peak_offset) -> None:
    # Thresholds around tiny's stretch speeds (30-45 km/h at 30 % penetration),
    # short windows and dwell: the controller asks for changes often. The
    # relief program's offset is varied too, so a switch may need a hold to
    # reach the new program's grid.
    j = tiny_relief.junctions[0]
    progs = tuple(dataclasses.replace(p, offset_s=peak_offset) if p.name == "peak" else p
                  for p in j.programs)
    sc = dataclasses.replace(tiny_relief, junctions=(dataclasses.replace(j, programs=progs),))
    model = model_from_scenario(sc, low_fraction=low_fraction, hysteresis_kmh=hysteresis,
                                window_s=window, min_dwell_s=dwell, min_points=min_points)
    out = run_one(RunSpec(scenario=sc, controller=ControllerSpec(kind="gps", model=model),
                          seed=seed, probes=probes_30))
    result, ctrl = out.result, out.controller

    assert result.red_crossings == 0
    assert result.monitor_checks > 0
    assert len(ctrl.runtime.decision_log()) >= 1      # the controller did ask
    assert len(result.switches) >= 1
    prog = {p.name: p for p in progs}
    current = j.default_program
    for sw in result.switches:
        assert sw.junction == j.id
        assert sw.from_program == current             # switches chain up
        assert sw.to_program != sw.from_program
        old, new = prog[sw.from_program], prog[sw.to_program]
        clock = sc.start_clock_s + sw.t_s
        # Cycle second 0 of the old program ...
        assert off_grid_s(clock, old.offset_s, old.cycle_s) < GRID_TOL_S, sw
        # ... held until cycle second 0 of the new one.
        assert 0.0 <= sw.hold_s < new.cycle_s
        assert off_grid_s(clock + sw.hold_s, new.offset_s, new.cycle_s) < GRID_TOL_S, sw
        current = sw.to_program
