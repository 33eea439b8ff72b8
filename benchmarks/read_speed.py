"""Speed of reading analysis tiles the way tile scoring does, against decoding their JPEG tiles once.

Run from the repository root (after ``benchmarks/throughput.py --quick`` has
made the 0.2 Gpx slide, or give any JPEG-tiled SVS)::

    .venv/bin/python benchmarks/read_speed.py [SLIDE] [--dct]

The slide is planned as ``ihc-score score`` plans it, and every analysis
tile is read with ``Slide.read_scaled`` (level 0 reduced 2x to 0.5 um/px),
the slide opened once per chunk of 4 tiles, as ``pipeline.score_tiles``
does. In the same run, one thread, CPU time, best of ``--repeat``:

(a) decode only: every JPEG tile those reads touch, decoded once
    (``imagecodecs.jpeg8_decode``);
(b) reads with the decoded-tile cache of the process and tiles reduced 2x
    once, then cached reduced (the default);
(c) the plain way: the cache emptied whenever the slide is opened and the
    full-resolution rectangle resized with ``cv2.INTER_AREA``.

(b) and (c) must give the same bytes (checked). ``--dct`` also measures
libjpeg-turbo's DCT-domain 1/2 scaled decoding (``cv2.imdecode`` with
``IMREAD_REDUCED_COLOR_2``) against full decoding plus the 2x resize on the
same tiles, and how far its pixels are from the exact ones; it is not used
by the package (its pixels differ from OpenSlide's resized ones).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import time
from pathlib import Path

import cv2
import imagecodecs
import numpy as np
import tifffile

from ihc_score.model import default_model
from ihc_score.run import plan_slide, tile_tasks
from ihc_score.slide import Slide, _jpeg_tiles, open_slide

DEFAULT = Path(__file__).resolve().parent / "cache" / "throughput2-main-14000x14000-s7-g2.svs"


def _rects(path: Path) -> tuple[list[list[tuple[tuple[int, int], tuple[int, int]]]], float]:
    """Level-0 read rectangles of every analysis tile, grouped as the scoring tasks group them."""
    model = default_model()
    plan = plan_slide(path, model)
    groups = []
    for task in tile_tasks(plan, model):
        ds = task.downsample
        group = []
        for tile in task.tiles:
            rx, ry, rw, rh = tile.a_read
            xy = (int(round(rx * ds)), int(round(ry * ds)))
            group.append((xy, (int(round((rx + rw) * ds)) - xy[0], int(round((ry + rh) * ds)) - xy[1])))
        groups.append(group)
    return groups, plan.grid.downsample


def _read_all(path: Path, groups, ds: float) -> tuple[float, str]:
    digest = hashlib.sha1()
    t0 = time.process_time()
    for group in groups:
        with open_slide(path) as slide:
            for xy, size in group:
                digest.update(slide.read_scaled(xy, size, ds).tobytes())
    return time.process_time() - t0, digest.hexdigest()


def _touched_tiles(path: Path, groups) -> tuple[list[bytes], bytes | None, str]:
    with tifffile.TiffFile(path) as tif:
        page = tif.pages[0]
        tw, th = page.tilewidth, page.tilelength
        across = -(-page.imagewidth // tw)
        tables = bytes(page.jpegtables) if page.jpegtables is not None else None
        colorspace = {2: "RGB", 6: "YCBCR"}[int(page.photometric)]
        offsets, counts = page.dataoffsets, page.databytecounts
    index = set()
    for group in groups:
        for (x, y), (w, h) in group:
            for ty in range(max(0, y) // th, (y + h - 1) // th + 1):
                for tx in range(max(0, x) // tw, (x + w - 1) // tw + 1):
                    if tx < across and ty * across + tx < len(offsets):
                        index.add(ty * across + tx)
    fd = os.open(path, os.O_RDONLY)
    try:
        raws = [os.pread(fd, counts[i], offsets[i]) for i in sorted(index)]
    finally:
        os.close(fd)
    return raws, tables, colorspace


def _best(repeat: int, fn) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.process_time()
        fn()
        best = min(best, time.process_time() - t0)
    return best


def _dct(raws: list[bytes], tables: bytes | None, colorspace: str, repeat: int) -> None:
    def full() -> list[np.ndarray]:
        return [imagecodecs.jpeg8_decode(r, tables=tables, colorspace=colorspace, outcolorspace="RGB") for r in raws]

    streams = [r if tables is None else tables[:-2] + r[2:] for r in raws]
    decoded = full()
    t_full = _best(repeat, full)
    t_resize = _best(repeat, lambda: [cv2.resize(d, (d.shape[1] // 2, d.shape[0] // 2), interpolation=cv2.INTER_AREA) for d in decoded])
    t_dct = _best(repeat, lambda: [cv2.imdecode(np.frombuffer(s, np.uint8), cv2.IMREAD_REDUCED_COLOR_2) for s in streams])
    exact = np.stack([cv2.resize(d, (d.shape[1] // 2, d.shape[0] // 2), interpolation=cv2.INTER_AREA) for d in decoded])
    scaled = np.stack([cv2.imdecode(np.frombuffer(s, np.uint8), cv2.IMREAD_REDUCED_COLOR_2)[..., ::-1] for s in streams])
    diff = scaled.astype(np.int16) - exact
    print(f"\nDCT-domain 1/2 decoding, {len(raws)} tiles ({colorspace}; libjpeg treats the stream as YCbCr):")
    print(f"  full decode + 2x INTER_AREA resize {t_full + t_resize:6.3f} s  (decode {t_full:.3f}, resize {t_resize:.3f})")
    print(f"  scaled decode                      {t_dct:6.3f} s  = {t_dct / (t_full + t_resize):.2f} x")
    print(f"  pixels vs exact: mean |diff| {np.abs(diff).mean():.3f} levels, mean diff {diff.mean():+.3f}, "
          f"max {np.abs(diff).max()}, {np.mean(diff != 0):.1%} of samples differ")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("slide", nargs="?", type=Path, default=DEFAULT)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--dct", action="store_true", help="also measure DCT-domain scaled decoding")
    args = ap.parse_args(argv)
    if not args.slide.is_file():
        ap.error(f"{args.slide} not found: run benchmarks/throughput.py --quick first or give a slide")
    cv2.setNumThreads(1)
    groups, ds = _rects(args.slide)
    raws, tables, colorspace = _touched_tiles(args.slide, groups)
    n_reads = sum(len(g) for g in groups)

    def decode_only() -> None:
        for r in raws:
            imagecodecs.jpeg8_decode(r, tables=tables, colorspace=colorspace, outcolorspace="RGB")

    t_decode = _best(args.repeat, decode_only)
    fast, plain = [], []
    digests = set()
    halved_hook = Slide._read_level_halved
    for _ in range(args.repeat):
        _jpeg_tiles._TILE_CACHE.clear()
        seconds, digest = _read_all(args.slide, groups, ds)
        fast.append(seconds)
        digests.add(digest)
        # The plain way: no reduced tiles, and the cache lives only as long as the open slide.
        opened = open_slide

        def open_fresh(path, **kw):
            _jpeg_tiles._TILE_CACHE.clear()
            return opened(path, **kw)

        globals()["open_slide"] = open_fresh
        from ihc_score.slide import _openslide_backend

        saved = _openslide_backend.OpenSlideSlide._read_level_halved
        _openslide_backend.OpenSlideSlide._read_level_halved = halved_hook
        try:
            seconds, digest = _read_all(args.slide, groups, ds)
        finally:
            _openslide_backend.OpenSlideSlide._read_level_halved = saved
            globals()["open_slide"] = opened
        plain.append(seconds)
        digests.add(digest)
    if len(digests) != 1:
        raise SystemExit("the two read paths gave different bytes")
    print(f"{args.slide.name}: {n_reads} analysis tiles read at downsample {ds:g} in {len(groups)} chunks; "
          f"{len(raws)} JPEG tiles touched (CPU s, one thread, best of {args.repeat})")
    print(f"  (a) decode each touched JPEG tile once   {t_decode:6.3f} s")
    print(f"  (b) read_scaled, process cache + halved  {min(fast):6.3f} s  = {min(fast) / t_decode:.2f} x (a)")
    print(f"  (c) read_scaled, plain                   {min(plain):6.3f} s  = {min(plain) / t_decode:.2f} x (a)")
    print(f"  (c) / (b) = {min(plain) / min(fast):.2f}; same bytes: yes")
    if args.dct:
        _dct(raws, tables, colorspace, args.repeat)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
