"""Opsets: the ai.onnx opset a model imports, the ONNX checker, and older models upgraded by the version converter."""

from __future__ import annotations

import copy
import math

import onnx

from eyesim.errors import EyesimError, first_line
from eyesim.workload.onnx.graph import node_names
from eyesim.workload.onnx.proto import tensor_type

MIN_OPSET = 7  # eyesim's op rules (numpy broadcasting, attributes) are those of opset 7 and later
WEIGHT_SIZE = 1024  # initializers with more elements are weights: only their dims are used


def ai_onnx_opset(model: onnx.ModelProto) -> int | None:
    """The ai.onnx opset ``model`` imports, or None if it imports none."""
    versions = [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")]
    return versions[0] if versions else None


def check_model(proto: onnx.ModelProto) -> None:
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


def weights_as_inputs(model: onnx.ModelProto) -> set[str]:
    """Turn large or external initializers (weights: only their dims matter here) into typed graph inputs, so
    the checker and shape inference skip their bytes; returns the names of all initializers (parameters)."""
    graph = model.graph
    params = {tensor.name for tensor in graph.initializer}
    inputs = {vi.name: vi for vi in graph.input}
    keep = []
    for tensor in graph.initializer:
        if math.prod(tensor.dims) <= WEIGHT_SIZE and tensor.data_location != onnx.TensorProto.EXTERNAL:
            keep.append(tensor)
            continue
        value_info = inputs.get(tensor.name) or graph.input.add(name=tensor.name)
        value_info.type.CopyFrom(tensor_type(tensor.data_type, list(tensor.dims)))
    graph.ClearField("initializer")
    graph.initializer.extend(keep)
    return params


def upgraded(model: onnx.ModelProto) -> onnx.ModelProto:
    """``model`` itself, unless it imports an ai.onnx opset older than ``MIN_OPSET``: then a copy upgraded to
    ``MIN_OPSET`` by ONNX's version converter (Add's ``broadcast`` attribute becomes numpy broadcasting, ...),
    after the checker (the converter trusts its input). Tensor names are kept, and every node keeps the layer name
    the import gives it in ``model`` (an unnamed node is named by its place, which an inserted node would move)."""
    opset = ai_onnx_opset(model)
    if opset is None or opset >= MIN_OPSET or not model.HasField("graph") or not model.graph.node:
        return model  # refused, where it is, by the import's own checks
    shape_only = copy.deepcopy(model)
    weights_as_inputs(shape_only)  # the checker then reads no weight bytes, nor external files (it would look
    check_model(shape_only)  # for those beside the working directory, not the model)
    from onnx import version_converter  # only old models need it

    work = copy.deepcopy(model)
    for node, name in zip(work.graph.node, node_names(work.graph.node), strict=True):
        node.name = name
    _spell_out_broadcasts(work)
    types = _symbolic_dims_as_1(work)
    try:
        converted = version_converter.convert_version(work, MIN_OPSET)
    except Exception as err:  # the converter's C++ errors reach Python as several types
        reason = first_line(err).split("failed: ", 1)[-1]  # a C++ assertion's own words, not its source file
        raise EyesimError(f"opset {opset} is older than {MIN_OPSET}, the oldest eyesim reads, and ONNX's version "
                          f"converter could not upgrade it: {reason}") from err
    _restore_types(converted, types)
    return converted


def _spell_out_broadcasts(model: onnx.ModelProto) -> None:
    """Old-style broadcasts from an axis made numpy-style, in place: ``Add(A, B, broadcast=1, axis=k)`` lines B's
    dims up with A's from axis k, and PRelu (before opset 7) applies a slope of C values per channel (axis 1).
    B goes through an Unsqueeze appending the 1s that numpy broadcasting needs to read it the same way; the
    version converter would only drop ``axis``, lining B up with A's last dims: a wrong model, or one refused."""
    if not any(node.op_type == "PRelu" or _broadcast_axis(node) is not None for node in model.graph.node):
        return
    ranks = _ranks(model)
    nodes, spread = [], {}
    for node in model.graph.node:
        axis = _axis_of(node, ranks)
        if axis is not None:
            a, b = ranks[node.input[0]], ranks[node.input[1]]
            key = (node.input[1], axis, a)
            if a - axis > b and key not in spread:
                spread[key] = f"{node.input[1]}__eyesim_axis{axis}_rank{a}"
                nodes.append(onnx.NodeProto(op_type="Unsqueeze", name=spread[key], input=[node.input[1]],
                                            output=[spread[key]], attribute=[onnx.AttributeProto(
                                                name="axes", type=onnx.AttributeProto.INTS, ints=range(b, a - axis))]))
            node.input[1] = spread.get(key, node.input[1])
            kept = [attr for attr in node.attribute if attr.name != "axis"]
            del node.attribute[:]
            node.attribute.extend(kept)
        nodes.append(node)
    del model.graph.node[:]
    model.graph.node.extend(nodes)


def _ranks(model: onnx.ModelProto) -> dict[str, int]:
    """The rank of every tensor shape inference (at the model's own opset) knows."""
    try:
        graph = onnx.shape_inference.infer_shapes(model).graph
    except Exception as err:  # onnx's inference errors have several types
        raise EyesimError(f"ONNX shape inference failed: {first_line(err)}") from err
    ranks = {vi.name: len(vi.type.tensor_type.shape.dim) for vi in (*graph.input, *graph.value_info, *graph.output)
             if vi.type.tensor_type.HasField("shape")}
    ranks.update({tensor.name: len(tensor.dims) for tensor in graph.initializer})
    return ranks


def _axis_of(node: onnx.NodeProto, ranks: dict[str, int]) -> int | None:
    """The axis ``node``'s second input is broadcast from, old-style; None if it broadcasts numpy-style."""
    axis = _broadcast_axis(node)
    a, b = (ranks.get(node.input[i]) if i < len(node.input) else None for i in (0, 1))
    if node.op_type == "PRelu" and len(node.input) == 2:  # a slope of C values applies per channel
        return 1 if a is not None and a > 2 and b == 1 else None
    if axis is None:
        return None
    where = f"{node.op_type} node {node.name!r} (opset < 7) broadcasts its second input from axis {axis}"
    if a is None or b is None:
        raise EyesimError(f"{where}, and the ranks of its inputs are not known")
    if not 0 <= axis <= a - b:
        raise EyesimError(f"{where}, out of range for inputs of rank {a} and {b}")
    return axis


def _broadcast_axis(node: onnx.NodeProto) -> int | None:
    """The ``axis`` of a two-input node broadcasting old-style from an axis (``broadcast=1``), else None."""
    attrs = {a.name: a.i for a in node.attribute if a.name in ("axis", "broadcast")}
    return attrs["axis"] if "axis" in attrs and attrs.get("broadcast") == 1 and len(node.input) == 2 else None


def _symbolic_dims_as_1(model: onnx.ModelProto) -> tuple[dict[str, onnx.TypeProto], list[onnx.ValueInfoProto]]:
    """Symbolic or unknown graph dims set to 1, in place: the converter refuses a dim that is not a number (its
    adapters check ranks and broadcasting; a dim of 1 broadcasts with any), never changing a value. Returns the
    types of the graph inputs and outputs and the value_info as they were, for ``_restore_types``."""
    graph = model.graph
    types = {}
    for vi in (*graph.input, *graph.output):
        types[vi.name] = copy.deepcopy(vi.type)
    value_info = [copy.deepcopy(vi) for vi in graph.value_info]
    for vi in (*graph.input, *graph.output, *graph.value_info):
        for dim in vi.type.tensor_type.shape.dim:
            if not dim.HasField("dim_value"):
                dim.dim_value = 1
    return types, value_info


def _restore_types(converted: onnx.ModelProto, saved: tuple[dict[str, onnx.TypeProto], list]) -> None:
    """The graph inputs', outputs' and value_info's types as ``_symbolic_dims_as_1`` found them (shape inference
    works the rest out again)."""
    types, value_info = saved
    for vi in (*converted.graph.input, *converted.graph.output):
        if vi.name in types:
            vi.type.CopyFrom(types[vi.name])
    del converted.graph.value_info[:]
    converted.graph.value_info.extend(value_info)
