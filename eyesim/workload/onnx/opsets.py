"""Opsets: the ai.onnx opset a model imports, the ONNX checker, and older models upgraded by the version converter."""

from __future__ import annotations

import copy

import onnx

from eyesim.errors import EyesimError, first_line

MIN_OPSET = 7  # eyesim's op rules (numpy broadcasting, attributes) are those of opset 7 and later


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


def upgraded(model: onnx.ModelProto) -> onnx.ModelProto:
    """``model`` itself, unless it imports an ai.onnx opset older than ``MIN_OPSET``: then a copy upgraded to
    ``MIN_OPSET`` by ONNX's version converter (Add's ``broadcast`` attribute becomes numpy broadcasting, ...),
    after the checker (the converter trusts its input). Node and tensor names are kept."""
    opset = ai_onnx_opset(model)
    if opset is None or opset >= MIN_OPSET or not model.HasField("graph") or not model.graph.node:
        return model  # refused, where it is, by the import's own checks
    check_model(model)
    from onnx import version_converter  # only old models need it

    model = _axis_broadcasts_spelled_out(model)
    try:
        return _symbolic_dims_restored(version_converter.convert_version(_symbolic_dims_as_1(model), MIN_OPSET),
                                       model)
    except Exception as err:  # the converter's C++ errors reach Python as several types
        reason = first_line(err).split("failed: ", 1)[-1]  # a C++ assertion's own words, not its source file
        raise EyesimError(f"opset {opset} is older than {MIN_OPSET}, the oldest eyesim reads, and ONNX's version "
                          f"converter could not upgrade it: {reason}") from err


def _axis_broadcasts_spelled_out(model: onnx.ModelProto) -> onnx.ModelProto:
    """``model``, or a copy whose old-style broadcasts from an ``axis`` (``Add(A, B, broadcast=1, axis=1)``: B's
    dims line up with A's from that axis on) take B through an Unsqueeze that appends the 1s numpy broadcasting
    (opset 7) needs to read it the same way. The version converter only drops ``axis``, lining B up with A's
    last dims instead: a wrong model, or one refused."""
    if not any(_broadcast_axis(node) is not None for node in model.graph.node):
        return model
    model = copy.deepcopy(model)
    try:
        graph = onnx.shape_inference.infer_shapes(model).graph  # the ranks of A and B
    except Exception as err:  # onnx's inference errors have several types
        raise EyesimError(f"ONNX shape inference failed: {first_line(err)}") from err
    ranks = {vi.name: len(vi.type.tensor_type.shape.dim) for vi in (*graph.input, *graph.value_info)
             if vi.type.tensor_type.HasField("shape")}
    ranks.update({tensor.name: len(tensor.dims) for tensor in graph.initializer})
    nodes = []
    for node in model.graph.node:
        axis = _broadcast_axis(node)
        if axis is not None:
            a, b = ranks.get(node.input[0]), ranks.get(node.input[1])
            if a is None or b is None or not 0 <= axis <= a - b:
                raise EyesimError(f"{node.op_type} node {node.name or node.output[0]!r} (opset < 7) broadcasts its "
                                  f"second input from axis {axis}, and the ranks of its inputs are not known")
            if a - axis > b:
                spread = f"{node.input[1]}__eyesim_axis{axis}_rank{a}"
                nodes.append(onnx.NodeProto(op_type="Unsqueeze", name=spread, input=[node.input[1]], output=[spread],
                                            attribute=[onnx.AttributeProto(name="axes", type=onnx.AttributeProto.INTS,
                                                                           ints=range(b, a - axis))]))
                node.input[1] = spread
            kept = [attr for attr in node.attribute if attr.name != "axis"]
            del node.attribute[:]
            node.attribute.extend(kept)
        nodes.append(node)
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    return model


def _broadcast_axis(node: onnx.NodeProto) -> int | None:
    """The ``axis`` of a two-input node broadcasting old-style from an axis (``broadcast=1``), else None."""
    attrs = {a.name: a.i for a in node.attribute if a.name in ("axis", "broadcast")}
    return attrs["axis"] if "axis" in attrs and attrs.get("broadcast") == 1 and len(node.input) == 2 else None


def _symbolic_dims_as_1(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of ``model`` whose symbolic or unknown graph dims read 1: the converter refuses a dim that is not a
    number (its adapters check ranks and broadcasting; a dim of 1 broadcasts with any), never changing a value."""
    fixed = copy.deepcopy(model)
    graph = fixed.graph
    for vi in (*graph.input, *graph.output, *graph.value_info):
        for dim in vi.type.tensor_type.shape.dim:
            if not dim.HasField("dim_value"):
                dim.dim_value = 1
    return fixed


def _symbolic_dims_restored(converted: onnx.ModelProto, model: onnx.ModelProto) -> onnx.ModelProto:
    """``converted`` with ``model``'s own types on its graph inputs and outputs and its value_info (those read
    as 1 for the converter; shape inference works the rest out again)."""
    types = {vi.name: vi.type for vi in (*model.graph.input, *model.graph.output)}
    for vi in (*converted.graph.input, *converted.graph.output):
        if vi.name in types:
            vi.type.CopyFrom(types[vi.name])
    del converted.graph.value_info[:]
    converted.graph.value_info.extend(model.graph.value_info)
    return converted
