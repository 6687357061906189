"""Experiments of many runs: ``train``, ``evaluate``, ``tune`` and ``estimate``.

Each runs its simulations on the backend of ``--backend/--workers/--scheduler``
(:func:`gpssignal.cli.common.parallel_backend`), closed when the command ends.
"""

from __future__ import annotations

import argparse
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gpssignal.cli.common import (
    RUN_LOG,
    Interrupted,
    Progress,
    StageBars,
    UsageError,
    at_least_one,
    check_model_scenario,
    check_out_dir,
    days_options,
    format_estimate,
    limit_options,
    load_scenario,
    log_name,
    other_scenario_option,
    parallel_backend,
    parallel_options,
    print_table,
    quiet_options,
    rich_table,
    run_log,
    seed,
    seeds,
    split_volatile,
    workers,
    write_log,
    write_or_fail,
)

if TYPE_CHECKING:
    import pandas as pd

    from gpssignal.control.gps import GpsModel
    from gpssignal.estimate import (
        EstimateRun,
        EstimateStore,
        JunctionSpec,
        JunctionSummary,
        RowError,
    )
    from gpssignal.estimate.junctions import Template
    from gpssignal.experiment.evaluation import Evaluation, StopRule
    from gpssignal.experiment.parallel import DaskBackend, LocalBackend
    from gpssignal.model.scenario import Scenario

__all__ = ["register"]

#: Width of wrapped text on the terminal [characters].
_WIDTH = 100
#: Rows of the training search table printed (the best ones).
_SEARCH_ROWS_SHOWN = 8
#: Most simulated days of a reconstruction library (``train --grid``).
_MAX_GRID_POINTS = 400
#: Sweep points printed (the best ones).
_SWEEP_POINTS_SHOWN = 5


# ---------------------------------------------------------------------------
# train
# ---------------------------------------------------------------------------

def _print_model(model: GpsModel) -> None:
    prov = model.provenance
    days = prov["training_days"]
    seeds = prov.get("training_seeds")
    which = f", seeds {seeds[0]}..{seeds[-1]}" if seeds else ""
    print(f"method: {prov['method']['name']} ({prov['method']['what']})")
    print(f"trained on {len(days)} days ({days[0]} .. {days[-1]}{which}); "
          f"{prov['points_matched']:,} of {prov['points_read']:,} probe points on monitored "
          "stretches")
    for st in model.stretches:
        print(f"  stretch {st.id}: free-flow {st.free_flow_kmh:.1f} km/h (limit "
              f"{st.speed_limit_kmh:g}); switch below {st.threshold_low_kmh:.1f}, back above "
              f"{st.threshold_high_kmh:.1f} km/h")
    print(f"  window {model.window_s:g} s, dwell {model.min_dwell_s:g} s, min points "
          f"{model.min_points}; stale fall-back after {model.stale_after_s:g} s")


def _print_fits(model: GpsModel) -> None:
    rec = model.provenance.get("reconstruction")
    if not rec:
        return
    print()
    print("day reconstruction (fitted to the probe speeds per stretch and 15-min slot):")
    print_table([[f["date"], f["demand_level"], f["peak_shift_s"], f["rmse_kmh"],
                  f["rmse_mean_day_kmh"], f["cells"]] for f in rec["fits"]],
                ["date", "level", "shift_s", "rmse_kmh", "rmse_mean_day", "slots"])


def _print_search(model: GpsModel, table: pd.DataFrame) -> None:
    prov = model.provenance
    if "search" not in prov:
        for note in prov.get("notes", []):
            print(f"note: {note}")
        return
    best = prov["search"]["best"]
    print()
    print(f"search ({prov['search']['objective']}):")
    shown = table.sort_values("mean_time_loss_s").head(_SEARCH_ROWS_SHOWN)
    print_table([[("* " if i == best else "  ") + str(i), r["low_fraction"],
                  r["hysteresis_kmh"], r["window_s"], r["min_dwell_s"], r["mean_time_loss_s"],
                  r["switches_per_day"]] for i, r in shown.iterrows()],
                ["#", "low_frac", "hyst_kmh", "window_s", "dwell_s", "time_loss_s",
                 "switch/day"])
    ex = prov["existing_plan"]
    print(f"existing plan ({ex['controller']}) on {ex['on']}: {ex['mean_time_loss_s']:.1f} "
          "s/veh")
    for note in prov["search"].get("notes", []):
        print(f"note: {note}")
    if "held_out" in prov:
        ho = prov["held_out"]
        print()
        print(f"held-out days (seeds {ho['seeds'][0]}..{ho['seeds'][-1]}, not used in "
              "training; same demand per day for every controller):")
        print_table([[r["controller"], r["mean_time_loss_s"], r["stretch_speed_kmh"],
                      float(sum(r["switches_per_day"]) / len(r["switches_per_day"]))]
                     for r in ho["results"]],
                    ["controller", "time_loss_s/veh", "stretch_kmh_peak", "switches/day"])


def _grid(text: str) -> tuple[int, int]:
    """``--grid LEVELSxSHIFTS`` of the reconstruction library."""
    lv, x, sh = text.lower().partition("x")
    if not (x and lv.isdigit() and sh.isdigit() and int(lv) >= 2 and int(sh) >= 2
            and int(lv) * int(sh) <= _MAX_GRID_POINTS):
        raise UsageError(f"--grid = {text!r}: must be LEVELSxSHIFTS, each >= 2, at most "
                         f"{_MAX_GRID_POINTS} points (e.g. 6x5)")
    return int(lv), int(sh)


def _cmd_train(args: argparse.Namespace) -> int:
    import pandas as pd

    from gpssignal.control.io import write_model
    from gpssignal.experiment.training import train

    at_least_one(args, "--candidates")
    if args.test_days < 0:
        raise UsageError(f"--test-days = {args.test_days}: must be >= 0")
    grid = _grid(args.grid)
    workers(args)
    out = Path(args.out)
    check_out_dir(out.parent, "--out")
    if out.is_dir():
        raise UsageError(f"--out = {str(out)!r}: is a folder; give the model file to write "
                         "(e.g. model.json)")
    sc = load_scenario(args)
    with parallel_backend(args) as backend:
        model = train(sc, args.history, method=args.method, candidates=args.candidates,
                      search_seed=args.search_seed, backend=backend, test_days=args.test_days,
                      progress=StageBars(sc.name, args.quiet), program_log=args.program_log,
                      timezone=args.timezone, grid=grid)
        n_workers = backend.workers
    train_wall_s = model.provenance.pop("train_wall_s", None)  # the log only
    search = model.provenance.get("search")
    table = pd.DataFrame(search["candidates"] if search else [])
    search_csv = out.with_name(out.stem + ".search.csv")
    write_or_fail(lambda: write_model(model, out), out)
    written = [str(out)]
    if search:
        write_or_fail(lambda: table.to_csv(search_csv, index=False), out)
        written.append(str(search_csv))
    log = log_name(out)
    write_log(log, run_log("train", train_wall_s=train_wall_s, workers=n_workers))
    if not args.quiet:
        _print_model(model)
        _print_fits(model)
        _print_search(model, table)
        print(f"written: {', '.join(written)}, {log} ({train_wall_s or 0:.0f} s)")
    return 0


# ---------------------------------------------------------------------------
# evaluate
# ---------------------------------------------------------------------------

def _controllers(args: argparse.Namespace) -> list[str] | None:
    """Return ``--controllers`` as a list (None: every arm), checked against ``--model``."""
    if args.controllers in (None, "all"):
        return None
    controllers = [c.strip() for c in args.controllers.split(",") if c.strip()]
    for c in controllers:
        if c.partition(":")[0] not in ("fixed", "tod", "gps", "oracle"):
            raise UsageError(f"--controllers = {args.controllers!r}: {c!r} is not one of "
                             "fixed, fixed:PROGRAM, tod, gps, oracle")
    if args.model is not None and "gps" not in controllers:
        raise UsageError(f"--model = {args.model!r}: only with 'gps' in --controllers")
    return controllers


def _stop_rule(args: argparse.Namespace) -> StopRule | None:
    """``--until-ci KPI=HALF_WIDTH`` with ``--max-days``."""
    from gpssignal.experiment.evaluation import StopRule

    if args.until_ci is None:
        return None
    kpi, eq, value = args.until_ci.partition("=")
    try:
        target = float(value)
    except ValueError:
        target = float("nan")
    if not eq or not kpi:
        raise UsageError(f"--until-ci = {args.until_ci!r}: expected KPI=HALF_WIDTH, e.g. "
                         "mean_time_loss_s=1.0")
    return StopRule(kpi=kpi.strip(), half_width=target, max_days=args.max_days)


def _evaluation_model(args: argparse.Namespace, sc: Scenario, days: list[int],
                      backend: LocalBackend | DaskBackend, progress: StageBars
                      ) -> tuple[GpsModel, str, bytes | None]:
    """Return the GPS model: ``--model``, or one trained on separate history days.

    Returns the model, how it was obtained, and its file when trained here.
    """
    import tempfile

    from gpssignal.control.io import read_model, write_model
    from gpssignal.experiment.evaluation import train_for_evaluation

    if args.model is not None:
        return (check_model_scenario(read_model(args.model), sc, args),
                f"given with --model {args.model}", None)
    if not args.quiet:
        print(textwrap.fill(f"No --model given: training a GPS model first on "
                            f"{args.train_days} separate history days (seeds {sc.seed}.."
                            f"{sc.seed + args.train_days - 1}, not evaluation days), "
                            f"{args.candidates} candidates.", width=_WIDTH))
    with tempfile.TemporaryDirectory(prefix="gpssignal-train-") as work:
        model, _ = train_for_evaluation(sc, work, args.train_days, days,
                                        candidates=args.candidates, backend=backend,
                                        progress=progress)
        # Neither the temporary folder's name nor the timing belongs in an output.
        for key in ("history", "history_source"):   # temporary paths, not kept
            if key in model.provenance or key == "history":
                model.provenance[key] = "(simulated by this command; not kept)"
        model.provenance.pop("train_wall_s", None)
        blob = write_model(model, Path(work) / "model.json").read_bytes()
    how = (f"trained by this command on {args.train_days} simulated history days, "
           f"{args.candidates} candidates, by re-simulating those days (same-seed: an upper "
           "bound of training on recorded probe data; written to model.json)")
    return model, how, blob


def _arm_heading(name: str) -> str:
    """Return the table heading of an arm, wrapped to a narrow column."""
    return "\n".join(textwrap.wrap(name, width=11))


def _print_evaluation(ev: Evaluation, meta: dict[str, Any], out: Path, wall_s: float) -> None:
    import pandas as pd

    from gpssignal.report import comparison_table, headline_table, verdict_sentences
    from gpssignal.report.document import kpi_label
    from gpssignal.report.plots import arm_label

    days = ev.seeds
    types = ", ".join(f"{t} {n}" for t, n in
                      pd.Series(list(ev.day_types().values())).value_counts().items())
    print(textwrap.fill(f"gpssignal {meta['version']} | scenario {ev.scenario.name} "
                        f"({meta['scenario_hash']}) | {len(days)} days (seeds {days[0]}.."
                        f"{days[-1]}: {types}) | {ev.workers} worker(s)", width=_WIDTH))
    print()
    for line in verdict_sentences(ev):
        print(textwrap.fill(line, width=_WIDTH))
    print()
    head = headline_table(ev, compact=True)
    rich_table([[f"{r[0]} [{r[1]}]", *(str(v) for v in r[2:])] for r in head.values.tolist()],
               ["KPI [unit]", *(_arm_heading(str(c)) for c in head.columns[2:])],
               title="Every plan: mean ±95 % CI half-width over the days")
    comp = comparison_table(ev)
    for against, g in (comp.groupby("against", sort=False) if len(comp) else []):
        rich_table([[f"{r['KPI']} [{r['unit']}]", r["difference [95 % CI]"],
                     r["relative [95 % CI]"].split(" [")[0], r["verdict"]]
                    for _, r in g.iterrows()],
                   ["KPI [unit]", "difference [95 % CI]", "relative", "verdict"],
                   title=f"GPS controller − {against}, paired by day")
    an = ev.annual_table()
    an = an[(an["baseline"] == ev.baseline) & (an["controller"].isin(
        [c for c in ("gps", ev.best_fixed, "oracle") if c]))]
    for c, g in an.groupby("controller", sort=False):
        rich_table([[f"{kpi_label(r['quantity'])} [{r['unit'].replace(' CO2', '')}]",
                     *format_estimate(r["saving_per_year"], r["ci95_low"], r["ci95_high"]),
                     r["verdict"]] for _, r in g.iterrows()],
                   ["saved per year", "mean", "95 % CI", "verdict"],
                   title=f"{arm_label(str(c))} against the existing plan "
                         f"({arm_label(ev.baseline)}), annualised")
    if len(an):
        print(textwrap.fill(f"counted: {an['counted'].iloc[0]}", width=_WIDTH))
    print()
    print(textwrap.fill(f"definitions: docs/definitions.md, docs/evaluation.md (the CSV files "
                        f"use the KPI keys, e.g. mean_time_loss_s = "
                        f"{kpi_label('mean_time_loss_s')}) | report: {out / 'report.html'} "
                        f"({wall_s:.0f} s)", width=_WIDTH))


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from gpssignal.evaluate.io import write_tables
    from gpssignal.experiment.evaluation import evaluate_controllers
    from gpssignal.report import build_report
    from gpssignal.report.document import EarlyFigures

    at_least_one(args, "--train-days", "--candidates")
    days = seeds(args)
    workers(args)
    controllers = _controllers(args)
    sc = load_scenario(args)
    out = Path(args.out) if args.out else Path("results") / f"{sc.name}-evaluation"
    check_out_dir(out, "--out")
    t0 = time.perf_counter()
    progress = StageBars(sc.name, args.quiet)
    model, how, blob = None, "", None
    rule = _stop_rule(args)
    # With workers, this process only waits while they simulate: it draws the
    # showcase figures meanwhile, and the others in a forked process once
    # every day is in (while the selection runs go on, and it makes the
    # tables). Not with --until-ci: its later batches add days.
    early = EarlyFigures() if rule is None else None
    with parallel_backend(args) as backend:
        if controllers is None or "gps" in controllers:
            model, how, blob = _evaluation_model(args, sc, days, backend, progress)
        if backend.workers <= 1:
            early = None
        ev = evaluate_controllers(sc, controllers, days, model=model, backend=backend,
                                  progress=progress.stage("evaluation"), until_ci=rule,
                                  day_type=args.day_type,
                                  on_showcase=early.start_showcase if early is not None
                                  else None,
                                  on_days=early.start_rest if early is not None else None)
    if how:
        ev.model_info["how"] = how
    meta, volatile = split_volatile({**ev.meta(), "scenario_file": str(args.scenario),
                                     "first_seed": args.first_seed})
    tables = {"kpis": ev.kpi_table(), "differences": ev.difference_table(),
              "capture": ev.capture_table(), "day_types": ev.day_type_table(),
              "annual": ev.annual_table(), "runs": ev.runs(), "intervals": ev.interval_means(),
              "approaches": ev.approach_means(), "movements": ev.movement_means(),
              "switches": ev.switches()}
    files = build_report(ev, early.result if early is not None else None) | (
        {"model.json": blob} if blob is not None else {})
    files[RUN_LOG] = run_log("evaluate", **volatile, workers=ev.workers,
                             wall_s=round(ev.wall_s, 1),
                             command_wall_s=time.perf_counter() - t0)
    write_or_fail(lambda: write_tables(tables, out, meta, files=files), out)
    if not args.quiet:
        _print_evaluation(ev, meta, out, time.perf_counter() - t0)
    return 0


# ---------------------------------------------------------------------------
# tune
# ---------------------------------------------------------------------------

def _sweep_points(args: argparse.Namespace) -> tuple[list[dict[str, float]], list[str]]:
    """Return the points of ``--grid``, ``--range`` and ``--random``, and the swept names."""
    from gpssignal.errors import SweepSpecError

    try:
        return _sweep_points_within_limit(args)
    except SweepSpecError as exc:  # the library names the field, the CLI its option
        raise SweepSpecError(str(exc).replace("(max_points)", "(raise with --max-points)")
                             ) from None


def _sweep_points_within_limit(args: argparse.Namespace
                               ) -> tuple[list[dict[str, float]], list[str]]:
    """Return the points and swept names (see :func:`_sweep_points`)."""
    from gpssignal.experiment.sweep import grid_points, parse_grid, parse_range, random_points

    if not args.grid and not args.range:
        raise UsageError("--grid: give at least one --grid NAME=START:STOP:STEP (or --range "
                         "with --random N)")
    if args.range and args.random < 1:
        raise UsageError(f"--random = {args.random}: --range needs --random N >= 1")
    if args.random and not args.range:
        raise UsageError(f"--random = {args.random}: needs at least one --range")
    if args.max_points < 1:
        raise UsageError(f"--max-points = {args.max_points}: must be at least 1")
    grids = [parse_grid(g, max_points=args.max_points) for g in args.grid]
    ranges = [parse_range(r) for r in args.range]
    points = grid_points(grids, max_points=args.max_points) if grids else [{}]
    if ranges:
        extra = random_points(ranges, args.random, args.search_seed,
                              max_points=args.max_points)
        points = [{**p, **q} for p in points for q in extra]
    return points, [g[0] for g in grids] + [r[0] for r in ranges]


def _sweep_model(args: argparse.Namespace, sc: Scenario) -> tuple[GpsModel, str]:
    """``--model``, or the untrained model of the scenario; and a note saying which."""
    if args.model is not None:
        from gpssignal.control.io import read_model

        return check_model_scenario(read_model(args.model), sc, args), f"model {args.model}"
    from gpssignal.control.gps import model_from_scenario

    return model_from_scenario(sc), ("untrained model (free-flow = speed limit; thresholds "
                                     "and windows from the swept values and the model "
                                     "defaults)")


def _sweep_progress(bar: Progress, name: str, t0: float) -> Callable[[int, int, int], None]:
    """``progress(done, total, before)`` of a sweep: the bar with runs done and an ETA."""
    def progress(done: int, total: int, before: int) -> None:
        ran = done - before
        eta = ""
        if ran > 0 and done < total:
            eta = f" ETA {(time.perf_counter() - t0) / ran * (total - done):.0f} s"
        bar.label = f"{name} sweep {done}/{total} runs{eta}"
        bar(done / total if total else 1.0)

    return progress


def _print_sweep(summary: pd.DataFrame, params: list[str], meta: dict[str, Any],
                 out: Path) -> None:
    from gpssignal.report.sweep import best_setting_text, sensitivity_text

    print(f"{meta['total']} runs: {meta['skipped']} already stored, {meta['run']} run "
          f"now in {meta['wall_s']:.1f} s ({meta['backend']}, {meta['workers']} worker(s))")
    best = summary.sort_values("time_loss_saving", ascending=False).head(_SWEEP_POINTS_SHOWN)
    unit = summary["time_loss_unit"].iloc[0] if len(summary) else ""
    rich_table([[", ".join(f"{p} {r[p]:g}" for p in params),
                 *format_estimate(r["time_loss_saving"], r["time_loss_saving_ci_low"],
                                  r["time_loss_saving_ci_high"]),
                 str(r["time_loss_verdict"]),
                 format_estimate(r["co2_saving"], r["co2_saving_ci_low"],
                                 r["co2_saving_ci_high"])[0],
                 f"{r['gps_speed_peak_kmh']:.1f}"] for _, r in best.iterrows()],
               ["setting", f"time loss\nsaved\n[{unit}]", "95 % CI", "verdict",
                "CO₂ saved\n[kg/day]", "GPS speed\npeak\n[km/h]"],
               title=f"Best {min(len(summary), _SWEEP_POINTS_SHOWN)} of {len(summary)} points "
                     "(GPS controller against the existing plan, paired by day)")
    for line in best_setting_text(summary, params):
        print(textwrap.fill(line, width=_WIDTH, initial_indent="  ", subsequent_indent="  "))
    for line in sensitivity_text(summary, params):
        print(textwrap.fill(line, width=_WIDTH, initial_indent="  ", subsequent_indent="  "))
    print(f"results: {out / 'runs.duckdb'} (resumable), {out / 'points.csv'}, "
          f"{out / 'sweep.html'}")


def _cmd_tune(args: argparse.Namespace) -> int:
    from gpssignal.evaluate.io import write_tables
    from gpssignal.experiment.sweep import (
        TIMING_COLUMNS,
        ResultStore,
        baseline_arms,
        model_identity,
        point_summary,
        run_sweep,
    )
    from gpssignal.report.sweep import sweep_figures, sweep_report

    days = seeds(args)
    workers(args)
    points, params = _sweep_points(args)
    sc = load_scenario(args)
    out = Path(args.out) if args.out else Path("results") / f"{sc.name}-sweep"
    check_out_dir(out, "--out")
    model, model_note = _sweep_model(args, sc)
    arms = baseline_arms(sc, oracle=not args.no_oracle)
    store = ResultStore(out / "runs.duckdb", sc, model_identity(model))
    bar = Progress(f"{sc.name} sweep", enabled=not args.quiet)
    t0 = time.perf_counter()
    try:
        with parallel_backend(args) as backend:
            counts = run_sweep(sc, model, points, days, store, backend,
                               progress=_sweep_progress(bar, sc.name, t0), baselines=arms)
        runs = store.frame()
    except KeyboardInterrupt:
        raise Interrupted(f"every finished run is kept in {store.path}; the same command "
                          "resumes, without running them again") from None
    finally:
        bar.close()
        store.close()
    wall = time.perf_counter() - t0
    summary = point_summary(runs, points, days, arms, objective=args.objective)
    figures = sweep_figures(summary, params)
    header = (f"Scenario {sc.name}; {len(points)} points x {len(days)} days (seeds "
              f"{days[0]}..{days[-1]}), GPS controller paired against the existing plan "
              f"({arms[0]}), beside {', '.join(arms[1:])}; {model_note}; ranked by "
              f"{args.objective}.")
    meta = {"scenario": sc.name, "scenario_hash": store.scenario_hash, "model": store.model_id,
            "seeds": days, "points": len(points), "parameters": params, "baselines": arms,
            "objective": args.objective, "total": counts["total"]}
    # What differs between two runs of the same sweep (timing, workers, how much
    # of it a resume found stored) goes to the run log only: every other output
    # is byte-identical, resumed or not (docs/sweeps.md).
    logged = {"backend": backend.name, "workers": backend.workers,
              "skipped": counts["skipped"], "run": counts["run"], "wall_s": round(wall, 1)}
    write_or_fail(lambda: write_tables(
        {"points": summary, "runs": runs.drop(columns=["params", *TIMING_COLUMNS])}, out, meta,
        files={**figures, **sweep_report(summary, params, figures, header),
               RUN_LOG: run_log("tune", **logged)}), out)
    if not args.quiet:
        _print_sweep(summary, params, {**meta, **logged}, out)
    return 0


# ---------------------------------------------------------------------------
# estimate
# ---------------------------------------------------------------------------

class _EstimateLog:
    """The estimate's terminal output as junctions finish: one line each, and bars.

    Counts the junctions kept (estimated now or found in the store), so an
    interrupt can say how many are kept.
    """

    def __init__(self, total: int, quiet: bool) -> None:
        self.total, self.quiet = total, quiet
        self.kept = self.seen = 0
        self.t0 = time.perf_counter()

    def bars(self, spec: JunctionSpec) -> StageBars:
        """Return the progress bars of one junction's training and evaluation."""
        return StageBars(f"[{self.seen + 1}/{self.total}] {spec.name}", self.quiet)

    def done(self, spec: JunctionSpec, how: str) -> None:
        """Note and print that a junction finished (``how``: estimated, stored, failed)."""
        self.seen += 1
        self.kept += how != "failed"
        if not self.quiet:
            what = {"estimated": "done", "stored": "done before (kept in the store, not run "
                    "again)", "failed": "skipped"}[how]
            print(f"[{self.seen}/{self.total}] {spec.name}: {what} "
                  f"({time.perf_counter() - self.t0:.0f} s)", file=sys.stderr)


def _print_estimate(jt: pd.DataFrame, mt: pd.DataFrame, out: Path) -> None:
    """Print the per-junction and per-municipality savings, rounded to their uncertainty."""
    def cells(r: pd.Series) -> list[str]:
        tl = format_estimate(r["time_loss_saved_veh_h_per_year"], r["time_loss_ci95_low"],
                             r["time_loss_ci95_high"])
        co2 = format_estimate(r["co2_saved_t_per_year"], r["co2_ci95_low"],
                              r["co2_ci95_high"])
        return [*tl, *co2]

    ok = jt[jt["status"] == "ok"]
    rich_table([[str(r["name"]), *cells(r), str(r["verdict"])] for _, r in ok.iterrows()],
               ["Junction", "Time loss saved\n[veh·h/year]", "95 % CI", "CO₂ saved\n[t/year]",
                "95 % CI", "GPS vs existing plan"],
               title="Per junction (existing plan − GPS controller; 95 % CI over the days)")
    rich_table([[str(r["municipality"]), str(r["junctions"]), *cells(r)]
                for _, r in mt.iterrows()],
               ["Municipality", "Junctions", "Time loss saved\n[veh·h/year]", "95 % CI",
                "CO₂ saved\n[t/year]", "95 % CI"], title="Per municipality")
    print(f"results: {out / 'estimate.html'}, {out / 'junctions.csv'}, "
          f"{out / 'scenarios'}/")


def _estimate_files(results: list[JunctionSummary], jt: pd.DataFrame, mt: pd.DataFrame,
                    header: str) -> dict[str, bytes]:
    """Return the estimator's report, and each junction's generated scenario and model."""
    from gpssignal.estimate.run import movement_table
    from gpssignal.model.io import parse_scenario
    from gpssignal.report.estimate import estimate_report

    files = estimate_report(jt, mt, header, movement_table(results),
                            [parse_scenario(r.scenario_toml) for r in results])
    for r in results:
        files[f"scenarios/{r.spec.id}.toml"] = r.scenario_toml.encode()
        files[f"models/{r.spec.id}.json"] = r.model_json
    return files


def _estimate_inputs(args: argparse.Namespace
                     ) -> tuple[list[int], Path, Template, list[JunctionSpec], list[RowError]]:
    """Check the options and read the template and the list (before any work)."""
    from gpssignal.estimate import read_junctions, read_template

    at_least_one(args, "--train-days", "--candidates")
    days = seeds(args)
    workers(args)
    out = Path(args.out) if args.out else \
        Path("results") / f"{Path(args.junctions).stem}-estimate"
    check_out_dir(out, "--out")
    tpl = read_template(args.template)
    specs, errors = read_junctions(args.junctions, tpl)
    for e in errors:
        print(f"gpssignal estimate: error: {e}; the row is skipped", file=sys.stderr)
    return days, out, tpl, specs, errors


def _capacity_checks(specs: list[JunctionSpec], tpl: Template, args: argparse.Namespace
                     ) -> tuple[dict[str, Any], list[JunctionSpec]]:
    """Check each junction's capacity before simulating; return the checks and the skipped.

    Each answer is printed on stderr; a junction under-saturated in every slot
    is skipped with ``--skip-undersaturated`` (else simulated and flagged); a
    row whose scenario cannot be built is left for the run to report.
    """
    from gpssignal.estimate import build_scenario
    from gpssignal.estimate.capacity import capacity_check
    from gpssignal.estimate.junctions import RowError

    checks: dict[str, Any] = {}
    skipped: list[JunctionSpec] = []
    for spec in specs:
        try:
            sc, _ = build_scenario(spec, tpl)
        except RowError:
            continue
        c = capacity_check(sc, float(tpl["saturation_flow_vphpl"]),
                           float(tpl["busy_day_factor"]), float(tpl["undersaturated_x"]))
        checks[spec.id] = c
        skip = c.skip and args.skip_undersaturated
        if skip:
            skipped.append(spec)
        if not args.quiet:
            print(f"row {spec.row} ({spec.name}): capacity check: {c.text()}"
                  f"{'; not simulated (--skip-undersaturated)' if skip else ''}",
                  file=sys.stderr)
    return checks, skipped


def _estimate_run(args: argparse.Namespace, specs: list[JunctionSpec], tpl: Template,
                  days: list[int], store: EstimateStore) -> tuple[EstimateRun, int, str]:
    """Estimate the junctions not yet in ``store``; an interrupt says what is kept."""
    from gpssignal.estimate import estimate_all

    log = _EstimateLog(len(specs), args.quiet)
    try:
        with parallel_backend(args) as backend:
            run = estimate_all(specs, tpl, days, args.train_days, args.candidates, store=store,
                               backend=backend, progress=log.bars, on_done=log.done,
                               oracle=not args.no_oracle)
    except KeyboardInterrupt:
        if not log.kept:
            raise Interrupted("no junction had finished; no output written") from None
        raise Interrupted(f"{log.kept} of {len(specs)} junctions finished and are kept in "
                          f"{store.path}; the same command resumes, without running them "
                          "again") from None
    return run, backend.workers, backend.name


def _cmd_estimate(args: argparse.Namespace) -> int:
    from gpssignal import __version__
    from gpssignal.errors import EstimateInputError
    from gpssignal.estimate import (
        EstimateStore,
        junction_table,
        municipality_table,
        store_identity,
    )
    from gpssignal.estimate.gis import gis_files
    from gpssignal.estimate.store import STORE_NAME
    from gpssignal.evaluate.io import write_tables

    days, out, tpl, specs, errors = _estimate_inputs(args)
    checks, skipped = _capacity_checks(specs, tpl, args)
    located = specs   # every row with a checked position: the GIS layers' points
    specs = [s for s in specs if s not in skipped]
    src = str(args.junctions)
    meta: dict[str, Any] = {"junctions_file": src, "template": str(tpl.path), "seeds": days,
                            "train_days": args.train_days, "candidates": args.candidates,
                            "version": __version__}
    if not specs:
        jt = junction_table([], errors, skipped, checks)
        write_or_fail(lambda: write_tables({"junctions": jt}, out, {
            **meta, "rows_ok": 0, "rows_skipped": len(skipped),
            "rows_failed": len(errors)}, files=gis_files(jt, located, tpl)), out)
        if skipped:   # every usable junction is under-saturated: that is the answer
            if not args.quiet:
                print(f"no junction simulated: {len(skipped)} under-saturated "
                      f"(see {out / 'junctions.csv'})")
            return 2 if errors else 0
        raise EstimateInputError(f"JUNCTIONS = {src!r}: no usable row ({len(errors)} bad, "
                                 f"listed in {out / 'junctions.csv'})")
    t0 = time.perf_counter()
    store = EstimateStore(out / STORE_NAME, store_identity(days, args.train_days,
                                                           args.candidates, not args.no_oracle))
    try:
        run, n_workers, backend_name = _estimate_run(args, specs, tpl, days, store)
    finally:
        store.close()
    results, failed = run.summaries, run.failed
    jt = junction_table(results, errors + failed, skipped, checks)
    mt = municipality_table(results)
    header = (f"{len(results)} of {len(specs) + len(errors)} junctions estimated from "
              f"{src}; each: {args.train_days} training days, {args.candidates} "
              f"candidates, fixed timing vs GPS controller on {len(days)} days (seeds "
              f"{days[0]}..{days[-1]}); assumptions: {tpl.path.name}. Periods and "
              "directions: each junction's period from the list, all approaches.")
    meta.update(rows_ok=len(results), rows_skipped=len(skipped),
                rows_failed=len(errors) + len(failed))
    if not results:
        write_or_fail(lambda: write_tables({"junctions": jt}, out, meta,
                                           files=gis_files(jt, located, tpl)), out)
        raise EstimateInputError(f"JUNCTIONS = {src!r}: no usable row ({len(jt)} bad, "
                                 f"listed in {out / 'junctions.csv'})")
    logged = {"backend": backend_name, "workers": n_workers, "reused": run.reused,
              "wall_s": round(time.perf_counter() - t0, 1),
              "train_wall_s": {r.spec.id: r.train_wall_s for r in results}}
    files = {**_estimate_files(results, jt, mt, header), **gis_files(jt, located, tpl),
             RUN_LOG: run_log("estimate", **logged)}
    from gpssignal.estimate.run import movement_table

    write_or_fail(lambda: write_tables({"junctions": jt, "municipalities": mt,
                                        "movements": movement_table(results)}, out, meta,
                                       files=files), out)
    if not args.quiet:
        _print_estimate(jt, mt, out)
    return 2 if errors or failed else 0


# ---------------------------------------------------------------------------
# Parsers
# ---------------------------------------------------------------------------

def _training_options(what: str) -> argparse.ArgumentParser:
    """``--train-days`` and ``--candidates`` of ``evaluate`` and ``estimate``."""
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--train-days", type=int, default=5,
                   help=f"{what}history days to train on (default: 5)")
    p.add_argument("--candidates", type=int, default=16,
                   help=f"{what}candidate settings in training (default: 16)")
    return p


def _add_train(sub: argparse._SubParsersAction) -> None:
    tr = sub.add_parser("train", parents=[quiet_options(), limit_options(), parallel_options()],
                        help="train the GPS controller on a probe history",
                        description="Measure free-flow speeds and speed profiles of the "
                        "monitored stretches from a probe history (a recorded CSV/Parquet file "
                        "or folder of probe points, or a `gpssignal history` folder), then "
                        "choose thresholds, hysteresis, window and dwell. --method reconstruct "
                        "(default) fits each history day's demand level and peak shift to its "
                        "probe speeds and searches candidate settings (seeded random search, "
                        "lowest mean time loss) on days simulated with those factors and fresh "
                        "seeds; data-driven sets thresholds from the speed distribution without "
                        "simulating; same-seed re-simulates a gpssignal history's own seeds (an "
                        "upper bound no operator can reproduce). Writes the model (JSON, with "
                        "its method and data in the provenance) and MODEL.search.csv.")
    tr.add_argument("scenario", help="scenario TOML file: geometry, programs, base demand")
    tr.add_argument("--history", required=True,
                    help="probe points: .csv, .parquet, a folder of Parquet files, or a "
                    "folder written by `gpssignal history`")
    tr.add_argument("--method", choices=["reconstruct", "data-driven", "same-seed"],
                    default="reconstruct",
                    help="how settings are chosen (default: reconstruct); same-seed needs a "
                    "`gpssignal history` of this scenario and is an upper bound")
    tr.add_argument("--program-log", default=None, metavar="CSV",
                    help="which program ran when: columns time (HH:MM), program, optionally "
                    "date (default: the scenario's existing plan every day)")
    tr.add_argument("--timezone", default="UTC",
                    help="time zone of CSV timestamps without an offset (default: UTC)")
    tr.add_argument("--grid", default="6x5", metavar="LEVELSxSHIFTS",
                    help="reconstruct: demand levels x peak shifts simulated for the fit "
                    "(default: %(default)s)")
    tr.add_argument("--out", required=True, help="model file to write (.json)")
    tr.add_argument("--candidates", type=int, default=16,
                    help="candidate settings to simulate (default: 16)")
    tr.add_argument("--search-seed", type=seed, default=0,
                    help="seed of the random search (default: 0)")
    tr.add_argument("--test-days", type=int, default=0,
                    help="also compare fixed, tod and the model on this many held-out days")
    tr.set_defaults(func=_cmd_train)


def _add_evaluate(sub: argparse._SubParsersAction) -> None:
    days = days_options(10, "simulated days per controller (default: %(default)s)", 1001,
                        "seed of the first day; days are first..first+N-1 (default: "
                        "%(default)s, apart from history days, which start at the "
                        "scenario's seed)")
    ev = sub.add_parser("evaluate", parents=[quiet_options(), limit_options(), days,
                                             parallel_options(),
                                             _training_options("without --model: ")],
                        help="compare every plan with the existing one over N days and "
                        "write the report",
                        description="Simulate N weekdays (replications) under every program "
                        "fixed, the time-of-day plan, the GPS controller and the hindsight bound "
                        "(oracle), with the same demand per day; report every KPI with its mean "
                        "and 95 % confidence interval, the paired differences against the "
                        "scenario's existing plan, the best fixed program (chosen on the "
                        "model's training days) and time of day, the capture ratio, results "
                        "per day type, annualised savings; write report.html (self-contained), "
                        "report.md, PNG figures and CSV/Parquet tables to --out. Without "
                        "--model, a GPS model is first trained on separate history days.")
    ev.add_argument("scenario", help="scenario TOML file, e.g. scenarios/vallensbaek.toml")
    ev.add_argument("--model", default=None, help="GPS model from `gpssignal train` (default: "
                    "train one first)")
    other_scenario_option(ev)
    ev.add_argument("--controllers", default="all",
                    help="comma-separated, among fixed (the default program), fixed:PROGRAM, "
                    "tod, gps, oracle (default: all: every program fixed, tod, gps, oracle); "
                    "the scenario's existing plan is always included")
    ev.add_argument("--until-ci", default=None, metavar="KPI=HALF_WIDTH",
                    help="keep adding days until the 95 %% half-width of (gps - existing "
                    "plan) for KPI is at most HALF_WIDTH (KPI units), e.g. "
                    "mean_time_loss_s=1.0; see --max-days")
    ev.add_argument("--max-days", type=int, default=60,
                    help="with --until-ci: the most days to run (default: %(default)s)")
    ev.add_argument("--day-type", default=None,
                    help="run every day as this day type of the scenario's mix (default: "
                    "each day draws its type from the mix)")
    ev.add_argument("--out", default=None,
                    help="output folder (default: results/SCENARIO-evaluation)")
    ev.set_defaults(func=_cmd_evaluate)


def _add_tune(sub: argparse._SubParsersAction) -> None:
    days = days_options(5, "days per point (default: %(default)s)", 2001,
                        "seed of the first day (default: %(default)s)")
    tu = sub.add_parser("tune", parents=[quiet_options(), limit_options(), days,
                                         parallel_options()],
                        help="sweep controller / probe / demand parameters, paired "
                        "against the existing plan",
                        description="Run the GPS controller for every point of a parameter "
                        "grid (or random search) on N days, each paired with the scenario's "
                        "existing plan on the same days, beside every program fixed and the "
                        "hindsight bound (oracle). Every finished run is stored at once in "
                        "OUT/runs.duckdb, so an interrupted sweep resumes where it stopped. "
                        "Parameters: controller (threshold_low_kmh, low_fraction, "
                        "hysteresis_kmh, window_s, min_dwell_s, min_points, stale_after_s, "
                        "decision_interval_s), probe feed (penetration, period_s, "
                        "latency_fixed_s, latency_jitter_s, position_sigma_m, speed_sigma_kmh, "
                        "heading_sigma_deg, dropout) and demand_scale.")
    tu.add_argument("scenario", help="scenario TOML file")
    tu.add_argument("--objective", choices=["vehicle-hours", "person-hours"],
                    default="vehicle-hours",
                    help="rank by the time loss of motor vehicles (default) or of every person: "
                    "occupants, bus passengers, cyclists, pedestrians (docs/sweeps.md)")
    tu.add_argument("--grid", action="append", default=[],
                    help="NAME=START:STOP:STEP (stop included) or NAME=V1,V2,...; repeat for "
                    "a Cartesian grid")
    tu.add_argument("--range", action="append", default=[],
                    help="NAME=LOW:HIGH for random search (with --random N)")
    tu.add_argument("--random", type=int, default=0, help="random points drawn in the ranges")
    tu.add_argument("--search-seed", type=seed, default=0, help="seed of the random search")
    tu.add_argument("--model", default=None,
                    help="GPS model to start from (default: an untrained model)")
    other_scenario_option(tu)
    tu.add_argument("--max-points", type=int, default=10_000,
                    help="refuse a sweep of more points than this (default: %(default)s)")
    tu.add_argument("--no-oracle", action="store_true",
                    help="skip the hindsight bound (about 15 extra simulated days per day and "
                    "demand point on the default scenario)")
    tu.add_argument("--out", default=None, help="output folder (default: results/SCENARIO-sweep)")
    tu.set_defaults(func=_cmd_tune)


def _add_estimate(sub: argparse._SubParsersAction) -> None:
    days = days_options(10, "evaluation days per junction (default: %(default)s)", 1001,
                        "seed of the first evaluation day (default: %(default)s)")
    es = sub.add_parser("estimate", parents=[quiet_options(), days, parallel_options(),
                                             _training_options("")],
                        help="estimate time loss and CO2 savings for a list of "
                        "junctions (CSV or .xlsx)",
                        description="For each row of JUNCTIONS (docs/estimate.md): generate a "
                        "scenario from the template, simulate history days and train a GPS "
                        "model, then evaluate it on N days against the existing plan, beside the "
                        "best fixed program and the hindsight bound. Writes "
                        "per-junction and per-municipality annual savings with 95 % CI "
                        "(CSV, estimate.html), the generated scenarios and models. Bad rows "
                        "are reported (row, and every bad column) and skipped; the others "
                        "still run, and the exit code is then 2. Each finished junction is "
                        "stored at once in OUT/estimate.duckdb: an interrupted estimate "
                        "resumes where it stopped when run again with the same --out.")
    es.add_argument("junctions", help="junction list: CSV (, or ; separated, UTF-8 or "
                    "Windows-1252, decimal point or comma) or .xlsx, e.g. "
                    "data/junctions_example.csv; a row's program_file is read relative to "
                    "its folder")
    es.add_argument("--template", default=None,
                    help="estimator assumptions (default: the bundled "
                    "scenarios/estimate_template.toml)")
    es.add_argument("--out", default=None,
                    help="output folder (default: results/JUNCTIONS-estimate); the same "
                    "folder resumes an interrupted estimate")
    es.add_argument("--no-oracle", action="store_true",
                    help="skip the hindsight bound (about 5 extra simulated days per "
                    "evaluation day and junction)")
    es.add_argument("--skip-undersaturated", action="store_true",
                    help="do not simulate the junctions the capacity check finds under-saturated "
                    "in every slot (by default they are simulated and flagged)")
    es.set_defaults(func=_cmd_estimate)


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``train``, ``evaluate``, ``tune`` and ``estimate`` to ``sub``."""
    _add_train(sub)
    _add_evaluate(sub)
    _add_tune(sub)
    _add_estimate(sub)
