"""Tumour H-score among immune cells: synthetic metastases with lymphocytes, neutrophils and macrophages mixed in.

Run from the repository root::

    .venv/bin/python benchmarks/infiltrate_accuracy.py [--seeds 1 2] [--shares 0.05 0.15 0.3 0.4]

Each slide is the ``infiltrated`` preset (a positive and a negative
metastasis in brain parenchyma, annotated) with the given share of each
metastasis's cells drawn as immune cells (lymphocytes / neutrophils /
macrophages 0.5 / 0.3 / 0.2; neutrophils mostly 2+ / 3+ as S100A9 is in
them); the truth of a metastasis is the H-score of its tumour cells, each
cell's type what was drawn. Scored with the shipped model and the
packaged cell-type model (``models/cell-types.json``, fitted on real tissue
only and never on these slides) as its ``cell_types`` step, and with every
cell scored (the shipped model as it is). With ``--taught-seed N``, also
with a model taught as a department would teach its own (``ihc-score
train-cells``: every drawn cell of the 30 % slide of seed N labelled, as
QuPath points), never on the seeds reported, and its stain check (on its
own cells: one slide). Printed per metastasis: true
tumour H-score, both H-scores and errors (target: within 5 points with the
step, the call right), and per type the precision and recall of the
detected cells matched to drawn cells within 5 um (target for tumour
cells: 0.9 each).
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _preset_slides import preset_slide  # noqa: E402
from ihc_score.model import Model, default_model  # noqa: E402
from ihc_score.regions import CellLabels, write_cell_labels  # noqa: E402
from ihc_score.run import labelled_cells, score_slide, train_cell_types, type_mapping  # noqa: E402
from ihc_score.score import CELL_TYPES, PACKAGED_CELL_TYPES_PATH, cell_type_model_json, match_points  # noqa: E402

H_TARGET = 5.0
MATCH_UM = 5.0


def _types_table(truth: dict, result, model) -> tuple[np.ndarray, np.ndarray]:
    """Drawn type and our type of each detected cell matched to a drawn cell."""
    rows = truth["cells"] + truth.get("stromal_cells", [])
    xy = np.array([[c["l0_x"], c["l0_y"]] for c in rows]) * truth["mpp_um"]
    d = result.detail
    p, c = match_points(xy, np.column_stack([d.l0_x, d.l0_y]) * truth["mpp_um"], MATCH_UM)
    drawn = np.array([rows[i].get("type", "tumour" if rows[i].get("tumour") else "other") for i in p])
    ours = np.asarray(CELL_TYPES)[d.cell_type[c]] if d.cell_type is not None else np.full(len(c), "tumour")
    return drawn, ours


def _taught_model(seed: int, model: Model, folder: Path) -> Model:
    """``model`` with a cell-type step taught on every drawn cell of the 30 % ``infiltrated`` slide of ``seed``."""
    path, truth = preset_slide(f"infiltrated-0.3-s{seed}", "infiltrated", seed=seed, infiltrate_fraction=0.3)
    labels = folder / f"{path.stem}.geojson"
    rows = truth["cells"] + truth["stromal_cells"]
    write_cell_labels(labels, CellLabels(np.array([r["l0_x"] for r in rows]), np.array([r["l0_y"] for r in rows]),
                                         tuple(r["type"] for r in rows)))
    taught = train_cell_types([labelled_cells(path, labels, model, type_mapping())], model_id="taught", record={})
    out = folder / "taught.json"
    out.write_text(cell_type_model_json(taught))
    return model.with_overrides(**{"cell_types.model": str(out),
                                   "cell_types.sha256": hashlib.sha256(out.read_bytes()).hexdigest()})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--shares", type=float, nargs="+", default=[0.05, 0.15, 0.3, 0.4])
    parser.add_argument("--taught-seed", type=int, help="also score with a model taught on this seed's labels")
    args = parser.parse_args()
    tmp = tempfile.TemporaryDirectory(prefix="taught-")
    every = default_model()
    typed = every.with_overrides(**{
        "cell_types.model": str(PACKAGED_CELL_TYPES_PATH),
        "cell_types.sha256": hashlib.sha256(PACKAGED_CELL_TYPES_PATH.read_bytes()).hexdigest()})
    taught = None if args.taught_seed is None else _taught_model(args.taught_seed, every, Path(tmp.name))
    if taught is not None:
        stain = taught.cell_type_model.info["stain"]
        print("taught model's stain check (its own cells): tumour cells typed tumour per class "
              + ", ".join(f"{k} {v:.3f}" for k, v in stain["kept_by_class"].items()) + f"; gap {stain['gap']}")
    print(f"{'share':>5} {'seed':>4} {'metastasis':12} {'true H':>7} | {'typed H':>7} {'err':>6} {'call':>13} | "
          f"{'all cells H':>11} {'err':>6} | {'taught H':>8} {'err':>6} | left out")
    worst, wrong, drawn_all, ours_all = 0.0, 0, [], []
    for share in args.shares:
        for seed in args.seeds:
            path, truth = preset_slide(f"infiltrated-{share:g}-s{seed}", "infiltrated", seed=seed,
                                       infiltrate_fraction=share)
            r_typed = score_slide(path, typed, region_mode="auto")
            r_all = score_slide(path, every, region_mode="auto")
            r_taught = None if taught is None else score_slide(path, taught, region_mode="auto")
            d, o = _types_table(truth, r_typed, typed)
            drawn_all.append(d)
            ours_all.append(o)
            for region in truth["regions"]:
                a = next(g for g in r_typed.regions if g.name == region["name"])
                b = next(g for g in r_all.regions if g.name == region["name"])
                h = region["h_score"]
                err = a.counts.h_score - h
                worst = max(worst, abs(err))
                right = a.call.call == ("positive" if h >= typed.positivity.cutoff else "negative")
                wrong += not right
                left = ", ".join(f"{t} {n}" for t, n in a.left_out if n)
                c = None if r_taught is None else next(g for g in r_taught.regions if g.name == region["name"])
                taught_text = f"{c.counts.h_score:8.1f} {c.counts.h_score - h:+6.1f}" if c else f"{'-':>8} {'':6}"
                print(f"{share:5.2f} {seed:4d} {region['name']:12} {h:7.1f} | {a.counts.h_score:7.1f} {err:+6.1f} "
                      f"{a.call.call:>13} | {b.counts.h_score:11.1f} {b.counts.h_score - h:+6.1f} | {taught_text} | "
                      f"{left}", flush=True)
    drawn, ours = np.concatenate(drawn_all), np.concatenate(ours_all)
    print("\nper drawn type (detected cells matched to drawn cells):")
    for t in ("tumour", "lymphocyte", "neutrophil", "macrophage", "other"):
        if not np.any(drawn == t):
            continue  # host cells lie outside the annotated metastases, where no cell is detected
        tp = np.sum((drawn == t) & (ours == t))
        prec = tp / max(np.sum(ours == t), 1)
        rec = tp / max(np.sum(drawn == t), 1)
        called = {k: int(np.sum((drawn == t) & (ours == k))) for k in CELL_TYPES if np.any((drawn == t) & (ours == k))}
        print(f"  {t:11} drawn {int(np.sum(drawn == t)):6d}  precision {prec:.2f}  recall {rec:.2f}  typed as {called}")
    print(f"\nwith the cell-type step: largest tumour H-score error {worst:.1f} (target {H_TARGET:g}); "
          f"wrong calls {wrong}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
