"""Named synthetic slides: :data:`PRESETS` and :func:`preset` (pure)."""

from __future__ import annotations

from dataclasses import replace

from ihc_score.synthetic.artefacts import AirBubble, BlurPatch, Fold, PenStroke
from ihc_score.synthetic.optics import DEFAULT_DYES, SCANNERS, shift_dyes
from ihc_score.synthetic.spec import NecrosisRegion, SynthSpec, TumourRegion

__all__ = ["PRESETS", "preset"]


PRESETS: dict[str, dict] = {
    "default": {},
    "shifted-stains": {"dyes": shift_dyes(DEFAULT_DYES, -10.0),
                       "scanner": replace(SCANNERS["reference"], name="yellow-glass", glass=(240.0, 235.0, 215.0))},
    "negative": {"regions": (TumourRegion(class_proportions=(0.75, 0.2, 0.05, 0.0)),)},
    "strong": {"regions": (TumourRegion(class_proportions=(0.12, 0.25, 0.33, 0.30)),)},
    "near-cutoff": {
        "width": 6000, "height": 4000, "tissue_fraction": 0.5, "tissue_pieces": 1,
        "regions": (
            TumourRegion(center=(0.28, 0.5), radii=(0.19, 0.3), angle_deg=10.0,
                         class_proportions=(0.46, 0.25, 0.20, 0.09), name="met-below"),
            TumourRegion(center=(0.72, 0.5), radii=(0.19, 0.3), angle_deg=-15.0,
                         class_proportions=(0.40, 0.27, 0.18, 0.15), name="met-above"),
        ),
    },
    "multi-met": {
        "width": 8000, "height": 6000, "host_tissue": "brain", "stroma_density_per_mm2": 600.0,
        "tissue_fraction": 0.7, "tissue_pieces": 1,
        "regions": (
            TumourRegion(center=(0.27, 0.42), radii=(0.17, 0.25), angle_deg=15.0,
                         class_proportions=(0.10, 0.20, 0.40, 0.30), name="met-positive"),
            TumourRegion(center=(0.73, 0.60), radii=(0.15, 0.22), angle_deg=-20.0,
                         class_proportions=(0.80, 0.15, 0.05, 0.0), name="met-negative"),
        ),
        "necroses": (NecrosisRegion(center=(0.30, 0.32), radii=(0.08, 0.10), angle_deg=30.0, name="necrosis-1"),),
    },
    "artefacts": {
        "width": 6000, "height": 4500, "host_tissue": "brain", "stroma_density_per_mm2": 600.0,
        "tissue_fraction": 0.7, "tissue_pieces": 1,
        "regions": (
            TumourRegion(center=(0.36, 0.45), radii=(0.2, 0.28), angle_deg=15.0,
                         class_proportions=(0.10, 0.20, 0.40, 0.30), name="met-positive"),
            TumourRegion(center=(0.74, 0.58), radii=(0.15, 0.22), angle_deg=-20.0,
                         class_proportions=(0.60, 0.25, 0.10, 0.05), name="met-negative"),
        ),
        "artefacts": (
            Fold(center=(0.36, 0.48), length=0.38, width=0.05, angle_deg=35.0, name="fold-1"),
            AirBubble(center=(0.44, 0.25), radius=0.055, name="bubble-1"),
            BlurPatch(center=(0.74, 0.60), radii=(0.09, 0.12), angle_deg=20.0, sigma_um=2.0, name="blur-1"),
            PenStroke(points=((0.20, 0.74), (0.30, 0.82), (0.42, 0.86)), width_um=100.0, colour="blue",
                      name="ink-blue"),
            PenStroke(points=((0.55, 0.90), (0.70, 0.97)), width_um=120.0, colour="green", name="ink-green"),
            PenStroke(points=((0.90, 0.44), (0.99, 0.54)), width_um=120.0, colour="black", name="ink-black"),
        ),
    },
    "melanoma": {
        "width": 6000, "height": 4500, "host_tissue": "brain", "stroma_density_per_mm2": 600.0,
        "tissue_fraction": 0.7, "tissue_pieces": 1, "tumour_density_per_mm2": 3500.0,
        "hemosiderin_density_per_mm2": 300.0,
        "regions": (
            TumourRegion(center=(0.30, 0.45), radii=(0.19, 0.27), angle_deg=10.0,
                         class_proportions=(0.55, 0.30, 0.10, 0.05), name="met-melanotic", pigmented_fraction=0.3),
            TumourRegion(center=(0.75, 0.55), radii=(0.15, 0.22), angle_deg=-20.0,
                         class_proportions=(0.12, 0.25, 0.33, 0.30), name="met-amelanotic"),
        ),
    },
    "infiltrated": {
        "width": 6000, "height": 4500, "host_tissue": "brain", "stroma_density_per_mm2": 600.0,
        "tissue_fraction": 0.7, "tissue_pieces": 1, "infiltrate_fraction": 0.3,
        "regions": (
            TumourRegion(center=(0.30, 0.45), radii=(0.19, 0.27), angle_deg=10.0,
                         class_proportions=(0.10, 0.20, 0.40, 0.30), name="met-positive"),
            TumourRegion(center=(0.74, 0.57), radii=(0.15, 0.22), angle_deg=-20.0,
                         class_proportions=(0.85, 0.12, 0.03, 0.0), name="met-negative"),
        ),
    },
}


def preset(name: str, **overrides: object) -> SynthSpec:
    """A named spec, with keyword overrides of single fields.

    Parameters
    ----------
    name : str
        ``default`` (class proportions 0.4/0.3/0.2/0.1, H-score 100),
        ``shifted-stains`` (as default, hematoxylin and DAB hue-shifted by
        -10 degrees with :func:`~ihc_score.synthetic.optics.shift_dyes`, the
        reference scanner with yellowish glass 240,235,215),
        ``negative`` (0.75/0.2/0.05/0, H-score 30) or ``strong``
        (0.12/0.25/0.33/0.30, H-score 181), or ``near-cutoff`` (6000 x
        4000 px, two metastases either side of the H-score cut-off 100:
        ``met-below`` 0.46/0.25/0.20/0.09, H-score 92, and ``met-above``
        0.40/0.27/0.18/0.15, H-score 108), or ``multi-met`` (8000 x 6000
        px of brain parenchyma with two metastases: ``met-positive``
        0.10/0.20/0.40/0.30, H-score 190, with the necrosis ``necrosis-1``
        in its upper part, and ``met-negative`` 0.80/0.15/0.05/0, H-score
        25; glial nuclei 600/mm^2), or ``melanoma`` (6000 x 4500 px of
        brain parenchyma: ``met-melanotic`` 0.55/0.30/0.10/0.05, H-score 65
        over its unpigmented cells, S100A9-negative, with 30 % of its
        tumour cells laden with melanin granules that push the H-score over
        100 when counted as DAB; ``met-amelanotic`` 0.12/0.25/0.33/0.30,
        H-score 181, no pigment; hemosiderin-laden macrophages, 300/mm^2,
        in the parenchyma 15-150 um around both).
        ``artefacts`` (6000 x 4500 px of brain parenchyma, ``met-positive``
        0.10/0.20/0.40/0.30 and ``met-negative`` 0.60/0.25/0.10/0.05, with
        the fold ``fold-1`` (95 x 570 um) across ``met-positive``, the air
        bubble ``bubble-1`` (r = 83 um) over its upper part, the
        out-of-focus patch ``blur-1`` (sigma 2 um) in ``met-negative``, a
        blue pen stroke in the tissue and a green and a black one at its
        edge; the truth lists each artefact and the counts of the cells
        still scored), or ``infiltrated`` (6000 x 4500 px of brain
        parenchyma: ``met-positive`` 0.10/0.20/0.40/0.30, H-score 190, and
        ``met-negative`` 0.85/0.12/0.03/0, H-score 18, in each 30 % of the
        cell positions taken by infiltrating immune cells, lymphocytes /
        neutrophils / macrophages 0.5/0.3/0.2 (neutrophils mostly 2+/3+);
        the regions' totals count tumour cells only, their ``infiltrate``
        the immune cells).
    **overrides
        Fields of :class:`SynthSpec` to replace (``width``, ``seed``, ...).

    Raises
    ------
    ValueError
        Unknown preset name or invalid field.
    """
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    return SynthSpec(**{**PRESETS[name], **overrides})
