"""Regenerate the sample slides of this folder with the project's own generator.

Run from the repository root::

    .venv/bin/python sample_slides/make_samples.py

Same generator version, same seeds: same bytes.
"""

from __future__ import annotations

from pathlib import Path

from ihc_score.synthetic import make_slide, preset

HERE = Path(__file__).resolve().parent

#: file stem -> (preset, level-0 width, height, seed)
SAMPLES: dict[str, tuple[str, int, int, int]] = {
    "synthetic-positive": ("strong", 5000, 3600, 101),
    "synthetic-negative": ("negative", 4400, 3200, 102),
    "synthetic-shifted-stains": ("shifted-stains", 5000, 3600, 103),
}


def main() -> None:
    for stem, (name, width, height, seed) in SAMPLES.items():
        truth = make_slide(HERE / f"{stem}.svs", preset(name, width=width, height=height, seed=seed))
        t = truth["totals"]
        print(f"{stem}.svs  {width}x{height}  cells={t['n_cells']}  H-score={t['h_score']:.1f}  "
              f"positive={t['percent_positive']:.1f}%")


if __name__ == "__main__":
    main()
