"""The one pool loop: run independent tasks on a backend, report progress.

Every experiment that runs many simulations (evaluation, training, history,
sweeps, the estimator) calls :func:`map_runs` with a picklable function and
its tasks. Two backends run them:

* :class:`LocalBackend`: a pool of local processes (``workers = 1`` runs in
  this process, which is what tests and small jobs want);
* :class:`DaskBackend`: ``dask.distributed``, a ``LocalCluster`` on this
  machine or an existing scheduler of a cluster.

A task's result depends only on the task (each run seeds its own random
streams), so results are identical whatever the backend and the number of
workers; :func:`map_runs` returns them in task order.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any, Protocol, TypeVar

from gpssignal.errors import GpssignalError

__all__ = ["BACKENDS", "Backend", "DaskBackend", "LocalBackend", "make_backend", "map_runs",
           "sigterm_interrupts"]

T = TypeVar("T")
R = TypeVar("R")

#: Backend names the command line offers (``--backend``).
BACKENDS = ("local", "dask")


class Backend(Protocol):
    """Runs ``fn`` over tasks, yielding ``(index, result)`` as each finishes."""

    name: str
    workers: int

    def run(self, fn: Callable[[Any], Any], items: Sequence[Any]) -> Iterator[tuple[int, Any]]:
        """Yield ``(index, fn(items[index]))`` in the order the runs finish."""
        ...

    def close(self) -> None:
        """Release the workers."""
        ...


#: Linux ``prctl`` option: the signal a process gets when its parent dies.
_PR_SET_PDEATHSIG = 1
#: How often a worker checks that its parent still lives (portable fallback) [s].
PARENT_POLL_S = 1.0


def _watch_parent(parent_pid: int) -> None:
    """Exit this process as soon as its parent is gone (it is re-parented)."""
    while True:
        if os.getppid() != parent_pid:
            os._exit(1)
        time.sleep(PARENT_POLL_S)


def _worker_init(parent_pid: int) -> None:
    """Make a pool worker die with the process that started it.

    On Linux the kernel sends SIGKILL when the parent dies, whatever killed it
    (``prctl(PR_SET_PDEATHSIG)``); everywhere a daemon thread polls the parent
    id, so no worker is left running as an orphan of a killed sweep. The
    parent's Ctrl-C (sent to the whole process group) and its SIGTERM handler
    are not the worker's business: the parent shuts the pool down.
    """
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        except (OSError, AttributeError):  # no libc symbol: the thread below suffices
            pass
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(1)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    threading.Thread(target=_watch_parent, args=(parent_pid,), daemon=True,
                     name="gpssignal-parent-watch").start()


def _raise_interrupt(signum: int, frame: object) -> None:
    """Turn SIGTERM into :class:`KeyboardInterrupt`, so the pool is shut down cleanly."""
    raise KeyboardInterrupt(f"signal {signum}")


@contextlib.contextmanager
def sigterm_interrupts() -> Iterator[None]:
    """While inside, SIGTERM interrupts like Ctrl-C (main thread only).

    The command line runs every command inside it, so a terminated command
    unwinds (temporary folders removed, pools stopped) and exits with 130.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


@contextlib.contextmanager
def _signals_deferred() -> Iterator[None]:
    """Hold Ctrl-C and SIGTERM back while inside; interrupt on leaving.

    The pool forks its workers on the first submit. A :class:`KeyboardInterrupt`
    raised by a signal handler inside a fork hook (logging's lock release
    after the fork, say) is printed as "Exception ignored" and lost, so the
    command went on and ended with 0; raised elsewhere in the fork it may
    leave a lock held. While inside, the Python handlers of SIGINT and SIGTERM
    (those that raise; an ignored or default signal is left alone) only note
    the signal; on leaving, a noted signal becomes the interrupt, here, where
    the caller stops the pool. (Blocking the signal with ``pthread_sigmask``
    does not suffice: the kernel then hands it to another thread, and the
    main thread still runs the handler at its next bytecode.)
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    noted: list[int] = []

    def note(signum: int, frame: object) -> None:
        noted.append(signum)

    old = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        handler = signal.getsignal(sig)
        if callable(handler):
            old[sig] = signal.signal(sig, note)
    try:
        yield
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)
    if noted:
        raise KeyboardInterrupt(f"signal {noted[0]}")


def _stop_pool(pool: ProcessPoolExecutor) -> None:
    """Cancel the pending runs and end the workers at once (their runs are lost anyway)."""
    pool.shutdown(wait=False, cancel_futures=True)
    # ProcessPoolExecutor has no public way to stop running tasks; without
    # this, interpreter exit would wait for every running simulation to end.
    for proc in list((getattr(pool, "_processes", None) or {}).values()):
        if proc.is_alive():
            proc.kill()


def _indexed(args: tuple[Callable[[Any], Any], int, Any]) -> tuple[int, Any]:
    fn, index, item = args
    return index, fn(item)


class LocalBackend:
    """A pool of local processes; ``workers <= 1`` runs in this process.

    Parameters
    ----------
    workers : int
        Processes [-].
    """

    name = "local"

    def __init__(self, workers: int = 1) -> None:
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise GpssignalError(f"workers = {workers!r}: must be a whole number >= 1")
        self.workers = workers

    def run(self, fn: Callable[[Any], Any], items: Sequence[Any]) -> Iterator[tuple[int, Any]]:
        """Yield ``(index, fn(items[index]))`` as the runs finish."""
        if self.workers <= 1 or len(items) <= 1:
            for k, it in enumerate(items):
                yield k, fn(it)
            return
        with sigterm_interrupts():
            pool = ProcessPoolExecutor(max_workers=min(self.workers, len(items)),
                                       initializer=_worker_init, initargs=(os.getpid(),))
            try:
                with _signals_deferred():  # the first submit forks the workers
                    futures = [pool.submit(_indexed, (fn, k, it))
                               for k, it in enumerate(items)]
                for f in as_completed(futures):
                    yield f.result()
                pool.shutdown(wait=True)
            except BaseException:
                # Ctrl-C, SIGTERM, a failed run or the caller stopping (closing
                # this generator): what finished is already handed over (and
                # stored); stop the rest.
                _stop_pool(pool)
                raise

    def close(self) -> None:
        """Nothing to release: each :meth:`run` owns its pool."""

    def __enter__(self) -> LocalBackend:
        """Return the backend itself."""
        return self

    def __exit__(self, *exc: object) -> None:
        """Close the backend."""
        self.close()


class DaskBackend:
    """``dask.distributed``: an existing scheduler, or a ``LocalCluster``.

    On a cluster, start ``dask scheduler`` on one machine and ``dask worker
    tcp://SCHEDULER:8786 --nthreads 1`` on each machine (with gpssignal
    installed, same version), then pass ``scheduler="tcp://SCHEDULER:8786"``
    (``--scheduler`` on the command line).

    Parameters
    ----------
    workers : int
        Worker processes of the ``LocalCluster`` [-] (ignored with a scheduler).
    scheduler : str, optional
        Address of a running scheduler.
    """

    name = "dask"

    def __init__(self, workers: int = 2, scheduler: str | None = None) -> None:
        from dask.distributed import Client, LocalCluster

        # Keep the command's output readable: dask logs its life cycle at INFO.
        for name in ("distributed", "dask"):
            logging.getLogger(name).setLevel(logging.WARNING)
        self.cluster = None
        if scheduler:
            self.client = Client(scheduler)
        else:
            self.cluster = LocalCluster(n_workers=workers, threads_per_worker=1,
                                        processes=True, dashboard_address=None)
            self.client = Client(self.cluster)
        self.workers = len(self.client.scheduler_info().get("workers", {})) or workers

    def run(self, fn: Callable[[Any], Any], items: Sequence[Any]) -> Iterator[tuple[int, Any]]:
        """Yield ``(index, fn(items[index]))`` as the runs finish."""
        from dask.distributed import as_completed as dask_completed

        if not items:
            return
        futures = [self.client.submit(_indexed, (fn, k, it), pure=False)
                   for k, it in enumerate(items)]
        for f in dask_completed(futures):
            yield f.result()
            f.release()

    def close(self) -> None:
        """Close the client and the local cluster, if this backend started one."""
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()

    def __enter__(self) -> DaskBackend:
        """Return the backend itself."""
        return self

    def __exit__(self, *exc: object) -> None:
        """Close the backend."""
        self.close()


def make_backend(name: str = "local", workers: int = 1,
                 scheduler: str | None = None) -> LocalBackend | DaskBackend:
    """Return a backend by name (:data:`BACKENDS`).

    Raises
    ------
    GpssignalError
        For an unknown name, or a scheduler given to the local backend.
    """
    if name == "local":
        if scheduler:
            raise GpssignalError(f"scheduler = {scheduler!r}: only with backend 'dask'")
        return LocalBackend(workers)
    if name == "dask":
        return DaskBackend(workers, scheduler)
    raise GpssignalError(f"backend = {name!r}: must be one of {', '.join(BACKENDS)}")


def map_runs(fn: Callable[[T], R], items: Sequence[T],
             backend: LocalBackend | DaskBackend | None = None,
             progress: Callable[[int, int], None] | None = None,
             on_result: Callable[[int, R], None] | None = None) -> list[R]:
    """Run ``fn`` on every item on ``backend``; return the results in item order.

    Parameters
    ----------
    fn : callable
        A picklable (module-level) function of one task.
    items : sequence
        The tasks.
    backend : LocalBackend or DaskBackend, optional
        Default: this process, one task after another.
    progress : callable, optional
        ``progress(done, total)`` after each finished task.
    on_result : callable, optional
        ``on_result(index, result)`` as each task finishes (e.g. to store it
        at once, so an interrupted job keeps what finished).
    """
    runner = backend if backend is not None else LocalBackend(1)
    out: list[Any] = [None] * len(items)
    runs = runner.run(fn, items)
    try:
        for done, (index, result) in enumerate(runs, start=1):
            out[index] = result
            if on_result is not None:
                on_result(index, result)
            if progress is not None:
                progress(done, len(items))
    finally:
        # An interrupt raised here, between two results (e.g. while storing
        # one), leaves the backend's generator suspended with its pool
        # running until the generator is collected, which may be only at
        # interpreter exit, after multiprocessing's exit handler has begun
        # waiting for those very workers (a SIGTERM'd estimate was seen
        # hanging there, on two idle workers): close it now, which stops them.
        close = getattr(runs, "close", None)
        if close is not None:
            close()
    return out
