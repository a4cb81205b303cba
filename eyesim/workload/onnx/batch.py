"""Which graph inputs carry data, and setting their batch (rewriting constant Reshape shapes that fix it)."""

from __future__ import annotations

import numpy as np
import onnx

from eyesim.errors import EyesimError
from eyesim.workload.onnx.ops import NO_MAC_OPS, PARAM_INPUTS, node_attrs
from eyesim.workload.onnx.shapes import Constants, add_initializer, all_dims, infer

_BATCH_PROBE = "__eyesim_batch__"


def tensor_ranks(model: onnx.ModelProto) -> dict[str, int]:
    """Tensor ranks as given (before the batch is set), from inference where it succeeds."""
    try:
        graph = infer(model).graph
    except EyesimError:
        graph = model.graph
    return {name: len(dims) for name, dims in all_dims(graph).items()}


def find_data_inputs(graph: onnx.GraphProto, params: set[str], ranks: dict[str, int]) -> list[onnx.ValueInfoProto]:
    """Graph inputs that carry data (the rule: eyesim.workload.onnx's docstring); ``params``: initializer names."""
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


def set_batch(model: onnx.ModelProto, data_inputs: list[onnx.ValueInfoProto], batch: int) -> None:
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
    consts = Constants(model.graph)
    todo = {}
    for index, node in enumerate(model.graph.node):
        shape = consts.array(node.input[1]) if node.op_type == "Reshape" and len(node.input) > 1 else None
        if shape is not None and shape.ndim == 1 and shape.size and shape[0] == old:
            todo[index] = shape
    while todo:
        dims = all_dims(infer(model).graph)
        ready = [i for i in todo if (dims.get(model.graph.node[i].input[0]) or [None])[0] == _BATCH_PROBE]
        if not ready:
            return
        for index in ready:
            _set_reshape_shape(model, index, todo.pop(index), batch)


def _set_reshape_shape(model: onnx.ModelProto, index: int, shape: np.ndarray, batch: int) -> None:
    node = model.graph.node[index]
    new = np.array(shape, dtype=np.int64)
    new[0] = batch if node_attrs(node).get("allowzero", 0) else 0
    node.input[1] = add_initializer(model, f"{node.input[1]}__eyesim_batch_{index}", new)
