"""(Re)make the reference slides of ``ihc-score selftest`` and their expected values.

Run from the repository root::

    .venv/bin/python benchmarks/make_selftest_reference.py [--perturb]

Writes five small synthetic Aperio SVS slides (3000 x 2400 px at 0.25 um/px,
one metastasis each, ~1 MB) into ``src/ihc_score/validation/reference/``,
scores them with the packaged model exactly as the self-test does, and writes
``expected.json`` beside them: for each slide its sha256, the values the
model gave (status, regions, cells, H-score, percent positive, call, stain
vectors, areas left out) and what was drawn (H-score, call, cells, dyes,
artefact areas), each with its tolerance
(:data:`ihc_score.validation.selftest_checks.TOLERANCES`), and the model's
sha256 and the generator's version. Same generator version, same seeds: same
slide bytes. Run it again after any change of the model or of the scoring
that moves a release check, and commit the slides with it.

``--perturb`` then scores the slides again with every decoded JPEG pixel value
moved by a random -1, 0 or +1 (seeded by the tile's bytes) and prints, per
kind of release check, the largest deviation from the values just stored and
its tolerance: the margin the tolerances leave for decoder and floating-point
differences between installations.
"""

from __future__ import annotations

import argparse
import tempfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ihc_score.model import load_model
from ihc_score.outputs import write_json
from ihc_score.synthetic import GENERATOR_VERSION, AirBubble, Fold, PenStroke, TumourRegion, make_slide, preset
from ihc_score.validation.selftest import (
    EXPECTED_FORMAT,
    EXPECTED_NAME,
    REFERENCE_DIR,
    check_reference,
    score_reference_slides,
)
from ihc_score.validation.selftest_checks import TOLERANCES, release_checks, tolerance_text, truth_call, truth_checks
from ihc_score.version import __version__

WIDTH, HEIGHT = 3000, 2400


def _met(proportions: tuple[float, float, float, float]) -> tuple[TumourRegion, ...]:
    """One metastasis over the middle of the slide (~0.16 mm^2, ~850 tumour cells)."""
    return (TumourRegion(center=(0.5, 0.5), radii=(0.36, 0.36), angle_deg=10.0, class_proportions=proportions,
                         name="met1"),)


#: Slide file -> (what it checks, its spec).
SLIDES: dict[str, tuple[str, Callable[[], Any]]] = {
    "positive.svs": ("strongly stained metastasis, drawn H-score 181", lambda: preset(
        "strong", width=WIDTH, height=HEIGHT, seed=201, regions=_met((0.12, 0.25, 0.33, 0.30)))),
    "negative.svs": ("weakly stained metastasis, drawn H-score 30", lambda: preset(
        "negative", width=WIDTH, height=HEIGHT, seed=202, regions=_met((0.75, 0.20, 0.05, 0.0)))),
    "intermediate.svs": ("metastasis near the cut-off but above the borderline band, drawn H-score 140", lambda: preset(
        "default", width=WIDTH, height=HEIGHT, seed=203, regions=_met((0.25, 0.25, 0.35, 0.15)))),
    "drifted-stains.svs": ("hematoxylin and DAB hue-shifted by -10 degrees, yellowish glass; drawn H-score 150",
                           lambda: preset("shifted-stains", width=WIDTH, height=HEIGHT, seed=204,
                                          regions=_met((0.20, 0.30, 0.30, 0.20)))),
    "artefacts.svs": (("fold across the metastasis, air bubble and blue pen ink in brain parenchyma; the areas left "
                       "out, and the H-score of the cells under no artefact"), lambda: preset(
        "default", width=WIDTH, height=HEIGHT, seed=205, host_tissue="brain", stroma_density_per_mm2=600.0,
        tissue_fraction=0.6, tissue_pieces=1, regions=_met((0.12, 0.25, 0.33, 0.30)),
        artefacts=(Fold(center=(0.5, 0.55), length=0.45, width=0.08, angle_deg=35.0, name="fold-1"),
                   AirBubble(center=(0.7, 0.25), radius=0.08, name="bubble-1"),
                   PenStroke(points=((0.10, 0.85), (0.25, 0.92), (0.40, 0.95)), width_um=100.0, colour="blue",
                             name="ink-blue")))),
}

#: Drawn artefact kind -> (slides.csv column, truth area key): the scorer's ink area counts ink on glass too.
_ARTEFACT_AREAS = {"fold": ("fold_area_mm2", "area_mm2"), "air_bubble": ("bubble_area_mm2", "area_mm2"),
                   "pen_ink": ("ink_area_mm2", "area_total_mm2")}


def drawn(truth: dict, cutoff: float, borderline: float) -> dict[str, Any]:
    """What the truth checks compare with: the one metastasis's cells that should be scored, the dyes, artefacts."""
    (region,) = truth["regions"]
    scored = region.get("scored", region)  # with artefacts: the cells whose centre is under none
    areas: dict[str, float] = {}
    for a in truth.get("artefacts", []):
        column, key = _ARTEFACT_AREAS[a["kind"]]
        areas[column] = round(areas.get(column, 0.0) + a[key], 6)
    return {"h_score": round(scored["h_score"], 4), "n_cells": scored["n_cells"],
            "call": truth_call(scored["h_score"], cutoff, borderline),
            "hematoxylin": [round(x, 6) for x in truth["dyes"]["hematoxylin"]],
            "dab": [round(x, 6) for x in truth["dyes"]["dab"]], "artefacts_mm2": areas}


def make_slides(reference: Path, cutoff: float, borderline: float) -> dict[str, dict[str, Any]]:
    """Write the slides (the truth JSON stays in a temporary folder) and return their descriptions."""
    for old in reference.glob("*.svs"):
        old.unlink()
    slides = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, (what, spec) in SLIDES.items():
            s = spec()
            truth = make_slide(Path(tmp) / name, s)
            (Path(tmp) / name).replace(reference / name)
            slides[name] = {"what": what, "seed": s.seed, "width": s.width, "height": s.height, "mpp_um": s.mpp_um,
                            "truth": drawn(truth, cutoff, borderline)}
            print(f"{name}: {(reference / name).stat().st_size / 1e6:.2f} MB, {slides[name]['truth']['n_cells']} "
                  f"tumour cells scored, drawn H-score {slides[name]['truth']['h_score']:.1f}")
    return slides


def expected_values(reference: Path, results: Path, slides: dict[str, dict[str, Any]], model: Any) -> dict:
    """``expected.json``: the checks of every slide from its results and its truth, and what they were made with."""
    import hashlib

    checks: list[dict[str, Any]] = []
    for name in sorted(slides):
        digest = hashlib.sha256((reference / name).read_bytes()).hexdigest()
        checks.append({"slide": name, "metric": "sha256", "basis": "file", "expected": digest,
                       "tolerance": TOLERANCES["equal"]})
        release = release_checks(results, name)
        regions = sorted({c["metric"].rpartition(".")[0] for c in release if "." in c["metric"]})
        n_cells = [c["expected"] for c in release if c["metric"].endswith(".n_cells")]
        if len(regions) != 1 or min(n_cells) < model.positivity.min_cells:
            raise SystemExit(f"{name}: regions {regions}, cells {n_cells}: a reference slide needs one metastasis "
                             f"of at least {model.positivity.min_cells} cells; change its spec")
        checks += release + truth_checks(name, regions[0], slides[name]["truth"])
    return {
        "format": EXPECTED_FORMAT,
        "about": "Expected values of the reference slides of `ihc-score selftest`; made by "
                 "benchmarks/make_selftest_reference.py. basis release: the packaged model's value when made; "
                 "truth: what the generator drew; tolerances: see ihc_score.validation.selftest_checks.",
        "made_with": {"ihc_score": __version__, "generator_version": GENERATOR_VERSION, "model_id": model.id,
                      "model_version": model.version, "model_sha256": model.sha256},
        "tolerances": TOLERANCES,
        "slides": slides,
        "checks": checks,
    }


def perturb(reference: Path, model: Any) -> None:
    """Score with +-1 noise on every decoded pixel value; print the largest deviation of each kind of release check."""
    import imagecodecs

    decode = imagecodecs.jpeg8_decode

    def noisy(data: bytes, *args: Any, **kwargs: Any) -> np.ndarray:
        out = decode(data, *args, **kwargs)
        rng = np.random.default_rng(zlib.crc32(bytes(data)))
        return np.clip(out.astype(np.int16) + rng.integers(-1, 2, size=out.shape), 0, 255).astype(np.uint8)

    imagecodecs.jpeg8_decode = noisy
    try:
        with tempfile.TemporaryDirectory() as tmp:
            slides = sorted(reference.glob("*.svs"))
            score_reference_slides(slides, Path(tmp), model)
            outcome = check_reference(Path(tmp), reference)
    finally:
        imagecodecs.jpeg8_decode = decode
    worst: dict[str, tuple[float, str]] = {}
    for c in outcome.checks:
        if c.basis != "release" or c.deviation != c.deviation:
            continue
        kind = c.metric.rpartition(".")[2]
        if c.deviation >= worst.get(kind, (-1.0, ""))[0]:
            worst[kind] = (c.deviation, tolerance_text(c.tolerance))
    for kind, (dev, tol) in sorted(worst.items()):
        print(f"perturbed decoding: {kind:18s} largest deviation {dev:.4g} (tolerance {tol})")
    print(f"perturbed decoding: {len(outcome.failed)} of {len(outcome.checks)} checks fail: "
          + ", ".join(f"{c.slide} {c.metric} ({c.basis})" for c in outcome.failed))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--perturb", action="store_true", help="also measure the effect of +-1 decoding noise")
    args = parser.parse_args()
    model = load_model(None)
    reference = REFERENCE_DIR
    reference.mkdir(parents=True, exist_ok=True)
    slides = make_slides(reference, model.positivity.cutoff, model.positivity.borderline)
    with tempfile.TemporaryDirectory() as tmp:
        score_reference_slides(sorted(reference / name for name in slides), Path(tmp), model,
                               argv=["make_selftest_reference.py"])
        expected = expected_values(reference, Path(tmp), slides, model)
        write_json(reference / EXPECTED_NAME, expected)
        outcome = check_reference(Path(tmp), reference)
    print(f"{EXPECTED_NAME}: {len(expected['checks'])} checks; against the results they were made from: "
          f"{len(outcome.failed)} fail")
    for c in outcome.checks:
        if c.basis == "truth" or not c.passed:
            print("  " + c.line())
    if args.perturb:
        perturb(reference, model)


if __name__ == "__main__":
    main()
