"""Score many slides: executors, resume, per-slide outputs, the batch tables.

Work runs on any ``concurrent.futures.Executor``: planning a slide and
scoring a chunk of its tiles are both plain functions of picklable
arguments. A slide that fails is recorded with its one-line reason and the
batch goes on; a slide already scored with the same model and file is reused
unless ``force``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Executor, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ihc_score.fileio import check_writable, output_lock, remove_stale_temporaries
from ihc_score.model import Model
from ihc_score.outputs import (
    CASE_COLUMNS,
    METASTASIS_COLUMNS,
    SLIDE_COLUMNS,
    build_report,
    case_rows,
    metastasis_rows,
    slide_rows,
    write_csv,
    write_json,
)
from ihc_score.regions import find_annotation_file
from ihc_score.results import CaseAssignment, SlideResult
from ihc_score.run.cases import aggregate_cases, assign_case, missing_slides
from ihc_score.run.change_control import require_same_model
from ihc_score.run.lane_pool import LanePool
from ihc_score.run.options import BatchOptions
from ihc_score.run.pipeline import (
    SlidePlan,
    TileResult,
    failed_result,
    finish_slide,
    plan_slide,
    score_tiles,
    tile_tasks,
)
from ihc_score.run.provenance import run_record
from ihc_score.run.pseudonym import Pseudonymizer, save_key_file
from ihc_score.run.slide_outputs import write_slide_outputs
from ihc_score.run.store import file_fingerprint, load_result, save_result
from ihc_score.slide import OUTPUT_SUBFOLDERS, case_of, output_stems

__all__ = ["BatchSummary", "Progress", "run_batch"]

@dataclass
class Progress:
    """Callbacks the batch calls as it goes (the CLI prints them); ``on_slide_tiles`` gets a slide's new tiles."""

    on_start: Callable[[int, int], None] = lambda n_slides, n_reused: None
    on_tiles: Callable[[int, int], None] = lambda done, total: None
    on_slide_tiles: Callable[[str, int, int], None] = lambda slide, new, total: None  # planned: new 0; then per chunk
    on_slide: Callable[[SlideResult, bool], None] = lambda result, reused: None
    on_missing: Callable[[str, str], None] = lambda slide, case: None


@dataclass(frozen=True)
class BatchSummary:
    """What a batch did.

    Attributes
    ----------
    results : tuple of (CaseAssignment, SlideResult)
        Every slide found, in the order given.
    reused : tuple of str
        Slides whose stored result was reused.
    out_dir : Path
    missing : tuple of (str, str)
        ``(slide, case)`` of every ``--manifest`` row whose slide was not found.
    """

    results: tuple[tuple[CaseAssignment, SlideResult], ...]
    reused: tuple[str, ...]
    out_dir: Path
    missing: tuple[tuple[str, str], ...] = ()

    @property
    def n_failed(self) -> int:
        """Slides failed or incomplete."""
        return sum(r.status != "ok" for _, r in self.results)

    @property
    def n_no_metastasis(self) -> int:
        """Slides read whole where automatic regions found no metastasis: nothing on them was scored."""
        return sum(r.status == "ok" and "no_metastasis_found" in r.flags for _, r in self.results)

    @property
    def n_scored(self) -> int:
        """Slides with at least one region scored (or all tissue, or annotated regions)."""
        return len(self.results) - self.n_failed - self.n_no_metastasis

    @property
    def exit_code(self) -> int:
        """1 when a slide failed or a manifest slide is missing, else 0.

        A slide with no metastasis found is a result, not a failure: it is
        named in ``slides.csv`` and its case is indeterminate.
        """
        return 1 if self.n_failed or self.missing else 0


def run_batch(
    slides: Sequence[Path],
    out_dir: Path,
    model: Model,
    *,
    executor: Executor,
    options: BatchOptions = BatchOptions(),
    progress: Progress | None = None,
    argv: Sequence[str] = (),
    executor_name: str = "",
) -> BatchSummary:
    """Score slides and write the batch outputs.

    Parameters
    ----------
    slides : sequence of Path
        Slide files (see :func:`discover_slides`).
    out_dir : Path
        Output folder; created if needed.
    model : Model
    executor : Executor
        Runs planning and tile chunks (process pool, Dask, inline).
    options : BatchOptions
    progress : Progress, optional
    argv, executor_name
        Recorded in ``run.json``.

    Returns
    -------
    BatchSummary

    Raises
    ------
    OutputError
        The output folder cannot be written, another batch is writing into
        it, or it holds results of another model (or other overrides); results
        already written stay. Work not yet started is cancelled.
    """
    out_dir = Path(out_dir)
    check_writable(out_dir)
    with output_lock(out_dir):
        require_same_model(out_dir, model)
        remove_stale_temporaries(out_dir, OUTPUT_SUBFOLDERS)
        return _run_batch_locked(
            slides, out_dir, model, executor=executor, options=options, progress=progress, argv=argv,
            executor_name=executor_name,
        )


def _run_batch_locked(
    slides: Sequence[Path], out_dir: Path, model: Model, *, executor: Executor, options: BatchOptions,
    progress: Progress | None,
    argv: Sequence[str],
    executor_name: str,
) -> BatchSummary:
    """:func:`run_batch` once the output folder is held and cleaned of stale temporary files."""
    progress = progress or Progress()
    started = datetime.now(timezone.utc)
    pz = options.pseudonymizer
    names = {p: pz.slide(p.name) if pz else p.name for p in slides}
    results: dict[Path, SlideResult] = {}
    keys: dict[Path, dict[str, Any]] = {}
    reused: list[str] = []
    todo: list[Path] = []
    for path in slides:
        if options.refused and path in options.refused:  # failed before, file unchanged (ihc-score watch)
            results[path] = public_result(failed_result(path, options.refused[path]), path, names[path], pz)
            continue
        try:
            keys[path] = _result_key(path, model, options)
        except OSError as err:
            failed = failed_result(path, f"{path.name}: cannot read the file ({err.strerror or err})")
            results[path] = public_result(failed, path, names[path], pz)
            continue
        cached = None if options.force else load_result(out_dir, path, names[path], key=keys[path])
        if cached is not None:
            results[path] = cached
            reused.append(names[path])
        else:
            todo.append(path)
    missing = _missing(slides, options)
    for name, case in missing:
        progress.on_missing(name, case)
    progress.on_start(len(slides), len(reused))
    for path in slides:
        if path in results:
            progress.on_slide(results[path], names[path] in reused)

    stems = output_stems(slides, names)
    results.update(_Scoring(out_dir, model, executor, options, progress, keys, names, stems).run(todo))

    ordered = tuple((_case(p, options), results[p]) for p in slides)
    cases = aggregate_cases([(a.case, r) for a, r in ordered], case_rule=model.case_rule, missing=missing)
    write_csv(out_dir / "slides.csv", SLIDE_COLUMNS, slide_rows(ordered))
    write_csv(out_dir / "metastases.csv", METASTASIS_COLUMNS, metastasis_rows(ordered, model))
    write_csv(out_dir / "cases.csv", CASE_COLUMNS, case_rows(cases, model))
    write_json(out_dir / "run.json", run_record(ordered, reused, model, options, argv, executor_name, started))
    build_report(out_dir)
    if pz is not None:
        save_key_file(pz)
    return BatchSummary(ordered, tuple(reused), out_dir, missing)


def _case(path: Path, options: BatchOptions) -> CaseAssignment:
    """The case of a slide, by its pseudonym when pseudonymizing."""
    case = assign_case(path, case_of(path), manifest=options.manifest, pattern=options.case_pattern)
    pz = options.pseudonymizer
    return replace(case, case=pz.case(case.case)) if pz else case


def _missing(slides: Sequence[Path], options: BatchOptions) -> tuple[tuple[str, str], ...]:
    """``(slide, case)`` of the manifest rows whose slide is not among ``slides``, by pseudonyms when pseudonymizing."""
    pz = options.pseudonymizer
    rows = missing_slides(options.manifest, slides)
    return tuple((pz.slide(name), pz.case(case)) if pz else (name, case) for name, case in rows)


def public_result(result: SlideResult, path: Path, name: str, pz: Pseudonymizer | None) -> SlideResult:
    """A result as the outputs may show it: named ``name``, and without real names when pseudonymizing."""
    if pz is None:
        return replace(result, slide=name)
    annotation = pz.slide(result.annotation_file) if result.annotation_file else ""
    return replace(result, slide=name, error=pz.scrub(result.error, path, name), annotation_file=annotation)


def _result_key(path: Path, model: Model, options: BatchOptions) -> dict[str, Any]:
    """What a stored result of ``path`` must match to be reused.

    Raises
    ------
    OSError
        The slide (or its annotation file) cannot be read.
    """
    annotation = find_annotation_file(path, options.annotations_dir)
    pz = options.pseudonymizer
    return {
        # a store written with real names is never reused under pseudonyms, nor the other way round
        "pseudonyms": pz.fingerprint if pz else None,
        "file": file_fingerprint(path),
        "annotation": file_fingerprint(annotation) if annotation else None,
        "model": model.fingerprint,
        "mpp": options.mpp_option_um,
        "region_mode": options.region_mode,
        # named only when set, so results stored before the option existed stay valid
        **({"roi_margin_um": options.roi_margin_um} if options.roi_margin_um else {}),
    }


@dataclass
class _SlideWork:
    """A planned slide whose tile chunks are being scored."""

    plan: SlidePlan
    remaining: int
    started: float
    chunks: list[TileResult] = field(default_factory=list)
    failed: bool = False


def _run_here(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Future:
    """``fn(*args, **kwargs)`` run now, in this process, as a finished future (its result or its error)."""
    fut: Future = Future()
    try:
        fut.set_result(fn(*args, **kwargs))
    except Exception as err:  # noqa: BLE001 - handed on to whoever reads the future, as an executor would
        fut.set_exception(err)
    return fut


@dataclass
class _Scoring:
    """One scoring pass over the slides to score: its settings, what is in flight, and the results so far."""

    out_dir: Path
    model: Model
    executor: Executor
    options: BatchOptions
    progress: Progress
    keys: dict[Path, dict[str, Any]]
    names: dict[Path, str]
    stems: dict[Path, str]
    started: dict[Path, float] = field(default_factory=dict)
    plans: dict[Future, Path] = field(default_factory=dict)
    chunks: dict[Future, Path] = field(default_factory=dict)
    work: dict[Path, _SlideWork] = field(default_factory=dict)
    pending: set[Future] = field(default_factory=set)
    results: dict[Path, SlideResult] = field(default_factory=dict)
    tiles_done: int = 0
    tiles_total: int = 0

    def run(self, todo: Sequence[Path]) -> dict[Path, SlideResult]:
        """Plan every slide, then score their tile chunks as plans come in; write each slide's outputs when done.

        Returns
        -------
        dict of Path to SlideResult
            The result of every slide of ``todo`` (scored or failed), without its per-cell detail.
        """
        self.started = {p: time.perf_counter() for p in todo}
        o = self.options
        plan_args = {
            "mpp_option_um": o.mpp_option_um,
            "annotations_dir": o.annotations_dir,
            "region_mode": o.region_mode,
            "roi_margin_um": o.roi_margin_um,
        }
        # The workers of a local pool are still starting (a second or so of
        # imports) when the first slide is to be planned, and its tiles wait for
        # its plan: plan it here meanwhile, and the others on the pool.
        here = todo[:1] if isinstance(self.executor, (ProcessPoolExecutor, LanePool)) else []
        self.plans = {self.executor.submit(plan_slide, p, self.model, **plan_args): p for p in todo[len(here) :]}
        self.pending = set(self.plans)
        try:
            for p in here:
                fut = _run_here(plan_slide, p, self.model, **plan_args)
                self.plans[fut] = p
                self.pending.add(fut)
            while self.pending:
                done, self.pending = wait(self.pending, return_when=FIRST_COMPLETED)
                for fut in sorted(done, key=self._slide_name):
                    if fut in self.plans:
                        self._planned(self.plans.pop(fut), fut)
                    else:
                        self._chunk_done(self.chunks.pop(fut), fut)
        except BaseException:
            # a write failed (full disk) or the user interrupted: stop now, not after the queued tiles
            for fut in self.pending:
                fut.cancel()
            raise
        return self.results

    def _slide_name(self, fut: Future) -> str:
        """The slide path a plan or chunk future belongs to, as text (the order finished futures are handled in)."""
        return str(self.plans.get(fut) or self.chunks.get(fut))

    def _planned(self, path: Path, fut: Future) -> None:
        """Turn a finished plan into tile chunks on the executor; record the slide if it failed or has no tiles."""
        try:
            plan = fut.result()
        except Exception as err:  # noqa: BLE001 - any failure of one slide is recorded, never fatal
            self._finish(path, failed_result(path, err, seconds=time.perf_counter() - self.started[path]))
            return
        tasks = tile_tasks(plan, self.model, tiles_per_task=self.options.tiles_per_task, outlines=self.options.outlines)
        self.work[path] = _SlideWork(plan, len(tasks), self.started[path])
        self.tiles_total += len(plan.grid.tiles)
        self.progress.on_tiles(self.tiles_done, self.tiles_total)
        self.progress.on_slide_tiles(self.names[path], 0, len(plan.grid.tiles))
        if not tasks:
            self._finish(path, finish_slide(plan, [], self.model, seconds=time.perf_counter() - self.started[path]))
        for task in tasks:
            f = self.executor.submit(score_tiles, task)
            self.chunks[f] = path
            self.pending.add(f)

    def _chunk_done(self, path: Path, fut: Future) -> None:
        """Gather a finished tile chunk; finish the slide after its last chunk, or record it at its first failed one."""
        w = self.work[path]
        w.remaining -= 1
        try:
            chunk = fut.result()
        except Exception as err:  # noqa: BLE001
            if not w.failed:
                w.failed = True
                self._finish(path, failed_result(path, err, seconds=time.perf_counter() - w.started))
            chunk = None
        if chunk is not None:
            self.tiles_done += len(chunk.tile_indices)
            self.progress.on_tiles(self.tiles_done, self.tiles_total)
            w.chunks.append(chunk)
            self.progress.on_slide_tiles(self.names[path], len(chunk.tile_indices), len(w.plan.grid.tiles))
        if w.remaining == 0 and not w.failed:
            result = finish_slide(w.plan, w.chunks, self.model, seconds=time.perf_counter() - w.started)
            w.chunks = []  # the result holds its own copy of the cells: free the chunks before writing
            self._finish(path, result)
            del result
        if w.remaining == 0:
            del self.work[path]

    def _finish(self, path: Path, result: SlideResult) -> None:
        """Write a slide's outputs and store its result (when scored), keep it, and report it."""
        result = public_result(result, path, self.names[path], self.options.pseudonymizer)
        if result.status == "ok":
            result = write_slide_outputs(self.out_dir, result, self.stems[path], self.options, self.model)
            save_result(self.out_dir, path, result, key=self.keys[path])
        self.results[path] = replace(result, detail=None)  # per-cell detail is written; free it
        self.progress.on_slide(result, False)
