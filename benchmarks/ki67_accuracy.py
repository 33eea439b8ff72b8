"""Cell detection and positive/negative calls against Ki67 ground truth.

Run from the repository root::

    .venv/bin/python benchmarks/ki67_accuracy.py [--data ../shared/data] [--threshold 0.2] [--mpp-scale 1.25]

Each image in ``<data>/ihc`` with cell-level ground truth goes through the
product's path, :func:`ihc_score.run.pipeline.score_slide` (tissue mask, the
slide's own background and stain estimate, analysis at 0.5 um/px, never
upsampled), with the default model changed only to grade the nucleus against
ONE DAB threshold (``classification.compartment = nucleus``, ``thresholds =
(0.2,)``). Per image: truth and our percent positive, cell counts, detection
precision / recall / F1 of a one-to-one (Hungarian) matching of our nucleus
centroids to the truth within ``match_um`` (5 um, the data README's radius);
``rec+`` is the recall of truth-positive cells, ``agree`` the share of matched
cells called alike. Only cells the pipeline keeps (on its tissue mask) count.
Per data set: mean |difference| (MAE), worst field, recall and precision
pooled over its fields, and how many of our cells in scope were left
ungraded (called pigmented: a near-black nucleus can be;
``--grade-pigmented`` grades them). Pixel sizes are
not stored in the files: the assumed ones are in ``IMAGES``;
``--mpp-scale`` states them times a factor (0.75, 1.25), the matching
radius staying 5 um at the assumed size.
``evaluate()`` returns the rows for a test (about 15 s).

Truth and scored area: deepliif (Bladder1, Lung1): the first 512x512 panel,
scored whole; red (positive) / blue (negative) components of the 6th panel
above ``size_thresh`` (reproduces the published counts). ki67-breast 503-05:
``base.png``, ``markers.csv`` points, only cells in ``mask-gt.png`` count.
ki67-glioma: ``original.jpg``, components of ``mask_positive.png`` /
``mask_negative.png``, a balanced sample, not every nucleus: only our cells on
an annotated nucleus count towards our percent (scope ``annotated``; the whole
field is printed beside). shidc-ki67 (0.2 um/px) and bcdata-ki67 (0.25 um/px):
the whole ``<name>.jpg``, every point of ``<name>.points.json``, positive =
label 1; SHIDC's lymphocytes (label 3) count as negative cells, percent =
``n1 / (n1 + n2 + n3)``, until tumour cells are told from lymphocytes.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np
from PIL import Image
from scipy.optimize import linear_sum_assignment
from scipy.spatial import cKDTree

from ihc_score.cells import DetectionParams
from ihc_score.model import Model, default_model
from ihc_score.results import SlideResult
from ihc_score.run import score_slide
from ihc_score.score import classify, left_out_by_type

#: Nucleus mean DAB OD at or above which a nucleus is Ki67-positive: QuPath's
#: default "1+" DAB threshold and the project's first class threshold, fixed
#: before measuring (every cut-off from 0.15 to 0.3 keeps all five images
#: within 10 points; 0.1 does not).
DEFAULT_THRESHOLD_OD = 0.2
#: A detection may be matched to a truth point within this distance (um).
MATCH_UM = 5.0
DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
#: The data sets, in the order they are reported.
SETS = ("deepliif", "ki67-breast", "ki67-glioma", "shidc-ki67", "bcdata-ki67")
_SHIDC_FIELDS = ("p1_0299_1 p1_0299_10 p1_0299_5 p1_0299_9 p1_0300_2 p1_0309_10 p1_0309_3 p1_0309_9 p1_0310_7 "
                 "p1_0310_8 p1_0313_1 p1_0313_3 p1_0313_5").split()  # fmt: skip

#: (name, kind, relative path, assumed um/px, why)
IMAGES: tuple[tuple[str, str, str, float, str], ...] = (
    ("deepliif/Bladder1", "deepliif", "ihc/deepliif/val/Bladder1", 0.3, "40x; nuclei about 29 px across"),
    ("deepliif/Lung1", "deepliif", "ihc/deepliif/val/Lung1", 0.3, "40x; nuclei about 29 px across"),
    ("ki67-breast/503-05", "breast", "ihc/ki67-breast/503-05", 0.5, "nuclei 14-20 px across"),
    ("ki67-glioma/1309620-A2-27", "glioma", "ihc/ki67-glioma/1309620-A2-27", 0.1, "camera field; data README"),
    ("ki67-glioma/1329941-B3-25", "glioma", "ihc/ki67-glioma/1329941-B3-25", 0.1, "camera field; data README"),
    *((f"shidc-ki67/{f}", "points", f"ihc/shidc-ki67/shidc-{f}.jpg", 0.2, "nucleus sizes") for f in _SHIDC_FIELDS),
    *((f"bcdata-ki67/{i:02d}", "points", f"ihc/bcdata-ki67/bcdata-{i:02d}.jpg", 0.25, "nuclei") for i in range(13)),
)  # fmt: skip


def set_of(name: str) -> str:
    """Data set of an image name (``"shidc-ki67/p1_0299_1"`` -> ``"shidc-ki67"``)."""
    return name.split("/", 1)[0]


@dataclass(frozen=True)
class Row:
    """Result of one image (percentages 0-100, counts of cells)."""

    image: str
    truth_positive_pct: float
    our_positive_pct: float
    truth_cells: int
    our_cells: int
    precision: float
    recall: float
    f1: float
    positive_recall: float
    call_agreement: float
    scope: str
    field_positive_pct: float
    field_cells: int
    seconds: float
    true_positives: int = 0  # truth cells matched
    matched_ours: int = 0  # our cells in scope matched to a truth cell
    ungraded: int = 0  # our cells in scope left ungraded (called pigmented, or of a type not scored)

    @property
    def difference(self) -> float:
        """Our percent positive minus the truth's (percentage points)."""
        return self.our_positive_pct - self.truth_positive_pct


@dataclass(frozen=True)
class SetSummary:
    """One data set: percent-positive error over its fields, detection pooled over them."""

    name: str
    n_fields: int
    mae: float  # mean |difference|, points
    worst_image: str
    worst_difference: float  # signed, points
    recall: float  # matched truth cells / truth cells
    precision: float  # matched cells / our cells in scope
    ungraded: int = 0  # our cells in scope left ungraded, summed over the fields


@dataclass(frozen=True)
class Truth:
    """Ground truth of one image and what to score (see the module docstring)."""

    image: Path | None  # file to score, or None: write ``rgb`` to a temporary PNG
    rgb: np.ndarray | None  # (H, W, 3) uint8 crop to score when ``image`` is None
    xy: np.ndarray  # (n, 2) truth positions, own pixels
    positive: np.ndarray  # (n,) bool
    region: np.ndarray | None  # bool mask of the scored area, own pixels
    annotated: np.ndarray | None  # int32 labels of annotated nuclei, own pixels


class OurCells(NamedTuple):
    """Our cells of one image: centroids (n, 2) in its own pixels (centres at integers) and their calls."""

    xy: np.ndarray
    positive: np.ndarray  # bool
    graded: np.ndarray  # bool: not left out of the grading as pigmented


def _read(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB") if im.mode not in ("L", "1") else im)


def _components(mask: np.ndarray, min_area: int = 1) -> tuple[np.ndarray, np.ndarray]:
    n, labels, stats, centroids = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    keep = stats[1:, cv2.CC_STAT_AREA] >= min_area
    return centroids[1:][keep], labels


def load_truth(kind: str, folder: Path) -> Truth:
    """Ground truth of one image of ``kind`` (``deepliif``, ``breast``, ``glioma``, ``points``)."""
    if kind == "deepliif":
        panels = _read(folder.with_suffix(".png"))
        rgb = np.ascontiguousarray(panels[:, :512])
        seg = panels[:, 2560:3072].astype(np.int16)
        size = int(json.loads(folder.with_suffix(".json").read_text())["size_thresh"])
        red = (seg[..., 0] > 200) & (seg[..., 1] < 60) & (seg[..., 2] < 60)
        blue = (seg[..., 2] > 200) & (seg[..., 0] < 60) & (seg[..., 1] < 60)
        (pos, _), (neg, _) = _components(red, size), _components(blue, size)
        xy = np.concatenate([pos, neg])
        return Truth(None, rgb, xy, np.arange(len(xy)) < len(pos), None, None)
    if kind == "breast":
        region = _read(folder / "mask-gt.png") > 0
        with open(folder / "markers.csv", newline="") as fh:
            rows = list(csv.DictReader(fh))
        xy = np.array([[float(r["x"]), float(r["y"])] for r in rows])
        return Truth(folder / "base.png", None, xy, np.array([r["type"] == "1" for r in rows]), region, None)
    if kind == "glioma":
        pmask = _read(folder / "mask_positive.png") > 0
        nmask = _read(folder / "mask_negative.png") > 0
        (pos, _), (neg, _) = _components(pmask), _components(nmask)
        xy = np.concatenate([pos, neg])
        annotated = cv2.connectedComponents((pmask | nmask).astype(np.uint8), connectivity=8)[1]
        return Truth(folder / "original.jpg", None, xy, np.arange(len(xy)) < len(pos), None, annotated)
    if kind == "points":  # every point counts, label 1 is positive
        points = json.loads(folder.with_suffix(".points.json").read_text())
        xy = np.array([[float(p["x"]), float(p["y"])] for p in points]).reshape(-1, 2)
        return Truth(folder, None, xy, np.array([int(p["label_id"]) == 1 for p in points], dtype=bool), None, None)
    raise ValueError(f"unknown data set kind {kind!r}")


def match(ours: np.ndarray, truth: np.ndarray, radius: float) -> tuple[np.ndarray, np.ndarray]:
    """One-to-one pairs (truth index, our index) within ``radius``, by optimal assignment."""
    none = (np.zeros(0, dtype=int), np.zeros(0, dtype=int))
    if len(ours) == 0 or len(truth) == 0:
        return none
    pairs = cKDTree(truth).sparse_distance_matrix(cKDTree(ours), radius, output_type="coo_matrix")
    if pairs.nnz == 0:
        return none
    cost = np.full((len(truth), len(ours)), 1e6)
    cost[pairs.row, pairs.col] = pairs.data
    r, c = linear_sum_assignment(cost)
    ok = cost[r, c] <= radius
    return r[ok], c[ok]


def _pct(positive: np.ndarray) -> float:
    return 100.0 * float(positive.mean()) if len(positive) else float("nan")


def benchmark_model(
    threshold_od: float = DEFAULT_THRESHOLD_OD, params: DetectionParams | None = None,
    estimate_stains: bool = True, analysis_mpp_um: float | None = None,
) -> Model:  # fmt: skip
    """The default model graded on the nucleus mean DAB OD against one threshold, every cell scored.

    The cell-type step is off: these sets measure detection and grading over
    every marked cell; ``cell_types.py`` measures the step on SHIDC's
    lymphocytes, on fields it was not fitted on.
    """
    model = default_model().with_overrides(
        **{"classification.compartment": "nucleus", "classification.thresholds": (threshold_od,),
           "cell_types.model": ""}
    )
    if analysis_mpp_um is not None:
        model = model.with_overrides(**{"analysis.mpp_um": analysis_mpp_um})
    if not estimate_stains:
        model = model.with_overrides(**{"stains.estimate": False})
    if params is not None:
        model = dataclasses.replace(model, detection=params)
    return model


def _score(truth: Truth, model: Model, mpp_um: float) -> SlideResult:
    if truth.image is not None:
        return score_slide(truth.image, model, mpp_option_um=mpp_um, region_mode="tissue")
    with tempfile.TemporaryDirectory(prefix="ki67-") as tmp:
        path = Path(tmp) / "field.png"
        Image.fromarray(truth.rgb).save(path)
        return score_slide(path, model, mpp_option_um=mpp_um, region_mode="tissue")


def cells_of(result: SlideResult, model: Model, name: str = "") -> OurCells:
    """Our cells of a scored image in its own pixel frame; checks them against the region counts."""
    table = result.cells
    downsample = result.analysis_mpp_um / result.mpp_um
    own_x = (table.a_x.astype(np.float64) + 0.5) * downsample - 0.5
    own_y = (table.a_y.astype(np.float64) + 0.5) * downsample - 0.5
    positive = classify(getattr(table, model.classification.measurement), model.classification.thresholds) > 0
    pigmented = result.detail.pigmented if result.detail.pigmented is not None else np.zeros(len(table), bool)
    left_out = left_out_by_type(result.detail.cell_type, model.cell_types)
    graded = ~pigmented  # cells mostly covered by pigment (or of a type not scored) are reported apart, not graded
    if left_out is not None:
        graded &= ~left_out
    counts = result.regions[0].counts
    if (counts.n, counts.n_positive) != (int(graded.sum()), int(positive[graded].sum())):
        raise RuntimeError(f"{name}: region counts {counts} disagree with the cell table")
    return OurCells(np.column_stack([own_x, own_y]), positive, graded)


def scope_of(truth: Truth, xy: np.ndarray) -> tuple[np.ndarray, np.ndarray, str]:
    """Which of our cells lie in the scored region, which count towards our percent, and the scope's name."""
    everywhere = np.ones(len(xy), dtype=bool)
    mask = truth.region if truth.region is not None else truth.annotated
    if mask is None:
        return everywhere, everywhere, "field"
    ix = np.clip(np.rint(xy[:, 0]).astype(int), 0, mask.shape[1] - 1)
    iy = np.clip(np.rint(xy[:, 1]).astype(int), 0, mask.shape[0] - 1)
    if truth.region is not None:
        return mask[iy, ix], mask[iy, ix], "region"
    return everywhere, mask[iy, ix] > 0, "annotated"


def compare(name: str, truth: Truth, ours: OurCells, radius_px: float, seconds: float = 0.0) -> Row:
    """Percent positive and detection of our cells against the truth of one image (see the module docstring)."""
    in_region, scored, scope = scope_of(truth, ours.xy)
    t_idx, o_idx = match(ours.xy[in_region], truth.xy, radius_px)
    tp = len(t_idx)
    n_truth_pos = int(truth.positive.sum())
    positive_recall = float(truth.positive[t_idx].sum()) / n_truth_pos if n_truth_pos else float("nan")
    agree = ours.positive[in_region][o_idx] == truth.positive[t_idx]
    # Precision among our cells in scope: off the annotated glioma nuclei are mostly real nuclei nobody outlined.
    matched = np.zeros(len(ours.xy), dtype=bool)
    matched[np.flatnonzero(in_region)[o_idx]] = True
    n_scope, n_matched = int(scored.sum()), int(matched[scored].sum())
    precision = n_matched / n_scope if n_scope else float("nan")
    recall = tp / len(truth.xy) if len(truth.xy) else float("nan")
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else float("nan")
    return Row(
        image=name, truth_positive_pct=_pct(truth.positive), our_positive_pct=_pct(ours.positive[scored & ours.graded]),
        truth_cells=len(truth.xy), our_cells=n_scope, precision=precision, recall=recall, f1=f1,
        positive_recall=positive_recall, call_agreement=float(agree.mean()) if tp else float("nan"), scope=scope,
        field_positive_pct=_pct(ours.positive[in_region & ours.graded]), field_cells=int(in_region.sum()),
        seconds=seconds, true_positives=tp, matched_ours=n_matched, ungraded=int(np.sum(scored & ~ours.graded)),
    )  # fmt: skip


def evaluate_image(
    name: str, kind: str, folder: Path, mpp_um: float, *,
    model: Model | None = None, match_um: float = MATCH_UM, mpp_scale: float = 1.0,
) -> tuple[Row, SlideResult]:  # fmt: skip
    """Score one image with :func:`score_slide` as if its pixel size were ``mpp_um * mpp_scale``.

    Compared with its truth by :func:`compare`, matching within ``match_um`` at ``mpp_um``.
    """
    start = time.perf_counter()
    model = benchmark_model() if model is None else model
    truth = load_truth(kind, folder)
    result = _score(truth, model, mpp_um * mpp_scale)
    row = compare(name, truth, cells_of(result, model, name), match_um / mpp_um)
    return dataclasses.replace(row, seconds=time.perf_counter() - start), result


def available(data_dir: Path = DEFAULT_DATA, sets: tuple[str, ...] = SETS) -> list[tuple[str, str, Path, float]]:
    """``(name, kind, path, mpp_um)`` of the images of ``sets`` found under ``data_dir``."""
    paths = [(name, kind, Path(data_dir) / rel, mpp) for name, kind, rel, mpp, _ in IMAGES if set_of(name) in sets]
    return [(n, k, p, m) for n, k, p, m in paths if p.exists() or p.with_suffix(".png").exists()]


def evaluate(
    data_dir: Path = DEFAULT_DATA, *,
    threshold_od: float = DEFAULT_THRESHOLD_OD, params: DetectionParams | None = None, match_um: float = MATCH_UM,
    estimate_stains: bool = True, analysis_mpp_um: float | None = None,
    model: Model | None = None, mpp_scale: float = 1.0, sets: tuple[str, ...] = SETS,
) -> list[Row]:  # fmt: skip
    """One :class:`Row` per image of ``sets`` with ground truth found under ``data_dir``.

    ``data_dir`` holds ``ihc/`` (the project's ``../shared/data``); ``threshold_od``, ``params``,
    ``estimate_stains`` and ``analysis_mpp_um`` go to :func:`benchmark_model` unless the whole
    ``model`` is given; a truth position and our centroid pair within ``match_um``; each image is
    scored as if its pixel size were the assumed one times ``mpp_scale``.
    """
    if model is None:
        model = benchmark_model(threshold_od, params, estimate_stains, analysis_mpp_um)
    return [
        evaluate_image(name, kind, path, mpp_um, model=model, match_um=match_um, mpp_scale=mpp_scale)[0]
        for name, kind, path, mpp_um in available(data_dir, sets)
    ]


def summarize(rows: list[Row]) -> list[SetSummary]:
    """One :class:`SetSummary` per data set present in ``rows``, in the order of :data:`SETS`."""
    out = []
    for name in [n for n in SETS if any(set_of(r.image) == n for r in rows)]:
        mine = [r for r in rows if set_of(r.image) == name]
        worst = max(mine, key=lambda r: abs(r.difference))
        n_ours = sum(r.our_cells for r in mine)
        recall = sum(r.true_positives for r in mine) / max(1, sum(r.truth_cells for r in mine))
        precision = sum(r.matched_ours for r in mine) / n_ours if n_ours else float("nan")
        mae = float(np.mean([abs(r.difference) for r in mine]))
        out.append(SetSummary(name, len(mine), mae, worst.image, worst.difference, recall, precision,
                              sum(r.ungraded for r in mine)))
    return out


def format_table(rows: list[Row]) -> str:
    """Plain-text table of the rows."""
    head = (
        f"{'image':28} {'truth%':>7} {'ours%':>7} {'diff':>6} {'n_truth':>7} {'n_ours':>7} "
        f"{'prec':>5} {'rec':>5} {'F1':>5} {'rec+':>5} {'agree':>5} {'scope':>9} {'field%':>7} {'n_field':>7} {'s':>5}"
    )
    return "\n".join([head, "-" * len(head)] + [
        f"{r.image:28} {r.truth_positive_pct:7.1f} {r.our_positive_pct:7.1f} {r.difference:+6.1f} "
        f"{r.truth_cells:7d} {r.our_cells:7d} {r.precision:5.2f} {r.recall:5.2f} {r.f1:5.2f} "
        f"{r.positive_recall:5.2f} {r.call_agreement:5.2f} "
        f"{r.scope:>9} {r.field_positive_pct:7.1f} {r.field_cells:7d} {r.seconds:5.1f}" for r in rows
    ])  # fmt: skip


def format_summary(summaries: list[SetSummary]) -> str:
    """Plain-text table of the per-set summaries."""
    head = (f"{'set':12} {'fields':>6} {'MAE':>5} {'worst':>6}  {'worst field':28} {'recall':>6} {'prec':>5} "
            f"{'ungraded':>8}")
    return "\n".join([head, "-" * len(head)] + [
        f"{s.name:12} {s.n_fields:6d} {s.mae:5.1f} {s.worst_difference:+6.1f}  {s.worst_image:28} "
        f"{s.recall:6.2f} {s.precision:5.2f} {s.ungraded:8d}" for s in summaries
    ])  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    """Score every image, print the per-image and per-set tables; 1 when a field is more than 10 points off."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder holding ihc/")
    parser.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD_OD, help="nucleus DAB OD cut-off")
    parser.add_argument("--channel", default=None, help="detection channel (default: the model's)")
    parser.add_argument("--default-stains", action="store_true", help="Ruifrok-Johnston vectors, no estimation")
    parser.add_argument("--analysis-mpp", type=float, default=None, help="analysis pixel size, um/px (model: 0.5)")
    parser.add_argument("--mpp-scale", type=float, default=1.0, help="state every pixel size times this")
    parser.add_argument("--sets", nargs="+", default=list(SETS), choices=SETS, help="data sets to score")
    parser.add_argument("--grade-pigmented", action="store_true",
                        help="grade every cell, pigment.exclude off (what the cells called pigmented would give)")
    args = parser.parse_args(argv)
    model = benchmark_model(args.threshold, None, not args.default_stains, args.analysis_mpp)
    if args.channel is not None:
        model = dataclasses.replace(model, detection=dataclasses.replace(model.detection, channel=args.channel))
    if args.grade_pigmented:
        model = model.with_overrides(**{"pigment.exclude": False})
    rows = evaluate(args.data, model=model, mpp_scale=args.mpp_scale, sets=tuple(args.sets))
    print(
        f"pipeline score_slide, analysis {model.analysis.mpp_um} um/px, channel {model.detection.channel}, "
        f"nucleus DAB OD >= {args.threshold} is positive, pixel sizes x{args.mpp_scale:g}, "
        f"stains {'default' if args.default_stains else 'estimated'}, match within {MATCH_UM} um"
        + (", every cell graded (pigment not looked for)" if args.grade_pigmented else "")
    )
    print(format_table(rows) + "\n\n" + format_summary(summarize(rows)))
    worst = max((abs(r.difference) for r in rows), default=float("nan"))
    print(f"largest |difference|: {worst:.1f} points (target <= 10 on every field, MAE <= 4 per set)")
    return 0 if rows and worst <= 10 else 1


if __name__ == "__main__":
    raise SystemExit(main())
