"""A local process pool whose workers each keep to their own part of the work.

Every worker process keeps the JPEG tiles it decoded in a cache, and
neighbouring chunks of analysis tiles share the JPEG tiles of their overlap.
A plain process pool hands calls out first come, first served, so
neighbouring chunks go to alternate workers and each decodes the shared
tiles again: with 2 workers, 38 % more decoding and 7-17 % more CPU time than
one worker needs for the same tiles. :class:`LanePool` keeps one call per
worker in flight, a *lane*: when a lane's call ends (its worker is then the
idle one), the lane gets the call submitted right after its last one, that
is the next chunk of the same raster scan. Calls are submitted in raster
order (:func:`ihc_score.run.tile_scoring.tile_tasks`), so each worker walks its
own part of the slide; :func:`next_call` says where a lane goes when its
neighbour is taken.

A worker process that dies (killed for lack of memory, a crash in a slide
decoder) breaks a process pool for good, and fails every call in flight, not
only the one that killed it. :class:`LanePool` then starts a fresh pool and
runs those calls again, each alone (nothing else in flight), so that a death
is then laid to the call that ran; a call fails, with a one-line reason, once
workers died under it ``max_runs`` times (the first time perhaps beside the
call to blame, the others alone). A call that only ran beside it runs again
once, alone, and goes on.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Collection
from concurrent.futures import Executor, Future
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from ihc_score.errors import IhcScoreError

__all__ = ["LanePool", "next_call"]


def next_call(queued: Collection[int], last: int | None, walking: Collection[int]) -> int | None:
    """The call a free lane runs next.

    Parameters
    ----------
    queued : collection of int
        Sequence numbers of the calls not yet started (a dict's keys will do).
    last : int or None
        The lane's last call, None before its first.
    walking : collection of int
        The calls other lanes are running: each of those lanes will go on
        with the call after its own.

    Returns
    -------
    int or None
        ``last + 1`` when it is queued (looked up, not searched: the usual
        case); else the start of the longest run of consecutive queued
        calls, or the middle of that run when another lane is walking into it
        (so that the two split what is left rather than alternate); None when
        nothing is queued. Ties go to the earliest run.
    """
    if last is not None and last + 1 in queued:
        return last + 1
    order = sorted(queued)
    if not order:
        return None
    best_start, best_len, start = 0, 0, 0
    for i in range(1, len(order) + 1):
        if i == len(order) or order[i] != order[i - 1] + 1:
            if i - start > best_len:
                best_start, best_len = start, i - start
            start = i
    first = order[best_start]
    if first - 1 in walking:
        return order[best_start + best_len // 2]
    return first


#: One call waiting for a lane: its future, function, arguments, and how many times workers died under it.
_Call = tuple[Future, Callable[..., Any], tuple, dict, int]


class LanePool(Executor):
    """An executor over a process pool with at most ``lanes`` calls in flight, each lane walking its own calls.

    Parameters
    ----------
    make_pool : callable
        Returns a new local process pool of ``lanes`` workers; called once
        here and again each time a worker dies. Every call goes through this
        object (calls submitted to the pool directly would take a lane's
        worker).
    lanes : int
        Calls in flight at once: the pool's worker count.
    max_runs : int
        Deaths of a worker under a call before the call fails (after the
        first, the call runs alone).

    Notes
    -----
    ``submit`` returns at once; the call waits here until a lane is free.
    A queued call can be cancelled; :meth:`shutdown` with ``wait=True``
    runs the queued calls first, as a pool does, and with
    ``cancel_futures=True`` or ``wait=False`` cancels them. Each call's
    result or exception reaches its future unchanged; a call under which a
    worker died runs again, alone, on a fresh pool (see the module docstring).
    """

    def __init__(self, make_pool: Callable[[], Executor], lanes: int, *, max_runs: int = 3) -> None:
        if lanes < 1 or max_runs < 1:
            raise ValueError(f"lanes and max_runs must be >= 1, got {lanes}, {max_runs}")
        self._make_pool = make_pool
        self._pool = make_pool()
        self._broken: Executor | None = None  # the pool a worker died in, until replaced
        self._max_runs = max_runs
        self._cond = threading.Condition()
        self._queued: dict[int, _Call] = {}
        self._running: dict[int, _Call] = {}
        self._suspects: set[int] = set()  # queued calls a worker died under: each runs alone
        self._seq = 0
        self._free: list[int | None] = [None] * lanes  # the last call of each idle lane
        self._stopping = False
        self._cancelled = False  # shut down with what was not started cancelled: nothing runs again
        self._feeder = threading.Thread(target=self._feed, name="ihc-score-lanes", daemon=True)
        self._feeder.start()

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future:
        outer: Future = Future()
        with self._cond:
            if self._stopping:
                raise RuntimeError("cannot schedule new calls after shutdown")
            self._queued[self._seq] = (outer, fn, args, kwargs, 0)
            self._seq += 1
            self._cond.notify_all()
        return outer

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._cond:
            self._stopping = True
            self._cancelled = self._cancelled or cancel_futures or not wait
            if self._cancelled:
                for outer, *_, deaths in self._queued.values():
                    if deaths:  # running, waiting to run again: cancel() would leave it pending for good
                        outer.set_exception(RuntimeError("shut down before the call could run again"))
                    else:
                        outer.cancel()
                self._queued.clear()
                self._suspects.clear()
            self._cond.notify_all()
        if wait:
            self._feeder.join()
        self._pool.shutdown(wait=wait, cancel_futures=cancel_futures)

    def _pick(self) -> int | None:
        """The call to start now, or None to wait (under the lock)."""
        if not (self._free and self._queued) or any(c[4] for c in self._running.values()):
            return None  # no lane free, nothing queued, or a call a worker died under runs alone
        if self._suspects:
            return None if self._running else min(self._suspects)
        return next_call(self._queued, self._free[-1], self._running)

    def _feed(self) -> None:
        """Start a queued call whenever a lane is free, until shut down with nothing queued or running."""
        while True:
            with self._cond:
                while (seq := self._pick()) is None:
                    if self._stopping and not self._queued and not self._running:
                        return  # a call that ends in a dead worker may still need to run again
                    self._cond.wait()
                last = self._free.pop()
                call = self._queued.pop(seq)
                self._suspects.discard(seq)
                outer, fn, args, kwargs, deaths = call
                if deaths == 0 and not outer.set_running_or_notify_cancel():  # cancelled while queued
                    self._free.append(last)
                    continue
                self._running[seq] = call
                if self._pool is self._broken:  # only this thread replaces the pool
                    self._pool.shutdown(wait=False)
                    self._pool = self._make_pool()
                pool = self._pool
            try:
                inner = pool.submit(fn, *args, **kwargs)
            except BrokenProcessPool:
                self._worker_died(seq, pool)
                continue
            except BaseException as err:  # noqa: BLE001 - the call's future says what went wrong
                self._end(seq, error=err)
                continue
            inner.add_done_callback(functools.partial(self._relay, seq, pool))

    def _relay(self, seq: int, pool: Executor, inner: Future) -> None:
        """Hand the call's outcome to its future and free its lane (in the pool's thread: no submit here)."""
        if inner.cancelled():
            self._end(seq, error=RuntimeError("the process pool cancelled the call"))
            return
        err = inner.exception()
        if isinstance(err, BrokenProcessPool):
            self._worker_died(seq, pool)
        elif err is None:
            self._end(seq, result=inner.result())
        else:
            self._end(seq, error=err)

    def _worker_died(self, seq: int, pool: Executor) -> None:
        """A worker of ``pool`` died while the call ran: queue it again, or fail it after ``max_runs`` runs."""
        with self._cond:
            outer, fn, args, kwargs, deaths = self._running[seq]
            self._broken = pool if pool is self._pool else self._broken
            if deaths + 1 < self._max_runs and not self._cancelled:
                del self._running[seq]
                self._queued[seq] = (outer, fn, args, kwargs, deaths + 1)
                self._suspects.add(seq)
                self._free.append(seq)
                self._cond.notify_all()
                return
            cancelled = self._cancelled
        self._end(seq, error=RuntimeError("a worker died after shutdown; the call is not run again") if cancelled
                  else IhcScoreError(
                      f"worker processes died {deaths + 1} times while running a task of this slide (out of memory, "
                      "or a crash in the slide's decoder?); score it again with fewer --workers"
                  ))

    def _end(self, seq: int, *, result: Any = None, error: BaseException | None = None) -> None:
        with self._cond:
            outer = self._running.pop(seq)[0]
            self._free.append(seq)
            self._cond.notify_all()
        if error is None:
            outer.set_result(result)
        else:
            outer.set_exception(error)
