"""Running an ONNX model with onnxruntime: load it with its weights, read samples, fetch tensors, score accuracy.

Public API:

- ``load_model(path) -> onnx.ModelProto``: a model with its weights (initializers), or EyesimError;
  ``with_weights(source)`` the same of a file read already by ``load.load_with_file``.
- ``load_samples(path, need_labels=True) -> Samples``: ``x`` (and labels ``y``) from ``.npz`` (``x``, ``y``) or
  ``.npy`` (inputs only).
- ``Runner(model, overridable)``: one onnxruntime session over ``model`` whose initializers named in
  ``overridable`` can be replaced at each run (no new session per trial); ``run`` fetches any tensors of
  the graph, ``accuracy`` scores top-1 against labels.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx

from eyesim.errors import EyesimError, first_line
from eyesim.workload.onnx.arrays import read_arrays
from eyesim.workload.onnx.external import load_external
from eyesim.workload.onnx.load import OnnxFile
from eyesim.workload.onnx.opsets import upgraded
from eyesim.workload.onnx.proto import read_model

CHUNK = 256  # samples per onnxruntime call when the batch dimension is free


@dataclass(frozen=True)
class Samples:
    """Model inputs ``x`` and, when known, integer labels ``y``."""

    x: np.ndarray
    y: np.ndarray | None
    source: str

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def head(self, count: int) -> Samples:
        """The first ``count`` samples."""
        return Samples(self.x[:count], None if self.y is None else self.y[:count], self.source)


def load_model(path: str | os.PathLike) -> onnx.ModelProto:
    """Read an ONNX file with its weights; one-line EyesimError if it is missing or not ONNX, or if its
    external data is missing, outside its folder or larger than its tensors (checked before reading)."""
    path = Path(path)
    if not path.is_file():
        raise EyesimError(f"{path}: {'no such file' if not path.exists() else 'not a file'}")
    try:
        model = read_model(path)  # onnx.load without onnx's helpers
    except Exception as err:  # protobuf DecodeError
        raise EyesimError(f"{path}: not an ONNX file, or truncated ({first_line(err)})") from err
    if not model.HasField("graph") or not model.graph.node:
        raise EyesimError(f"{path}: not an ONNX model (no graph nodes)")
    try:
        model = upgraded(model)  # as load_workload reads it: one model for the layers, weights and runs
    except EyesimError as err:
        raise EyesimError(f"{path}: {err}") from err
    return _with_external(model, path)


def with_weights(source: OnnxFile) -> onnx.ModelProto:
    """``load_model`` of a file read already (``load.load_with_file``: its refusals came first): the model as
    read, or a copy with its external data read (checked before it is read)."""
    return _with_external(copy.deepcopy(source.model), source.path) if source.external else source.model


def _with_external(model: onnx.ModelProto, path: Path) -> onnx.ModelProto:
    """``model`` (read from ``path``) with its external data read into it, checked first; errors name the file."""
    try:
        load_external(model, path.parent)
    except EyesimError as err:
        raise EyesimError(f"{path}: {err}") from err
    return model


def load_samples(path: str | os.PathLike, need_labels: bool = True) -> Samples:
    """Inputs (and labels) from ``.npz`` with arrays ``x`` and ``y``, or inputs only from ``.npy``."""
    path = Path(path)
    if not path.is_file():
        raise EyesimError(f"{path}: no such file")
    arrays = read_arrays(path, ("x", "y"))  # headers checked before any data is read
    x, y = arrays["x"], arrays.get("y")
    if need_labels and y is None:
        raise EyesimError(f"{path}: no labels: pruning needs an .npz file with the inputs 'x' and the labels 'y'")
    return Samples(x, _labels(y, x, path) if y is not None else None, str(path))


def _labels(y: np.ndarray, x: np.ndarray, path: Path) -> np.ndarray:
    if y.ndim != 1 or y.dtype.kind not in "iu" or y.shape[0] != x.shape[0]:
        raise EyesimError(f"{path}: labels 'y' must be {x.shape[0]} integers (one per sample of 'x'), "
                          f"got shape {y.shape} of {y.dtype}")
    return y.astype(np.int64)


def data_input(model: onnx.ModelProto) -> onnx.ValueInfoProto:
    """The one graph input that is not an initializer (the model's data input)."""
    params = {init.name for init in model.graph.initializer}
    inputs = [vi for vi in model.graph.input if vi.name not in params]
    if len(inputs) != 1:
        names = ", ".join(vi.name for vi in inputs) or "none"
        raise EyesimError(f"model has {len(inputs)} data inputs ({names}); pruning needs exactly one")
    return inputs[0]


def check_samples(model: onnx.ModelProto, samples: Samples) -> np.ndarray:
    """The inputs as the model's element type; EyesimError if their shape does not fit the data input."""
    vi = data_input(model)
    dims = [d.dim_value if d.HasField("dim_value") else None for d in vi.type.tensor_type.shape.dim]
    x = samples.x
    fits = x.ndim == len(dims) and all(d is None or d == s for d, s in zip(dims[1:], x.shape[1:], strict=True))
    if fits and len(samples) == 0:
        raise EyesimError(f"{samples.source}: holds no samples (shape {list(x.shape)})")
    if not fits:
        shown = "x".join("?" if d is None else str(d) for d in dims[1:])
        raise EyesimError(f"{samples.source}: samples of shape {list(x.shape)} do not fit the model input "
                          f"{vi.name!r} (N x {shown})")
    if x.dtype.kind not in "fiub":
        raise EyesimError(f"{samples.source}: samples must be numbers, got {x.dtype}")
    from onnx import helper  # onnx's helpers pull ml_dtypes (~0.6 s): imported only where used

    dtype = helper.tensor_dtype_to_np_dtype(vi.type.tensor_type.elem_type)
    return np.ascontiguousarray(x, dtype=dtype)


class Runner:
    """One onnxruntime session over a model; the named initializers can be replaced at every run."""

    def __init__(self, model: onnx.ModelProto, overridable: Iterable[str] = ()) -> None:
        import onnxruntime as ort
        from onnx import helper

        work = copy.deepcopy(model)
        self.input = data_input(model).name
        self.output = model.graph.output[0].name
        self.overridable = set(overridable)
        listed = {vi.name for vi in work.graph.input}
        for init in work.graph.initializer:
            if init.name in self.overridable and init.name not in listed:
                work.graph.input.append(helper.make_tensor_value_info(init.name, init.data_type, list(init.dims)))
        self._types = _elem_types(work)
        self._model = work
        self._sessions: dict[tuple[str, ...], object] = {}
        self._ort = ort
        dim0 = data_input(model).type.tensor_type.shape.dim
        fixed = dim0[0].dim_value if dim0 and dim0[0].HasField("dim_value") else 0
        self.chunk = fixed or CHUNK

    def _session(self, fetch: tuple[str, ...]):
        """A session whose graph outputs include ``fetch`` (built once per set of fetched tensors)."""
        key = tuple(sorted(set(fetch) - {o.name for o in self._model.graph.output}))
        if key not in self._sessions:
            from onnx import helper

            work = copy.deepcopy(self._model) if key else self._model
            for name in key:
                work.graph.output.append(helper.make_tensor_value_info(name, self._types.get(name, 1), None))
            options = self._ort.SessionOptions()
            options.log_severity_level = 3
            try:
                self._sessions[key] = self._ort.InferenceSession(work.SerializeToString(), options,
                                                                 providers=["CPUExecutionProvider"])
            except Exception as err:  # onnxruntime's Fail, InvalidGraph, NotImplemented...
                raise EyesimError(f"onnxruntime cannot load the model: {first_line(err)}") from err
        return self._sessions[key]

    def run(self, x: np.ndarray, fetch: Iterable[str], weights: Mapping[str, np.ndarray] | None = None
            ) -> list[np.ndarray]:
        """The tensors ``fetch`` for all samples ``x`` (run in chunks), with ``weights`` replacing initializers."""
        fetch = tuple(fetch)
        feeds = dict(weights or {})
        unknown = set(feeds) - self.overridable
        if unknown:
            raise ValueError(f"not overridable: {sorted(unknown)}")
        session = self._session(fetch)
        parts: list[list[np.ndarray]] = [[] for _ in fetch]
        for start in range(0, x.shape[0], self.chunk):
            try:
                outs = session.run(list(fetch), {self.input: x[start:start + self.chunk], **feeds})
            except Exception as err:  # onnxruntime's InvalidArgument, RuntimeException...
                raise EyesimError(f"onnxruntime cannot run the model on these samples: {first_line(err)}") from err
            for part, out in zip(parts, outs, strict=True):
                part.append(out)
        return [np.concatenate(part) for part in parts]

    def classes(self, x: np.ndarray) -> int:
        """Classes the model predicts: the size of its first output per sample (``x``: at least one sample)."""
        (out,) = self.run(x[:1], [self.output])
        return int(out.reshape(out.shape[0], -1).shape[1])

    def predict(self, x: np.ndarray, weights: Mapping[str, np.ndarray] | None = None) -> np.ndarray:
        """Top-1 class per sample from the model's first output."""
        (out,) = self.run(x, [self.output], weights)
        return out.reshape(out.shape[0], -1).argmax(axis=1)

    def accuracy(self, samples: Samples, x: np.ndarray, weights: Mapping[str, np.ndarray] | None = None) -> float:
        """Top-1 accuracy in percent on ``samples`` (``x``: their inputs as checked by ``check_samples``)."""
        if samples.y is None:
            raise EyesimError(f"{samples.source}: no labels")
        return 100.0 * float(np.mean(self.predict(x, weights) == samples.y))


def _elem_types(model: onnx.ModelProto) -> dict[str, int]:
    """Element type of every tensor that shape inference can type (default float)."""
    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception:  # noqa: BLE001 - types are a convenience: float is assumed where unknown
        inferred = model
    graph = inferred.graph
    types = {vi.name: vi.type.tensor_type.elem_type for vi in (*graph.input, *graph.value_info, *graph.output)}
    types.update({init.name: init.data_type for init in graph.initializer})
    return types
