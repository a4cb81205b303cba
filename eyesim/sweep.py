"""Sweep: estimate a model on a grid of hardware configurations, serially, on local processes or on Dask.

A grid is a list of axes; each axis sets one or more hardware fields (by dotted path) or the batch
size. Every configuration is estimated with the ordinary estimate (``eyesim.estimate``); a layer's
search result is reused across configurations that cannot change it (``ReuseMemo``). Results are
one row per (configuration, layer) plus a ``TOTAL`` row, written to Parquet or CSV in chunks that
are complete or absent, so a sweep can be killed and resumed. Spec and file format: docs/sweep.md.
"""

from __future__ import annotations

import difflib
import hashlib
import itertools
import json
import math
import multiprocessing
import os
import struct
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures import as_completed as futures_completed
from dataclasses import dataclass, field, replace
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pandas as pd

from eyesim import dataflow as df
from eyesim.area import AREA_COLUMNS, AreaModel
from eyesim.errors import EyesimError
from eyesim.estimator import Target, weight_stats
from eyesim.estimator import estimate as estimate_model
from eyesim.hardware import FIELDS, Hardware, hardware_to_dict, load_hardware, with_overrides
from eyesim.mapping import Mapping
from eyesim.model import layer_vector
from eyesim.onnx_import import load_workload
from eyesim.result import Result
from eyesim.workload import Workload
from eyesim.yamlio import read_yaml

Number = int | float
BATCH = "batch"
ARRAY = "array"  # shorthand: array=12x14 sets array.rows and array.cols
ARRAY_PATHS = ("array.rows", "array.cols")
TOTAL = "TOTAL"
OK_STATUS = "ok"
KINDS: dict[str, type] = {path: rule.kind for path, rule in FIELDS.items() if rule.kind in (int, float)}
HEAD = ("sweep_id", "model")  # columns before the configuration's
STRING_COLUMNS = ("sweep_id", "model", "layer", "status", "op", "mapping_source")
SUFFIXES = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv"}
_SPEC_KEYS = ("vary", "area")


# --- grid -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Axis:
    """One swept dimension: the fields it sets (dotted paths, or ``batch``) and its values, one tuple each."""

    paths: tuple[str, ...]
    values: tuple[tuple[Number, ...], ...]


@dataclass(frozen=True)
class Grid:
    """The cartesian product of the axes (last axis fastest); ``batch`` is used when no axis sets it."""

    axes: tuple[Axis, ...]
    batch: int = 1

    def __post_init__(self) -> None:
        seen: set[str] = set()
        for axis in self.axes:
            for path in axis.paths:
                if path in seen:
                    raise EyesimError(f"{path} is swept twice; give each field once")
                seen.add(path)

    @property
    def columns(self) -> tuple[str, ...]:
        """The configuration's columns: every swept path in axis order, and ``batch``."""
        paths = tuple(path for axis in self.axes for path in axis.paths)
        return paths if BATCH in paths else (*paths, BATCH)

    def __len__(self) -> int:
        return math.prod(len(axis.values) for axis in self.axes)

    def key(self, index: int) -> tuple[Number, ...]:
        """Configuration ``index`` as its values in ``columns`` order."""
        picked: list[Number] = []
        for axis in reversed(self.axes):
            index, at = divmod(index, len(axis.values))
            picked[:0] = axis.values[at]
        return tuple(picked) if len(picked) == len(self.columns) else (*picked, self.batch)

    def keys(self) -> Iterator[tuple[Number, ...]]:
        """Every configuration's values, in grid order."""
        for combo in itertools.product(*(axis.values for axis in self.axes)):
            picked = tuple(value for part in combo for value in part)
            yield picked if len(picked) == len(self.columns) else (*picked, self.batch)

    def batches(self) -> tuple[int, ...]:
        """The batch sizes the grid uses."""
        for axis in self.axes:
            if axis.paths == (BATCH,):
                return tuple(int(v[0]) for v in axis.values)
        return (self.batch,)


def parse_vary(text: str) -> Axis:
    """An axis from ``PATH=VALUES`` (the ``--vary`` syntax): ``glb.size_kb=32,64``, ``rf.words=64:512:64``,
    ``array=12x14,16x16``, ``batch=1,4``. Ranges ``start:stop[:step]`` include ``stop`` when it is on the grid."""
    path, sep, values = text.partition("=")
    path = path.strip()
    if not sep or not path or not values.strip():
        raise EyesimError(f"--vary {text}: expected PATH=VALUES, e.g. glb.size_kb=32,64,108 or rf.words=64:512:64")
    return make_axis(path, values, f"--vary {path}")


def make_axis(name: str, raw: Any, label: str) -> Axis:
    """An axis named ``name`` (a dotted path, ``batch``, ``array`` or a group label) from YAML or CLI values.

    ``raw`` is a comma-separated string, a number, a ``{from, to, step}`` range, or a list of these; a
    list of mappings ``{path: value, ...}`` (all with the same paths) sets several fields together.
    """
    if isinstance(raw, list) and raw and all(isinstance(item, dict) and "from" not in item for item in raw):
        return _group_axis(raw, label)
    paths = ARRAY_PATHS if name == ARRAY else (_check_path(name, label),)
    values: list[tuple[Number, ...]] = []
    for token in _tokens(raw, label):
        values.extend(_token_values(name, token, label))
    if not values:
        raise EyesimError(f"{label}: no values given")
    return Axis(paths, tuple(dict.fromkeys(values)))


def load_spec(path: str | os.PathLike[str]) -> tuple[list[Axis], AreaModel]:
    """Axes (``vary:``) and area constants (``area:``) of a YAML sweep-spec file (docs/sweep.md)."""
    label = str(path)
    data = read_yaml(path, "sweep spec")
    if not isinstance(data, dict) or not isinstance(data.get("vary"), dict) or not data["vary"]:
        raise EyesimError(f"{label}: a sweep spec is a mapping with a non-empty 'vary:' mapping of fields to values")
    unknown = sorted(set(map(str, data)) - set(_SPEC_KEYS))
    if unknown:
        raise EyesimError(f"{label}: unknown key {unknown[0]} (a sweep spec has {', '.join(_SPEC_KEYS)})")
    axes = [make_axis(str(name), raw, f"{label}: vary: {name}") for name, raw in data["vary"].items()]
    return axes, AreaModel.from_dict(data.get("area"), label)


def _check_path(path: str, label: str) -> str:
    if path == BATCH or path in KINDS:
        return path
    if path in FIELDS:
        raise EyesimError(f"{label}: {path} is not a numeric field and cannot be swept")
    known = [*KINDS, BATCH, ARRAY]
    close = difflib.get_close_matches(path, known, n=1, cutoff=0.6)
    hint = f" (did you mean {close[0]}?)" if close else " (see docs/hardware.md for the fields)"
    raise EyesimError(f"{label}: unknown field {path}{hint}")


def _tokens(raw: Any, label: str) -> list[Any]:
    """Flatten the raw values into single tokens: numbers, range strings, ``RxC`` strings, range mappings."""
    if isinstance(raw, list):
        return [token for item in raw for token in _tokens(item, label)]
    if isinstance(raw, str):
        parts = [part.strip() for part in raw.split(",")]
        if any(not part for part in parts):
            raise EyesimError(f"{label}: empty value in {raw!r}")
        return parts
    if isinstance(raw, dict | int | float) and not isinstance(raw, bool):
        return [raw]
    raise EyesimError(f"{label}: expected numbers, ranges or lists, got {raw!r}")


def _token_values(name: str, token: Any, label: str) -> list[tuple[Number, ...]]:
    if isinstance(token, dict):
        return [(v,) for v in _range_of_mapping(name, token, label)]
    if name == ARRAY:
        return [_array_shape(token, label)]
    if isinstance(token, str) and ":" in token:
        parts = token.split(":")
        if len(parts) not in (2, 3):
            raise EyesimError(f"{label}: range {token!r} must be start:stop or start:stop:step")
        return [(v,) for v in _range(name, *parts, label=label)]
    return [(_number(name, token, label),)]


def _range_of_mapping(name: str, token: dict, label: str) -> list[Number]:
    keys = set(map(str, token))
    if not {"from", "to"} <= keys or keys - {"from", "to", "step"}:
        raise EyesimError(f"{label}: a range mapping has keys from, to and optionally step; got {sorted(keys)}")
    return _range(name, token["from"], token["to"], token.get("step", 1), label=label)


def _range(name: str, start: Any, stop: Any, step: Any = 1, *, label: str) -> list[Number]:
    """Values start, start+step, ... up to stop, inclusive when stop falls on the grid (exact decimals)."""
    a, b, s = (_decimal(name, v, label) for v in (start, stop, step))
    shown = f"{start}:{stop}:{step}"
    if s <= 0:
        raise EyesimError(f"{label}: range {shown} has no values (step must be > 0)")
    if a > b:
        raise EyesimError(f"{label}: range {shown} has no values (start is above stop)")
    count = int((b - a) // s) + 1
    return [_typed(name, a + i * s, label) for i in range(count)]


def _number(name: str, token: Any, label: str) -> Number:
    return _typed(name, _decimal(name, token, label), label)


def _decimal(name: str, token: Any, label: str) -> Decimal:
    if isinstance(token, bool):
        raise EyesimError(f"{label}: {token!r} is not a number")
    try:
        value = Decimal(str(token).strip())
    except InvalidOperation:
        raise EyesimError(f"{label}: {token!r} is not a number") from None
    if not value.is_finite():
        raise EyesimError(f"{label}: {token!r} is not a finite number")
    return value


def _typed(name: str, value: Decimal, label: str) -> Number:
    """The value as the field's kind: an int for integer fields (and batch), else a float."""
    if KINDS.get(name, int) is float:
        return float(value)
    if value != value.to_integral_value():
        raise EyesimError(f"{label}: {name} takes integers, got {value}")
    number = int(value)
    if name == BATCH and number < 1:
        raise EyesimError(f"{label}: batch sizes must be >= 1, got {number}")
    return number


def _array_shape(token: Any, label: str) -> tuple[int, int]:
    text = str(token).lower().replace("×", "x")
    rows, sep, cols = text.partition("x")
    if not sep:
        raise EyesimError(f"{label}: array values are ROWSxCOLS such as 12x14, got {token!r}")
    return int(_number("array.rows", rows, label)), int(_number("array.cols", cols, label))


def _group_axis(items: list[dict], label: str) -> Axis:
    paths = tuple(str(p) for p in items[0])
    for item in items:
        if tuple(str(p) for p in item) != paths:
            raise EyesimError(f"{label}: every entry of a group must set the same fields {list(paths)}, got {item}")
    for path in paths:
        if path in (ARRAY, BATCH):
            raise EyesimError(f"{label}: a group sets hardware fields by dotted path, not {path}")
        _check_path(path, label)
    values = [tuple(_number(p, item[p], label) for p in paths) for item in items]
    return Axis(paths, tuple(dict.fromkeys(values)))


# --- the job: what every worker needs -------------------------------------------------------------


@dataclass(frozen=True)
class SweepJob:
    """A sweep as its workers see it: the model per batch size, the base hardware, the grid."""

    model: str
    workloads: dict[int, Workload]
    hardware: Hardware
    grid: Grid
    area: AreaModel = field(default_factory=AreaModel)
    reuse: bool = True
    proto: onnx.ModelProto | None = None  # the ONNX model when it holds weights (their zeros count)
    weight_density: tuple[tuple[str, float], ...] = ()  # per layer, when the model holds weights
    token: str = field(default_factory=lambda: uuid.uuid4().hex)  # tells jobs apart in a worker's memo

    @property
    def sweep_id(self) -> str:
        """Fingerprint of what makes two outputs one study: model, base hardware, swept columns, area model."""
        any_workload = next(iter(self.workloads.values()))
        layers = [{**layer.shape, "N": 0, "name": layer.name, "op": layer.op} for layer in any_workload.layers]
        ident = {"model": self.model, "layers": layers, "weights": self.weight_density,
                 "hardware": hardware_to_dict(self.hardware), "columns": self.grid.columns,
                 "area": self.area.as_dict()}
        return hashlib.sha256(json.dumps(ident, sort_keys=True, default=str).encode()).hexdigest()[:16]

    def overrides(self, key: tuple[Number, ...]) -> tuple[dict[str, Number], int]:
        """The hardware overrides and the batch size of the configuration ``key``."""
        values = dict(zip(self.grid.columns, key, strict=True))
        return {p: v for p, v in values.items() if p != BATCH}, int(values[BATCH])


def make_job(model: str | os.PathLike[str] | Workload, hw: str | os.PathLike[str] | Hardware, grid: Grid,
             area: AreaModel | None = None, reuse: bool = True) -> SweepJob:
    """Load the model (once per batch size the grid uses) and the base hardware."""
    base = hw if isinstance(hw, Hardware) else load_hardware(hw)
    if isinstance(model, Workload):
        workloads = {b: Workload(model.model, b, tuple(layer.with_batch(b) for layer in model.layers),
                                 model.not_modelled, model.io, model.inputs) for b in grid.batches()}
        proto, density = None, ()
    else:
        workloads = {b: load_workload(model, batch=b) for b in grid.batches()}
        proto, density = _weights(model, next(iter(workloads.values())), base.widths.weights)
    name = next(iter(workloads.values())).model
    return SweepJob(name, workloads, base, grid, area or AreaModel(), reuse, proto, density)


def _weights(path: str | os.PathLike[str], workload: Workload, bits: int) -> tuple[onnx.ModelProto | None, tuple]:
    """The model and its layers' weight densities if it holds weights (else the shapes are all there is)."""
    proto = onnx.load(str(path))
    density = tuple((name, stats[0]) for name, stats in weight_stats(proto, workload, bits).items())
    return (proto, density) if density else (None, ())


# --- reuse of search results ----------------------------------------------------------------------

_CAPACITY = np.array([df.HW_ROWS, df.HW_COLS, df.HW_RF_BITS, df.HW_RF_FILTER, df.HW_RF_IFMAP, df.HW_RF_PSUM,
                      df.HW_GLB_BITS])
_CAPACITY_FIELDS = ("array.", "rf.", "glb.size_kb", "glb.filter_kb")  # enter the search through _CAPACITY only
_TIME_ONLY_FIELDS = ("name", "clock_mhz", "dram.", "energy.pj_per_unit", "energy.provenance.")  # not the search
_CANDIDATES = 4  # dominating entries tried before a full search


class ReuseMemo:
    """Searched optima, reused where they provably are the optimum again.

    The energy of a mapping depends on the layer, the costs, the bit widths, the zero effects and
    whether the GLB stages filters, never on the capacities (array size, RF, GLB), which only decide
    which mappings are legal; and a larger capacity never makes a legal mapping illegal. So if
    configuration A has every capacity >= B's and all else that enters the search equal, B's
    mappings are a subset of A's, and A's optimum, when legal on B, is B's optimum (same energy,
    same tie-break). Equal capacities are the exact case (e.g. configurations that differ only in
    clock or DRAM link, which enter the time but not the search).
    """

    def __init__(self, limit: int = 500_000) -> None:
        self._limit = limit
        self._size = 0
        self.hits = 0  # lookups answered
        self._entries: dict[bytes, _Entries] = {}

    def clear(self) -> None:
        self._entries.clear()
        self._size = 0

    @staticmethod
    def context(target: Target, overrides: dict[str, Number]) -> tuple[bytes, np.ndarray]:
        """What must be equal for reuse, and the capacities. Within one job only the overrides change the
        hardware; all of them but the capacities and the time-only fields are part of the context."""
        rest = target.vec.copy()
        rest[_CAPACITY] = 0
        search = sorted((p, v) for p, v in overrides.items() if not p.startswith(_CAPACITY_FIELDS + _TIME_ONLY_FIELDS))
        extra = repr(search).encode()
        return rest.tobytes() + target.cost.tobytes() + struct.pack("d", target.mac_cost) + extra, target.vec[_CAPACITY]

    def lookup(self, context: tuple[bytes, np.ndarray], layer: bytes, lv: np.ndarray,
               hw_vec: np.ndarray) -> Mapping | None:
        """The optimum of the layer (``layer``: its key) on this hardware if a stored one provably is it."""
        entry = self._entries.get(context[0] + layer)
        if entry is None:
            return None
        for at in entry.tightest_above(context[1]):
            if df.first_violation(lv, hw_vec, entry.vectors[at]) == df.OK:
                self.hits += 1
                return entry.mappings[at]
        return None

    def record(self, context: tuple[bytes, np.ndarray], layer: bytes, mapping: Mapping) -> None:
        if self._size >= self._limit:
            self.clear()
        self._entries.setdefault(context[0] + layer, _Entries()).add(context[1], mapping)
        self._size += 1


class _Entries:
    """The optima stored for one layer and context: capacity vectors (a growing array) and mappings."""

    def __init__(self) -> None:
        self.caps = np.empty((4, len(_CAPACITY)), dtype=np.int64)
        self.count = 0
        self.vectors: list[np.ndarray] = []
        self.mappings: list[Mapping] = []

    def add(self, caps: np.ndarray, mapping: Mapping) -> None:
        if self.count == len(self.caps):
            self.caps = np.concatenate([self.caps, np.empty_like(self.caps)])
        self.caps[self.count] = caps
        self.count += 1
        self.vectors.append(mapping.vector())
        self.mappings.append(mapping)

    def tightest_above(self, caps: np.ndarray) -> np.ndarray:
        """Up to _CANDIDATES entries whose capacities are all >= ``caps``, the closest first."""
        stored = self.caps[: self.count]
        above = np.flatnonzero((stored >= caps).all(axis=1))
        if len(above) > _CANDIDATES:
            excess = (stored[above] / np.maximum(caps, 1)).sum(axis=1)
            above = above[np.argsort(excess, kind="stable")[:_CANDIDATES]]
        return above


_MEMOS: dict[str, ReuseMemo] = {}  # per process, for one job at a time: kept across its chunks
_INSTALLED: dict[str, SweepJob] = {}  # the job of a local worker process


def _memo(job: SweepJob) -> ReuseMemo:
    if job.token not in _MEMOS:
        _MEMOS.clear()
        _MEMOS[job.token] = ReuseMemo()
    return _MEMOS[job.token]


def clear_reuse_memo() -> None:
    """Forget every stored search result of this process (benchmarks call this between runs)."""
    _MEMOS.clear()


# --- evaluating configurations --------------------------------------------------------------------


def evaluate_chunk(job: SweepJob, indices: Sequence[int]) -> pd.DataFrame:
    """Rows of the configurations ``indices``: each layer, then ``TOTAL``; an invalid one gets one row."""
    sweep_id = job.sweep_id
    heads, bodies = [], []
    for index in indices:
        key = job.grid.key(index)
        status, area, body = _evaluate_config(job, key)
        heads.append((sweep_id, job.model, *key, status, *area))
        bodies.append(body)
    counts = np.array([len(body) for body in bodies])
    columns = [*HEAD, *job.grid.columns, "status", *AREA_COLUMNS]
    head = pd.DataFrame(heads, columns=columns).iloc[np.repeat(np.arange(len(heads)), counts)]
    body = pd.DataFrame([row for rows in bodies for row in rows]).rename(columns={"name": "layer"})
    frame = pd.concat([head.reset_index(drop=True), body], axis=1)
    first = [*HEAD, *job.grid.columns, "layer", "status", *AREA_COLUMNS]
    return frame[first + [c for c in frame.columns if c not in first]]


@dataclass(frozen=True)
class Chunk:
    """The rows of some configurations as an Arrow table (made where they were computed), and counts."""

    table: Any
    configurations: int
    invalid: int
    layers: int  # (configuration, layer) rows estimated


def evaluate_rows(job: SweepJob, indices: Sequence[int]) -> Chunk:
    """``evaluate_chunk`` as an Arrow table with its counts: what every kind of worker sends back."""
    frame = evaluate_chunk(job, indices)
    totals = frame["layer"] == TOTAL
    invalid = int((totals & (frame["status"] != OK_STATUS)).sum())
    table = _pyarrow().Table.from_pandas(frame, preserve_index=False)
    return Chunk(table, int(totals.sum()), invalid, int((~totals).sum()))


def _evaluate_config(job: SweepJob, key: tuple[Number, ...]) -> tuple[str, tuple[float, ...], list[dict]]:
    """Status, area and estimate rows (the estimate's CSV form) of one configuration."""
    overrides, batch = job.overrides(key)
    try:
        hw = with_overrides(job.hardware, overrides) if overrides else job.hardware
    except EyesimError as err:
        return f"invalid: {err}", (math.nan,) * len(AREA_COLUMNS), _invalid_rows()
    area = tuple(job.area.of(hw)[c] for c in AREA_COLUMNS)
    try:
        result = _estimate(job, job.workloads[batch], hw, overrides)
    except EyesimError as err:
        return f"invalid: {err}", area, _invalid_rows()
    return OK_STATUS, area, result.rows()


def _invalid_rows() -> list[dict]:
    return [{"name": TOTAL}]


def _estimate(job: SweepJob, workload: Workload, hw: Hardware, overrides: dict[str, Number]) -> Result:
    """The ordinary estimate; layers whose optimum is known are passed in as mappings (then marked searched)."""
    model = workload if job.proto is None else job.proto
    if not job.reuse:
        return estimate_model(model, hw, batch=workload.batch)
    memo = _memo(job)
    target = Target.of(hw)
    context = memo.context(target, overrides)
    vectors = {layer.name: layer_vector(layer) for layer in workload.layers}
    keys = {name: name.encode() + b"\0" + lv.tobytes() for name, lv in vectors.items()}
    known = {} if len(vectors) < len(workload.layers) else {
        name: found for name, lv in vectors.items()
        if (found := memo.lookup(context, keys[name], lv, target.vec)) is not None}
    result = estimate_model(model, hw, batch=workload.batch, mapping=known or None)
    for lr in result.layers:
        if lr.layer.name not in known:
            memo.record(context, keys[lr.layer.name], lr.mapping)
    if not known:
        return result
    layers = tuple(replace(lr, pinned=False) if lr.layer.name in known else lr for lr in result.layers)
    return replace(result, layers=layers)


# --- where chunks run: in process, local processes, Dask ------------------------------------------


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


def _install(job: SweepJob) -> None:
    _INSTALLED["job"] = job
    _MEMOS.clear()  # a forked worker starts with nothing stored, like a spawned one


def _evaluate_installed(indices: Sequence[int]) -> Chunk:
    return evaluate_rows(_INSTALLED["job"], indices)


class _Processes:
    """A pool of local processes, each holding the job once."""

    def __init__(self, job: SweepJob, workers: int) -> None:
        method = "fork" if sys.platform == "linux" else "spawn"
        self.workers = workers
        self._pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context(method),
                                         initializer=_install, initargs=(job,))

    def submit(self, indices: Sequence[int]) -> Future:
        return self._pool.submit(_evaluate_installed, list(indices))

    def completed(self, futures: Iterable[Future]) -> Iterator[Future]:
        return futures_completed(list(futures))

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


class _Dask:
    """A Dask distributed client: an existing scheduler, or a LocalCluster started (and closed) here."""

    def __init__(self, job: SweepJob, scheduler: str | None, dask_workers: int | None, timeout: float) -> None:
        distributed = _import_dask()
        self._cluster = None
        if scheduler is None:
            self._cluster = distributed.LocalCluster(n_workers=dask_workers, threads_per_worker=1, processes=True,
                                                     dashboard_address=None, silence_logs=40)
            self._client = distributed.Client(self._cluster)
        else:
            self._client = _connect(distributed, scheduler, timeout)
        self._distributed = distributed
        self.workers = max(1, len(self._client.scheduler_info().get("workers", {})))
        self._job = self._client.scatter(job, broadcast=True)

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


# --- the output file ------------------------------------------------------------------------------


def _pyarrow() -> Any:
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
    pa = _pyarrow()
    path = Path(path)
    fmt = output_format(path)
    try:
        if fmt == "parquet":
            return pa.parquet.read_table(path)
        types = {name: pa.string() for name in STRING_COLUMNS}
        convert = pa.csv.ConvertOptions(column_types=types, strings_can_be_null=True, quoted_strings_can_be_null=False)
        return pa.csv.read_csv(path, convert_options=convert)
    except FileNotFoundError:
        raise EyesimError(f"{path}: file not found") from None
    except (OSError, pa.ArrowException) as err:
        raise EyesimError(f"{path}: cannot read as {fmt} ({' '.join(str(err).split())[:200]})") from None


def read_sweep(path: str | os.PathLike[str]) -> pd.DataFrame:
    """A sweep output as a DataFrame (checked to be one)."""
    table = read_table(path)
    if "sweep_id" not in table.column_names or "layer" not in table.column_names:
        raise EyesimError(f"{path}: not an eyesim sweep output (no sweep_id and layer columns)")
    return table.to_pandas()


def config_columns(columns: Sequence[str]) -> list[str]:
    """The configuration columns of a sweep output: those between ``model`` and ``layer``."""
    names = list(columns)
    return names[names.index("model") + 1: names.index("layer")]


class _Sink:
    """The output file: what it already holds, and chunks added and written atomically (whole file)."""

    def __init__(self, path: Path, job: SweepJob) -> None:
        self.path = path
        self.format = output_format(path)
        self._pa = _pyarrow()
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


# --- running a sweep ------------------------------------------------------------------------------


@dataclass(frozen=True)
class SweepSummary:
    """What a run did."""

    output: Path
    configurations: int  # in the grid
    skipped: int  # already in the output
    evaluated: int  # configurations evaluated by this run
    invalid: int  # of those, invalid ones
    layer_evaluations: int  # (configuration, layer) pairs estimated by this run
    seconds: float
    workers: int


def run_sweep(job: SweepJob, output: str | os.PathLike[str], *, workers: int | None = None,
              scheduler: str | None = None, dask_workers: int | None = None, scheduler_timeout: float = 10.0,
              chunk_size: int | None = None, progress: bool = False, flush_seconds: float = 5.0,
              on_chunk: Callable[[int], None] | None = None) -> SweepSummary:
    """Evaluate every configuration of ``job`` not yet in ``output`` and write them there.

    Runs serially (``workers=1``), on ``workers`` local processes (default: all cores), on the Dask
    scheduler at ``scheduler``, or on a LocalCluster of ``dask_workers`` processes. The file is
    rewritten (atomically) at most every ``flush_seconds`` and at the end; its rows are sorted by
    configuration, so the result does not depend on how the work was split.
    """
    start = time.perf_counter()
    sink = _Sink(Path(output), job)
    keys = list(job.grid.keys())  # largest values first: their optima are reused by the smaller configurations
    todo = sorted((i for i, key in enumerate(keys) if key not in sink.done), key=keys.__getitem__, reverse=True)
    backend = _backend(job, len(todo), workers, scheduler, dask_workers, scheduler_timeout)
    counts = _Counts()
    try:
        futures = [backend.submit(chunk) for chunk in _chunks(todo, chunk_size or _chunk_size(len(todo),
                                                                                                backend.workers))]
        with _progress_bar(len(todo), progress) as bar:
            for chunk in _collect(backend, futures, sink, flush_seconds):
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
                        counts.layers, time.perf_counter() - start, backend.workers)


@dataclass
class _Counts:
    configurations: int = 0
    invalid: int = 0
    layers: int = 0

    def add(self, chunk: Chunk) -> None:
        self.configurations += chunk.configurations
        self.invalid += chunk.invalid
        self.layers += chunk.layers


def _collect(backend: Any, futures: list[Any], sink: _Sink, flush_seconds: float) -> Iterator[Chunk]:
    """Each finished chunk, added to the sink; the file is rewritten when due (at most a fifth of the time)."""
    last, write_s = time.monotonic(), 0.0
    for future in backend.completed(futures):
        chunk = future.result()
        sink.add(chunk.table)
        yield chunk
        if time.monotonic() - last >= max(flush_seconds, 4 * write_s):
            began = time.monotonic()
            sink.write()
            last, write_s = time.monotonic(), time.monotonic() - began


def _backend(job: SweepJob, todo: int, workers: int | None, scheduler: str | None, dask_workers: int | None,
             timeout: float) -> _Serial | _Processes | _Dask:
    if scheduler is not None and dask_workers is not None:
        raise EyesimError("give either --scheduler (an existing Dask cluster) or --dask-workers (a local one)")
    if todo == 0:
        return _Serial(job)  # nothing to do: no pool, no cluster
    if scheduler is not None or dask_workers is not None:
        if dask_workers is not None and dask_workers < 1:
            raise EyesimError(f"--dask-workers must be >= 1, got {dask_workers}")
        return _Dask(job, scheduler, dask_workers, timeout)
    count = workers if workers is not None else (os.cpu_count() or 1)
    if count < 1:
        raise EyesimError(f"--workers must be >= 1, got {count}")
    return _Serial(job) if count == 1 or todo < 2 else _Processes(job, min(count, todo))


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
