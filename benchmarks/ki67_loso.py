"""Leave-one-set-out tuning of nucleus detection and the positive call on the Ki67 sets.

Run from the repository root (about 10 minutes on 2 cores; ``--quick`` about 3)::

    .venv/bin/python benchmarks/ki67_loso.py [--data ../shared/data] [--workers 2] [--quick | --faint]

The five data sets of ``ki67_accuracy.py`` (deepliif, ki67-breast,
ki67-glioma, shidc-ki67, bcdata-ki67) are each held out in turn: the
setting is chosen on the other four and reported on the held-out one. A
setting is the analysis pixel size (:data:`ANALYSIS_MPPS`), the detection
parameters (:data:`GRID`, every combination, the rest of the default
model's ``detection`` section kept) and the nucleus mean DAB OD at or above
which a cell is positive (:data:`DAB_CUTS`). ``--faint`` searches only the
second search for pale nuclei beside dark ones (off, or on with each pair of
:data:`FAINT_GRID`), at the model's pixel size and DAB cut-off; there "today's
defaults" are the model's without that search. The loss of a set is

    MAE of percent positive (points) + 100 * max(0, 0.85 - recall)

(recall pooled over the set's fields, matched within 5 um; a recall 0.05
short of 0.85 costs 5 points), and a setting's loss on several sets is the
mean of theirs, each set weighing the same whatever its number of fields.

The grid is scored through the product's own functions with one plan per
image and analysis pixel size (``plan_slide``: tissue, stains, tiles; it
does not depend on detection), then ``score_tiles`` and ``finish_slide``
per detection variant; the DAB cut-off only reclassifies the cell table.
Every number printed after the search comes from ``score_slide`` with the
default model whose ``analysis``, ``detection`` and ``classification``
sections carry the chosen setting (``ki67_accuracy.benchmark_model``).

Printed: for each held-out set the setting chosen on the other four, the
held-out MAE, worst field and recall (and today's defaults on that set);
the setting chosen on all five and whether the held-out numbers support
shipping it (:func:`verdict`); then, for that setting and for today's
defaults, each set at its assumed pixel size and at x0.75 and x1.25 of it.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

import ki67_accuracy as ka
from ihc_score.cells import DetectionParams
from ihc_score.model import Model
from ihc_score.run.pipeline import finish_slide
from ihc_score.run.plan import plan_slide
from ihc_score.run.tile_scoring import score_tiles, tile_tasks

#: Detection parameters searched (every combination).
GRID: dict[str, tuple] = {
    "threshold_od": (0.03, 0.045, 0.07, 0.1),
    "sigma_um": (0.75, 1.0, 1.5),
    "background_radius_um": (8.0, 15.0),
    "channel": ("hematoxylin", "hematoxylin_dab"),
    "split_by_shape": (False, True),
    "min_area_um2": (6.0, 10.0),
}
#: A smaller grid for a quick look (``--quick``).
QUICK_GRID: dict[str, tuple] = {"threshold_od": (0.04, 0.07), "sigma_um": (1.0, 1.5), "split_by_shape": (False, True)}
#: The second search for pale nuclei beside dark ones (``--faint``): off, or on with each pair of its two
#: acceptance limits; the analysis pixel size and the DAB cut-off stay the model's (0.5 um/px, 0.2).
FAINT_GRID: dict[str, tuple] = {"faint_min_peak_od": (0.1, 0.12, 0.15), "faint_min_fill": (0.8, 0.85, 0.9)}
#: Nucleus mean DAB OD cut-offs of the positive call searched.
DAB_CUTS = (0.1, 0.125, 0.15, 0.175, 0.2, 0.25, 0.3)
#: Analysis pixel sizes searched (um/px; an image coarser than one is analysed at its own).
ANALYSIS_MPPS = (0.5, 0.3)
TARGET_RECALL = 0.85
#: Loss points per unit of recall short of :data:`TARGET_RECALL`.
RECALL_PENALTY = 100.0
#: Stated pixel size over the assumed one, for the stability table.
SCALES = (0.75, 1.0, 1.25)
#: Per set: MAE and worst |error| (analysis size, variant, cut-off), recall (analysis size, variant).
Metrics = dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class Setting:
    """One point of the search: analysis pixel size, detection parameters, DAB cut-off."""

    analysis_mpp_um: float
    params: DetectionParams
    dab_cut: float
    blur: bool = True  # the model's out-of-focus check (``artefacts.blur``); not searched

    def model(self) -> Model:
        """The benchmark model (default model, nucleus compartment) carrying this setting."""
        model = ka.benchmark_model(self.dab_cut, self.params, analysis_mpp_um=self.analysis_mpp_um)
        return model if self.blur else model.with_overrides(**{"artefacts.blur": False})

    def describe(self) -> str:
        """The setting in one line, detection fields that differ from the defaults named."""
        base = ka.benchmark_model().detection
        keys = [*GRID, "faint_pass", *FAINT_GRID]
        changed = [f"{k}={getattr(self.params, k)}" for k in keys if getattr(self.params, k) != getattr(base, k)]
        detection = ", ".join(changed) or "detection as default"
        return f"analysis {self.analysis_mpp_um} um/px, DAB >= {self.dab_cut}; {detection}"


@dataclass(frozen=True)
class FieldGrid:
    """One image scored at one analysis pixel size over every detection variant and DAB cut-off."""

    name: str
    truth_pct: float
    n_truth: int
    pct: np.ndarray  # (n_variants, n_cuts) our percent positive
    tp: np.ndarray  # (n_variants,) truth cells matched


def variants(grid: dict[str, tuple]) -> list[DetectionParams]:
    """Every combination of ``grid`` on top of the default model's detection section."""
    base = ka.benchmark_model().detection
    keys = list(grid)
    return [dataclasses.replace(base, **dict(zip(keys, combo))) for combo in itertools.product(*grid.values())]


def faint_variants() -> list[DetectionParams]:
    """The default detection, then the second search for pale nuclei with every pair of :data:`FAINT_GRID`."""
    base = ka.benchmark_model().detection
    on = [dataclasses.replace(p, faint_pass=True) for p in variants(FAINT_GRID)]
    return [dataclasses.replace(base, faint_pass=False), *on]


def _field_path(truth: ka.Truth, folder: Path) -> Path:
    """The file to score: the image itself, or its panel written as a PNG into ``folder``."""
    if truth.image is not None:
        return truth.image
    path = folder / "field.png"
    Image.fromarray(truth.rgb).save(path)
    return path


def _grid_job(job: tuple[str, str, Path, float, float, list[DetectionParams], bool]) -> FieldGrid:
    """Score one image at one analysis pixel size over all variants (run in a worker)."""
    name, kind, path, mpp_um, analysis_mpp, params_list, blur = job
    truth = ka.load_truth(kind, path)
    base = Setting(analysis_mpp, params_list[0], ka.DEFAULT_THRESHOLD_OD, blur).model()
    pct = np.zeros((len(params_list), len(DAB_CUTS)))
    tp = np.zeros(len(params_list), dtype=int)
    with tempfile.TemporaryDirectory(prefix="ki67-loso-") as tmp:
        plan = plan_slide(_field_path(truth, Path(tmp)), base, mpp_option_um=mpp_um, region_mode="tissue")
        for i, params in enumerate(params_list):
            model = dataclasses.replace(base, detection=params)
            result = finish_slide(plan, [score_tiles(t) for t in tile_tasks(plan, model)], model)
            ours = ka.cells_of(result, model, name)
            tp[i] = ka.compare(name, truth, ours, ka.MATCH_UM / mpp_um).true_positives
            _, scored, _ = ka.scope_of(truth, ours.xy)
            values = result.cells.dab_nucleus_mean[scored & ours.graded]
            pct[i] = [100.0 * float(np.mean(values >= c)) if len(values) else np.nan for c in DAB_CUTS]
    return FieldGrid(name, 100.0 * float(truth.positive.mean()), len(truth.xy), pct, tp)


def run_grid(pool: ProcessPoolExecutor, data_dir: Path, params_list: list[DetectionParams], blur: bool) -> Metrics:
    """Per set: MAE and worst |error| (analysis size, variant, cut) and recall (analysis size, variant)."""
    images = ka.available(data_dir)
    jobs = [(*image, amp, params_list, blur) for amp in ANALYSIS_MPPS for image in images]
    fields = list(pool.map(_grid_job, jobs))
    out = {}
    for name in ka.SETS:
        idx = [i for i, (image, *_) in enumerate(images) if ka.set_of(image) == name]
        if not idx:
            continue
        per_amp = [[fields[a * len(images) + i] for i in idx] for a in range(len(ANALYSIS_MPPS))]
        err = np.array([[np.abs(f.pct - f.truth_pct) for f in group] for group in per_amp])  # (A, F, V, C)
        recall = np.array([sum(f.tp for f in group) / sum(f.n_truth for f in group) for group in per_amp])
        out[name] = (err.mean(axis=1), err.max(axis=1), recall)
    return out


def loss(mae: np.ndarray, recall: np.ndarray) -> np.ndarray:
    """Loss of a set: MAE plus :data:`RECALL_PENALTY` per unit of recall short of the target."""
    return mae + RECALL_PENALTY * np.maximum(0.0, TARGET_RECALL - np.asarray(recall))[..., None]


def choose(
    metrics: Metrics, sets: tuple[str, ...], params_list: list[DetectionParams], blur: bool = True
) -> tuple[Setting, float]:
    """The setting with the least mean loss over ``sets``, and that loss."""
    total = np.mean([loss(metrics[s][0], metrics[s][2]) for s in sets], axis=0)  # (A, V, C)
    total = np.where(np.isfinite(total), total, np.inf)
    a, v, c = np.unravel_index(int(np.argmin(total)), total.shape)
    return Setting(ANALYSIS_MPPS[a], params_list[v], DAB_CUTS[c], blur), float(total[a, v, c])


def _row_job(job: tuple[str, str, Path, float, Model, float]) -> ka.Row:
    name, kind, path, mpp_um, model, scale = job
    return ka.evaluate_image(name, kind, path, mpp_um, model=model, mpp_scale=scale)[0]


def score_sets(
    pool: ProcessPoolExecutor, data_dir: Path, model: Model, sets: tuple[str, ...] = ka.SETS, scale: float = 1.0
) -> list[ka.Row]:
    """Rows of ``sets`` from ``score_slide`` with ``model``, pixel sizes stated times ``scale``."""
    return list(pool.map(_row_job, [(*image, model, scale) for image in ka.available(data_dir, sets)]))


def _set_loss(summary: ka.SetSummary) -> float:
    return float(loss(np.array([summary.mae]), summary.recall)[0])


def verdict(
    held: dict[str, ka.SetSummary], default: dict[str, ka.SetSummary], tolerance: float = 0.5
) -> tuple[bool, str]:
    """Whether the held-out numbers support shipping the all-five setting, and why.

    They do when the setting chosen without a set is, on that set, no worse
    than today's defaults (loss within ``tolerance`` points) for every set,
    and better on the mean of the five.
    """
    worse = [s for s in held if _set_loss(held[s]) > _set_loss(default[s]) + tolerance]
    mean_held = float(np.mean([_set_loss(held[s]) for s in held]))
    mean_default = float(np.mean([_set_loss(default[s]) for s in held]))
    ok = not worse and mean_held < mean_default
    why = f"mean held-out loss {mean_held:.1f} vs defaults {mean_default:.1f}"
    why += f"; worse than defaults by > {tolerance} on: {', '.join(worse)}" if worse else "; no set worse than defaults"
    return ok, why


def _line(label: str, s: ka.SetSummary, extra: str = "") -> str:
    worst = f"{s.worst_difference:+6.1f} ({s.worst_image})"
    return f"  {label:24} MAE {s.mae:5.1f}  worst {worst:36} recall {s.recall:.2f}  prec {s.precision:.2f}{extra}"


def report_loso(
    pool: ProcessPoolExecutor, data_dir: Path, metrics: Metrics, params_list: list[DetectionParams],
    defaults: dict[str, ka.SetSummary], blur: bool,
) -> tuple[Setting, dict[str, ka.SetSummary]]:  # fmt: skip
    """Print the five held-out results and the all-five setting; return it and the held-out summaries."""
    held = {}
    print(f"\n== leave one set out (loss = MAE + {RECALL_PENALTY:g} * max(0, {TARGET_RECALL} - recall)) ==")
    for out in metrics:
        train = tuple(s for s in metrics if s != out)
        setting, train_loss = choose(metrics, train, params_list, blur)
        held[out] = ka.summarize(score_sets(pool, data_dir, setting.model(), (out,)))[0]
        print(f"held out {out}: chosen on the other four (train loss {train_loss:.1f}): {setting.describe()}")
        print(_line("held-out (score_slide)", held[out], f"  loss {_set_loss(held[out]):.1f}"))
        print(_line("today's defaults", defaults[out], f"  loss {_set_loss(defaults[out]):.1f}"))
    final, final_loss = choose(metrics, tuple(metrics), params_list, blur)
    print(f"\nchosen on all five (mean loss {final_loss:.1f} on the grid): {final.describe()}")
    ok, why = verdict(held, defaults)
    print(f"ship it? {'YES' if ok else 'NO'}: {why}")
    return final, held


def report_scales(
    pool: ProcessPoolExecutor, data_dir: Path, models: dict[str, Model]
) -> dict[str, dict[float, dict[str, ka.SetSummary]]]:
    """Print each set at x0.75, x1 and x1.25 of its assumed pixel size for each model; return the summaries."""
    print("\n== stated pixel size x0.75 / x1 / x1.25 (score_slide): MAE | recall | worst field; max |dMAE| ==")
    out = {}
    for label, model in models.items():
        runs = {sc: ka.summarize(score_sets(pool, data_dir, model, ka.SETS, sc)) for sc in SCALES}
        out[label] = {sc: {s.name: s for s in summaries} for sc, summaries in runs.items()}
        print(f"{label}:")
        for name in out[label][1.0]:
            cells = [out[label][sc][name] for sc in SCALES]
            text = "  ".join(f"{c.mae:4.1f} {c.recall:.2f} {c.worst_difference:+5.1f}" for c in cells)
            swing = max(abs(c.mae - cells[1].mae) for c in cells)
            print(f"  {name:12} {text}   {swing:4.1f}{'  (> 2)' if swing > 2 else ''}")
    return out


def _targets(summaries: dict[str, ka.SetSummary]) -> str:
    bad = [s.name for s in summaries.values() if s.mae > 4 or abs(s.worst_difference) > 10 or s.recall < TARGET_RECALL]
    return f"targets (MAE <= 4, every field within 10, recall >= 0.85) missed on: {', '.join(bad) or 'none'}"


def main(argv: list[str] | None = None) -> int:
    """Run the grid, the five held-out sets, the all-five choice and the pixel-size table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ka.DEFAULT_DATA, help="folder holding ihc/")
    parser.add_argument("--workers", type=int, default=2, help="processes (at most 2 on a shared machine)")
    parser.add_argument("--quick", action="store_true", help="a small grid")
    parser.add_argument("--faint", action="store_true",
                        help="search only the second search for pale nuclei (model's pixel size and DAB cut-off)")
    parser.add_argument("--no-blur", action="store_true", help="turn the out-of-focus check off in every model")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    params_list = variants(QUICK_GRID if args.quick else GRID)
    if args.faint:
        global ANALYSIS_MPPS, DAB_CUTS  # read by the grid's workers, forked after this
        ANALYSIS_MPPS, DAB_CUTS = (ka.benchmark_model().analysis.mpp_um,), (ka.DEFAULT_THRESHOLD_OD,)
        params_list = faint_variants()
    blur = not args.no_blur
    base = ka.benchmark_model()
    # with --faint the baseline is detection without the second search, whatever the model ships
    detection = dataclasses.replace(base.detection, faint_pass=False) if args.faint else base.detection
    default_model = Setting(base.analysis.mpp_um, detection, ka.DEFAULT_THRESHOLD_OD, blur).model()
    with ProcessPoolExecutor(max_workers=max(1, min(2, args.workers))) as pool:
        metrics = run_grid(pool, args.data, params_list, blur)
        print(f"out-of-focus check {'on' if blur else 'off'}; grid: {len(params_list)} detection variants x "
              f"{len(ANALYSIS_MPPS)} analysis sizes x {len(DAB_CUTS)} DAB cut-offs on {len(metrics)} sets, "
              f"{time.perf_counter() - start:.0f} s")  # fmt: skip
        defaults = {s.name: s for s in ka.summarize(score_sets(pool, args.data, default_model))}
        final, _ = report_loso(pool, args.data, metrics, params_list, defaults, blur)
        models = {"chosen on all five": final.model(), "today's defaults": default_model}
        scales = report_scales(pool, args.data, models)
    for label, by_scale in scales.items():
        print(f"{label}: {_targets(by_scale[1.0])}")
    print(f"total {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
