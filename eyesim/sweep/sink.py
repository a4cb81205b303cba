"""The output file as a sweep writes it: one writer at a time (a lock), what it holds (to resume), atomic rewrites."""

from __future__ import annotations

import errno
import json
import os
import re
import shlex
import stat
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from eyesim.errors import EyesimError
from eyesim.result import safe_cell
from eyesim.sweep.grid import Number
from eyesim.sweep.job import SweepJob
from eyesim.sweep.output import TOTAL, config_columns, import_pyarrow, map_text, output_format, read_table

try:
    import fcntl
except ImportError:  # not POSIX (Windows): sweeps run unlocked there
    fcntl = None  # type: ignore[assignment]

_HELD: dict[Path, tuple[tuple[int, int], int]] = {}  # lock file -> ((process, thread) holding it, nesting depth)
_HELD_GUARD = threading.Lock()


def lock_path(output: Path) -> Path:
    """``OUTPUT.lock`` beside the file the output names (a symlink's target: two names, one lock)."""
    target = output.resolve()
    return target.with_name(target.name + ".lock")


@contextmanager
def output_lock(output: Path) -> Iterator[None]:
    """Be the only writer of ``output`` while inside; EyesimError naming the other writer if there is one.

    The lock is an fcntl (POSIX record) lock on ``OUTPUT.lock``, holding the pid, start time and command: the
    kernel drops it when the process ends however it ends, so a killed sweep leaves no stale lock, and forked
    worker processes do not inherit it. Nested use by the same thread (the CLI, then ``run_sweep``) is allowed.
    """
    key = lock_path(output)
    me = (os.getpid(), threading.get_ident())
    with _HELD_GUARD:
        owner, depth = _HELD.get(key, (me, 0))
        if owner[0] != me[0]:  # a forked child: its parent's lock is not its own
            owner, depth = me, 0
        if owner != me:
            raise EyesimError(f"{output}: another sweep in this process is writing it; choose another output file")
        _HELD[key] = (me, depth + 1)
    fd = None
    try:
        if depth == 0 and fcntl is not None:
            fd = _acquire(output, key)
        yield
    finally:
        with _HELD_GUARD:
            _HELD[key] = (me, depth)
            if depth == 0:
                del _HELD[key]
        if fd is not None:
            _release(key, fd)


def _acquire(output: Path, key: Path) -> int:
    """Open, lock and fill in the lock file (again if it was replaced between the open and the lock)."""
    for _ in range(10):
        try:
            fd = os.open(key, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, 0o644)
        except OSError as err:
            raise EyesimError(f"{output}: cannot create the lock file {key} ({_reason(err)})") from None
        try:
            if not _regular(fd):
                raise EyesimError(f"{output}: the lock file {key} is not a regular file; remove it")
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            os.close(fd)
            if err.errno in (errno.EACCES, errno.EAGAIN):
                raise EyesimError(f"{output}: another sweep is writing it ({_holder(key)}); wait for it to end or "
                                  "choose another output file") from None
            raise EyesimError(f"{output}: cannot lock {key} ({_reason(err)})") from None
        except EyesimError:
            os.close(fd)
            raise
        if _same_file(fd, key):
            _describe_holder(fd)
            return fd
        os.close(fd)  # the holder removed it between our open and our lock: lock the new one
    raise EyesimError(f"{output}: the lock file {key} keeps being replaced; is another sweep starting?")


def _release(key: Path, fd: int) -> None:
    """Remove the lock file while still holding it (so no one locks a removed file), then drop the lock."""
    try:
        if _same_file(fd, key):
            key.unlink()
    except OSError:
        pass
    finally:
        os.close(fd)


def _regular(fd: int) -> bool:
    return stat.S_ISREG(os.fstat(fd).st_mode)


def _same_file(fd: int, path: Path) -> bool:
    try:
        mine, now = os.fstat(fd), os.stat(path, follow_symlinks=False)
    except OSError:
        return False
    return (mine.st_dev, mine.st_ino) == (now.st_dev, now.st_ino)


def _describe_holder(fd: int) -> None:
    """Write who holds the lock into the lock file, for the message of a second writer."""
    started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime())
    program = Path(sys.argv[0]).name if sys.argv else ""
    program = "eyesim" if program == "__main__.py" else program  # python -m eyesim
    command = shlex.join([program, *sys.argv[1:]]) if sys.argv else ""
    text = json.dumps({"pid": os.getpid(), "started": started, "command": command[:300]})
    os.ftruncate(fd, 0)
    os.pwrite(fd, (text + "\n").encode(), 0)


def _holder(key: Path) -> str:
    """'pid 123, started 2024-05-01 10:00:00: eyesim sweep ...' from the lock file (it may be half written)."""
    try:
        with open(key, encoding="utf-8", errors="replace") as f:
            info = json.loads(f.read(4096))
        command = " ".join(str(info.get("command", "")).split())
        return f"pid {int(info['pid'])}, started {info.get('started', '?')}" + (f": {command}" if command else "")
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return f"its lock file {key} names no process yet"


def _reason(err: OSError) -> str:
    return err.strerror or str(err)


class Sink:
    """The output file: what it already holds, and chunks added and written atomically (whole file)."""

    def __init__(self, path: Path, job: SweepJob) -> None:
        self.path = path
        self.format = output_format(path)
        self._pa = import_pyarrow()
        self._columns = list(job.grid.columns)
        self._tables: list[Any] = []
        self._pending = 0
        self.done: set[tuple[Number, ...]] = set()
        if not path.parent.is_dir():
            raise EyesimError(f"{path}: the folder {path.parent} does not exist")
        self._target = path.resolve()  # a symlinked output is written through, not replaced by a file
        if self._target.exists():
            self._adopt(read_table(self._target), job)

    def _adopt(self, table: Any, job: SweepJob) -> None:
        names = table.column_names
        if "sweep_id" not in names or "layer" not in names or "model" not in names:
            raise EyesimError(f"{self.path}: exists and is not an eyesim sweep output; refusing to overwrite it")
        ids = set(table.column("sweep_id").unique().to_pylist())
        if ids != {job.sweep_id} and table.num_rows:
            theirs = ", ".join(config_columns(names))
            ours = ", ".join(job.grid.columns)
            raise EyesimError(f"{self.path}: holds another sweep (model {table.column('model')[0]}, swept {theirs}; "
                              f"this one: model {job.model}, swept {ours}, or other base hardware or area "
                              "constants); refusing to mix them, choose another output file")
        totals = table.filter(self._pa.compute.equal(table.column("layer"), TOTAL)).select(self._columns)
        self.done = set(zip(*(totals.column(c).to_pylist() for c in self._columns), strict=True))
        self._tables.append(table)

    def add(self, table: Any) -> None:
        self._tables.append(table)
        self._pending += 1

    @property
    def pending(self) -> bool:
        return self._pending > 0

    def remove_stale_temps(self) -> None:
        """Temporary files of earlier, killed writers of this output (only the lock holder may call this)."""
        pattern = re.compile(rf"\.{re.escape(self._target.name)}\.\d+\.tmp")
        for temp in self._target.parent.glob(f".{self._target.name}.*.tmp"):
            if pattern.fullmatch(temp.name):
                temp.unlink(missing_ok=True)

    def write(self) -> None:
        """Merge, sort by configuration and replace the file in one step (a kill leaves the old one)."""
        if not self._tables:
            return
        table = self._pa.concat_tables(self._tables, promote_options="permissive")
        table = table.sort_by([(c, "ascending") for c in self._columns])
        self._tables = [table]
        temp = self._target.with_name(f".{self._target.name}.{os.getpid()}.tmp")
        try:
            with open(temp, "wb") as out:
                if self.format == "parquet":
                    self._pa.parquet.write_table(table, out)
                else:
                    self._pa.csv.write_csv(map_text(self._pa, table, safe_cell), out,
                                           self._pa.csv.WriteOptions(quoting_style="needed"))
                out.flush()
                os.fsync(out.fileno())
            os.replace(temp, self._target)
        except OSError as err:
            temp.unlink(missing_ok=True)
            raise EyesimError(f"{self.path}: cannot write ({err.strerror or err})") from None
        self._pending = 0
