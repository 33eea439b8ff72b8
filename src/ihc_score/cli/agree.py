"""``ihc-score agree``: agreement of the tool's scores with pathologists' scores."""

from __future__ import annotations

from pathlib import Path

import click

from ihc_score.cli._group import main

__all__ = ["agree_command"]


def _refuse_results_folder(results_dir: Path, out_dir: Path) -> None:
    """A usage error when --out is the results folder itself or one of the folders the scorer writes into."""
    from ihc_score.slide import OUTPUT_SUBFOLDERS

    results, out = results_dir.resolve(), out_dir.resolve()
    own = [results, *(results / name for name in OUTPUT_SUBFOLDERS)]
    if any(out == folder or folder != results and folder in out.parents for folder in own):
        raise click.BadParameter(
            f"{out_dir} is the results folder or one the scorer writes into; give a folder of its own "
            f"(e.g. {results_dir / 'agreement'})", param_hint="--out",
        )


@main.command("agree")
@click.argument("results_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("reference", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder for agreement.json and agreement.html (created; nothing else is written).")
def agree_command(results_dir: Path, reference: Path, out_dir: Path) -> None:
    """Agreement of RESULTS_DIR (a folder written by ihc-score score) with pathologists' scores in REFERENCE.

    REFERENCE is a CSV with columns slide and region (one row per metastasis,
    matched with metastases.csv) or case alone (one row per case, matched with
    cases.csv: the tool's case H-score is max_metastasis_h_score, its percent
    positive pooled_pct_positive), any of h_score, pct_positive and call
    (positive/negative/indeterminate, pos/neg or 1/0), and optionally rater
    (one row per rater and item).

    Writes ICC(A,1), Lin's CCC, Bland-Altman bias and limits of agreement
    (tool minus reference), Pearson and Spearman per score, and Cohen's kappa
    with the confusion table for calls, all with 95 % confidence intervals;
    with several raters also against each rater and the raters among
    themselves. Rows that could not be paired are listed, never dropped.

    Exit status: 0 written, 1 a bad reference file or results folder, 2 usage error.
    """
    from ihc_score.errors import IhcScoreError
    from ihc_score.validation import AGREEMENT_HTML, AGREEMENT_JSON, summary_lines, write_agreement

    _refuse_results_folder(results_dir, out_dir)
    try:
        report = write_agreement(results_dir, reference, out_dir)
    except (IhcScoreError, ValueError) as err:
        raise click.ClickException(str(err)) from None
    for line in summary_lines(report):
        click.echo(line)
    click.echo(f"written: {out_dir / AGREEMENT_JSON}, {out_dir / AGREEMENT_HTML}")
