"""Command line: ``gpssignal run | probes | history | import-fcd | check-probes | validate``.

Thin: parses arguments, calls the library, prints.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

if TYPE_CHECKING:
    import pandas as pd

    from gpssignal.control.gps import GpsRuntime
    from gpssignal.model.scenario import ProbeSettings, Scenario

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


def _at_least_one(args: argparse.Namespace, *options: str) -> None:
    """Each named integer option must be >= 1 (one-line usage error otherwise)."""
    for opt in options:
        v = getattr(args, opt.lstrip("-").replace("-", "_"))
        if v is not None and v < 1:
            raise _UsageError(f"{opt} = {v}: must be at least 1")


def _workers(args: argparse.Namespace) -> int:
    """``--workers``, defaulting to the number of CPU cores."""
    import os

    _at_least_one(args, "--workers")
    return args.workers if args.workers is not None else max(1, os.cpu_count() or 1)


def _stage_bars(prefix: str, quiet: bool) -> Callable[[str, int, int], None]:
    """A ``progress(stage, done, total)`` callback with one bar per stage."""
    bars: dict[str, _Progress] = {}

    def progress(stage: str, done: int, total: int) -> None:
        bar = bars.setdefault(stage, _Progress(f"{prefix} {stage}", enabled=not quiet))
        bar(done / total)
        if done == total:
            bar.close()

    return progress


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
    from gpssignal.emissions import scenario_emissions
    from gpssignal.model.io import format_clock, read_scenario, scenario_hash

    sc = read_scenario(args.scenario)
    scenario_emissions(sc)  # emission classes must be known
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
    if (args.model is None) != (args.controller != "gps"):
        raise _UsageError(f"--model = {args.model!r}: needed with --controller gps, and only "
                          "with it")
    sc = read_scenario(args.scenario)
    seed = sc.seed if args.seed is None else args.seed
    name = args.controller
    out = Path(args.out) if args.out else Path("results") / f"{sc.name}-{name}-seed{seed}"
    _check_out_dir(out, "--out")
    model = None
    if name == "gps":
        from gpssignal.control.io import read_model

        model = read_model(args.model)
    else:
        ctrl = make_controller(name, sc, program=args.program)
    bar = _Progress(f"{sc.name} {name}", enabled=not args.quiet)
    t0 = time.perf_counter()
    gps_ctrl = None
    try:
        if model is not None:
            from gpssignal.experiment.run import run_gps

            result, _, gps_ctrl, meta = run_gps(sc, model, seed=seed,
                                                record_trajectories=args.trajectories,
                                                progress=bar)
        else:
            result, meta = run_scenario(sc, ctrl, seed=seed,
                                        record_trajectories=args.trajectories, progress=bar)
    finally:
        bar.close()
    tables = run_tables(result)
    if gps_ctrl is not None:
        tables["decisions"] = _decision_frame(gps_ctrl.runtime)
    if args.trajectories and result.trajectories is not None:
        import pandas as pd

        tr = pd.DataFrame(result.trajectories)
        tr["link"] = pd.Categorical.from_codes(tr["link"], result.network.link_ids)
        tables["trajectories"] = tr
    info = meta.as_dict()
    if gps_ctrl is not None:
        rt = gps_ctrl.runtime
        info.update({"model_file": str(args.model), "probe_points": rt.points_in,
                     "probe_points_matched": rt.points_matched,
                     "stale_fallbacks": rt.stale_events})
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
          f"{name} | seed {seed} | day: demand x{meta.demand_level:.3f}, peak shift "
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


def _cmd_evaluate(args: argparse.Namespace) -> int:
    import tempfile

    from gpssignal.evaluate.io import write_tables
    from gpssignal.experiment.evaluation import evaluate_controllers, train_for_evaluation
    from gpssignal.model.io import read_scenario
    from gpssignal.report import build_report, headline_table

    _at_least_one(args, "--replications", "--train-days", "--candidates")
    workers = _workers(args)
    controllers = [c.strip() for c in args.controllers.split(",") if c.strip()]
    for c in controllers:
        if c not in ("fixed", "tod", "gps"):
            raise _UsageError(f"--controllers = {args.controllers!r}: {c!r} is not one of "
                              "fixed, tod, gps")
    if args.model is not None and "gps" not in controllers:
        raise _UsageError(f"--model = {args.model!r}: only with 'gps' in --controllers")
    sc = read_scenario(args.scenario)
    out = Path(args.out) if args.out else Path("results") / f"{sc.name}-evaluation"
    _check_out_dir(out, "--out")
    seeds = list(range(args.first_seed, args.first_seed + args.replications))
    t0 = time.perf_counter()
    progress = _stage_bars(sc.name, args.quiet)
    model = None
    how = ""
    model_bytes = None
    if "gps" in controllers:
        from gpssignal.control.io import read_model, write_model

        if args.model is not None:
            model = read_model(args.model)
            how = f"given with --model {args.model}"
        else:
            if not args.quiet:
                print(f"No --model given: training a GPS model first on {args.train_days} "
                      f"separate history days (seeds {sc.seed}..{sc.seed + args.train_days - 1},"
                      f" not evaluation days), {args.candidates} candidates.")
            with tempfile.TemporaryDirectory(prefix="gpssignal-train-") as work:
                model, _ = train_for_evaluation(sc, work, args.train_days, seeds,
                                                candidates=args.candidates, workers=workers,
                                                progress=progress)
                write_model(model, Path(work) / "model.json")
                model_bytes = (Path(work) / "model.json").read_bytes()
            how = (f"trained by this command on {args.train_days} history days, "
                   f"{args.candidates} candidates (written to model.json)")
    ev = evaluate_controllers(sc, controllers, seeds, model=model, workers=workers,
                              progress=lambda d, n: progress("evaluation", d, n))
    if how:
        ev.model_info["how"] = how
    files = build_report(ev)
    if model_bytes is not None:
        files["model.json"] = model_bytes
    tables = {"kpis": ev.kpi_table(), "differences": ev.difference_table(),
              "annual": ev.annual_table(), "runs": ev.runs(), "intervals": ev.interval_means(),
              "approaches": ev.approach_means(), "switches": ev.switches()}
    meta = {**ev.meta(), "scenario_file": str(args.scenario), "first_seed": args.first_seed}
    try:
        write_tables(tables, out, meta, files=files)
    except OSError as exc:
        raise _UsageError(f"--out = {str(out)!r}: cannot write ({exc.strerror or exc})") \
            from None
    if args.quiet:
        return 0
    head = headline_table(ev)
    print(f"gpssignal {meta['version']} | scenario {sc.name} ({meta['scenario_hash']}) | "
          f"{len(seeds)} days (seeds {seeds[0]}..{seeds[-1]}) | {workers} worker(s)")
    print("mean [95 % CI] over the days; differences paired day by day")
    print()
    _print_table(head.values.tolist(), list(head.columns))
    an = ev.annual_table()
    an = an[an["baseline"] == ev.baseline]
    if len(an):
        print()
        for _, r in an.iterrows():
            print(f"  {r['controller']} vs {r['baseline']}: {r['quantity']} saved "
                  f"{r['saving_per_year']:,.2f} {r['unit']} [{r['ci95_low']:,.2f}, "
                  f"{r['ci95_high']:,.2f}]")
        print(f"  counted: {an['counted'].iloc[0]}")
    print()
    print(f"definitions: docs/definitions.md | report: {out / 'report.html'} "
          f"({time.perf_counter() - t0:.0f} s)")
    return 0


def _cmd_tune(args: argparse.Namespace) -> int:

    from gpssignal.control.gps import model_from_scenario
    from gpssignal.experiment.sweep import (
        DaskBackend,
        LocalBackend,
        ResultStore,
        grid_points,
        model_identity,
        parse_grid,
        parse_range,
        point_summary,
        random_points,
        run_sweep,
    )
    from gpssignal.model.io import read_scenario
    from gpssignal.report.sweep import sensitivity_text, sweep_figures, sweep_report

    _at_least_one(args, "--replications")
    workers = _workers(args)
    if not args.grid and not args.range:
        raise _UsageError("--grid: give at least one --grid NAME=START:STOP:STEP (or --range "
                          "with --random N)")
    if args.range and args.random < 1:
        raise _UsageError(f"--random = {args.random}: --range needs --random N >= 1")
    if args.random and not args.range:
        raise _UsageError(f"--random = {args.random}: needs at least one --range")
    if args.scheduler and args.backend != "dask":
        raise _UsageError(f"--scheduler = {args.scheduler!r}: only with --backend dask")
    grids = [parse_grid(g) for g in args.grid]
    ranges = [parse_range(r) for r in args.range]
    points = grid_points(grids) if grids else [{}]
    if ranges:
        extra = random_points(ranges, args.random, args.search_seed)
        points = [{**p, **q} for p in points for q in extra]
    params = [g[0] for g in grids] + [r[0] for r in ranges]
    sc = read_scenario(args.scenario)
    out = Path(args.out) if args.out else Path("results") / f"{sc.name}-sweep"
    _check_out_dir(out, "--out")
    if args.model is not None:
        from gpssignal.control.io import read_model

        model = read_model(args.model)
        model_note = f"model {args.model}"
    else:
        model = model_from_scenario(sc)
        model_note = ("untrained model (free-flow = speed limit; thresholds and windows from "
                      "the swept values and the model defaults)")
    seeds = list(range(args.first_seed, args.first_seed + args.replications))
    store = ResultStore(out / "runs.duckdb", sc, model_identity(model))
    backend: LocalBackend | DaskBackend
    if args.backend == "dask":
        backend = DaskBackend(workers, args.scheduler)
    else:
        backend = LocalBackend(workers)
    bar = _Progress(f"{sc.name} sweep", enabled=not args.quiet)
    t0 = time.perf_counter()

    def progress(done: int, total: int, before: int) -> None:
        ran = done - before
        eta = ""
        if ran > 0 and done < total:
            eta = f" ETA {(time.perf_counter() - t0) / ran * (total - done):.0f} s"
        bar.label = f"{sc.name} sweep {done}/{total} runs{eta}"
        bar(done / total if total else 1.0)

    try:
        counts = run_sweep(sc, model, points, seeds, store, backend, progress=progress)
    finally:
        bar.close()
        backend.close()
    wall = time.perf_counter() - t0
    runs = store.frame()
    store.close()
    summary = point_summary(runs, points, seeds)
    figures = sweep_figures(summary, params)
    header = (f"Scenario {sc.name}; {len(points)} points x {len(seeds)} days (seeds "
              f"{seeds[0]}..{seeds[-1]}), GPS controller paired against fixed timing; "
              f"{model_note}; backend {backend.name} with {backend.workers} worker(s).")
    files = {**figures, **sweep_report(summary, params, figures, header)}
    from gpssignal.evaluate.io import write_tables

    meta = {"scenario": sc.name, "scenario_hash": store.scenario_hash, "model": store.model_id,
            "seeds": seeds, "points": len(points), "parameters": params,
            "backend": backend.name, "workers": backend.workers, **counts,
            "wall_s": round(wall, 1)}
    write_tables({"points": summary, "runs": runs.drop(columns=["params"])}, out, meta,
                 files=files)
    if args.quiet:
        return 0
    print(f"{counts['total']} runs: {counts['skipped']} already stored, {counts['run']} run "
          f"now in {wall:.1f} s ({backend.name}, {backend.workers} worker(s))")
    best = summary.sort_values("time_loss_saving", ascending=False).head(5)
    _print_table([[*(f"{r[p]:g}" for p in params), r["time_loss_saving"],
                   f"[{r['time_loss_saving_ci_low']:.2f}, {r['time_loss_saving_ci_high']:.2f}]",
                   r["co2_saving"], f"[{r['co2_saving_ci_low']:.2f}, "
                   f"{r['co2_saving_ci_high']:.2f}]", r["gps_speed_peak_kmh"]]
                  for _, r in best.iterrows()],
                 [*params, "TL_saved_s/veh", "95% CI", "CO2_saved_kg", "95% CI",
                  "gps_v_peak_kmh"])
    for line in sensitivity_text(summary, params):
        print("  " + line)
    print(f"results: {out / 'runs.duckdb'} (resumable), {out / 'points.csv'}, "
          f"{out / 'sweep.html'}")
    return 0


def _cmd_estimate(args: argparse.Namespace) -> int:

    from gpssignal.estimate import (
        estimate_junction,
        junction_table,
        municipality_table,
        read_junctions,
        read_template,
    )
    from gpssignal.estimate.junctions import RowError
    from gpssignal.evaluate.io import write_tables
    from gpssignal.report.estimate import estimate_report

    _at_least_one(args, "--replications", "--train-days", "--candidates")
    workers = _workers(args)
    out = Path(args.out) if args.out else \
        Path("results") / f"{Path(args.junctions).stem}-estimate"
    _check_out_dir(out, "--out")
    tpl = read_template(args.template)
    specs, errors = read_junctions(args.junctions)
    n_rows = len(specs) + len(errors)
    for e in errors:
        print(f"gpssignal estimate: error: {e}; the row is skipped", file=sys.stderr)
    seeds = list(range(args.first_seed, args.first_seed + args.replications))
    results = []
    t0 = time.perf_counter()
    for k, spec in enumerate(specs, start=1):
        progress = _stage_bars(f"[{k}/{len(specs)}] {spec.name}", args.quiet)
        try:
            results.append(estimate_junction(spec, tpl, seeds, args.train_days,
                                             args.candidates, workers, progress=progress))
        except RowError as e:
            errors.append(e)
            print(f"gpssignal estimate: error: {e}; the row is skipped", file=sys.stderr)
        if not args.quiet:
            print(f"[{k}/{len(specs)}] {spec.name}: done ({time.perf_counter() - t0:.0f} s)",
                  file=sys.stderr)
    jt = junction_table(results, errors)
    mt = municipality_table(results)
    header = (f"{len(results)} of {n_rows} junctions estimated from {args.junctions}; "
              f"each: {args.train_days} training days, {args.candidates} candidates, "
              "fixed timing vs GPS controller on "
              f"{len(seeds)} days (seeds {seeds[0]}..{seeds[-1]}); assumptions: "
              f"{args.template}. Periods and directions: each junction's period from the "
              "list, all approaches.")
    files = estimate_report(jt, mt, header)
    for r in results:
        files[f"scenarios/{r.spec.id}.toml"] = r.scenario_toml.encode()
        files[f"models/{r.spec.id}.json"] = r.model_json
    from gpssignal import __version__

    meta = {"junctions_file": str(args.junctions), "template": str(args.template),
            "seeds": seeds, "train_days": args.train_days, "candidates": args.candidates,
            "version": __version__, "rows_ok": len(results), "rows_failed": len(errors),
            "wall_s": round(time.perf_counter() - t0, 1)}
    if results:
        write_tables({"junctions": jt, "municipalities": mt}, out, meta, files=files)
    if not args.quiet and results:
        _print_table([[r["name"], r["status"], r["time_loss_saved_veh_h_per_year"],
                       f"[{r['time_loss_ci95_low']:.0f}, {r['time_loss_ci95_high']:.0f}]",
                       r["co2_saved_t_per_year"],
                       f"[{r['co2_ci95_low']:.2f}, {r['co2_ci95_high']:.2f}]"]
                      for _, r in jt[jt["status"] == "ok"].iterrows()],
                     ["junction", "status", "veh·h/yr saved", "95% CI", "t CO2/yr saved",
                      "95% CI"])
        print()
        _print_table([[r["municipality"], r["junctions"], r["time_loss_saved_veh_h_per_year"],
                       r["co2_saved_t_per_year"],
                       f"[{r['co2_ci95_low']:.2f}, {r['co2_ci95_high']:.2f}]"]
                      for _, r in mt.iterrows()],
                     ["municipality", "junctions", "veh·h/yr saved", "t CO2/yr saved",
                      "95% CI"])
        print(f"results: {out / 'estimate.html'}, {out / 'junctions.csv'}, "
              f"{out / 'scenarios'}/")
    if errors:
        return 2
    return 0


def _cmd_export_sumo(args: argparse.Namespace) -> int:
    from gpssignal.interop.sumo_export import export_sumo
    from gpssignal.model.io import read_scenario

    sc = read_scenario(args.scenario)
    out = Path(args.outdir)
    _check_out_dir(out, "OUTDIR")
    seed = sc.seed if args.seed is None else args.seed
    ex = export_sumo(sc, out, seed=seed, fcd=args.fcd)
    if not args.quiet:
        print(f"SUMO scenario of {sc.name} (day seed {seed}) written to {ex.folder}; link "
              "indices checked: " + "; ".join(f"{j}: {' '.join(g)}"
                                               for j, g in ex.link_groups.items()))
        print(f"run it with: sumo -c {ex.config}")
    return 0


def _cmd_cross_check(args: argparse.Namespace) -> int:
    import tempfile

    from gpssignal.evaluate.io import write_tables
    from gpssignal.interop.compare import compare_fixed, summary
    from gpssignal.interop.sumo import sumo_version
    from gpssignal.model.io import read_scenario, scenario_hash

    try:
        seeds = [int(x) for x in args.seeds.split(",") if x.strip()]
    except ValueError:
        raise _UsageError(f"--seeds = {args.seeds!r}: expected integers like 1,2,3") from None
    if not seeds or min(seeds) < 0:
        raise _UsageError(f"--seeds = {args.seeds!r}: give at least one seed >= 0")
    sc = read_scenario(args.scenario)
    out = Path(args.out) if args.out else Path("results") / f"{sc.name}-cross-check"
    _check_out_dir(out, "--out")
    version = sumo_version()
    tables = {}
    with tempfile.TemporaryDirectory(prefix="gpssignal-xcheck-") as work:
        df = compare_fixed(sc, seeds, work)
        if args.model is not None:
            from gpssignal.control.io import read_model
            from gpssignal.interop.compare import compare_gps

            gps = compare_gps(sc, read_model(args.model), seeds, work)
            tables["gps"] = gps
    summ = summary(df)
    from gpssignal import __version__

    write_tables({"runs": df, "summary": summ, **tables}, out,
                 {"scenario": sc.name, "scenario_hash": scenario_hash(sc), "seeds": seeds,
                  "version": __version__, "sumo": version})
    if not args.quiet:
        print(f"{sc.name}, fixed timing, seeds {','.join(map(str, seeds))}: gpssignal "
              f"{__version__} vs {version} (same vehicles; definitions: docs/validation.md)")
        _print_table([[r["kpi"], r["gpssignal"], r["sumo"], r["sumo_vs_gpssignal_pct"]]
                      for _, r in summ.iterrows()],
                     ["kpi", "gpssignal", "sumo", "sumo vs gpssignal %"])
        if "gps" in tables:
            g = tables["gps"].pivot_table(index="seed", columns=["simulator", "controller"],
                                          values="mean_time_loss_s")
            print()
            print("GPS controller - fixed timing, mean time loss per vehicle [s], per day:")
            _print_table([[s_, g.loc[s_, ("gpssignal", "gps")] - g.loc[s_, ("gpssignal", "fixed")],
                           g.loc[s_, ("sumo", "gps")] - g.loc[s_, ("sumo", "fixed")]]
                          for s_ in g.index], ["seed", "gpssignal", "sumo (libsumo)"])
        print(f"written: {out}/runs.csv, {out}/summary.csv" + (", gps.csv" if tables else ""))
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


def _add_probe_overrides(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("probe feed (defaults: the scenario's [probes])")
    for opt, (_, typ, help_) in _PROBE_OVERRIDES.items():
        g.add_argument(opt, type=typ, default=None, help=help_)


def _probe_settings(args: argparse.Namespace, scenario: Scenario) -> ProbeSettings:
    import dataclasses

    changes = {}
    for opt, (fieldname, _, _) in _PROBE_OVERRIDES.items():
        value = getattr(args, opt.lstrip("-").replace("-", "_"))
        if value is not None:
            changes[fieldname] = value
    return dataclasses.replace(scenario.probes, **changes)


def _cmd_probes(args: argparse.Namespace) -> int:
    from gpssignal.experiment.run import make_controller, run_with_probes
    from gpssignal.model.io import read_scenario
    from gpssignal.probes.io import stream_to_frame, write_probes

    out = Path(args.out)
    if out.suffix not in (".csv", ".parquet"):
        raise _UsageError(f"--out = {str(out)!r}: must end in .csv or .parquet")
    _check_out_dir(out.parent, "--out")
    sc = read_scenario(args.scenario)
    settings = _probe_settings(args, sc)
    ctrl = make_controller(args.controller, sc)
    date = args.date or sc.date
    _check_date(date)
    bar = _Progress(f"{sc.name} probes", enabled=not args.quiet)
    try:
        result, stream, meta = run_with_probes(sc, ctrl, seed=args.seed, probes=settings,
                                               progress=bar)
    finally:
        bar.close()
    frame = stream_to_frame(stream, sc, date=date)
    info = {**meta.as_dict(), "date": date, "anonymisation": settings.anonymisation,
            "probe_settings": {k: getattr(settings, k) for k in settings.__slots__}}
    try:
        write_probes(frame, out, info)
    except OSError as exc:
        raise _UsageError(f"--out = {str(out)!r}: cannot write ({exc.strerror or exc})") \
            from None
    if not args.quiet:
        n_probe = int(sum(1 for _ in set(stream.truth["vid"].tolist())))
        minutes = (sc.duration_s + sc.drain_s) / 60.0
        print(f"{len(frame):,} points from {n_probe:,} probe vehicles of "
              f"{len(result.arrivals):,} ({settings.penetration:.1%} penetration, every "
              f"{settings.period_s:g} s, {settings.anonymisation}); {len(frame) / minutes:,.1f} "
              f"points/min; seed {meta.seed}, date {date}")
        print(f"written: {out}")
    return 0


def _check_date(text: str, option: str = "--date") -> None:
    from datetime import date

    try:
        date.fromisoformat(text)
    except ValueError:
        raise _UsageError(f"{option} = {text!r}: must be an ISO date YYYY-MM-DD") from None


def _cmd_history(args: argparse.Namespace) -> int:
    from gpssignal.experiment.history import simulate_history
    from gpssignal.model.io import read_scenario

    if args.days < 1:
        raise _UsageError(f"--days = {args.days}: must be at least 1")
    sc = read_scenario(args.scenario)
    settings = _probe_settings(args, sc)
    if args.start_date:
        _check_date(args.start_date, "--start-date")
    out = Path(args.out)
    _check_out_dir(out, "--out")
    if out.exists() and any(out.iterdir()) and not (out / "manifest.json").exists():
        raise _UsageError(f"--out = {str(out)!r}: exists, is not empty and is not a gpssignal "
                          "history; not overwriting")
    t0 = time.perf_counter()
    bar = _Progress(f"{sc.name} history", enabled=not args.quiet)

    def progress(done: int, total: int) -> None:
        bar(done / total)

    try:
        manifest = simulate_history(sc, args.days, out, start_date=args.start_date,
                                    first_seed=args.seed, probes=settings, progress=progress)
    finally:
        bar.close()
    if not args.quiet:
        days = manifest["days"]
        pts = sum(d["points"] for d in days)
        print(f"{len(days)} weekdays {days[0]['date']} .. {days[-1]['date']} (seeds "
              f"{days[0]['seed']}..{days[-1]['seed']}) under '{manifest['controller']}': "
              f"{pts:,} probe points; {time.perf_counter() - t0:.1f} s")
        print(f"written: {out}/manifest.json, {out}/probes/date=*/, {out}/truth/date=*/")
    return 0


def _cmd_import_fcd(args: argparse.Namespace) -> int:
    from gpssignal.model.io import parse_clock
    from gpssignal.probes.io import import_fcd

    out = Path(args.out)
    _check_out_dir(out.parent, "--out")
    _check_date(args.date)
    origin = None
    if args.origin:
        try:
            lat, lon = (float(x) for x in args.origin.split(","))
        except ValueError:
            raise _UsageError(f"--origin = {args.origin!r}: must be LAT,LON in degrees") \
                from None
        if not (-90 <= lat <= 90 and -180 <= lon <= 180):
            raise _UsageError(f"--origin = {args.origin!r}: out of range")
        origin = (lat, lon)
    t0 = time.perf_counter()
    path, rows = import_fcd(args.fcd, out, date=args.date,
                            start_clock_s=parse_clock(args.start, "--start"),
                            timezone=args.timezone, origin=origin,
                            anonymisation=args.anonymisation)
    if not args.quiet:
        wall = time.perf_counter() - t0
        print(f"{rows:,} points imported from {args.fcd} ({args.anonymisation}) in "
              f"{wall:.1f} s; written: {path}")
    return 0


def _cmd_check_probes(args: argparse.Namespace) -> int:
    import json

    from gpssignal.probes.io import read_probes, write_probes

    read = read_probes(args.file, naive_tz=args.timezone)
    print(read.report.summary())
    if args.out:
        out = Path(args.out)
        _check_out_dir(out.parent, "--out")
        write_probes(read.frame, out, {"source": str(args.file), **read.report.as_dict()})
        report = out.with_name(out.name + ".drops.json")
        report.write_text(json.dumps(read.report.as_dict(), indent=2) + "\n",
                          encoding="utf-8")
        print(f"written: {out}, {report}")
    return 0


def _decision_frame(runtime: GpsRuntime) -> pd.DataFrame:
    import pandas as pd

    from gpssignal.control.gps import DECISION_COLUMNS

    df = pd.DataFrame(runtime.decision_log(), columns=list(DECISION_COLUMNS))
    df.insert(1, "time", pd.to_datetime(df["t_ms"], unit="ms", utc=True))
    return df


def _cmd_train(args: argparse.Namespace) -> int:
    from gpssignal.control.io import write_model
    from gpssignal.experiment.training import train
    from gpssignal.model.io import read_scenario

    if args.candidates < 1:
        raise _UsageError(f"--candidates = {args.candidates}: must be at least 1")
    if args.test_days < 0:
        raise _UsageError(f"--test-days = {args.test_days}: must be >= 0")
    if args.workers < 1:
        raise _UsageError(f"--workers = {args.workers}: must be at least 1")
    out = Path(args.out)
    _check_out_dir(out.parent, "--out")
    sc = read_scenario(args.scenario)
    progress = _stage_bars(sc.name, args.quiet)
    model = train(sc, args.history, candidates=args.candidates, search_seed=args.search_seed,
                  workers=args.workers, test_days=args.test_days, progress=progress)
    write_model(model, out)
    import pandas as pd

    prov = model.provenance
    table = pd.DataFrame(prov["search"]["candidates"])
    search_csv = out.with_name(out.stem + ".search.csv")
    table.to_csv(search_csv, index=False)
    if args.quiet:
        return 0
    best = prov["search"]["best"]
    print(f"trained on {len(prov['training_days'])} days ({prov['training_days'][0]} .. "
          f"{prov['training_days'][-1]}, seeds {prov['training_seeds'][0]}.."
          f"{prov['training_seeds'][-1]}); {prov['points_matched']:,} of "
          f"{prov['points_read']:,} probe points on monitored stretches")
    for st in model.stretches:
        print(f"  stretch {st.id}: free-flow {st.free_flow_kmh:.1f} km/h (limit "
              f"{st.speed_limit_kmh:g}); switch below {st.threshold_low_kmh:.1f}, back above "
              f"{st.threshold_high_kmh:.1f} km/h")
    print(f"  window {model.window_s:g} s, dwell {model.min_dwell_s:g} s, min points "
          f"{model.min_points}; stale fall-back after {model.stale_after_s:g} s")
    print()
    print("search (mean time loss per vehicle over the training days, simulated):")
    shown = table.sort_values("mean_time_loss_s").head(8)
    _print_table([[("* " if i == best else "  ") + str(i), r["low_fraction"],
                   r["hysteresis_kmh"], r["window_s"], r["min_dwell_s"], r["mean_time_loss_s"],
                   r["switches_per_day"]] for i, r in shown.iterrows()],
                 ["#", "low_frac", "hyst_kmh", "window_s", "dwell_s", "time_loss_s",
                  "switch/day"])
    ex = prov["existing_plan"]
    print(f"existing plan ({ex['controller']}) on the same days (history ground truth): "
          f"{ex['mean_time_loss_s']:.1f} s/veh")
    if "held_out" in prov:
        ho = prov["held_out"]
        print()
        print(f"held-out days (seeds {ho['seeds'][0]}..{ho['seeds'][-1]}, not used in "
              "training; same demand per day for every controller):")
        _print_table([[r["controller"], r["mean_time_loss_s"], r["stretch_speed_kmh"],
                       float(sum(r["switches_per_day"]) / len(r["switches_per_day"]))]
                      for r in ho["results"]],
                     ["controller", "time_loss_s/veh", "stretch_kmh_peak", "switches/day"])
    print(f"written: {out}, {search_csv} ({prov['train_wall_s']:.0f} s)")
    return 0


def _cmd_replay(args: argparse.Namespace) -> int:
    import numpy as np
    import pandas as pd

    from gpssignal.control.gps import replay
    from gpssignal.control.io import read_model
    from gpssignal.evaluate.io import write_tables
    from gpssignal.probes.io import read_probes

    out = Path(args.out)
    _check_out_dir(out, "--out")
    model = read_model(args.model)
    read = read_probes(args.probes, naive_tz=args.timezone)
    f = read.frame

    def ms(col: str) -> np.ndarray:
        return f[col].astype("datetime64[ms, UTC]").astype("int64").to_numpy()

    rt = replay(model, ms("time_sent"), ms("time_received"), f["lat_deg"].to_numpy(),
                f["lon_deg"].to_numpy(), f["speed_kmh"].to_numpy(),
                f["heading_deg"].to_numpy(dtype=float), keep_windows=True)
    decisions = _decision_frame(rt)
    rows = []
    for t_ms, count, mean, hmean in rt.window_rows:
        for k, sid in enumerate(rt.stretch_ids):
            rows.append((t_ms, sid, int(count[k]), mean[k], hmean[k]))
    windows = pd.DataFrame(rows, columns=["t_ms", "stretch", "points", "mean_kmh",
                                          "harmonic_mean_kmh"])
    windows.insert(1, "time", pd.to_datetime(windows["t_ms"], unit="ms", utc=True))
    info = {"model_file": str(args.model), "probe_file": str(args.probes),
            "read": read.report.as_dict(), "points": rt.points_in,
            "points_matched": rt.points_matched,
            "points_off_stretch": rt.points_in - rt.points_matched,
            "stale_fallbacks": rt.stale_events,
            "model_training": model.provenance.get("scenario_hash")}
    files = write_tables({"decisions": decisions, "windows": windows}, out, info)
    print(read.report.summary())
    print(f"{rt.points_matched:,} of {rt.points_in:,} points on monitored stretches "
          f"({rt.points_in - rt.points_matched:,} off every stretch, discarded); "
          f"{len(decisions)} decisions, {rt.stale_events} stale-feed fall-backs")
    for _, r in decisions.iterrows():
        speed = "" if np.isnan(r["mean_kmh"]) else f" ({r['stretch']} {r['mean_kmh']:.1f} " \
            f"km/h, {r['points']} points)"
        print(f"  {r['time']:%Y-%m-%d %H:%M:%S}Z {r['junction']}: {r['from_program']} -> "
              f"{r['to_program']} [{r['reason']}]{speed}")
    print(f"written: {out} ({len(files)} files)")
    return 0


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
    run.add_argument("--controller", default="fixed", choices=["fixed", "tod", "gps"],
                     help="fixed: one program all day (default: each junction's default "
                     "program); tod: the scenario's time-of-day schedule; gps: the GPS "
                     "speed-threshold controller fed by the simulated probe stream "
                     "(needs --model) (default: fixed)")
    run.add_argument("--model", default=None, help="with --controller gps: a model file "
                     "from `gpssignal train`")
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

    pr = sub.add_parser("probes", help="simulate one day and write its GPS probe stream",
                        description="Simulate one day of SCENARIO and write the GPS probe "
                        "points a real feed would deliver (sampling, noise, dropouts, latency, "
                        "anonymisation from the scenario's [probes], overridable here) to "
                        "--out (.csv or .parquet, UTC timestamps).")
    pr.add_argument("scenario", help="scenario TOML file")
    pr.add_argument("--seed", type=_seed, default=None, help="the simulated day")
    pr.add_argument("--out", required=True, help="probe file to write (.csv or .parquet)")
    pr.add_argument("--controller", default="fixed", choices=["fixed", "tod"],
                    help="signal control during the day (default: fixed)")
    pr.add_argument("--date", default=None, help="calendar date of the day (default: the "
                    "scenario's date)")
    pr.add_argument("-q", "--quiet", action="store_true", help="print nothing")
    _add_probe_overrides(pr)
    pr.set_defaults(func=_cmd_probes)

    hi = sub.add_parser("history", help="simulate N weekdays of probe data under the "
                        "existing plan",
                        description="Simulate N weekdays (seed, seed+1, ...; each a "
                        "different day by the scenario's [variability]) under the existing "
                        "plan (the time-of-day schedule, or fixed time without one) and "
                        "write their probe streams and ground truth, partitioned by date.")
    hi.add_argument("scenario", help="scenario TOML file")
    hi.add_argument("--days", type=int, required=True, help="number of weekdays")
    hi.add_argument("--out", required=True, help="output folder")
    hi.add_argument("--seed", type=_seed, default=None,
                    help="seed of the first day (default: the scenario's seed)")
    hi.add_argument("--start-date", default=None,
                    help="first date; weekends are skipped (default: the scenario's date)")
    hi.add_argument("-q", "--quiet", action="store_true", help="print nothing")
    _add_probe_overrides(hi)
    hi.set_defaults(func=_cmd_history)

    fc = sub.add_parser("import-fcd", help="convert SUMO FCD output to a probe file",
                        description="Convert SUMO --fcd-output XML (streaming) to the probe "
                        "schema. Use --origin for plain x/y output; without it the file must "
                        "be --fcd-output.geo output (x = lon, y = lat).")
    fc.add_argument("fcd", help="SUMO FCD XML file")
    fc.add_argument("--out", required=True, help="probe file to write (.csv or .parquet)")
    fc.add_argument("--origin", default=None,
                    help="LAT,LON of SUMO's x = y = 0 (x east, y north in metres)")
    fc.add_argument("--date", default="2019-05-06", help="date of FCD time 0 (default: "
                    "2019-05-06)")
    fc.add_argument("--start", default="00:00",
                    help="local clock time of FCD time 0 (default: 00:00)")
    fc.add_argument("--timezone", default="Europe/Copenhagen",
                    help="time zone of --date/--start (default: Europe/Copenhagen)")
    fc.add_argument("--anonymisation", default="idless", choices=["idless", "rotating", "raw"],
                    help="drop ids (default), rotate pseudonyms, or keep SUMO ids")
    fc.add_argument("-q", "--quiet", action="store_true", help="print nothing")
    fc.set_defaults(func=_cmd_import_fcd)

    ck = sub.add_parser("check-probes", help="read a probe file and report what is unusable",
                        description="Read a probe file (CSV or Parquet) with the checks every "
                        "command applies: rows with bad timestamps, missing values, positions "
                        "or speeds out of range, receipt before sending, or duplicates are "
                        "dropped and counted; unknown columns are ignored. With --out, write "
                        "the usable rows and a .drops.json report.")
    ck.add_argument("file", help="probe file (.csv, .parquet, or a folder of Parquet files)")
    ck.add_argument("--out", default=None, help="write the usable rows here")
    ck.add_argument("--timezone", default="UTC",
                    help="time zone of timestamps without an offset (default: UTC)")
    ck.set_defaults(func=_cmd_check_probes)

    tr = sub.add_parser("train", help="train the GPS controller on a probe history",
                        description="Measure free-flow speeds and speed profiles of the "
                        "monitored stretches from a probe history (read with DuckDB), then "
                        "choose thresholds, hysteresis, window and dwell by simulating the "
                        "history's days with candidate settings (seeded random search) and "
                        "keeping the lowest mean time loss. Writes the model (JSON, with its "
                        "provenance) and MODEL.search.csv.")
    tr.add_argument("scenario", help="scenario TOML file the history was simulated from")
    tr.add_argument("--history", required=True, help="folder written by `gpssignal history`")
    tr.add_argument("--out", required=True, help="model file to write (.json)")
    tr.add_argument("--candidates", type=int, default=16,
                    help="candidate settings to simulate (default: 16)")
    tr.add_argument("--search-seed", type=_seed, default=0,
                    help="seed of the random search (default: 0)")
    tr.add_argument("--workers", type=int, default=2,
                    help="parallel processes (default: 2)")
    tr.add_argument("--test-days", type=int, default=0,
                    help="also compare fixed, tod and the model on this many held-out days")
    tr.add_argument("-q", "--quiet", action="store_true", help="print nothing")
    tr.set_defaults(func=_cmd_train)

    rp = sub.add_parser("replay", help="replay recorded probe data through a trained model",
                        description="Run the GPS controller's run-time path offline over a "
                        "probe file and write when each junction would have switched and "
                        "why (decisions) and the windowed stretch speeds behind it (windows).")
    rp.add_argument("probes", help="probe file (.csv, .parquet) or folder of Parquet files")
    rp.add_argument("--model", required=True, help="model file from `gpssignal train`")
    rp.add_argument("--out", required=True, help="output folder")
    rp.add_argument("--timezone", default="UTC",
                    help="time zone of timestamps without an offset (default: UTC)")
    rp.set_defaults(func=_cmd_replay)

    ev = sub.add_parser("evaluate", help="compare controllers against fixed timing over N days "
                        "and write the report",
                        description="Simulate N weekdays (replications) under each controller "
                        "with the same demand per day, report every KPI with its mean and 95 %% "
                        "confidence interval, the paired difference against fixed timing (and "
                        "time of day), annualised savings, and write report.html (self-"
                        "contained), report.md, PNG figures and CSV/Parquet tables to --out. "
                        "Without --model, a GPS model is first trained on separate history "
                        "days.")
    ev.add_argument("scenario", help="scenario TOML file, e.g. scenarios/vallensbaek.toml")
    ev.add_argument("--model", default=None, help="GPS model from `gpssignal train` (default: "
                    "train one first)")
    ev.add_argument("--replications", type=int, default=10,
                    help="simulated days per controller (default: 10)")
    ev.add_argument("--controllers", default="fixed,tod,gps",
                    help="comma-separated, among fixed, tod, gps (default: fixed,tod,gps)")
    ev.add_argument("--first-seed", type=_seed, default=1001,
                    help="seed of the first day; days are first..first+N-1 (default: 1001, "
                    "apart from history days, which start at the scenario's seed)")
    ev.add_argument("--workers", type=int, default=None,
                    help="parallel processes (default: the number of CPU cores)")
    ev.add_argument("--train-days", type=int, default=5,
                    help="without --model: history days to train on (default: 5)")
    ev.add_argument("--candidates", type=int, default=16,
                    help="without --model: candidate settings in training (default: 16)")
    ev.add_argument("--out", default=None,
                    help="output folder (default: results/SCENARIO-evaluation)")
    ev.add_argument("-q", "--quiet", action="store_true", help="print nothing")
    ev.set_defaults(func=_cmd_evaluate)

    tu = sub.add_parser("tune", help="sweep controller / probe / demand parameters, paired "
                        "against fixed timing",
                        description="Run the GPS controller for every point of a parameter "
                        "grid (or random search) on N days, each paired with fixed timing on "
                        "the same days. Every finished run is stored at once in "
                        "OUT/runs.duckdb, so an interrupted sweep resumes where it stopped. "
                        "Parameters: controller (threshold_low_kmh, low_fraction, "
                        "hysteresis_kmh, window_s, min_dwell_s, min_points, stale_after_s, "
                        "decision_interval_s), probe feed (penetration, period_s, "
                        "latency_fixed_s, latency_jitter_s, position_sigma_m, speed_sigma_kmh, "
                        "heading_sigma_deg, dropout) and demand_scale.")
    tu.add_argument("scenario", help="scenario TOML file")
    tu.add_argument("--grid", action="append", default=[],
                    help="NAME=START:STOP:STEP (stop included) or NAME=V1,V2,...; repeat for "
                    "a Cartesian grid")
    tu.add_argument("--range", action="append", default=[],
                    help="NAME=LOW:HIGH for random search (with --random N)")
    tu.add_argument("--random", type=int, default=0, help="random points drawn in the ranges")
    tu.add_argument("--search-seed", type=_seed, default=0, help="seed of the random search")
    tu.add_argument("--model", default=None,
                    help="GPS model to start from (default: an untrained model)")
    tu.add_argument("--replications", type=int, default=5,
                    help="days per point (default: 5)")
    tu.add_argument("--first-seed", type=_seed, default=2001,
                    help="seed of the first day (default: 2001)")
    tu.add_argument("--backend", choices=["local", "dask"], default="local",
                    help="local process pool (default) or dask.distributed")
    tu.add_argument("--scheduler", default=None,
                    help="with --backend dask: address of a running scheduler "
                    "(default: start a LocalCluster)")
    tu.add_argument("--workers", type=int, default=None,
                    help="local processes or LocalCluster workers (default: CPU cores)")
    tu.add_argument("--out", default=None, help="output folder (default: results/SCENARIO-sweep)")
    tu.add_argument("-q", "--quiet", action="store_true", help="print nothing")
    tu.set_defaults(func=_cmd_tune)

    es = sub.add_parser("estimate", help="estimate time loss and CO2 savings for a list of "
                        "junctions (CSV)",
                        description="For each row of JUNCTIONS (docs/estimate.md): generate a "
                        "scenario from the template, simulate history days and train a GPS "
                        "model, then evaluate fixed timing against it on N days. Writes "
                        "per-junction and per-municipality annual savings with 95 %% CI "
                        "(CSV, estimate.html), the generated scenarios and models. Bad rows "
                        "are reported (row and column) and skipped; the others still run, "
                        "and the exit code is then 2.")
    es.add_argument("junctions", help="junction list, e.g. data/junctions_example.csv")
    es.add_argument("--template", default=str(Path(__file__).resolve().parents[2] / "scenarios"
                                              / "estimate_template.toml"),
                    help="estimator assumptions (default: scenarios/estimate_template.toml)")
    es.add_argument("--replications", type=int, default=10,
                    help="evaluation days per junction (default: 10)")
    es.add_argument("--train-days", type=int, default=5,
                    help="history days to train each junction's model on (default: 5)")
    es.add_argument("--candidates", type=int, default=16,
                    help="candidate settings in training (default: 16)")
    es.add_argument("--first-seed", type=_seed, default=1001,
                    help="seed of the first evaluation day (default: 1001)")
    es.add_argument("--workers", type=int, default=None,
                    help="parallel processes (default: the CPU cores)")
    es.add_argument("--out", default=None,
                    help="output folder (default: results/JUNCTIONS-estimate)")
    es.add_argument("-q", "--quiet", action="store_true", help="print nothing")
    es.set_defaults(func=_cmd_estimate)

    xs = sub.add_parser("export-sumo", help="write a runnable Eclipse SUMO scenario",
                        description="Export SCENARIO and the vehicles of one day (--seed) to "
                        "OUTDIR as a SUMO scenario: plain network built with netconvert (no "
                        "internal lanes), every signal program as a tlLogic, vehicle types "
                        "(IDM, HBEFA4 classes), the same vehicles as gpssignal's run of that "
                        "seed, an E3 detector on the monitored stretch, and run.sumocfg "
                        "(tripinfo with emissions, summary, FCD of the probe share). Needs "
                        "the sumo extra.")
    xs.add_argument("scenario", help="scenario TOML file")
    xs.add_argument("outdir", help="output folder")
    xs.add_argument("--seed", type=_seed, default=None, help="the day (default: scenario seed)")
    xs.add_argument("--fcd", action="store_true",
                    help="FCD output of every vehicle (default: the probe share only)")
    xs.add_argument("-q", "--quiet", action="store_true", help="print nothing")
    xs.set_defaults(func=_cmd_export_sumo)

    xc = sub.add_parser("cross-check", help="fixed timing in gpssignal and in SUMO on the "
                        "same days",
                        description="For each seed: run gpssignal under fixed timing, export "
                        "the scenario with the same vehicles to SUMO, run SUMO, and compare "
                        "mean time loss, throughput, monitored-stretch speed and CO2 per "
                        "vehicle-km (docs/validation.md). Needs the sumo extra.")
    xc.add_argument("scenario", help="scenario TOML file")
    xc.add_argument("--seeds", default="1,2,3", help="comma-separated days (default: 1,2,3)")
    xc.add_argument("--model", default=None,
                    help="also run this GPS model in both simulators (in SUMO through libsumo)")
    xc.add_argument("--out", default=None,
                    help="output folder (default: results/SCENARIO-cross-check)")
    xc.add_argument("-q", "--quiet", action="store_true", help="print nothing")
    xc.set_defaults(func=_cmd_cross_check)

    val = sub.add_parser("validate", help="check a scenario file and describe it",
                         description="Load and validate SCENARIO; print what it contains.")
    val.add_argument("scenario", help="scenario TOML file")
    val.set_defaults(func=_cmd_validate)
    return p


def _option_message(parser: argparse.ArgumentParser, command: str, message: str) -> str:
    """Translate a library message that starts with a parameter name into option terms.

    The library names its parameters (``replications = 0: ...``); a user of the
    command line knows the option (``--replications = 0: ...``). The mapping is
    read from the command's own parser: each option's ``dest`` and its long name.
    """
    head = message.split(" ", 1)[0].rstrip(":")
    for action in parser._subparsers._group_actions if parser._subparsers else []:
        sub = action.choices.get(command) if isinstance(action.choices, dict) else None
        for act in sub._actions if sub is not None else []:
            if act.dest != head or not message[len(head):].startswith((" =", ":", " includes")):
                continue
            longs = [o for o in act.option_strings if o.startswith("--")]
            name = longs[0] if longs else (act.metavar or act.dest.upper())
            return str(name) + message[len(head):]
    return message


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``gpssignal`` command."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    from gpssignal.errors import GpssignalError
    from gpssignal.sim.signals import SafetyViolation

    try:
        return int(args.func(args))
    except (GpssignalError, _UsageError) as exc:
        message = _option_message(parser, args.command, str(exc))
        print(f"gpssignal {args.command}: error: {message}", file=sys.stderr)
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
