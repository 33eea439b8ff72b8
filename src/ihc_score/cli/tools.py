"""``ihc-score synth`` (a synthetic slide with its truth) and ``ihc-score report`` (rebuild the report)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from ihc_score.cli._group import main, parse_floats

if TYPE_CHECKING:  # only for annotations: importing it at run time would slow down --help
    from ihc_score.synthetic import SynthSpec

__all__ = ["SYNTH_PRESETS", "SYNTH_SCANNERS", "synth", "report"]

#: Names of ihc_score.synthetic.PRESETS, spelled out so --help needs no numpy.
SYNTH_PRESETS = ("default", "shifted-stains", "negative", "strong", "near-cutoff", "multi-met", "artefacts",
                 "melanoma", "infiltrated")
#: Names of ihc_score.synthetic.SCANNERS, spelled out for the same reason.
SYNTH_SCANNERS = ("reference", "scanner-a", "scanner-b", "scanner-c")


def _synth_spec(preset_name: str, options: dict[str, object]) -> SynthSpec:
    """The spec of ``ihc-score synth``: preset ``preset_name`` with the command's ``options`` (None = the preset's).

    ``stain_shift_deg``, ``scanner_name``, ``background``, ``jpeg_quality`` and
    ``class_proportions`` are popped from ``options``, the rest are SynthSpec
    fields. Raises ValueError on an invalid field.
    """
    from dataclasses import replace

    from ihc_score.synthetic import DEFAULT_DYES, TumourRegion, preset, shift_dyes

    shift = options.pop("stain_shift_deg")
    scanner_name = options.pop("scanner_name")
    glass = parse_floats(options.pop("background"), "--background")  # type: ignore[arg-type]
    jpeg_quality = options.pop("jpeg_quality")
    proportions = parse_floats(options.pop("class_proportions"), "--class-proportions")  # type: ignore[arg-type]
    fields: dict[str, object] = {k: v for k, v in options.items() if v is not None}
    if shift is not None:
        fields["dyes"] = shift_dyes(DEFAULT_DYES, float(shift))  # type: ignore[arg-type]
    if scanner_name is not None:
        fields["scanner"] = scanner_name
    if proportions is not None:
        fields["regions"] = (TumourRegion(class_proportions=proportions),)
    spec = preset(preset_name, **fields)
    scanner = {k: v for k, v in (("glass", glass), ("jpeg_quality", jpeg_quality)) if v is not None}
    return replace(spec, scanner=replace(spec.scanner, **scanner)) if scanner else spec


@main.command()
@click.argument("out", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--preset", "preset_name", default="default", show_default=True,
              type=click.Choice(SYNTH_PRESETS), help="Starting point; the options below change single values.")
@click.option("--seed", type=int, help="Random seed (the same seed gives the same file).")
@click.option("--width", type=click.IntRange(256, 200_000), help="Level-0 width in px.")
@click.option("--height", type=click.IntRange(256, 200_000), help="Level-0 height in px.")
@click.option("--mpp", "mpp_um", type=click.FloatRange(0.1, 2.0), help="Pixel size in um/px.")
@click.option("--stain-shift-deg", type=click.FloatRange(-45, 45),
              help="Draw with the generator's hematoxylin and DAB vectors turned by this hue angle.")
@click.option("--scanner", "scanner_name", type=click.Choice(SYNTH_SCANNERS),
              help="Scanner that records the slide (tone curve, crosstalk, blur, glass, noise, JPEG); default the preset's.")
@click.option("--background", help="Glass colour R,G,B of the scanner (e.g. 240,235,215).")
@click.option("--class-proportions", help="Fractions of tumour cells in classes 0,1+,2+,3+ (e.g. 0.4,0.3,0.2,0.1).")
@click.option("--jpeg-quality", type=click.IntRange(30, 100), help="JPEG quality of the scanner's tiles.")
@click.option("--tumour-density", "tumour_density_per_mm2", type=click.FloatRange(100, 20_000), help="Tumour cells per mm^2.")
@click.option("--tissue-fraction", type=click.FloatRange(0.05, 0.95), help="Fraction of the slide covered by tissue.")
@click.option("--annotations", is_flag=True, help="Also write the true metastases and necroses as QuPath GeoJSON (OUT stem + .geojson).")
def synth(out: Path, preset_name: str, annotations: bool, **options: object) -> None:
    """Write a synthetic S100A9 slide OUT (.svs) with its ground truth (OUT.truth.json)."""
    from ihc_score.errors import IhcScoreError
    from ihc_score.synthetic import make_slide

    try:
        spec = _synth_spec(preset_name, options)
        truth = make_slide(out, spec, annotations=annotations)
    except ValueError as err:
        raise click.UsageError(str(err)) from None
    except IhcScoreError as err:
        raise click.ClickException(str(err)) from None
    t = truth["totals"]
    n = t["n_class"]
    h = "none (no tumour cells)" if t["h_score"] is None else f"{t['h_score']:.1f}"
    click.echo(
        f"{out}: {spec.width}x{spec.height} px at {spec.mpp_um} um/px, {t['n_cells']} tumour cells "
        f"(0: {n['0']}, 1+: {n['1+']}, 2+: {n['2+']}, 3+: {n['3+']}), H-score {h}"
    )


@main.command()
@click.argument("results_dir", metavar="DIR", type=click.Path(exists=True, file_okay=False, path_type=Path))
def report(results_dir: Path) -> None:
    """Rebuild DIR/report.html from the results folder DIR (the --out of score), without scoring again.

    Exit status: 0 written, 1 DIR is not a results folder or cannot be written.
    """
    from ihc_score.errors import IhcScoreError
    from ihc_score.outputs import build_report

    try:
        path = build_report(results_dir)
    except IhcScoreError as err:
        raise click.ClickException(str(err)) from None
    click.echo(f"report written: {path}")
