"""ihc-score on a real Dask cluster when part of it dies mid-batch.

A worker killed while it runs tile tasks: Dask moves its tasks to the
workers left (and the nanny's restarted one) and the CSVs are the same bytes
as a local run's. The scheduler killed mid-batch: the command ends within
seconds with exit status 1 and one line saying what happened, never hangs.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from ihc_score.cli import main

distributed = pytest.importorskip("distributed")

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "sample_slides"
CSVS = ("slides.csv", "metastases.csv", "cases.csv")
#: Options of every run here: the CSVs do not depend on QC pictures, which only slow the client down.
FAST = ("--no-qc", "--detections", "none")
#: Seconds a batch of these slides may take on a busy two-core machine before the test calls it a hang.
BATCH_TIMEOUT_S = 120.0


@pytest.fixture(scope="module")
def slides(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The three sample slides: 3 plans, then 16 tile tasks (small slides: one tile a task)."""
    d = tmp_path_factory.mktemp("slides")
    for src in sorted(SAMPLES.glob("*.svs")):
        shutil.copy(src, d / src.name)
    return d


@pytest.fixture(scope="module")
def local_out(slides: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same slides scored in this process (``--workers 1``): the bytes every cluster run must give."""
    out = tmp_path_factory.mktemp("local")
    res = CliRunner().invoke(main, ["score", str(slides), "--out", str(out), "--workers", "1", *FAST])
    assert res.exit_code == 0, res.output
    return out


def _start_score(slides: Path, out: Path, scheduler: str) -> subprocess.Popen[str]:
    """``ihc-score score`` on the cluster, in its own process (as a user runs it)."""
    return subprocess.Popen(
        [sys.executable, str(REPO / "cli.py"), "score", str(slides), "--out", str(out), "--scheduler", scheduler, *FAST],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _tile_tasks_per_worker(client: distributed.Client) -> dict[str, int]:
    """Tile tasks (``score_tiles``) each worker is running or has queued."""
    return {w: sum(str(k).startswith("score_tiles-") for k in keys) for w, keys in client.processing().items()}


def _kill_a_busy_worker(client: distributed.Client, proc: subprocess.Popen[str], timeout_s: float) -> int | None:
    """SIGKILL the process of a worker as soon as it holds a tile task while ``proc`` still runs.

    Returns the killed pid, or None when the batch ended (or ``timeout_s``
    passed) before any worker held a tile task.
    """
    pids: dict[str, int] = client.run(os.getpid)
    deadline = time.monotonic() + timeout_s
    while proc.poll() is None and time.monotonic() < deadline:
        busy = [w for w, n in _tile_tasks_per_worker(client).items() if n and w in pids]
        if busy:
            os.kill(pids[busy[0]], signal.SIGKILL)
            return pids[busy[0]]
        time.sleep(0.02)
    return None


def test_a_worker_killed_mid_batch_changes_no_byte(slides: Path, local_out: Path, tmp_path: Path) -> None:
    from distributed import Client, LocalCluster

    with (
        LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster,
        Client(cluster, set_as_default=False) as client,
    ):
        for attempt in range(2):  # the batch may, rarely, end before a tile task is caught on a worker
            out = tmp_path / f"attempt{attempt}"
            proc = _start_score(slides, out, cluster.scheduler_address)
            try:
                killed = _kill_a_busy_worker(client, proc, timeout_s=BATCH_TIMEOUT_S)
                stdout, stderr = proc.communicate(timeout=BATCH_TIMEOUT_S)
            finally:
                proc.kill()
            if killed is not None:
                break
        assert killed is not None, "the batch ended twice before a worker held a tile task"
        assert killed not in client.run(os.getpid).values()

    assert proc.returncode == 0, stderr
    assert "Traceback" not in stderr
    for name in CSVS:
        assert (out / name).read_bytes() == (local_out / name).read_bytes(), name
    run = json.loads((out / "run.json").read_text())
    assert run["executor"] == f"dask:{cluster.scheduler_address}"


def test_the_scheduler_killed_mid_batch_is_one_line_and_exit_1(slides: Path, tmp_path: Path) -> None:
    scheduler_file = tmp_path / "scheduler.json"
    scheduler = subprocess.Popen(
        [sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard", "--scheduler-file", str(scheduler_file)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    workers = None
    proc = None
    try:
        deadline = time.monotonic() + 60
        while not scheduler_file.exists() or not scheduler_file.read_text().strip():
            assert time.monotonic() < deadline and scheduler.poll() is None, "dask scheduler did not start"
            time.sleep(0.1)
        address = json.loads(scheduler_file.read_text())["address"]
        workers = subprocess.Popen(
            [sys.executable, "-m", "distributed.cli.dask_worker", address, "--nworkers", "2", "--nthreads", "1",
             "--no-dashboard"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        from distributed import Client

        with Client(address, set_as_default=False) as client:
            client.wait_for_workers(2, timeout=60)
            proc = _start_score(slides, tmp_path / "out", address)
            deadline = time.monotonic() + BATCH_TIMEOUT_S
            while proc.poll() is None and not any(_tile_tasks_per_worker(client).values()):
                assert time.monotonic() < deadline, "no tile task reached a worker"
                time.sleep(0.02)
        assert proc.poll() is None, "the batch ended before the scheduler could be killed"
        scheduler.send_signal(signal.SIGKILL)
        killed_at = time.monotonic()
        stdout, stderr = proc.communicate(timeout=60)
        ended_after_s = time.monotonic() - killed_at
    finally:
        for p in (proc, workers, scheduler):
            if p is not None:
                p.terminate()  # dask worker closes its nannies and their worker processes
                try:
                    p.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()

    assert proc.returncode == 1, stderr
    assert ended_after_s < 30
    lost = f"lost the connection to the Dask scheduler at {address}; check that it runs and run the same command again"
    assert lost in stderr
    assert "Traceback" not in stderr, stderr


#: Logs, as Dask does, a closed connection with a traceback from three loggers, then a plain line.
_LOG_CLOSED_CONNECTIONS = """
import logging, sys
from distributed import LocalCluster
from distributed.comm.core import CommClosedError
from ihc_score.run.executors import make_executor

if sys.argv[1] == "root-handler":  # a program that set up logging before importing Dask
    logging.basicConfig(level=logging.INFO)
with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cluster:
    executor, _ = make_executor(1, cluster.scheduler_address)
    for name in ("distributed.batched", "distributed.client", "tornado.application"):
        try:
            raise CommClosedError("in <TCP (closed)>")
        except CommClosedError:
            logging.getLogger(name).error("Batched Comm Closed", exc_info=True)
    logging.getLogger("distributed.batched").error("a plain line")
    executor.shutdown()
    try:
        raise CommClosedError("after shutdown")
    except CommClosedError:
        logging.getLogger("distributed.batched").error("after shutdown", exc_info=True)
"""


@pytest.mark.parametrize("setup", ["dask-handlers", "root-handler"])
def test_closed_connection_tracebacks_of_any_dask_logger_are_dropped(setup: str) -> None:
    """Dask logs a lost connection with a traceback from several loggers; the executor says it in one
    line, so while it runs none of them reaches stderr, whoever set up the handlers."""
    proc = subprocess.run(
        [sys.executable, "-c", _LOG_CLOSED_CONNECTIONS, setup], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    before_shutdown, _, after_shutdown = proc.stderr.partition("a plain line")
    assert _ and "Traceback" not in before_shutdown, proc.stderr
    assert "CommClosedError: after shutdown" in after_shutdown, "the filter outlived the executor"
