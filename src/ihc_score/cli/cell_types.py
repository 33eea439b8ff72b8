"""``ihc-score train-cells``: a cell-type model from cells labelled in QuPath on a department's own slides."""

from __future__ import annotations

from pathlib import Path

import click

from ihc_score.cli._group import main

__all__ = ["train_cells_command"]


@main.command("train-cells")
@click.argument("slides", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--labels", "labels_dir", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Folder of the QuPath GeoJSON exports, one per slide named as the slide (case1.svs: case1.geojson) "
                   "[default: beside each slide].")
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="The cell-type model file (JSON); never overwritten.")
@click.option("--map", "pairs", multiple=True, metavar="CLASS=TYPE",
              help="A QuPath class name and the cell type it means (tumour, lymphocyte, neutrophil, macrophage, "
                   "other); repeatable. Common names (Tumor, Lymphocyte, Immune cells, Stroma, ...) are known.")
@click.option("--model", "model_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="The scoring model whose detection finds the cells (default: the packaged S100A9 model).")
@click.option("--match-um", type=click.FloatRange(0.5, 20.0), default=5.0, show_default=True,
              help="A label belongs to the detected cell whose nucleus lies within this distance.")
@click.option("--mpp", type=click.FloatRange(0.01, 100.0), help="Pixel size in um/px for slides that store none.")
@click.option("--features", "feature_set", type=click.Choice(["all", "shape"]), default="all", show_default=True,
              help="The cell features the model learns from: all (nucleus size, shape, hematoxylin density and "
                   "texture, cell-to-nucleus ratio) or shape (nucleus size and shape only, nothing that the DAB "
                   "stain can change; choose it when the stain check printed after fitting warns).")
def train_cells_command(
    slides: tuple[Path, ...], labels_dir: Path | None, out_path: Path, pairs: tuple[str, ...],
    model_path: Path | None, match_um: float, mpp: float | None, feature_set: str,
) -> None:
    """Fit a cell-type model to the cells labelled on SLIDES, and write it to --out.

    In QuPath, mark cells with the point tool (one point set per class) or
    classify detected cells, then File > Export objects as GeoJSON, one file
    per slide. Each label is matched to the cell ihc-score detects under it;
    with two slides or more, each slide is also typed by a model fitted on
    the others, and those figures are printed and kept in the file. The
    stain check prints, per DAB class, the share of the labelled tumour
    cells typed tumour: a model that keeps fewer stained than unstained
    tumour cells would lower every positive score. Name the file in the
    scoring model's "cell_types" section with the sha256 printed.

    Exit status: 0 written, 1 a slide or its labels are unusable or the file exists.
    """
    from datetime import datetime, timezone

    from ihc_score.errors import IhcScoreError
    from ihc_score.fileio import file_sha256
    from ihc_score.model import load_model, require_new_model_path
    from ihc_score.regions import find_annotation_file
    from ihc_score.run import labelled_cells, train_cell_types, type_mapping
    from ihc_score.score import FEATURE_SETS, cell_type_model_json

    own = FEATURE_SETS[feature_set]
    try:
        mapping = type_mapping(pairs)
        model = load_model(model_path)
        require_new_model_path(out_path)
        labelled = []
        for slide in slides:
            labels = find_annotation_file(slide, labels_dir)
            if labels is None:
                raise IhcScoreError(f"{slide.name}: no GeoJSON of labelled cells named after it "
                                    f"in {labels_dir or slide.parent}")
            labelled.append(labelled_cells(slide, labels, model, mapping, match_um=match_um, mpp_option_um=mpp,
                                           own=own))
            click.echo(f"{slide.name}: {len(labelled[-1].types)} of {labelled[-1].n_points} labels matched to cells")
        record = {"date": datetime.now(timezone.utc).date().isoformat(), "scoring_model": model.id,
                  "scoring_model_sha256": model.sha256, "match_um": match_um}
        typer = train_cell_types(labelled, model_id=out_path.stem, record=record, own=own)
    except (IhcScoreError, ValueError) as err:
        raise click.ClickException(str(err)) from None
    out_path.write_text(cell_type_model_json(typer), encoding="utf-8")
    for kind, n in typer.info["cells_per_type"].items():
        held = typer.info["held_out_by_slide"].get(kind)
        figures = f"; held out by slide: precision {held['precision']:.2f}, recall {held['recall']:.2f}" if held else ""
        click.echo(f"  {kind}: {n} cells{figures}")
    _echo_stain_check(typer.info["stain"], feature_set)
    sha = file_sha256(out_path)
    click.echo(f'wrote {out_path}; in the scoring model: "cell_types": {{"model": "{out_path.name}", '
               f'"sha256": "{sha}", "scored": ["tumour"]}}')


def _echo_stain_check(stain: dict, feature_set: str) -> None:
    """The share of labelled tumour cells typed tumour per DAB class, and a warning when it follows the stain."""
    if not stain.get("kept_by_class"):
        click.echo("  stain check: no labelled tumour cells to check")
        return
    how = "by the model fitted on them" if stain.get("in_sample") else "held out by slide"
    shares = ", ".join(f"{k} {v:.0%}" for k, v in stain["kept_by_class"].items())
    click.echo(f"  stain check ({how}): labelled tumour cells typed tumour per DAB class: {shares}")
    if stain["stain_dependent"]:
        advice = "label more tumour cells of every class" if feature_set == "shape" else "fit with --features shape"
        click.echo(f"  warning: the share differs by {stain['gap']:.0%} between DAB classes, so this model chooses "
                   f"cells partly by their stain and would bias scores; {advice}", err=True)
