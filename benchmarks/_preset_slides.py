"""Synthetic preset slides of the accuracy benchmarks, made once into ``benchmarks/cache/`` and reused."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from ihc_score.synthetic import GENERATOR_VERSION, SynthSpec, make_slide, preset
from ihc_score.synthetic.truth import totals

CACHE = Path(__file__).resolve().parent / "cache"


def spec_slide(stem: str, spec: SynthSpec, *, annotations: bool = True) -> tuple[Path, dict]:
    """``cache/<stem>-<key>.svs`` drawn from ``spec`` (once), and its truth.

    The key hashes the spec and the generator version, so a changed spec or
    generator never reuses a stale slide.
    """
    key = hashlib.sha1(f"{GENERATOR_VERSION} {spec!r}".encode()).hexdigest()[:10]
    path = CACHE / f"{stem}-{key}.svs"
    if not path.with_suffix(".truth.json").exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        make_slide(path, spec, annotations=annotations)
    return path, json.loads(path.with_suffix(".truth.json").read_text())


def preset_slide(stem: str, name: str, **overrides: object) -> tuple[Path, dict]:
    """A slide of preset ``name`` with ``overrides`` (with its annotation file), and its truth (:func:`spec_slide`)."""
    return spec_slide(stem, preset(name, **overrides))


def drawn_totals(truth: dict) -> dict:
    """Counts and H-score (:func:`ihc_score.synthetic.truth.totals`) of every drawn cell, tumour and host:
    what a slide scored whole (``--regions tissue``) should report."""
    return totals([c["class"] for c in truth["cells"] + truth.get("stromal_cells", [])])
