"""Time a whole command of two versions side by side, alternating: the 10-day evaluation by default.

Usage::

    .venv/bin/python benchmarks/compare_evaluation.py --base REV [--repeat 3] [--workers 2]
        [-- COMMAND ARGUMENTS...]

Checks ``REV`` out into a temporary git worktree, builds that version's
kernel library into a temporary folder (``gpssignal build-kernels`` with
``GPSSIGNAL_KERNELS``; the working tree uses its own, ``make kernels``), and
then, ``--repeat`` times in turn, runs the command with the base version and
with the working tree (``python -m gpssignal``, each in a fresh process,
``PYTHONPATH`` pointing at the version's ``src``), after one untimed run of
each (numba compiles the kernels of a new checkout). The default command is
the README's 10-day evaluation of the default scenario, figures and report
included. Prints each run's wall time, CPU time (user + system, the
process and its workers) and peak resident memory (the largest process),
the minimum of each version and the ratio, and whether every output file but
``run.log.json`` (the timings) is byte-identical between the versions. Not a
test: ``make bench`` runs the pytest-benchmark suite.
"""

from __future__ import annotations

import argparse
import filecmp
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: The README's 10-day evaluation (``--workers`` is added).
EVALUATION = ["evaluate", "scenarios/vallensbaek.toml", "--model", "data/vallensbaek_model.json",
              "--replications", "10", "--controllers", "fixed:normal,fixed:peak,tod,gps", "-q"]


#: Runs the command in a process of its own and prints its resource use, so
#: that the peak memory is this run's (``ru_maxrss`` of a process's children
#: is the largest of all it ever waited for).
_MEASURE = """
import resource, subprocess, sys, time
t0 = time.perf_counter()
subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL)
wall = time.perf_counter() - t0
r = resource.getrusage(resource.RUSAGE_CHILDREN)
print(wall, r.ru_utime + r.ru_stime, r.ru_maxrss / 1024)
"""


def _run(src: Path, command: list[str], out: Path, env: dict[str, str]
         ) -> tuple[float, float, float]:
    """Run ``python -m gpssignal COMMAND --out OUT``; return wall [s], CPU [s], peak [MiB].

    CPU is that of the command and its workers; the peak is the largest
    process's resident memory (Linux reports it in KiB).
    """
    res = subprocess.run([sys.executable, "-c", _MEASURE, sys.executable, "-m", "gpssignal",
                          *command, "--out", str(out)], cwd=ROOT,
                         env={**os.environ, **env, "PYTHONPATH": str(src)}, check=True,
                         capture_output=True, text=True)
    wall, cpu, peak = (float(x) for x in res.stdout.split())
    return wall, cpu, peak


def _differing(a: Path, b: Path) -> list[str]:
    """Return the files of ``a`` that differ from ``b`` or are missing there (timings aside)."""
    return [f.name for f in sorted(a.iterdir()) if f.name != "run.log.json"
            and not ((b / f.name).is_file() and filecmp.cmp(f, b / f.name, shallow=False))]


def main() -> None:
    """Parse the options, run both versions in turn, print the table."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--base", required=True, help="git revision to compare with")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--workers", type=int, default=2, help="for the default command")
    ap.add_argument("command", nargs="*", help="gpssignal command and its arguments, without "
                    "--out (default: the 10-day evaluation)")
    args = ap.parse_args()
    command = args.command or [*EVALUATION, "--workers", str(args.workers)]
    with tempfile.TemporaryDirectory() as tmp:
        wt, lib, outs = Path(tmp) / "base", Path(tmp) / "kernels", Path(tmp) / "out"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "-q", "--detach", str(wt),
                        args.base], check=True)
        try:
            lib.mkdir(mode=0o755)
            base_env = {"GPSSIGNAL_KERNELS": str(lib)}
            subprocess.run([sys.executable, "-m", "gpssignal", "build-kernels", "-q"], cwd=wt,
                           env={**os.environ, **base_env, "PYTHONPATH": str(wt / "src")},
                           check=False)
            versions = {"base": (wt / "src", base_env), "head": (ROOT / "src", {})}
            for name, (src, env) in versions.items():   # numba's cache of a new checkout
                _run(src, command, outs / f"{name}-warm-up", env)
            rows: dict[str, list[tuple[float, float, float]]] = {v: [] for v in versions}
            for k in range(args.repeat):
                for name, (src, env) in versions.items():
                    out = outs / f"{name}{k}"
                    rows[name].append(_run(src, command, out, env))
                    w, c, m = rows[name][-1]
                    print(f"{name} run {k + 1}: {w:.2f} s wall, {c:.2f} s CPU, {m:.0f} MiB",
                          flush=True)
            differ = _differing(outs / "base0", outs / "head0")
            print(f"base {args.base} vs working tree, {args.repeat} alternating runs of "
                  f"gpssignal {' '.join(command)}")
            for name in versions:
                w, c, m = (min(x[i] for x in rows[name]) for i in range(3))
                print(f"{name}: minimum {w:.2f} s wall, {c:.2f} s CPU, {m:.0f} MiB")
            ratio = min(x[0] for x in rows["base"]) / min(x[0] for x in rows["head"])
            print(f"base / head (minimum wall time): {ratio:.2f}")
            print("output files: " + ("byte-identical (run.log.json aside)" if not differ
                                      else "differ: " + ", ".join(differ)))
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(wt)],
                           check=False)


if __name__ == "__main__":
    main()
