"""Whole-slide throughput of ``ihc-score score`` against the JPEG decode speed.

Run from the repository root::

    .venv/bin/python benchmarks/throughput.py            # 1.6 Gpx slide (generated once, cached)
    .venv/bin/python benchmarks/throughput.py --quick    # 0.2 Gpx slide, a few minutes
    .venv/bin/python benchmarks/throughput.py --skip-growth

Every figure is measured in the same run and printed as a ratio to another
figure of the same run: the machine may be shared, so absolute seconds mean
little and nothing is asserted.

Slides (made once with the project's generator, cached under
``benchmarks/cache/``, which git ignores; the generation time is printed):

* ``main``: synthetic 40x (0.25 um/px) slide, 40000 x 40000 px (1.6 Gpx;
  ``--quick``: 14000 x 14000, 0.2 Gpx), a large metastasis in stroma,
  over half of it tissue;
* ``growth``: the same spec at 0.1 and 0.3 of its area (same fractions of
  the slide, so about the same tissue fraction);
* ``background``: the main slide's size, about 6 % tissue (a small
  metastasis and a small piece of stroma on glass).

Measurements:

(a) decode only: every level-0 JPEG tile that touches the slide's tissue mask
    (``plan_slide(...).tissue``) read with ``os.pread`` and decoded at full
    size with ``imagecodecs.jpeg8_decode`` (libjpeg-turbo), in this process,
    one thread; best of ``--repeat`` passes;
(b) ``ihc-score score SLIDE --out DIR --workers N --force -q`` as a
    subprocess, N = 1 and 2, with the default outputs (detections GeoJSON
    and QC pictures) and with ``--detections none --no-qc`` (scoring only);
(c) peak resident memory (``VmHWM`` from ``/proc/<pid>/status``, polled
    every 50 ms) of the CLI's main process, of each worker process and of
    the fork server the workers are forked from;
(d) the machine's own ceiling for two cores: two independent
    ``--workers 1`` runs of the main slide (scoring only) at once. Two
    processes that share nothing but the machine (its caches, memory and
    neighbours) bound what 2 workers can reach on one slide; the 2-worker
    speed-up is also printed as a fraction of that ceiling.

Throughput is level-0 tissue megapixels (tissue mask area in level-0 px)
per second of wall time; CPU seconds (user + system of the process tree)
are shown beside it, being less disturbed by other work on the machine.
The growth check fits ``log(time) = k log(tissue area) + c`` (least
squares) over the three sizes; the background check fits
``time = t0 + a * tissue_mm2 + b * background_mm2`` over the growth slides
and the mostly-background slide, and prints ``b / a``: what a mm^2 of glass
costs relative to a mm^2 of tissue; the growth and background slides are
each scored ``--growth-repeat`` times (2) and the fastest run kept, as a
second of noise moves the fit. With ``--quick`` the growth slides are
small (0.02 and 0.06 Gpx) and the fixed start-up cost dominates them, so the
exponent says little; the exponent between the two largest sizes is printed
too.

``--profile`` also scores the main slide in this process (one thread, the
default outputs) under cProfile with a CPU-time clock and prints the share
of each stage: planning, tile reading, colour deconvolution, cell detection,
outline tracing, regions and scores, detections GeoJSON, QC pictures.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import imagecodecs
import numpy as np
import tifffile

from ihc_score.model import default_model
from ihc_score.run import plan_slide
from ihc_score.synthetic import GENERATOR_VERSION, SynthSpec, TumourRegion, preset

ROOT = Path(__file__).resolve().parent.parent
CACHE = Path(__file__).resolve().parent / "cache"
MPP_UM = 0.25
SEED = 7
MAIN_SIDE = 40_000
QUICK_SIDE = 14_000
GROWTH_AREAS = (0.1, 0.3, 1.0)
#: Changes whenever :func:`_spec` does, so that a cached slide always matches it.
_SPEC_TAG = "2"
_POLL_S = 0.05
_TICKS = os.sysconf("SC_CLK_TCK")
_PHOTOMETRIC_COLORSPACE = {2: "RGB", 6: "YCBCR"}


# ---------------------------------------------------------------- slides


def _spec(kind: str, side: int) -> SynthSpec:
    """The generator spec of a benchmark slide: ``main`` (over half tissue) or ``background`` (about 6 %).

    The main slide's metastasis alone covers over half of it: the generator's
    pale stroma (OD sum about 0.1-0.2) is kept by the tissue mask at a few
    um/px but largely dropped at the default 8 um/px, which only slides wider
    than about 32000 px reach, so the stroma alone would make the scored
    tissue fraction depend on the slide's size.
    """
    if kind == "main":
        return preset("default", width=side, height=side, mpp_um=MPP_UM, seed=SEED, tissue_fraction=0.7,
                      tissue_pieces=1, regions=(TumourRegion(radii=(0.42, 0.42)),))
    if kind == "background":
        return preset("default", width=side, height=side, mpp_um=MPP_UM, seed=SEED, tissue_fraction=0.02,
                      tissue_pieces=1, regions=(TumourRegion(radii=(0.1, 0.1)),))
    raise ValueError(f"unknown slide kind {kind!r}")


def _slide(kind: str, side: int) -> Path:
    """Path of a cached benchmark slide; generated (and its generation time recorded) when absent."""
    CACHE.mkdir(parents=True, exist_ok=True)
    path = CACHE / f"throughput{_SPEC_TAG}-{kind}-{side}x{side}-s{SEED}-g{GENERATOR_VERSION}.svs"
    info = path.with_suffix(".gen.json")
    if path.exists() and info.exists():
        rec = json.loads(info.read_text())
        print(f"  {path.name}: cached ({_gen_text(rec)})")
        return path
    print(f"  {path.name}: generating {side} x {side} px ({side * side / 1e9:.2f} Gpx) ...", flush=True)
    # In a child process, so that its peak memory is its own.
    code = (
        "import sys, time, json, resource\n"
        "from pathlib import Path\n"
        "sys.path.insert(0, sys.argv[1])\n"
        "import throughput as T\n"
        "from ihc_score.synthetic import make_slide\n"
        "t = time.perf_counter()\n"
        "make_slide(Path(sys.argv[4]), T._spec(sys.argv[2], int(sys.argv[3])))\n"
        "s = time.perf_counter() - t\n"
        "u = resource.getrusage(resource.RUSAGE_SELF)\n"
        "rec = {'seconds': s, 'cpu_seconds': u.ru_utime + u.ru_stime, 'peak_rss_mb': u.ru_maxrss / 1024}\n"
        "Path(sys.argv[5]).write_text(json.dumps(rec))\n"
    )
    subprocess.run([sys.executable, "-c", code, str(Path(__file__).resolve().parent), kind, str(side), str(path),
                    str(info)], check=True)
    rec = json.loads(info.read_text())
    print(f"  {path.name}: {_gen_text(rec)}")
    return path


def _gen_text(rec: dict) -> str:
    cpu = f", {rec['cpu_seconds']:.0f} s CPU" if "cpu_seconds" in rec else ""
    return f"generated in {rec['seconds']:.0f} s{cpu}, peak RSS {rec['peak_rss_mb']:.0f} MB"


@dataclass(frozen=True)
class SlideInfo:
    """Tissue of a benchmark slide, from ``plan_slide`` (as the pipeline sees it)."""

    path: Path
    size: tuple[int, int]  # level-0 (width, height)
    l0_px: int
    tissue_l0_px: float
    tissue_mm2: float
    slide_mm2: float
    n_tiles: int  # analysis tiles of the plan
    tissue: np.ndarray
    tissue_downsample: float

    @property
    def background_mm2(self) -> float:
        return self.slide_mm2 - self.tissue_mm2


def _info(path: Path) -> SlideInfo:
    plan = plan_slide(path, default_model())
    w, h = plan.l0_size
    ds = plan.tissue_downsample
    tissue_px = float(plan.tissue.sum()) * ds * ds
    return SlideInfo(path, (w, h), w * h, tissue_px, tissue_px * (plan.mpp_um * 1e-3) ** 2, w * h * (plan.mpp_um * 1e-3) ** 2,
                     len(plan.grid.tiles), plan.tissue, ds)


# ---------------------------------------------------------------- (a) decode


def _tissue_tiles(info: SlideInfo) -> tuple[list[tuple[int, int]], tuple[bytes | None, str, int, int]]:
    """(offset, bytecount) of the level-0 JPEG tiles touching tissue, and how to decode them."""
    with tifffile.TiffFile(str(info.path)) as tif:
        page = tif.pages[0]
        if not page.is_tiled or int(page.compression) != 7:
            raise SystemExit(f"{info.path.name}: level 0 is not JPEG-tiled")
        tw, th = int(page.tilewidth), int(page.tilelength)
        across = -(-int(page.imagewidth) // tw)
        down = -(-int(page.imagelength) // th)
        offsets, counts = list(page.dataoffsets), list(page.databytecounts)
        dec = (page.jpegtables, _PHOTOMETRIC_COLORSPACE[int(page.photometric)], tw, th)
    mask, ds = info.tissue, info.tissue_downsample
    picked = []
    for ty in range(down):
        my0, my1 = int(ty * th / ds), int(math.ceil((ty + 1) * th / ds))
        for tx in range(across):
            mx0, mx1 = int(tx * tw / ds), int(math.ceil((tx + 1) * tw / ds))
            if mask[my0:my1, mx0:mx1].any():
                i = ty * across + tx
                picked.append((int(offsets[i]), int(counts[i])))
    return picked, dec


@dataclass(frozen=True)
class Timing:
    wall_s: float
    cpu_s: float


def _decode(info: SlideInfo, repeat: int) -> tuple[Timing, int, int]:
    """Time to read and decode every tissue tile of level 0 on one thread; tiles and px decoded.

    Wall and CPU time are each the best of ``repeat`` passes.
    """
    tiles, (tables, colorspace, tw, th) = _tissue_tiles(info)
    best: Timing | None = None
    fd = os.open(info.path, os.O_RDONLY)
    try:
        for _ in range(repeat):
            w0, c0 = time.perf_counter(), time.thread_time()
            for off, n in tiles:
                img = imagecodecs.jpeg8_decode(os.pread(fd, n, off), tables=tables, colorspace=colorspace,
                                               outcolorspace="RGB")
                if img.shape != (th, tw, 3):
                    raise SystemExit(f"tile decoded to {img.shape}, expected {(th, tw, 3)}")
            t = Timing(time.perf_counter() - w0, time.thread_time() - c0)
            best = t if best is None else Timing(min(t.wall_s, best.wall_s), min(t.cpu_s, best.cpu_s))
    finally:
        os.close(fd)
    if best is None:
        raise SystemExit("--repeat must be at least 1")
    return best, len(tiles), len(tiles) * tw * th


# ---------------------------------------------------------------- (b, c) end to end


@dataclass
class Run:
    """One ``ihc-score score`` subprocess: times, peak memory per process, outputs."""

    label: str
    workers: int
    wall_s: float = 0.0
    cpu_s: float = 0.0
    scoring_s: float = float("nan")  # run.json: plan + tiles + regions of the slide, outputs excluded
    peaks_mb: dict[int, tuple[str, float]] = field(default_factory=dict)  # pid -> (role, VmHWM MB)
    n_cells: int = -1
    out_mb: float = 0.0
    cpu_rusage_s: float = 0.0
    cpu_polled_s: float = 0.0

    def peak(self, role: str) -> list[float]:
        return sorted((mb for r, mb in self.peaks_mb.values() if r == role), reverse=True)


def _status_kb(pid: int, key: str) -> float | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key):
                    return float(line.split()[1])
    except OSError:
        return None
    return None


def _cpu_s(pid: int) -> float | None:
    """User + system CPU seconds of one process so far (``/proc/<pid>/stat``)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            rest = f.read().rsplit(")", 1)[1].split()
        return (int(rest[11]) + int(rest[12])) / _TICKS
    except (OSError, ValueError, IndexError):
        return None


def _children_map() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            kids.setdefault(ppid, []).append(int(name))
    return kids


def _descendants(pid: int) -> list[int]:
    try:
        import psutil

        return [c.pid for c in psutil.Process(pid).children(recursive=True)]
    except ImportError:
        pass
    except Exception:  # noqa: BLE001 - the process ended
        return []
    kids, out, todo = _children_map(), [], [pid]
    while todo:
        for c in kids.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def _role(pid: int, main: int) -> str:
    if pid == main:
        return "main"
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
    except OSError:
        return "other"
    if b"resource_tracker" in cmd:
        return "tracker"
    if b"spawn_main" in cmd or b"multiprocessing-fork" in cmd:
        return "worker"
    if b"forkserver" in cmd:  # the fork server, the main process's child, and the workers forked from it
        return "fork server" if _ppid(pid) == main else "worker"
    return "other"


def _ppid(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def _cli() -> list[str]:
    exe = Path(sys.executable).parent / "ihc-score"
    return [str(exe)] if exe.exists() else [sys.executable, str(ROOT / "cli.py")]


def _score(path: Path, workers: int, scoring_only: bool, keep: Path | None) -> Run:
    """Run the CLI on one slide into a fresh folder, polling the peak RSS of its process tree."""
    label = "scoring only" if scoring_only else "default outputs"
    run = Run(label, workers)
    out = Path(tempfile.mkdtemp(prefix="throughput-", dir=keep or None))
    cmd = _cli() + ["score", str(path), "--out", str(out), "--workers", str(workers), "--force", "-q"]
    if scoring_only:
        cmd += ["--detections", "none", "--no-qc"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    log = out.parent / f"{out.name}.log"
    t0 = time.perf_counter()
    with open(log, "w") as logf:
        proc = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT, cwd=ROOT)
        peaks: dict[int, tuple[str, float]] = {}
        cpu: dict[int, float] = {}
        stop = threading.Event()

        def poll() -> None:
            while not stop.is_set():
                for pid in [proc.pid, *_descendants(proc.pid)]:
                    kb = _status_kb(pid, "VmHWM:")
                    if kb is None:
                        continue
                    role = peaks[pid][0] if pid in peaks else _role(pid, proc.pid)
                    peaks[pid] = (role, max(kb / 1024, peaks.get(pid, ("", 0.0))[1]))
                    c = _cpu_s(pid)
                    if c is not None:
                        cpu[pid] = c
                stop.wait(_POLL_S)

        poller = threading.Thread(target=poll, daemon=True)
        poller.start()
        code = proc.wait()
        run.wall_s = time.perf_counter() - t0
        stop.set()
        poller.join()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    # The main process's rusage holds its workers' only if it waited for them; the polled
    # /proc figures miss at most the last poll interval of each worker.
    rusage_s = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    run.cpu_s = max(rusage_s, sum(cpu.values()))
    run.cpu_rusage_s, run.cpu_polled_s = rusage_s, sum(cpu.values())
    run.peaks_mb = peaks
    if code != 0:
        raise SystemExit(f"{' '.join(cmd)} exited with {code}; see {log}")
    try:
        rec = json.loads((out / "run.json").read_text())
        run.scoring_s = float(next(iter(rec["slides"]["seconds"].values())))
    except (OSError, KeyError, ValueError, StopIteration, TypeError, AttributeError):
        pass
    try:
        with open(out / "metastases.csv", newline="") as f:
            rows = list(csv.DictReader(f))
        run.n_cells = sum(int(float(r.get(k) or 0)) for r in rows for k in ("n_0", "n_1plus", "n_2plus", "n_3plus"))
    except (OSError, ValueError):
        pass
    run.out_mb = sum(p.stat().st_size for p in out.rglob("*") if p.is_file()) / 1e6
    if keep is None:
        shutil.rmtree(out, ignore_errors=True)
        log.unlink(missing_ok=True)
    return run


def _pair(path: Path, keep: Path | None) -> list[Run]:
    """Two ``--workers 1`` scoring-only runs of one slide started together, each timed on its own.

    CPU time is the polled ``/proc`` figure of each run's process: the
    children's rusage of this process would mix the two.
    """
    runs: list[Run | None] = [None, None]

    def one(k: int) -> None:
        runs[k] = _score(path, 1, True, keep)

    threads = [threading.Thread(target=one, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if any(r is None for r in runs):
        raise SystemExit("a run of the pair failed; see the message above")
    return [replace(r, cpu_s=r.cpu_polled_s) for r in runs if r is not None]


# ---------------------------------------------------------------- report


def _mpx(px: float, s: float) -> float:
    return px / 1e6 / s if s > 0 else float("nan")


def _mem(run: Run) -> str:
    main = run.peak("main")
    workers = run.peak("worker")
    parts = [f"main {main[0]:.0f} MB" if main else "main ?"]
    if workers:
        parts.append("workers " + ", ".join(f"{mb:.0f}" for mb in workers) + " MB")
    server = run.peak("fork server")
    if server:
        parts.append("fork server " + ", ".join(f"{mb:.0f}" for mb in server) + " MB")
    other = run.peak("tracker") + run.peak("other")
    if other:
        parts.append("other " + ", ".join(f"{mb:.0f}" for mb in other) + " MB")
    return "; ".join(parts)


def _fit_loglog(x: list[float], y: list[float]) -> tuple[float, float]:
    k, c = np.polyfit(np.log(x), np.log(y), 1)
    return float(k), float(c)


#: Functions of ``ihc_score`` shown by ``--profile`` (name, where it is, depth), in pipeline
#: order; nested stages are indented under the stage that calls them.
_STAGES = (
    ("plan_slide", "plan.py", 0),
    ("score_tiles", "pipeline.py", 0),
    ("read_scaled", "slide.py", 1),
    ("deconvolve", "stain.py", 1),
    ("detect_cells", "cells.py", 1),
    ("trace_outlines", "outlines.py", 1),
    ("finish_slide", "pipeline.py", 0),
    ("find_metastases", "autoregions.py", 1),
    ("score_regions", "region_scores.py", 1),
    ("write_slide_outputs", "slide_outputs.py", 0),
    ("write_detections_geojson", "detections.py", 1),
    ("write_slide_qc", "qc.py", 1),
    ("write_zooms", "qc_zooms.py", 1),
)


def _profile(path: Path) -> None:
    """Score one slide in this process, one thread, under cProfile, and print the time of each stage."""
    import cProfile
    import pstats

    import cv2

    from ihc_score.run import BatchOptions, finish_slide, score_tiles, tile_tasks, write_slide_outputs

    cv2.setNumThreads(1)
    model = default_model()
    options = BatchOptions()
    out = Path(tempfile.mkdtemp(prefix="throughput-profile-"))

    def work() -> None:
        plan = plan_slide(path, model)
        chunks = [score_tiles(t) for t in tile_tasks(plan, model, outlines=options.outlines)]
        result = finish_slide(plan, chunks, model)
        write_slide_outputs(out, result, path.stem, options, model)

    prof = cProfile.Profile(time.process_time)  # CPU time: less disturbed by other work on the machine
    t0, c0 = time.perf_counter(), time.process_time()
    prof.runcall(work)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    shutil.rmtree(out, ignore_errors=True)
    stats = pstats.Stats(prof).stats  # (file, line, name) -> (cc, nc, tt, ct, callers)
    total = sum(v[2] for v in stats.values())
    print(f"\nstages, in process, 1 thread, default outputs, under cProfile ({wall:.1f} s wall, {cpu:.1f} s CPU; "
          "profiled CPU time, % of the whole)")
    for name, file, depth in _STAGES:
        ct = sum(v[3] for k, v in stats.items() if k[2] == name and "ihc_score" in k[0])
        if ct > 0:
            print(f"  {'  ' * depth}{name:{30 - 2 * depth}} {ct:8.2f} s {ct / total:6.1%}")
    top = sorted(stats.items(), key=lambda kv: kv[1][2], reverse=True)[:8]
    print("  own time, top functions: " + "; ".join(
        f"{k[2]} ({Path(k[0]).name}) {v[2] / total:.0%}" for k, v in top))


def _load() -> float:
    return os.getloadavg()[0]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true",
                    help=f"{QUICK_SIDE} x {QUICK_SIDE} px slide instead of {MAIN_SIDE} x {MAIN_SIDE}")
    ap.add_argument("--skip-growth", action="store_true", help="skip the growth and background checks")
    ap.add_argument("--growth-repeat", type=int, default=2,
                    help="runs of each growth and background slide, fastest kept (wall and CPU apart) [2]")
    ap.add_argument("--repeat", type=int, default=0, help="decode passes, best kept [3 quick, 2 full]")
    ap.add_argument("--profile", action="store_true",
                    help="also score the main slide in this process under cProfile and print each stage's time")
    ap.add_argument("--keep", type=Path, help="keep every run's output folder and log under this folder")
    args = ap.parse_args(argv)
    sys.stdout.reconfigure(line_buffering=True)  # each figure shows as soon as it is measured
    side = QUICK_SIDE if args.quick else MAIN_SIDE
    repeat = args.repeat or (3 if args.quick else 2)
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    print(f"ihc-score throughput ({'quick' if args.quick else 'full'}): {os.cpu_count()} cores, "
          f"load average {_load():.1f} at start")

    print("slides:")
    main_path = _slide("main", side)
    growth_paths: dict[float, Path] = {}
    bg_path: Path | None = None
    if not args.skip_growth:
        growth_paths = {a: _slide("main", int(round(side * math.sqrt(a)))) for a in GROWTH_AREAS if a != 1.0}
        bg_path = _slide("background", side)

    # compiled kernels: compiled once (after an install or a change) and cached on disk before any timed run
    t = time.perf_counter()
    subprocess.run([sys.executable, "-c", "from ihc_score.cells import warm_up; warm_up()"], check=True)
    print(f"compiled kernels ready in {time.perf_counter() - t:.1f} s (compiled now, or loaded from the disk cache)")

    info = _info(main_path)
    px = info.tissue_l0_px
    print(f"main slide: {side} x {side} px = {info.l0_px / 1e9:.2f} Gpx, {info.slide_mm2:.1f} mm^2; tissue "
          f"{info.tissue_mm2:.1f} mm^2 = {px / 1e6:.0f} Mpx of level 0 ({px / info.l0_px:.0%}); "
          f"{info.n_tiles} analysis tiles")
    if px < 0.5 * info.l0_px:
        print("  note: the tissue mask holds less than half of the slide")

    dec, n_tiles, n_px = _decode(info, repeat)
    print(f"\n(a) decode only: {n_tiles} level-0 JPEG tiles touching tissue ({n_px / 1e6:.0f} Mpx "
          f"decoded), os.pread + imagecodecs.jpeg8_decode, 1 thread, best of {repeat}")
    print("(b) ihc-score score SLIDE --workers N --force -q  [--detections none --no-qc]")
    print("    Mpx = level-0 tissue megapixels; CPU = user + system seconds of the whole process tree; "
          "load = 1-min load average before the run\n")
    print(f"{'':36} {'wall s':>8} {'Mpx/s':>7} {'x(a)':>6} | {'CPU s':>8} {'Mpx/CPU-s':>9} {'x(a)':>6} | "
          f"{'load':>5} | peak RSS (VmHWM)")
    print(f"{'(a) decode only, 1 thread':36} {dec.wall_s:8.2f} {_mpx(px, dec.wall_s):7.1f} {1.0:6.1f} | "
          f"{dec.cpu_s:8.2f} {_mpx(px, dec.cpu_s):9.1f} {1.0:6.1f} | {'':5} | -", flush=True)
    runs: dict[tuple[bool, int], Run] = {}
    for scoring_only in (True, False):  # configurations interleaved with worker counts
        for workers in (1, 2):
            load = _load()
            r = runs[(scoring_only, workers)] = _score(main_path, workers, scoring_only, args.keep)
            name = f"(b) {r.label}, {workers} worker{'s' if workers > 1 else ''}"
            print(f"{name:36} {r.wall_s:8.2f} {_mpx(px, r.wall_s):7.1f} {r.wall_s / dec.wall_s:6.1f} | "
                  f"{r.cpu_s:8.2f} {_mpx(px, r.cpu_s):9.1f} {r.cpu_s / dec.cpu_s:6.1f} | {load:5.1f} | {_mem(r)}",
                  flush=True)

    pair = _pair(main_path, args.keep)
    r1 = runs[(True, 1)]
    ceiling = 2.0 * r1.wall_s / max(r.wall_s for r in pair)
    print(f"{'(d) two 1-worker runs at once':36} " + ", ".join(f"{r.wall_s:.2f}" for r in pair) + " s wall, "
          + ", ".join(f"{r.cpu_s:.2f}" for r in pair) + " s CPU: each "
          + ", ".join(f"{r.wall_s / r1.wall_s:.2f}" for r in pair) + " of the time alone (CPU "
          + ", ".join(f"{r.cpu_s / r1.cpu_s:.2f}" for r in pair) + ")", flush=True)

    print("\nratios")
    print(f"  this machine's ceiling for 2 cores (two slides at once, 2 x 1-worker time / their time): "
          f"{ceiling:.2f}")
    for scoring_only in (True, False):
        r1, r2 = runs[(scoring_only, 1)], runs[(scoring_only, 2)]
        print(f"  {r1.label:16}: (b 1 worker)/(a) = {r1.wall_s / dec.wall_s:.1f} (wall), "
              f"{r1.cpu_s / dec.cpu_s:.1f} (CPU); 2-worker speed-up (wall 1w / 2w) {r1.wall_s / r2.wall_s:.2f}, "
              f"CPU 2w / 1w {r2.cpu_s / r1.cpu_s:.2f}; {r1.wall_s / r2.wall_s / ceiling:.0%} of the ceiling")
    for workers in (1, 2):
        so, full = runs[(True, workers)], runs[(False, workers)]
        print(f"  default outputs / scoring only, {workers} worker{'s' if workers > 1 else ' '}: "
              f"{full.wall_s / so.wall_s:.2f} (wall), {full.cpu_s / so.cpu_s:.2f} (CPU)")
    print("\nwhere the time goes, 1 worker ('slide' = plan + tiles + regions, run.json's seconds; "
          "'rest' = start-up + writing outputs)")
    for scoring_only in (True, False):
        r = runs[(scoring_only, 1)]
        rest = r.wall_s - r.scoring_s
        print(f"  {r.label:16}: slide {r.scoring_s:7.2f} s ({r.scoring_s / r.wall_s:.0%}), rest {rest:7.2f} s "
              f"({rest / r.wall_s:.0%}); {r.n_cells} cells in regions; outputs {r.out_mb:.1f} MB")

    if args.profile:
        _profile(main_path)
    if bg_path is not None:
        _growth(info, growth_paths, bg_path, runs, args.keep, max(1, args.growth_repeat))

    print(f"\ntotal {time.perf_counter() - t_start:.0f} s; load average {_load():.1f} at end")
    return 0


def _best(runs: list[Run]) -> Run:
    """The fastest of several runs of one configuration: least wall time, with the least CPU time of any."""
    fastest = min(runs, key=lambda r: r.wall_s)
    return replace(fastest, cpu_s=min(r.cpu_s for r in runs))


def _growth(info: SlideInfo, growth_paths: dict[float, Path], bg_path: Path, runs: dict[tuple[bool, int], Run],
            keep: Path | None, repeat: int) -> None:
    """Time against tissue area over three sizes, and the cost of glass (1 worker).

    The smaller slides take seconds, so a second of noise from other work on
    the machine moves the fit: each is run ``repeat`` times, fastest kept.
    """
    infos = {a: _info(p) for a, p in growth_paths.items()}
    infos[1.0] = info
    bg_info = _info(bg_path)
    timed: dict[tuple[bool, float], Run] = {}
    for a in sorted(growth_paths):
        for scoring_only in (True, False):
            timed[(scoring_only, a)] = _best([_score(growth_paths[a], 1, scoring_only, keep) for _ in range(repeat)])
    for scoring_only in (True, False):
        timed[(scoring_only, 1.0)] = runs[(scoring_only, 1)]
        timed[(scoring_only, -1.0)] = _best([_score(bg_path, 1, scoring_only, keep) for _ in range(repeat)])
    infos[-1.0] = bg_info
    print(f"\ngrowth and background, 1 worker (wall s / CPU s; smaller slides: fastest of {repeat} runs)")
    print(f"  {'slide':30} {'tissue mm^2':>11} {'glass mm^2':>10} | {'scoring only':>17} | {'default outputs':>17}")
    for a in (*GROWTH_AREAS, -1.0):
        i = infos[a]
        w, h = i.size
        name = f"main x{a:g} area, {w}x{h}" if a > 0 else f"background, {w}x{h}"
        so, full = timed[(True, a)], timed[(False, a)]
        print(f"  {name:30} {i.tissue_mm2:11.1f} {i.background_mm2:10.1f} | {so.wall_s:8.2f} {so.cpu_s:8.2f} | "
              f"{full.wall_s:8.2f} {full.cpu_s:8.2f}")
    for scoring_only in (True, False):
        label = timed[(scoring_only, 1.0)].label
        xs = [infos[a].tissue_mm2 for a in GROWTH_AREAS]
        out = []
        for metric in ("wall_s", "cpu_s"):
            ys = [getattr(timed[(scoring_only, a)], metric) for a in GROWTH_AREAS]
            k, _ = _fit_loglog(xs, ys)
            k_top = math.log(ys[-1] / ys[-2]) / math.log(xs[-1] / xs[-2])
            pts = [infos[a] for a in (*GROWTH_AREAS, -1.0)]
            ts = ys + [getattr(timed[(scoring_only, -1.0)], metric)]
            design = np.array([[1.0, p.tissue_mm2, p.background_mm2] for p in pts])
            (t0, per_t, per_g), *_ = np.linalg.lstsq(design, np.array(ts), rcond=None)
            bg_ratio = getattr(timed[(scoring_only, -1.0)], metric) / getattr(timed[(scoring_only, 1.0)], metric)
            out.append(f"{metric[:-2]:4}: exponent {k:.2f} (x{GROWTH_AREAS[-2]:g} -> x1: {k_top:.2f}); t = {t0:.1f} s + {per_t:.3f} s/mm^2 tissue + "
                       f"{per_g:.4f} s/mm^2 glass (glass/tissue per mm^2 = {per_g / per_t:.3f}); "
                       f"background slide / main slide = {bg_ratio:.2f}")
        print(f"  {label}:\n    " + "\n    ".join(out))
    print(f"  (tissue of the background slide / main slide = {bg_info.tissue_mm2 / info.tissue_mm2:.2f}; "
          f"peak RSS of the background slide, 1 worker: "
          f"{max(max(timed[(so, -1.0)].peak('main') or [0.0]) for so in (True, False)):.0f} MB)")


if __name__ == "__main__":
    sys.exit(main())
