"""``ihc-score score``: score slides into a results folder, with progress on the console."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ihc_score.cli._group import main, parse_floats
from ihc_score.cli.progress import Reporter as _Reporter

if TYPE_CHECKING:  # only for annotations: importing these at run time would slow down --help
    from ihc_score.model import Model
    from ihc_score.run import BatchOptions, BatchSummary

__all__ = ["score", "warn_stain_check"]


@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path), help="Output folder (created if needed).")
@click.option("--model", "model_path", type=click.Path(exists=True, dir_okay=False, path_type=Path), help="Scoring model JSON (default: the packaged S100A9 brain-metastasis model).")
@click.option("--mpp", type=click.FloatRange(0.01, 100.0), help="Pixel size in um/px for slides that store none (PNG/JPEG fields).")
@click.option("--compartment", type=click.Choice(["nucleus", "cytoplasm", "cell"]), help="Cell compartment whose DAB OD grades a cell.")
@click.option("--thresholds", help="DAB OD class thresholds T1[,T2,T3]; one value gives classes 0 and 1+ only.")
@click.option("--cutoff", type=float, help="Positivity cut-off, in the model's metric (H-score by default).")
@click.option("--cell-types", "cell_types", metavar="FILE|packaged", help="Score tumour cells only, typed by this cell-type model (one written by train-cells, or 'packaged': the one shipped, see the README); the other types are counted apart. Recorded as a model override with the file's sha256.")
@click.option("--annotations", "annotations_dir", type=click.Path(exists=True, file_okay=False, path_type=Path), help="Folder with annotation files (<slide stem>.geojson/.json/.xml), searched besides each slide's folder.")
@click.option("--regions", "region_mode", type=click.Choice(["auto", "tissue"]), default="auto", show_default=True, help="Regions of a slide without annotation file: metastases found automatically, or all tissue as one region.")
@click.option("--roi-margin", "roi_margin_um", type=click.FloatRange(0.0, 1000.0), default=0.0, metavar="UM", help="Also detect (and keep unscored) the cells in a band this wide around annotated regions, so ihc-score roi-stability can move the outlines outwards; 100 covers its default moves. Use with --cells.")
@click.option("--manifest", type=click.Path(exists=True, dir_okay=False, path_type=Path), help="CSV with columns slide, case and optional metastasis: which case each slide belongs to.")
@click.option("--case-pattern", help="Regular expression with a group (?P<case>...) matched on file names to find each slide's case.")
@click.option("--detections", type=click.Choice(["geojson", "geojson.gz", "none"]), default="none", show_default=True, help="Also write cells and regions for QuPath (File > Import objects) in detections/ while scoring, with the traced outlines; ihc-score detections writes them later from cells/.")
@click.option("--cells", "cells_csv", is_flag=True, help="Also write every cell's measurements to cells/<slide>.csv.gz.")
@click.option("--no-cell-results", "no_cell_results", is_flag=True, help="Do not keep every cell's results in cells/<slide>.parquet (then ihc-score detections, roi-stability and compare-models have nothing to work from).")
@click.option("--no-qc", is_flag=True, help="Skip the QC pictures in qc/ (faster).")
@click.option("--pseudonymize", "key_file", type=click.Path(dir_okay=False, path_type=Path), help="Name slides and cases in every output by keyed hashes; the key and the mapping back are kept only in this file (created if absent; keep it outside --out).")
@click.option("--workers", type=click.IntRange(1, 512), help="Worker processes [default: all cores].")
@click.option("--scheduler", help="Dask scheduler address (tcp://host:8786) to run on an existing cluster.")
@click.option("--force", is_flag=True, help="Score again slides whose stored result is still valid.")
@click.option("--quiet", "-q", is_flag=True, help="No progress, no summary table.")
def score(
    paths: tuple[Path, ...],
    out_dir: Path,
    model_path: Path | None,
    compartment: str | None,
    thresholds: str | None,
    cutoff: float | None,
    cell_types: str | None,
    no_qc: bool,
    key_file: Path | None,
    workers: int | None,
    scheduler: str | None,
    quiet: bool,
    **batch: Any,
) -> None:
    """Score every slide under PATHS and write the CSVs and run.json into --out.

    Earlier ihc-score output folders under PATHS (and --out itself) are
    searched for slides, but not their qc/, store/, detections/ and cells/.

    Exit status: 0 every slide scored (a slide where --regions auto finds no
    metastasis counts as scored: it is noted, and its case is indeterminate),
    1 some slides failed or were incomplete, or a --manifest slide was not
    found (the rest are written), 2 usage error.
    """
    from ihc_score.slide import discover_slides

    model = _scoring_model(model_path, compartment=compartment, thresholds=thresholds, cutoff=cutoff,
                           cell_types=cell_types)
    warn_stain_check(model)
    options = _batch_options(out_dir, key_file, qc=not no_qc, **batch)  # --mpp, --force, --regions, ...
    reporter = _Reporter(quiet)
    slides = discover_slides(paths, exclude=out_dir, on_skip=reporter.skipped)
    if not slides:
        raise click.UsageError("no slide files found under the given paths (" + ", ".join(map(str, paths)) + ")")
    hide_inputs = key_file is not None
    summary = _run_batch(slides, out_dir, model, options, reporter, workers, scheduler, hide_inputs=hide_inputs)
    reporter.summary(summary)
    sys.exit(summary.exit_code)


def _scoring_model(
    model_path: Path | None, *, compartment: str | None, thresholds: str | None, cutoff: float | None,
    cell_types: str | None = None,
) -> Model:
    """The model of ``--model`` (or the packaged one) with the command-line overrides; a bad one is a usage error."""
    from ihc_score.errors import ModelError
    from ihc_score.fileio import file_sha256
    from ihc_score.model import load_model
    from ihc_score.score import PACKAGED_CELL_TYPES_PATH

    typer: dict[str, str] = {}
    if cell_types is not None:
        path = PACKAGED_CELL_TYPES_PATH if cell_types == "packaged" else Path(cell_types)
        if not path.is_file():
            raise click.UsageError(f"--cell-types {cell_types}: no such file (a train-cells model, or 'packaged')")
        typer = {"cell_types.model": str(path.resolve()),
                 "cell_types.sha256": file_sha256(path)}
    try:
        return load_model(model_path).with_overrides(
            **{
                "classification.compartment": compartment,
                "classification.thresholds": parse_floats(thresholds, "--thresholds"),
                "positivity.cutoff": cutoff,
                **typer,
            }
        )
    except ModelError as err:
        raise click.UsageError(str(err)) from None


def warn_stain_check(model: Model) -> None:
    """Say on stderr when the cell-type model in use was found to choose cells by their stain."""
    from ihc_score.score import stain_check_warning

    warning = stain_check_warning(model.cell_type_model)
    if warning:
        click.echo(f"warning: {warning}", err=True)


def _batch_options(
    out_dir: Path,
    key_file: Path | None,
    *,
    mpp: float | None,
    force: bool,
    annotations_dir: Path | None,
    region_mode: str,
    roi_margin_um: float = 0.0,
    manifest: Path | None,
    case_pattern: str | None,
    detections: str,
    cells_csv: bool,
    no_cell_results: bool = False,
    qc: bool,
) -> BatchOptions:
    """The batch options of ``score``, with the manifest, case pattern and key file read; bad ones are usage errors."""
    from ihc_score.errors import IhcScoreError
    from ihc_score.run import BatchOptions, compile_case_pattern, load_key_file, read_manifest

    if key_file is not None and out_dir.resolve() in key_file.resolve().parents:
        raise click.UsageError("--pseudonymize: keep the key file outside the --out folder, or the mapping leaks with the results")
    try:
        return BatchOptions(
            mpp_option_um=mpp,
            force=force,
            annotations_dir=annotations_dir,
            region_mode=region_mode,
            roi_margin_um=roi_margin_um,
            manifest=read_manifest(manifest) if manifest else None,
            case_pattern=compile_case_pattern(case_pattern) if case_pattern else None,
            detections=detections,
            cell_results=not no_cell_results,
            cells_csv=cells_csv,
            qc=qc,
            pseudonymizer=load_key_file(key_file) if key_file else None,
        )
    except IhcScoreError as err:
        raise click.UsageError(str(err)) from None


def _run_batch(
    slides: Sequence[Path],
    out_dir: Path,
    model: Model,
    options: BatchOptions,
    reporter: _Reporter,
    workers: int | None,
    scheduler: str | None,
    *,
    hide_inputs: bool,
) -> BatchSummary:
    """Score ``slides`` on a local pool of ``workers`` processes (or the Dask ``scheduler``); failures to run exit 1."""
    import os

    from ihc_score.errors import IhcScoreError
    from ihc_score.run import make_executor, run_batch

    n_workers = workers or os.cpu_count() or 1
    try:
        executor, name = make_executor(min(n_workers, max(1, len(slides) * 64)), scheduler)
    except IhcScoreError as err:
        raise click.ClickException(str(err)) from None
    try:
        with executor:
            return run_batch(
                slides,
                out_dir,
                model,
                executor=executor,
                options=options,
                progress=reporter.progress(),
                argv=_command_line(click.get_current_context(), hide_inputs=hide_inputs),
                executor_name=name,
            )
    except IhcScoreError as err:
        raise click.ClickException(str(err)) from None


def _command_line(ctx: click.Context, *, hide_inputs: bool = False) -> list[str]:
    """The command as given, rebuilt from the parsed parameters (for run.json).

    ``hide_inputs`` replaces the input paths, manifest and key file by
    placeholders: folder and file names can name patients.
    """
    hidden = {"paths", "manifest", "key_file", "annotations_dir", "case_pattern"} if hide_inputs else set()
    words = ["ihc-score", ctx.info_name or "score"]
    for param in ctx.command.params:
        value = ctx.params.get(param.name)
        if value is None or value is False or value == ():
            continue
        if param.name in hidden:
            value = ("<hidden>",) if isinstance(param, click.Argument) else "<hidden>"
        if isinstance(param, click.Argument):
            words += [str(v) for v in value]
        elif value is True:
            words.append(param.opts[0])
        else:
            words += [param.opts[0], str(value)]
    return words

