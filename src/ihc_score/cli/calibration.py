"""``ihc-score calibrate-scanner``: a model for a new scanner, from one section scanned on both."""

from __future__ import annotations

from pathlib import Path

import click

from ihc_score.cli._group import main

__all__ = ["calibrate_scanner_command"]


@main.command("calibrate-scanner")
@click.argument("reference_scan", type=click.Path(exists=True, path_type=Path))
@click.argument("new_scan", type=click.Path(exists=True, path_type=Path))
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="The new model file (JSON); never overwritten.")
@click.option("--model", "model_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="The model set for the reference scanner (default: the packaged S100A9 model).")
@click.option("--id", "new_id", help="Id of the new model [default: the model's id + the new scan's name].")
@click.option("--mpp", type=click.FloatRange(0.01, 100.0), help="Pixel size in um/px for scans that store none.")
def calibrate_scanner_command(
    reference_scan: Path, new_scan: Path, out_path: Path, model_path: Path | None, new_id: str | None, mpp: float | None
) -> None:
    """Write a model for NEW_SCAN's scanner: the same section scanned on the model's scanner (REFERENCE_SCAN) and on
    the new one.

    A scanner's tone curve scales every OD it records (gamma 0.85-1.2 moves an
    H-score by 17-21 points), and nothing in one slide tells that from a
    stronger stain. The quantiles of the section's hematoxylin and DAB on the
    new scan, times one factor, are fitted onto the reference scan's; the new
    model has that factor as ``stains.od_scale``, a new id, and a record of
    both scans' sha256, the fit and the date under ``calibrations``.

    Exit status: 0 written, 1 a scan is unusable or the file exists.
    """
    from datetime import datetime, timezone

    from ihc_score.errors import IhcScoreError
    from ihc_score.fileio import safe_name
    from ihc_score.model import derive_model, load_model, require_new_model_path
    from ihc_score.run import calibrate_scanner

    try:
        model = load_model(model_path)
        require_new_model_path(out_path)  # before the scans are read, not after
        cal = calibrate_scanner(reference_scan, new_scan, model, mpp_option_um=mpp)
        date = datetime.now(timezone.utc).date().isoformat()
        new = derive_model(
            model_path, out_path, new_id=new_id or f"{model.id}-{safe_name(new_scan.stem, max_len=60)}",
            values={"stains.od_scale": round(cal.od_scale, 4)}, record=cal.record(date),
        )
    except (IhcScoreError, ValueError) as err:
        raise click.ClickException(str(err)) from None
    fit = cal.fit
    per_stain = ", ".join(
        f"{name} {value:.3f}" for name, value in (("hematoxylin", fit.hematoxylin_scale), ("DAB", fit.dab_scale))
        if value == value
    )
    click.echo(f"OD factor of {new_scan.name} against {reference_scan.name}: {cal.od_scale:.3f} "
               f"({per_stain}; one factor maps the scans to {100 * fit.residual:.1f} %)")
    for warning in cal.warnings:
        click.echo(f"warning: {warning}", err=True)
    click.echo(f"model written: {out_path} (id {new.id}, stains.od_scale {new.stains.od_scale:g}, "
               f"sha256 {new.sha256[:12]})")
