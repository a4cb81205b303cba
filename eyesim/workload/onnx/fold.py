"""Ops that fold into a Conv: a zero Pad right before it, a BatchNormalization right after it."""

from __future__ import annotations

import numpy as np
import onnx

from eyesim.workload.onnx.graph import Graph
from eyesim.workload.onnx.ops import node_attrs


def fold_batchnorms(graph: Graph) -> dict[int, int]:
    """BatchNormalization node -> the Conv it follows directly (that Conv's output used by nothing else)."""
    folds = {}
    for index, node in enumerate(graph.nodes):
        conv = graph.producer.get(node.input[0]) if node.op_type == "BatchNormalization" else None
        if conv is not None and graph.nodes[conv].op_type == "Conv" and graph.sole_consumer(node.input[0]):
            folds[index] = conv
    return folds


def fold_pads(graph: Graph) -> dict[int, tuple[int, str, list[int], list[int]]]:
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


def _spatial_pads(graph: Graph, node: onnx.NodeProto) -> tuple[list[int], list[int]] | None:
    """(Total, leading) zero padding per spatial dim of a foldable Pad node, or None if it cannot fold."""
    attrs = node_attrs(node)
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
