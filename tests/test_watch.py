"""``ihc-score watch``: slides are read only once settled, scored once, and a stop or restart loses nothing.

The settle rule is checked as a pure function over observation sequences;
the watcher itself runs as a real process (``python -c ... watch``) on a
temporary inbox into which threads write copies of the sample slides slowly,
in chunks with pauses shorter than ``--settle``, as a scanner does. A slide
read half-written would show as a failed line, a second scoring, a stored
result whose file fingerprint is not the finished file's, or a store
written less than ``--settle`` seconds after the copy's last write.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from click.testing import CliRunner

import ihc_score
import ihc_score.cli.watch  # registers the command
from ihc_score.cli import main
from ihc_score.errors import OutputError
from ihc_score.model import load_model
from ihc_score.run import (
    InlineExecutor,
    Sighting,
    StopRequest,
    WatchRound,
    WatchSettings,
    changed_slides,
    file_fingerprint,
    observe,
    plan_slide,
    settled,
    signature,
    slide_members,
    stop_on_signals,
    update_sightings,
    watch_inbox,
    watch_lock,
)

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "sample_slides"
PACKAGED_MODEL = Path(ihc_score.__file__).parent / "models" / "s100a9-brain-met.json"
SETTLE_S = 1.0
POLL_S = 0.2
WATCH = "import ihc_score.cli.watch; from ihc_score.cli import main; main(prog_name='ihc-score')"
TABLES = ("slides.csv", "metastases.csv", "cases.csv")


# ----------------------------------------------------------------------------- the settle rule, pure


def _fold(observations: list[tuple[float, dict[Path, tuple]]], settle_s: float) -> list[set[Path]]:
    """The settled slides after each observation of a sequence ``(time, {slide: signature})``."""
    sightings: dict[Path, Sighting] = {}
    out = []
    for now, seen in observations:
        sightings = update_sightings(sightings, seen, now)
        out.append(set(settled(sightings, now, settle_s)))
    return out


def _sig(*members: tuple[str, int, int]) -> tuple:
    return tuple(members)


def test_a_growing_file_never_settles_and_a_stable_one_settles_after_the_settle_time() -> None:
    grow, still = Path("grow.svs"), Path("still.svs")
    obs = []
    for k in range(60):  # 12 s of polls every 0.2 s; "grow" gains a chunk every 0.8 s (pauses < settle)
        t = 0.2 * k
        obs.append((t, {grow: _sig(("grow.svs", int(t / 0.8) * 1000, int(t / 0.8))), still: _sig(("still.svs", 5, 1))}))
    states = _fold(obs, settle_s=1.0)
    assert all(grow not in s for s in states)
    first = next(i for i, s in enumerate(states) if still in s)
    assert obs[first][0] == pytest.approx(1.0)  # exactly settle seconds after it was first seen, not before
    assert all(still in s for s in states[first:])


def test_a_change_of_mtime_alone_restarts_the_clock_and_a_vanished_file_is_forgotten() -> None:
    slide = Path("pre.svs")
    # a file allocated at full size, then filled: only the modification time moves
    obs = [(0.2 * k, {slide: _sig(("pre.svs", 4096, k // 3))}) for k in range(20)]
    obs += [(4.0 + 0.2 * k, {slide: _sig(("pre.svs", 4096, 99))}) for k in range(10)]
    states = _fold(obs, settle_s=1.0)
    assert not any(states[:25])
    assert slide in states[-1]
    # gone for one poll, then back unchanged: the wait starts again
    gone = [(0.0, {slide: _sig(("pre.svs", 1, 1))}), (0.6, {}), (1.2, {slide: _sig(("pre.svs", 1, 1))}),
            (2.0, {slide: _sig(("pre.svs", 1, 1))}), (2.2, {slide: _sig(("pre.svs", 1, 1))})]
    assert _fold(gone, settle_s=1.0) == [set(), set(), set(), set(), {slide}]


def test_an_mrxs_slide_with_a_changing_data_file_never_settles() -> None:
    slide = Path("a.mrxs")
    obs = []
    for k in range(60):
        t = 0.2 * k
        # a data file written until t = 8 s with 0.6 s pauses, the .mrxs file and the index unchanged
        size, mtime = (1000 * (1 + int(t / 0.6)), int(t / 0.6)) if t < 8.0 else (99000, 99)
        obs.append((t, {slide: _sig(("a.mrxs", 300, 1), ("a/Data0000.dat", size, mtime), ("a/Index.dat", 50, 1))}))
    states = _fold(obs, settle_s=1.0)
    first = next(i for i, s in enumerate(states) if slide in s)
    assert obs[first][0] == pytest.approx(9.0)  # settle seconds after the last change of a member


def test_only_new_or_changed_settled_slides_call_for_a_round() -> None:
    a, b = Path("a.svs"), Path("b.svs")
    scored = {a: _sig(("a", 1, 1)), b: _sig(("b", 1, 1))}
    assert changed_slides({a: _sig(("a", 1, 1))}, scored) == []  # b gone (an unmounted share): not a change
    assert changed_slides({a: _sig(("a", 2, 2)), b: _sig(("b", 1, 1))}, scored) == [a]
    assert changed_slides({Path("c.svs"): _sig(("c", 1, 1))}, scored) == [Path("c.svs")]


def test_the_files_of_a_slide_on_disk(tmp_path: Path) -> None:
    (tmp_path / "a.mrxs").write_bytes(b"x")
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "Data0000.dat").write_bytes(b"123")
    (tmp_path / "a" / "Slidedat.ini").write_bytes(b"[GENERAL]")
    (tmp_path / "dcm").mkdir()
    for name in ("level0.dcm", "level1.dcm"):
        (tmp_path / "dcm" / name).write_bytes(b"d")
    (tmp_path / "b.svs").write_bytes(b"s")
    (tmp_path / "b.geojson").write_text("{}")
    mrxs = tmp_path / "a.mrxs"
    assert [p.name for p in slide_members(mrxs)] == ["a.mrxs", "Data0000.dat", "Slidedat.ini"]
    assert [p.name for p in slide_members(tmp_path / "dcm" / "level1.dcm")] == ["level1.dcm", "level0.dcm"]
    assert [p.name for p in slide_members(tmp_path / "b.svs")] == ["b.svs", "b.geojson"]
    before = signature(mrxs)
    (tmp_path / "a" / "Data0001.dat").write_bytes(b"")  # a new data file
    after_new = signature(mrxs)
    assert after_new != before
    st = os.stat(tmp_path / "a" / "Data0000.dat")
    (tmp_path / "a" / "Data0000.dat").write_bytes(b"456")  # same size, new content
    os.utime(tmp_path / "a" / "Data0000.dat", ns=(st.st_atime_ns, st.st_mtime_ns + 1000))
    assert signature(mrxs) != after_new
    assert set(observe(tmp_path)) == {mrxs, tmp_path / "b.svs", tmp_path / "dcm" / "level0.dcm",
                                      tmp_path / "dcm" / "level1.dcm"}
    (tmp_path / "b.svs").unlink()
    assert signature(tmp_path / "b.svs") is None
    with pytest.raises(OSError):
        observe(tmp_path / "unmounted")


# ----------------------------------------------------------------------------- stopping


def test_a_stop_interrupts_only_interruptible_work_and_only_once() -> None:
    stop = StopRequest()
    stop.request(signal.SIGINT)  # outside: only noted
    assert stop.requested and stop.signum == signal.SIGINT
    with pytest.raises(KeyboardInterrupt), stop.interruptible():  # already requested: at once
        pass
    stop = StopRequest()
    with pytest.raises(KeyboardInterrupt), stop.interruptible():
        stop.request()
    stop.request()  # a second signal while stopping does nothing
    assert stop.signum == signal.SIGTERM


def test_sigterm_raises_keyboard_interrupt_into_a_round_and_the_handlers_come_back() -> None:
    before = signal.getsignal(signal.SIGTERM)
    stop = StopRequest()
    start = time.monotonic()
    with stop_on_signals(stop):
        threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGTERM)).start()
        with pytest.raises(KeyboardInterrupt), stop.interruptible():
            time.sleep(10)
    assert time.monotonic() - start < 5 and stop.signum == signal.SIGTERM
    assert signal.getsignal(signal.SIGTERM) is before


def test_one_watcher_per_results_folder_and_settings_are_checked(tmp_path: Path) -> None:
    with watch_lock(tmp_path / "out"), pytest.raises(OutputError, match="another ihc-score watch"), \
            watch_lock(tmp_path / "out"):
        pass
    with pytest.raises(ValueError):
        WatchSettings(settle_s=1.0, poll_s=2.0)
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    res = CliRunner().invoke(main, ["watch", str(inbox), "--out", str(tmp_path / "o"), "--settle", "1", "--poll", "2"])
    assert res.exit_code == 2 and "--poll" in res.output
    res = CliRunner().invoke(main, ["watch", str(tmp_path / "none"), "--out", str(tmp_path / "o")])
    assert res.exit_code == 2
    res = CliRunner().invoke(main, ["watch", str(inbox), "--out", str(tmp_path / "o"), "--settle", "0.3",
                                    "--poll", "0.1", "--once", "--workers", "1"])
    assert res.exit_code == 0 and "nothing scored" in res.output
    (inbox / "broken.svs").write_bytes(b"not a slide" * 100)
    res = CliRunner().invoke(main, ["watch", str(inbox), "--out", str(tmp_path / "o"), "--settle", "0.3",
                                    "--poll", "0.1", "--once", "--workers", "1", "--quiet"])
    assert res.exit_code == 1  # --once: a slide failed
    assert [line.split("  ")[1:3] for line in res.stdout.splitlines()] == [["broken.svs", "failed"]]
    assert res.stderr == ""


# ----------------------------------------------------------------------------- helpers


@pytest.fixture(scope="module")
def direct(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``ihc-score score`` of the positive sample, in its own folder: the reference results."""
    d = tmp_path_factory.mktemp("direct")
    shutil.copy2(SAMPLES / "synthetic-positive.svs", d / "synthetic-positive.svs")
    res = CliRunner().invoke(main, ["score", str(d / "synthetic-positive.svs"), "--out", str(d / "out"),
                                    "--workers", "1", "--quiet"])
    assert res.exit_code == 0, res.output
    return d / "out"


def _slow_copy(src: Path, dst: Path, done: dict[str, float], *, chunk: int = 256 << 10, pause_s: float = 0.25,
               mode: str = "append") -> None:
    """Copy ``src`` to ``dst`` in chunks with pauses, as a scanner writes; ``done[name]`` = monotonic end.

    ``append`` grows the file; ``prealloc`` sets its full size first and fills
    it (only the modification time moves); ``rename`` writes a hidden name and
    renames it at the end (the safest way for a scanner).
    """
    data = src.read_bytes()
    target = dst.with_name(f".{dst.name}.part") if mode == "rename" else dst
    with open(target, "wb") as fh:
        if mode == "prealloc":
            fh.truncate(len(data))
        for off in range(0, len(data), chunk):
            fh.seek(off)
            fh.write(data[off : off + chunk])
            fh.flush()
            os.fsync(fh.fileno())
            time.sleep(pause_s)
    if mode == "rename":
        os.replace(target, dst)
    done[dst.name] = time.monotonic()


def _rows(path: Path) -> list[dict[str, str]]:
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            return list(csv.DictReader(fh))
    except FileNotFoundError:
        return []


@contextmanager
def _watcher(inbox: Path, out: Path, *args: str) -> Iterator[subprocess.Popen]:
    """``ihc-score watch`` as a real process (stdout and stderr in files beside ``out``); killed if left running."""
    log = out.parent / f"{out.name}-{time.monotonic_ns()}"
    with open(f"{log}.out", "w") as so, open(f"{log}.err", "w") as se:
        proc = subprocess.Popen([sys.executable, "-c", WATCH, "watch", str(inbox), "--out", str(out), *args],
                                stdout=so, stderr=se, cwd=out.parent)
        proc.log = log  # type: ignore[attr-defined]
        try:
            yield proc
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def _stop(proc: subprocess.Popen) -> tuple[int, list[list[str]], str]:
    """SIGTERM the watcher; its exit status, its slide lines (split on two spaces) and its stderr."""
    proc.send_signal(signal.SIGTERM)
    code = proc.wait(timeout=60)
    lines = Path(f"{proc.log}.out").read_text().splitlines()  # type: ignore[attr-defined]
    return code, [line.split("  ") for line in lines], Path(f"{proc.log}.err").read_text()  # type: ignore[attr-defined]


def _wait_rows(out: Path, names: set[str], timeout_s: float) -> dict[str, float]:
    """Poll metastases.csv until every slide of ``names`` has a row; the monotonic time each appeared."""
    seen: dict[str, float] = {}
    end = time.monotonic() + timeout_s
    while len(seen) < len(names) and time.monotonic() < end:
        for row in _rows(out / "metastases.csv"):
            seen.setdefault(row["slide"], time.monotonic())
        time.sleep(0.05)
    assert set(seen) >= names, f"not scored within {timeout_s} s: {sorted(names - set(seen))}"
    return seen


def _wait_lines(proc: subprocess.Popen, names: set[str], timeout_s: float) -> None:
    """Wait until the watcher printed a line for every slide of ``names`` (its round is finished then)."""
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        lines = Path(f"{proc.log}.out").read_text().splitlines()  # type: ignore[attr-defined]
        if names <= {line.split("  ")[1] for line in lines}:
            return
        time.sleep(0.05)
    raise AssertionError(f"no line for some of {sorted(names)} within {timeout_s} s")


def _stored(out: Path) -> dict[str, dict]:
    """The store files by slide name."""
    found = {}
    for p in (out / "store").glob("*.json"):
        data = json.loads(p.read_text())
        found[data["result"]["slide"]] = {"key": data["key"], "mtime": p.stat().st_mtime, "mtime_ns": p.stat().st_mtime_ns}
    return found


def _half_read(inbox: Path, out: Path, lines: list[list[str]], names: set[str]) -> list[str]:
    """The slides read before their copy ended: failed or scored twice, stored early, or stored for other bytes."""
    bad = []
    stored = _stored(out)
    for name in sorted(names):
        mine = [ln for ln in lines if ln[1] == name]
        s = stored.get(name)
        if [ln[2] for ln in mine] != ["ok"] or s is None:
            bad.append(f"{name}: lines {mine}")
        elif s["key"]["file"] != file_fingerprint(inbox / name):
            bad.append(f"{name}: stored for other bytes")
        elif s["mtime"] - (inbox / name).stat().st_mtime < SETTLE_S:
            bad.append(f"{name}: stored {s['mtime'] - (inbox / name).stat().st_mtime:.2f} s after its last write")
    return bad


# ----------------------------------------------------------------------------- the watcher at work


@pytest.mark.slow
def test_a_slide_copied_slowly_is_scored_once_after_the_copy_and_as_by_score(tmp_path: Path, direct: Path) -> None:
    inbox, out = tmp_path / "inbox", tmp_path / "out"
    inbox.mkdir()
    done: dict[str, float] = {}
    with _watcher(inbox, out, "--settle", str(SETTLE_S), "--poll", str(POLL_S), "--workers", "1") as proc:
        time.sleep(0.5)
        writer = threading.Thread(target=_slow_copy, args=(SAMPLES / "synthetic-positive.svs",
                                                           inbox / "synthetic-positive.svs", done))
        writer.start()
        seen = _wait_rows(out, {"synthetic-positive.svs"}, timeout_s=60)
        _wait_lines(proc, {"synthetic-positive.svs"}, timeout_s=60)
        writer.join()
        time.sleep(1.5 * SETTLE_S)  # a second look would score it again now, if it were to
        code, lines, err = _stop(proc)
    assert code == 0, err
    assert "stopped (SIGTERM)" in err
    latency = seen["synthetic-positive.svs"] - done["synthetic-positive.svs"]
    scoring = json.loads((out / "run.json").read_text())["slides"]["seconds"]["synthetic-positive.svs"]
    print(f"\nlatency from the last write to the row in metastases.csv: {latency:.2f} s "
          f"(settle {SETTLE_S} s, poll {POLL_S} s, scoring {scoring:.2f} s)")
    assert SETTLE_S <= latency < SETTLE_S + POLL_S + scoring + 10.0  # the rest: reading the key, writing the tables
    assert _half_read(inbox, out, lines, {"synthetic-positive.svs"}) == []
    for name in TABLES:  # the very rows of a direct ihc-score score of the same file
        assert _rows(out / name) == _rows(direct / name), name


@pytest.mark.slow
def test_no_slide_is_read_half_written_while_several_arrive(tmp_path: Path, direct: Path) -> None:
    inbox, out = tmp_path / "inbox", tmp_path / "out"
    inbox.mkdir()
    copies = {f"{stem}-{k}.svs": (SAMPLES / f"synthetic-{stem}.svs", mode)
              for k, mode in ((1, "append"), (2, "prealloc"), (3, "rename"))
              for stem in ("positive", "negative")}
    done: dict[str, float] = {}
    with _watcher(inbox, out, "--settle", str(SETTLE_S), "--poll", str(POLL_S), "--workers", "2") as proc:
        writers = []
        for i, (name, (src, mode)) in enumerate(sorted(copies.items())):
            w = threading.Thread(target=_slow_copy, args=(src, inbox / name, done), kwargs={"mode": mode})
            threading.Timer(0.6 * i, w.start).start()
            writers.append(w)
        seen = _wait_rows(out, set(copies), timeout_s=120)
        _wait_lines(proc, set(copies), timeout_s=60)
        for w in writers:
            w.join()
        code, lines, err = _stop(proc)
    assert code == 0, err
    latencies = {name: seen[name] - done[name] for name in copies}
    print("\nlatency (s) from the last write to the row: "
          + ", ".join(f"{n} {v:.1f}" for n, v in sorted(latencies.items())))
    bad = _half_read(inbox, out, lines, set(copies))
    print(f"half-read slides: {len(bad)} of {len(copies)}")
    assert bad == []
    reference = {r["region"]: r for r in _rows(direct / "metastases.csv")}
    for row in _rows(out / "metastases.csv"):
        if row["slide"].startswith("positive"):
            ref = reference[row["region"]]
            assert (row["h_score"], row["n_cells"], row["call"]) == (ref["h_score"], ref["n_cells"], ref["call"])
    assert sorted(r["slide"] for r in _rows(out / "slides.csv")) == sorted(copies)


def _complete_files(out: Path) -> list[str]:
    """Files of ``out`` that are temporary or unreadable: none may be left after a stop."""
    bad = []
    for p in out.rglob("*"):
        if p.is_dir() or p.name.endswith(".lock") or p.name == ".write-test":
            continue
        if p.name.endswith(".tmp") or p.name.startswith("."):
            bad.append(f"{p}: temporary")
        elif p.suffix == ".json":
            json.loads(p.read_text())
        elif p.suffix == ".csv":
            _rows(p)
        elif p.suffix == ".png" and not p.read_bytes().endswith(b"IEND\xaeB`\x82"):
            bad.append(f"{p}: truncated")
    return bad


@pytest.mark.slow
def test_sigterm_in_a_round_then_restart_reuses_every_slide_finished(tmp_path: Path) -> None:
    inbox, out = tmp_path / "inbox", tmp_path / "out"
    inbox.mkdir()
    names = [f"{stem}-{k}.svs" for k in (1, 2) for stem in ("positive", "negative", "shifted-stains")]
    for name in names:
        shutil.copy2(SAMPLES / f"synthetic-{name.rsplit('-', 1)[0]}.svs", inbox / name)
    with _watcher(inbox, out, "--settle", "0.5", "--poll", "0.1", "--workers", "2") as proc:
        end = time.monotonic() + 90
        while not list((out / "store").glob("*.json")) and time.monotonic() < end:
            time.sleep(0.02)
        code, lines, err = _stop(proc)
    assert code == 0, err
    before = _stored(out)
    assert 1 <= len(before) < len(names), "the stop came after the round, not in it"
    assert _complete_files(out) == []
    assert not (out / "slides.csv").exists()  # the first round was abandoned: no table of it

    with _watcher(inbox, out, "--settle", "0.5", "--poll", "0.1", "--workers", "2", "--once") as proc:
        code = proc.wait(timeout=120)
        lines = [ln.split("  ") for ln in Path(f"{proc.log}.out").read_text().splitlines()]
    assert code == 0, Path(f"{proc.log}.err").read_text()
    run = json.loads((out / "run.json").read_text())
    assert sorted(run["slides"]["reused"]) == sorted(before)
    assert run["slides"]["total"] == len(names) and run["slides"]["scored"] == len(names) - len(before)
    after = _stored(out)
    assert {n: s["mtime_ns"] for n, s in after.items() if n in before} == {n: s["mtime_ns"] for n, s in before.items()}
    assert sorted(ln[1] for ln in lines) == sorted(names)
    assert {ln[1] for ln in lines if ln[2] == "reused"} == set(before)
    assert sorted(r["slide"] for r in _rows(out / "slides.csv")) == sorted(names)
    assert {r["status"] for r in _rows(out / "slides.csv")} == {"ok"}
    print(f"\nstopped with {len(before)} of {len(names)} slides finished; restart reused them all")


def test_a_results_folder_of_another_model_is_refused_at_start(tmp_path: Path, direct: Path) -> None:
    other = tmp_path / "other.json"
    text = PACKAGED_MODEL.read_text(encoding="utf-8")
    other.write_text(text.replace('"version": "0.1.0"', '"version": "0.1.1"', 1), encoding="utf-8")
    assert load_model(other).sha256 != load_model(None).sha256
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    before = (direct / "run.json").read_bytes()
    start = time.monotonic()
    res = CliRunner().invoke(main, ["watch", str(inbox), "--out", str(direct), "--model", str(other), "--settle", "30"])
    assert res.exit_code == 1
    assert time.monotonic() - start < 10  # refused before any waiting
    assert len(res.output.strip().splitlines()) == 1 and "another model" in res.output
    assert (direct / "run.json").read_bytes() == before


class _CountingExecutor(InlineExecutor):
    """Runs at once, and counts the slides it is asked to plan."""

    def __init__(self) -> None:
        self.planned: list[str] = []

    def submit(self, fn, /, *args, **kwargs):
        if fn is plan_slide:
            self.planned.append(Path(args[0]).name)
        return super().submit(fn, *args, **kwargs)


@pytest.mark.slow
def test_a_failed_slide_keeps_its_row_and_is_tried_again_only_when_it_changes(tmp_path: Path) -> None:
    inbox, out = tmp_path / "inbox", tmp_path / "out"
    inbox.mkdir()
    (inbox / "broken.svs").write_bytes(b"not a slide" * 100)
    executor = _CountingExecutor()
    stop = StopRequest()
    rounds: list[dict[str, str]] = []
    errors: list[dict[str, str]] = []

    def next_step(done: WatchRound) -> None:
        rounds.append({r.slide: r.status for r, _ in done.new})
        errors.append({r.slide: r.error for _, r in done.summary.results})
        if len(rounds) == 1:
            shutil.copy2(SAMPLES / "synthetic-negative.svs", inbox / "good.svs")
        elif len(rounds) == 2:
            with open(inbox / "broken.svs", "ab") as fh:
                fh.write(b"more")
        else:
            stop.request()

    watch_inbox(inbox, out, load_model(None), executor=executor, settings=WatchSettings(settle_s=0.3, poll_s=0.1),
                stop=stop, on_round=next_step)
    assert rounds == [{"broken.svs": "failed"}, {"good.svs": "ok"}, {"broken.svs": "failed"}]
    assert executor.planned == ["broken.svs", "good.svs", "broken.svs"]  # not planned again in the second round
    assert errors[1]["broken.svs"] == errors[0]["broken.svs"] != ""  # its row kept, with the same reason
    slides = {r["slide"]: r for r in _rows(out / "slides.csv")}
    assert slides["broken.svs"]["status"] == "failed" and slides["broken.svs"]["error"]
    assert slides["good.svs"]["status"] == "ok"
