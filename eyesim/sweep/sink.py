"""The output file as a sweep writes it: one writer at a time (a lock), what it holds (to resume), atomic rewrites."""

from __future__ import annotations

import bisect
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
    """The output file: what it already holds, and chunks added and written atomically (whole file).

    Parquet is streamed: the file on disk is the sorted record of what is done, and each write merges the
    pending chunks (sorted) into it row group by row group, into a temporary file renamed over it, so memory
    holds one row group of the file and the pending rows, whatever the size of the study. A CSV is rewritten
    from a table kept in memory (reading a CSV back in pieces would guess its column types per piece).
    """

    def __init__(self, path: Path, job: SweepJob) -> None:
        self.path = path
        self.format = output_format(path)
        self._pa = import_pyarrow()
        self._columns = list(job.grid.columns)
        self._tables: list[Any] = []
        self._pending = 0
        self.pending_rows = 0
        self.done: set[tuple[Number, ...]] = set()
        if not path.parent.is_dir():
            raise EyesimError(f"{path}: the folder {path.parent} does not exist")
        self._target = path.resolve()  # a symlinked output is written through, not replaced by a file
        self._on_disk = False  # the target holds rows this sink merges into (Parquet)
        if self._target.exists():
            if self.format == "parquet":
                self._adopt_parquet(job)
            else:
                self._adopt(read_table(self._target), job)

    def _check(self, names: list[str], ids: set, model: object, job: SweepJob) -> None:
        if "sweep_id" not in names or "layer" not in names or "model" not in names:
            raise EyesimError(f"{self.path}: exists and is not an eyesim sweep output; refusing to overwrite it")
        if ids and (ids != {job.sweep_id} or not set(self._columns) <= set(names)):
            theirs = ", ".join(config_columns(names))
            ours = ", ".join(job.grid.columns)
            raise EyesimError(f"{self.path}: holds another sweep (model {model}, swept {theirs}; "
                              f"this one: model {job.model}, swept {ours}, or other base hardware or area "
                              "constants); refusing to mix them, choose another output file")

    def _adopt(self, table: Any, job: SweepJob) -> None:
        names = table.column_names
        ids = set(table.column("sweep_id").unique().to_pylist()) if "sweep_id" in names else set()
        self._check(names, ids, table.column("model")[0] if ids else None, job)
        self.done = self._keys(table)
        self._tables.append(table)

    def _adopt_parquet(self, job: SweepJob) -> None:
        """What a Parquet output holds, read a batch of its sweep_id, model, layer and configuration at a time."""
        pa = self._pa
        try:
            parquet = pa.parquet.ParquetFile(self._target)
            names = parquet.schema_arrow.names
            self._check(names, {"?"} if "sweep_id" not in names else set(), None, job)
            wanted = ["sweep_id", "model", "layer", *(c for c in self._columns if c in names)]
            ids, model = set(), None
            for batch in parquet.iter_batches(batch_size=_BATCH_ROWS, columns=wanted):
                ids |= set(batch.column(0).unique().to_pylist())
                model = batch.column(1)[0] if model is None and batch.num_rows else model
                self._check(names, ids, model, job)
                self.done |= self._keys(pa.Table.from_batches([batch]))
        except (OSError, pa.ArrowException) as err:
            raise EyesimError(f"{self.path}: cannot read as parquet ({' '.join(str(err).split())[:200]})") from None
        self._on_disk = True

    def _keys(self, table: Any) -> set[tuple[Number, ...]]:
        totals = table.filter(self._pa.compute.equal(table.column("layer"), TOTAL)).select(self._columns)
        return set(zip(*(totals.column(c).to_pylist() for c in self._columns), strict=True))

    def add(self, table: Any) -> None:
        self._tables.append(table)
        self._pending += 1
        self.pending_rows += table.num_rows

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
        temp = self._target.with_name(f".{self._target.name}.{os.getpid()}.tmp")
        try:
            with open(temp, "wb") as out:
                if self.format == "parquet":
                    self._write_parquet(out)
                else:
                    self._write_csv(out)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temp, self._target)
        except OSError as err:
            temp.unlink(missing_ok=True)
            raise EyesimError(f"{self.path}: cannot write ({err.strerror or err})") from None
        except self._pa.ArrowException as err:  # the file changed under us since it was read
            temp.unlink(missing_ok=True)
            raise EyesimError(f"{self.path}: cannot merge into it ({' '.join(str(err).split())[:200]})") from None
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
        if self.format == "parquet":
            self._tables, self._on_disk = [], True
        self._pending = self.pending_rows = 0

    def _write_csv(self, out: Any) -> None:
        table = self._pa.concat_tables(self._tables, promote_options="permissive")
        table = table.sort_by([(c, "ascending") for c in self._columns])
        self._tables = [table]
        self._pa.csv.write_csv(map_text(self._pa, table, safe_cell), out,
                               self._pa.csv.WriteOptions(quoting_style="needed"))

    def _write_parquet(self, out: Any) -> None:
        """The file's rows and the pending ones, merged in configuration order, one row group at a time."""
        pa = self._pa
        new = pa.concat_tables(self._tables, promote_options="permissive")
        new = new.sort_by([(c, "ascending") for c in self._columns])
        old = pa.parquet.ParquetFile(self._target) if self._on_disk else None
        schemas = [old.schema_arrow] if old is not None else []
        schema = pa.unify_schemas([*schemas, new.schema], promote_options="permissive").remove_metadata()
        keys = list(zip(*(new.column(c).to_pylist() for c in self._columns), strict=True))
        at = 0
        with pa.parquet.ParquetWriter(out, schema) as writer:
            for batch in old.iter_batches(batch_size=_BATCH_ROWS) if old is not None else ():
                piece = pa.Table.from_batches([batch])
                last = tuple(piece.column(c)[-1].as_py() for c in self._columns)
                end = bisect.bisect_right(keys, last, lo=at)  # new configurations before the batch's last one
                merged = pa.concat_tables([_conform(pa, piece, schema), _conform(pa, new.slice(at, end - at), schema)])
                writer.write_table(merged.sort_by([(c, "ascending") for c in self._columns]), _BATCH_ROWS)
                at = end
            if at < len(keys) or old is None:
                writer.write_table(_conform(pa, new.slice(at), schema), _BATCH_ROWS)


_BATCH_ROWS = 65_536  # rows per Parquet row group, and per batch read back while merging


def _conform(pa: Any, table: Any, schema: Any) -> Any:
    """``table`` with ``schema``'s columns in its order (nulls where it has none), cast to its types."""
    columns = [table.column(f.name).cast(f.type) if f.name in table.column_names else pa.nulls(len(table), f.type)
               for f in schema]
    return pa.Table.from_arrays(columns, schema=schema)
