"""``ihc-score watch`` while slides are written slowly into its inbox: half-read slides and latency.

    .venv/bin/python benchmarks/watch_inbox.py [--slides 20] [--settle 2] [--writers 4]

Copies of the sample slides are written into a fresh inbox by several
threads at once, each slide in 256 KiB chunks with a 0.3 s pause after each
(a scanner writing as it scans; pauses shorter than --settle), in three ways:
appended, preallocated then filled, and written under a hidden name then
renamed. The watcher runs as its own process (``ihc-score watch``, 2
workers). A slide counts as half-read when it failed, was scored more than
once, its stored result was made for other bytes than the finished file
(the store's file fingerprint), or was stored before the copy's last write
plus the settle time. Printed: slides, half-read slides, and the latency from
each copy's last write to its row in metastases.csv, against settle time +
its scoring time.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from ihc_score.run import file_fingerprint  # noqa: E402

SAMPLES = sorted((REPO / "sample_slides").glob("*.svs"))
MODES = ("append", "prealloc", "rename")


def slow_copy(src: Path, dst: Path, mode: str, done: dict[str, float]) -> None:
    """Write ``src`` to ``dst`` in chunks with pauses; ``done[name]`` = wall-clock time of the last write."""
    data = src.read_bytes()
    target = dst.with_name(f".{dst.name}.part") if mode == "rename" else dst
    with open(target, "wb") as fh:
        if mode == "prealloc":
            fh.truncate(len(data))
        for off in range(0, len(data), 256 << 10):
            fh.seek(off)
            fh.write(data[off : off + (256 << 10)])
            fh.flush()
            os.fsync(fh.fileno())
            time.sleep(0.3)
    if mode == "rename":
        os.replace(target, dst)
    done[dst.name] = time.time()


def writer(jobs: list[tuple[Path, Path, str]], done: dict[str, float], stagger_s: float) -> None:
    for src, dst, mode in jobs:
        slow_copy(src, dst, mode, done)
        time.sleep(stagger_s)


def rows(path: Path) -> list[dict[str, str]]:
    try:
        with open(path, newline="") as fh:
            return list(csv.DictReader(fh))
    except FileNotFoundError:
        return []


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--slides", type=int, default=20)
    ap.add_argument("--settle", type=float, default=2.0)
    ap.add_argument("--writers", type=int, default=4)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ihc-watch-"))
    inbox, out = work / "inbox", work / "out"
    inbox.mkdir()
    jobs = [(SAMPLES[i % len(SAMPLES)], inbox / f"w{i:02d}.svs", MODES[i % len(MODES)]) for i in range(args.slides)]
    done: dict[str, float] = {}
    seen: dict[str, float] = {}
    with open(work / "watch.out", "w") as so, open(work / "watch.err", "w") as se:
        proc = subprocess.Popen([sys.executable, str(REPO / "cli.py"), "watch", str(inbox), "--out", str(out),
                                 "--settle", str(args.settle), "--poll", "0.25", "--workers", "2"], stdout=so, stderr=se)
        threads = [threading.Thread(target=writer, args=(jobs[k :: args.writers], done, 1.0))
                   for k in range(args.writers)]
        start = time.time()
        for t in threads:
            t.start()
        while len(seen) < args.slides and time.time() - start < 60 + 20 * args.slides:
            for row in rows(out / "metastases.csv"):
                seen.setdefault(row["slide"], time.time())
            time.sleep(0.05)
        for t in threads:
            t.join()
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=120)
    lines = [ln.split("  ") for ln in (work / "watch.out").read_text().splitlines()]
    stored = {}
    for p in (out / "store").glob("*.json"):
        data = json.loads(p.read_text())
        stored[data["result"]["slide"]] = (data["key"]["file"], p.stat().st_mtime, data["result"]["seconds"])
    half, latency, scoring = [], [], []
    for _, dst, _ in jobs:
        name = dst.name
        mine = [ln for ln in lines if len(ln) > 2 and ln[1] == name]
        fingerprint, stored_at, seconds = stored.get(name, ("", 0.0, 0.0))
        if (len(mine) != 1 or mine[0][2] != "ok" or fingerprint != file_fingerprint(dst)
                or stored_at < done.get(name, 0.0) + args.settle):
            half.append(name)
        if name in seen and name in done:
            latency.append(seen[name] - done[name])
            scoring.append(seconds)
    print(f"{args.slides} slides written slowly by {args.writers} threads ({', '.join(MODES)}), settle "
          f"{args.settle:g} s; watcher exit status on SIGTERM: {code}")
    print(f"half-read or scored twice: {len(half)}" + (f" ({', '.join(half)})" if half else ""))
    print(f"scored: {len(latency)} of {args.slides}")
    if latency:
        print(f"latency last write -> row: median {statistics.median(latency):.1f} s, max {max(latency):.1f} s; "
              f"scoring time per slide: median {statistics.median(scoring):.1f} s; latency - settle - scoring: "
              f"median {statistics.median(lat - args.settle - s for lat, s in zip(latency, scoring)):.1f} s")
    print(f"(files in {work})")


if __name__ == "__main__":
    main()
