"""The edits of ``remove_channels``: slicing initializers and rewriting attributes so that channels are gone.

``shrink(model, removals) -> onnx.ModelProto``: ``removals[(role, node)]`` are sorted indices removed on that
node's channel axis, ``role`` one of ``out`` (a producer's filters and bias, a depthwise conv's too), ``in`` (a
consumer's input channels or rows: Conv weight axis 1, per group; Gemm B axis 1 with transB=1, else 0; MatMul W
axis 0), ``dw`` (a depthwise conv's filters that go with its inputs: its group count shrinks), ``bn``
(BatchNormalization scale, bias, mean, var), ``const`` (the per-channel constant of an Add/Mul/...: its first
axis longer than 1) and ``reshape`` (an explicit row count in a Reshape's constant shape). Initializer names and
order are kept; value_info is cleared (stale shapes); initializers listed as graph inputs (IR < 4) get their new
shapes.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping

import numpy as np
import onnx
from onnx import helper, numpy_helper

from eyesim.errors import EyesimError
from eyesim.workload.onnx.graph import node_names
from eyesim.workload.onnx.ops import node_attrs
from eyesim.workload.onnx.shapes import Constants


def shrink(model: onnx.ModelProto, removals: Mapping[tuple[str, str], np.ndarray]) -> onnx.ModelProto:
    """A copy of ``model`` with the ``removals`` applied (see the module docstring)."""
    out = copy.deepcopy(model)
    graph = out.graph
    nodes = dict(zip(node_names(graph.node), graph.node, strict=True))
    values = _Values(graph)
    # "dw" reads the filters per group before "out" removes filters
    for (role, name), gone in sorted(removals.items(), key=lambda item: item[0][0] != "dw"):
        _EDITS[role](nodes[name], np.asarray(gone, dtype=np.int64), values)
    values.write()
    del graph.value_info[:]
    return out


class _Values:
    """Initializer and Constant-node values, edited as arrays, then written back under the same names."""

    def __init__(self, graph: onnx.GraphProto) -> None:
        self.graph = graph
        self.consts = Constants(graph)
        self.arrays: dict[str, np.ndarray] = {}

    def get(self, name: str) -> np.ndarray:
        if name not in self.arrays:
            value = self.consts.array(name)
            if value is None:  # channel_groups checked every edited parameter is a constant
                raise EyesimError(f"parameter {name!r} has no value in the model")
            self.arrays[name] = value
        return self.arrays[name]

    def delete(self, name: str, gone: np.ndarray, axis: int) -> None:
        """Remove the entries ``gone`` of axis ``axis`` of the constant ``name``."""
        self.arrays[name] = np.delete(self.get(name), gone, axis=axis)

    def write(self) -> None:
        """Store the edited arrays in their initializers or Constant nodes (graph inputs of IR < 4 too)."""
        inputs = {vi.name: vi for vi in self.graph.input}
        for name, array in self.arrays.items():
            tensor = numpy_helper.from_array(np.ascontiguousarray(array), name)
            if name in self.consts.tensors:
                self.consts.tensors[name].CopyFrom(tensor)
            else:
                node = self.consts.nodes[name]
                del node.attribute[:]
                node.attribute.append(helper.make_attribute("value", tensor))
            if name in inputs:
                inputs[name].type.CopyFrom(helper.make_tensor_type_proto(tensor.data_type, list(array.shape)))


def _in_out(node: onnx.NodeProto) -> bool:
    """The weight is stored (K, M): Gemm with transB=0, or MatMul."""
    return node.op_type == "MatMul" or (node.op_type == "Gemm" and not node_attrs(node).get("transB", 0))


def _bias(node: onnx.NodeProto) -> str | None:
    return node.input[2] if len(node.input) > 2 and node.input[2] else None


def _filters(node: onnx.NodeProto, gone: np.ndarray, values: _Values) -> None:
    """A producer loses output channels: rows (columns when stored K x M) of its weight, entries of its bias."""
    values.delete(node.input[1], gone, 1 if _in_out(node) else 0)
    if _bias(node):
        values.delete(_bias(node), gone, -1)  # a Gemm bias may be (1, M)


def _inputs(node: onnx.NodeProto, gone: np.ndarray, values: _Values) -> None:
    """A consumer loses input channels (Conv) or rows of its input (Gemm, MatMul)."""
    group = int(node_attrs(node).get("group", 1))
    if node.op_type != "Conv" or group == 1:
        values.delete(node.input[1], gone, 0 if _in_out(node) else 1)
        return
    w = values.get(node.input[1])
    per_group, rows = w.shape[1], w.shape[0] // group
    parts = []
    for g in range(group):  # each group's filters read only its own slice of the input channels
        local = gone[(gone >= g * per_group) & (gone < (g + 1) * per_group)] - g * per_group
        parts.append(np.delete(w[g * rows:(g + 1) * rows], local, axis=1))
    if len({part.shape[1] for part in parts}) != 1:
        raise EyesimError(f"Conv node {node.name!r}: its {group} groups would lose different numbers of inputs")
    values.arrays[node.input[1]] = np.concatenate(parts)


def _depthwise(node: onnx.NodeProto, gone: np.ndarray, values: _Values) -> None:
    """A depthwise conv loses input channels with their filters ``gone`` (k per channel): one group each."""
    group = int(node_attrs(node)["group"])
    k = values.get(node.input[1]).shape[0] // group
    for attr in node.attribute:
        if attr.name == "group":
            attr.i = group - len(gone) // k


def _batchnorm(node: onnx.NodeProto, gone: np.ndarray, values: _Values) -> None:
    """A BatchNormalization loses the scale, bias, mean and variance of the removed channels."""
    for param in node.input[1:5]:
        values.delete(param, gone, 0)


def _reshape(node: onnx.NodeProto, gone: np.ndarray, values: _Values) -> None:
    """A Reshape to (N, K) with K written out: K shrinks by the rows removed (a -1 needs nothing)."""
    shape = values.get(node.input[1]).reshape(-1).copy()
    if shape[1] > 0:
        shape[1] -= len(gone)
        values.arrays[node.input[1]] = shape


def _constant(node: onnx.NodeProto, gone: np.ndarray, values: _Values) -> None:
    """An element-wise op's constant operand loses the values of the removed channels (or rows)."""
    (const,) = [t for t in node.input if t and values.consts.array(t) is not None]
    shape = values.get(const).shape
    values.delete(const, gone, next(axis for axis, size in enumerate(shape) if size != 1))


_EDITS: dict[str, Callable[[onnx.NodeProto, np.ndarray, _Values], None]] = {
    "out": _filters, "in": _inputs, "dw": _depthwise, "bn": _batchnorm, "reshape": _reshape, "const": _constant,
}
