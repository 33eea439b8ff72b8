"""Speed of cell detection and measurement on one tile, stage by stage.

Run from the repository root::

    .venv/bin/python benchmarks/tile_speed.py [--repeat 5] [--size 2048]

Renders three tiles with the project's own generator (cached under
``benchmarks/cache/``), at the analysis pixel size 0.5 um/px (rendered at
0.25 um/px and halved with ``cv2.INTER_AREA``, as the pipeline reads a
0.25 um/px slide):

* ``mixed``: a whole 1 x 1 mm synthetic slide (``default`` preset, seed 1):
  a metastasis in stroma, with glass around it;
* ``dense``: tumour sheet edge to edge (``strong`` preset, 7000 cells/mm^2);
* ``blank``: glass only (the generator's blank region with sensor noise).

With one OpenCV thread (``cv2.setNumThreads(1)``) and the shipped model's
detection settings (``--cell-body expansion`` for the fixed ring,
``--one-search`` without the second search for faint nuclei), it times every stage of
:func:`ihc_score.cells.detect.detect_cells` through the module's own step
functions, in the order :func:`~ihc_score.cells.detect.detect_nuclei` runs them
(checked: the staged result must equal ``detect_cells``), and prints the
throughput of each stage and of the whole, in analysis megapixels per
second (best of ``--repeat`` runs, in CPU time of the process, so that
other work on the machine disturbs the figures less).

Target: a slide scored in at most 3 times its JPEG decode time (decode:
about 340 Mpx/s of level-0 pixels per core) leaves the analysis twice the
decode time; at 0.5 um/px on a 0.25 um/px slide one analysis pixel is 4
level-0 pixels, so the whole analysis (deconvolution, detection,
measurement) needs about 340 / 2 / 4 = 42 analysis Mpx/s per core.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from dataclasses import fields, replace
from pathlib import Path

import cv2
import numpy as np

from ihc_score.cells import _background as B
from ihc_score.cells import _nuclei as N
from ihc_score.cells import detect as C
from ihc_score.model import DEFAULT_MODEL_PATH, load_model
from ihc_score.stain import DEFAULT_STAINS, deconvolve
from ihc_score.synthetic import TumourRegion, make_layout, preset, render_region

CACHE = Path(__file__).resolve().parent / "cache"
MPP_UM = 0.5

#: name -> (preset, SynthSpec overrides, level-0 origin of the rendered square)
TILES: dict[str, tuple[str, dict, tuple[int, int]]] = {
    "mixed": ("default", {"seed": 1}, (0, 0)),
    "dense": (
        "strong",
        {
            "seed": 2,
            "tumour_density_per_mm2": 7000.0,
            "tissue_fraction": 0.9,
            "regions": (TumourRegion(radii=(1.0, 1.0), class_proportions=(0.12, 0.25, 0.33, 0.30)),),
        },
        (0, 0),
    ),
    "blank": ("default", {"seed": 1}, (1 << 20, 1 << 20)),
}


def tile_rgb(name: str, size: int) -> np.ndarray:
    """RGB uint8 tile of ``size`` x ``size`` analysis px (rendered at twice that, halved)."""
    path = CACHE / f"tile_speed-{name}-{size}.npy"
    if path.exists():
        return np.load(path)
    base, fields_, origin = TILES[name]
    l0 = 2 * size
    layout = make_layout(preset(base, width=l0, height=l0, **fields_))
    rgb = render_region(layout, origin, (l0, l0)).rgb
    tile = cv2.resize(rgb, (size, size), interpolation=cv2.INTER_AREA)
    CACHE.mkdir(parents=True, exist_ok=True)
    np.save(path, tile)
    return tile


def stages(rgb: np.ndarray, params: C.DetectionParams) -> list[tuple[str, Callable[[dict], None]]]:
    """The stages of ``deconvolve`` + ``detect_cells``, each a step on a shared state dict."""
    mpp = MPP_UM
    px_area = mpp * mpp

    def deconv(s: dict) -> None:
        s["conc"] = deconvolve(rgb, DEFAULT_STAINS)
        s["image"] = C.detection_image(s["conc"], params.channel)

    def background(s: dict) -> None:
        radius = params.background_radius_um / mpp
        s["empty"] = B._surely_empty(s["image"], radius, params.threshold_od)
        if not s["empty"]:
            s["image"] = s["raw"] = B._subtract_background(s["image"], radius)

    def smooth(s: dict) -> None:
        if not s["empty"]:
            s["image"] = N._smooth(s["image"], params.sigma_um / mpp)

    def threshold(s: dict) -> None:
        if s["empty"]:
            return
        s["mask"] = N._foreground(s["image"], params.threshold_od, N._HOLE_FRACTION * params.max_area_um2 / px_area)
        s["score"] = s["image"]
        if params.split_by_shape:
            dist = cv2.distanceTransform(s["mask"].view(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
            s["score"] = s["image"] * dist

    def maxima(s: dict) -> None:
        if not s["empty"]:
            s["peaks"] = N._maxima(s["mask"], s["score"], N._SPLIT_MIN_DISTANCE_UM / mpp)

    def assign(s: dict) -> None:
        if not s["empty"]:
            s["part"] = N._partition(s["mask"], s["score"], s["peaks"], N._CORE_FRACTION)

    def trim(s: dict) -> None:
        if s["empty"]:
            s["nuclei"] = np.zeros(s["image"].shape, dtype=np.int32)
            return
        s["nuclei"] = N._trim(*s["part"], s["image"], params.min_area_um2 / px_area, params.max_area_um2 / px_area)

    def second(s: dict) -> None:
        if params.faint_pass and not s["empty"]:
            s["nuclei"] = C.second_search(s["nuclei"], s["raw"], mpp_um=mpp, params=params, deconvolved=s["conc"])

    def expand(s: dict) -> None:
        if params.cell_body == "stained":
            stain = C.detection_image(s["conc"], "hematoxylin_dab")
            s["cells"] = C.stained_bodies(s["nuclei"], stain, mpp_um=mpp, params=params)
        else:
            s["cells"] = C.expand_cells(s["nuclei"], mpp_um=mpp, params=params)

    def measure(s: dict) -> None:
        s["table"] = C.measure_cells(s["nuclei"], s["cells"], s["conc"][..., 0], s["conc"][..., 1], mpp_um=mpp)

    return [
        ("deconvolve", deconv),
        ("glass check + background", background),
        ("smoothing", smooth),
        ("threshold + holes", threshold),
        ("maxima", maxima),
        ("watershed / assignment", assign),
        ("edge cut, area filter, relabel", trim),
        ("second search (faint nuclei)", second),
        (f"cells ({params.cell_body})", expand),
        ("measurement", measure),
    ]


def check_staged(state: dict, rgb: np.ndarray, params: C.DetectionParams) -> None:
    """Raise if the staged run differs from ``detect_cells``."""
    table, nuclei, cells = C.detect_cells(deconvolve(rgb, DEFAULT_STAINS), mpp_um=MPP_UM, params=params)
    same = np.array_equal(nuclei, state["nuclei"]) and np.array_equal(cells, state["cells"])
    same &= all(
        np.array_equal(getattr(table, f.name), getattr(state["table"], f.name), equal_nan=True) for f in fields(table)
    )
    if not same:
        raise RuntimeError("the staged run differs from detect_cells: update stages() to follow detect_nuclei")


def time_tile(rgb: np.ndarray, params: C.DetectionParams, repeat: int) -> tuple[dict[str, float], int]:
    """Best time (s) of each stage over ``repeat`` runs, and the number of cells."""
    plan = stages(rgb, params)
    best = {name: np.inf for name, _ in plan}
    state: dict = {}
    for _ in range(repeat):
        state = {}
        for name, step in plan:
            t0 = time.process_time()
            step(state)
            best[name] = min(best[name], time.process_time() - t0)
    check_staged(state, rgb, params)
    return best, len(state["table"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=5, help="runs per tile; the best time of each stage is kept")
    parser.add_argument("--size", type=int, default=2048, help="tile side, analysis px")
    parser.add_argument("--tiles", default=",".join(TILES), help="comma-separated tile names")
    parser.add_argument("--cell-body", choices=("stained", "expansion"), default="stained",
                        help="how cells are found from their nuclei (DetectionParams.cell_body)")
    parser.add_argument("--one-search", action="store_true", help="without the second search for faint nuclei")
    args = parser.parse_args()
    cv2.setNumThreads(1)
    params = replace(load_model(DEFAULT_MODEL_PATH).detection, cell_body=args.cell_body,
                     faint_pass=not args.one_search)
    names = args.tiles.split(",")
    results = {}
    for name in names:
        rgb = tile_rgb(name, args.size)
        results[name] = time_tile(rgb, params, args.repeat)
    mpx = args.size * args.size / 1e6
    print(f"{args.size} x {args.size} tiles at {MPP_UM} um/px, one OpenCV thread, best of {args.repeat}; "
          "ms and analysis Mpx/s per stage")
    header = f"{'stage':32s}" + "".join(f"{n + ' ms':>11s}{'Mpx/s':>8s}" for n in names)
    print(header)
    print("-" * len(header))
    for stage in results[names[0]][0]:
        row = f"{stage:32s}"
        for n in names:
            t = results[n][0][stage]
            row += f"{t * 1e3:11.1f}" + (f"{mpx / t:8.0f}" if t >= 1e-4 else f"{'-':>8s}")
        print(row)
    print("-" * len(header))
    for label, skip in (("total", ()), ("total without deconvolve", ("deconvolve",))):
        row = f"{label:32s}"
        for n in names:
            t = sum(v for k, v in results[n][0].items() if k not in skip)
            row += f"{t * 1e3:11.1f}{mpx / t:8.1f}"
        print(row)
    print("cells: " + ", ".join(f"{n} {results[n][1]}" for n in names))


if __name__ == "__main__":
    main()
