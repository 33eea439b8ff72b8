"""LanePool: each free lane runs the call after its last one; calls, results and errors are kept.

The pool under it is a real thread pool in most tests, so that the tests
decide when each call ends; the process pool of ``--workers N`` is the same
interface, and the tests of dying workers use it.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import CancelledError, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool

import pytest

from ihc_score.errors import IhcScoreError
from ihc_score.run import LanePool, make_executor, next_call


@pytest.mark.parametrize(
    "queued, last, walking, expected",
    [
        ([], 3, set(), None),
        ([4, 5, 6], 3, set(), 4),  # its neighbour
        ([0, 1, 2, 3, 4, 5, 6, 7], None, set(), 0),  # the first lane starts at the start
        ([1, 2, 3, 4, 5, 6, 7], None, {0}, 4),  # another lane walks into 1..7: split it
        ([2, 3, 8, 9, 10, 11], 6, {1}, 8),  # longest run, nobody walking into it
        ([2, 3, 8, 9, 10, 11], 6, {7}, 10),  # longest run, walked into from 7
        ([2, 3, 8, 9], 6, set(), 2),  # tie: the earliest run
        ([3], 7, {2}, 3),  # the last call left: taken though another lane walks into it
    ],
)
def test_next_call_by_hand(queued, last, walking, expected) -> None:
    assert next_call(queued, last, walking) == expected


class _Gated:
    """Calls that start, record their start and wait until the test lets them end."""

    def __init__(self, n: int) -> None:
        self.gates = [threading.Event() for _ in range(n)]
        self.started: list[int] = []
        self.cond = threading.Condition()

    def __call__(self, k: int) -> int:
        with self.cond:
            self.started.append(k)
            self.cond.notify_all()
        assert self.gates[k].wait(10), f"call {k} was never let go"
        if k == 5:
            raise ValueError("call 5 fails")
        return k * k

    def wait_started(self, n: int) -> list[int]:
        with self.cond:
            assert self.cond.wait_for(lambda: len(self.started) >= n, 10), f"only {self.started} started"
            return list(self.started)


def test_two_lanes_walk_their_own_halves_and_meet() -> None:
    calls = _Gated(8)
    pool = LanePool(lambda: ThreadPoolExecutor(2), 2)
    futures = [pool.submit(calls, k) for k in range(8)]
    assert sorted(calls.wait_started(2)) == [0, 4]
    expected = [0, 4]
    # (call to end, call its lane starts next)
    for done, nxt in [(0, 1), (4, 5), (1, 2), (5, 6), (6, 7), (7, 3)]:
        calls.gates[done].set()
        expected.append(nxt)
        assert calls.wait_started(len(expected)) == expected
    calls.gates[2].set()
    calls.gates[3].set()
    pool.shutdown(wait=True)
    assert calls.started == expected
    assert [f.result() for f in futures if f is not futures[5]] == [k * k for k in range(8) if k != 5]
    with pytest.raises(ValueError, match="call 5 fails"):
        futures[5].result()


def test_queued_calls_can_be_cancelled_and_shutdown_runs_the_rest() -> None:
    calls = _Gated(4)
    pool = LanePool(lambda: ThreadPoolExecutor(1), 1)
    futures = [pool.submit(calls, k) for k in range(4)]
    assert calls.wait_started(1) == [0]
    assert futures[2].cancel()
    assert not futures[0].cancel()  # running
    for g in calls.gates:
        g.set()
    pool.shutdown(wait=True)
    assert calls.started == [0, 1, 3]
    assert futures[2].cancelled() and [futures[k].result() for k in (0, 1, 3)] == [0, 1, 9]
    with pytest.raises(RuntimeError, match="after shutdown"):
        pool.submit(calls, 0)


def test_shutdown_with_cancel_futures_drops_what_has_not_started() -> None:
    calls = _Gated(3)
    pool = LanePool(lambda: ThreadPoolExecutor(1), 1)
    futures = [pool.submit(calls, k) for k in range(3)]
    calls.wait_started(1)
    stopper = threading.Thread(target=pool.shutdown, kwargs={"wait": True, "cancel_futures": True})
    stopper.start()
    for f in futures[1:]:
        with pytest.raises(CancelledError):  # once shutdown has cancelled it
            f.result(timeout=10)
    calls.gates[0].set()
    stopper.join(10)
    assert not stopper.is_alive()
    assert futures[0].result() == 0 and all(f.cancelled() for f in futures[1:])
    assert calls.started == [0]


class _Killing(_Gated):
    """Gated calls that, when told, end as if their worker process had died (BrokenProcessPool)."""

    def __init__(self, n: int) -> None:
        super().__init__(n)
        self.kill: set[int] = set()

    def __call__(self, k: int) -> int:
        with self.cond:
            self.started.append(k)
            self.cond.notify_all()
        assert self.gates[k].wait(10), f"call {k} was never let go"
        self.gates[k].clear()  # the next run of k waits again
        if k in self.kill:
            self.kill.discard(k)
            raise BrokenProcessPool("a worker died")
        return k


def test_calls_a_worker_died_under_run_again_alone_and_only_the_killer_fails() -> None:
    """Call 0 kills its worker three times; call 2, beside it the first time, runs again alone and succeeds."""
    calls = _Killing(4)
    pool = LanePool(lambda: ThreadPoolExecutor(2), 2, max_runs=3)
    futures = [pool.submit(calls, k) for k in range(4)]
    assert sorted(calls.wait_started(2)) == [0, 2]
    calls.kill |= {0, 2}  # 0 kills the pool; 2, in flight beside it, dies with it
    calls.gates[0].set()
    calls.gates[2].set()
    assert calls.wait_started(3)[2] == 0  # the first suspect, alone
    for run in (2, 3):  # 0 kills its worker again, alone
        calls.kill.add(0)
        calls.gates[0].set()
        started = calls.wait_started(run + 2)
        assert started[run + 1] == (0 if run == 2 else 2), started
    with pytest.raises(IhcScoreError, match="worker processes died 3 times"):
        futures[0].result(timeout=10)
    assert not futures[2].done()
    calls.gates[2].set()  # 2 alone, then 1 and 3 on the two lanes
    assert futures[2].result(timeout=10) == 2
    assert sorted(calls.wait_started(7)[5:]) == [1, 3]
    calls.gates[1].set()
    calls.gates[3].set()
    pool.shutdown(wait=True)
    assert [futures[k].result() for k in (1, 3)] == [1, 3]
    assert calls.started == [0, 2, 0, 0, 2, 1, 3] or calls.started == [0, 2, 0, 0, 2, 3, 1]


#: Kills its worker process the first time it runs (the marker file is then made), returns None after.
_DIE_ONCE = "import os, pathlib\np = pathlib.Path({path!r})\nif not p.exists():\n    p.touch()\n    os._exit(3)\n"


def test_a_worker_that_dies_once_costs_nothing_and_one_that_always_dies_fails_its_call(tmp_path) -> None:
    """Real spawned workers: os._exit kills the worker and breaks the process pool under the LanePool."""
    executor, _ = make_executor(2)
    with executor:
        once = executor.submit(exec, _DIE_ONCE.format(path=str(tmp_path / "died")))
        always = executor.submit(os._exit, 3)
        # beside the calls that kill their worker, these die with it, then run again alone and succeed
        others = [executor.submit(pow, 2, k) for k in range(6)]
        assert once.result(timeout=120) is None and (tmp_path / "died").exists()
        with pytest.raises(IhcScoreError, match="worker processes died 3 times while running a task"):
            always.result(timeout=120)
        assert [f.result(timeout=120) for f in others] == [2**k for k in range(6)]
        assert executor.submit(pow, 3, 2).result(timeout=120) == 9  # the pool works on


def test_local_workers_leave_ctrl_c_to_the_main_process() -> None:
    """An idle worker stopped by Ctrl-C would print a traceback and be taken for a crashed one."""
    import signal

    executor, _ = make_executor(2)
    with executor:
        assert executor.submit(signal.getsignal, signal.SIGINT).result(timeout=120) == signal.SIG_IGN


def test_local_workers_start_with_the_pipeline_and_its_kernels_loaded() -> None:
    """Where the platform has a fork server, workers are forked from it with the pipeline and kernels loaded."""
    import multiprocessing

    probe = (
        "(__import__('sys').modules.get('ihc_score.run.pipeline') is not None,"
        " bool(__import__('sys').modules['ihc_score.cells._kernels'].label_stats.signatures),"
        " __import__('os').getppid())"
    )
    executor, _ = make_executor(2)
    with executor:
        pipeline, kernels, parent = executor.submit(eval, probe).result(timeout=120)
    assert pipeline and kernels
    if "forkserver" in multiprocessing.get_all_start_methods():
        assert parent != os.getpid()  # forked by the fork server, not spawned by this process


def test_workers_are_spawned_where_the_fork_server_cannot_start() -> None:
    """No socket or temporary folder for the fork server: the pool spawns its workers and works as before."""
    import subprocess
    import sys

    code = """
import os
import multiprocessing.forkserver as fs

def refuse():
    raise PermissionError("no temporary folder")

fs.ensure_running = refuse
from ihc_score.run.executors import make_executor

if __name__ == "__main__":
    executor, _ = make_executor(2)
    with executor:
        print(executor.submit(pow, 2, 10).result(timeout=120), executor.submit(os.getppid).result(timeout=120) == os.getpid())
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["1024", "True"]  # spawned by this process


def test_a_call_whose_worker_dies_during_shutdown_runs_again_before_shutdown_returns(tmp_path) -> None:
    executor, _ = make_executor(2)
    once = executor.submit(exec, _DIE_ONCE.format(path=str(tmp_path / "died")))
    executor.shutdown(wait=True)
    assert once.done() and once.result() is None and (tmp_path / "died").exists()
