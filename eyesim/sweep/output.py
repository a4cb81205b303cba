"""The sweep output file: its columns and formats (Parquet or CSV, through pyarrow), and reading it back."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from eyesim.errors import EyesimError
from eyesim.result import unsafe_cell

TOTAL = "TOTAL"
OK_STATUS = "ok"
HEAD = ("sweep_id", "model")  # columns before the configuration's
STRING_COLUMNS = ("sweep_id", "model", "layer", "status", "op", "mapping_source")
SUFFIXES = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv"}


def import_pyarrow() -> Any:
    try:
        import pyarrow
        import pyarrow.csv
        import pyarrow.parquet
    except ImportError:
        raise EyesimError("pyarrow is not installed; pip install 'eyesim[sweep]' to run sweeps") from None
    return pyarrow


def output_format(path: Path) -> str:
    """``parquet`` or ``csv``, by the file's suffix."""
    fmt = SUFFIXES.get(path.suffix.lower())
    if fmt is None:
        raise EyesimError(f"{path}: sweep output must end in .parquet or .csv")
    return fmt


def read_table(path: str | os.PathLike[str]) -> Any:
    """A sweep (or other) output file as an Arrow table; text columns stay text."""
    pa = import_pyarrow()
    path = Path(path)
    fmt = output_format(path)
    try:
        if fmt == "parquet":
            return pa.parquet.read_table(path)
        types = {name: pa.string() for name in STRING_COLUMNS}
        convert = pa.csv.ConvertOptions(column_types=types, strings_can_be_null=True, quoted_strings_can_be_null=False)
        return _unquote_text(pa, pa.csv.read_csv(path, convert_options=convert))
    except FileNotFoundError:
        raise EyesimError(f"{path}: file not found") from None
    except (OSError, pa.ArrowException) as err:
        raise EyesimError(f"{path}: cannot read as {fmt} ({' '.join(str(err).split())[:200]})") from None


def map_text(pa: Any, table: Any, cell: Callable[[object], object]) -> Any:
    """``table`` with ``cell`` applied to every text cell, once per distinct value (names repeat on every row)."""
    for i, column in enumerate(table.columns):
        if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
            continue
        distinct = column.unique()
        mapped = pa.array([cell(v) for v in distinct.to_pylist()], type=column.type)
        if not mapped.equals(distinct):
            table = table.set_column(i, table.field(i), mapped.take(pa.compute.index_in(column, value_set=distinct)))
    return table


def _unquote_text(pa: Any, table: Any) -> Any:
    """A CSV as eyesim wrote it, with the quote that kept text from running as a formula taken off again."""
    return map_text(pa, table, unsafe_cell)


def read_sweep(path: str | os.PathLike[str]) -> pd.DataFrame:
    """A sweep output as a DataFrame (checked to be one)."""
    table = read_table(path)
    if "sweep_id" not in table.column_names or "layer" not in table.column_names:
        raise EyesimError(f"{path}: not an eyesim sweep output (no sweep_id and layer columns)")
    return integer_frame(import_pyarrow(), table)


def integer_frame(pa: Any, table: Any) -> pd.DataFrame:
    """``table`` as a DataFrame whose integer columns stay integer: nullable Int64 where they have gaps."""
    frame = table.to_pandas()
    nullable = {pa.int64(): pd.Int64Dtype()}.get
    for name, column in zip(table.column_names, table.columns, strict=True):
        if pa.types.is_integer(column.type) and column.null_count:
            frame[name] = column.cast(pa.int64()).to_pandas(types_mapper=nullable)
    return frame


def config_columns(columns: Sequence[str]) -> list[str]:
    """The configuration columns of a sweep output: those between ``model`` and ``layer``."""
    names = list(columns)
    return names[names.index("model") + 1: names.index("layer")]
