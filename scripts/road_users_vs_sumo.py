"""What cyclists and pedestrians cost motor traffic, in gpssignal and in SUMO.

Runs the default scenario's fixed-timing cross-check on one day three times:
without pedestrians and cyclists, with cyclists only, with both (their flows
set to 0, the signals unchanged), and prints motor time loss and the peak
stretch speed in both simulators (docs/validation.md, "Cyclists and
pedestrians against SUMO"). Needs the ``sumo`` extra; about 3 min on 2 cores.

    .venv/bin/python scripts/road_users_vs_sumo.py [SEED] [DAY_TYPE]
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from gpssignal.interop.compare import compare_fixed, scaled_day, without_road_users
from gpssignal.model.io import read_scenario

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    """Print the table."""
    seed = int(sys.argv[1]) if len(sys.argv) > 1 else 1001
    day_type = sys.argv[2] if len(sys.argv) > 2 else "ordinary"
    sc = read_scenario(REPO / "scenarios" / "vallensbaek.toml")
    cases = {"no pedestrians, no cyclists": without_road_users(sc),
             "cyclists, no pedestrians": without_road_users(sc, cyclists=False),
             "cyclists and pedestrians": sc}
    print(f"seed {seed}, {day_type} day | time loss s/veh gpssignal, SUMO | "
          "peak stretch speed km/h gpssignal, SUMO")
    for name, case in cases.items():
        with tempfile.TemporaryDirectory() as work:
            df = compare_fixed(scaled_day(case, 1.0, day_type), [seed], work)
        g = df[df["simulator"] == "gpssignal"].iloc[0]
        s = df[df["simulator"] == "sumo"].iloc[0]
        print(f"{name:28s} | {g['mean_time_loss_s']:6.1f} {s['mean_time_loss_s']:6.1f} | "
              f"{g['stretch_speed_peak_kmh']:5.1f} {s['stretch_speed_peak_kmh']:5.1f}")


if __name__ == "__main__":
    main()
