"""Executors that run the batch's work: inline, a local process pool, or a Dask cluster.

All three are ``concurrent.futures.Executor``; the batch hands each the same
plain functions, so results do not depend on where they ran.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from typing import Any

from .errors import IhcScoreError

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
        return InlineExecutor(), "inline"
    import multiprocessing

    # spawn: workers start clean, never inheriting an open slide handle or a lock.
    pool = ProcessPoolExecutor(
        max_workers=workers, mp_context=multiprocessing.get_context("spawn"), initializer=_init_worker
    )
    return pool, f"processes:{workers}"


class _DaskExecutor(Executor):
    """``Client(address).get_executor()`` that also closes its client on shutdown."""

    def __init__(self, address: str) -> None:
        try:
            from distributed import Client

            self._client = Client(address, timeout="10s", set_as_default=False)
        except (OSError, TimeoutError, ValueError) as err:
            raise IhcScoreError(f"cannot reach the Dask scheduler at {address}: {err}; check --scheduler") from err
        # Tasks are independent tiles: keep Dask from retrying elsewhere on our errors, but let it
        # reschedule the work of a worker that died.
        self._executor = self._client.get_executor(pure=False)

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future:
        return self._executor.submit(fn, *args, **kwargs)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self._executor.shutdown(wait=wait)
        self._client.close()


def _init_worker() -> None:
    """One thread per worker process: the pool, not OpenCV, spreads work over the cores."""
    import cv2

    cv2.setNumThreads(1)

