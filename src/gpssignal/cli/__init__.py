"""The ``gpssignal`` command line.

Simulating days (:mod:`gpssignal.cli.simulate`):

* ``run``: one day of a scenario under a controller; tables and a summary.
* ``probes``: one day's GPS probe stream, to a file.
* ``history``: N weekdays of probe data and ground truth under the existing plan.
* ``validate``: check a scenario file and describe it.

Recorded probe data (:mod:`gpssignal.cli.probedata`):

* ``import-fcd``: SUMO FCD output to a probe file.
* ``check-probes``: read a probe file and report what is unusable.
* ``replay``: recorded probe data through a trained model, offline.

Experiments of many runs (:mod:`gpssignal.cli.experiments`), each with
``--workers``, ``--backend {local,dask}`` and ``--scheduler``:

* ``train``: the GPS controller on a probe history.
* ``evaluate``: controllers against fixed timing over N days, and the report.
* ``tune``: parameter sweeps, paired against fixed timing, resumable.
* ``estimate``: savings for a list of junctions (CSV).

Eclipse SUMO as a reference (:mod:`gpssignal.cli.sumo`):

* ``export-sumo``: a runnable SUMO scenario.
* ``cross-check``: fixed timing in gpssignal and in SUMO on the same days.

Live operation over RSMP (:mod:`gpssignal.cli.live`, docs/live.md):

* ``serve``: the trained controller as an RSMP supervisor on a live feed.
* ``rsmp-site``: the simulator as RSMP traffic-light controllers.
* ``sil``: both on localhost, compared with the simulated GPS run.

Thin: a handler parses its options, calls the library, prints. Errors a user
can cause end in one line ``gpssignal CMD: error: ...`` and exit code 2; a
signal safety violation (a bug) in exit code 1; an interrupt (Ctrl-C or
SIGTERM) in 130, with one line saying what was kept: ``no output written``, or,
for the commands that store each finished unit of work (``tune``,
``estimate``), how much is kept where and that the same command resumes.
"""

from __future__ import annotations

import argparse
import gc
import logging
import sys
from collections.abc import Sequence

from gpssignal.cli import experiments, live, probedata, simulate, sumo
from gpssignal.cli.common import Interrupted, Parser, UsageError, lean_arrow_pool

__all__ = ["build_parser", "command", "main"]

#: Exit codes.
EXIT_USAGE = 2
EXIT_BUG = 1
EXIT_INTERRUPTED = 130


def build_parser() -> argparse.ArgumentParser:
    """Return the ``gpssignal`` argument parser, with every command group's subparsers."""
    from gpssignal import __version__

    p = Parser(prog="gpssignal", description="Simulate signalised junctions controlled by "
               "GPS probe speeds and measure time loss against fixed timing.")
    p.add_argument("--version", action="version", version=f"gpssignal {__version__}")
    p.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    sub = p.add_subparsers(dest="command", required=True, parser_class=Parser)
    for group in (simulate, probedata, experiments, sumo, live):
        group.register(sub)
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


def command() -> int:
    """Run the ``gpssignal`` console command (and ``python -m gpssignal``): :func:`main`, then exit.

    At exit the interpreter collects every object the command made before
    it clears its modules (about 0.3 s after an evaluation); the process is
    ending, so they are frozen first (``gc.freeze``), which that collection
    skips. (Not in :func:`main`, which tests call in their own process.)
    """
    code = main()
    gc.freeze()
    return code


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``gpssignal`` command line with ``argv`` (default: this process's)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    if getattr(args, "lean_arrow_pool", False):
        lean_arrow_pool()   # before anything below imports pyarrow
    from gpssignal._compiled import library_folder

    try:
        library_folder()   # GPSSIGNAL_KERNELS: a bad value is refused, not silently ignored
    except ValueError as exc:
        print(f"gpssignal {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    from gpssignal.errors import GpssignalError
    from gpssignal.experiment.parallel import sigterm_interrupts
    from gpssignal.sim.signals import SafetyViolation

    kept = ""
    try:
        with sigterm_interrupts():  # SIGTERM stops a command as Ctrl-C does
            return int(args.func(args))
    except (GpssignalError, UsageError) as exc:
        message = _option_message(parser, args.command, str(exc))
        print(f"gpssignal {args.command}: error: {message}", file=sys.stderr)
        return EXIT_USAGE
    except SafetyViolation as exc:
        print(f"gpssignal {args.command}: signal safety violation (a bug, please report): "
              f"{exc}", file=sys.stderr)
        return EXIT_BUG
    except BrokenPipeError:
        # Output piped into a command that stopped reading (e.g. `| head`).
        sys.stderr.close()
        return 0
    except KeyboardInterrupt as exc:
        # What the command kept (tune, estimate), or nothing.
        kept = exc.kept if isinstance(exc, Interrupted) else "no output written"
    # Printed here, after the except block: the interrupt's frames (and any
    # progress bar they held, which rich wipes when it is collected) are gone.
    gc.collect()
    print(f"gpssignal {args.command}: interrupted; {kept}", file=sys.stderr)
    _forget_interrupt()
    return EXIT_INTERRUPTED


def _forget_interrupt() -> None:
    """Let ``python -m gpssignal`` end with :data:`EXIT_INTERRUPTED` after an interrupt.

    CPython marks an interrupt that ends code run from source text
    (``exec``/``eval`` of a string, as ``dataclasses`` and numba do while
    defining functions) as unhandled, even when a caller catches it; under
    ``-m`` the interpreter then ends itself with SIGINT (status -2, 130 in a
    shell) after finalisation instead of returning this exit code (seen about
    once in 60 SIGTERMs of ``estimate`` while it was importing). Running any
    source text resets that mark.
    """
    exec("")
