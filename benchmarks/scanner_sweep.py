"""The same slide under several simulated scanners: does the H-score follow the stain or the scanner?

Run from the repository root::

    .venv/bin/python benchmarks/scanner_sweep.py [--seeds 1,2] [--preset default]

One synthetic layout (same cells, same drawn DAB) is drawn once per scanner
of :data:`ihc_score.synthetic.SCANNERS`: they differ in optical blur, tone
curve (gamma of the light), channel crosstalk, glass white balance, JPEG
quality and noise. Every slide is scored whole (``--regions tissue``) with
the shipped model. Printed per seed: the drawn truth, the H-score under
each scanner and its difference from the reference scanner's. Target: within
5 points of the same slide's H-score under every scanner.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _preset_slides import drawn_totals, spec_slide  # noqa: E402
from ihc_score.model import default_model  # noqa: E402
from ihc_score.run import score_slide  # noqa: E402
from ihc_score.synthetic import SCANNERS, preset  # noqa: E402

TARGET = 5.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", default="1,2")
    parser.add_argument("--preset", default="default")
    args = parser.parse_args()
    model = default_model()
    names = list(SCANNERS)
    print(f"preset {args.preset!r}, 4096 x 3072 px at 0.25 um/px, scored whole with the shipped model")
    print(f"{'seed':>4} {'true H':>7} " + " ".join(f"{n:>16}" for n in names))
    worst = 0.0
    for seed in (int(s) for s in args.seeds.split(",")):
        scores, h = {}, None
        for name in names:
            spec = dataclasses.replace(preset(args.preset, seed=seed), scanner=SCANNERS[name])
            path, truth = spec_slide(f"scanner-{args.preset}-{name}-s{seed}", spec, annotations=False)
            h = drawn_totals(truth)["h_score"]
            r = score_slide(path, model, region_mode="tissue")
            scores[name] = r.regions[0].counts.h_score if r.regions else float("nan")
        ref = scores[names[0]]
        cells = []
        for name in names:
            diff = scores[name] - ref
            worst = max(worst, abs(diff))
            cells.append(f"{scores[name]:7.1f} ({diff:+6.1f})")
        print(f"{seed:4d} {h:7.1f} " + " ".join(f"{c:>16}" for c in cells), flush=True)
    print(f"largest difference from the reference scanner: {worst:.1f} H-score points (target {TARGET:g})")


if __name__ == "__main__":
    main()
