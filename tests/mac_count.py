"""An independent MAC count of an ONNX model from the shapes onnxruntime actually produces.

Written apart from eyesim's importer (it imports nothing of eyesim): the model runs once with
onnxruntime on a random input, with every node output added as a graph output, and each MAC op is
counted from the real shapes of its inputs, weights and outputs:

- Conv: every output value sums C/G · kernel taps: size(Y) · size(W) / M (W is M × C/G × k…).
- ConvTranspose: each input value times each filter tap whose product lands inside the output (the
  products that the pads crop away are not MACs): N · C · M/G · Π_d #{(i, k): 0 ≤ i·s + k·dil − pad_begin < O}
  (W is C × M/G × k…; pad_begin from ``pads``, or from the output size for auto_pad / output_shape).
- Gemm and MatMul: size(Y) · K, K the contracted length of the first operand (after transA).
- Einsum with two operands: the product of the sizes of all its indices (ellipsis dims included).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np
import onnx
import onnxruntime as ort
from onnx import helper

MAC_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul", "Einsum")


@dataclass(frozen=True)
class NodeMacs:
    """One MAC node: its name (or ``<op>_<index>``), op type and MACs."""

    name: str
    op: str
    macs: int


@dataclass(frozen=True)
class MacCount:
    """The MAC nodes of a model, in graph order, and their shapes as run."""

    nodes: tuple[NodeMacs, ...]
    shapes: dict[str, tuple[int, ...]]

    @property
    def total(self) -> int:
        """All MACs of the model."""
        return sum(node.macs for node in self.nodes)

    def by_op(self) -> dict[str, int]:
        """MACs per op type."""
        found: dict[str, int] = {}
        for node in self.nodes:
            found[node.op] = found.get(node.op, 0) + node.macs
        return found


def count_macs(model: onnx.ModelProto, input_shapes: dict[str, tuple[int, ...]] | None = None,
               seed: int = 0) -> MacCount:
    """Run ``model`` on random inputs (``input_shapes`` fixes symbolic dims) and count its MACs from the shapes."""
    shapes = run_shapes(model, input_shapes or {}, seed)
    nodes = tuple(NodeMacs(node.name or f"{node.op_type}_{index}", node.op_type, node_macs(node, shapes))
                  for index, node in enumerate(model.graph.node) if node.op_type in MAC_OPS)
    return MacCount(nodes, shapes)


Shapes = dict[str, tuple[int, ...]]


def run_shapes(model: onnx.ModelProto, input_shapes: Shapes, seed: int) -> Shapes:
    """The shape of every tensor: initializers' dims, inputs as fed, node outputs as onnxruntime computed them."""
    work = onnx.ModelProto()
    work.CopyFrom(model)
    graph = work.graph
    shapes = {init.name: tuple(init.dims) for init in graph.initializer}
    listed = {out.name for out in graph.output}
    for node in graph.node:
        for out in node.output:
            if out and out not in listed and out not in shapes:
                graph.output.append(onnx.ValueInfoProto(name=out))  # untyped: onnxruntime fills it in
                listed.add(out)
    feeds = random_inputs(work, input_shapes, seed)
    shapes.update({name: value.shape for name, value in feeds.items()})
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # run the graph as written
    session = ort.InferenceSession(work.SerializeToString(), options, providers=["CPUExecutionProvider"])
    names = [out.name for out in session.get_outputs()]
    shapes.update({name: np.asarray(value).shape for name, value in zip(names, session.run(names, feeds), strict=True)})
    return shapes


def random_inputs(model: onnx.ModelProto, input_shapes: dict[str, tuple[int, ...]], seed: int) -> dict[str, np.ndarray]:
    """A random array per graph input that is no initializer, at its declared shape or the one given."""
    rng = np.random.default_rng(seed)
    params = {init.name for init in model.graph.initializer}
    feeds = {}
    for vi in model.graph.input:
        if vi.name in params:
            continue
        ttype = vi.type.tensor_type
        declared = tuple(d.dim_value if d.HasField("dim_value") else -1 for d in ttype.shape.dim)
        shape = input_shapes.get(vi.name) or declared
        if any(d < 1 for d in shape):
            raise ValueError(f"input {vi.name!r} has a symbolic dim {list(shape)}: give input_shapes")
        dtype = helper.tensor_dtype_to_np_dtype(ttype.elem_type)
        value = rng.standard_normal(shape) if np.issubdtype(dtype, np.floating) else np.zeros(shape)
        feeds[vi.name] = value.astype(dtype)
    return feeds


def node_macs(node: onnx.NodeProto, shapes: dict[str, tuple[int, ...]]) -> int:
    """MACs of one node from the actual shapes of its operands and result."""
    out = shapes[node.output[0]]
    if node.op_type == "Conv":
        weights = shapes[node.input[1]]
        return math.prod(out) * math.prod(weights[1:])
    if node.op_type == "ConvTranspose":
        return _conv_transpose(node, shapes[node.input[0]], shapes[node.input[1]], out)
    if node.op_type == "Gemm":
        a = shapes[node.input[0]]
        return math.prod(out) * (a[0] if _attrs(node).get("transA", 0) else a[1])
    if node.op_type == "MatMul":
        return math.prod(out) * shapes[node.input[0]][-1]
    if node.op_type == "Einsum":
        return _einsum(_attrs(node)["equation"], [shapes[name] for name in node.input])
    raise ValueError(f"not a MAC op: {node.op_type}")


def _attrs(node: onnx.NodeProto) -> dict:
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _conv_transpose(node: onnx.NodeProto, x: tuple[int, ...], w: tuple[int, ...], y: tuple[int, ...]) -> int:
    """Products of an input value and a filter tap that land inside the output, over all channels."""
    attrs = _attrs(node)
    dims = len(x) - 2
    strides = attrs.get("strides", [1] * dims)
    dilations = attrs.get("dilations", [1] * dims)
    pads = attrs.get("pads", [0] * 2 * dims)
    auto = attrs.get("auto_pad", b"NOTSET")
    auto = auto.decode() if isinstance(auto, bytes) else auto
    extra = attrs.get("output_padding", [0] * dims)
    landed = 1
    for d in range(dims):
        size, taps, out = x[2 + d], w[2 + d], y[2 + d]
        begin = pads[d]
        if auto in ("SAME_UPPER", "SAME_LOWER") or "output_shape" in attrs:
            total = strides[d] * (size - 1) + extra[d] + (taps - 1) * dilations[d] + 1 - out
            begin = total - total // 2 if auto == "SAME_LOWER" else total // 2  # the ONNX spec's rule
        positions = np.add.outer(np.arange(size) * strides[d], np.arange(taps) * dilations[d]) - begin
        landed *= int(np.count_nonzero((positions >= 0) & (positions < out)))
    return x[0] * x[1] * w[1] * landed  # each input channel feeds the M/G filters of its group


def _einsum(equation: str, operands: list[tuple[int, ...]]) -> int:
    """A two-operand Einsum multiplies once per combination of all its indices."""
    if len(operands) < 2:
        return 0
    equation = equation.decode() if isinstance(equation, bytes) else equation  # ONNX string attributes are bytes
    terms = equation.replace(" ", "").split("->")[0].split(",")
    sizes: dict[str, int] = {}
    for term, shape in zip(terms, operands, strict=True):
        letters = re.findall(r"\.\.\.|[A-Za-z]", term)
        free = len(shape) - (len(letters) - letters.count("..."))
        expanded = []
        for letter in letters:  # ellipsis dims are named by their place from the right, as they broadcast
            expanded += [f"...{free - 1 - i}" for i in range(free)] if letter == "..." else [letter]
        for letter, size in zip(expanded, shape, strict=True):
            sizes[letter] = max(sizes.get(letter, 1), size)
    return (len(operands) - 1) * math.prod(sizes.values())
