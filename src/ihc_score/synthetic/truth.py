"""The truth of a synthetic slide: per-cell records, per-region totals, outlines (pure).

:func:`build_truth` merges the per-cell measurements of the rendered blocks
with the layout into the truth dict written beside a slide; :func:`dump`
formats it as JSON with one line per cell. Every cell row names its cell's
``type`` (tumour, lymphocyte, neutrophil, macrophage or other); totals are
over tumour cells, a metastasis's infiltrating cells have totals of their
own. Coordinates are level-0 px,
areas um^2, OD base-10.
"""

from __future__ import annotations

import json
from dataclasses import asdict

import numpy as np
import shapely

from ihc_score.synthetic import artefacts as art
from ihc_score.synthetic import infiltrates as inf
from ihc_score.synthetic import outlines as ol
from ihc_score.synthetic import pigments as pg
from ihc_score.synthetic import tissue_types as tt
from ihc_score.synthetic.layout import SlideLayout
from ihc_score.synthetic.spec import (
    CLASS_THRESHOLDS,
    GENERATOR_VERSION,
    INFILTRATE_FIELDS,
    INFILTRATE_TYPES,
    PIGMENT_FIELDS,
    SynthSpec,
)

__all__ = ["build_truth", "dump", "totals"]

#: Kinds of cell written into the truth (debris is drawn but never counted).
_COUNTED = (tt.KIND_TUMOUR, tt.KIND_STROMA, tt.KIND_GLIA, tt.KIND_NEURON, tt.KIND_MACROPHAGE, tt.KIND_LYMPHOCYTE,
            tt.KIND_NEUTROPHIL)


def totals(classes: list[int]) -> dict:
    """Cell counts per class, H-score and percent positive of a list of classes (None when empty)."""
    counts = [sum(1 for c in classes if c == k) for k in range(4)]
    n = sum(counts)
    return {
        "n_cells": n,
        "n_class": {"0": counts[0], "1+": counts[1], "2+": counts[2], "3+": counts[3]},
        "h_score": (counts[1] + 2 * counts[2] + 3 * counts[3]) / n * 100 if n else None,
        "percent_positive": (counts[1] + counts[2] + counts[3]) / n * 100 if n else None,
    }


def _merge(stats: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    merged = {k: np.concatenate([s[k] for s in stats]) for k in stats[0]} if stats else {}
    order = np.argsort(merged.get("index", np.empty(0, np.int64)), kind="stable")
    return {k: v[order] for k, v in merged.items()}


def _cell_row(layout: SlideLayout, merged: dict[str, np.ndarray], i: int, j: int, member: int,
              scored: bool | None) -> dict:
    """Truth row of one counted cell: level-0 px centroid, areas um^2, mean DAB OD, measured class.

    Parameters
    ----------
    layout : SlideLayout
    merged : dict
        Merged per-cell measurements (see :func:`_merge`).
    i : int
        Index of the cell in the layout.
    j : int
        Index of the cell in ``merged``.
    member : int
        Index of the region whose outline holds the centroid (-1 = none); used for host cells.
    scored : bool or None
        Whether the centroid is under no artefact (None on a slide without artefacts).

    Raises
    ------
    RuntimeError
        When a tumour or infiltrating cell's measured class differs from its designed class.
    """
    spec = layout.spec
    cells = layout.cells
    um2 = spec.mpp_um**2
    tumour = bool(cells.kind[i] == tt.KIND_TUMOUR)
    designed = tumour or bool(cells.region[i] >= 0)  # tumour and infiltrating cells belong to their region
    klass = int(np.searchsorted(CLASS_THRESHOLDS, merged["dab_cell_mean"][j], side="right"))
    if designed and klass != int(cells.klass[i]):
        raise RuntimeError(
            f"cell {i} designed as class {int(cells.klass[i])} measures {merged['dab_cell_mean'][j]:.3f}")
    row = {
        "id": i,
        "l0_x": round(float(merged["l0_x"][j]), 2),
        "l0_y": round(float(merged["l0_y"][j]), 2),
        "nucleus_area_um2": round(float(merged["nucleus_px"][j]) * um2, 2),
        "cell_area_um2": round(float(merged["cell_px"][j]) * um2, 2),
        "class": klass,
        "dab_cell_mean": round(float(merged["dab_cell_mean"][j]), 4),
        "dab_nucleus_mean": round(float(merged["dab_nucleus_mean"][j]), 4),
        "dab_cytoplasm_mean": round(float(merged["dab_cytoplasm_mean"][j]), 4),
        "tumour": tumour,
        "type": inf.cell_type(cells.kind[i]),
    }
    if spec.artefacts:  # scored: the centre is under no artefact
        row["scored"] = scored
    if spec.has_pigment:
        row["pigmented"] = bool(cells.pigment[i] != tt.PIGMENT_NONE)
        row["pigment_area_um2"] = round(float(merged["pigment_px"][j]) * um2, 2)
        row["class_pigment_as_dab"] = int(
            np.searchsorted(CLASS_THRESHOLDS, merged["dab_pigment_cell_mean"][j], side="right"))
    if tumour:
        row["region"] = spec.regions[int(cells.region[i])].name
    else:
        row["kind"] = tt.KIND_NAMES[int(cells.kind[i])]
        k = int(cells.region[i]) if designed else member  # an infiltrating cell's own region, a host cell's outline
        row["region"] = spec.regions[k].name if k >= 0 else None
    return row


def _cell_rows(layout: SlideLayout, merged: dict[str, np.ndarray]) -> dict[str, list[dict]]:
    """Truth rows of the counted cells with a nucleus, in ``merged`` order.

    ``{"tumour": [...], "host": [...], "infiltrate": [...]}``: tumour
    cells, cells of the host tissue, cells infiltrating a metastasis.
    """
    spec = layout.spec
    cells = layout.cells
    idx = merged.get("index", np.empty(0, np.int64))
    present = np.flatnonzero(merged.get("nucleus_px", np.empty(0)) > 0)
    present = present[np.isin(cells.kind[idx[present]], _COUNTED)]
    cx, cy = (merged["l0_x"][present], merged["l0_y"][present]) if present.size else (np.empty(0), np.empty(0))
    member = np.full(present.size, -1, np.int64)
    for k in range(len(layout.outlines) - 1, -1, -1):
        member[ol.inside(layout.outlines[k], cx, cy)] = k
    free = ~shapely.contains_xy(_artefact_union(layout), cx, cy) if spec.artefacts else None
    rows: dict[str, list[dict]] = {"tumour": [], "host": [], "infiltrate": []}
    infiltrate = inf.is_infiltrate(cells)
    for n, j in enumerate(present):
        i = int(idx[j])
        row = _cell_row(layout, merged, i, j, int(member[n]), None if free is None else bool(free[n]))
        rows["tumour" if row["tumour"] else "infiltrate" if infiltrate[i] else "host"].append(row)
    return rows


def _regions_truth(layout: SlideLayout, rows: dict[str, list[dict]]) -> list[dict]:
    """Each metastasis's outline (level-0 px), area (um^2) and totals of its tumour and host cells."""
    spec = layout.spec
    um2 = spec.mpp_um**2
    regions = []
    for k, reg in enumerate(spec.regions):
        g = layout.outlines[k] if k < len(layout.outlines) else ol.Polygon()
        regions.append({
            "name": reg.name,
            "class_proportions": list(reg.class_proportions),
            "outline": ol.geometry_dict(g),
            "area_um2": round(float(g.area) * um2, 2),
            **totals([c["class"] for c in rows["tumour"] if c["region"] == reg.name]),
            "n_host_cells": sum(1 for c in rows["host"] if c["region"] == reg.name),
            **({"scored": totals([c["class"] for c in rows["tumour"] if c["region"] == reg.name and c["scored"]])}
               if spec.artefacts else {}),
            **(_region_pigment([c for c in rows["tumour"] if c["region"] == reg.name]) if spec.has_pigment else {}),
            **({"infiltrate": _region_infiltrate([c for c in rows["infiltrate"] if c["region"] == reg.name])}
               if spec.has_infiltrates else {}),
        })
    return regions


def _region_infiltrate(rows: list[dict]) -> dict:
    """Counts of a metastasis's infiltrating cells of each type, and their own totals (H-score over them)."""
    return {**{f"n_{t}": sum(1 for c in rows if c["type"] == t) for t in INFILTRATE_TYPES},
            **totals([c["class"] for c in rows])}


def build_truth(layout: SlideLayout, stats: list[dict[str, np.ndarray]]) -> dict:
    """The truth dict of a rendered slide.

    Parameters
    ----------
    layout : SlideLayout
    stats : list of dict
        ``RenderedRegion.stats`` of blocks that tile the slide.

    Returns
    -------
    dict
        See :func:`ihc_score.synthetic.make_slide`.

    Raises
    ------
    RuntimeError
        When a tumour cell's measured class differs from its designed class
        (a generator defect).
    """
    spec = layout.spec
    rows = _cell_rows(layout, _merge(stats))
    regions = _regions_truth(layout, rows)
    um2 = spec.mpp_um**2
    necroses = [{"name": nec.name, "outline": ol.geometry_dict(g), "area_um2": round(float(g.area) * um2, 2),
                 "dab_od": spec.necrosis_dab_od} for nec, g in zip(spec.necroses, layout.necrosis_outlines)]
    dyes = spec.dyes
    return {
        "generator": "ihc_score.synthetic",
        "generator_version": GENERATOR_VERSION,
        "seed": spec.seed,
        "width": spec.width,
        "height": spec.height,
        "mpp_um": spec.mpp_um,
        "background": list(spec.scanner.glass),
        "dyes": {"hematoxylin": list(dyes.hematoxylin), "dab": list(dyes.dab), "residual": list(dyes.residual)},
        "scanner": spec.scanner.name,
        "compartment": "cell",
        "cell": "drawn body: nucleus + its drawn cytoplasm",
        "staining": spec.staining,
        "thresholds": list(CLASS_THRESHOLDS),
        "class_bands": [list(b) for b in spec.class_bands],
        "host_tissue": spec.host_tissue,
        "totals": totals([c["class"] for c in rows["tumour"]]),
        "regions": regions,
        "necroses": necroses,
        "spec": spec_dict(spec),
        "cells": rows["tumour"],
        "stromal_cells": sorted(rows["host"] + rows["infiltrate"], key=lambda c: c["id"]),
        **(_artefact_truth(layout, rows) if spec.artefacts else {}),
        **({"pigment": _slide_pigment(rows)} if spec.has_pigment else {}),
    }


def _region_pigment(rows: list[dict]) -> dict:
    """Pigment truth of a metastasis: what the tool should report, and what counting pigment as DAB gives."""
    return {
        "n_pigmented": sum(1 for c in rows if c["pigmented"]),
        "pigment_area_mm2": round(sum(c["pigment_area_um2"] for c in rows) * 1e-6, 6),
        "unpigmented": totals([c["class"] for c in rows if not c["pigmented"]]),
        "pigment_as_dab": totals([c["class_pigment_as_dab"] for c in rows]),
    }


def _slide_pigment(rows: dict[str, list[dict]]) -> dict:
    """Slide-wide pigment truth: OD vectors, pigmented cells and areas (mm^2) of melanin and hemosiderin."""
    mel = [c for c in rows["tumour"] if c["pigmented"]]
    hem = [c for c in rows["host"] if c["pigmented"]]
    return {
        "melanin_od_vector": list(pg.MELANIN_OD),
        "hemosiderin_od_vector": list(pg.HEMOSIDERIN_OD),
        "n_melanin_cells": len(mel),
        "n_hemosiderin_cells": len(hem),
        "melanin_area_mm2": round(sum(c["pigment_area_um2"] for c in mel) * 1e-6, 6),
        "hemosiderin_area_mm2": round(sum(c["pigment_area_um2"] for c in hem) * 1e-6, 6),
    }


def _artefact_union(layout: SlideLayout) -> shapely.Geometry:
    """Union of the artefacts' outlines (level-0 px)."""
    spec = layout.spec
    return shapely.union_all([art.outline(a, (spec.width, spec.height), spec.mpp_um) for a in spec.artefacts])


def _artefact_truth(layout: SlideLayout, rows: dict[str, list[dict]]) -> dict:
    """Each artefact's outline and area on tissue (mm^2), and the totals of the tumour cells still scored."""
    spec = layout.spec
    tissue = ol.field_outline(layout.tissue_um, layout.field_step_px, size=(spec.width, spec.height))
    mm2 = (spec.mpp_um / 1000.0) ** 2
    items = []
    for a in spec.artefacts:
        g = ol.clean(art.outline(a, (spec.width, spec.height), spec.mpp_um))
        items.append({"name": a.name, "kind": a.kind, "outline": ol.geometry_dict(g),
                      "area_mm2": round(float(shapely.intersection(g, tissue).area) * mm2, 6),
                      "area_total_mm2": round(float(g.area) * mm2, 6)})
    return {"artefacts": items, "scored_totals": totals([c["class"] for c in rows["tumour"] if c["scored"]])}


def spec_dict(spec: SynthSpec) -> dict:
    """The spec as plain JSON values (pigment and infiltrate fields only when pigment / infiltrates are drawn)."""
    d = asdict(spec)
    if spec.artefacts:
        d["artefacts"] = [{"kind": a.kind, **asdict(a)} for a in spec.artefacts]
    else:  # slides without artefacts keep the truth they had before artefacts existed
        d.pop("artefacts")
    if not spec.has_pigment:
        for key in PIGMENT_FIELDS:
            d.pop(key)
        for region in d["regions"]:
            region.pop("pigmented_fraction")
    if not spec.has_infiltrates:
        for key in INFILTRATE_FIELDS:
            d.pop(key)
    return json.loads(json.dumps(d))


def dump(truth: dict) -> str:
    """The truth as JSON text: header indented, one line per cell."""
    head = {k: v for k, v in truth.items() if k not in ("cells", "stromal_cells")}
    compact: dict[str, str] = {}
    for key in [k for k in ("regions", "necroses", "artefacts") if k in head]:
        items = []
        for item in head.get(key, []):
            token = f"@outline{len(compact)}@"
            compact[f'"{token}"'] = json.dumps(item["outline"], separators=(",", ":"))
            items.append({**item, "outline": token})
        head[key] = items
    text = json.dumps(head, indent=1)[:-2]
    for token, value in compact.items():
        text = text.replace(token, value, 1)
    for key in ("cells", "stromal_cells"):
        lines = ",\n  ".join(json.dumps(c, separators=(",", ":")) for c in truth[key])
        text += f',\n "{key}": [\n  {lines}\n ]' if lines else f',\n "{key}": []'
    return text + "\n}\n"
