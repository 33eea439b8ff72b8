"""Plan a slide before scoring its tiles: tissue, regions, stains, tile grid.

:func:`plan_slide` opens the slide once in the process that plans it, finds
its tissue at low resolution, reads its annotation file, estimates its stain
vectors from tissue at analysis resolution, and lays the tile grid over the
tissue to be scored. The plan is small and picklable.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ihc_score.errors import NotBrightfieldError
from ihc_score.model import Model
from ihc_score.regions import Annotation, Region, build_regions, find_annotation_file, read_annotations, regions_mask
from ihc_score.run.slide_stains import slide_stains
from ihc_score.run.tiles import TileGrid, tile_grid
from ihc_score.slide import Slide, TileReader, open_slide
from ihc_score.stain import StainVectors
from ihc_score.tissue import (
    ExcludedAreas,
    ThumbnailArtefacts,
    TissueMask,
    detect_tissue,
    find_thumbnail_artefacts,
    slide_sharpness,
)

__all__ = ["REGION_MODES", "SlidePlan", "plan_slide", "as_regions"]

#: How a slide without an annotation file is divided into scored regions:
#: ``auto`` finds the metastases from the cells, ``tissue`` scores all tissue
#: as one region (for fields that are all tumour, or a quick overview).
REGION_MODES = ("auto", "tissue")

#: Tissue tiles sampled to estimate the slide's stain vectors, and the side
#: (analysis px) of the patch read from the centre of each: at analysis
#: resolution pixels are pure enough for Macenko's extremes, and 8 patches of
#: 512 px give the ~2 Mpx the estimator wants.
_STAIN_SAMPLE_TILES = 8
_STAIN_SAMPLE_PX = 512


@dataclass(frozen=True)
class SlidePlan:
    """What is known about a slide before its tiles are scored.

    Attributes
    ----------
    path : str
        Absolute path of the slide file.
    vendor : str
        Reader's name for the format.
    mpp_um, mpp_source : float, str
        Level-0 pixel size, resolved once here, and where it came from
        (``slide`` / ``option``).
    l0_size : tuple of 2 int
        Level-0 ``(width, height)``.
    analysis_mpp_um : float
        Pixel size the cells are analysed at.
    grid : TileGrid
        Tiles over tissue.
    tissue : ndarray of bool
        Mask of what is scored at ``tissue_downsample`` level-0 px per pixel:
        tissue, within the annotated regions when there are any, without
        excluded areas.
    stains : StainVectors
        Vectors and background used for this slide.
    tissue_area_mm2 : float
    flags : tuple of str
        QC flags (tissue and stain estimation).
    regions : tuple of Region or None
        Regions drawn in the slide's annotation file, excluded areas cut out;
        ``None`` when there is no file (regions are then found from the cells,
        or the whole tissue is scored, by ``region_mode``).
    region_mode : str
        One of :data:`REGION_MODES`.
    annotation_file : str
        Name of the annotation file used, or empty.
    tissue_all : ndarray of bool or None
        The whole tissue mask, for pictures (``tissue`` when None).
    exclusions : tuple of Annotation
        Excluded shapes of the annotation file (necrosis, artefacts): no cell
        in them counts. When the file holds only these, regions are found as
        without a file and the exclusions are cut out of them.
    excluded : ExcludedAreas
        Pen ink, fold and air-bubble areas found on the thumbnail (left out
        of ``tissue``).
    artefacts : ndarray of uint8 or None
        Their kind per tissue-mask pixel (:data:`ihc_score.tissue.excluded.ARTEFACT_KINDS`),
        ``None`` when none was found.
    mpp_option_um : float or None
        The pixel size the user gave (``--mpp``), with which workers open the
        slide again; ``mpp_um`` is what the slide was read at.
    sharpness : float or None
        Median focus sharpness of the stain sample's patches
        (:func:`ihc_score.tissue.slide_sharpness`); None when the focus check
        is off or too little tissue structure was sampled.
    scanner_model : str
        The scanner model the file names, or empty.
    """

    path: str
    vendor: str
    mpp_um: float
    mpp_source: str
    l0_size: tuple[int, int]
    analysis_mpp_um: float
    grid: TileGrid
    tissue: np.ndarray
    tissue_downsample: float
    stains: StainVectors
    tissue_area_mm2: float
    flags: tuple[str, ...]
    regions: tuple[Region, ...] | None = None
    region_mode: str = "auto"
    annotation_file: str = ""
    exclusions: tuple[Annotation, ...] = ()
    tissue_all: np.ndarray | None = None
    excluded: ExcludedAreas = ExcludedAreas()
    artefacts: np.ndarray | None = None
    mpp_option_um: float | None = None
    sharpness: float | None = None
    scanner_model: str = ""


def plan_slide(
    path: str | Path,
    model: Model,
    *,
    mpp_option_um: float | None = None,
    annotations_dir: str | Path | None = None,
    region_mode: str = "auto",
    roi_margin_um: float = 0.0,
) -> SlidePlan:
    """Open a slide, find its tissue and regions, estimate its stains and lay its tiles.

    Parameters
    ----------
    path : str or Path
    model : Model
    mpp_option_um : float, optional
        Level-0 pixel size (um/px) used when the slide stores none.
    annotations_dir : str or Path, optional
        Folder searched for the slide's annotation file, besides the slide's own folder.
    region_mode : {"auto", "tissue"}
        Regions of a slide without annotation file.
    roi_margin_um : float
        Cells are also detected in a band this wide (um) around annotated
        regions, and kept unscored, so ``ihc-score roi-stability`` can move
        the outlines outwards without detecting again.

    Raises
    ------
    IhcScoreError
        The slide cannot be opened, has no pixel size, is not brightfield,
        is not stained with DAB (``NotDabStainError``: H&E), or its
        annotation file is unusable.
    """
    return _plan_and_sample(path, model, mpp_option_um, annotations_dir, region_mode, roi_margin_um)[0]


def _plan_and_sample(
    path: str | Path, model: Model, mpp_option_um: float | None, annotations_dir: str | Path | None, region_mode: str,
    roi_margin_um: float = 0.0,
) -> tuple[SlidePlan, np.ndarray]:
    """:func:`plan_slide`, and the (N, 3) uint8 tissue pixels its stain estimate read (for a calibration)."""
    if region_mode not in REGION_MODES:
        raise ValueError(f"region_mode must be one of {REGION_MODES}, got {region_mode!r}")
    path = Path(path).resolve()
    ann_file = find_annotation_file(path, Path(annotations_dir) if annotations_dir else None)
    with open_slide(path, mpp_option_um=mpp_option_um) as slide:
        thumb, thumb_ds = slide.thumbnail(_tissue_mpp(slide, model.tissue.mpp_um))
        tissue = detect_tissue(thumb, downsample=thumb_ds, mpp_um=slide.mpp, params=model.tissue)
        if "not_brightfield" in tissue.flags:
            raise NotBrightfieldError(
                f"{path.name}: not a brightfield slide (dark background, fluorescence?); no H-score is given"
            )
        found = find_thumbnail_artefacts(thumb, tissue, mpp_um=slide.mpp, params=model.artefacts)
        regions, exclusions, scored, kept = _annotated(ann_file, tissue, found, slide.dimensions,
                                                       roi_margin_um / slide.mpp)
        analysis_mpp = max(model.analysis.mpp_um, slide.mpp)
        grid = _grid(slide.dimensions, analysis_mpp / slide.mpp, analysis_mpp, model, kept, tissue.downsample)
        # the stains and focus are judged on the regions alone, so a margin kept for roi-stability changes no score
        sampled = grid if kept is scored else _grid(slide.dimensions, analysis_mpp / slide.mpp, analysis_mpp, model,
                                                    scored, tissue.downsample)
        patches = _sample_patches(path, mpp_option_um, sampled, scored, tissue.downsample)
        pixels = tissue_pixels(patches)
        stains = slide_stains(path.name, pixels, tissue, model, bool(grid.tiles))
        sharpness = (slide_sharpness([p for p, _ in patches], background=tissue.background, mpp_um=analysis_mpp,
                                     params=model.artefacts) if model.artefacts.blur else None)
        soft = ("soft_focus",) if sharpness is not None and sharpness < model.artefacts.soft_focus_sharpness else ()
        scanner = str(slide.metadata.get("scanner_model") or "")
        flags = tuple(tissue.flags) + tuple(found.flags) + tuple(stains.flags) + soft + _scanner_flags(scanner, model)
        plan = SlidePlan(
            path=str(path),
            vendor=slide.vendor,
            mpp_um=slide.mpp,
            mpp_source=slide.mpp_source,
            l0_size=slide.dimensions,
            analysis_mpp_um=analysis_mpp,
            grid=grid,
            tissue=kept,
            tissue_downsample=tissue.downsample,
            stains=stains,
            tissue_area_mm2=tissue.area_mm2,
            flags=flags,
            regions=regions,
            region_mode=region_mode,
            annotation_file=ann_file.name if ann_file else "",
            exclusions=exclusions,
            tissue_all=tissue.mask,
            excluded=ExcludedAreas(
                ink_mm2=tissue.ink_area_mm2, fold_mm2=found.fold_area_mm2, bubble_mm2=found.bubble_area_mm2
            ),
            artefacts=_artefact_labels(tissue.ink, found.fold, found.bubble),
            mpp_option_um=mpp_option_um,
            sharpness=sharpness,
            scanner_model=scanner,
        )
        return plan, pixels


def _annotated(
    ann_file: Path | None, tissue: TissueMask, found: ThumbnailArtefacts, l0_size: tuple[int, int],
    l0_margin: float = 0.0,
) -> tuple[tuple[Region, ...] | None, tuple[Annotation, ...], np.ndarray, np.ndarray]:
    """The annotation file's regions (None without any) and exclusions, the tissue mask to score, and to keep.

    The mask to score is the tissue without folds and bubbles, kept to the
    regions when the file draws some, else cut by its exclusions. The mask
    whose cells are kept is the same object, or with ``l0_margin`` (level-0
    px) the regions grown by it: those cells are detected but in no region.
    """
    regions: tuple[Region, ...] | None = None
    exclusions: tuple[Annotation, ...] = ()
    scored = tissue.mask & ~found.fold & ~found.bubble
    if ann_file is not None:
        shapes = read_annotations(ann_file)
        exclusions = tuple(a for a in shapes if a.excluded)
        regions = build_regions(shapes, slide_size=l0_size, origin=ann_file.name) or None
        if regions is not None:
            usable = scored
            scored = usable & regions_mask(regions, tissue.mask.shape, tissue.downsample)
            if l0_margin > 0:
                grown = tuple(Region(r.name, r.geometry.buffer(l0_margin), r.source) for r in regions)
                return regions, exclusions, scored, usable & regions_mask(grown, tissue.mask.shape, tissue.downsample)
        elif exclusions:
            scored = scored & ~regions_mask(as_regions(exclusions), tissue.mask.shape, tissue.downsample)
    return regions, exclusions, scored, scored


def _grid(
    l0_size: tuple[int, int], downsample: float, analysis_mpp: float, model: Model, scored: np.ndarray, tissue_ds: float
) -> TileGrid:
    """The tiles over the tissue to score, at ``analysis_mpp`` um/px (``downsample`` level-0 px per analysis px)."""
    # Even tile and margin sizes put every tile's origin on an even
    # analysis pixel, where detection's 2 x 2 blocks match the whole slide's.
    return tile_grid(
        l0_size,
        downsample=downsample,
        tile_px=2 * max(8, int(round(model.analysis.tile_um / analysis_mpp / 2.0))),
        margin_px=2 * int(math.ceil(model.analysis.margin_um / analysis_mpp / 2.0)),
        tissue=scored,
        tissue_downsample=tissue_ds,
    )


def _artefact_labels(ink: np.ndarray | None, fold: np.ndarray, bubble: np.ndarray) -> np.ndarray | None:
    """Artefact kind per mask pixel (1 ink, 2 fold, 3 air bubble; the later kind wins), or None without any."""
    if (ink is None or not ink.any()) and not fold.any() and not bubble.any():
        return None
    labels = np.zeros(fold.shape, np.uint8)
    for kind, mask in ((1, ink), (2, fold), (3, bubble)):
        if mask is not None:
            labels[mask] = kind
    return labels


def as_regions(shapes: tuple[Annotation, ...]) -> tuple[Region, ...]:
    """Excluded shapes as (repaired) regions, to draw them or test cells against them."""
    return tuple(Region(a.name, a.geometry.buffer(0), "annotation") for a in shapes)


#: Fewest pixels on the long side of the tissue mask: a camera field of a few
#: hundred um would otherwise give a mask of a few dozen pixels.
_MIN_MASK_PX = 1024


def _scanner_flags(scanner: str, model: Model) -> tuple[str, ...]:
    """``scanner_not_calibrated`` when the model was calibrated for named scanners and the slide names another or none.

    A model's ``stains.od_scale`` from ``calibrate-scanner`` holds for the
    scanner it was fitted on; a slide from any other scanner (the reference
    one included) is scored on the wrong intensity scale.
    """
    calibrated = {str(c.get("new_scanner") or "") for c in model.calibrations if c.get("kind") == "scanner"}
    calibrated.discard("")
    return ("scanner_not_calibrated",) if calibrated and scanner not in calibrated else ()


def _tissue_mpp(slide: Slide, mpp_um: float) -> float:
    """Pixel size of the tissue mask: the model's, or finer for a small image (never finer than level 0)."""
    long_um = max(slide.dimensions) * slide.mpp
    return max(slide.mpp, min(mpp_um, long_um / _MIN_MASK_PX))


def tissue_pixels(patches: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """(N, 3) uint8: the tissue pixels of sample patches (:func:`_sample_patches`)."""
    chunks = [rgb[inside] for rgb, inside in patches]
    return np.concatenate(chunks) if chunks else np.zeros((0, 3), np.uint8)


def _sample_patches(
    path: Path, mpp_option_um: float | None, grid: TileGrid, tissue: np.ndarray, tissue_ds: float
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Patches (RGB, tissue mask) from tiles spread evenly over the tissue, at analysis resolution.

    They give the stain estimate its pixels and the focus check the slide's
    own sharpness. A patch that cannot be decoded is left out (the tile
    scoring reports it).
    """
    tiles = grid.tiles
    pick = np.unique(np.linspace(0, len(tiles) - 1, min(_STAIN_SAMPLE_TILES, len(tiles))).round().astype(int))
    chunks = []
    reader = TileReader(str(path), mpp_option_um)
    try:
        for t in (tiles[i] for i in pick):
            x, y, w, h = t.a_core
            pw, ph = min(w, _STAIN_SAMPLE_PX), min(h, _STAIN_SAMPLE_PX)
            l0_xy, l0_size = grid.l0_rect((x + (w - pw) // 2, y + (h - ph) // 2, pw, ph))
            rgb = reader.read(l0_xy, l0_size, grid.downsample)
            if rgb is not None:
                chunks.append((rgb, _tissue_at(tissue, tissue_ds, rgb.shape[:2], l0_xy, grid.downsample)))
    finally:
        reader.close()
    return chunks


def _tissue_at(tissue: np.ndarray, tissue_ds: float, shape: tuple[int, int], l0_xy: tuple[int, int], ds: float) -> np.ndarray:
    """Tissue mask resampled (nearest) onto an image of ``shape`` read at ``l0_xy`` with downsample ``ds``."""
    h, w = shape
    my = ((l0_xy[1] + (np.arange(h) + 0.5) * ds) / tissue_ds).astype(np.int64)
    mx = ((l0_xy[0] + (np.arange(w) + 0.5) * ds) / tissue_ds).astype(np.int64)
    my = np.clip(my, 0, tissue.shape[0] - 1)
    mx = np.clip(mx, 0, tissue.shape[1] - 1)
    return tissue[my[:, None], mx[None, :]]
