"""``ihc-score train-cells`` as a department would run it, on real Ki67 fields with their cells marked.

Run from the repository root (needs ``../shared/data/ihc/shidc-ki67``)::

    .venv/bin/python benchmarks/train_cells_real.py

Each of the 13 SHIDC-B-Ki-67 fields is one "slide" (0.2 um/px, as
``ki67_accuracy.py`` states it), its marked cells written as QuPath exports
point annotations (labels 1 and 2 as ``Tumor``, 3 as ``Lymphocyte``). The
cells are found and fitted through the command's own functions
(:func:`ihc_score.run.labelled_cells`, :func:`ihc_score.run.train_cell_types`)
with the shipped S100A9 model's detection, once with every feature and once
with ``--features shape``. Printed, each field typed by a model fitted on the
other twelve (the figures ``train-cells`` prints and keeps): precision and
recall of each type, and the stain check, the share of the marked tumour
cells typed tumour in each DAB class of the S100A9 model (its cell mean, so
a Ki67-positive nucleus in an unstained cell can still be class 0).
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import numpy as np

from ihc_score.model import default_model
from ihc_score.regions import CellLabels, write_cell_labels
from ihc_score.run import labelled_cells, train_cell_types, type_mapping
from ihc_score.score import FEATURE_SETS

SHIDC = Path(__file__).resolve().parents[2] / "shared" / "data" / "ihc" / "shidc-ki67"
SHIDC_MPP_UM = 0.2
NAMES = {1: "Tumor", 2: "Tumor", 3: "Lymphocyte"}


def main() -> int:
    fields = sorted(SHIDC.glob("*.jpg"))
    if not fields:
        print(f"no fields under {SHIDC}", file=sys.stderr)
        return 1
    model = default_model()
    with tempfile.TemporaryDirectory(prefix="train-cells-") as tmp:
        labels = {}
        for path in fields:
            points = json.loads(path.with_suffix(".points.json").read_text())
            labels[path] = Path(tmp) / f"{path.stem}.geojson"
            write_cell_labels(labels[path], CellLabels(np.array([q["x"] for q in points], float),
                                                      np.array([q["y"] for q in points], float),
                                                      tuple(NAMES[q["label_id"]] for q in points)))
        for feature_set in ("all", "shape"):
            own = FEATURE_SETS[feature_set]
            slides = [labelled_cells(p, labels[p], model, type_mapping(), mpp_option_um=SHIDC_MPP_UM, own=own)
                      for p in fields]
            typer = train_cell_types(slides, model_id=f"shidc-{feature_set}", record={}, own=own)
            held = typer.info["held_out_by_slide"]
            matched = sum(len(s.types) for s in slides)
            print(f"--features {feature_set}: {len(slides)} fields, {matched} of "
                  f"{sum(s.n_points for s in slides)} marked cells matched; each field typed by a model of the others")
            for kind in ("tumour", "lymphocyte"):
                print(f"  {kind:10} precision {held[kind]['precision']:.2f}  recall {held[kind]['recall']:.2f}")
            stain = typer.info["stain"]
            shares = ", ".join(f"{k} {v:.2f} ({stain['cells_by_class'][k]})" for k, v in stain["kept_by_class"].items())
            print(f"  stain check, tumour cells typed tumour per DAB class (cells): {shares}; gap {stain['gap']}"
                  + (" - follows the stain" if stain["stain_dependent"] else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
