"""The job of a sweep, as every worker sees it, and the rows of a chunk of its configurations."""

from __future__ import annotations

import hashlib
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
from eyesim.result import Result, frame_of_rows
from eyesim.sweep.grid import BATCH, Grid, Number
from eyesim.sweep.output import HEAD, OK_STATUS, TOTAL, import_pyarrow
from eyesim.sweep.reuse import ReuseMemo, memo_for
from eyesim.workload.layer import Workload
from eyesim.workload.limits import rebatched
from eyesim.workload.onnx.load import load_workload
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
    proto = path if isinstance(path, onnx.ModelProto) else load_model(path)  # external data checked before read
    density = tuple((name, stats[0]) for name, stats in weight_stats(proto, workload, bits).items())
    return (proto, density) if density else (None, ())


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
    """``evaluate_chunk`` as an Arrow table with its counts: what every kind of worker sends back."""
    frame = evaluate_chunk(job, indices)
    totals = frame["layer"] == TOTAL
    invalid = int((totals & (frame["status"] != OK_STATUS)).sum())
    table = import_pyarrow().Table.from_pandas(frame, preserve_index=False)
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


def _memo(job: SweepJob) -> ReuseMemo:
    return memo_for(job.token)


def _estimate(job: SweepJob, workload: Workload, hw: Hardware, overrides: dict[str, Number]) -> Result:
    """The ordinary estimate; layers whose optimum is known are passed in as mappings (then marked searched)."""
    model = workload if job.proto is None else job.proto
    shapes = dict(job.input_shapes) if job.proto is not None and job.input_shapes else None
    if not job.reuse:
        return estimate_model(model, hw, batch=workload.batch, input_shapes=shapes)
    memo = _memo(job)
    target = Target.of(hw)
    context = memo.context(target, overrides)
    vectors = {layer.name: layer_vector(layer) for layer in workload.layers}
    keys = {name: name.encode() + b"\0" + lv.tobytes() for name, lv in vectors.items()}
    known = {} if len(vectors) < len(workload.layers) else {
        name: found for name, lv in vectors.items()
        if (found := memo.lookup(context, keys[name], lv, target.vec)) is not None}
    result = estimate_model(model, hw, batch=workload.batch, mapping=known or None, input_shapes=shapes)
    for lr in result.layers:
        if lr.layer.name not in known:
            memo.record(context, keys[lr.layer.name], lr.mapping)
    if not known:
        return result
    layers = tuple(replace(lr, pinned=False) if lr.layer.name in known else lr for lr in result.layers)
    return replace(result, layers=layers)
