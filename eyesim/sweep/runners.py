"""Where chunks of configurations run: in this process, on a pool of local processes, or on Dask."""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures import as_completed as futures_completed
from typing import Any

from eyesim.errors import EyesimError
from eyesim.sweep.job import Chunk, SweepJob, evaluate_rows
from eyesim.sweep.reuse import clear_reuse_memo

_INSTALLED: dict[str, SweepJob] = {}  # the job of a local worker process
_PR_SET_PDEATHSIG = 1  # linux/prctl.h


class _Lazy:
    """A chunk to evaluate in this process when its result is asked for."""

    def __init__(self, job: SweepJob, indices: Sequence[int]) -> None:
        self._job, self._indices = job, indices

    def result(self) -> Chunk:
        return evaluate_rows(self._job, self._indices)


class _Serial:
    """Evaluates the chunks one after the other, in this process."""

    workers = 1

    def __init__(self, job: SweepJob) -> None:
        self._job = job

    def submit(self, indices: Sequence[int]) -> _Lazy:
        return _Lazy(self._job, indices)

    def completed(self, futures: Iterable[_Lazy]) -> Iterator[_Lazy]:
        return iter(list(futures))

    def close(self) -> None:
        pass


def _install(job: SweepJob, parent: int) -> None:
    end_with_parent(parent)
    _INSTALLED["job"] = job
    clear_reuse_memo()  # a forked worker starts with nothing stored, like a spawned one


def end_with_parent(parent: int) -> None:
    """Make this worker process end when ``parent`` does, however it ends (SIGKILL included).

    A pool's workers wait on a pipe whose other end they hold too, so they never see their parent go: on
    Linux the kernel sends them SIGKILL when it dies (PR_SET_PDEATHSIG); everywhere a watchdog thread
    checks the parent once a second. A worker writes nothing, so there is nothing to clean up.
    """
    if sys.platform == "linux":
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):
            pass  # no prctl: the watchdog alone
    threading.Thread(target=_watch_parent, args=(parent,), name="eyesim-parent-watch", daemon=True).start()
    if os.getppid() != parent:  # it died before the signal was armed
        os._exit(1)


def _watch_parent(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(1)


def _evaluate_installed(indices: Sequence[int]) -> Chunk:
    return evaluate_rows(_INSTALLED["job"], indices)


class _Processes:
    """A pool of local processes, each holding the job once."""

    def __init__(self, job: SweepJob, workers: int) -> None:
        method = "fork" if sys.platform == "linux" else "spawn"
        self.workers = workers
        self._pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context(method),
                                         initializer=_install, initargs=(job, os.getpid()))

    def submit(self, indices: Sequence[int]) -> Future:
        return self._pool.submit(_evaluate_installed, list(indices))

    def completed(self, futures: Iterable[Future]) -> Iterator[Future]:
        return futures_completed(list(futures))

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


class _Dask:
    """A Dask distributed client: an existing scheduler, or a LocalCluster started (and closed) here."""

    def __init__(self, job: SweepJob, scheduler: str | None, dask_workers: int | None, timeout: float,
                 warm: int | None = None) -> None:
        distributed = _import_dask()
        self._cluster = None
        if scheduler is None:
            self._cluster = distributed.LocalCluster(n_workers=dask_workers, threads_per_worker=1, processes=True,
                                                     dashboard_address=None, silence_logs=40)
            self._client = distributed.Client(self._cluster)
        else:
            self._client = _connect(distributed, scheduler, timeout)
        self._distributed = distributed
        addresses = list(self._client.scheduler_info().get("workers", {}))
        self.workers = max(1, len(addresses))
        self._job = self._client.scatter(job, broadcast=True)
        if warm is not None:  # every worker imports eyesim, loads the kernels and seeds its memo before the clock
            warming = [self._client.submit(evaluate_rows, self._job, [warm], pure=False, workers=[a],
                                           allow_other_workers=False) for a in addresses]
            distributed.wait(warming)

    def submit(self, indices: Sequence[int]) -> Any:
        return self._client.submit(evaluate_rows, self._job, list(indices), pure=False)

    def completed(self, futures: Iterable[Any]) -> Iterator[Any]:
        return iter(self._distributed.as_completed(list(futures)))

    def close(self) -> None:
        self._client.close()
        if self._cluster is not None:
            self._cluster.close()


def _import_dask() -> Any:
    try:
        import dask.distributed as distributed
    except ImportError:
        raise EyesimError("Dask is not installed; pip install 'eyesim[dask]' to use --scheduler or "
                          "--dask-workers") from None
    return distributed


def _connect(distributed: Any, scheduler: str, timeout: float) -> Any:
    try:
        return distributed.Client(scheduler, timeout=timeout)
    except (OSError, TimeoutError, ValueError) as err:
        reason = " ".join(str(err).split()) or type(err).__name__
        raise EyesimError(f"cannot reach the Dask scheduler at {scheduler} within {timeout:g} s ({reason})") from None


def open_backend(job: SweepJob, todo: int, workers: int | None, scheduler: str | None, dask_workers: int | None,
                 timeout: float, warm: int | None = None) -> _Serial | _Processes | _Dask:
    """The runner of ``todo`` configurations; a Dask cluster's workers first evaluate configuration ``warm``
    (start-up: imports, kernels, the memo seeded with the largest configuration), so the sweep's clock starts warm."""
    if scheduler is not None and dask_workers is not None:
        raise EyesimError("give either --scheduler (an existing Dask cluster) or --dask-workers (a local one)")
    if todo == 0:
        return _Serial(job)  # nothing to do: no pool, no cluster
    if scheduler is not None or dask_workers is not None:
        if dask_workers is not None and dask_workers < 1:
            raise EyesimError(f"--dask-workers must be >= 1, got {dask_workers}")
        return _Dask(job, scheduler, dask_workers, timeout, warm)
    count = workers if workers is not None else (os.cpu_count() or 1)
    if count < 1:
        raise EyesimError(f"--workers must be >= 1, got {count}")
    return _Serial(job) if count == 1 or todo < 2 else _Processes(job, min(count, todo))
