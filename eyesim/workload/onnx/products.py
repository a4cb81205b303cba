"""Matrix products of two activations (MatMul, Gemm, batched Einsum) as layers (DESIGN.md, "Layers").

A (leading..., rows, K) times B (leading..., K, out): one group per leading index (batch included), the
rows of A play the batch role and share B, which is read like a weight but is an activation.
"""

from __future__ import annotations

import math
import re

from eyesim.errors import EyesimError
from eyesim.workload.layer import Layer, LayerIO
from eyesim.workload.onnx.graph import Graph
from eyesim.workload.onnx.ops import node_attrs

Axes = tuple[int, ...]


def _broadcast(name: str, a: list[int], b: list[int]) -> list[int]:
    """The leading dims of the product: numpy broadcasting of the operands' leading dims."""
    width = max(len(a), len(b))
    a, b = [1] * (width - len(a)) + a, [1] * (width - len(b)) + b
    if any(x != y and 1 not in (x, y) for x, y in zip(a, b, strict=True)):
        raise EyesimError(f"node {name!r}: leading dims {a} and {b} do not broadcast")
    return [max(x, y) for x, y in zip(a, b, strict=True)]


def _matmul_axes(a: list[int], b: list[int]) -> tuple[list[int], int, int, int, int, Axes, Axes, list[int]]:
    """MatMul (numpy rules, 1-D operands included): A's and B's leading dims, rows, K, K of B, out, axis orders."""
    a2, b2 = ([1, *a] if len(a) == 1 else a), ([*b, 1] if len(b) == 1 else b)
    ident_a, ident_b = tuple(range(len(a))), tuple(range(len(b)))
    return a2[:-2], a2[-2], a2[-1], b2[-2], b2[-1], ident_a, ident_b, b2[:-2]


def product_layer(graph: Graph, index: int, ofmap: str) -> tuple[Layer, LayerIO]:
    """A MatMul, Gemm or Einsum node whose second operand is not constant (or an Einsum), with its tensors."""
    node, name = graph.nodes[index], graph.names[index]
    a_dims, b_dims = graph.shape(index, 0), graph.shape(index, 1)
    op = node.op_type
    if op == "MatMul":
        a_lead, rows, k, k_b, out, a_axes, b_axes, b_lead = _matmul_axes(a_dims, b_dims)
    elif op == "Gemm":
        attrs = node_attrs(node)
        if len(a_dims) != 2 or len(b_dims) != 2:
            raise EyesimError(f"Gemm node {name!r}: operands {a_dims} and {b_dims} are not 2-D")
        rows, k = reversed(a_dims) if attrs.get("transA", 0) else a_dims
        k_b, out = reversed(b_dims) if attrs.get("transB", 0) else b_dims
        a_axes, b_axes = ((1, 0) if attrs.get("transA", 0) else (0, 1)), ((1, 0) if attrs.get("transB", 0) else (0, 1))
        a_lead = b_lead = []
    else:
        a_lead, rows, k, k_b, out, a_axes, b_axes, b_lead = _einsum_axes(name, node_attrs(node), a_dims, b_dims)
    if k != k_b:
        raise EyesimError(f"{op} node {name!r}: operands {a_dims} and {b_dims} do not agree")
    lead = _broadcast(name, a_lead, b_lead)
    act = node.input[1] not in graph.const
    layer = Layer(name=name, op=f"{op}(act)" if act else op, N=rows, G=math.prod(lead), C=k, M=out,
                  H=1, W=1, R=1, S=1, E=1, F=1, act_operand=act)
    io = LayerIO(ifmap=node.input[0], weights=node.input[1], ofmap=ofmap, weights_in_out=True,
                 network_input=node.input[0] in graph.image, weights_input=node.input[1] in graph.image,
                 operand_axes=(a_axes, b_axes))
    return layer, io


def _einsum_axes(name: str, attrs: dict, a: list[int], b: list[int]
                 ) -> tuple[list[int], int, int, int, int, Axes, Axes, list[int]]:
    """An Einsum that is a batched matrix product ('bhqd,bhkd->bhqk'): its dims and the operands' axis orders."""
    equation = attrs.get("equation", b"")
    equation = (equation.decode() if isinstance(equation, bytes) else equation).replace(" ", "")
    found = re.fullmatch(r"([A-Za-z]+),([A-Za-z]+)->([A-Za-z]*)", equation)
    refusal = (f"Einsum node {name!r}: equation {equation!r} is not a batched matrix product of two operands "
               "(like 'bhqd,bhkd->bhqk': shared leading indices, one row, one contracted and one column index, "
               "no ellipsis or repeated index); eyesim models only those")
    if found is None:
        raise EyesimError(refusal)
    ta, tb, to = found.groups()
    if any(len(set(t)) != len(t) for t in (ta, tb, to)) or len(ta) != len(a) or len(tb) != len(b):
        raise EyesimError(refusal)
    batch = [c for c in to if c in ta and c in tb]
    summed = [c for c in ta if c in tb and c not in to]
    rows = [c for c in ta if c not in tb and c in to]
    cols = [c for c in tb if c not in ta and c in to]
    if (len(summed) != 1 or len(rows) != 1 or len(cols) != 1 or set(ta) != {*batch, *summed, *rows}
            or set(tb) != {*batch, *summed, *cols} or list(to) != [*batch, *rows, *cols]):
        raise EyesimError(refusal)
    size = dict(zip(ta, a, strict=True)) | dict(zip(tb, b, strict=True))
    if any(size[c] != dict(zip(tb, b, strict=True))[c] for c in batch):
        raise EyesimError(f"Einsum node {name!r}: operands {a} and {b} disagree on a shared index")
    a_order = [*batch, *rows, *summed]
    b_order = [*batch, *summed, *cols]
    a_axes = tuple(ta.index(c) for c in a_order)
    b_axes = tuple(tb.index(c) for c in b_order)
    lead = [size[c] for c in batch]
    return lead, size[rows[0]], size[summed[0]], size[summed[0]], size[cols[0]], a_axes, b_axes, lead
