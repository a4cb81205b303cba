"""ONNX import: the layers with MACs of a CNN graph (opset 7+) in DESIGN.md §2 notation.

Public API: ``load_workload(model, batch=1) -> Workload``. Rules:

- Layers: Conv (2-D; 1-D as H = 1; 3-D refused), Gemm with a constant B, MatMul with one constant 2-D
  operand. Shapes come from ONNX shape inference after the batch is set.
- Fully connected (Gemm without transA, or MatMul of a 2-D ``rows x K`` data operand by a constant on the
  right): if the data operand comes from a 4-D ``N x C x H x W`` tensor with N = rows and C*H*W = K through
  Reshape, Flatten, Squeeze, Unsqueeze and element-wise no-MAC ops only (Dropout, Identity, Relu, Cast...),
  the filter covers that tensor: R = H, S = W, E = F = 1. Otherwise C = K and H = W = R = S = 1.
- Other MatMuls are 1x1 convolutions over the data operand's free dims (all but the contracted one, in
  order): none -> N = 1; one -> N; two -> N, E; more -> N = product of all but the last two, then E, F
  (H = E, W = F). C = contracted size, M = the constant's other dim. Two non-constant operands: refused.
- Constant tensors: initializers, parameter graph inputs, Constant / ConstantOfShape outputs, and outputs of
  no-MAC ops whose inputs are all constant (a Reshape or Transpose of a weight).
- Data vs parameter graph inputs: an input with an initializer is a parameter. Another input is a parameter
  when it is no graph output and each of its uses is a parameter position (``PARAM_INPUTS``: Conv and Gemm
  inputs 1-2, BatchNormalization 1-4, MatMul 1 if 2-D, Reshape's shape, Pad's pads, ...) or feeds a no-MAC
  op (not Shape) whose outputs are used only that way (a weight that is transposed first). All other inputs
  are data; their dim 0 is set to ``batch``.
- If the data inputs have a fixed batch b0 != ``batch``: a constant Reshape shape starting with b0 whose
  input has the batch in dim 0 (probed with a symbolic batch) gets the batch instead; a hard-coded batch in
  other ops (Expand, Tile...) is not rewritten. Computed shape inputs of no-MAC ops whose output ONNX cannot
  infer (``Reshape(x, Concat(Gather(Shape(x)), -1))``: Reshape before opset 14 ignores ``data_prop``) are
  evaluated from the inferred dims and written in as constants.
- Folding: a zero constant Pad on spatial dims whose only consumer is a Conv folds into its padding; a
  BatchNormalization of a Conv output that nothing else uses folds into that Conv. Both are listed in
  ``not_modelled`` as "folded into <conv>"; every other known op as "no MACs"; unknown ops (or any op of a
  non-default domain) are refused.
- Names: the node's name; a node with no name, or with a name an earlier node has, is ``<op_type>_<index>``
  (its position in ``graph.node``, from 0; ``_`` is appended while the name is taken).
"""

from __future__ import annotations

import copy
import math
import os
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from eyesim.errors import EyesimError, first_line
from eyesim.workload import Layer, LayerIO, NotModelled, Workload, out_size

MIN_OPSET = 7
MAC_OPS = frozenset({"Conv", "Gemm", "MatMul"})
_REDUCE_OPS = frozenset(
    {"ReduceMean", "ReduceMax", "ReduceMin", "ReduceSum", "ReduceProd", "ReduceL1", "ReduceL2",
     "ReduceLogSum", "ReduceLogSumExp", "ReduceSumSquare"}
)
_UNARY_OPS = frozenset(
    {"Relu", "Clip", "LeakyRelu", "PRelu", "Sigmoid", "Tanh", "HardSigmoid", "HardSwish", "Elu", "Selu",
     "Celu", "Gelu", "Mish", "Softplus", "Softsign", "ThresholdedRelu", "Erf", "Exp", "Log", "Sqrt",
     "Reciprocal", "Abs", "Neg", "Sign", "Floor", "Ceil", "Round", "Not", "IsNaN", "IsInf", "Shrink",
     "Dropout", "Identity", "Cast", "CastLike"}
)
# Known ops without MACs: listed in the report as "not modelled", never charged.
NO_MAC_OPS = _REDUCE_OPS | _UNARY_OPS | frozenset(
    {"Softmax", "LogSoftmax", "Hardmax", "MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool",
     "LpPool", "GlobalLpPool", "MaxUnpool", "LRN", "BatchNormalization", "InstanceNormalization",
     "LayerNormalization", "GroupNormalization", "LpNormalization", "MeanVarianceNormalization",
     "Add", "Sum", "Sub", "Mul", "Div", "Pow", "Mod", "Max", "Min", "Mean", "Equal", "Less", "LessOrEqual",
     "Greater", "GreaterOrEqual", "And", "Or", "Xor", "Where",
     "Concat", "Split", "Slice", "Reshape", "Flatten", "Transpose", "Squeeze", "Unsqueeze", "Expand", "Tile",
     "Pad", "Resize", "Upsample", "DepthToSpace", "SpaceToDepth", "Gather", "GatherElements", "GatherND",
     "ScatterND", "ScatterElements", "Shape", "Size", "Range", "Constant", "ConstantOfShape", "OneHot",
     "NonZero", "CumSum", "TopK", "ArgMax", "ArgMin", "Trilu", "QuantizeLinear", "DequantizeLinear"}
)
# Activations the chip applies before writing an ofmap to DRAM (their output is what gets compressed).
ACTIVATIONS = frozenset({"Relu", "Clip", "LeakyRelu"})
# Ops that keep the element order of their input 0: a fully connected layer is traced back through them.
TRANSPARENT_OPS = _UNARY_OPS | frozenset({"Reshape", "Flatten", "Squeeze", "Unsqueeze"})
# Input positions that hold parameters (weights, shapes, axes, ...), never batch data.
PARAM_INPUTS: dict[str, tuple[int, ...]] = {
    "Conv": (1, 2), "Gemm": (1, 2), "MatMul": (1,), "BatchNormalization": (1, 2, 3, 4),
    "InstanceNormalization": (1, 2), "LayerNormalization": (1, 2), "GroupNormalization": (1, 2),
    "PRelu": (1,), "Clip": (1, 2), "Dropout": (1, 2), "Reshape": (1,), "Pad": (1, 2, 3), "Slice": (1, 2, 3, 4),
    "Resize": (1, 2, 3), "Upsample": (1,), "Squeeze": (1,), "Unsqueeze": (1,), "Split": (1,), "Tile": (1,),
    "Expand": (1,), "ConstantOfShape": (0,), "Gather": (1,), "TopK": (1,), "CumSum": (1,), "OneHot": (1, 2),
    "Range": (0, 1, 2), "QuantizeLinear": (1, 2), "DequantizeLinear": (1, 2),
    **{op: (1,) for op in _REDUCE_OPS},
}
_BATCH_PROBE = "__eyesim_batch__"
_WEIGHT_SIZE = 1024  # initializers with more elements are weights: only their dims are used
_INFER_ERRORS = (onnx.shape_inference.InferenceError, onnx.checker.ValidationError, RuntimeError, ValueError)

Dims = list[int | str | None]


def load_workload(model: str | os.PathLike | onnx.ModelProto, batch: int = 1) -> Workload:
    """Read an ONNX model (a path or a ModelProto) and return its layers at ``batch``.

    Raises EyesimError, on one line naming the file, for anything wrong with the model or ``batch``.
    """
    label = _label(model)
    try:
        if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
            raise EyesimError(f"batch must be a positive integer, got {batch!r}")
        proto = copy.deepcopy(model) if isinstance(model, onnx.ModelProto) else _read(Path(model))
        return _import(proto, _model_name(model, proto), batch)
    except EyesimError as err:
        raise EyesimError(f"{label}: {err}".replace("\n", " ")) from err


def _label(model: object) -> str:
    if isinstance(model, onnx.ModelProto):
        return f"ONNX model {model.graph.name or '(unnamed)'!r}"
    return str(model)


def _model_name(model: object, proto: onnx.ModelProto) -> str:
    if isinstance(model, onnx.ModelProto):
        return proto.graph.name or "model"
    return Path(model).stem


def _read(path: Path) -> onnx.ModelProto:
    if not path.is_file():
        raise EyesimError("no such file" if not path.exists() else "not a file")
    try:
        return onnx.load(str(path), load_external_data=False)
    except Exception as err:  # protobuf DecodeError and friends
        raise EyesimError(f"not an ONNX file, or truncated (protobuf parse error: {first_line(err)})") from err


def _import(work: onnx.ModelProto, name: str, batch: int) -> Workload:
    """The workload of ``work`` (a private copy, changed in place)."""
    params = _weights_as_inputs(work)
    names = _validate(work)
    data_inputs = _data_inputs(work.graph, params, _ranks(work))
    if not data_inputs:
        raise EyesimError("no data input: every graph input is a parameter (or unused)")
    _set_batch(work, data_inputs, batch)
    graph = _Graph(_infer_folding_shapes(work).graph, names, data_inputs)
    layers, not_modelled, io = _convert(graph)
    if not layers:
        raise EyesimError("no layer with MACs (Conv, Gemm or MatMul with a constant operand)")
    inputs = {vi.name: tuple(graph.known_dims(vi.name) or ()) for vi in data_inputs}
    return Workload(model=name, batch=batch, layers=tuple(layers), not_modelled=tuple(not_modelled), io=io,
                    inputs=inputs)


# ---------------------------------------------------------------- validation


def _validate(proto: onnx.ModelProto) -> list[str]:
    """Structural checks, then the ONNX checker; returns the layer names of the nodes. ``proto`` is a copy."""
    if not proto.HasField("graph") or proto.ir_version == 0:
        raise EyesimError("not an ONNX model (no graph or no IR version)")
    if not proto.graph.node:
        raise EyesimError("empty graph: no nodes")
    opsets = [o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")]
    if not opsets:
        raise EyesimError("the model imports no ai.onnx opset")
    if opsets[0] < MIN_OPSET:
        raise EyesimError(f"opset {opsets[0]} is older than {MIN_OPSET}, the oldest eyesim reads")
    names = node_names(proto.graph.node)
    for node, node_name in zip(proto.graph.node, names, strict=True):
        _check_known(node, node_name)
    _check(proto)
    return names


def _check(proto: onnx.ModelProto) -> None:
    """The ONNX checker, not counting a missing (unknown-rank) shape on a graph input or output against it."""
    unshaped = [vi.type.tensor_type for vi in (*proto.graph.input, *proto.graph.output)
                if vi.type.HasField("tensor_type") and not vi.type.tensor_type.HasField("shape")]
    for ttype in unshaped:
        ttype.shape.SetInParent()  # an empty shape satisfies the checker; cleared again below
    try:
        onnx.checker.check_model(proto)
    except Exception as err:
        raise EyesimError(f"fails the ONNX checker: {first_line(err)}") from err
    finally:
        for ttype in unshaped:
            ttype.ClearField("shape")


def _weights_as_inputs(model: onnx.ModelProto) -> set[str]:
    """Turn large or external initializers (weights: only their dims matter here) into typed graph inputs, so
    the checker and shape inference skip their bytes; returns the names of all initializers (parameters)."""
    graph = model.graph
    params = {tensor.name for tensor in graph.initializer}
    inputs = {vi.name: vi for vi in graph.input}
    keep = []
    for tensor in graph.initializer:
        if math.prod(tensor.dims) <= _WEIGHT_SIZE and tensor.data_location != onnx.TensorProto.EXTERNAL:
            keep.append(tensor)
            continue
        value_info = inputs.get(tensor.name) or graph.input.add(name=tensor.name)
        value_info.type.CopyFrom(onnx.helper.make_tensor_type_proto(tensor.data_type, list(tensor.dims)))
    graph.ClearField("initializer")
    graph.initializer.extend(keep)
    return params


def node_names(nodes: list[onnx.NodeProto]) -> list[str]:
    taken = {node.name for node in nodes if node.name}
    seen: set[str] = set()
    names = []
    for index, node in enumerate(nodes):
        name = node.name
        if not name or name in seen:
            name = f"{node.op_type}_{index}"
            while name in taken or name in seen:
                name += "_"
        seen.add(name)
        names.append(name)
    return names


def _check_known(node: onnx.NodeProto, name: str) -> None:
    if node.domain not in ("", "ai.onnx"):
        raise EyesimError(f"unsupported op {node.domain}.{node.op_type} (node {name!r}): not an ai.onnx op")
    if node.op_type not in MAC_OPS and node.op_type not in NO_MAC_OPS:
        raise EyesimError(
            f"unsupported op {node.op_type} (node {name!r}): eyesim knows Conv, Gemm, MatMul and the no-MAC "
            "ops listed in eyesim/onnx_import.py"
        )


# ---------------------------------------------------------------- data inputs and batch


def _ranks(model: onnx.ModelProto) -> dict[str, int]:
    """Tensor ranks as given (before the batch is set), from inference where it succeeds."""
    try:
        graph = _infer(model).graph
    except EyesimError:
        graph = model.graph
    return {name: len(dims) for name, dims in _all_dims(graph).items()}


def _data_inputs(graph: onnx.GraphProto, params: set[str], ranks: dict[str, int]) -> list[onnx.ValueInfoProto]:
    """Graph inputs that carry data (see the module docstring for the rule); ``params``: initializer names."""
    uses: dict[str, list[tuple[onnx.NodeProto, int]]] = {}
    for node in graph.node:
        for pos, tensor in enumerate(node.input):
            uses.setdefault(tensor, []).append((node, pos))
    outputs = {out.name for out in graph.output}
    memo: dict[str, bool] = {}

    def param_only(tensor: str) -> bool:
        if tensor not in memo:
            memo[tensor] = tensor not in outputs and all(param_use(node, pos) for node, pos in uses.get(tensor, ()))
        return memo[tensor]

    def param_use(node: onnx.NodeProto, pos: int) -> bool:
        if pos in PARAM_INPUTS.get(node.op_type, ()):
            return node.op_type != "MatMul" or ranks.get(node.input[pos], 2) == 2
        return node.op_type in NO_MAC_OPS and node.op_type != "Shape" and all(param_only(o) for o in node.output if o)

    return [vi for vi in graph.input if vi.name not in params and not param_only(vi.name)]


def _set_batch(model: onnx.ModelProto, data_inputs: list[onnx.ValueInfoProto], batch: int) -> None:
    """Set dim 0 of the data inputs (of ``model``, in place) to ``batch``; rebatch constant Reshape shapes."""
    inputs = [vi for vi in model.graph.input if vi.name in {d.name for d in data_inputs}]
    dims0 = [vi.type.tensor_type.shape.dim[0] for vi in inputs if vi.type.tensor_type.shape.dim]
    old = {d.dim_value if d.HasField("dim_value") else None for d in dims0}
    if old == {batch}:
        return
    del model.graph.value_info[:]  # stale shapes would conflict with the new batch
    for out in model.graph.output:
        out.type.tensor_type.ClearField("shape")
    if len(old) == 1 and None not in old:
        for dim in dims0:
            dim.dim_param = _BATCH_PROBE
        _rebatch_reshapes(model, old.pop(), batch)
    for dim in dims0:
        dim.dim_value = batch


def _rebatch_reshapes(model: onnx.ModelProto, old: int, batch: int) -> None:
    """Constant Reshape shapes ``[old, ...]`` applied to a batch-led tensor get the batch instead of ``old``.

    The data inputs' dim 0 is the symbol ``_BATCH_PROBE``; a Reshape is batch-led when inference gives its
    input that symbol in dim 0. Its shape's first entry becomes 0 (copy the input's dim; ``batch`` when the
    Reshape has allowzero=1), which passes the symbol on, so chained Reshapes are found in later rounds.
    """
    consts = _Constants(model.graph)
    todo = {}
    for index, node in enumerate(model.graph.node):
        shape = consts.array(node.input[1]) if node.op_type == "Reshape" and len(node.input) > 1 else None
        if shape is not None and shape.ndim == 1 and shape.size and shape[0] == old:
            todo[index] = shape
    while todo:
        dims = _all_dims(_infer(model).graph)
        ready = [i for i in todo if (dims.get(model.graph.node[i].input[0]) or [None])[0] == _BATCH_PROBE]
        if not ready:
            return
        for index in ready:
            _set_reshape_shape(model, index, todo.pop(index), batch)


def _set_reshape_shape(model: onnx.ModelProto, index: int, shape: np.ndarray, batch: int) -> None:
    node = model.graph.node[index]
    new = np.array(shape, dtype=np.int64)
    new[0] = batch if _attrs(node).get("allowzero", 0) else 0
    node.input[1] = _add_initializer(model, f"{node.input[1]}__eyesim_batch_{index}", new)


def _add_initializer(model: onnx.ModelProto, name: str, value: np.ndarray) -> str:
    model.graph.initializer.append(numpy_helper.from_array(value, name))
    if model.ir_version < 4:  # initializers must be graph inputs too
        model.graph.input.append(onnx.helper.make_tensor_value_info(name, model.graph.initializer[-1].data_type,
                                                                    value.shape))
    return name


def _infer(model: onnx.ModelProto) -> onnx.ModelProto:
    error: Exception | None = None
    for data_prop in (True, False):
        try:
            return onnx.shape_inference.infer_shapes(model, strict_mode=False, data_prop=data_prop)
        except _INFER_ERRORS as err:
            error = error or err
    raise EyesimError(f"ONNX shape inference failed: {first_line(error)}")


def _infer_folding_shapes(model: onnx.ModelProto) -> onnx.ModelProto:
    """Infer shapes; where a no-MAC op's output stays unknown because its shape-like input (a Reshape's shape,
    Resize sizes, ...) is computed (Shape -> Gather -> Concat ...; Reshape before opset 14 ignores propagated
    data), compute that input from the inferred dims, write it into ``model`` as a constant and infer again."""
    inferred = _infer(model)
    while True:
        dims = _all_dims(inferred.graph)
        folder = _ShapeFolder(inferred.graph, dims)
        folded: dict[str, str] = {}
        for node in model.graph.node:
            if node.op_type not in NO_MAC_OPS or all(_is_known(dims.get(out)) for out in node.output if out):
                continue
            for pos in PARAM_INPUTS.get(node.op_type, ()):
                tensor = node.input[pos] if pos < len(node.input) else ""
                value = folder.value(tensor) if tensor and folder.consts.array(tensor) is None else None
                if value is not None:
                    if tensor not in folded:
                        folded[tensor] = _add_initializer(model, f"{tensor}__eyesim_folded", value)
                    node.input[pos] = folded[tensor]
        if not folded:
            return inferred
        inferred = _infer(model)


def _is_known(dims: Dims | None) -> bool:
    return dims is not None and all(isinstance(d, int) for d in dims)


class _ShapeFolder:
    """Values of small shape-arithmetic tensors (Shape, Gather, Slice, Concat, ...), from inferred dims."""

    MAX_SIZE = 16

    def __init__(self, graph: onnx.GraphProto, dims: dict[str, Dims]) -> None:
        self.dims = dims
        self.consts = _Constants(graph)
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
        op, attrs = node.op_type, _attrs(node)
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
    return [getattr(d, d.WhichOneof("value")) if d.WhichOneof("value") else None for d in ttype.shape.dim]


def _all_dims(graph: onnx.GraphProto) -> dict[str, Dims]:
    found = {vi.name: _dims(vi) for vi in (*graph.input, *graph.value_info, *graph.output)}
    found.update({init.name: list(init.dims) for init in graph.initializer})
    return {name: dims for name, dims in found.items() if dims is not None}


# ---------------------------------------------------------------- the inferred graph


class _Constants:
    """Values of initializers and Constant-node outputs, decoded on demand."""

    def __init__(self, graph: onnx.GraphProto) -> None:
        self.tensors = {init.name: init for init in graph.initializer}
        self.nodes = {node.output[0]: node for node in graph.node if node.op_type == "Constant" and node.output}

    def array(self, name: str) -> np.ndarray | None:
        try:
            if name in self.tensors:
                return numpy_helper.to_array(self.tensors[name])
            if name in self.nodes:
                attr = self.nodes[name].attribute[0]
                value = onnx.helper.get_attribute_value(attr)
                return numpy_helper.to_array(value) if isinstance(value, onnx.TensorProto) else np.array(value)
        except (ValueError, TypeError, OSError, IndexError):  # external data not loaded, odd constants
            return None
        return None


class _Graph:
    """An inferred graph with the lookups the converters need."""

    def __init__(self, graph: onnx.GraphProto, names: list[str], data_inputs: list[onnx.ValueInfoProto]) -> None:
        self.nodes = list(graph.node)
        self.names = names
        self.dims = _all_dims(graph)
        self.values = _Constants(graph)
        self.outputs = {out.name for out in graph.output}
        self.inputs = {vi.name for vi in data_inputs}
        self.producer: dict[str, int] = {}
        self.consumers: dict[str, list[tuple[int, int]]] = {}
        data = {vi.name for vi in data_inputs}
        self.const = {init.name for init in graph.initializer} | {vi.name for vi in graph.input if vi.name not in data}
        for index, node in enumerate(self.nodes):
            for pos, tensor in enumerate(node.input):
                self.consumers.setdefault(tensor, []).append((index, pos))
            for tensor in node.output:
                self.producer[tensor] = index
            if node.op_type == "ConstantOfShape" or (
                node.op_type in NO_MAC_OPS and all(t in self.const for t in node.input if t)
            ):
                self.const.update(t for t in node.output if t)
        self.image = self._image_tensors()

    def _image_tensors(self) -> set[str]:
        """Tensors computed from the data inputs by no-MAC ops alone (the input image, normalized or not)."""
        image = set(self.inputs)
        for node in self.nodes:  # ONNX nodes are in topological order
            inputs = [t for t in node.input if t and t not in self.const]
            if node.op_type not in MAC_OPS and inputs and all(t in image for t in inputs):
                image.update(t for t in node.output if t)
        return image

    def shape(self, index: int, pos: int, tensor: str | None = None) -> list[int]:
        """Inferred dims of input ``pos`` of node ``index`` (or of ``tensor``), all known, else EyesimError."""
        node = self.nodes[index]
        tensor = tensor or node.input[pos]
        dims = self.dims.get(tensor)
        if dims is None or any(not isinstance(d, int) or d < 1 for d in dims):
            raise EyesimError(
                f"cannot infer the shape of tensor {tensor!r} (input {pos} of {node.op_type} node "
                f"{self.names[index]!r}); inferred {dims}"
            )
        return list(dims)

    def known_dims(self, tensor: str) -> list[int] | None:
        dims = self.dims.get(tensor)
        return list(dims) if dims and all(isinstance(d, int) and d > 0 for d in dims) else None

    def sole_consumer(self, tensor: str) -> tuple[int, int] | None:
        uses = self.consumers.get(tensor, [])
        return uses[0] if len(uses) == 1 and tensor not in self.outputs else None


def _attrs(node: onnx.NodeProto) -> dict:
    return {attr.name: onnx.helper.get_attribute_value(attr) for attr in node.attribute}


# ---------------------------------------------------------------- conversion


def _convert(graph: _Graph) -> tuple[list[Layer], list[NotModelled]]:
    folded_pads = _fold_pads(graph)
    batchnorms = _fold_batchnorms(graph)
    folded = {pad: conv for conv, (pad, *_) in folded_pads.items()} | batchnorms
    layers, not_modelled, io = [], [], {}
    convs_bn = {conv: bn for bn, conv in batchnorms.items()}
    for index, node in enumerate(graph.nodes):
        name = graph.names[index]
        if node.op_type in MAC_OPS:
            if node.op_type == "Conv":
                layers.append(_conv_layer(graph, index, folded_pads.get(index)))
            elif node.op_type == "Gemm":
                layers.append(_gemm_layer(graph, index))
            else:
                layers.append(_matmul_layer(graph, index))
            io[name] = _layer_io(graph, index, folded_pads.get(index), convs_bn.get(index))
        elif index in folded:
            not_modelled.append(NotModelled(name, node.op_type, f"folded into {graph.names[folded[index]]}"))
        else:
            not_modelled.append(NotModelled(name, node.op_type, "no MACs"))
    return layers, not_modelled, io


def _layer_io(graph: _Graph, index: int, pad_fold: tuple | None, batchnorm: int | None) -> LayerIO:
    """Where the layer's tensors are: for measuring densities and counting zeros from values."""
    node = graph.nodes[index]
    attrs = _attrs(node)
    x_pos, w_pos = (0, 1)
    if node.op_type == "MatMul" and node.input[1] not in graph.const:
        x_pos, w_pos = (1, 0)
    ifmap = pad_fold[1] if pad_fold else node.input[x_pos]
    ofmap = graph.nodes[batchnorm].output[0] if batchnorm is not None else node.output[0]
    use = graph.sole_consumer(ofmap)
    if use is not None and graph.nodes[use[0]].op_type in ACTIVATIONS:
        ofmap = graph.nodes[use[0]].output[0]  # written to DRAM after the activation, as on the chip
    begins = [0, 0]
    if node.op_type == "Conv":
        dims = graph.shape(index, 1)
        spatial = [d + p for d, p in zip(graph.shape(index, 0, ifmap)[2:], pad_fold[2] if pad_fold else [0, 0],
                                         strict=False)]
        nd = len(spatial)
        _, conv_begins = _conv_pads(attrs, spatial, dims[2:], list(attrs.get("strides", [1] * nd)),
                                    list(attrs.get("dilations", [1] * nd)))
        lead = pad_fold[3] if pad_fold else [0] * nd
        begins = [b + extra for b, extra in zip(conv_begins, lead, strict=True)]
        begins = [0, *begins] if nd == 1 else begins
    in_out = node.op_type == "MatMul" or (node.op_type == "Gemm" and not attrs.get("transB", 0))
    return LayerIO(ifmap=ifmap, weights=node.input[w_pos], ofmap=ofmap, weights_in_out=in_out,
                   pad_top=begins[0], pad_left=begins[1], network_input=ifmap in graph.image)


def _fold_batchnorms(graph: _Graph) -> dict[int, int]:
    """BatchNormalization node -> the Conv it follows directly (that Conv's output used by nothing else)."""
    folds = {}
    for index, node in enumerate(graph.nodes):
        conv = graph.producer.get(node.input[0]) if node.op_type == "BatchNormalization" else None
        if conv is not None and graph.nodes[conv].op_type == "Conv" and graph.sole_consumer(node.input[0]):
            folds[index] = conv
    return folds


def _fold_pads(graph: _Graph) -> dict[int, tuple[int, str, list[int], list[int]]]:
    """Conv node -> (Pad node, the Pad's input, total and leading extra padding per spatial dim)."""
    folds = {}
    for index, node in enumerate(graph.nodes):
        use = graph.sole_consumer(node.output[0]) if node.op_type == "Pad" and len(node.output) == 1 else None
        if use is None or use[1] != 0 or graph.nodes[use[0]].op_type != "Conv":
            continue
        extra = _spatial_pads(graph, node)
        if extra is not None:
            folds[use[0]] = (index, node.input[0], *extra)
    return folds


def _spatial_pads(graph: _Graph, node: onnx.NodeProto) -> tuple[list[int], list[int]] | None:
    """(Total, leading) zero padding per spatial dim of a foldable Pad node, or None if it cannot fold."""
    attrs = _attrs(node)
    dims = graph.known_dims(node.input[0])
    if attrs.get("mode", b"constant") not in (b"constant", "constant") or dims is None or len(dims) < 3:
        return None
    if "pads" in attrs:
        pads, value = np.array(attrs["pads"]), attrs.get("value", 0.0)
    else:
        pads = graph.values.array(node.input[1]) if len(node.input) > 1 else None
        value = graph.values.array(node.input[2]) if len(node.input) > 2 and node.input[2] else 0.0
    if pads is None or value is None or np.any(np.asarray(value) != 0):
        return None
    axes = graph.values.array(node.input[3]) if len(node.input) > 3 and node.input[3] else np.arange(len(dims))
    if axes is None or pads.size != 2 * axes.size or np.any(pads < 0):
        return None
    total, first = [0] * len(dims), [0] * len(dims)
    for axis, begin, end in zip(axes, pads[: axes.size], pads[axes.size :], strict=True):
        total[int(axis) % len(dims)] += int(begin + end)
        first[int(axis) % len(dims)] += int(begin)
    return (total[2:], first[2:]) if total[0] == total[1] == 0 else None


def _conv_layer(graph: _Graph, index: int, pad_fold: tuple[int, str, list[int], list[int]] | None) -> Layer:
    node, name = graph.nodes[index], graph.names[index]
    x_dims = graph.shape(index, 0, pad_fold[1] if pad_fold else None)
    w_dims = graph.shape(index, 1)
    if len(x_dims) == 5:
        raise EyesimError(f"Conv node {name!r} is a 3-D convolution; eyesim models 1-D and 2-D convolutions")
    if len(x_dims) not in (3, 4) or len(w_dims) != len(x_dims):
        raise EyesimError(f"Conv node {name!r}: input {x_dims} and weight {w_dims} are not a 1-D or 2-D conv")
    attrs = _attrs(node)
    spatial = [d + p for d, p in zip(x_dims[2:], pad_fold[2] if pad_fold else [0, 0], strict=False)]
    nd = len(spatial)
    kernel = list(attrs.get("kernel_shape", w_dims[2:]))
    strides = list(attrs.get("strides", [1] * nd))
    dilations = list(attrs.get("dilations", [1] * nd))
    if kernel != w_dims[2:]:
        raise EyesimError(f"Conv node {name!r}: kernel_shape {kernel} does not match the weight {w_dims}")
    pads, _ = _conv_pads(attrs, spatial, kernel, strides, dilations)
    group = attrs.get("group", 1)
    if w_dims[0] % group or (x_dims[1] != w_dims[1] * group):
        raise EyesimError(f"Conv node {name!r}: input {x_dims}, weight {w_dims} and group={group} do not agree")
    geometry = [spatial, kernel, strides, dilations, pads]
    if nd == 1:  # 1-D conv: a single row
        geometry = [[first, *values] for first, values in zip((1, 1, 1, 1, 0), geometry, strict=True)]
    (h, w), (R, S), (U, Uw), (Dh, Dw), (ph, pw) = geometry
    H, W = h + ph, w + pw
    return Layer(
        name=name, op="Conv", N=x_dims[0], G=group, C=w_dims[1], M=w_dims[0] // group, H=H, W=W, R=R, S=S,
        E=out_size(H, R, U, Dh), F=out_size(W, S, Uw, Dw), U=U, Uw=Uw, Dh=Dh, Dw=Dw,
    )


def _conv_pads(attrs: dict, spatial: list[int], kernel: list[int], strides: list[int], dilations: list[int]
               ) -> tuple[list[int], list[int]]:
    """Total padding (begin + end) and leading padding (begin) per spatial dim, following ``auto_pad``."""
    auto_pad = attrs.get("auto_pad", b"NOTSET")
    auto_pad = auto_pad.decode() if isinstance(auto_pad, bytes) else auto_pad
    nd = len(spatial)
    if auto_pad == "VALID":
        return [0] * nd, [0] * nd
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        totals = [
            max((math.ceil(size / s) - 1) * s + (k - 1) * d + 1 - size, 0)
            for size, k, s, d in zip(spatial, kernel, strides, dilations, strict=False)
        ]
        upper = auto_pad == "SAME_UPPER"  # the extra odd pad goes at the end
        return totals, [total // 2 if upper else total - total // 2 for total in totals]
    if auto_pad not in ("NOTSET", ""):
        raise EyesimError(f"unknown auto_pad {auto_pad!r}")
    pads = list(attrs.get("pads", [0] * 2 * nd))
    return [pads[i] + pads[i + nd] for i in range(nd)], pads[:nd]


def _gemm_layer(graph: _Graph, index: int) -> Layer:
    node, name = graph.nodes[index], graph.names[index]
    if node.input[1] not in graph.const:
        raise EyesimError(f"Gemm node {name!r}: its weight operand B ({node.input[1]!r}) is not constant")
    attrs = _attrs(node)
    a_dims, b_dims = graph.shape(index, 0), graph.shape(index, 1)
    if len(a_dims) != 2 or len(b_dims) != 2:
        raise EyesimError(f"Gemm node {name!r}: operands {a_dims} and {b_dims} are not 2-D")
    rows, k = reversed(a_dims) if attrs.get("transA", 0) else a_dims
    k_b, out = reversed(b_dims) if attrs.get("transB", 0) else b_dims
    if k != k_b:
        raise EyesimError(f"Gemm node {name!r}: operands {a_dims} and {b_dims} do not agree (transA/transB)")
    source = None if attrs.get("transA", 0) else node.input[0]
    return _fc_layer(graph, name, "Gemm", rows, k, out, source)


def _matmul_layer(graph: _Graph, index: int) -> Layer:
    node, name = graph.nodes[index], graph.names[index]
    right = node.input[1] in graph.const  # the constant is the right operand (x @ W)
    if not right and node.input[0] not in graph.const:
        raise EyesimError(
            f"MatMul node {name!r} multiplies two non-constant tensors ({node.input[0]!r}, {node.input[1]!r}); "
            "eyesim models MatMul only with a constant 2-D operand"
        )
    w_pos, x_pos = (1, 0) if right else (0, 1)
    w_dims, x_dims = graph.shape(index, w_pos), graph.shape(index, x_pos)
    if len(w_dims) != 2:
        raise EyesimError(f"MatMul node {name!r}: the constant operand has shape {w_dims}; eyesim needs a 2-D matrix")
    k, out = w_dims if right else reversed(w_dims)
    if len(x_dims) == 1:
        free, k_x = [], x_dims[0]
    elif right:
        free, k_x = x_dims[:-1], x_dims[-1]
    else:
        free, k_x = [*x_dims[:-2], x_dims[-1]], x_dims[-2]
    if k != k_x:
        shapes = f"{graph.shape(index, 0)} and {graph.shape(index, 1)}"
        raise EyesimError(f"MatMul node {name!r}: operands {shapes} do not agree")
    if right and len(x_dims) == 2:
        return _fc_layer(graph, name, "MatMul", x_dims[0], k, out, node.input[0])
    return _rows_layer(name, free, k, out)


def _rows_layer(name: str, free: list[int], k: int, out: int) -> Layer:
    """MatMul as a 1x1 convolution over the data operand's free dims (see the module docstring)."""
    n, e, f = (*free, 1, 1, 1)[:3] if len(free) <= 2 else (math.prod(free[:-2]), free[-2], free[-1])
    return Layer(name=name, op="MatMul", N=n, G=1, C=k, M=out, H=e, W=f, R=1, S=1, E=e, F=f)


def _fc_layer(graph: _Graph, name: str, op: str, rows: int, k: int, out: int, source: str | None) -> Layer:
    """A fully connected layer; its filter covers a 4-D source tensor when one is found."""
    dims = _fc_source(graph, source) if source else None
    if dims is None or dims[0] != rows or math.prod(dims[1:]) != k:
        return Layer(name=name, op=op, N=rows, G=1, C=k, M=out, H=1, W=1, R=1, S=1, E=1, F=1)
    _, c, h, w = dims
    return Layer(name=name, op=op, N=rows, G=1, C=c, M=out, H=h, W=w, R=h, S=w, E=1, F=1)


def _fc_source(graph: _Graph, tensor: str) -> list[int] | None:
    """The nearest 4-D tensor upstream of ``tensor`` through element-order preserving ops, if any."""
    while (producer := graph.producer.get(tensor)) is not None and graph.nodes[producer].op_type in TRANSPARENT_OPS:
        tensor = graph.nodes[producer].input[0]
        dims = graph.known_dims(tensor)
        if dims is not None and len(dims) == 4:
            return dims
    return None
