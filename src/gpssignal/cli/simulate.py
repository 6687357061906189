"""Simulating days: ``run``, ``probes``, ``history`` and ``validate``."""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gpssignal.cli.common import (
    RUN_LOG,
    Progress,
    UsageError,
    check_date,
    check_model_scenario,
    check_out_dir,
    decision_frame,
    limit_options,
    load_scenario,
    other_scenario_option,
    parallel_backend,
    parallel_options,
    print_table,
    quiet_options,
    run_log,
    seed,
    split_volatile,
    workers,
    write_or_fail,
)

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from gpssignal.experiment.run import ControllerSpec, RunOutput
    from gpssignal.model.scenario import ProbeSettings, Scenario
    from gpssignal.sim.engine import SimResult

__all__ = ["register"]

_PROBE_OVERRIDES = {
    # option: (ProbeSettings field, type, help)
    "--penetration": ("penetration", float, "share of vehicles that report, 0-1"),
    "--period": ("period_s", float, "reporting period [s]"),
    "--position-sigma": ("position_sigma_m", float, "GPS position error sd per axis [m]"),
    "--speed-sigma": ("speed_sigma_kmh", float, "speed error sd [km/h]"),
    "--dropout": ("dropout", float, "probability that a report is lost, 0-1"),
    "--latency": ("latency_fixed_s", float, "fixed delivery delay [s]"),
    "--latency-jitter": ("latency_jitter_s", float, "extra uniform delay 0..J [s]"),
    "--anonymisation": ("anonymisation", str, "idless | rotating | raw (tests only)"),
    "--rotation": ("rotation_s", float, "pseudonym lifetime in rotating mode [s]"),
    "--trim": ("trim_m", float, "metres never reported at each trip end [m]"),
}


def _probe_options() -> argparse.ArgumentParser:
    """Return the probe-feed overrides of ``probes`` and ``history``."""
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_argument_group("probe feed (defaults: the scenario's [probes])")
    for opt, (_, typ, help_) in _PROBE_OVERRIDES.items():
        g.add_argument(opt, type=typ, default=None, help=help_)
    return p


def _probe_settings(args: argparse.Namespace, scenario: Scenario) -> ProbeSettings:
    """Return the scenario's ``[probes]`` with the options given (validated by ProbeSettings)."""
    changes = {}
    for opt, (fieldname, _, _) in _PROBE_OVERRIDES.items():
        value = getattr(args, opt.lstrip("-").replace("-", "_"))
        if value is not None:
            changes[fieldname] = value
    return dataclasses.replace(scenario.probes, **changes)


# ---------------------------------------------------------------------------
# run
# ---------------------------------------------------------------------------

def _controller_spec(args: argparse.Namespace, scenario: Scenario) -> ControllerSpec:
    """Return ``--controller``, ``--program`` and ``--model`` as a spec."""
    from gpssignal.experiment.run import ControllerSpec

    if args.program is not None and args.controller != "fixed":
        raise UsageError(f"--program = {args.program!r}: only with --controller fixed")
    if (args.model is None) != (args.controller != "gps"):
        raise UsageError(f"--model = {args.model!r}: needed with --controller gps, and only "
                         "with it")
    model = None
    if args.model is not None:
        from gpssignal.control.io import read_model

        model = check_model_scenario(read_model(args.model), scenario, args)
    return ControllerSpec(kind=args.controller, program=args.program, model=model)


def _trajectory_frame(columns: dict[str, np.ndarray], link_ids: list[str]) -> pd.DataFrame:
    """Return trajectory columns with link ids (``link_ids[link]``) instead of link indices."""
    import pandas as pd

    tr = pd.DataFrame(columns)
    tr["link"] = pd.Categorical.from_codes(tr["link"], link_ids)
    return tr


def _run_outputs(run: RunOutput, args: argparse.Namespace
                 ) -> tuple[dict[str, pd.DataFrame], dict[str, Any]]:
    """Return the tables and the meta.json of ``gpssignal run``."""
    from gpssignal.control.gps import GpsController
    from gpssignal.evaluate.metrics import run_tables

    result = run.result
    tables = run_tables(result)
    info = run.meta.as_dict()
    if isinstance(run.controller, GpsController):
        rt = run.controller.runtime
        tables["decisions"] = decision_frame(rt)
        info.update({"model_file": str(args.model), "probe_points": rt.points_in,
                     "probe_points_matched": rt.points_matched,
                     "stale_fallbacks": rt.stale_events})
    info.update({"scenario_file": str(args.scenario), "in_network_at_end": result.in_network,
                 "waiting_at_end": result.waiting, "signal_checks": result.monitor_checks,
                 "red_crossings": result.red_crossings,
                 "red_clearances": result.red_clearances,
                 "emergency_brakings": result.emergency_brakings, "end_s": result.end_s,
                 "program_switches": len(result.switches)})
    return tables, info


def _print_run(run: RunOutput, tables: dict[str, pd.DataFrame], args: argparse.Namespace,
               files: list[Path], out: Path, wall_s: float) -> None:
    meta, result = run.meta, run.result
    s = tables["summary"]
    cols = [c for c in ("period", "peak_hour") if c in s.columns]
    print(f"gpssignal {meta.version} | scenario {meta.scenario} ({meta.scenario_hash}) | "
          f"controller {args.controller} | seed {meta.seed} | day: demand "
          f"x{meta.demand_level:.3f}, peak shift {meta.peak_shift_s:+.0f} s")
    print()
    print_table([[r["kpi"], r["unit"], *[r[c] for c in cols]] for _, r in s.iterrows()],
                ["kpi", "unit", *cols])
    print()
    a = tables["approaches"]
    print_table([[r["junction"], r["approach_link"], r["crossings"], r["control_delay_s"],
                  r["los"], r["queue_mean_m"], r["queue_p95_m"], r["queue_max_m"]]
                 for _, r in a.iterrows()],
                ["junction", "approach", "veh", "delay_s", "LOS", "q_mean_m", "q_p95_m",
                 "q_max_m"])
    print()
    print(f"signal states checked: {result.monitor_checks:,} (no violation); program switches: "
          f"{len(result.switches)}; red crossings: {result.red_crossings} (and "
          f"{result.red_clearances} turners clearing after red); emergency "
          f"brakings: {result.emergency_brakings}; simulated {result.end_s:,.0f} s in "
          f"{result.wall_s:.2f} s")
    print(f"definitions: docs/definitions.md | results ({len(files)} files, {wall_s:.1f} s): "
          f"{out}")


def _cmd_run(args: argparse.Namespace) -> int:
    from gpssignal.evaluate.io import TableStream, write_tables
    from gpssignal.experiment.run import RunSpec, run_one

    sc = load_scenario(args)
    day = sc.seed if args.seed is None else args.seed
    out = Path(args.out) if args.out else \
        Path("results") / f"{sc.name}-{args.controller}-seed{day}"
    check_out_dir(out, "--out")
    spec = RunSpec(scenario=sc, controller=_controller_spec(args, sc), seed=day,
                   record_trajectories=args.trajectories)
    bar = Progress(f"{sc.name} {args.controller}", enabled=not args.quiet)
    t0 = time.perf_counter()
    with ExitStack() as stack:
        # --trajectories: written block by block during the run (issue 18), not held.
        streams: tuple[TableStream, ...] = ()
        sink = None
        if args.trajectories:
            stream = stack.enter_context(write_or_fail(
                lambda: TableStream("trajectories", out, csv=not args.no_csv), out))
            link_ids = [lk.id for lk in sc.links]   # link index k is sc.links[k]
            streams = (stream,)

            def sink(columns: dict[str, np.ndarray]) -> None:
                stream.write(_trajectory_frame(columns, link_ids))
        try:
            run = run_one(spec, progress=bar, trajectory_sink=sink)
        finally:
            bar.close()
        tables, info = _run_outputs(run, args)
        info, volatile = split_volatile(info)
        log = {RUN_LOG: run_log("run", **volatile, command_wall_s=time.perf_counter() - t0)}
        files = write_or_fail(lambda: write_tables(tables, out, info, csv=not args.no_csv,
                                                   files=log, streams=streams), out)
    if not args.quiet:
        _print_run(run, tables, args, files, out, time.perf_counter() - t0)
    _warn_unfinished(run.result, sc.drain_s)
    return 0


def _warn_unfinished(result: SimResult, drain_s: float) -> None:
    """Say so (stderr) when vehicles had not finished their trips when the run ended.

    Their time loss is not in the totals (which count completed trips), so a
    run that ends with a backlog understates the time loss.
    """
    if result.waiting or result.in_network:
        print(f"gpssignal run: warning: {result.waiting:,} vehicles were still waiting to "
              f"enter and {result.in_network:,} were in the network when the run ended "
              f"(drain_s = {drain_s:g} s); their time loss is not in the totals",
              file=sys.stderr)


# ---------------------------------------------------------------------------
# probes
# ---------------------------------------------------------------------------

def _cmd_probes(args: argparse.Namespace) -> int:
    from gpssignal.experiment.run import ControllerSpec, RunSpec, run_one
    from gpssignal.probes.io import stream_to_frame, write_probes

    out = Path(args.out)
    if out.suffix not in (".csv", ".parquet"):
        raise UsageError(f"--out = {str(out)!r}: must end in .csv or .parquet")
    check_out_dir(out.parent, "--out")
    sc = load_scenario(args)
    settings = _probe_settings(args, sc)
    spec = RunSpec(scenario=sc, controller=ControllerSpec.parse(args.controller),
                   seed=sc.seed if args.seed is None else args.seed, probes=settings,
                   sample_probes=True)
    date = args.date or sc.date
    check_date(date)
    bar = Progress(f"{sc.name} probes", enabled=not args.quiet)
    try:
        run = run_one(spec, progress=bar)
    finally:
        bar.close()
    assert run.probes is not None  # sample_probes=True
    frame = stream_to_frame(run.probes, sc, date=date)
    # No wall time in the file: the same seed gives the same bytes (the time is printed).
    info, _ = split_volatile({
        **run.meta.as_dict(), "date": date, "anonymisation": settings.anonymisation,
        "probe_settings": {k: getattr(settings, k) for k in settings.__slots__}})
    write_or_fail(lambda: write_probes(frame, out, info), out)
    if not args.quiet:
        n_probe = len(set(run.probes.truth["vid"].tolist()))
        minutes = (sc.duration_s + sc.drain_s) / 60.0
        print(f"{len(frame):,} points from {n_probe:,} probe vehicles of "
              f"{len(run.result.arrivals):,} ({settings.penetration:.1%} penetration, every "
              f"{settings.period_s:g} s, {settings.anonymisation}); {len(frame) / minutes:,.1f} "
              f"points/min; seed {run.meta.seed}, date {date}")
        print(f"written: {out}")
    return 0


# ---------------------------------------------------------------------------
# history
# ---------------------------------------------------------------------------

def _cmd_history(args: argparse.Namespace) -> int:
    from gpssignal.experiment.history import simulate_history

    if args.days < 1:
        raise UsageError(f"--days = {args.days}: must be at least 1")
    workers(args)  # checked before any work
    sc = load_scenario(args)
    settings = _probe_settings(args, sc)
    if args.start_date:
        check_date(args.start_date, "--start-date")
    out = Path(args.out)
    check_out_dir(out, "--out")
    if out.exists() and any(out.iterdir()) and not (out / "manifest.json").exists():
        raise UsageError(f"--out = {str(out)!r}: exists, is not empty and is not a gpssignal "
                         "history; not overwriting")
    t0 = time.perf_counter()
    bar = Progress(f"{sc.name} history", enabled=not args.quiet)
    try:
        with parallel_backend(args) as backend:
            manifest = write_or_fail(lambda: simulate_history(
                sc, args.days, out, start_date=args.start_date, first_seed=args.seed,
                probes=settings, backend=backend, progress=bar.fraction), out)
    finally:
        bar.close()
    if not args.quiet:
        days = manifest["days"]
        pts = sum(d["points"] for d in days)
        print(f"{len(days)} weekdays {days[0]['date']} .. {days[-1]['date']} (seeds "
              f"{days[0]['seed']}..{days[-1]['seed']}) under '{manifest['controller']}': "
              f"{pts:,} probe points; {time.perf_counter() - t0:.1f} s")
        print(f"written: {out}/manifest.json, {out}/probes/date=*/, {out}/truth/date=*/, "
              f"{out}/run.log.json")
    return 0


# ---------------------------------------------------------------------------
# validate
# ---------------------------------------------------------------------------

def _cmd_validate(args: argparse.Namespace) -> int:
    from gpssignal.emissions import scenario_emissions
    from gpssignal.model.io import format_clock, scenario_hash

    sc = load_scenario(args)
    scenario_emissions(sc)  # emission classes must be known
    n = sum(sum(f.flow_vph) * sc.demand.interval_s / 3600.0 for f in sc.demand.flows)
    print(f"{args.scenario}: valid scenario '{sc.name}' (hash {scenario_hash(sc)})")
    print(f"  {len(sc.junctions)} junction(s), {len(sc.links)} links, "
          f"{len(sc.demand.flows)} demand flows, ~{n:,.0f} vehicles expected, "
          f"{format_clock(sc.start_clock_s)}-{format_clock(sc.end_clock_s)}")
    for j in sc.junctions:
        progs = ", ".join(f"{p.name} ({p.cycle_s:g} s)" for p in j.programs)
        print(f"  {j.id} {j.name}: groups {', '.join(j.groups)}; programs {progs}")
    for lk in sc.links:
        notes = [f"{'/'.join(ln.movements)} lane {k} is {ln.length_m:g} m (from "
                 f"{ln.start_m(lk.length_m):g} m)" for k, ln in enumerate(lk.lanes)
                 if ln.length_m is not None]
        notes += [f"{g.movement} gives way to {', '.join(g.to)}" for g in lk.give_way]
        if lk.upstream_signal is not None:
            u = lk.upstream_signal
            notes.append(f"fed by an upstream signal (cycle {u.cycle_s:g} s, green "
                         f"{u.green_s:g} s, offset {u.offset_s:g} s, {u.distance_m:g} m "
                         f"upstream; up to {lk.upstream_capacity_vph():,.0f} veh/h)")
        if notes:
            print(f"  link {lk.id} ({lk.length_m:g} m): " + "; ".join(notes))
    return 0


# ---------------------------------------------------------------------------
# Parsers
# ---------------------------------------------------------------------------

def _add_run(sub: argparse._SubParsersAction) -> None:
    run = sub.add_parser("run", parents=[quiet_options(), limit_options()],
                         help="simulate one day of a scenario and write its results",
                         description="Simulate one day (one seed) of SCENARIO under a "
                         "controller; write per-vehicle, per-interval, per-approach and "
                         "per-movement tables (Parquet and CSV) and meta.json to --out, "
                         "and print a summary.")
    run.add_argument("scenario", help="scenario TOML file, e.g. scenarios/vallensbaek.toml")
    run.add_argument("--controller", default="fixed", choices=["fixed", "tod", "gps"],
                     help="fixed: one program all day (default: each junction's default "
                     "program); tod: the scenario's time-of-day schedule; gps: the GPS "
                     "speed-threshold controller fed by the simulated probe stream "
                     "(needs --model) (default: fixed)")
    run.add_argument("--model", default=None, help="with --controller gps: a model file "
                     "from `gpssignal train`")
    other_scenario_option(run)
    run.add_argument("--program", default=None,
                     help="with --controller fixed: the program to run at every junction")
    run.add_argument("--seed", type=seed, default=None,
                     help="the simulated day (default: the scenario's seed)")
    run.add_argument("--out", default=None,
                     help="output folder (default: results/SCENARIO-CONTROLLER-seedN)")
    run.add_argument("--trajectories", action="store_true",
                     help="also write every vehicle's state at every step (large)")
    run.add_argument("--no-csv", action="store_true", help="write Parquet only")
    # lean_arrow_pool: main() lets pyarrow use malloc before it is imported (20 MB less).
    run.set_defaults(func=_cmd_run, lean_arrow_pool=True)


def _add_probes(sub: argparse._SubParsersAction) -> None:
    pr = sub.add_parser("probes", parents=[quiet_options(), limit_options(), _probe_options()],
                        help="simulate one day and write its GPS probe stream",
                        description="Simulate one day of SCENARIO and write the GPS probe "
                        "points a real feed would deliver (sampling, noise, dropouts, latency, "
                        "anonymisation from the scenario's [probes], overridable here) to "
                        "--out (.csv or .parquet, UTC timestamps).")
    pr.add_argument("scenario", help="scenario TOML file")
    pr.add_argument("--seed", type=seed, default=None, help="the simulated day")
    pr.add_argument("--out", required=True, help="probe file to write (.csv or .parquet)")
    pr.add_argument("--controller", default="fixed", choices=["fixed", "tod"],
                    help="signal control during the day (default: fixed)")
    pr.add_argument("--date", default=None, help="calendar date of the day (default: the "
                    "scenario's date)")
    pr.set_defaults(func=_cmd_probes, lean_arrow_pool=True)   # see _add_run


def _add_history(sub: argparse._SubParsersAction) -> None:
    hi = sub.add_parser("history",
                        parents=[quiet_options(), limit_options(), parallel_options(),
                                 _probe_options()],
                        help="simulate N weekdays of probe data under the existing plan",
                        description="Simulate N weekdays (seed, seed+1, ...; each a "
                        "different day by the scenario's [variability]) under the existing "
                        "plan (the time-of-day schedule, or fixed time without one) and "
                        "write their probe streams and ground truth, partitioned by date. "
                        "With --backend dask, the workers write into a temporary folder "
                        "beside --out: they need a file system shared with this machine.")
    hi.add_argument("scenario", help="scenario TOML file")
    hi.add_argument("--days", type=int, required=True, help="number of weekdays")
    hi.add_argument("--out", required=True, help="output folder")
    hi.add_argument("--seed", type=seed, default=None,
                    help="seed of the first day (default: the scenario's seed)")
    hi.add_argument("--start-date", default=None,
                    help="first date; weekends are skipped (default: the scenario's date)")
    hi.set_defaults(func=_cmd_history)


def _add_validate(sub: argparse._SubParsersAction) -> None:
    val = sub.add_parser("validate", parents=[limit_options()],
                         help="check a scenario file and describe it",
                         description="Load and validate SCENARIO; print what it contains.")
    val.add_argument("scenario", help="scenario TOML file")
    val.set_defaults(func=_cmd_validate)


def _cmd_build_kernels(args: argparse.Namespace) -> int:
    from gpssignal._compiled import KERNELS_VARIABLE, library_folder
    from gpssignal.experiment.kernels import BUILD_SCENARIO, build_kernels

    try:
        folder = library_folder()
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if folder is None:
        raise UsageError(f"{KERNELS_VARIABLE} = {os.environ[KERNELS_VARIABLE]!r}: the kernel "
                         "library is turned off; unset it to build")
    try:
        b = build_kernels(force=args.force)
    except OSError as exc:
        where = f"{KERNELS_VARIABLE} = {str(folder)!r}" if os.environ.get(KERNELS_VARIABLE) \
            else f"folder {str(exc.filename or folder)!r}"
        raise UsageError(f"{where}: cannot build the kernel library there "
                         f"({exc.strerror or exc})") from None
    except RuntimeError as exc:   # could not compile or check: runs use numba instead
        first = (str(exc).strip().splitlines() or ["failed"])[0]
        print(f"gpssignal build-kernels: {first}; runs compile with numba instead",
              file=sys.stderr)
        return 1
    if not args.quiet:
        if b.built:
            print(f"kernel library: {b.path} ({b.exports} entry points, built and checked in "
                  f"{b.build_s:.1f} s: {BUILD_SCENARIO} gives the same result to the last bit "
                  f"through it as through numba's compiler, fingerprint {b.fingerprint[:16]})")
        else:
            print(f"kernel library: {b.path} (current; --force rebuilds it)")
    return 0


def _add_build_kernels(sub: argparse._SubParsersAction) -> None:
    bk = sub.add_parser(
        "build-kernels", parents=[quiet_options()],
        help="compile the simulator's kernels ahead of time (faster start, less memory)",
        description="Compile the step loop the engine calls and the GPS day's kernels "
        "(probe sampler, map matching, GPS decisions) into an extension module for the "
        "installed sources and this machine's CPU, check that a fixed-time and a GPS day "
        "give the same results as numba's just-in-time code, and keep it in the "
        "package's __pycache__ (or the folder in GPSSIGNAL_KERNELS). Without it, runs "
        "compile with numba and import it (about 0.5 s and 110 MB more per process). "
        "Needs a C compiler.")
    bk.add_argument("--force", action="store_true", help="rebuild even when current")
    bk.set_defaults(func=_cmd_build_kernels)


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``run``, ``probes``, ``history``, ``validate`` and ``build-kernels`` to ``sub``."""
    _add_run(sub)
    _add_probes(sub)
    _add_history(sub)
    _add_validate(sub)
    _add_build_kernels(sub)
