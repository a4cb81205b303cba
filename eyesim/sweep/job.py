"""The job of a sweep, as every worker sees it, and the rows of a chunk of its configurations."""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import os
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import onnx
import pandas as pd

from eyesim.cost.counts import layer_vector
from eyesim.errors import EyesimError
from eyesim.estimator import Target, weight_stats
from eyesim.estimator import estimate as estimate_model
from eyesim.hardware.area import AREA_COLUMNS, AreaModel
from eyesim.hardware.load import load_hardware, with_overrides
from eyesim.hardware.spec import Hardware, hardware_to_dict
from eyesim.result import Result, frame_of_rows, layer_row
from eyesim.sweep.grid import BATCH, Grid, Number
from eyesim.sweep.output import HEAD, OK_STATUS, TOTAL, import_pyarrow
from eyesim.sweep.reuse import ReuseMemo, memo_for
from eyesim.workload.layer import Workload
from eyesim.workload.limits import rebatched
from eyesim.workload.onnx.load import load_workload
from eyesim.workload.onnx.opsets import upgraded
from eyesim.workload.onnx.run import load_model
from eyesim.workload.torch_export import as_model


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
    input_shapes: tuple[tuple[str, tuple[int, ...]], ...] = ()  # --input-shape: whole shapes of data inputs
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
             area: AreaModel | None = None, reuse: bool = True,
             input_shapes: dict[str, tuple[int, ...]] | None = None, *, example_inputs=None,
             exporter: str | None = None, opset: int | None = None) -> SweepJob:
    """Load the model (once per batch size the grid uses) and the base hardware.

    A ``torch.nn.Module`` is exported on ``example_inputs`` first, as ``eyesim.estimate`` does.
    """
    model = as_model(model, example_inputs, exporter, opset)
    base = hw if isinstance(hw, Hardware) else load_hardware(hw)
    if isinstance(model, Workload):
        if input_shapes:
            raise EyesimError("input shapes need the ONNX model, not a Workload")
        workloads = {b: rebatched(model, b) for b in grid.batches()}
        proto, density = None, ()
    else:
        workloads = {b: load_workload(model, batch=b, input_shapes=input_shapes) for b in grid.batches()}
        proto, density = _weights(model, next(iter(workloads.values())), base.widths.weights)
    name = next(iter(workloads.values())).model
    return SweepJob(name, workloads, base, grid, area or AreaModel(), reuse, proto, density,
                    tuple((input_shapes or {}).items()))


def _weights(path: str | os.PathLike[str] | onnx.ModelProto, workload: Workload,
             bits: int) -> tuple[onnx.ModelProto | None, tuple]:
    """The model and its layers' weight densities if it holds weights (else the shapes are all there is)."""
    proto = upgraded(path) if isinstance(path, onnx.ModelProto) else load_model(path)  # load_model upgrades too
    density = tuple((name, stats[0]) for name, stats in weight_stats(proto, workload, bits).items())
    return (proto, density) if density else (None, ())


def evaluate_chunk(job: SweepJob, indices: Sequence[int]) -> pd.DataFrame:
    """Rows of the configurations ``indices``: each layer, then ``TOTAL``; an invalid one gets one row."""
    return _frame(job, *_evaluated(job, indices))


def _evaluated(job: SweepJob, indices: Sequence[int]) -> tuple[list[tuple], list[list[dict]]]:
    """Per configuration: its head (id, model, grid values, status, area) and its layer rows."""
    sweep_id = job.sweep_id  # a hash of the whole job: once per chunk
    heads, bodies = [], []
    for index in indices:
        key = job.grid.key(index)
        status, area, body = _evaluate_config(job, key)
        heads.append((sweep_id, job.model, *key, status, *area))
        bodies.append(body)
    return heads, bodies


def _frame(job: SweepJob, heads: list[tuple], bodies: list[list[dict]]) -> pd.DataFrame:
    """The rows of evaluated configurations as a DataFrame, the head repeated on each of its layer rows."""
    counts = np.array([len(body) for body in bodies])
    columns = [*HEAD, *job.grid.columns, "status", *AREA_COLUMNS]
    head = pd.DataFrame(heads, columns=columns).iloc[np.repeat(np.arange(len(heads)), counts)]
    body = frame_of_rows([row for rows in bodies for row in rows]).rename(columns={"name": "layer"})
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
    """The rows of ``evaluate_chunk`` as an Arrow table with its counts: what every kind of worker sends back.

    Built column by column from the rows (no DataFrame): a sixth of a configuration's time went to pandas.
    Types are those ``evaluate_chunk`` gives through ``Table.from_pandas`` (NaN and None are null).
    """
    pa = import_pyarrow()
    heads, bodies = _evaluated(job, indices)
    try:
        table = _arrow_rows(pa, job, heads, bodies)
    except (pa.ArrowException, OverflowError, TypeError):  # an integer beyond 64 bits: as pandas stores it
        table = pa.Table.from_pandas(_frame(job, heads, bodies), preserve_index=False)
    invalid = sum(head[len(HEAD) + len(job.grid.columns)] != OK_STATUS for head in heads)
    return Chunk(table, len(heads), invalid, sum(len(body) for body in bodies) - len(bodies))


def _arrow_rows(pa: Any, job: SweepJob, heads: list[tuple], bodies: list[list[dict]]) -> Any:
    """One row per (configuration, body row): the head repeated, then the body's columns (first-seen order).

    Rows with the same columns (every layer row, every TOTAL row) are turned into columns together, by ``zip``.
    """
    names = [*HEAD, *job.grid.columns, "status", *AREA_COLUMNS]
    counts = [len(body) for body in bodies]
    columns: dict[str, list] = {name: list(itertools.chain.from_iterable(map(itertools.repeat, values, counts)))
                                for name, values in zip(names, list(zip(*heads, strict=True)) or [()] * len(names),
                                                    strict=True)}
    rows = [row for body in bodies for row in body]
    groups: dict[tuple[str, ...], list[int]] = {}
    for at, row in enumerate(rows):
        groups.setdefault(tuple(row), []).append(at)
    body: dict[str, list] = {}
    for keys, where in groups.items():
        values = zip(*(rows[at].values() for at in where), strict=True)
        for key, column in zip(keys, values, strict=True):
            if len(where) == len(rows):
                body[key] = list(column)
                continue
            into = body.setdefault(key, [None] * len(rows))
            for at, value in zip(where, column, strict=True):
                into[at] = value
    columns.update(("layer" if key == "name" else key, column) for key, column in body.items())
    first = [*HEAD, *job.grid.columns, "layer", "status", *AREA_COLUMNS]
    order = first + [c for c in columns if c not in first]
    arrays = (pa.array(columns[name], from_pandas=True) for name in order)
    return pa.table(dict(zip(order, (a.cast(pa.large_string()) if pa.types.is_string(a.type) else a for a in arrays),
                             strict=True)))  # text as pandas hands it to Arrow: files stay as they were


def _evaluate_config(job: SweepJob, key: tuple[Number, ...]) -> tuple[str, tuple[float, ...], list[dict]]:
    """Status, area and estimate rows (the estimate's CSV form) of one configuration."""
    overrides, batch = job.overrides(key)
    hw, area = _hardware(job, overrides)
    if isinstance(hw, str):
        return hw, area, _invalid_rows()
    try:
        result, rows = _estimate(job, job.workloads[batch], hw, overrides)
    except EyesimError as err:
        return f"invalid: {err}", area, _invalid_rows()
    return OK_STATUS, area, result.rows(rows)


_HARDWARE: dict[tuple, tuple[Hardware | str, tuple[float, ...]]] = {}  # per process: one job's built hardware
_HARDWARE_LIMIT = 4096


def _hardware(job: SweepJob, overrides: dict[str, Number]) -> tuple[Hardware | str, tuple[float, ...]]:
    """The validated hardware of ``overrides`` and its area, or the reason it is invalid, built once per job:
    configurations that differ only in the batch share it (validating a hardware file costs a millisecond)."""
    key = (job.token, *overrides.items())
    found = _HARDWARE.get(key)
    if found is None:
        if len(_HARDWARE) >= _HARDWARE_LIMIT or (_HARDWARE and next(iter(_HARDWARE))[0] != job.token):
            _HARDWARE.clear()
        try:
            hw = with_overrides(job.hardware, overrides) if overrides else job.hardware
            found = hw, tuple(job.area.of(hw)[c] for c in AREA_COLUMNS)
        except EyesimError as err:
            found = f"invalid: {err}", (math.nan,) * len(AREA_COLUMNS)
        _HARDWARE[key] = found
    return found


def _invalid_rows() -> list[dict]:
    return [{"name": TOTAL}]


def _memo(job: SweepJob) -> ReuseMemo:
    return memo_for(job.token)


def _estimate(job: SweepJob, workload: Workload, hw: Hardware,
              overrides: dict[str, Number]) -> tuple[Result, list[dict] | None]:
    """The ordinary estimate and its layers' rows (None: not kept, ``Result.rows`` makes them); layers whose
    optimum is known are passed in as mappings (then marked searched).

    A layer whose optimum is known and whose whole result was kept from a configuration that differs in pure
    capacities only (which decide legality, never a mapping's counts, energy or time) takes that result and its
    row; of a model without weights only the other layers are estimated (their zeros do not depend on each other).
    """
    model = workload if job.proto is None else job.proto
    shapes = dict(job.input_shapes) if job.proto is not None and job.input_shapes else None
    keys = _layer_keys(job, workload) if job.reuse else None
    if keys is None:  # no reuse, or two layers share a name: nothing to key them by
        return estimate_model(model, hw, batch=workload.batch, input_shapes=shapes), None
    memo, target = _memo(job), Target.of(hw)
    context = memo.context(target, overrides)
    kept_context = memo.result_context(context, overrides)
    known = {name: found for name, (key, lv) in keys.items()
             if (found := memo.lookup(context, key, lv, target.vec)) is not None}
    kept = {name: entry for name, mp in known.items() if (entry := memo.layer_result(kept_context, keys[name][0], mp))}
    if len(kept) == len(workload.layers):
        return _assembled(workload, hw, target, kept)
    if kept and job.proto is None:
        rest = replace(workload, layers=tuple(layer for layer in workload.layers if layer.name not in kept))
        pinned = {name: mp for name, mp in known.items() if name not in kept}
        fresh = estimate_model(rest, hw, batch=workload.batch, mapping=pinned or None)
    else:
        fresh = estimate_model(model, hw, batch=workload.batch, mapping=known or None, input_shapes=shapes)
    for lr in fresh.layers:
        name = lr.layer.name
        lr = replace(lr, pinned=False) if name in known else lr
        kept[name] = lr, layer_row(lr, hw)
        if name not in known:
            memo.record(context, keys[name][0], lr.mapping)
        if lr.slices is None:  # a sliced layer's width is chosen by the capacities: not kept
            memo.keep(kept_context, keys[name][0], *kept[name])
    return _assembled(workload, hw, target, kept)


def _assembled(workload: Workload, hw: Hardware, target: Target,
               found: dict[str, tuple[Any, dict]]) -> tuple[Result, list[dict]]:
    """The result of ``workload`` from its layers' (result, row) pairs, and the rows, in the model's order."""
    pairs = [found[layer.name] for layer in workload.layers]
    return Result(model=workload.model, hardware=hw, batch=workload.batch, bits=target.bits,
                  layers=tuple(lr for lr, _ in pairs), not_modelled=workload.not_modelled), [row for _, row in pairs]


_KEYS: dict[tuple[str, int], dict[str, tuple[bytes, np.ndarray]] | None] = {}  # per process: one job's layer keys


def _layer_keys(job: SweepJob, workload: Workload) -> dict[str, tuple[bytes, np.ndarray]] | None:
    """Each layer's memo key (name and vector) and vector, once per batch size; None if two layers share a name."""
    at = (job.token, workload.batch)
    if at not in _KEYS:
        if _KEYS and next(iter(_KEYS))[0] != job.token:
            _KEYS.clear()
        vectors = {layer.name: layer_vector(layer) for layer in workload.layers}
        _KEYS[at] = None if len(vectors) < len(workload.layers) else {
            name: (name.encode() + b"\0" + lv.tobytes(), lv) for name, lv in vectors.items()}
    return _KEYS[at]
