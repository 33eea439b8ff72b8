"""Executors that run the batch's work: inline, a local process pool, or a Dask cluster.

All three are ``concurrent.futures.Executor``; the batch hands each the same
plain functions, so results do not depend on where they ran.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import logging
import signal
import threading
from collections.abc import Callable
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from concurrent.futures import wait as futures_wait
from typing import Any

from ihc_score.errors import IhcScoreError
from ihc_score.run.lane_pool import LanePool

__all__ = ["InlineExecutor", "make_executor"]


class InlineExecutor(Executor):
    """An executor that runs each call at once in this process (``--workers 1``)."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future:
        fut: Future = Future()
        try:
            fut.set_result(fn(*args, **kwargs))
        except BaseException as err:  # noqa: BLE001 - delivered through the future, as a pool would
            fut.set_exception(err)
        return fut


def make_executor(workers: int, scheduler: str | None = None) -> tuple[Executor, str]:
    """The executor for ``--workers`` / ``--scheduler`` and its name for ``run.json``.

    Raises
    ------
    IhcScoreError
        The Dask scheduler cannot be reached.
    """
    if scheduler:
        return _DaskExecutor(scheduler), f"dask:{scheduler}"
    if workers <= 1:
        _one_thread()  # --workers 1 means one core, here too
        return InlineExecutor(), "inline"
    # Each worker keeps to its own part of a slide, where its decoded-tile cache serves it;
    # a pool whose worker died is replaced and the calls it held run again.
    return LanePool(functools.partial(_local_pool, workers), workers), f"processes:{workers}"


def _local_pool(workers: int) -> ProcessPoolExecutor:
    """A process pool of ``workers`` workers, started now (from a thread) while the first slide is planned."""
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=_worker_context(), initializer=_init_worker)
    # A pool starts a worker per submit while none is idle, so the second
    # worker would otherwise start only when the first slide's tiles arrive.
    # From a thread: a worker's start waits for the fork server to be ready.
    threading.Thread(target=_start_workers, args=(pool, workers), name="ihc-score-start-workers", daemon=True).start()
    return pool


def _start_workers(pool: ProcessPoolExecutor, workers: int) -> None:
    for _ in range(workers):
        try:
            pool.submit(_ready)
        except Exception:  # noqa: BLE001 - shut down, broken or unable to start: its owner's next call says so
            return


@functools.cache
def _worker_context() -> Any:
    """How local workers start: forked from a fork server that loaded the pipeline and its kernels once.

    Each spawned worker would import the pipeline and load the compiled
    kernels itself (about 0.9 s of CPU each, beside the main process
    planning the first slide); forked from the server, it starts in
    milliseconds, clean of the main process's threads, handles and locks.
    The server starts with the first local pool and serves every later one
    (a worker that died is replaced in milliseconds), so workers see the
    environment variables of that moment. Where the platform has no fork
    server (Windows), or it cannot start (no socket or temporary folder for
    it), workers are spawned.
    """
    import multiprocessing
    import multiprocessing.forkserver

    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload([f"{__package__}._worker_preload"])
    try:
        multiprocessing.forkserver.ensure_running()  # starts the server now; it loads while the slide is planned
    except OSError:
        return multiprocessing.get_context("spawn")
    return ctx


class _DaskExecutor(Executor):
    """``Client(address).get_executor()`` that turns a lost cluster into one-line errors, never a hang.

    Dask moves the tasks of a worker that died to another worker by itself
    (``distributed.scheduler.allowed-failures``, default 3, then
    ``KilledWorker``); task errors are not retried, since scoring is
    deterministic and a slide that fails once fails again. When the
    scheduler goes away, the client cancels its futures and may leave some
    waiting for good (a result being fetched at that moment); a watchdog
    then fails every outstanding future with :class:`IhcScoreError`, so the
    batch records its slides as failed and ends.
    """

    #: Seconds between two looks of the watchdog at the client's connection.
    WATCH_INTERVAL_S = 0.5

    def __init__(self, address: str) -> None:
        try:
            from distributed import Client

            self._client = Client(address, timeout="10s", set_as_default=False)
        except (OSError, TimeoutError, ValueError) as err:
            raise IhcScoreError(f"cannot reach the Dask scheduler at {address}: {err}; check --scheduler") from err
        self._address = address
        self._executor = self._client.get_executor(pure=False)
        self._lock = threading.Lock()
        self._outstanding: set[Future] = set()
        self._lost: str | None = None
        self._stop = threading.Event()
        self._watchdog = threading.Thread(target=self._watch, name="ihc-score-dask-watchdog", daemon=True)
        self._watchdog.start()
        self._quiet = _QuietLostConnection(self)
        for handler in _noisy_handlers():
            handler.addFilter(self._quiet)

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future:
        outer: Future = Future()
        with self._lock:
            self._outstanding.add(outer)
            lost = self._lost is not None
        if lost:
            self._declare_lost()
            return outer
        try:
            inner = self._executor.submit(fn, *args, **kwargs)
        except Exception:
            if self._client.status == "running":
                with self._lock:
                    self._outstanding.discard(outer)
                raise
            self._declare_lost()
            return outer
        inner.add_done_callback(functools.partial(self._relay, outer))
        if self._client.status != "running":
            self._declare_lost()
        return outer

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        if wait and not cancel_futures:
            with self._lock:
                pending = list(self._outstanding)
            futures_wait(pending)  # bounded: the watchdog fails them if the scheduler goes away
        self._stop.set()
        # Closing releases (cancels) whatever is left; after a lost scheduler it only stops the client.
        with contextlib.suppress(Exception):
            self._client.close(timeout=5)
        for handler in _noisy_handlers():
            handler.removeFilter(self._quiet)

    def _relay(self, outer: Future, inner: Future) -> None:
        """Hand the outcome of Dask's future to ours, with the cluster's failures in one line."""
        from distributed import KilledWorker

        if inner.cancelled():
            self._declare_lost()
            return
        err = inner.exception()
        if err is None:
            self._settle(outer, result=inner.result())
        elif isinstance(err, KilledWorker):
            self._settle(
                outer,
                error=IhcScoreError(
                    f"Dask workers died {err.allowed_failures + 1} time(s) while running a task of this slide "
                    "(out of memory? see the worker logs); score it again"
                ),
            )
        else:
            self._settle(outer, error=err)

    def _settle(self, outer: Future, *, result: Any = None, error: BaseException | None = None) -> None:
        """Complete ``outer`` once, whichever of the relay and the watchdog comes first."""
        with self._lock:
            if outer not in self._outstanding:
                return
            self._outstanding.discard(outer)
        if error is None:
            outer.set_result(result)
        else:
            outer.set_exception(error)

    def _declare_lost(self) -> None:
        """Fail every outstanding future: the scheduler is gone and so is the work it held."""
        with self._lock:
            if self._lost is None:
                self._lost = (
                    f"lost the connection to the Dask scheduler at {self._address}; check that it runs and "
                    "run the same command again (slides already scored are reused)"
                )
            pending = list(self._outstanding)
        for outer in pending:
            self._settle(outer, error=IhcScoreError(self._lost))

    def _watch(self) -> None:
        while not self._stop.wait(self.WATCH_INTERVAL_S):
            if self._client.status != "running":
                self._declare_lost()


#: Loggers under which Dask reports a closed connection with a traceback: the client, its batched
#: stream to the scheduler, tornado's callbacks.
_NOISY_LOGGERS = ("distributed", "tornado")


def _noisy_handlers() -> list[logging.Handler]:
    """Every handler a record of :data:`_NOISY_LOGGERS` or their children reaches.

    Dask gives these loggers a stderr handler of their own, unless an
    ancestor already had one when it was imported; then records propagate to
    that ancestor's handlers. A filter on a handler, unlike one on a logger,
    sees the records of every child logger.
    """
    found: list[logging.Handler] = []
    for name in _NOISY_LOGGERS:
        logger: logging.Logger | None = logging.getLogger(name)
        while logger is not None:
            found.extend(h for h in logger.handlers if h not in found)
            logger = logger.parent if logger.propagate else None
    if not found and logging.lastResort is not None:
        found.append(logging.lastResort)
    return found


class _QuietLostConnection(logging.Filter):
    """Drop the client's tracebacks about a closed connection: the executor says it in one line.

    A record is dropped once the scheduler is lost (or the client no longer
    runs), and whenever it carries a closed-connection error (a result being
    fetched from a worker that died, which Dask recovers by itself).
    """

    def __init__(self, executor: _DaskExecutor) -> None:
        super().__init__()
        self._executor = executor

    def filter(self, record: logging.LogRecord) -> bool:
        from distributed.comm.core import CommClosedError

        if record.name.partition(".")[0] not in _NOISY_LOGGERS:
            return True  # a handler shared with the rest of the program
        if self._executor._lost is not None or self._executor._client.status != "running":
            return False
        err = record.exc_info[1] if record.exc_info else None
        return not isinstance(err, CommClosedError)


def _one_thread() -> None:
    """OpenCV on one thread: the workers, not OpenCV, spread the work over the cores."""
    import cv2

    cv2.setNumThreads(1)


def _init_worker() -> None:
    """One thread per worker process; Ctrl-C left to the main process; the pipeline and its kernels loaded now, not in a task.

    Ctrl-C reaches every process of the terminal's group. The main process
    stops the batch and lets the calls in flight end; a worker stopped by it
    would print a traceback and look like a crashed worker, to be replaced.
    """
    _one_thread()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _load_worker_code()  # at once where the worker was forked from the fork server, which loaded it


def _load_worker_code() -> None:
    """Import what a worker runs, the pipeline, and load its compiled kernels."""
    importlib.import_module(f"{__package__}.pipeline")
    importlib.import_module("ihc_score.cells.kernels").warm_up()


def _ready() -> None:
    """A task that does nothing, to make the pool start a worker."""

