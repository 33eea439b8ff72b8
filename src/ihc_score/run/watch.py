"""Watch an inbox: score each slide once it has settled, and keep the results folder's tables current.

Each poll looks at every slide of the inbox (:func:`~ihc_score.run.settle.observe`);
when a settled slide is new or changed, a *round* runs :func:`run_batch` over
every settled slide: those scored before are reused from ``store/``, so a
round costs the new slides' scoring, and the tables, ``run.json`` and
``report.html`` always cover every settled slide. A restart repeats nothing
that had finished (the store keeps it). A stop (SIGTERM, SIGINT) during a
round abandons it the way Ctrl-C stops ``ihc-score score``: outputs are
written atomically, so the folder keeps the previous round's tables and the
results of every slide finished so far.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import FrameType

from ihc_score.fileio import check_writable, output_lock
from ihc_score.model import Model
from ihc_score.results import SlideResult
from ihc_score.run.batch import BatchSummary, run_batch
from ihc_score.run.change_control import require_same_model
from ihc_score.run.options import BatchOptions
from ihc_score.run.settle import Sighting, Signature, changed_slides, observe, settled, signature, update_sightings

__all__ = [
    "WATCH_LOCK", "StopRequest", "WatchRound", "WatchSettings", "check_results_folder", "stop_on_signals",
    "watch_inbox", "watch_lock",
]

#: Lock file a watcher holds in its results folder for its whole life: one watcher per folder.
WATCH_LOCK = ".ihc-score-watch.lock"


@dataclass(frozen=True)
class WatchSettings:
    """How the inbox is watched.

    Attributes
    ----------
    settle_s : float
        Seconds every file of a slide must keep its size and modification
        time before the slide is read; longer than the scanner's longest
        pause between two writes.
    poll_s : float
        Seconds between two looks at the inbox; at most ``settle_s``.
    once : bool
        Look for ``settle_s`` seconds, score what settled, and return.
    """

    settle_s: float = 60.0
    poll_s: float = 5.0
    once: bool = False

    def __post_init__(self) -> None:
        if not (self.poll_s > 0 and self.settle_s >= self.poll_s):
            raise ValueError(f"need 0 < poll <= settle seconds, got poll {self.poll_s}, settle {self.settle_s}")


@dataclass(frozen=True)
class WatchRound:
    """One scoring round.

    Attributes
    ----------
    summary : BatchSummary
        The batch over every settled slide (what the tables now hold).
    new : tuple of (SlideResult, bool)
        The slides new or changed since the previous round, and whether each
        was reused from the store (scored before this process started).
    changed : tuple of str
        Slides whose files changed while the round read them: their results
        may be of a half-written file and they are scored again once settled.
    seconds : float
    """

    summary: BatchSummary
    new: tuple[tuple[SlideResult, bool], ...]
    changed: tuple[str, ...]
    seconds: float


class StopRequest:
    """A request to stop the watcher, set by a signal or by code.

    A signal sets the request; while the watcher is inside
    :meth:`interruptible` (a round, or sleeping between polls) the first one
    also raises ``KeyboardInterrupt`` there, which stops a round the way
    Ctrl-C does. Later signals are ignored: the watcher is already stopping.
    """

    def __init__(self) -> None:
        self.signum: int | None = None
        self._armed = False

    @property
    def requested(self) -> bool:
        """Whether a stop was requested."""
        return self.signum is not None

    def request(self, signum: int = signal.SIGTERM) -> None:
        """Ask the watcher to stop (raises ``KeyboardInterrupt`` when called inside :meth:`interruptible`)."""
        first = self.signum is None
        if first:
            self.signum = signum
        if first and self._armed:
            self._armed = False
            raise KeyboardInterrupt

    def handle(self, signum: int, frame: FrameType | None) -> None:
        """Signal handler: :meth:`request` with the signal's number."""
        self.request(signum)

    @contextlib.contextmanager
    def interruptible(self) -> Iterator[None]:
        """A stretch of work a stop may cut short with ``KeyboardInterrupt`` (at once if already requested)."""
        if self.requested:
            raise KeyboardInterrupt
        self._armed = True
        try:
            yield
        finally:
            self._armed = False


@contextlib.contextmanager
def stop_on_signals(stop: StopRequest, signums: Sequence[int] = (signal.SIGTERM, signal.SIGINT)) -> Iterator[None]:
    """Route ``signums`` to ``stop`` while inside; the previous handlers come back after.

    Python lets only the main thread set signal handlers; elsewhere nothing is
    installed and only :meth:`StopRequest.request` stops the watcher.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.signal(s, stop.handle) for s in signums}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def watch_lock(out_dir: Path) -> contextlib.AbstractContextManager[None]:
    """Hold ``<out>/.ihc-score-watch.lock`` (``flock``, released by the kernel if the process dies).

    Raises
    ------
    OutputError
        Another watcher writes into ``out_dir``, or the folder cannot be written.
    """
    return output_lock(Path(out_dir), lock_name=WATCH_LOCK, busy="another ihc-score watch is writing into {folder}; "
                       "stop it first or choose another --out folder")


def check_results_folder(out_dir: Path, model: Model) -> None:
    """Refuse at start, before any waiting, a results folder that cannot be written or holds another model's results.

    Raises
    ------
    OutputError
        With a one-line reason (see :func:`~ihc_score.run.change_control.require_same_model`).
    """
    check_writable(Path(out_dir))
    require_same_model(Path(out_dir), model)


@dataclass
class _State:
    """What the watcher knows between polls."""

    sightings: dict[Path, Sighting] = field(default_factory=dict)
    scored: dict[Path, Signature] = field(default_factory=dict)  # slides and signatures of the last finished round
    failures: dict[Path, tuple[Signature, str]] = field(default_factory=dict)
    inbox_error: str | None = None
    summary: BatchSummary | None = None


@dataclass
class _Watcher:
    """The watcher's settings and state; :func:`watch_inbox` drives it."""

    inbox: Path
    out_dir: Path
    model: Model
    executor: Executor
    options: BatchOptions
    argv: Sequence[str]
    executor_name: str
    on_warning: Callable[[str], None]
    state: _State = field(default_factory=_State)

    def look(self, now: float) -> None:
        """Poll the inbox once; an unreadable inbox keeps the sightings and is reported once per outage."""
        try:
            seen = observe(self.inbox, self.out_dir, self.options.annotations_dir)
        except OSError as err:
            reason = f"cannot read {self.inbox} ({err.strerror or err}); looking again at every poll"
            if reason != self.state.inbox_error:
                self.on_warning(reason)
            self.state.inbox_error = reason
            return
        if self.state.inbox_error is not None:
            self.on_warning(f"{self.inbox} can be read again")
            self.state.inbox_error = None
        self.state.sightings = update_sightings(self.state.sightings, seen, now)

    def round(self, ready: dict[Path, Signature]) -> WatchRound:
        """Score every settled slide (the earlier ones reused) and write the tables."""
        start = time.perf_counter()
        slides = sorted(ready, key=lambda f: (f.name, str(f)))  # the order of discover_slides
        refused = {p: why for p, (sig, why) in self.state.failures.items() if ready.get(p) == sig}
        summary = run_batch(
            slides,
            self.out_dir,
            self.model,
            executor=self.executor,
            options=replace(self.options, refused=refused or None),
            argv=self.argv,
            executor_name=self.executor_name,
        )
        new = set(changed_slides(ready, self.state.scored))
        self.state.scored = dict(ready)
        self.state.summary = summary
        rows = []
        for path, (_, result) in zip(slides, summary.results):
            if result.status == "failed":
                self.state.failures[path] = (ready[path], result.error)
            else:
                self.state.failures.pop(path, None)
            if path in new:
                rows.append((result, result.slide in summary.reused))
        # read while being written after it had settled: scored again once it settles anew
        changed = tuple(p.name for p in sorted(new) if signature(p, self.options.annotations_dir) != ready[p])
        return WatchRound(summary, tuple(rows), changed, time.perf_counter() - start)


def watch_inbox(
    inbox: Path,
    out_dir: Path,
    model: Model,
    *,
    executor: Executor,
    options: BatchOptions | None = None,
    settings: WatchSettings | None = None,
    stop: StopRequest | None = None,
    on_round: Callable[[WatchRound], None] = lambda r: None,
    on_warning: Callable[[str], None] = lambda message: None,
    argv: Sequence[str] = (),
    executor_name: str = "",
    clock: Callable[[], float] = time.monotonic,
) -> BatchSummary | None:
    """Score the slides of ``inbox`` into ``out_dir`` as they settle, until stopped (or once, with ``settings.once``).

    Parameters
    ----------
    inbox, out_dir : Path
    model : Model
        The same for every slide (the folder refuses another one).
    executor : Executor
        Kept for the watcher's life; its owner closes it.
    options : BatchOptions, optional
        Default ``BatchOptions()``.
    settings : WatchSettings, optional
        Default ``WatchSettings()``: settle 60 s, poll 5 s.
    stop : StopRequest, optional
        Route signals to it with :func:`stop_on_signals`; a stop during a
        round abandons the round (the previous tables stay).
    on_round, on_warning : callable
        Told each finished round, and each problem met (one line).
    argv, executor_name
        Recorded in ``run.json``.
    clock : callable
        Monotonic seconds.

    Returns
    -------
    BatchSummary or None
        The last finished round's batch; None when no round finished.

    Raises
    ------
    OutputError
        The results folder cannot be written, or another batch writes into it.
    """
    stop = stop or StopRequest()
    options = options or BatchOptions()
    settings = settings or WatchSettings()
    w = _Watcher(Path(inbox), Path(out_dir), model, executor, options, argv, executor_name, on_warning)
    started = clock()
    try:
        while not stop.requested:
            now = clock()
            w.look(now)
            ready = settled(w.state.sightings, now, settings.settle_s)
            final = settings.once and now - started >= settings.settle_s
            if ready and (final or not settings.once and changed_slides(ready, w.state.scored)):
                with stop.interruptible():
                    done = w.round(ready)
                for name in done.changed:
                    on_warning(f"{name} changed while it was read: it is scored again once it settles")
                on_round(done)
            if final:
                break
            delay = settings.poll_s if not settings.once else started + settings.settle_s - clock()
            with stop.interruptible():
                time.sleep(min(settings.poll_s, max(delay, 0.0)))
    except KeyboardInterrupt:
        if not stop.requested:
            stop.signum = signal.SIGINT  # Ctrl-C where no handler of ours was installed
    return w.state.summary
