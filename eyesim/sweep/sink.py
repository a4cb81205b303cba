"""The output file as a sweep writes it: what it already holds (to resume), chunks added, atomic rewrites."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from eyesim.errors import EyesimError
from eyesim.sweep.grid import Number
from eyesim.sweep.job import SweepJob
from eyesim.sweep.output import TOTAL, config_columns, import_pyarrow, output_format, read_table


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
        if path.exists():
            self._adopt(read_table(path), job)

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

    def write(self) -> None:
        """Merge, sort by configuration and replace the file in one step (a kill leaves the old one)."""
        if not self._tables:
            return
        table = self._pa.concat_tables(self._tables, promote_options="permissive")
        table = table.sort_by([(c, "ascending") for c in self._columns])
        self._tables = [table]
        temp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        try:
            with open(temp, "wb") as out:
                if self.format == "parquet":
                    self._pa.parquet.write_table(table, out)
                else:
                    self._pa.csv.write_csv(table, out, self._pa.csv.WriteOptions(quoting_style="needed"))
                out.flush()
                os.fsync(out.fileno())
            os.replace(temp, self.path)
        except OSError as err:
            temp.unlink(missing_ok=True)
            raise EyesimError(f"{self.path}: cannot write ({err.strerror or err})") from None
        self._pending = 0
