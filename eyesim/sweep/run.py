"""Running a sweep: the configurations not yet in the output, in chunks, on a runner, into the sink."""

from __future__ import annotations

import contextlib
import functools
import math
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eyesim.sweep.job import Chunk, SweepJob
from eyesim.sweep.runners import open_backend
from eyesim.sweep.sink import Sink, output_lock


def _one_writer(run: Callable[..., SweepSummary]) -> Callable[..., SweepSummary]:
    """``run`` holding the output's lock: a second sweep writing the same file is refused, not interleaved."""
    @functools.wraps(run)
    def locked(job: SweepJob, output: str | os.PathLike[str], **options: Any) -> SweepSummary:
        with output_lock(Path(output)):
            return run(job, output, **options)

    return locked


PENDING_ROWS = 100_000  # rows computed but not yet written: with one row group read back, the memory of a sweep


@dataclass(frozen=True)
class SweepSummary:
    """What a run did."""

    output: Path
    configurations: int  # in the grid
    skipped: int  # already in the output
    evaluated: int  # configurations evaluated by this run
    invalid: int  # of those, invalid ones
    layer_evaluations: int  # (configuration, layer) pairs estimated by this run
    seconds: float  # start-up included
    workers: int
    startup_seconds: float = 0.0  # reading the output, starting the workers (a Dask cluster: warmed up)


@_one_writer
def run_sweep(job: SweepJob, output: str | os.PathLike[str], *, workers: int | None = None,
              scheduler: str | None = None, dask_workers: int | None = None, scheduler_timeout: float = 10.0,
              chunk_size: int | None = None, progress: bool = False, flush_seconds: float = 5.0,
              on_chunk: Callable[[int], None] | None = None, pending_rows: int = PENDING_ROWS) -> SweepSummary:
    """Evaluate every configuration of ``job`` not yet in ``output`` and write them there.

    Runs serially (``workers=1``), on ``workers`` local processes (default: all cores), on the Dask
    scheduler at ``scheduler``, or on a LocalCluster of ``dask_workers`` processes. The file is
    rewritten (atomically) at most every ``flush_seconds``, when ``pending_rows`` rows wait, and at the end;
    its rows are sorted by configuration, so the result does not depend on how the work was split.
    """
    start = time.perf_counter()
    sink = Sink(Path(output), job)
    sink.remove_stale_temps()
    keys = list(job.grid.keys())  # largest values first: their optima are reused by the smaller configurations
    todo = sorted((i for i, key in enumerate(keys) if key not in sink.done), key=keys.__getitem__, reverse=True)
    backend = open_backend(job, len(todo), workers, scheduler, dask_workers, scheduler_timeout,
                           todo[0] if todo else None)
    started = time.perf_counter() - start
    counts = _Counts()
    try:
        with _terminate_as_interrupt():
            futures = [backend.submit(chunk) for chunk in _chunks(todo, chunk_size or _chunk_size(len(todo),
                                                                                                    backend.workers))]
            with _progress_bar(len(todo), progress) as bar:
                for chunk in _collect(backend, futures, sink, flush_seconds, pending_rows):
                    counts.add(chunk)
                    bar.update(chunk.configurations)
                    if on_chunk is not None:
                        on_chunk(chunk.configurations)
    finally:
        try:
            if sink.pending or not sink.path.exists():
                sink.write()
        finally:
            backend.close()
    return SweepSummary(sink.path, len(job.grid), len(job.grid) - len(todo), counts.configurations, counts.invalid,
                        counts.layers, time.perf_counter() - start, backend.workers, started)


@contextlib.contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM (``kill``, a batch scheduler's stop) ends the sweep as Ctrl-C does: the rows of every finished chunk
    are written before the process ends. Only where SIGTERM would otherwise kill the process at once (its default
    handler, in the main thread): a handler of the caller's own is left alone."""
    main = threading.current_thread() is threading.main_thread()
    if not main or signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        yield
        return

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


@dataclass
class _Counts:
    configurations: int = 0
    invalid: int = 0
    layers: int = 0

    def add(self, chunk: Chunk) -> None:
        self.configurations += chunk.configurations
        self.invalid += chunk.invalid
        self.layers += chunk.layers


def _collect(backend: Any, futures: list[Any], sink: Sink, flush_seconds: float, pending_rows: int) -> Iterator[Chunk]:
    """Each finished chunk, added to the sink; the file is rewritten when due (at most a fifth of the time) or
    when ``pending_rows`` rows wait in memory (what bounds the memory of a streamed Parquet sweep)."""
    last, write_s = time.monotonic(), 0.0
    finishing = backend.completed(futures)
    futures.clear()  # a finished future holds its chunk: only the iterator may keep it, until it is yielded
    for future in finishing:
        chunk = future.result()
        sink.add(chunk.table)
        yield chunk
        if time.monotonic() - last >= max(flush_seconds, 4 * write_s) or sink.pending_rows >= pending_rows:
            began = time.monotonic()
            sink.write()
            last, write_s = time.monotonic(), time.monotonic() - began


def _chunk_size(todo: int, workers: int) -> int:
    """Enough chunks to balance the workers (about 8 each), none too small to be worth a task or too big."""
    return max(1, min(64, math.ceil(todo / (8 * workers)))) if workers > 1 else 64


def _chunks(indices: list[int], size: int) -> list[list[int]]:
    return [indices[i:i + size] for i in range(0, len(indices), size)]


class _NoBar:
    def __enter__(self) -> _NoBar:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def update(self, n: int) -> None:
        pass


def _progress_bar(total: int, show: bool) -> Any:
    if not show:
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total, unit="config", desc="sweep", file=sys.stderr, dynamic_ncols=True, disable=None)
