"""A local process pool whose workers each keep to their own part of the work.

Every worker process keeps the JPEG tiles it decoded in a cache, and
neighbouring chunks of analysis tiles share the JPEG tiles of their overlap.
A plain process pool hands calls out first come, first served, so
neighbouring chunks go to alternate workers and each decodes the shared
tiles again: with 2 workers, 38 % more decoding and 7-9 % more CPU time than
one worker needs for the same tiles. :class:`LanePool` keeps one call per
worker in flight, a *lane*: when a lane's call ends (its worker is then the
idle one), the lane gets the call submitted right after its last one, that
is the next chunk of the same raster scan. Calls are submitted in raster
order (:func:`ihc_score.tile_scoring.tile_tasks`), so each worker walks its
own part of the slide; :func:`next_call` says where a lane goes when its
neighbour is taken.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Executor, Future
from typing import Any

__all__ = ["LanePool", "next_call"]


def next_call(queued: Iterable[int], last: int | None, walking: set[int]) -> int | None:
    """The call a free lane runs next.

    Parameters
    ----------
    queued : iterable of int
        Sequence numbers of the calls not yet started, ascending.
    last : int or None
        The lane's last call, None before its first.
    walking : set of int
        The calls other lanes are running: each of those lanes will go on
        with the call after its own.

    Returns
    -------
    int or None
        ``last + 1`` when it is queued; else the start of the longest run of
        consecutive queued calls, or the middle of that run when another lane
        is walking into it (so that the two split what is left rather than
        alternate); None when nothing is queued. Ties go to the earliest run.
    """
    order = list(queued)
    if not order:
        return None
    if last is not None and last + 1 in set(order):
        return last + 1
    best_start, best_len, start = order[0], 0, 0
    for i in range(1, len(order) + 1):
        if i == len(order) or order[i] != order[i - 1] + 1:
            if i - start > best_len:
                best_start, best_len = start, i - start
            start = i
    first = order[best_start]
    if first - 1 in walking:
        return order[best_start + best_len // 2]
    return first


class LanePool(Executor):
    """An executor over ``pool`` with at most ``lanes`` calls in flight, each lane walking its own calls.

    Parameters
    ----------
    pool : Executor
        A local process pool of ``lanes`` workers; every call goes through
        this object (calls submitted to ``pool`` directly would take a
        lane's worker).
    lanes : int
        Calls in flight at once: the pool's worker count.

    Notes
    -----
    ``submit`` returns at once; the call waits here until a lane is free.
    A queued call can be cancelled; :meth:`shutdown` with ``wait=True``
    runs the queued calls first, as a pool does, and with
    ``cancel_futures=True`` or ``wait=False`` cancels them. Each call's
    result or exception reaches its future unchanged.
    """

    def __init__(self, pool: Executor, lanes: int) -> None:
        if lanes < 1:
            raise ValueError(f"lanes must be >= 1, got {lanes}")
        self._pool = pool
        self._cond = threading.Condition()
        self._queued: dict[int, tuple[Future, Callable[..., Any], tuple, dict]] = {}
        self._seq = 0
        self._free: list[int | None] = [None] * lanes  # the last call of each idle lane
        self._running: set[int] = set()
        self._stopping = False
        self._feeder = threading.Thread(target=self._feed, name="ihc-score-lanes", daemon=True)
        self._feeder.start()

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future:
        outer: Future = Future()
        with self._cond:
            if self._stopping:
                raise RuntimeError("cannot schedule new calls after shutdown")
            self._queued[self._seq] = (outer, fn, args, kwargs)
            self._seq += 1
            self._cond.notify_all()
        return outer

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._cond:
            self._stopping = True
            if cancel_futures or not wait:
                for outer, *_ in self._queued.values():
                    outer.cancel()
                self._queued.clear()
            self._cond.notify_all()
        if wait:
            self._feeder.join()
        self._pool.shutdown(wait=wait, cancel_futures=cancel_futures)

    def _feed(self) -> None:
        """Start a queued call whenever a lane is free, until shut down with nothing queued."""
        while True:
            with self._cond:
                while not (self._free and self._queued) and not (self._stopping and not self._queued):
                    self._cond.wait()
                if not self._queued:  # stopping, nothing left to start
                    return
                last = self._free.pop()
                seq = next_call(self._queued, last, self._running)
                assert seq is not None
                outer, fn, args, kwargs = self._queued.pop(seq)
                if not outer.set_running_or_notify_cancel():  # cancelled while queued
                    self._free.append(last)
                    continue
                self._running.add(seq)
            try:
                inner = self._pool.submit(fn, *args, **kwargs)
            except BaseException as err:  # noqa: BLE001 - a broken pool: the call's future says so
                self._end(outer, seq, error=err)
                continue
            inner.add_done_callback(functools.partial(self._relay, outer, seq))

    def _relay(self, outer: Future, seq: int, inner: Future) -> None:
        """Hand the call's outcome to its future and free its lane (in the pool's thread: no submit here)."""
        if inner.cancelled():
            self._end(outer, seq, error=RuntimeError("the process pool cancelled the call"))
            return
        err = inner.exception()
        if err is None:
            self._end(outer, seq, result=inner.result())
        else:
            self._end(outer, seq, error=err)

    def _end(self, outer: Future, seq: int, *, result: Any = None, error: BaseException | None = None) -> None:
        with self._cond:
            self._running.discard(seq)
            self._free.append(seq)
            self._cond.notify_all()
        if error is None:
            outer.set_result(result)
        else:
            outer.set_exception(error)
