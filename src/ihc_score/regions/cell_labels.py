"""Cells labelled by hand in QuPath (points, or cell / detection objects exported as GeoJSON): where and what.

A pathologist teaches the cell-type step with QuPath's point tool (one
point per cell, each point set given a class) or by classifying detected
cells; *File > Export objects as GeoJSON* writes either. Each point of a
``Point`` / ``MultiPoint`` feature is one labelled cell; a ``Polygon`` or
``MultiPolygon`` feature (a cell, detection or small annotation) is one
cell at the centroid of its ``nucleusGeometry`` when it has one, else of
its outline. The label is the feature's QuPath classification name.
Coordinates are level-0 px, as QuPath writes them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import shapely.geometry

from ihc_score.fileio import atomic_write
from ihc_score.regions._parsers import _qupath_class

__all__ = ["CellLabels", "read_cell_labels", "write_cell_labels"]


@dataclass(frozen=True)
class CellLabels:
    """Labelled cells of one slide: level-0 px centroids and class names, one entry per cell."""

    l0_x: np.ndarray
    l0_y: np.ndarray
    names: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.names)


def _features(data: Any) -> list[Any]:
    if isinstance(data, dict) and data.get("type") == "FeatureCollection":
        return list(data.get("features") or [])
    if isinstance(data, dict) and data.get("type") == "Feature":
        return [data]
    if isinstance(data, list):
        return data
    raise ValueError("not a GeoJSON FeatureCollection, Feature or list of features")


def _points(feature: dict[str, Any]) -> list[tuple[float, float]]:
    """The labelled cells of one feature (see the module docstring)."""
    geometry = feature.get("nucleusGeometry") or feature.get("geometry") or {}
    kind = geometry.get("type")
    coords = geometry.get("coordinates")
    if kind == "Point":
        return [(float(coords[0]), float(coords[1]))]
    if kind == "MultiPoint":
        return [(float(c[0]), float(c[1])) for c in coords]
    if kind in ("Polygon", "MultiPolygon"):
        c = shapely.geometry.shape(geometry).centroid
        return [] if c.is_empty else [(float(c.x), float(c.y))]
    return []


def read_cell_labels(path: str | Path) -> CellLabels:
    """Every labelled cell of a QuPath GeoJSON file; features without a class or a position are skipped.

    Raises
    ------
    ValueError
        With a one-line reason: the file cannot be read, is not GeoJSON, or
        holds no classified point or cell.
    """
    path = Path(path)
    try:
        features = _features(json.loads(path.read_text(encoding="utf-8-sig")))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, ValueError) as err:
        raise ValueError(f"{path.name}: cannot read labelled cells ({err})") from None
    xs, ys, names = [], [], []
    for feature in features:
        if not isinstance(feature, dict):
            continue
        name = _qupath_class((feature.get("properties") or {}).get("classification"))
        if not name:
            continue
        try:
            points = _points(feature)
        except (TypeError, IndexError, ValueError, AttributeError):
            continue  # a malformed geometry labels no cell
        for x, y in points:
            xs.append(x)
            ys.append(y)
            names.append(name)
    if not names:
        raise ValueError(f"{path.name}: no classified point or cell (export points or cells with a classification "
                         "from QuPath: File > Export objects as GeoJSON)")
    return CellLabels(np.asarray(xs, np.float64), np.asarray(ys, np.float64), tuple(names))


def write_cell_labels(path: str | Path, labels: CellLabels) -> None:
    """Write labelled cells as QuPath exports point annotations: one ``MultiPoint`` feature per class name.

    :func:`read_cell_labels` reads the file back (the cells grouped by class,
    in their order within each class).
    """
    features = []
    for name in dict.fromkeys(labels.names):
        rows = [i for i, n in enumerate(labels.names) if n == name]
        features.append({
            "type": "Feature",
            "geometry": {"type": "MultiPoint",
                         "coordinates": [[float(labels.l0_x[i]), float(labels.l0_y[i])] for i in rows]},
            "properties": {"objectType": "annotation", "classification": {"name": name}},
        })
    atomic_write(Path(path), json.dumps({"type": "FeatureCollection", "features": features}).encode())
