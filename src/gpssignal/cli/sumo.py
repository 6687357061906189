"""Eclipse SUMO: ``export-sumo``, ``cross-check``, ``import-sumo``, ``import-osm``."""

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
        if summ["kpi"].eq("pedestrian_mean_delay_s").any():
            print("pedestrians are exported to SUMO (pushbutton greens shown every cycle, "
                  "no refuge island there); vehicle KPIs are motor vehicles only, cyclists "
                  "and pedestrians have their own rows")
        if "gps" in tables:
            _print_gps(tables["gps"])
        print(f"written: {out}/runs.csv, {out}/summary.csv" + (", gps.csv" if tables else ""))
    return 0


# ---------------------------------------------------------------------------
# import-sumo, import-osm
# ---------------------------------------------------------------------------

def _origin(text: str) -> tuple[float, float]:
    """``--origin LAT,LON`` in degrees."""
    try:
        lat, lon = (float(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid origin {text!r}: expected LAT,LON") from None
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise argparse.ArgumentTypeError(f"invalid origin {text!r}: out of range")
    return lat, lon


def _import(args: argparse.Namespace, net: Path) -> int:
    """Import ``net`` with the options of ``import-sumo`` / ``import-osm``; write, print."""
    from gpssignal.interop.sumo_import import import_sumo, read_counts, write_import
    from gpssignal.model.io import parse_clock

    out = Path(args.out) if args.out else Path(f"{net.name.split('.')[0]}.toml")
    if out.exists() and not args.force:
        raise UsageError(f"--out {out}: exists (give --force to replace it)")
    counts = read_counts(args.counts, "--counts") if args.counts else None
    res = import_sumo(net, args.routes or (), tls=args.tls, additional=args.additional or (),
                      counts=counts, name=args.name,
                      clock0_s=parse_clock(args.start, "--start"), end_s=args.end,
                      origin=args.origin, default_vph=args.default_vph)
    write_import(res, out)
    if not args.quiet:
        sc = res.scenario
        print(f"{sc.name}: {len(sc.junctions)} junction(s), {len(sc.links)} links, "
              f"{sum(len(j.programs) for j in sc.junctions)} programs, "
              f"{sum(sum(f.flow_vph) * sc.demand.interval_s / 3600 for f in sc.demand.flows):.0f}"
              f" vehicles; written to {out}")
        print("not represented:" + ("" if res.unrepresented else " nothing"))
        for x in res.unrepresented:
            print(f"  - {x}")
    return 0


def _cmd_import_sumo(args: argparse.Namespace) -> int:
    return _import(args, Path(args.net))


def _cmd_import_osm(args: argparse.Namespace) -> int:
    import tempfile

    from gpssignal.interop.sumo_osm import osm_to_net

    with tempfile.TemporaryDirectory(prefix="gpssignal-osm-") as work:
        net = Path(args.keep_net) if args.keep_net else Path(work) / "osm.net.xml"
        osm_to_net(args.osm, net)
        if args.name is None:
            args.name = Path(args.osm).name.split(".")[0]
        return _import(args, net)


def _import_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--routes", nargs="+", default=None, metavar="ROUTES",
                   help="SUMO route, trip or flow files (demand counted per entry link, "
                   "movement and 15 min)")
    p.add_argument("--counts", default=None, metavar="CSV",
                   help="demand from a counts CSV instead: link,movement,start,count "
                   "(start HH:MM; docs/import.md)")
    p.add_argument("--default-vph", type=float, default=None, metavar="VPH",
                   help="without routes or counts: a placeholder demand of VPH per entry link")
    p.add_argument("--tls", nargs="+", default=None, metavar="ID",
                   help="traffic lights to import (default: all)")
    p.add_argument("--additional", nargs="+", default=None, metavar="ADD",
                   help="additional files with tlLogic programs (they replace the "
                   "network's programs of the same traffic light)")
    p.add_argument("--out", default=None, help="scenario TOML to write (default: NAME.toml)")
    p.add_argument("--force", action="store_true", help="replace an existing --out file")
    p.add_argument("--name", default=None, help="scenario name (default: the file's name)")
    p.add_argument("--start", default="00:00",
                   help="clock time of SUMO time 0 (default 00:00: SUMO seconds are seconds "
                   "after midnight)")
    p.add_argument("--end", type=float, default=None, metavar="SECONDS",
                   help="count vehicles departing before this SUMO time (default: all)")
    p.add_argument("--origin", type=_origin, default=(0.0, 0.0), metavar="LAT,LON",
                   help="where network point (0,0) lies, for networks without a projection "
                   "(default 0,0)")


def _add_import(sub: argparse._SubParsersAction) -> None:
    im = sub.add_parser("import-sumo", parents=[quiet_options()],
                        help="build a scenario from a SUMO network, programs and demand",
                        description="Import the traffic-light junctions of a SUMO network "
                        "and the links between them, every tlLogic program, conflicts and "
                        "give-way from the right-of-way matrix, and the demand of route "
                        "files, as a gpssignal scenario TOML. What gpssignal cannot "
                        "represent is printed and written as a comment at the top of the "
                        "file (docs/import.md).")
    im.add_argument("net", help="SUMO network (.net.xml or .net.xml.gz)")
    _import_options(im)
    im.set_defaults(func=_cmd_import_sumo)
    io = sub.add_parser("import-osm", parents=[quiet_options()],
                        help="build a scenario from OpenStreetMap (netconvert, then "
                        "import-sumo)",
                        description="Convert an OpenStreetMap XML extract with SUMO's "
                        "netconvert (the sumo extra; options in docs/import.md: "
                        "--tls.guess-signals, --junctions.join, ...) and import the result "
                        "as import-sumo does.")
    io.add_argument("osm", help="OpenStreetMap XML file (.osm)")
    io.add_argument("--keep-net", default=None, metavar="NET",
                    help="also keep the SUMO network netconvert built (link ids are its edges)")
    _import_options(io)
    io.set_defaults(func=_cmd_import_osm)


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
    """Add ``export-sumo``, ``cross-check``, ``import-sumo`` and ``import-osm`` to ``sub``."""
    _add_export_sumo(sub)
    _add_cross_check(sub)
    _add_import(sub)
