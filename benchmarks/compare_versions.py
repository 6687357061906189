"""Time the simulator of two versions side by side, in one run, alternating.

Usage::

    .venv/bin/python benchmarks/compare_versions.py --base REV [--repeat 5]
        [--scenario PATH ...]

Checks ``REV`` out into a temporary git worktree and, ``--repeat`` times in
turn, runs one simulated day of each scenario (its fixed-time controller,
seed 1, no trajectories) with the base version and with the working tree,
each in a fresh Python process after one warm-up run in that process (so
numba's compilation is not timed). A scenario is given as ``PATH`` (both
versions run the same file) or ``BASE_PATH:HEAD_PATH`` (each runs its own,
e.g. the default scenario before and after a re-model); a path starting
``@base/`` is read from the base version's checkout. Prints the minimum
and median wall time per version and the ratio head / base. Not a test:
``make bench`` runs the pytest-benchmark suite.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

_TIMER = """
import sys, time
from gpssignal.control.fixed import FixedTimeController
from gpssignal.model.io import read_scenario
from gpssignal.sim.engine import Simulation
sc = read_scenario(sys.argv[1])
def day():
    return Simulation(sc, FixedTimeController(sc), 1, record_trajectories=False).run()
day()
t0 = time.perf_counter()
day()
print(time.perf_counter() - t0)
"""


def _time(src: Path, scenario: Path) -> float:
    env = {**os.environ, "PYTHONPATH": str(src)}
    out = subprocess.run([sys.executable, "-c", _TIMER, str(scenario)], env=env, check=True,
                         capture_output=True, text=True)
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    """Parse the options, time both versions, print the table."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--base", required=True, help="git revision to compare with")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--scenario", action="append",
                    help="PATH or BASE_PATH:HEAD_PATH (default: scenarios/vallensbaek.toml "
                         "of each version)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        wt = Path(tmp) / "base"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "-q", "--detach", str(wt),
                        args.base], check=True)
        try:
            pairs = []
            for spec in args.scenario or [f"{wt}/scenarios/vallensbaek.toml:"
                                          f"{ROOT}/scenarios/vallensbaek.toml"]:
                base, _, head = spec.partition(":")
                base, head = (x.replace("@base/", f"{wt}/") for x in (base, head or base))
                pairs.append((Path(base), Path(head)))
            times: dict[tuple[int, str], list[float]] = {}
            for _ in range(args.repeat):
                for k, (base, head) in enumerate(pairs):
                    times.setdefault((k, "base"), []).append(_time(wt / "src", base))
                    times.setdefault((k, "head"), []).append(_time(ROOT / "src", head))
            print(f"base {args.base} vs working tree, {args.repeat} alternating runs each, "
                  "one simulated day, in-process wall time after a warm-up [s]")
            for k, (base, head) in enumerate(pairs):
                b, h = times[(k, "base")], times[(k, "head")]
                print(f"{base.name} -> {head.name}: base min {min(b):.3f} median "
                      f"{statistics.median(b):.3f} | head min {min(h):.3f} median "
                      f"{statistics.median(h):.3f} | head/base (min) {min(h) / min(b):.2f}")
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(wt)],
                           check=False)


if __name__ == "__main__":
    main()
