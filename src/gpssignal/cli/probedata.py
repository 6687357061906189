"""Recorded probe data: ``import-fcd``, ``check-probes`` and ``replay``."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import TYPE_CHECKING

from gpssignal.cli.common import (
    UsageError,
    check_date,
    check_model_scenario,
    check_out_dir,
    decision_frame,
    limit_options,
    load_scenario,
    other_scenario_option,
    quiet_options,
    write_or_fail,
)

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from gpssignal.control.gps import GpsRuntime

__all__ = ["register"]

#: Help of ``--timezone`` where it reads probe files.
_TIMEZONE_HELP = "time zone of timestamps without an offset (default: UTC)"


# ---------------------------------------------------------------------------
# import-fcd
# ---------------------------------------------------------------------------

def _origin(text: str | None) -> tuple[float, float] | None:
    """``--origin LAT,LON`` [deg]."""
    if not text:
        return None
    try:
        lat, lon = (float(x) for x in text.split(","))
    except ValueError:
        raise UsageError(f"--origin = {text!r}: must be LAT,LON in degrees") from None
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise UsageError(f"--origin = {text!r}: out of range")
    return lat, lon


def _cmd_import_fcd(args: argparse.Namespace) -> int:
    from gpssignal.model.io import parse_clock
    from gpssignal.probes.io import import_fcd

    out = Path(args.out)
    check_out_dir(out.parent, "--out")
    check_date(args.date)
    origin = _origin(args.origin)
    t0 = time.perf_counter()
    start = parse_clock(args.start, "--start")
    done = write_or_fail(lambda: import_fcd(
        args.fcd, out, date=args.date, start_clock_s=start, timezone=args.timezone,
        origin=origin, anonymisation=args.anonymisation), out)
    if not args.quiet:
        wall = time.perf_counter() - t0
        print(done.report.summary())
        print(f"{done.rows:,} points imported from {args.fcd} ({args.anonymisation}) in "
              f"{wall:.1f} s; written: {done.path}")
    return 0


# ---------------------------------------------------------------------------
# check-probes
# ---------------------------------------------------------------------------

def _cmd_check_probes(args: argparse.Namespace) -> int:
    import json

    from gpssignal.probes.io import read_probes, write_probes

    out = Path(args.out) if args.out else None
    if out is not None:
        check_out_dir(out.parent, "--out")
        if out.suffix not in (".csv", ".parquet"):
            raise UsageError(f"--out = {str(out)!r}: must end in .csv or .parquet")
    read = read_probes(args.file, naive_tz=args.timezone)
    print(read.report.summary())
    if out is not None:
        write_or_fail(lambda: write_probes(read.frame, out, {"source": str(args.file),
                                                              **read.report.as_dict()}), out)
        report = out.with_name(out.name + ".drops.json")
        write_or_fail(lambda: report.write_text(
            json.dumps(read.report.as_dict(), indent=2) + "\n", encoding="utf-8"), out)
        print(f"written: {out}, {report}")
    return 0


# ---------------------------------------------------------------------------
# replay
# ---------------------------------------------------------------------------

def _ms(frame: pd.DataFrame, col: str) -> np.ndarray:
    """Convert a UTC timestamp column to integer milliseconds since the epoch."""
    return frame[col].astype("datetime64[ms, UTC]").astype("int64").to_numpy()


def _window_frame(rt: GpsRuntime) -> pd.DataFrame:
    """Return the windowed stretch speeds a replay kept, one row per (decision time, stretch)."""
    import pandas as pd

    rows = [(t_ms, sid, int(count[k]), mean[k], hmean[k])
            for t_ms, count, mean, hmean in rt.window_rows
            for k, sid in enumerate(rt.stretch_ids)]
    windows = pd.DataFrame(rows, columns=["t_ms", "stretch", "points", "mean_kmh",
                                          "harmonic_mean_kmh"])
    windows.insert(1, "time", pd.to_datetime(windows["t_ms"], unit="ms", utc=True))
    return windows


def _print_decisions(decisions: pd.DataFrame) -> None:
    import numpy as np

    for _, r in decisions.iterrows():
        speed = "" if np.isnan(r["mean_kmh"]) else f" ({r['stretch']} {r['mean_kmh']:.1f} " \
            f"km/h, {r['points']} points)"
        print(f"  {r['time']:%Y-%m-%d %H:%M:%S}Z {r['junction']}: {r['from_program']} -> "
              f"{r['to_program']} [{r['reason']}]{speed}")


def _cmd_replay(args: argparse.Namespace) -> int:
    from gpssignal.control.gps import replay
    from gpssignal.control.io import read_model
    from gpssignal.evaluate.io import write_tables
    from gpssignal.probes.io import read_probes

    out = Path(args.out)
    check_out_dir(out, "--out")
    if args.allow_other_scenario and args.scenario is None:
        raise UsageError("--allow-other-scenario: only with --scenario (without it, replay "
                         "checks no scenario)")
    model = read_model(args.model)
    trained_for = model.provenance.get("scenario_hash")
    scenario: dict[str, object] = {}
    if args.scenario is not None:
        from gpssignal.model.io import scenario_hash

        sc = load_scenario(args)
        model = check_model_scenario(model, sc, args)
        scenario = {"scenario_file": str(args.scenario), "scenario_hash": scenario_hash(sc),
                    "allow_other_scenario": bool(args.allow_other_scenario)}
    read = read_probes(args.probes, naive_tz=args.timezone)
    f = read.frame
    rt = replay(model, _ms(f, "time_sent"), _ms(f, "time_received"), f["lat_deg"].to_numpy(),
                f["lon_deg"].to_numpy(), f["speed_kmh"].to_numpy(),
                f["heading_deg"].to_numpy(dtype=float), keep_windows=True)
    decisions = decision_frame(rt)
    info = {"model_file": str(args.model), "probe_file": str(args.probes),
            "read": read.report.as_dict(), "points": rt.points_in,
            "points_matched": rt.points_matched,
            "points_off_stretch": rt.points_in - rt.points_matched,
            "stale_fallbacks": rt.stale_events,
            "model_training": trained_for, **scenario}
    files = write_or_fail(lambda: write_tables(
        {"decisions": decisions, "windows": _window_frame(rt)}, out, info), out)
    print(read.report.summary())
    print(f"{rt.points_matched:,} of {rt.points_in:,} points on monitored stretches "
          f"({rt.points_in - rt.points_matched:,} off every stretch, discarded); "
          f"{len(decisions)} decisions, {rt.stale_events} stale-feed fall-backs")
    _print_decisions(decisions)
    print(f"written: {out} ({len(files)} files)")
    return 0


# ---------------------------------------------------------------------------
# Parsers
# ---------------------------------------------------------------------------

def _add_import_fcd(sub: argparse._SubParsersAction) -> None:
    fc = sub.add_parser("import-fcd", parents=[quiet_options()],
                        help="convert SUMO FCD output to a probe file",
                        description="Convert SUMO --fcd-output XML (streaming) to the probe "
                        "schema. Use --origin for plain x/y output; without it the file must "
                        "be --fcd-output.geo output (x = lon, y = lat). Points with no time, "
                        "or a missing or out-of-range position, speed or heading are dropped "
                        "and counted, as check-probes does.")
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
    fc.set_defaults(func=_cmd_import_fcd)


def _add_check_probes(sub: argparse._SubParsersAction) -> None:
    ck = sub.add_parser("check-probes", help="read a probe file and report what is unusable",
                        description="Read a probe file (CSV or Parquet) with the checks every "
                        "command applies: ragged rows (more or fewer fields than the header), "
                        "rows with bad timestamps, missing values, positions, speeds or "
                        "headings out of range, receipt before sending, or duplicates are "
                        "dropped and counted; unknown columns are ignored. With --out, write "
                        "the usable rows and a .drops.json report.")
    ck.add_argument("file", help="probe file (.csv, .parquet, or a folder of Parquet files)")
    ck.add_argument("--out", default=None, help="write the usable rows here")
    ck.add_argument("--timezone", default="UTC", help=_TIMEZONE_HELP)
    ck.set_defaults(func=_cmd_check_probes)


def _add_replay(sub: argparse._SubParsersAction) -> None:
    rp = sub.add_parser("replay", parents=[limit_options()],
                        help="replay recorded probe data through a trained model",
                        description="Run the GPS controller's run-time path offline over a "
                        "probe file and write when each junction would have switched and "
                        "why (decisions) and the windowed stretch speeds behind it (windows). "
                        "With --scenario, the model must have been trained for that scenario "
                        "(its scenario hash), unless --allow-other-scenario.")
    rp.add_argument("probes", help="probe file (.csv, .parquet) or folder of Parquet files")
    rp.add_argument("--model", required=True, help="model file from `gpssignal train`")
    rp.add_argument("--scenario", default=None, metavar="SCENARIO.toml",
                    help="check that --model was trained for this scenario (default: no check)")
    other_scenario_option(rp)
    rp.add_argument("--out", required=True, help="output folder")
    rp.add_argument("--timezone", default="UTC", help=_TIMEZONE_HELP)
    rp.set_defaults(func=_cmd_replay)


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``import-fcd``, ``check-probes`` and ``replay`` to ``sub``."""
    _add_import_fcd(sub)
    _add_check_probes(sub)
    _add_replay(sub)
