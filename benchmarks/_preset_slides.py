"""Synthetic preset slides of the accuracy benchmarks, made once into ``benchmarks/cache/`` and reused."""

from __future__ import annotations

import json
from pathlib import Path

from ihc_score.synthetic import make_slide, preset

CACHE = Path(__file__).resolve().parent / "cache"


def preset_slide(stem: str, name: str, **overrides: object) -> tuple[Path, dict]:
    """``cache/<stem>.svs`` made from preset ``name`` with ``overrides`` (once, with its annotation file), and its truth."""
    path = CACHE / f"{stem}.svs"
    if not path.with_suffix(".truth.json").exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        make_slide(path, preset(name, **overrides), annotations=True)
    return path, json.loads(path.with_suffix(".truth.json").read_text())
