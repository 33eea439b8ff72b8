"""Regions to score: metastases outlined in an annotation file or found automatically.

A :class:`Region` is a valid, non-empty polygon or multipolygon in slide
level-0 pixels (x right, y down) with a stable, unique name.
:func:`build_regions` turns the :class:`Annotation` shapes read by
:func:`read_annotations` into regions: invalid outlines are repaired, shapes
are clipped to the slide, exclusions (necrosis, artefacts, ``Ignore*``, see
:data:`EXCLUDED_CLASSES`) are cut out of every region they overlap, and
overlapping regions are flagged. :func:`region_membership` says which cells
lie in which region. The writers (:mod:`ihc_score.regions.writers`) export
regions for QuPath, ImageScope and ASAP.

Conventions
-----------
* A cell belongs to a region when its centroid lies in the region's
  *interior* (``shapely.contains_xy``): a centroid exactly on the outline,
  on the edge of a hole or of a cut exclusion is outside. A cell in two
  overlapping regions belongs to both.
* Region names are unique: when names repeat, every one of them gets a
  suffix ``-1``, ``-2``, ... in file order.
* Region flags: ``repaired_geometry`` (self-intersecting outline repaired with
  ``shapely.make_valid``, areal part kept), ``clipped_to_slide`` (partly
  outside the slide), ``exclusions_cut`` (an excluded shape was cut out),
  ``overlaps:<name>`` (shares area with region ``<name>``).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

import numpy as np
import shapely
from shapely.geometry import MultiPolygon, Polygon, box

from ihc_score.errors import AnnotationError

#: A polygon or multipolygon with area, in level-0 px.
Areal = Union[Polygon, MultiPolygon]

__all__ = [
    "regions_mask",
    "EXCLUDED_CLASSES",
    "Annotation",
    "Areal",
    "Region",
    "build_regions",
    "is_excluded",
    "make_areal",
    "region_membership",
]

#: Classifications (or names) whose shapes are cut out of every region they
#: overlap instead of being scored; case-insensitive :mod:`fnmatch` patterns.
#: ``Ignore*`` is QuPath's own class for "leave out"; ``Exclu*`` covers
#: Exclude, Excluded, Exclusion (ASAP users' exclusion group); necrosis,
#: haemorrhage, artefacts (folds, pen, bubbles) and slide background carry no
#: tumour cells to score and give false DAB signal (haemosiderin, edge
#: effect). QuPath's ``Other`` and ``Region*`` are deliberately *not* listed:
#: they are generic classes that pathologists also use for tissue to score.
EXCLUDED_CLASSES: tuple[str, ...] = (
    "Ignore*",
    "Exclu*",
    "Necros*",
    "Necrotic*",
    "Artifact*",
    "Artefact*",
    "Background",
    "Hemorrhage",
    "Haemorrhage",
)

def is_excluded(*labels: str) -> bool:
    """True if any label matches :data:`EXCLUDED_CLASSES` (case-insensitive glob)."""
    return any(
        fnmatch.fnmatchcase(label.strip().lower(), pattern.lower())
        for label in labels
        if label
        for pattern in EXCLUDED_CLASSES
    )


@dataclass(frozen=True)
class Annotation:
    """One shape as read from a file, before exclusions, repair and clipping.

    Attributes
    ----------
    name : str
        Name given in the file, else the classification, else ``region-<n>``
        (n counts the file's areal shapes from 1). Not necessarily unique.
    classification : str
        Class name as in the file (QuPath classification, ImageScope layer,
        ASAP group); empty when none.
    geometry : Polygon or MultiPolygon
        Level-0 pixel coordinates; may be invalid (self-intersecting).
    excluded : bool
        The shape is an exclusion (necrosis, artefact, ...): it is cut out of
        the regions it overlaps. Default: name or classification matches
        :data:`EXCLUDED_CLASSES`.
    flags : tuple of str
        Notes from reading, e.g. ``"repaired_geometry"``.
    """

    name: str
    classification: str
    geometry: Areal
    excluded: bool = False
    flags: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise ValueError("Annotation.name must be a non-empty string")
        if not isinstance(self.classification, str):
            raise ValueError("Annotation.classification must be a string")
        if not isinstance(self.geometry, (Polygon, MultiPolygon)) or self.geometry.is_empty:
            raise ValueError("Annotation.geometry must be a non-empty Polygon or MultiPolygon")


def _areal_of(polys: list[Polygon]) -> Areal | None:
    if not polys:
        return None
    return polys[0] if len(polys) == 1 else MultiPolygon(polys)


def make_areal(geom: Any) -> Areal | None:
    """Valid areal part of ``geom`` (``shapely.make_valid``, lines and points dropped); None if none."""
    if not geom.is_valid:
        geom = shapely.make_valid(geom)
    polys = [g for g in shapely.get_parts(geom) if isinstance(g, (Polygon, MultiPolygon))]
    polys = [p for g in polys for p in shapely.get_parts(g) if not p.is_empty and p.area > 0]
    out = _areal_of(polys)
    if out is not None and not out.is_valid:  # parts from a collection may share an edge
        return make_areal(shapely.union_all(polys))
    return out


_SOURCES = ("annotation", "auto")


@dataclass(frozen=True)
class Region:
    """One region to score.

    Attributes
    ----------
    name : str
        Stable, unique name: the annotation's name, else its class name, else
        ``region-<n>``; automatic regions ``auto-1``, ``auto-2``, ...
    geometry : Polygon or MultiPolygon
        Level-0 pixel coordinates (x right, y down); valid and non-empty.
    source : str
        ``"annotation"`` or ``"auto"``.
    classification : str
        Class name, e.g. QuPath's ``"Tumor"``; empty when none.
    flags : tuple of str
        See the module documentation.
    """

    name: str
    geometry: Polygon | MultiPolygon
    source: str
    classification: str = ""
    flags: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise ValueError("Region.name must be a non-empty string")
        if not isinstance(self.geometry, (Polygon, MultiPolygon)) or self.geometry.is_empty:
            raise ValueError(f"Region.geometry of {self.name!r} must be a non-empty Polygon or MultiPolygon")
        if not self.geometry.is_valid:
            raise ValueError(f"Region.geometry of {self.name!r} is invalid; repair it with shapely.make_valid")
        if self.source not in _SOURCES:
            raise ValueError(f"Region.source must be one of {_SOURCES}, not {self.source!r}")
        if not isinstance(self.classification, str):
            raise ValueError("Region.classification must be a string")

    @property
    def l0_area_px2(self) -> float:
        """Area in level-0 pixels squared."""
        return float(self.geometry.area)

    def area_um2(self, mpp_um: float) -> float:
        """Area in um^2, given the slide's level-0 pixel size ``mpp_um`` (um per pixel)."""
        if not mpp_um > 0:
            raise ValueError(f"mpp_um must be > 0, not {mpp_um}")
        return float(self.geometry.area) * mpp_um * mpp_um

    def area_mm2(self, mpp_um: float) -> float:
        """Area in mm^2, given the level-0 pixel size ``mpp_um``."""
        return self.area_um2(mpp_um) * 1e-6


def build_regions(
    annotations: Sequence[Annotation],
    *,
    slide_size: tuple[int, int],
    source: str = "annotation",
    origin: str | Path = "",
) -> tuple[Region, ...]:
    """Regions from annotation shapes: repaired, clipped, exclusions cut, overlaps flagged.

    Parameters
    ----------
    annotations : sequence of Annotation
        As read by :func:`read_annotations`. Excluded shapes
        (``Annotation.excluded``) are cut out of every region they overlap and
        give no region themselves. Automatic regions can be cut by a file's
        exclusions by passing them as non-excluded annotations.
    slide_size : (int, int)
        Level-0 ``(width, height)`` of the slide in pixels.
    source : str
        ``"annotation"`` or ``"auto"``, stored in every region.
    origin : str or Path
        File the annotations came from, named in error messages.

    Returns
    -------
    tuple of Region
        In the order of ``annotations``; empty when every shape is excluded.

    Raises
    ------
    AnnotationError
        A region has no area after repair, lies entirely outside the slide,
        or lies entirely inside excluded shapes.
    """
    width, height = (int(v) for v in slide_size)
    if width <= 0 or height <= 0:
        raise ValueError(f"slide_size must be positive, not {slide_size}")
    if source not in _SOURCES:
        raise ValueError(f"source must be one of {_SOURCES}, not {source!r}")
    prefix = f"{origin}: " if str(origin) else ""
    slide_box = box(0, 0, width, height)
    cuts = [g for g in (make_areal(a.geometry) for a in annotations if a.excluded) if g is not None]
    cut = shapely.union_all(cuts) if cuts else None
    kept = [a for a in annotations if not a.excluded]
    names = _unique_names([a.name for a in kept])
    geoms, flags = [], []
    for ann, name in zip(kept, names):
        notes = list(ann.flags)
        geom = make_areal(ann.geometry)
        if geom is None:
            raise AnnotationError(f"{prefix}region {name!r} has no area (degenerate outline); redraw it")
        if not ann.geometry.is_valid:
            notes.append("repaired_geometry")
        if not slide_box.contains(geom):
            geom = make_areal(shapely.intersection(geom, slide_box))
            if geom is None:
                raise AnnotationError(
                    f"{prefix}region {name!r} lies outside the slide ({width} x {height} px); "
                    "check that the annotations belong to this slide and use level-0 pixels"
                )
            notes.append("clipped_to_slide")
        if cut is not None and shapely.intersects(geom, cut):
            geom = make_areal(shapely.difference(geom, cut))
            if geom is None:
                raise AnnotationError(
                    f"{prefix}region {name!r} lies entirely inside excluded areas; remove it or the exclusion"
                )
            notes.append("exclusions_cut")
        geoms.append(geom)
        flags.append(list(dict.fromkeys(notes)))
    if len(geoms) > 1:
        left, right = shapely.STRtree(geoms).query(geoms, predicate="intersects")
        for i, j in zip(left.tolist(), right.tolist()):
            if i != j and shapely.intersection(geoms[i], geoms[j]).area > 0:
                flags[i].append(f"overlaps:{names[j]}")
    return tuple(
        Region(name, geom, source, ann.classification, tuple(_sorted_flags(f)))
        for ann, name, geom, f in zip(kept, names, geoms, flags)
    )


def region_membership(regions: Sequence[Region], l0_x: np.ndarray, l0_y: np.ndarray) -> np.ndarray:
    """Which cell centroids lie inside which region.

    Parameters
    ----------
    regions : sequence of Region
    l0_x, l0_y : array_like
        Centroids in level-0 pixels, same shape (flattened). NaN is outside
        every region.

    Returns
    -------
    ndarray of bool, shape (n_regions, n_cells)
        ``True`` where the centroid is in the region's interior
        (``shapely.contains_xy``; points on the outline are outside). A cell
        in two overlapping regions is True in both rows.

    Notes
    -----
    Each region's geometry is prepared in place (``shapely.prepare``, a cache
    invisible to comparisons) and only the centroids inside its bounding box
    are tested.
    """
    x = np.asarray(l0_x, dtype=np.float64).ravel()
    y = np.asarray(l0_y, dtype=np.float64).ravel()
    if x.shape != y.shape:
        raise ValueError(f"l0_x and l0_y must have the same length, not {x.size} and {y.size}")
    out = np.zeros((len(regions), x.size), dtype=bool)
    for i, region in enumerate(regions):
        geom = region.geometry
        x0, y0, x1, y1 = geom.bounds
        candidates = np.flatnonzero((x > x0) & (x < x1) & (y > y0) & (y < y1))
        if candidates.size:
            shapely.prepare(geom)
            out[i, candidates] = shapely.contains_xy(geom, x[candidates], y[candidates])
    return out


def _unique_names(names: Sequence[str]) -> list[str]:
    """Names made unique: every repeated name gets ``-1``, ``-2``, ... in order, skipping names taken."""
    counts: dict[str, int] = {}
    for n in names:
        counts[n] = counts.get(n, 0) + 1
    taken = set(names)
    seen: dict[str, int] = {}
    out = []
    for n in names:
        if counts[n] == 1:
            out.append(n)
            continue
        k = seen.get(n, 0)
        while True:
            k += 1
            candidate = f"{n}-{k}"
            if candidate not in taken:
                break
        seen[n] = k
        taken.add(candidate)
        out.append(candidate)
    return out


def _sorted_flags(flags: list[str]) -> list[str]:
    """Flags in a fixed order: notes first as found, then ``overlaps:`` sorted."""
    notes = [f for f in flags if not f.startswith("overlaps:")]
    return notes + sorted({f for f in flags if f.startswith("overlaps:")})


def regions_mask(regions: Sequence[Region], shape: tuple[int, int], downsample: float) -> np.ndarray:
    """Union of region outlines drawn on a mask grid (``downsample`` level-0 px per pixel), borders included."""
    import cv2

    out = np.zeros(shape, np.uint8)
    for region in regions:
        for poly in getattr(region.geometry, "geoms", [region.geometry]):
            if poly.is_empty:
                continue
            rings = [np.asarray(poly.exterior.coords) / downsample] + [np.asarray(r.coords) / downsample
                                                                      for r in poly.interiors]
            pts = [np.round(r - 0.5).astype(np.int32) for r in rings]
            cv2.fillPoly(out, pts[:1], 1)
            cv2.polylines(out, pts[:1], True, 1)  # keep thin regions that fall between pixel centres
            for hole in pts[1:]:
                cv2.fillPoly(out, [hole], 0)
    return out.astype(bool)
