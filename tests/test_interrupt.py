"""A batch killed at any moment, or stopped by an unwritable or full output folder.

The batch runs as a real process group (``cli.py score --workers 2``), is
SIGKILLed at seeded random moments and in the middle of a file write, and is
run again to completion. After every kill each output file must be absent or
complete; the completed rerun must reuse the slides already stored and write
the same CSV bytes as an uninterrupted run. An output folder that cannot be
written (read-only, full disk) must stop the batch with a one-line message and
exit status 1, leaving the results of an earlier run byte-identical.
"""

from __future__ import annotations

import csv
import errno
import hashlib
import io
import json
import os
import random
import re
import resource
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from ihc_score.outputs import read_cell_results
from ihc_score.synthetic import make_slide, preset

REPO = Path(__file__).resolve().parents[1]
CLI = REPO / "cli.py"
SAMPLES = REPO / "sample_slides"

CSV_NAMES = ("slides.csv", "metastases.csv", "cases.csv")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_IEND = b"\x00\x00\x00\x00IEND\xaeB`\x82"
STORE_NAME = re.compile(r"(?P<slide>.+)-[0-9a-f]{12}\.json")


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def slide_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sample slides and two small synthetic ones (3000 x 2400 px)."""
    d = tmp_path_factory.mktemp("slides")
    for p in sorted(SAMPLES.glob("*.svs")):
        shutil.copy2(p, d / p.name)
    for k in (1, 2):
        make_slide(d / f"small-{k}.svs", preset("default", width=3000, height=2400, seed=k))
    return d


@pytest.fixture(scope="module")
def small_dir(slide_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Only the two small synthetic slides (fast batches for the output-folder tests)."""
    d = tmp_path_factory.mktemp("small")
    for k in (1, 2):
        shutil.copy2(slide_dir / f"small-{k}.svs", d / f"small-{k}.svs")
    return d


@pytest.fixture(scope="module")
def baseline(slide_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Outputs of an uninterrupted batch over ``slide_dir``."""
    out = tmp_path_factory.mktemp("baseline") / "out"
    res = _run(slide_dir, out)
    assert res.returncode == 0, res.stderr
    return out


@pytest.fixture(scope="module")
def small_baseline(small_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Outputs of an uninterrupted batch over ``small_dir``."""
    out = tmp_path_factory.mktemp("small-baseline") / "out"
    res = _run(small_dir, out)
    assert res.returncode == 0, res.stderr
    return out


# ----------------------------------------------------------------------------- helpers


def _command(slides: Path, out: Path, *extra: str) -> list[str]:
    # with the QuPath detections too: the largest files, the likeliest to be cut by a kill or a full disk
    return [sys.executable, str(CLI), "score", str(slides), "--out", str(out), "--workers", "2", "-q",
            "--detections", "geojson", *extra]


def _run(
    slides: Path, out: Path, *extra: str, preexec_fn: Callable[[], None] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run a batch to its end (in its own session, so nothing outlives it)."""
    return subprocess.run(
        _command(slides, out, *extra),
        capture_output=True,
        text=True,
        timeout=240,
        start_new_session=True,
        preexec_fn=preexec_fn,
    )


def _start(slides: Path, out: Path, log: Path) -> subprocess.Popen[bytes]:
    """Start a batch as the leader of a new process group (its pool workers join the group)."""
    with open(log, "ab") as fh:
        return subprocess.Popen(
            _command(slides, out), stdout=fh, stderr=fh, stdin=subprocess.DEVNULL, start_new_session=True
        )


def _group_members(pgid: int) -> list[int]:
    """Live (not zombie) processes of a process group, from /proc."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        state, _ppid, pgrp = text[text.rindex(")") + 2 :].split()[:3]
        if int(pgrp) == pgid and state != "Z":
            members.append(int(stat.parent.name))
    return members


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL the batch and its workers at once and wait until none of them runs."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(timeout=30)
    deadline = time.monotonic() + 15
    while _group_members(proc.pid):
        assert time.monotonic() < deadline, f"processes of the killed batch still run: {_group_members(proc.pid)}"
        time.sleep(0.05)


def _is_temporary(path: Path) -> bool:
    """A temporary file of an atomic write (``.<name>.<random>.tmp``)."""
    return path.name.startswith(".") and path.name.endswith(".tmp")


def _files(out: Path) -> Iterator[Path]:
    return (p for p in sorted(out.rglob("*")) if p.is_file())


def _temporaries(out: Path) -> set[str]:
    return {str(p.relative_to(out)) for p in _files(out) if _is_temporary(p)}


def _csv_header(path: Path) -> list[str]:
    return next(csv.reader(io.StringIO(path.read_text(encoding="utf-8"))))


def _check_complete(path: Path, headers: dict[str, list[str]]) -> None:
    """Fail unless ``path`` is a complete, parseable output file."""
    name = path.name
    data = path.read_bytes()
    if name in headers:
        text = data.decode("utf-8")
        assert text.endswith("\n"), f"{path}: last line cut"
        rows = list(csv.reader(io.StringIO(text)))
        assert rows[0] == headers[name], f"{path}: wrong header"
        assert all(len(r) == len(rows[0]) for r in rows[1:]), f"{path}: a row has a wrong number of fields"
    elif name.endswith(".geojson"):
        doc = json.loads(data)
        assert doc["type"] == "FeatureCollection" and doc["features"], f"{path}: not a complete FeatureCollection"
    elif name.endswith(".json"):
        assert isinstance(json.loads(data), dict), f"{path}: not a JSON object"
    elif name.endswith(".png"):
        assert data.startswith(PNG_SIGNATURE) and data.endswith(PNG_IEND), f"{path}: truncated PNG"
    elif name.endswith(".webp"):
        riff = data[:4] == b"RIFF" and data[8:12] == b"WEBP"
        assert riff and int.from_bytes(data[4:8], "little") + 8 == len(data), f"{path}: truncated WebP"
    elif name.endswith(".parquet"):
        assert data[:4] == data[-4:] == b"PAR1", f"{path}: truncated Parquet"
        assert len(read_cell_results(path).l0_x) > 0, f"{path}: no cells"
    elif name.endswith(".html"):
        assert data.rstrip().endswith(b"</html>"), f"{path}: truncated HTML"
    elif name.startswith("."):
        assert data == b"", f"{path}: a hidden file (write probe, lock) holds data"
    else:
        pytest.fail(f"{path}: unexpected output file; teach _check_complete to validate it")


def _check_folder(out: Path, headers: dict[str, list[str]]) -> set[str]:
    """Check every output file is complete; return the temporary files left (relative paths)."""
    if not out.exists():
        return set()
    for p in _files(out):
        if not _is_temporary(p):
            _check_complete(p, headers)
    return _temporaries(out)


def _stored_slides(out: Path) -> set[str]:
    """Slides (file names) with a stored result, from the store's file names."""
    store = out / "store"
    if not store.is_dir():
        return set()
    return {m["slide"] for p in store.glob("*.json") if (m := STORE_NAME.fullmatch(p.name))}


def _kill_during_a_write(proc: subprocess.Popen[bytes], out: Path, known: set[str], timeout: float) -> str | None:
    """SIGKILL the batch as soon as a new detections or QC file is being written, once a slide is stored.

    Returns the temporary file seen, or None if the run ended first.
    """
    deadline = time.monotonic() + timeout
    while proc.poll() is None and time.monotonic() < deadline:
        if _stored_slides(out):
            new = sorted(t for t in _temporaries(out) - known if t.startswith(("detections/", "qc/")))
            if new:
                _kill_group(proc)
                return new[0]
        time.sleep(0.005)
    _kill_group(proc)
    return None


def _digests(out: Path) -> dict[str, str]:
    return {str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest() for p in _files(out)}


def _one_line_error(res: subprocess.CompletedProcess[str]) -> str:
    """The batch's error message; fails unless it is a single line and not a traceback."""
    assert "Traceback" not in res.stderr, res.stderr
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith("Error: "), res.stderr
    return lines[0]


def _can_make_immutable(folder: Path) -> bool:
    """Whether ``chattr +i`` works here (root ignores file modes, not the immutable flag)."""
    if shutil.which("chattr") is None:
        return False
    probe = folder / ".immutable-probe"
    probe.mkdir()
    try:
        ok = subprocess.run(["chattr", "+i", str(probe)], capture_output=True).returncode == 0
        if ok:
            subprocess.run(["chattr", "-i", str(probe)], check=True)
        return ok
    finally:
        probe.rmdir()


@contextmanager
def _read_only(folder: Path) -> Iterator[None]:
    """Make ``folder`` unwritable for this user: mode 0555, or the immutable flag for root; skip if neither works."""
    if os.geteuid() != 0:
        mode = folder.stat().st_mode
        folder.chmod(0o555)
        try:
            yield
        finally:
            folder.chmod(mode)
        return
    if not _can_make_immutable(folder.parent):
        pytest.skip("running as root (file modes do not stop root) and chattr +i does not work on this file system")
    subprocess.run(["chattr", "+i", str(folder)], check=True)
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(folder)], check=True)


def _previous_run(baseline: Path, out: Path) -> dict[str, str]:
    """Copy a complete run into ``out``; return the digests of its files."""
    shutil.copytree(baseline, out)
    return _digests(out)


def _assert_results_intact(out: Path, before: dict[str, str]) -> None:
    after = _digests(out)
    assert _temporaries(out) == set(), "temporary files left by the failed write"
    changed = sorted(k for k in before if after.get(k) != before[k])
    assert changed == [], f"results of the earlier run changed or vanished: {changed}"
    assert set(after) == set(before), f"new files: {sorted(set(after) - set(before))}"


# ----------------------------------------------------------------------------- kill and rerun


@pytest.mark.slow
def test_killed_batch_leaves_complete_files_and_rerun_matches(slide_dir, baseline, tmp_path):
    headers = {name: _csv_header(baseline / name) for name in CSV_NAMES}
    out = tmp_path / "out"
    log = tmp_path / "batch.log"
    rng = random.Random(20261129)
    left_by_kills: set[str] = set()
    stored_before_final: set[str] = set()
    rounds = [rng.uniform(0.5, 8.0) for _ in range(3)] + [None]  # None: kill in the middle of a file write
    caught_write = None
    for delay in rounds:
        proc = _start(slide_dir, out, log)
        if delay is None:
            caught_write = _kill_during_a_write(proc, out, left_by_kills, timeout=60)
        else:
            time.sleep(delay)
            _kill_group(proc)
        left_by_kills |= _check_folder(out, headers)
        stored_before_final = _stored_slides(out)

    print(f"kills at {rounds} s; temporary files left: {sorted(left_by_kills)}; stored: {sorted(stored_before_final)}")
    assert caught_write is None or caught_write in left_by_kills, "the write killed half-way left no temporary file"
    res = _run(slide_dir, out)
    assert res.returncode == 0, res.stderr
    _check_folder(out, headers)

    # (b) slides stored before the rerun are reused, not scored again
    run = json.loads((out / "run.json").read_text())
    assert run["slides"]["reused"] == sorted(stored_before_final)
    assert stored_before_final, "no slide was finished before the last kill"

    # (c) the same bytes as an uninterrupted run, for the tables and every per-slide file
    for name in CSV_NAMES:
        assert (out / name).read_bytes() == (baseline / name).read_bytes(), name
    final = {k: v for k, v in _digests(out).items() if not _is_temporary(out / k)}
    expected = _digests(baseline)
    assert set(final) == set(expected)
    per_slide = [k for k in expected if k.startswith(("qc/", "detections/"))]
    assert per_slide and [k for k in per_slide if final[k] != expected[k]] == []


def test_ctrl_c_stops_the_batch_at_once_without_tracebacks(slide_dir, baseline, tmp_path):
    """Ctrl-C (SIGINT to the whole process group, as a terminal sends it) mid-batch: exit status 1 within
    seconds, no traceback from the main process or a worker, no process left; the rerun gives the same CSVs."""
    headers = {name: _csv_header(baseline / name) for name in CSV_NAMES}
    out = tmp_path / "out"
    with open(tmp_path / "batch.log", "wb") as fh:
        proc = subprocess.Popen(
            _command(slide_dir, out), stdout=fh, stderr=fh, stdin=subprocess.DEVNULL, start_new_session=True,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # as a terminal's job has it
        )
    try:
        deadline = time.monotonic() + 120
        while not _stored_slides(out):  # mid-batch: a slide written, the pool busy with the next ones
            assert proc.poll() is None, "the batch ended before it could be interrupted"
            assert time.monotonic() < deadline, "no slide was stored"
            time.sleep(0.02)
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(timeout=30)
        deadline = time.monotonic() + 15
        while _group_members(proc.pid):
            assert time.monotonic() < deadline, f"processes still run after Ctrl-C: {_group_members(proc.pid)}"
            time.sleep(0.05)
    finally:
        _kill_group(proc)
    log = (tmp_path / "batch.log").read_text(errors="replace")
    assert proc.returncode == 1, log
    assert "Traceback" not in log and "Aborted!" in log, log
    _check_folder(out, headers)
    res = _run(slide_dir, out)
    assert res.returncode == 0, res.stderr
    for name in CSV_NAMES:
        assert (out / name).read_bytes() == (baseline / name).read_bytes(), name


def test_rerun_removes_temporaries_of_a_killed_write(small_dir, small_baseline, tmp_path):
    """What a write killed half-way leaves (``.<name>.<random>.tmp``) is gone after a completed rerun."""
    out = tmp_path / "out"
    shutil.copytree(small_baseline, out)
    half = (small_baseline / "detections" / "small-1.geojson").read_bytes()[:5000]
    planted = [
        out / "detections" / ".small-1.geojson.k7f3q9zx.tmp",
        out / "qc" / ".small-2.png.w1e5r8ty.tmp",
        out / "store" / ".small-1.svs-0123456789ab.json.a8s7d6f5.tmp",
        out / ".slides.csv.p0o9i8u7.tmp",
    ]
    for p in planted:
        p.write_bytes(half)
    res = _run(small_dir, out)
    assert res.returncode == 0, res.stderr
    assert json.loads((out / "run.json").read_text())["slides"]["reused"] == ["small-1.svs", "small-2.svs"]
    assert _temporaries(out) == set(), "temporary files of a killed write survive a completed rerun"


# ----------------------------------------------------------------------------- unwritable output folder


def test_read_only_output_folder_stops_at_once(small_dir, small_baseline, tmp_path):
    out = tmp_path / "out"
    before = _previous_run(small_baseline, out)
    with _read_only(out):
        started = time.monotonic()
        res = _run(small_dir, out, "--force")
        seconds = time.monotonic() - started
    assert res.returncode == 1, res.stderr
    line = _one_line_error(res)
    assert str(out) in line and "permission denied" in line, line
    assert seconds < 15, f"the batch ran {seconds:.1f} s before noticing"
    _assert_results_intact(out, before)


@pytest.mark.slow
def test_output_subfolder_read_only_midway_stops_the_batch(small_dir, small_baseline, tmp_path):
    """The QC folder is unwritable: the first finished slide stops the batch; nothing earlier changes."""
    out = tmp_path / "out"
    before = _previous_run(small_baseline, out)
    with _read_only(out / "qc"):
        res = _run(small_dir, out, "--force")
    assert res.returncode == 1, res.stderr
    line = _one_line_error(res)
    assert str(out / "qc") in line and "permission denied" in line, line
    _assert_results_intact(out, before)


# ----------------------------------------------------------------------------- full disk


def _file_size_limit(n_bytes: int) -> Callable[[], None]:
    """preexec_fn: files may not grow beyond ``n_bytes`` (writes then fail with EFBIG, as on a full disk)."""

    def limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (n_bytes, n_bytes))

    return limit


@pytest.mark.slow
def test_file_size_limit_stops_the_batch_and_keeps_earlier_results(small_dir, small_baseline, tmp_path):
    out = tmp_path / "out"
    before = _previous_run(small_baseline, out)
    largest_table = max((small_baseline / n).stat().st_size for n in CSV_NAMES)
    smallest_detections = min(p.stat().st_size for p in (small_baseline / "detections").glob("*.geojson"))
    limit = 256 * 1024
    assert largest_table < limit < smallest_detections  # the first slide's detections hit the limit
    res = _run(small_dir, out, "--force", preexec_fn=_file_size_limit(limit))
    assert res.returncode == 1, res.stderr
    line = _one_line_error(res)
    assert "cannot write" in line and "detections" in line, line
    assert re.search(rf"{os.strerror(errno.EFBIG)}|larger than|size limit", line, re.IGNORECASE), line
    _assert_results_intact(out, before)


@contextmanager
def _small_tmpfs(folder: Path, size_bytes: int) -> Iterator[None]:
    """Mount a tmpfs of ``size_bytes`` on ``folder``; skip when this machine does not allow it."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a small tmpfs needs root")
    res = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_bytes}", "ihc-score-test", str(folder)], capture_output=True
    )
    if res.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {res.stderr.decode().strip()}")
    try:
        yield
    finally:
        subprocess.run(["umount", str(folder)], check=True)


@pytest.mark.slow
def test_full_disk_stops_the_batch_and_keeps_earlier_results(small_dir, small_baseline, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    used = sum(p.stat().st_size for p in _files(small_baseline))
    # room for the earlier run, the tables and a QC picture, not for a second copy of any slide's detections
    with _small_tmpfs(out, used + 1024 * 1024):
        shutil.copytree(small_baseline, out, dirs_exist_ok=True)
        before = _digests(out)
        res = _run(small_dir, out, "--force")
        assert res.returncode == 1, res.stderr
        line = _one_line_error(res)
        assert "cannot write" in line and "disk is full" in line, line
        _assert_results_intact(out, before)
