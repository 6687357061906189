"""Command line: ``gpssignal run``, ``gpssignal validate``. Thin: parses, calls, prints."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

__all__ = ["main"]

log = logging.getLogger("gpssignal")


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (exit code 2)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


class _Progress:
    """A one-line progress bar on stderr, shown only on a terminal and only
    once a run has taken more than a second."""

    def __init__(self, label: str, enabled: bool) -> None:
        self.label = label
        self.enabled = enabled and sys.stderr.isatty()
        self.t0 = time.perf_counter()
        self.shown = False

    def __call__(self, fraction: float) -> None:
        if not self.enabled or time.perf_counter() - self.t0 < 1.0:
            return
        width = 30
        done = int(round(fraction * width))
        sys.stderr.write(f"\r{self.label} [{'#' * done}{'.' * (width - done)}] "
                         f"{fraction * 100:3.0f}%")
        sys.stderr.flush()
        self.shown = True

    def close(self) -> None:
        if self.shown:
            sys.stderr.write("\r" + " " * 60 + "\r")
            sys.stderr.flush()


def _fmt(x: object) -> str:
    if isinstance(x, float):
        if x != x:  # NaN
            return "-"
        return f"{x:,.1f}" if abs(x) < 1e5 else f"{x:,.0f}"
    return str(x)


def _print_table(rows: list[list[object]], header: list[str]) -> None:
    cells = [header] + [[_fmt(c) for c in r] for r in rows]
    widths = [max(len(r[k]) for r in cells) for k in range(len(header))]
    for n, r in enumerate(cells):
        print("  ".join(c.ljust(w) if k == 0 else c.rjust(w)
                        for k, (c, w) in enumerate(zip(r, widths, strict=True))))
        if n == 0:
            print("  ".join("-" * w for w in widths))


def _cmd_validate(args: argparse.Namespace) -> int:
    from gpssignal.model.io import format_clock, read_scenario, scenario_hash

    sc = read_scenario(args.scenario)
    n = sum(sum(f.flow_vph) * sc.demand.interval_s / 3600.0 for f in sc.demand.flows)
    print(f"{args.scenario}: valid scenario '{sc.name}' (hash {scenario_hash(sc)})")
    print(f"  {len(sc.junctions)} junction(s), {len(sc.links)} links, "
          f"{len(sc.demand.flows)} demand flows, ~{n:,.0f} vehicles expected, "
          f"{format_clock(sc.start_clock_s)}-{format_clock(sc.end_clock_s)}")
    for j in sc.junctions:
        progs = ", ".join(f"{p.name} ({p.cycle_s:g} s)" for p in j.programs)
        print(f"  {j.id} {j.name}: groups {', '.join(j.groups)}; programs {progs}")
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from gpssignal.evaluate.io import write_tables
    from gpssignal.evaluate.metrics import run_tables
    from gpssignal.experiment.run import make_controller, run_scenario
    from gpssignal.model.io import read_scenario

    if args.program is not None and args.controller != "fixed":
        raise _UsageError(f"--program = {args.program!r}: only with --controller fixed")
    sc = read_scenario(args.scenario)
    ctrl = make_controller(args.controller, sc, program=args.program)
    seed = sc.seed if args.seed is None else args.seed
    out = Path(args.out) if args.out else Path("results") / f"{sc.name}-{ctrl.name}-seed{seed}"
    _check_out_dir(out, "--out")
    bar = _Progress(f"{sc.name} {ctrl.name}", enabled=not args.quiet)
    t0 = time.perf_counter()
    try:
        result, meta = run_scenario(sc, ctrl, seed=seed, record_trajectories=args.trajectories,
                                    progress=bar)
    finally:
        bar.close()
    tables = run_tables(result)
    if args.trajectories and result.trajectories is not None:
        import pandas as pd

        tr = pd.DataFrame(result.trajectories)
        tr["link"] = pd.Categorical.from_codes(tr["link"], result.network.link_ids)
        tables["trajectories"] = tr
    info = meta.as_dict()
    info.update({"scenario_file": str(args.scenario), "in_network_at_end": result.in_network,
                 "waiting_at_end": result.waiting, "signal_checks": result.monitor_checks,
                 "red_crossings": result.red_crossings, "end_s": result.end_s,
                 "program_switches": len(result.switches)})
    try:
        files = write_tables(tables, out, info, csv=not args.no_csv)
    except OSError as exc:
        raise _UsageError(f"--out = {str(out)!r}: cannot write ({exc.strerror or exc})") \
            from None
    wall = time.perf_counter() - t0
    if args.quiet:
        return 0
    s = tables["summary"]
    cols = [c for c in ("period", "peak_hour") if c in s.columns]
    print(f"gpssignal {meta.version} | scenario {sc.name} ({meta.scenario_hash}) | controller "
          f"{ctrl.name} | seed {seed} | day: demand x{meta.demand_level:.3f}, peak shift "
          f"{meta.peak_shift_s:+.0f} s")
    print()
    _print_table([[r["kpi"], r["unit"], *[r[c] for c in cols]] for _, r in s.iterrows()],
                 ["kpi", "unit", *cols])
    print()
    a = tables["approaches"]
    _print_table([[r["junction"], r["approach_link"], r["crossings"], r["control_delay_s"],
                   r["los"], r["queue_mean_m"], r["queue_p95_m"], r["queue_max_m"]]
                  for _, r in a.iterrows()],
                 ["junction", "approach", "veh", "delay_s", "LOS", "q_mean_m", "q_p95_m",
                  "q_max_m"])
    print()
    print(f"signal states checked: {result.monitor_checks:,} (no violation); program switches: "
          f"{len(result.switches)}; simulated {result.end_s:,.0f} s in {result.wall_s:.2f} s")
    print(f"definitions: docs/definitions.md | results ({len(files)} files, {wall:.1f} s): "
          f"{out}")
    return 0


class _UsageError(Exception):
    """A bad command-line value; reported as one line, exit code 2."""


def _check_out_dir(out: Path, option: str) -> None:
    """Fail early, before any work, if ``out`` cannot become a folder."""
    if out.exists() and not out.is_dir():
        raise _UsageError(f"{option} = {str(out)!r}: exists and is not a folder")
    for parent in out.parents:
        if parent.exists():
            if not parent.is_dir():
                raise _UsageError(f"{option} = {str(out)!r}: {str(parent)!r} is not a folder")
            break


def _seed(text: str) -> int:
    """argparse type: a seed is an integer >= 0."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid seed {text!r}: must be an integer >= 0") \
            from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"invalid seed {text!r}: must be an integer >= 0")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The ``gpssignal`` argument parser."""
    from gpssignal import __version__

    p = _Parser(prog="gpssignal", description="Simulate signalised junctions controlled by "
                "GPS probe speeds and measure time loss against fixed timing.")
    p.add_argument("--version", action="version", version=f"gpssignal {__version__}")
    p.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    run = sub.add_parser("run", help="simulate one day of a scenario and write its results",
                         description="Simulate one day (one seed) of SCENARIO under a "
                         "controller; write per-vehicle, per-interval, per-approach and "
                         "per-movement tables (Parquet and CSV) and meta.json to --out, "
                         "and print a summary.")
    run.add_argument("scenario", help="scenario TOML file, e.g. scenarios/vallensbaek.toml")
    run.add_argument("--controller", default="fixed", choices=["fixed", "tod"],
                     help="fixed: one program all day (default: each junction's default "
                     "program); tod: the scenario's time-of-day schedule (default: fixed)")
    run.add_argument("--program", default=None,
                     help="with --controller fixed: the program to run at every junction")
    run.add_argument("--seed", type=_seed, default=None,
                     help="the simulated day (default: the scenario's seed)")
    run.add_argument("--out", default=None,
                     help="output folder (default: results/SCENARIO-CONTROLLER-seedN)")
    run.add_argument("--trajectories", action="store_true",
                     help="also write every vehicle's state at every step (large)")
    run.add_argument("--no-csv", action="store_true", help="write Parquet only")
    run.add_argument("-q", "--quiet", action="store_true", help="print nothing")
    run.set_defaults(func=_cmd_run)

    val = sub.add_parser("validate", help="check a scenario file and describe it",
                         description="Load and validate SCENARIO; print what it contains.")
    val.add_argument("scenario", help="scenario TOML file")
    val.set_defaults(func=_cmd_validate)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``gpssignal`` command."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    from gpssignal.model.scenario import ScenarioError
    from gpssignal.sim.signals import SafetyViolation

    try:
        return int(args.func(args))
    except (ScenarioError, _UsageError) as exc:
        print(f"gpssignal {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except SafetyViolation as exc:
        print(f"gpssignal {args.command}: signal safety violation (a bug, please report): "
              f"{exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        # Output piped into a command that stopped reading (e.g. `| head`).
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print(f"gpssignal {args.command}: interrupted; no output written", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
