"""What the light itself allows: each drawn cell's mean DAB OD as the scanner's optics pass it.

A lens blurs light, not OD (:mod:`ihc_score.synthetic.optics`), so a thin
dark structure next to a pale one (a membranous ring, dark granules in a
pale cytoplasm) reaches the sensor paler than it was drawn, and no scorer
that reads the pixels can recover the difference. This measures that loss
without any step of the scorer: the slide is rendered at level 0 by the
generator, deconvolved with the generator's own dye vectors (the exact
ones), and each cell's DAB is averaged over the pixels drawn as that cell
(the exact masks). Classes use the truth's own thresholds. The result is
the ceiling of any pixel-based scorer, not a target: the benchmarks still
score against the drawn truth.
"""

from __future__ import annotations

import cv2
import numpy as np

from ihc_score.stain import StainVectors, deconvolve
from ihc_score.synthetic import SynthSpec
from ihc_score.synthetic.layout import make_layout
from ihc_score.synthetic.render import render_region
from ihc_score.synthetic.truth import totals

_BLOCK_PX = 1024


def optical_h_scores(spec: SynthSpec, thresholds: tuple[float, float, float], analysis_mpp_um: float
                     ) -> tuple[float, float]:
    """H-score of every drawn cell graded on its mean DAB OD after the scanner, at level 0 and at the analysis pixel.

    At the analysis pixel size the level-0 RGB is first reduced by pixel
    area (as a slide reader, or a scanner's own lower-magnification level,
    averages light), and each reduced pixel counts for the level-0 pixels
    it covers.

    Parameters
    ----------
    spec : SynthSpec
        The slide, rendered block by block at level 0.
    thresholds : 3 floats
        DAB OD class limits of the truth (``truth["thresholds"]``).
    analysis_mpp_um : float
        Pixel size the scorer analyses at, a whole multiple of ``spec.mpp_um``.

    Returns
    -------
    (float, float)
        H-score at level 0 and at ``analysis_mpp_um``.
    """
    factor = int(round(analysis_mpp_um / spec.mpp_um))
    if factor < 1 or abs(factor * spec.mpp_um - analysis_mpp_um) > 1e-6 or _BLOCK_PX % factor:
        raise ValueError(f"analysis pixel {analysis_mpp_um} um must be a whole multiple of {spec.mpp_um} um")
    layout = make_layout(spec)
    n_labels = len(layout.cells) + 1
    stains = StainVectors(hematoxylin=spec.dyes.hematoxylin, dab=spec.dyes.dab, background=spec.scanner.glass)
    n = np.zeros(n_labels)
    dab = np.zeros((2, n_labels))
    for y in range(0, spec.height, _BLOCK_PX):
        for x in range(0, spec.width, _BLOCK_PX):
            size = (min(_BLOCK_PX, spec.width - x), min(_BLOCK_PX, spec.height - y))
            r = render_region(layout, (x, y), size)
            h, w = r.cell_labels.shape
            labels = r.cell_labels.ravel()
            small = cv2.resize(r.rgb, (-(-w // factor), -(-h // factor)), interpolation=cv2.INTER_AREA)
            reduced = np.repeat(np.repeat(deconvolve(small, stains)[..., 1], factor, 0), factor, 1)[:h, :w]
            n += np.bincount(labels, minlength=n_labels)
            for k, image in enumerate((deconvolve(r.rgb, stains)[..., 1], reduced)):
                dab[k] += np.bincount(labels, weights=image.ravel(), minlength=n_labels)
    drawn = n[1:] > 0
    h_scores = []
    for k in range(2):
        means = dab[k, 1:][drawn] / n[1:][drawn]
        h_scores.append(float(totals([int(c) for c in np.digitize(means, thresholds)])["h_score"]))
    return h_scores[0], h_scores[1]
