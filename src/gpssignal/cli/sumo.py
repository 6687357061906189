"""Eclipse SUMO as a reference: ``export-sumo`` and ``cross-check`` (the sumo extra)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from gpssignal.cli.common import (
    UsageError,
    check_model_scenario,
    check_out_dir,
    limit_options,
    load_scenario,
    other_scenario_option,
    print_table,
    quiet_options,
    seed,
)

if TYPE_CHECKING:
    import pandas as pd

    from gpssignal.model.scenario import Scenario

__all__ = ["register"]

#: The largest demand scale of a cross-check sweep (as a day type's demand factor).
_MAX_SCALE = 3.0


# ---------------------------------------------------------------------------
# export-sumo
# ---------------------------------------------------------------------------

def _cmd_export_sumo(args: argparse.Namespace) -> int:
    from gpssignal.interop.sumo_export import export_sumo

    sc = load_scenario(args)
    out = Path(args.outdir)
    check_out_dir(out, "OUTDIR")
    day = sc.seed if args.seed is None else args.seed
    ex = export_sumo(sc, out, seed=day, fcd=args.fcd)
    if not args.quiet:
        print(f"SUMO scenario of {sc.name} (day seed {day}) written to {ex.folder}; link "
              "indices checked: " + "; ".join(f"{j}: {' '.join(g)}"
                                               for j, g in ex.link_groups.items()))
        print(f"run it with: sumo -c {ex.config}")
    return 0


# ---------------------------------------------------------------------------
# cross-check
# ---------------------------------------------------------------------------

def _seed_list(text: str) -> list[int]:
    """``--seeds 1,2,3``: at least one seed, each >= 0."""
    try:
        seeds = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise UsageError(f"--seeds = {text!r}: expected integers like 1,2,3") from None
    if not seeds or min(seeds) < 0:
        raise UsageError(f"--seeds = {text!r}: give at least one seed >= 0")
    return seeds


def _print_gps(gps: pd.DataFrame) -> None:
    g = gps.pivot_table(index="seed", columns=["simulator", "controller"],
                        values="mean_time_loss_s")
    print()
    print("GPS controller - fixed timing, mean time loss per vehicle [s], per day:")
    print_table([[s_, g.loc[s_, ("gpssignal", "gps")] - g.loc[s_, ("gpssignal", "fixed")],
                  g.loc[s_, ("sumo", "gps")] - g.loc[s_, ("sumo", "fixed")]]
                 for s_ in g.index], ["seed", "gpssignal", "sumo (libsumo)"])


def _scale_list(text: str) -> list[float]:
    """``--sweep 0.5,0.75,1.0``: demand scales, each in (0, 3]."""
    try:
        scales = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise UsageError(f"--sweep = {text!r}: expected numbers like 0.5,1.0,1.3") from None
    if not scales or not all(0 < x <= _MAX_SCALE for x in scales):
        raise UsageError(f"--sweep = {text!r}: give scales in (0, {_MAX_SCALE:g}]")
    return scales


def _monitored_link(sc: Scenario) -> str | None:
    """Return the approach where the first monitored stretch ends (None without a stop line)."""
    if not sc.stretches:
        return None
    link = next(lk for lk in sc.links if lk.id == sc.stretches[0].links[-1])
    return link.id if link.to_arm is not None else None


def _print_approach(asumm: pd.DataFrame, link: str | None) -> None:
    """Queue and discharge flow of the monitored approach, per day type and scale."""
    if link is None:
        return
    a = asumm[asumm["approach"] == link]
    cols = ["queue_mean_m_gpssignal", "queue_mean_m_sumo", "queue_mean_m_pct",
            "discharge_vph_gpssignal", "discharge_vph_sumo", "discharge_vph_pct"]
    print()
    print(f"approach {link}: mean queue [m] (longest lane) and saturated discharge flow "
          "[veh/h/lane], gpssignal / SUMO / SUMO vs gpssignal [%]:")
    print_table(a[["day_type", "demand_scale", *cols]].values.tolist(),
                ["day_type", "demand_scale", "queue g", "queue s", "queue %", "discharge g",
                 "discharge s", "discharge %"])


def _cross_check_sweep(args: argparse.Namespace) -> int:
    """``cross-check --sweep``: both simulators across the demand range."""
    import tempfile

    from gpssignal import __version__
    from gpssignal.evaluate.io import write_tables
    from gpssignal.interop.compare import (
        compare_demand_sweep,
        sweep_approach_summary,
        sweep_summary,
    )
    from gpssignal.interop.sumo import sumo_version
    from gpssignal.model.io import scenario_hash
    from gpssignal.report.validation import saturation_figure

    seeds, scales = _seed_list(args.seeds), _scale_list(args.sweep)
    sc = load_scenario(args)
    names = [d.name for d in sc.day_types]
    types: list[str | None] = ([t.strip() for t in args.day_types.split(",") if t.strip()]
                               if args.day_types else
                               [t for t in ("ordinary", "heavy") if t in names] or [None])
    out = Path(args.out) if args.out else Path("results") / f"{sc.name}-cross-check-sweep"
    check_out_dir(out, "--out")
    version = sumo_version()
    with tempfile.TemporaryDirectory(prefix="gpssignal-xsweep-") as work:
        df, appr = compare_demand_sweep(sc, scales, seeds, work, types)
    summ = sweep_summary(df)
    asumm = sweep_approach_summary(appr)
    write_tables({"sweep_runs": df.drop(columns="wall_s"), "sweep": summ,
                  "sweep_approaches": appr, "sweep_approach_summary": asumm}, out,
                 {"scenario": sc.name, "scenario_hash": scenario_hash(sc), "seeds": seeds,
                  "scales": scales, "day_types": [t or "mix" for t in types],
                  "version": __version__,
                  "sumo": version}, files={"sweep.png": saturation_figure(summ)})
    if not args.quiet:
        wide = summ.pivot_table(index=["day_type", "demand_scale"], columns="kpi",
                                values="sumo_vs_gpssignal_pct").reset_index()
        cols = ["day_type", "demand_scale", "mean_time_loss_s", "stretch_speed_peak_kmh",
                "co2_g_per_veh_km", "throughput_vph"]
        print(f"{sc.name}, fixed timing, seeds {args.seeds}: SUMO vs gpssignal [%] "
              f"({version}; same vehicles)")
        print_table(wide[cols].values.tolist(), cols)
        _print_approach(asumm, _monitored_link(sc))
        print(f"written: {out}/sweep.csv, {out}/sweep_runs.csv, {out}/sweep_approaches.csv, "
              f"{out}/sweep_approach_summary.csv, {out}/sweep.png")
    return 0


def _cmd_cross_check(args: argparse.Namespace) -> int:
    import tempfile

    from gpssignal import __version__
    from gpssignal.evaluate.io import write_tables
    from gpssignal.interop.compare import compare_fixed, compare_gps, summary
    from gpssignal.interop.sumo import sumo_version
    from gpssignal.model.io import scenario_hash

    if args.sweep is not None:
        return _cross_check_sweep(args)
    seeds = _seed_list(args.seeds)
    sc = load_scenario(args)
    out = Path(args.out) if args.out else Path("results") / f"{sc.name}-cross-check"
    check_out_dir(out, "--out")
    model = None
    if args.model is not None:  # checked before SUMO runs
        from gpssignal.control.io import read_model

        model = check_model_scenario(read_model(args.model), sc, args)
    version = sumo_version()
    tables = {}
    with tempfile.TemporaryDirectory(prefix="gpssignal-xcheck-") as work:
        df = compare_fixed(sc, seeds, work)
        if model is not None:
            tables["gps"] = compare_gps(sc, model, seeds, work)
    summ = summary(df)
    write_tables({"runs": df, "summary": summ, **tables}, out,
                 {"scenario": sc.name, "scenario_hash": scenario_hash(sc), "seeds": seeds,
                  "version": __version__, "sumo": version})
    if not args.quiet:
        print(f"{sc.name}, fixed timing, seeds {','.join(map(str, seeds))}: gpssignal "
              f"{__version__} vs {version} (same vehicles; definitions: docs/validation.md)")
        print_table([[r["kpi"], r["gpssignal"], r["sumo"], r["sumo_vs_gpssignal_pct"]]
                     for _, r in summ.iterrows()],
                    ["kpi", "gpssignal", "sumo", "sumo vs gpssignal %"])
        if "gps" in tables:
            _print_gps(tables["gps"])
        print(f"written: {out}/runs.csv, {out}/summary.csv" + (", gps.csv" if tables else ""))
    return 0


# ---------------------------------------------------------------------------
# Parsers
# ---------------------------------------------------------------------------

def _add_export_sumo(sub: argparse._SubParsersAction) -> None:
    xs = sub.add_parser("export-sumo", parents=[quiet_options(), limit_options()],
                        help="write a runnable Eclipse SUMO scenario",
                        description="Export SCENARIO and the vehicles of one day (--seed) to "
                        "OUTDIR as a SUMO scenario: plain network built with netconvert (no "
                        "internal lanes), every signal program as a tlLogic, vehicle types "
                        "(IDM, HBEFA4 classes), the same vehicles as gpssignal's run of that "
                        "seed, an E3 detector on the monitored stretch, lane-area and "
                        "stop-line detectors on every approach lane, and run.sumocfg "
                        "(tripinfo with emissions, summary, FCD of the probe share). Needs "
                        "the sumo extra.")
    xs.add_argument("scenario", help="scenario TOML file")
    xs.add_argument("outdir", help="output folder")
    xs.add_argument("--seed", type=seed, default=None, help="the day (default: scenario seed)")
    xs.add_argument("--fcd", action="store_true",
                    help="FCD output of every vehicle (default: the probe share only)")
    xs.set_defaults(func=_cmd_export_sumo)


def _add_cross_check(sub: argparse._SubParsersAction) -> None:
    xc = sub.add_parser("cross-check", parents=[quiet_options(), limit_options()],
                        help="fixed timing in gpssignal and in SUMO on the same days",
                        description="For each seed: run gpssignal under fixed timing, export "
                        "the scenario with the same vehicles to SUMO, run SUMO, and compare "
                        "mean time loss, throughput, monitored-stretch speed and CO2 per "
                        "vehicle-km (docs/validation.md). Needs the sumo extra.")
    xc.add_argument("scenario", help="scenario TOML file")
    xc.add_argument("--seeds", default="1,2,3", help="comma-separated days (default: 1,2,3)")
    xc.add_argument("--model", default=None,
                    help="also run this GPS model in both simulators (in SUMO through libsumo)")
    other_scenario_option(xc)
    xc.add_argument("--out", default=None,
                    help="output folder (default: results/SCENARIO-cross-check)")
    xc.add_argument("--sweep", default=None, metavar="SCALES",
                    help="compare across the demand range instead: demand × each scale, "
                    "e.g. 0.5,0.75,0.9,1.0,1.1,1.2,1.3 (writes sweep.csv and sweep.png)")
    xc.add_argument("--day-types", default=None,
                    help="with --sweep: day types of the scenario's mix to run (default: "
                    "ordinary and heavy where the mix has them, else the plain scenario; "
                    "incident days are not exported to SUMO)")
    xc.set_defaults(func=_cmd_cross_check)


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``export-sumo`` and ``cross-check`` to ``sub``."""
    _add_export_sumo(sub)
    _add_cross_check(sub)
