"""Checks the ONNX checker leaves to the runtime: wiring, MAC ops' element types and attributes, tensor sizes.

Each refusal gives the reason onnxruntime would (a missing tensor is not "unsorted"), on one line.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import onnx

from eyesim.errors import EyesimError
from eyesim.workload.limits import MAX_WORDS, check_dims
from eyesim.workload.onnx.ops import node_attrs
from eyesim.workload.onnx.shapes import read_values

FLOAT_TYPES = frozenset({onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.DOUBLE,
                         onnx.TensorProto.BFLOAT16})
_MAC_DATA = {"Conv": (0, 1), "Gemm": (0, 1), "MatMul": (0, 1)}  # inputs whose values are multiplied


def check_wiring(graph: onnx.GraphProto, names: list[str], nodes: Sequence | None = None) -> None:
    """Every node input is a graph input, an initializer or the output of an earlier node (``nodes``: as in
    ``check_inferred``)."""
    nodes = graph.node if nodes is None else nodes
    known = {vi.name for vi in graph.input} | {t.name for t in graph.initializer} | {""}
    known |= {t.values.name for t in graph.sparse_initializer}
    later = {out: index for index, node in enumerate(nodes) for out in node.output}
    for index, node in enumerate(nodes):
        for tensor in node.input:
            if tensor in known:
                continue
            if tensor in later:
                raise EyesimError(f"nodes are not in topological order: {node.op_type} node {names[index]!r} reads "
                                  f"{tensor!r} before node {names[later[tensor]]!r} writes it")
            raise EyesimError(f"{node.op_type} node {names[index]!r} reads {tensor!r}, which is no graph input, "
                              "initializer or node output (a missing weight?)")
        known.update(node.output)


def check_inferred(graph: onnx.GraphProto, names: list[str], dims: dict | None = None,
                   attrs: Callable[[int], dict] | None = None, nodes: Sequence | None = None,
                   types: dict[str, int] | None = None) -> None:
    """After shape inference: tensor sizes, MAC ops' element types and Conv attributes, Reshape element counts.

    ``dims`` and ``types``: ``read_values(graph)``, ``attrs``: node index -> ``node_attrs`` and ``nodes``: the
    graph's nodes (``graph.Node`` records), when the caller has them already."""
    if dims is None or types is None:
        dims, types = read_values(graph)
    attrs = attrs or (lambda index: node_attrs(graph.node[index]))
    nodes = graph.node if nodes is None else nodes
    small: set[int] = set()  # ids of dims lists within the limits: tensors of one type share one list
    for tensor, shape in dims.items():  # negative dims (a kernel larger than its input) are refused per layer
        if id(shape) in small:
            continue
        known = [d for d in shape if isinstance(d, int) and d >= 0]
        # check_dims only refuses sizes above MAX_WORDS: it runs (and words the refusal) only for those
        if len(known) == len(shape) and (math.prod(known) > MAX_WORDS or max(known, default=0) > MAX_WORDS):
            check_dims(known, f"tensor {tensor!r}")
        small.add(id(shape))
    for index, node in enumerate(nodes):
        for pos in _MAC_DATA.get(node.op_type, ()):
            elem = types.get(node.input[pos], 0) if pos < len(node.input) else 0
            if elem and elem not in FLOAT_TYPES:
                kind = onnx.TensorProto.DataType.Name(elem).lower()
                raise EyesimError(f"{node.op_type} node {names[index]!r}: input {pos} ({node.input[pos]!r}) holds "
                                  f"{kind} values; eyesim models layers of float tensors (float, float16, "
                                  "bfloat16, double)")
        if node.op_type == "Conv":
            _check_conv(node, names[index], dims, attrs(index))
        elif node.op_type == "Reshape":
            _check_reshape(node, names[index], dims)


def _check_conv(node: onnx.NodeProto, name: str, dims: dict, attrs: dict) -> None:
    """Conv attributes as onnxruntime checks them: positive strides and dilations, pads >= 0, groups that fit."""
    w = dims.get(node.input[1]) if len(node.input) > 1 else None
    x = dims.get(node.input[0])
    nd = len(w) - 2 if w and len(w) > 2 else len(x) - 2 if x and len(x) > 2 else None
    for key, least, per_dim in (("strides", 1, 1), ("dilations", 1, 1), ("kernel_shape", 1, 1), ("pads", 0, 2)):
        values = list(attrs.get(key, ()))
        if key in attrs and (any(v < least for v in values) or (nd is not None and len(values) != per_dim * nd)):
            want = f"{per_dim * nd} values" if nd is not None else "values"
            raise EyesimError(f"Conv node {name!r}: {key} {values} must be {want} >= {least}")
    group = attrs.get("group", 1)
    if group < 1:
        raise EyesimError(f"Conv node {name!r}: group {group} must be >= 1")
    known = [d if isinstance(d, int) else None for d in (x[1] if x and len(x) > 1 else None,
                                                            w[0] if w else None, w[1] if w and len(w) > 1 else None)]
    channels, filters, per_group = known
    if filters is not None and filters % group:
        raise EyesimError(f"Conv node {name!r}: group {group} does not divide the {filters} filters")
    if channels is not None and per_group is not None and channels != per_group * group:
        raise EyesimError(f"Conv node {name!r}: the input's {channels} channels are not group {group} x the "
                          f"weight's {per_group} channels per group")


def _check_reshape(node: onnx.NodeProto, name: str, dims: dict) -> None:
    """A Reshape keeps the number of values (ONNX inference does not check a constant target shape)."""
    before, after = dims.get(node.input[0]), dims.get(node.output[0])
    if not before or after is None or not all(isinstance(d, int) for d in (*before, *after)):
        return
    if math.prod(before) != math.prod(after):
        raise EyesimError(f"Reshape node {name!r} turns {before} ({math.prod(before):,} values) into {after} "
                          f"({math.prod(after):,}): its shape hard-codes a size that the batch or --input-shape "
                          "changed; give the shape the model was made for")
