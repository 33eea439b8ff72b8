"""``ihc-score detections``: QuPath GeoJSON of scored slides, written later from the per-cell results."""

from __future__ import annotations

from pathlib import Path

import click

from ihc_score.cli._group import main

__all__ = ["detections_command"]


@main.command("detections")
@click.argument("results_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--slide", "slides", multiple=True, metavar="NAME",
              help="Only this slide (as in slides.csv, with or without its ending); repeat for several [default: all].")
@click.option("--gz", is_flag=True, help="Write .geojson.gz (about a fifth of the size; QuPath reads it unpacked).")
def detections_command(results_dir: Path, slides: tuple[str, ...], gz: bool) -> None:
    """Write detections/<slide>.geojson (QuPath: File > Import objects) for the scored slides of RESULTS_DIR.

    From the per-cell results (cells/<slide>.parquet) and the stored regions,
    without reading the slides or scoring again: every cell as a QuPath cell
    object with its class, type and measurements, its outlines drawn through
    16 rays from its centroid; the metastases as annotations with their
    scores. (ihc-score score --detections geojson writes the traced outlines
    while scoring.)

    Exit status: 0 written, 1 a slide's per-cell results are missing or a file
    cannot be written, 2 usage error.
    """
    from ihc_score.errors import IhcScoreError
    from ihc_score.run import export_detections

    try:
        written = export_detections(results_dir, slides=slides, gz=gz)
    except IhcScoreError as err:
        raise click.ClickException(str(err)) from None
    for name, path, n in written:
        click.echo(f"{name}: {n} cells -> {path}")
    click.echo(f"{len(written)} slide(s) written")
