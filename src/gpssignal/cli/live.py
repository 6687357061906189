"""Live operation over RSMP: ``serve``, ``rsmp-site`` and ``sil`` (docs/live.md)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gpssignal.cli.common import (
    Interrupted,
    UsageError,
    check_model_scenario,
    check_out_dir,
    limit_options,
    load_scenario,
    other_scenario_option,
    print_table,
    quiet_options,
    seed,
    write_or_fail,
)

if TYPE_CHECKING:
    from gpssignal.live.transport import MessageLog

__all__ = ["register"]

#: How long rsmp-site stays up after its day for the supervisor's shutdown commands [s].
SHUTDOWN_GRACE_S = 30.0


def _speed(text: str) -> float:
    """``--speed F``: simulated seconds per wall second, > 0 (``inf``: unpaced)."""
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: must be a number > 0 or inf") from None
    if not v > 0 or math.isinf(1.0 / v):  # 1e-320: one simulated second would take forever
        raise argparse.ArgumentTypeError(f"{text!r}: must be a number > 0 or inf")
    return v


def _seconds(text: str) -> float:
    """Return a duration [s] from an option: a finite number >= 0."""
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: must be a number of seconds >= 0") \
            from None
    if not (math.isfinite(v) and v >= 0):
        raise argparse.ArgumentTypeError(f"{text!r}: must be a number of seconds >= 0")
    return v


def _host_port(text: str, option: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise UsageError(f"{option} = {text!r}: must be HOST:PORT")
    return host, int(port)


async def _listen_or_fail(start: Any, option: str, value: str) -> int:
    """Await ``start()`` (a server's start); an address that cannot be used is a usage error."""
    try:
        return int(await start())
    except OSError as exc:  # in use, not an address of this machine, unknown host name
        raise UsageError(f"{option} = {value!r}: cannot listen there "
                         f"({exc.strerror or exc})") from None


def _message_log(path: str | None, option: str = "--message-log") -> MessageLog:
    from gpssignal.live.transport import MessageLog

    if path is None:
        return MessageLog(None)
    p = Path(path)
    check_out_dir(p.parent, option)
    if p.exists():
        raise UsageError(f"{option} = {path!r}: exists (a log is never overwritten)")
    p.parent.mkdir(parents=True, exist_ok=True)
    return MessageLog(p)


def _drop_unused_log(mlog: MessageLog) -> None:
    """Remove the message log this command created if nothing but set-up went into it.

    Called when the command fails before it could listen: no half-written log
    is left behind (the file was created by this run, ``open(..., "x")``).
    """
    path = mlog.path
    mlog.close()
    if path is not None and path.exists() and sum(
            1 for _ in path.open(encoding="utf-8")) <= 1:
        path.unlink()


def _write_atomic(path: Path, text: str) -> None:
    """Write ``text`` through a temporary file and a rename (docs/architecture.md#conventions)."""
    import tempfile

    from gpssignal._files import ordinary_permissions

    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        ordinary_permissions(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _print_counts(title: str, counts: dict[str, int]) -> None:
    print(title)
    print_table([[k, v] for k, v in counts.items()], ["direction and type", "count"])


# ---------------------------------------------------------------------------
# serve
# ---------------------------------------------------------------------------

def _cmd_serve(args: argparse.Namespace) -> int:
    import asyncio

    from gpssignal.control.io import read_model
    from gpssignal.live.config import check_config_model, read_live_config
    from gpssignal.live.feed import FeedParser, feed_lines
    from gpssignal.live.supervisor import Supervisor

    model = read_model(args.model)
    config = read_live_config(args.config)
    if args.listen:
        host, port = _host_port(args.listen, "--listen")
        config = dataclasses.replace(config, host=host, port=port)
    # Every input is checked before the log file is created: no half-written output.
    check_config_model(config, [(j.id, j.default_program, j.relief_program)
                                for j in model.junctions])
    parser = FeedParser(args.timezone)
    lines = feed_lines(args.feed, follow=not args.no_follow)
    mlog = _message_log(args.message_log)
    sup = Supervisor(model, config, mlog, clock=args.clock, dry_run=args.dry_run)
    stopped_by_signal = False

    async def main() -> None:
        import signal

        nonlocal stopped_by_signal
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()

        def on_signal() -> None:
            nonlocal stopped_by_signal
            stopped_by_signal = True
            stop.set()

        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, on_signal)
        port = await _listen_or_fail(sup.start, "--listen" if args.listen else "rsmp.listen",
                                     f"{config.host}:{config.port}")
        if not args.quiet:
            print(f"serve: listening for RSMP sites on {config.host}:{port}; feed {args.feed}"
                  f"; clock {args.clock}{'; DRY RUN' if args.dry_run else ''}", flush=True)
        try:
            if args.wait_for_sites and not await sup.wait_for_sites(args.wait_for_sites):
                print(f"serve: not every site connected within {args.wait_for_sites:g} s; "
                      "starting anyway", flush=True)
            task = asyncio.create_task(sup.run_feed(lines, parser, stop))
            await asyncio.wait([task, asyncio.create_task(stop.wait())],
                               return_when=asyncio.FIRST_COMPLETED)
            if task.done():
                task.result()
            else:
                task.cancel()
        finally:
            await sup.shutdown()

    try:
        asyncio.run(main())
    except UsageError:
        _drop_unused_log(mlog)
        raise
    finally:
        mlog.close()
    if not args.quiet:
        print(parser.report.summary())
        _print_counts("messages:", mlog.summary())
    if stopped_by_signal:
        # As every command: a signal ends in exit code 130, saying what was kept.
        handed = "default plans commanded to every connected site"
        raise Interrupted(f"{handed}; message log {args.message_log}" if args.message_log
                          else handed)
    return 0


def _add_serve(sub: argparse._SubParsersAction) -> None:
    sp = sub.add_parser("serve", parents=[quiet_options()],
                        help="run the trained controller live as an RSMP supervisor",
                        description="Read a live probe feed, run the trained GPS controller "
                        "on it and command each junction's controller over RSMP (M0002 "
                        "setPlan); restores the default plans on exit (Ctrl-C, SIGTERM, end "
                        "of feed). See docs/live.md.")
    sp.add_argument("--model", required=True, help="model file from `gpssignal train`")
    sp.add_argument("--config", required=True, help="live configuration (TOML): sites, "
                    "plan numbers, security codes")
    sp.add_argument("--feed", required=True, help="'-' (stdin), a growing NDJSON/CSV file, "
                    "or http://HOST:PORT/PATH")
    sp.add_argument("--clock", choices=("wall", "feed"), default="wall",
                    help="decide on the wall clock (default) or on the feed's clock lines")
    sp.add_argument("--listen", default=None, metavar="HOST:PORT",
                    help="override the config's rsmp.listen")
    sp.add_argument("--message-log", default=None, metavar="FILE.ndjson",
                    help="log every message and decision (one JSON object per line)")
    sp.add_argument("--dry-run", action="store_true",
                    help="log the commands instead of sending them")
    sp.add_argument("--wait-for-sites", type=_seconds, default=0.0, metavar="S",
                    help="wait up to S seconds for every configured site before reading the "
                    "feed (default: 0, do not wait)")
    sp.add_argument("--no-follow", action="store_true",
                    help="stop at the end of a feed file instead of waiting for more")
    sp.add_argument("--timezone", default="UTC",
                    help="time zone of feed timestamps without an offset (default: UTC)")
    sp.set_defaults(func=_cmd_serve)


# ---------------------------------------------------------------------------
# rsmp-site
# ---------------------------------------------------------------------------

def _cmd_rsmp_site(args: argparse.Namespace) -> int:
    import asyncio

    from gpssignal.live.site import VirtualSite

    scenario = load_scenario(args)
    code = os.environ.get(args.security_code_env)
    if not code:
        raise UsageError(f"--security-code-env = {args.security_code_env!r}: the environment "
                         "variable is not set")
    step = args.decision_interval_s
    if not (step >= 0.001 and 3600 % step == 0 and abs(step * 1000 - round(step * 1000)) < 1e-6):
        raise UsageError(f"--decision-interval-s = {step!r}: must divide 3600 in whole "
                         "milliseconds (at least 0.001)")
    sup = _host_port(args.supervisor, "--supervisor")
    feed_host, feed_port = _host_port(args.feed_listen, "--feed-listen")
    mlog = _message_log(args.message_log)

    async def main() -> None:
        site = VirtualSite(scenario, args.seed, args.decision_interval_s, sup, code, mlog,
                           speed=args.speed, max_unsupervised_s=args.max_unsupervised_s,
                           feed_host=feed_host, feed_port=feed_port)
        port = await _listen_or_fail(site.start, "--feed-listen", args.feed_listen)
        if not args.quiet:
            print(f"rsmp-site: {len(site.states)} site(s) of {scenario.name} -> supervisor "
                  f"{args.supervisor}; feed http://{feed_host}:{port}/probes", flush=True)
        try:
            while site.result is None and site.error is None:
                await asyncio.sleep(0.2)
            # The day is over: stay up for the supervisor's last commands (it hands
            # every junction back to its own programming) until it disconnects.
            end = asyncio.get_running_loop().time() + SHUTDOWN_GRACE_S
            while asyncio.get_running_loop().time() < end and any(
                    st.end is not None and not st.end.closed for st in site.states.values()):
                await asyncio.sleep(0.1)
        finally:
            await site.stop()
        if site.error is not None:
            raise site.error

    try:
        asyncio.run(main())
    except UsageError:
        _drop_unused_log(mlog)
        raise
    except KeyboardInterrupt:
        # The message log so far is complete line by line; say that it is kept.
        raise Interrupted(f"message log {args.message_log} kept up to the interrupt"
                          if args.message_log else "no output written") from None
    finally:
        mlog.close()
    return 0


def _add_rsmp_site(sub: argparse._SubParsersAction) -> None:
    sp = sub.add_parser("rsmp-site", parents=[limit_options(), quiet_options()],
                        help="run the simulator as RSMP traffic-light controllers",
                        description="Simulate one day of SCENARIO as one RSMP site per "
                        "junction connected to a supervisor; publishes the probe feed on HTTP "
                        "(the simulation advances as the feed is read). See docs/live.md.")
    sp.add_argument("scenario", help="scenario TOML file")
    sp.add_argument("--supervisor", default="127.0.0.1:12111", metavar="HOST:PORT")
    sp.add_argument("--feed-listen", default="127.0.0.1:8123", metavar="HOST:PORT",
                    help="where the probe feed is served (default: 127.0.0.1:8123)")
    sp.add_argument("--seed", type=seed, default=1, help="the day (default: 1)")
    sp.add_argument("--speed", type=_speed, default=1.0,
                    help="simulated seconds per wall second (default: 1; inf: unpaced)")
    sp.add_argument("--decision-interval-s", type=float, default=10.0,
                    help="the feed's clock grid [s] (the model's decision_interval_s)")
    sp.add_argument("--security-code-env", default="GPSSIGNAL_RSMP_CODE",
                    help="environment variable holding the sites' security code")
    sp.add_argument("--max-unsupervised-s", type=_seconds, default=600.0,
                    help="simulated time without a supervisor after which a commanded plan "
                    "ends [s]")
    sp.add_argument("--message-log", default=None, metavar="FILE.ndjson")
    sp.set_defaults(func=_cmd_rsmp_site)


# ---------------------------------------------------------------------------
# sil
# ---------------------------------------------------------------------------

def _cmd_sil(args: argparse.Namespace) -> int:
    from gpssignal.control.io import read_model
    from gpssignal.live.sil import compare_with_simulation, run_sil

    scenario = load_scenario(args)
    model = check_model_scenario(read_model(args.model), scenario, args)
    out = Path(args.message_log)
    check_out_dir(out, "--message-log")
    if out.exists() and any(out.iterdir()):
        raise UsageError(f"--message-log = {args.message_log!r}: folder is not empty")
    out.mkdir(parents=True, exist_ok=True)
    sil = run_sil(scenario, model, args.seed, speed=args.speed, log_dir=out)
    cmp = compare_with_simulation(sil, scenario, model, args.seed)
    summary: dict[str, Any] = {
        "scenario": scenario.name, "seed": args.seed, "model": str(args.model),
        "decision_instants": sil.instants, "comparison": cmp,
        "supervisor_messages": sil.supervisor_counts, "site_messages": sil.site_counts,
        "plans": [dataclasses.asdict(p) for p in sil.plans]}
    write_or_fail(lambda: _write_atomic(out / "sil.json",
                                        json.dumps(summary, indent=1, default=str) + "\n"),
                  out, "--message-log")
    if not args.quiet:
        _print_counts("supervisor messages:", sil.supervisor_counts)
        _print_counts("site messages:", sil.site_counts)
        print(f"decision instants: {sil.instants}; decisions {cmp['decisions_sil']} (simulated "
              f"run: {cmp['decisions_sim']}); program switches {cmp['switches_sil']} "
              f"(simulated run: {cmp['switches_sim']})")
        verdict = "EQUAL" if cmp["equal"] else "DIFFERENT"
        print(f"over RSMP vs `run --controller gps`, seed {args.seed}: {verdict} (decisions "
              f"{cmp['same_decisions']}, switch times {cmp['same_switches']}, KPIs "
              f"{cmp['same_kpis']}); written: {out}")
    return 0 if cmp["equal"] else 1


def _add_sil(sub: argparse._SubParsersAction) -> None:
    sp = sub.add_parser("sil", parents=[limit_options(), quiet_options()],
                        help="software in the loop: the controller over RSMP against the "
                        "simulator, compared with the simulated run",
                        description="Start the supervisor and the virtual sites on localhost, "
                        "run one day over RSMP, then `run --controller gps` on the same seed; "
                        "exit 0 when decisions, switch times and KPIs are identical, 1 if not.")
    sp.add_argument("scenario", help="scenario TOML file")
    sp.add_argument("--model", required=True, help="model file from `gpssignal train`")
    other_scenario_option(sp)
    sp.add_argument("--seed", type=seed, default=1, help="the day (default: 1)")
    sp.add_argument("--speed", type=_speed, default=math.inf,
                    help="simulated seconds per wall second (default: inf, unpaced)")
    sp.add_argument("--message-log", required=True, metavar="DIR",
                    help="folder for supervisor.ndjson, site.ndjson and sil.json")
    sp.set_defaults(func=_cmd_sil)


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``serve``, ``rsmp-site`` and ``sil`` to ``sub``."""
    _add_serve(sub)
    _add_rsmp_site(sub)
    _add_sil(sub)
