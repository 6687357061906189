"""What the command groups share.

The parser class with one-line errors, parent parsers for the options several
commands offer (``-q``, ``--workers/--backend/--scheduler``,
``--replications/--first-seed``), the one-line usage error, the progress
bar, plain-text tables, and the checks of seeds, dates, counts and output
folders. Nothing here simulates: heavy imports stay inside functions, so
``gpssignal --help`` starts fast.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn, TypeVar

from gpssignal.report.numbers import format_estimate, round_to_uncertainty

if TYPE_CHECKING:
    import pandas as pd
    from rich.console import Console
    from rich.progress import Progress as RichProgress
    from rich.progress import TaskID

    from gpssignal.control.gps import GpsModel, GpsRuntime
    from gpssignal.experiment.parallel import DaskBackend, LocalBackend
    from gpssignal.model.scenario import Scenario

__all__ = [
    "BACKEND_NAMES",
    "RUN_LOG",
    "Interrupted",
    "Parser",
    "Progress",
    "StageBars",
    "UsageError",
    "at_least_one",
    "check_date",
    "check_model_scenario",
    "check_out_dir",
    "console",
    "days_options",
    "decision_frame",
    "format_estimate",
    "lean_arrow_pool",
    "log_name",
    "other_scenario_option",
    "parallel_backend",
    "parallel_options",
    "print_table",
    "quiet_options",
    "rich_table",
    "round_to_uncertainty",
    "run_log",
    "seed",
    "seeds",
    "split_volatile",
    "workers",
    "write_log",
    "write_or_fail",
]

T = TypeVar("T")

#: ``--backend`` choices: :data:`gpssignal.experiment.parallel.BACKENDS`, repeated
#: here so that building the parser imports no simulation code (a test keeps
#: the two equal).
BACKEND_NAMES = ("local", "dask")
#: A progress bar appears only once a run has taken this long [s].
PROGRESS_DELAY_S = 1.0
#: Width of the progress bar [characters].
BAR_WIDTH = 30
#: Numbers at least this large are printed without decimals.
NO_DECIMALS_FROM = 1e5
#: The run log of a command writing a folder: the one output file that differs
#: between two runs of the same command with the same seed.
RUN_LOG = "run.log.json"
#: Metadata keys that differ between runs of the same command (timing, worker
#: counts): kept out of every output but the run log.
VOLATILE_KEYS = ("wall_s", "workers", "train_wall_s")


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors (exit code 2)."""

    def error(self, message: str) -> NoReturn:
        """Exit with code 2 and a one-line message (argparse prints the usage too)."""
        self.exit(2, f"{self.prog}: error: {message}\n")


class UsageError(Exception):
    """A bad command-line value; reported as one line, exit code 2."""


class Interrupted(KeyboardInterrupt):
    """An interrupt (Ctrl-C, SIGTERM) that says what the command kept.

    A command that keeps finished work (``tune``, ``estimate``) turns the
    interrupt into this one; the command line prints ``interrupted; KEPT``
    instead of ``interrupted; no output written``.
    """

    def __init__(self, kept: str) -> None:
        super().__init__(kept)
        self.kept = kept


# ---------------------------------------------------------------------------
# Parent parsers (``parents=[...]`` of a command's parser)
# ---------------------------------------------------------------------------

def quiet_options() -> argparse.ArgumentParser:
    """``-q/--quiet``."""
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("-q", "--quiet", action="store_true", help="print nothing")
    return p


def limit_options() -> argparse.ArgumentParser:
    """``--max-vehicles``, ``--max-steps``, ``--max-cycle-s``, ``--max-file-mb``.

    The scenario's resource budget (:class:`gpssignal.model.scenario.ScenarioLimits`);
    a scenario beyond it is refused at load with the figure and the limit.
    """
    from gpssignal.model.scenario import DEFAULT_LIMITS

    d = DEFAULT_LIMITS

    p = argparse.ArgumentParser(add_help=False)
    g = p.add_argument_group("scenario size limits (raise them deliberately)")
    g.add_argument("--max-vehicles", type=float, default=d.max_vehicles,
                   help="most vehicles expected on the heaviest day (default: %(default)g)")
    g.add_argument("--max-steps", type=float, default=d.max_steps,
                   help="most vehicle-step rounds of one run (default: %(default)g)")
    g.add_argument("--max-cycle-s", type=float, default=d.max_cycle_s,
                   help="longest signal cycle [s] (default: %(default)g)")
    g.add_argument("--max-file-mb", type=float, default=d.max_file_bytes / 2**20,
                   help="largest scenario or demand file [MiB] (default: %(default)g)")
    return p


#: Scenario limit fields and the options that set them.
_LIMIT_OPTIONS = {"max_vehicles": "--max-vehicles", "max_steps": "--max-steps",
                  "max_cycle_s": "--max-cycle-s", "max_file_bytes": "--max-file-mb"}


def load_scenario(args: argparse.Namespace) -> Scenario:
    """Read ``args.scenario`` within the limits the options set."""
    from gpssignal.errors import ScenarioError
    from gpssignal.model.io import read_scenario
    from gpssignal.model.scenario import ScenarioLimits

    for option in ("max_vehicles", "max_steps", "max_cycle_s", "max_file_mb"):
        value = getattr(args, option)
        if not (value > 0 and math.isfinite(value)):
            raise UsageError(f"--{option.replace('_', '-')} = {value!r}: must be a number > 0")
    limits = ScenarioLimits(max_vehicles=args.max_vehicles, max_steps=args.max_steps,
                            max_cycle_s=args.max_cycle_s,
                            max_file_bytes=int(args.max_file_mb * 2**20))
    try:
        return read_scenario(_scenario_path(args.scenario), limits=limits)
    except ScenarioError as exc:
        # The library names the limit's field; the command line names its option.
        message = str(exc)
        for name, option in _LIMIT_OPTIONS.items():
            message = message.replace(f"({name})", f"(raise with {option})")
        raise ScenarioError(message) from None


def _scenario_path(text: str) -> Path:
    """Return a scenario's path: the file ``text``, else the bundled scenario of that name.

    ``gpssignal run vallensbaek.toml`` (or ``vallensbaek``) runs the default
    scenario shipped with the package when no such file is in the current
    folder, so an installed wheel runs without the repository.
    """
    p = Path(text)
    if p.exists() or p.parent != Path("."):
        return p
    # Imported only here: the estimate package costs a run's start-up 0.3 s.
    from gpssignal.estimate.junctions import bundled_scenario

    bundled = bundled_scenario(p.name if p.suffix == ".toml" else f"{p.name}.toml")
    return bundled if bundled.is_file() else p


def parallel_options() -> argparse.ArgumentParser:
    """``--workers``, ``--backend`` and ``--scheduler``: where the many runs go."""
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_argument_group("parallel runs (results do not depend on them)")
    g.add_argument("--workers", type=int, default=None,
                   help="worker processes, at least 1 (default: the number of CPU cores); "
                   "with --backend dask, the LocalCluster's workers")
    g.add_argument("--backend", choices=BACKEND_NAMES, default="local",
                   help="local process pool (default) or dask.distributed")
    g.add_argument("--scheduler", default=None,
                   help="with --backend dask: address of a running scheduler "
                   "(default: start a LocalCluster)")
    return p


def days_options(replications: int, replications_help: str, first_seed: int,
                 first_seed_help: str) -> argparse.ArgumentParser:
    """``--replications N`` days from ``--first-seed`` on (see :func:`seeds`)."""
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--replications", type=int, default=replications, help=replications_help)
    p.add_argument("--first-seed", type=seed, default=first_seed, help=first_seed_help)
    return p


def other_scenario_option(p: argparse.ArgumentParser) -> None:
    """Add ``--allow-other-scenario`` (a model of another scenario) to ``p``."""
    p.add_argument("--allow-other-scenario", action="store_true",
                   help="use --model even if it was trained for another scenario (or does "
                   "not say which)")


# ---------------------------------------------------------------------------
# Values and checks
# ---------------------------------------------------------------------------

def seed(text: str) -> int:
    """Argparse type: a seed is an integer >= 0."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid seed {text!r}: must be an integer >= 0") \
            from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"invalid seed {text!r}: must be an integer >= 0")
    return value


def seeds(args: argparse.Namespace) -> list[int]:
    """Return the days of ``--replications`` and ``--first-seed``."""
    at_least_one(args, "--replications")
    return list(range(args.first_seed, args.first_seed + args.replications))


def at_least_one(args: argparse.Namespace, *options: str) -> None:
    """Each named integer option must be >= 1 (one-line usage error otherwise)."""
    for opt in options:
        v = getattr(args, opt.lstrip("-").replace("-", "_"))
        if v is not None and v < 1:
            raise UsageError(f"{opt} = {v}: must be at least 1")


def check_date(text: str, option: str = "--date") -> None:
    """``text`` must be an ISO date."""
    try:
        date.fromisoformat(text)
    except ValueError:
        raise UsageError(f"{option} = {text!r}: must be an ISO date YYYY-MM-DD") from None


def check_out_dir(out: Path, option: str) -> None:
    """Fail early, before any work, if ``out`` cannot become a folder."""
    if out.exists() and not out.is_dir():
        raise UsageError(f"{option} = {str(out)!r}: exists and is not a folder")
    for parent in out.parents:
        if parent.exists():
            if not parent.is_dir():
                raise UsageError(f"{option} = {str(out)!r}: {str(parent)!r} is not a folder")
            if not os.access(parent, os.W_OK | os.X_OK):
                raise UsageError(f"{option} = {str(out)!r}: cannot write in {str(parent)!r} "
                                 "(permission denied)")
            break


def check_model_scenario(model: GpsModel, scenario: Scenario, args: argparse.Namespace,
                         option: str = "--model") -> GpsModel:
    """Refuse a model trained for another scenario, unless ``--allow-other-scenario``.

    The model's ``provenance.scenario_hash`` must be the scenario's hash; a
    model that records none is refused too. Allowed, the model is returned
    without its hash (kept as ``trained_for_scenario_hash``), so that later
    checks do not refuse it again.
    """
    from gpssignal.model.io import scenario_hash

    h = scenario_hash(scenario)
    trained = model.provenance.get("scenario_hash")
    if trained == h:
        return model
    if not getattr(args, "allow_other_scenario", False):
        why = ("records no scenario (provenance.scenario_hash)" if trained is None
               else f"was trained for scenario hash {trained}")
        raise UsageError(f"{option} = {str(getattr(args, 'model', ''))!r}: {why}; scenario "
                         f"{scenario.name!r} has hash {h} (retrain it, or give "
                         "--allow-other-scenario)")
    return model.with_params(provenance={**model.provenance, "scenario_hash": None,
                                         "trained_for_scenario_hash": trained})


#: The environment variable that chooses pyarrow's default memory pool.
_ARROW_POOL_VARIABLE = "ARROW_DEFAULT_MEMORY_POOL"


def lean_arrow_pool() -> None:
    """Let pyarrow allocate with the C library's ``malloc`` (its "system" pool).

    pyarrow's default pool, its bundled mimalloc, keeps about 20 MB more
    resident after a run's tables than the system pool (peak of
    ``gpssignal run`` on the default scenario, measured); the tables are
    small, so the faster allocator gains nothing measurable. Called before
    pyarrow is imported, this chooses the pool for the whole process; after,
    for new allocations. The ``ARROW_DEFAULT_MEMORY_POOL`` environment
    variable, when set, wins (docs/references.md#library-start-up).
    """
    if os.environ.get(_ARROW_POOL_VARIABLE):
        return
    if "pyarrow" in sys.modules:   # its pool may hold memory already: new allocations only
        import pyarrow as pa

        pa.set_memory_pool(pa.system_memory_pool())
        return
    os.environ[_ARROW_POOL_VARIABLE] = "system"
    try:
        import pyarrow as pa

        pa.default_memory_pool()   # Arrow reads the variable once, here
    finally:
        del os.environ[_ARROW_POOL_VARIABLE]


def write_or_fail(write: Callable[[], T], out: Path, option: str = "--out") -> T:
    """Return ``write()``; an :class:`OSError` becomes a one-line usage error."""
    try:
        return write()
    except OSError as exc:
        raise UsageError(f"{option} = {str(out)!r}: cannot write ({exc.strerror or exc})") \
            from None


def split_volatile(meta: dict[str, object]) -> tuple[dict[str, object], dict[str, object]]:
    """Return ``meta`` without :data:`VOLATILE_KEYS`, and those keys' values.

    Every output but the run log must be byte-identical for the same command
    and seed, so wall times and worker counts go to the log only.
    """
    kept = {k: v for k, v in meta.items() if k not in VOLATILE_KEYS}
    return kept, {k: meta[k] for k in VOLATILE_KEYS if k in meta}


def run_log(command: str, **values: object) -> bytes:
    """Return the run log (JSON): the command, its wall times and worker counts.

    ``kernels`` says whether this process ran the simulator's step loop from
    the kernel library (``ahead-of-time``, ``gpssignal build-kernels``) or
    compiled by numba (``just-in-time``); the results are the same.
    """
    from gpssignal._compiled import kernels_in_use

    return (json.dumps({"command": command, "kernels": kernels_in_use(), **values}, indent=2,
                       sort_keys=True, default=str) + "\n").encode()


def log_name(out: Path) -> Path:
    """Return the run log beside an output file: ``NAME.log.json`` for ``NAME.EXT``."""
    return out.with_name(out.stem + ".log.json")


def write_log(path: Path, data: bytes, option: str = "--out") -> None:
    """Write a run log beside an output file (a one-line usage error if it cannot)."""
    write_or_fail(lambda: path.write_bytes(data), path, option)


# ---------------------------------------------------------------------------
# Parallel runs
# ---------------------------------------------------------------------------

def workers(args: argparse.Namespace) -> int:
    """``--workers`` (>= 1), defaulting to the number of CPU cores; checks ``--scheduler``."""
    import importlib.util

    at_least_one(args, "--workers")
    if args.scheduler and args.backend != "dask":
        raise UsageError(f"--scheduler = {args.scheduler!r}: only with --backend dask")
    if args.backend == "dask" and importlib.util.find_spec("distributed") is None:
        raise UsageError("--backend = 'dask': dask.distributed is not installed (pip install "
                         "'gpssignal[dask]')")
    return args.workers if args.workers is not None else max(1, os.cpu_count() or 1)


@contextmanager
def parallel_backend(args: argparse.Namespace) -> Iterator[LocalBackend | DaskBackend]:
    """Return the backend of ``--backend/--workers/--scheduler``, closed when done."""
    from gpssignal.experiment.parallel import make_backend

    backend = make_backend(args.backend, workers(args), args.scheduler)
    try:
        yield backend
    finally:
        backend.close()


# ---------------------------------------------------------------------------
# Output
# ---------------------------------------------------------------------------

class Progress:
    """A one-line progress bar on stderr (rich), wiped when closed.

    Shown only on a terminal and only once a run has taken more than
    :data:`PROGRESS_DELAY_S`. ``label`` may change between updates (a sweep
    puts its run count there). rich hides the cursor while a bar is shown: a
    bar is closed when its run ends, and at the latest when it is collected
    (an interrupted command drops it before its message is printed), which
    shows the cursor again.
    """

    def __init__(self, label: str, enabled: bool) -> None:
        self.label = label
        self.enabled = enabled and sys.stderr.isatty()
        self.t0 = time.perf_counter()
        self._bar: RichProgress | None = None
        self._task: TaskID | None = None

    def __call__(self, fraction: float) -> None:
        """Draw the bar at ``fraction`` (0..1) done, once the delay has passed."""
        if not self.enabled or time.perf_counter() - self.t0 < PROGRESS_DELAY_S:
            return
        if self._bar is None:
            from rich.progress import BarColumn, TaskProgressColumn, TextColumn
            from rich.progress import Progress as RichProgress

            # markup=False: a label is user text ("[1/4] Torvevej ..."), not markup.
            self._bar = RichProgress(TextColumn("{task.description}", markup=False),
                                     BarColumn(bar_width=BAR_WIDTH), TaskProgressColumn(),
                                     console=console(stderr=True), transient=True,
                                     auto_refresh=False, redirect_stdout=False,
                                     redirect_stderr=False)
            self._bar.start()
            self._task = self._bar.add_task(self.label, total=1.0)
        assert self._task is not None
        self._bar.update(self._task, completed=min(max(fraction, 0.0), 1.0),
                         description=self.label)
        self._bar.refresh()

    def fraction(self, done: int, total: int) -> None:
        """As a ``progress(done, total)`` callback."""
        self(done / total if total else 1.0)

    def close(self) -> None:
        """Wipe the bar, if it was shown."""
        if self._bar is not None:
            self._bar.stop()
            self._bar = None

    def __del__(self) -> None:
        """Close the bar (restores the cursor) if the command did not."""
        self.close()


class StageBars:
    """A ``progress(stage, done, total)`` callback with one bar per stage."""

    def __init__(self, prefix: str, quiet: bool) -> None:
        self.prefix = prefix
        self.quiet = quiet
        self.bars: dict[str, Progress] = {}

    def __call__(self, stage: str, done: int, total: int) -> None:
        """Update the bar of ``stage``; close it when ``done == total``."""
        bar = self.bars.setdefault(stage, Progress(f"{self.prefix} {stage}",
                                                   enabled=not self.quiet))
        bar.fraction(done, total)
        if done == total:
            bar.close()

    def stage(self, name: str) -> Callable[[int, int], None]:
        """Return the ``progress(done, total)`` callback of one stage."""
        return lambda done, total: self(name, done, total)


#: Widest terminal output [characters]: tables and wrapped text fit 100 columns.
MAX_WIDTH = 100


def console(stderr: bool = False) -> Console:
    """Return a rich console on stdout (or stderr) at most :data:`MAX_WIDTH` wide.

    Off a terminal (a pipe, a file) rich writes plain text without colours,
    at :data:`MAX_WIDTH` columns.
    """
    import shutil

    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    width = min(shutil.get_terminal_size((MAX_WIDTH, 24)).columns, MAX_WIDTH)
    return Console(file=stream, width=width, highlight=False, soft_wrap=False)


def rich_table(rows: list[list[str]], columns: list[str], title: str | None = None) -> None:
    """Print a table (rich) on stdout, the first column left-aligned, the others right.

    Cells are plain text (never rich markup); it fits :data:`MAX_WIDTH`
    columns, wrapping the first column's text where it must.
    """
    from rich import box
    from rich.table import Table
    from rich.text import Text

    table = Table(title=Text(title) if title else None, box=box.SIMPLE_HEAD,
                  title_justify="left", header_style="bold", pad_edge=False)
    for k, name in enumerate(columns):
        table.add_column(Text(name), justify="left" if k == 0 else "right", no_wrap=k != 0)
    for r in rows:
        table.add_row(*(Text(c) for c in r))
    console().print(table)


def _fmt(x: object) -> str:
    if isinstance(x, float):
        if x != x:  # NaN
            return "-"
        return f"{x:,.1f}" if abs(x) < NO_DECIMALS_FROM else f"{x:,.0f}"
    return str(x)


def print_table(rows: list[list[object]], header: list[str]) -> None:
    """Print rows under a header; the first column left-aligned, the others right."""
    cells = [header] + [[_fmt(c) for c in r] for r in rows]
    widths = [max(len(r[k]) for r in cells) for k in range(len(header))]
    for n, r in enumerate(cells):
        print("  ".join(c.ljust(w) if k == 0 else c.rjust(w)
                        for k, (c, w) in enumerate(zip(r, widths, strict=True))))
        if n == 0:
            print("  ".join("-" * w for w in widths))


def decision_frame(runtime: GpsRuntime) -> pd.DataFrame:
    """Return the GPS controller's decision log with a UTC ``time`` column."""
    import pandas as pd

    from gpssignal.control.gps import DECISION_COLUMNS

    df = pd.DataFrame(runtime.decision_log(), columns=list(DECISION_COLUMNS))
    df.insert(1, "time", pd.to_datetime(df["t_ms"], unit="ms", utc=True))
    return df
