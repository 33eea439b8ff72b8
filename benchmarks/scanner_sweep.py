"""The same slide under several simulated scanners: does the H-score follow the stain or the scanner?

Run from the repository root::

    .venv/bin/python benchmarks/scanner_sweep.py [--seeds 1,2] [--preset default]
        [--calibration-seed 3] [--calibration-preset default]

One synthetic layout (same cells, same drawn DAB) is drawn once per scanner
of :data:`ihc_score.synthetic.SCANNERS`: they differ in optical blur, tone
curve (gamma of the light), channel crosstalk, glass white balance, JPEG
quality and noise. Every slide is scored whole (``--regions tissue``).

1. **What moves the H-score**: the reference scanner with one of its
   properties changed at a time (first seed), against the reference.
2. **Shipped model**: per seed, the H-score under each scanner and its
   difference from the reference scanner's.
3. **Calibrated**: each scanner's model from ``ihc-score calibrate-scanner``
   (:func:`ihc_score.run.calibrate_scanner`) on the calibration seed's
   layout of the calibration preset, a section never reported, scanned on
   the reference and on that scanner; then the reported seeds scored with it.

Target: within 5 points of the same slide's H-score under every scanner.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _preset_slides import drawn_totals, spec_slide  # noqa: E402
from ihc_score.model import Model, default_model  # noqa: E402
from ihc_score.run import calibrate_scanner, score_slide  # noqa: E402
from ihc_score.synthetic import SCANNERS, Scanner, preset  # noqa: E402

TARGET = 5.0
_REF, _B = SCANNERS["reference"], SCANNERS["scanner-b"]
#: One property of the reference scanner changed at a time (values of the named scanners).
FACTORS: dict[str, Scanner] = {
    "tone curve gamma 0.85": dataclasses.replace(_REF, name="g085", gamma=0.85),
    "tone curve gamma 1.2": dataclasses.replace(_REF, name="g12", gamma=1.2),
    "crosstalk of scanner-b": dataclasses.replace(_REF, name="xb", crosstalk=_B.crosstalk),
    "glass of scanner-b": dataclasses.replace(_REF, name="glb", glass=_B.glass),
    "blur 0.6 um": dataclasses.replace(_REF, name="bl6", blur_sigma_um=0.6),
    "JPEG quality 70": dataclasses.replace(_REF, name="j70", jpeg_quality=70),
    "noise 3 grey levels": dataclasses.replace(_REF, name="n3", noise_sigma=3.0),
}


def slide(preset_name: str, scanner: Scanner, seed: int) -> tuple[Path, float]:
    """The layout of ``seed`` drawn under ``scanner``: its path and drawn H-score."""
    spec = dataclasses.replace(preset(preset_name, seed=seed), scanner=scanner)
    path, truth = spec_slide(f"scanner-{preset_name}-{scanner.name}-s{seed}", spec, annotations=False)
    return path, drawn_totals(truth)["h_score"]


def h_score(path: Path, model: Model) -> float:
    r = score_slide(path, model, region_mode="tissue")
    return r.regions[0].counts.h_score if r.regions else float("nan")


def factors(preset_name: str, seed: int, model: Model) -> None:
    ref = h_score(slide(preset_name, _REF, seed)[0], model)
    print(f"1. one property of the reference scanner at a time (seed {seed}, reference H {ref:.1f})")
    for name, scanner in FACTORS.items():
        h = h_score(slide(preset_name, scanner, seed)[0], model)
        print(f"   {name:24} H {h:6.1f} ({h - ref:+5.1f})", flush=True)


def sweep(title: str, preset_name: str, seeds: list[int], models: dict[str, Model]) -> float:
    """Print each seed's H-score under every scanner (each with its model); the largest difference."""
    names = list(SCANNERS)
    print(title)
    print(f"   {'seed':>4} {'true H':>7} " + " ".join(f"{n:>16}" for n in names))
    worst = 0.0
    for seed in seeds:
        scores, h = {}, 0.0
        for name in names:
            path, h = slide(preset_name, SCANNERS[name], seed)
            scores[name] = h_score(path, models[name])
        ref = scores[names[0]]
        worst = max([worst] + [abs(scores[n] - ref) for n in names])
        cells = [f"{scores[n]:7.1f} ({scores[n] - ref:+6.1f})" for n in names]
        print(f"   {seed:4d} {h:7.1f} " + " ".join(f"{c:>16}" for c in cells), flush=True)
    print(f"   largest difference from the reference scanner: {worst:.1f} H-score points (target {TARGET:g})")
    return worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", default="1,2")
    parser.add_argument("--calibration-seed", type=int, default=3)
    parser.add_argument("--preset", default="default")
    parser.add_argument("--calibration-preset", default="default", help="preset of the calibration section")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    if args.calibration_seed in seeds and args.calibration_preset == args.preset:
        parser.error("the calibration seed must not be a reported seed")
    model = default_model()
    print(f"preset {args.preset!r}, 4096 x 3072 px at 0.25 um/px, scored whole")
    factors(args.preset, seeds[0], model)
    sweep("2. shipped model", args.preset, seeds, {n: model for n in SCANNERS})
    calibrated = {}
    print(f"3. each scanner calibrated on {args.calibration_preset!r} seed {args.calibration_seed} "
          "(reference scan against its scan):")
    ref_path = slide(args.calibration_preset, _REF, args.calibration_seed)[0]
    for name, scanner in SCANNERS.items():
        cal = calibrate_scanner(ref_path, slide(args.calibration_preset, scanner, args.calibration_seed)[0], model)
        calibrated[name] = model.with_overrides(**{"stains.od_scale": cal.od_scale})
        print(f"   {name:10} od_scale {cal.od_scale:.3f} (hematoxylin {cal.fit.hematoxylin_scale:.3f}, "
              f"DAB {cal.fit.dab_scale:.3f}, residual {100 * cal.fit.residual:.1f} %)")
    sweep("   scored with the calibrated models", args.preset, seeds, calibrated)


if __name__ == "__main__":
    main()
