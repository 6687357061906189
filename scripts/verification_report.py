"""Print the simulator's verification figures against theory.

The same set-ups as tests/sim/test_sim_theory.py, with the numbers printed
instead of asserted. Run: ``.venv/bin/python scripts/verification_report.py``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "sim"))

from conftest import one_approach_scenario  # noqa: E402
from test_sim_theory import CAR, _per_vehicle, _webster_delay_s  # noqa: E402

from gpssignal.experiment import run_scenario  # noqa: E402


def main() -> None:
    """Print the measured saturation flow and delays beside their theory."""
    sc = one_approach_scenario(flow_vph=2400, duration_s=1800, time_headway_s=CAR.time_headway_s,
                               max_accel_mps2=CAR.max_accel_mps2,
                               comfortable_decel_mps2=CAR.comfortable_decel_mps2)
    r, _ = run_scenario(sc, "fixed", seed=1, record_trajectories=False)
    h = np.diff(np.sort(r.passages["t_s"]))
    platoon = np.array([i >= 4 and (h[i - 4:i + 1] < 4.0).all() for i in range(len(h))])
    print(f"saturation flow (default car, 5th vehicle on): {3600 / h[platoon].mean():.0f} "
          f"veh/h/lane from {platoon.sum()} headways")
    print("signal delay vs Webster (cycle 60 s, green 30 s, s = 1,850 veh/h, 3 seeds):")
    for q in (300, 450, 600, 750):
        d = []
        for seed in (1, 2, 3):
            r, _ = run_scenario(one_approach_scenario(flow_vph=q, green=(0.0, 30.0)), "fixed",
                                seed=seed, record_trajectories=False)
            r0, _ = run_scenario(one_approach_scenario(flow_vph=q, permanent=True), "fixed",
                                 seed=seed, record_trajectories=False)
            a = _per_vehicle(r, r.passages["control_delay_s"], r.passages["vid"])
            b = _per_vehicle(r0, r0.passages["control_delay_s"], r0.passages["vid"])
            d.append(a - b)
        x = np.concatenate(d)
        x = x[~np.isnan(x)]
        d1, full = _webster_delay_s(60.0, 30.0, q / 3600.0, 1850.0 / 3600.0)
        print(f"  q = {q:4d} veh/h: simulated {x.mean():5.2f} ± {x.std() / np.sqrt(x.size):.2f} s"
              f" | Webster d1 {d1:5.2f} s, full {full:5.2f} s | ratio {x.mean() / full:.2f}")
    r, _ = run_scenario(one_approach_scenario(flow_vph=30, permanent=True, speed_factor_sd=0.0,
                                              duration_s=7200.0), "fixed", seed=4)
    tl = (r.exit_s - r.depart_s) - r.arrivals.free_flow_time_s + (r.depart_s - r.arrivals.t_s)
    iso = np.diff(r.arrivals.t_s, prepend=-np.inf) >= 60
    print(f"empty always-green road: max |time loss| of {iso.sum()} isolated vehicles "
          f"{np.abs(tl[iso]).max():.2e} s; mean over all {np.nanmean(tl):.3f} s")


if __name__ == "__main__":
    main()
