"""Shape inference: inferred dims of every tensor, constant values, and computed shape inputs folded in."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import onnx

from eyesim.errors import EyesimError, first_line
from eyesim.workload.onnx.ops import NO_MAC_OPS, PARAM_INPUTS, node_attrs
from eyesim.workload.onnx.proto import attribute_value, tensor_array

_INFER_ERRORS = (onnx.shape_inference.InferenceError, onnx.checker.ValidationError, RuntimeError, ValueError)
Dims = list[int | str | None]


def add_initializer(model: onnx.ModelProto, name: str, value: np.ndarray) -> str:
    from onnx import numpy_helper  # onnx's helpers pull ml_dtypes (~0.6 s): imported only where used

    model.graph.initializer.append(numpy_helper.from_array(value, name))
    if model.ir_version < 4:  # initializers must be graph inputs too
        model.graph.input.append(onnx.helper.make_tensor_value_info(name, model.graph.initializer[-1].data_type,
                                                                    value.shape))
    return name


def infer(model: onnx.ModelProto) -> onnx.ModelProto:
    error: Exception | None = None
    for data_prop in (True, False):
        try:
            # strict: an op whose inference fails (negative pads, int64 Conv inputs...) is refused, as onnxruntime does
            return onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True, data_prop=data_prop)
        except _INFER_ERRORS as err:
            error = error or err
    raise EyesimError(f"ONNX shape inference failed: {first_line(error)}")


def infer_folding_shapes(model: onnx.ModelProto, nodes: Sequence | None = None
                         ) -> tuple[onnx.ModelProto, dict[str, Dims], dict[str, int]]:
    """Infer shapes; where a no-MAC op's output stays unknown because its shape-like input (a Reshape's shape,
    Resize sizes, ...) is computed (Shape -> Gather -> Concat ...; Reshape before opset 14 ignores propagated
    data), compute that input from the inferred dims, write it into ``model`` as a constant and infer again.
    Returns the inferred model and its ``read_values`` (read once: walking the protobuf is the slow part).
    ``nodes``: ``graph.Node`` records of the model's nodes, for their op types and outputs (never changed here)."""
    inferred = infer(model)
    while True:
        dims, types = read_values(inferred.graph)
        folder = None  # built only when some output is unknown
        folded: dict[str, str] = {}
        for index, record in enumerate(model.graph.node if nodes is None else nodes):
            if record.op_type not in NO_MAC_OPS or all(_is_known(dims.get(out)) for out in record.output if out):
                continue
            node = model.graph.node[index]  # its inputs may be rewritten
            folder = folder or _ShapeFolder(inferred.graph, dims)
            for pos in PARAM_INPUTS.get(node.op_type, ()):
                tensor = node.input[pos] if pos < len(node.input) else ""
                value = folder.value(tensor) if tensor and folder.consts.array(tensor) is None else None
                if value is not None:
                    if tensor not in folded:
                        folded[tensor] = add_initializer(model, f"{tensor}__eyesim_folded", value)
                    node.input[pos] = folded[tensor]
        if not folded:
            return inferred, dims, types
        inferred = infer(model)


def _is_known(dims: Dims | None) -> bool:
    return dims is not None and all(isinstance(d, int) for d in dims)


class _ShapeFolder:
    """Values of small shape-arithmetic tensors (Shape, Gather, Slice, Concat, ...), from inferred dims."""

    MAX_SIZE = 16

    def __init__(self, graph: onnx.GraphProto, dims: dict[str, Dims]) -> None:
        self.dims = dims
        self.consts = Constants(graph)
        self.producer = {out: node for node in graph.node for out in node.output}
        self.memo: dict[str, np.ndarray | None] = {}

    def value(self, tensor: str) -> np.ndarray | None:
        if tensor not in self.memo:
            self.memo[tensor] = None  # guards against cycles in a malformed graph
            value = self.consts.array(tensor)
            if value is None and tensor in self.producer:
                value = self._compute(self.producer[tensor])
            self.memo[tensor] = value if value is not None and value.size <= self.MAX_SIZE else None
        return self.memo[tensor]

    def _compute(self, node: onnx.NodeProto) -> np.ndarray | None:
        op, attrs = node.op_type, node_attrs(node)
        if op == "Shape":
            dims = self.dims.get(node.input[0])
            return np.array(dims[attrs.get("start", 0) : attrs.get("end")], np.int64) if _is_known(dims) else None
        args = [self.value(t) if t else None for t in node.input]  # an omitted optional input is None
        if op not in _SHAPE_OPS or not args or any(a is None for a, t in zip(args, node.input, strict=True) if t):
            return None
        try:
            return np.asarray(_SHAPE_OPS[op](args, attrs))
        except (TypeError, ValueError, IndexError, KeyError):
            return None


def _axes(args: list, attrs: dict) -> list[int]:
    return [int(a) for a in (attrs["axes"] if "axes" in attrs else args[1] if len(args) > 1 and args[1] is not None
                             else [])]


def _slice(args: list, attrs: dict) -> np.ndarray:
    data = args[0]
    starts, ends = (attrs["starts"], attrs["ends"]) if "starts" in attrs else (args[1], args[2])
    axes = attrs.get("axes", args[3] if len(args) > 3 and args[3] is not None else range(len(starts)))
    steps = args[4] if len(args) > 4 and args[4] is not None else [1] * len(starts)
    index = [slice(None)] * data.ndim
    for start, end, axis, step in zip(starts, ends, axes, steps, strict=False):
        index[int(axis)] = slice(int(start), int(end), int(step))
    return data[tuple(index)]


def _unsqueeze(args: list, attrs: dict) -> np.ndarray:
    value = args[0]
    rank = value.ndim + len(_axes(args, attrs))
    for axis in sorted(a % rank for a in _axes(args, attrs)):
        value = np.expand_dims(value, axis)
    return value


_SHAPE_OPS = {
    "Identity": lambda a, _: a[0],
    "Cast": lambda a, at: a[0].astype(onnx.helper.tensor_dtype_to_np_dtype(at["to"])),
    "Gather": lambda a, at: np.take(a[0], a[1], axis=at.get("axis", 0)),
    "Unsqueeze": _unsqueeze,
    "Squeeze": lambda a, at: np.squeeze(a[0], axis=tuple(_axes(a, at)) or None),
    "Concat": lambda a, at: np.concatenate(a, axis=at["axis"]),
    "Slice": _slice,
    "Add": lambda a, _: a[0] + a[1],
    "Sub": lambda a, _: a[0] - a[1],
    "Mul": lambda a, _: a[0] * a[1],
    "Div": lambda a, _: a[0] // a[1] if a[0].dtype.kind in "iu" else a[0] / a[1],
}


def _dims(vi: onnx.ValueInfoProto) -> Dims | None:
    ttype = vi.type.tensor_type
    if not ttype.HasField("shape"):
        return None
    # a non-zero dim_value is set (the common case: one protobuf read); else which field is set decides
    return [d.dim_value or _unvalued(d) for d in ttype.shape.dim]


def _unvalued(dim: onnx.TensorShapeProto.Dimension) -> int | str | None:
    return 0 if dim.HasField("dim_value") else dim.dim_param if dim.HasField("dim_param") else None


def all_dims(graph: onnx.GraphProto) -> dict[str, Dims]:
    return read_values(graph)[0]


def read_values(graph: onnx.GraphProto) -> tuple[dict[str, Dims], dict[str, int]]:
    """The dims of every tensor that has them, and every tensor's element type (0: unknown), read once.

    Values of one type (the same serialized ``TypeProto``) share one reading, and its dims list (callers
    never change it): reading a shape makes a Python object per nested field, its bytes are one call.
    """
    memo: dict[bytes, tuple[Dims | None, int]] = {}
    found: dict[str, Dims | None] = {}
    types: dict[str, int] = {}
    for vi in (*graph.input, *graph.value_info, *graph.output):
        vtype = vi.type
        key = vtype.SerializeToString()
        known = memo.get(key)
        if known is None:
            known = memo[key] = (_dims(vi), vtype.tensor_type.elem_type)
        found[vi.name], types[vi.name] = known
    for init in graph.initializer:
        found[init.name], types[init.name] = list(init.dims), init.data_type
    return {name: dims for name, dims in found.items() if dims is not None}, types


class Constants:
    """Values of initializers and Constant-node outputs, decoded on demand."""

    def __init__(self, graph: onnx.GraphProto, nodes: Sequence | None = None) -> None:
        """``nodes``: the graph's nodes as ``graph.Node`` records, when the caller has them (cheaper to read)."""
        self.tensors = {init.name: init for init in graph.initializer}
        self.nodes = {node.output[0]: node for node in (graph.node if nodes is None else nodes)
                      if node.op_type == "Constant" and node.output}

    def array(self, name: str) -> np.ndarray | None:
        try:
            if name in self.tensors:
                return tensor_array(self.tensors[name])
            if name in self.nodes:
                attr = self.nodes[name].attribute[0]
                value = attribute_value(attr)  # not onnx.helper's: it pulls ml_dtypes
                return tensor_array(value) if isinstance(value, onnx.TensorProto) else np.array(value)
        except (ValueError, TypeError, OSError, IndexError):  # external data not loaded, odd constants
            return None
        return None
