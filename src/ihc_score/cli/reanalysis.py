"""``ihc-score roi-stability`` and ``ihc-score compare-models``: a results folder's kept cells scored again."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from ihc_score.cli._group import main

if TYPE_CHECKING:
    from ihc_score.validation import ModelComparison, RoiStability

__all__ = ["roi_stability_command", "compare_models_command"]

_RESULTS = click.Path(exists=True, file_okay=False, path_type=Path)
_MODEL = click.Path(exists=True, dir_okay=False, path_type=Path)

ROI_COLUMNS = (
    "slide", "region", "region_source", "h_score", "call", "n_moves", "h_score_roi_sd", "h_score_roi_min",
    "h_score_roi_max", "pct_positive_roi_sd", "n_call_changes", "changed_calls", "note",
)
CHANGE_COLUMNS = (
    "level", "case", "slide", "region", "old_h_score", "new_h_score", "old_pct_positive", "new_pct_positive",
    "old_call", "new_call", "changed", "new_call_reason",
)


@main.command("roi-stability")
@click.argument("results_dir", type=_RESULTS)
@click.option("--out", "out_path", type=click.Path(dir_okay=False, path_type=Path),
              help="The table written [default: RESULTS_DIR/roi-stability.csv].")
@click.option("--shifts", default="25,50,100", show_default=True, metavar="UM,...",
              help="Distances each outline is shifted, in 8 directions.")
@click.option("--buffers", default="-100,-50,-25,25,50,100", show_default=True, metavar="UM,...",
              help="Distances each outline is grown (+) or shrunk (-) by.")
def roi_stability_command(results_dir: Path, out_path: Path | None, shifts: str, buffers: str) -> None:
    """Score every outlined region of RESULTS_DIR again with its outline moved, as another operator might draw it.

    From the cells the folder kept (scored with --cells; for annotated
    regions with --roi-margin 100 so outlines can move outwards), nothing is
    detected again. Writes per region the SD and range of the H-score over
    the moved outlines and the moves that change the call.

    Exit status: 0 written, 1 the folder kept no cells or is unreadable, 2 usage error.
    """
    from ihc_score.cli._group import parse_floats
    from ihc_score.errors import IhcScoreError
    from ihc_score.outputs import write_csv
    from ihc_score.validation import RoiMoves, results_roi_stability

    try:
        moves = RoiMoves(parse_floats(shifts, "--shifts") or (), parse_floats(buffers, "--buffers") or ())
    except ValueError as err:
        raise click.UsageError(str(err)) from None
    try:
        rows = results_roi_stability(results_dir, moves)
        out = out_path or results_dir / "roi-stability.csv"
        write_csv(out, ROI_COLUMNS, [_roi_row(*row) for row in rows])
    except IhcScoreError as err:
        raise click.ClickException(str(err)) from None
    for slide, region, _, s in rows:
        flag = f"call changes under {s.n_call_changes} of {s.n_moves} moves" if s.n_call_changes else "call stable"
        click.echo(f"{slide} {region}: H-score {s.h_score:.1f} ({s.call}), SD {s.h_sd:.1f} over {s.n_moves} moved "
                   f"outlines, range {s.h_min:.1f}-{s.h_max:.1f}; {flag}" + (f"; {s.note}" if s.note else ""))
    click.echo(f"{len(rows)} region(s) written to {out}")


def _roi_row(slide: str, region: str, source: str, s: RoiStability) -> dict[str, object]:
    return {
        "slide": slide, "region": region, "region_source": source, "h_score": _f(s.h_score), "call": s.call,
        "n_moves": s.n_moves, "h_score_roi_sd": _f(s.h_sd), "h_score_roi_min": _f(s.h_min),
        "h_score_roi_max": _f(s.h_max), "pct_positive_roi_sd": _f(s.pct_sd), "n_call_changes": s.n_call_changes,
        "changed_calls": ";".join(s.changed_calls), "note": s.note,
    }


def _f(value: float) -> str:
    return "" if value != value else f"{value:.2f}"


@main.command("compare-models")
@click.argument("old_model", type=_MODEL)
@click.argument("new_model", type=_MODEL)
@click.argument("results_dir", type=_RESULTS)
@click.option("--out", "out_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write every metastasis and case under both models to this CSV file.")
def compare_models_command(old_model: Path, new_model: Path, results_dir: Path, out_path: Path | None) -> None:
    """List every call NEW_MODEL would change on RESULTS_DIR, scored with OLD_MODEL, before a laboratory adopts it.

    The cells RESULTS_DIR kept (scored with --cells) are graded again under
    the new model's thresholds, cut-off, interval and scored cell types;
    differences in what acts before the cells (tissue, stains, detection,
    cell-type model) are named, as they need the slides scored again.

    Exit status: 0 compared (whether or not calls change), 1 unusable inputs, 2 usage error.
    """
    from ihc_score.errors import IhcScoreError
    from ihc_score.model import load_model
    from ihc_score.outputs import write_csv
    from ihc_score.validation import compare_models

    try:
        old, new = load_model(old_model), load_model(new_model)
        cmp = compare_models(results_dir, old, new)
        if out_path is not None:
            write_csv(out_path, CHANGE_COLUMNS, _change_rows(cmp))
    except IhcScoreError as err:
        raise click.ClickException(str(err)) from None
    for r in cmp.regions:
        if r.changed:
            click.echo(f"metastasis {r.slide} {r.region}: {r.old_call} -> {r.new_call} (H-score {r.old_h_score:.1f} "
                       f"-> {r.new_h_score:.1f}; {r.new_reason or 'outside the borderline band'})")
    for c in cmp.cases:
        if c.changed:
            click.echo(f"case {c.case}: {c.old_call} -> {c.new_call}")
    n_r, n_c = sum(r.changed for r in cmp.regions), sum(c.changed for c in cmp.cases)
    click.echo(f"{old.id} {old.version} -> {new.id} {new.version}: {n_r} of {len(cmp.regions)} metastasis calls and "
               f"{n_c} of {len(cmp.cases)} case calls would change")
    if cmp.unreplayed:
        click.echo(f"warning: the models also differ in {', '.join(cmp.unreplayed)}, which act before the cells: "
                   "score the slides again into a new folder to see those changes", err=True)
    if cmp.replay_mismatches:
        click.echo(f"warning: {len(cmp.replay_mismatches)} stored call(s) not reproduced from the kept cells "
                   f"({', '.join(cmp.replay_mismatches)}): cells on a threshold, rounded in the table", err=True)


def _change_rows(cmp: ModelComparison) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = [
        {"level": "metastasis", "case": "", "slide": r.slide, "region": r.region, "old_h_score": _f(r.old_h_score),
         "new_h_score": _f(r.new_h_score), "old_pct_positive": _f(r.old_pct_positive),
         "new_pct_positive": _f(r.new_pct_positive), "old_call": r.old_call, "new_call": r.new_call,
         "changed": int(r.changed), "new_call_reason": r.new_reason}
        for r in cmp.regions
    ]
    rows += [
        {"level": "case", "case": c.case, "old_call": c.old_call, "new_call": c.new_call, "changed": int(c.changed)}
        for c in cmp.cases
    ]
    return rows
