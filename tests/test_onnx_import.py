"""eyesim.workload.onnx: ONNX graphs -> Workload (DESIGN.md, "Layers" and "Notation").

Zoo models (the onnx wheel's light model set) are checked against MAC counts taken straight from
the graph after ONNX shape inference; small hand-built graphs are checked field by field.
"""

from __future__ import annotations

import glob
import math
import os
from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

from eyesim.errors import EyesimError
from eyesim.workload import Layer
from eyesim.workload.onnx.load import load_workload
from eyesim.workload.onnx.ops import MAC_OPS, NO_MAC_OPS

LIGHT_DIR = os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data", "light")
ZOO = sorted(glob.glob(os.path.join(LIGHT_DIR, "*.onnx")))
MODELS_DIR = Path(__file__).resolve().parent.parent / "models_onnx"
FLOAT = TensorProto.FLOAT


# ---------------------------------------------------------------- helpers


def vi(name: str, shape: list | None) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, FLOAT, shape)


def init(name: str, shape: list[int], dtype: type = np.float32, value: object = None) -> onnx.TensorProto:
    array = np.zeros(shape, dtype) if value is None else np.array(value, dtype)
    return numpy_helper.from_array(array, name)


def make(nodes: list, inputs: list, inits: list = (), opset: int = 13, outputs: tuple = ("y",)) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "g", inputs, [vi(o, None) for o in outputs], initializer=list(inits))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def conv_model(x: list, w: list, opset: int = 13, **attrs: object) -> onnx.ModelProto:
    node = helper.make_node("Conv", ["x", "w"], ["y"], name="conv", **attrs)
    return make([node], [vi("x", x)], [init("w", w)], opset=opset)


def shape(C: int, M: int, H: int, W: int, R: int, S: int, E: int, F: int, N: int = 1, G: int = 1,
          U: int = 1, Uw: int = 1, Dh: int = 1, Dw: int = 1) -> dict[str, int]:
    return {"N": N, "G": G, "C": C, "M": M, "H": H, "W": W, "R": R, "S": S, "E": E, "F": F,
            "U": U, "Uw": Uw, "Dh": Dh, "Dw": Dw}


def only_layer(model: onnx.ModelProto, batch: int = 1) -> Layer:
    (layer,) = load_workload(model, batch).layers
    return layer


def onnx_out_dims(model: onnx.ModelProto, tensor: str = "y") -> list[int]:
    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    (out,) = [v for v in (*inferred.graph.value_info, *inferred.graph.output) if v.name == tensor]
    return [d.dim_value for d in out.type.tensor_type.shape.dim]


def graph_macs(model: onnx.ModelProto) -> int:
    """MACs counted from ONNX-inferred shapes: Conv N*out_h*out_w*Cout*(Cin/g)*kh*kw, Gemm rows*in*out."""
    graph = onnx.shape_inference.infer_shapes(model, data_prop=True).graph
    dims = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim]
            for v in (*graph.input, *graph.value_info, *graph.output)}
    dims |= {init.name: list(init.dims) for init in graph.initializer}
    total = 0
    for node in graph.node:
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        if node.op_type == "Conv":
            n, cout, *out_spatial = dims[node.output[0]]
            weight = dims[node.input[1]]
            total += n * math.prod(out_spatial) * cout * weight[1] * math.prod(weight[2:])
        elif node.op_type == "Gemm":
            rows, out = dims[node.output[0]]
            total += rows * dims[node.input[0]][0 if attrs.get("transA") else 1] * out
        elif node.op_type == "MatMul":
            total += math.prod(dims[node.output[0]]) * dims[node.input[1]][-2]
    return total


def error_of(model: object, batch: int = 1) -> str:
    with pytest.raises(EyesimError) as info:
        load_workload(model, batch)
    message = str(info.value)
    assert "\n" not in message
    return message


# ---------------------------------------------------------------- the onnx model zoo (light)


def test_zoo_is_there() -> None:
    assert len(ZOO) >= 9


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("path", ZOO, ids=os.path.basename)
def test_zoo_model(path: str, batch: int) -> None:
    model = onnx.load(path)
    nodes = model.graph.node
    work = load_workload(path, batch)
    assert work.batch == batch and work.model == Path(path).stem
    assert sum(layer.macs for layer in work.layers) == batch * graph_macs(model)
    assert len(work.layers) == sum(node.op_type in MAC_OPS for node in nodes)
    assert {layer.N for layer in work.layers} == {batch}
    # every node is accounted for exactly once: a layer, or listed as not modelled (no MACs / folded)
    names = [layer.name for layer in work.layers] + [item.name for item in work.not_modelled]
    assert len(names) == len(set(names)) == len(nodes)
    ops = Counter(layer.op for layer in work.layers) + Counter(item.op for item in work.not_modelled)
    assert ops == Counter(node.op_type for node in nodes)
    assert all(item.reason == "no MACs" or item.reason.startswith("folded into ") for item in work.not_modelled)


def test_zoo_alexnet_details() -> None:
    work = load_workload(os.path.join(LIGHT_DIR, "light_bvlc_alexnet.onnx"))
    # unnamed nodes are called <op>_<index>; the Conv nodes are named n0, n4, ...
    assert work.not_modelled[0].name == "ConstantOfShape_0"
    conv1, conv2 = work.layers[:2]
    assert conv1.shape == shape(C=3, M=96, H=224, W=224, R=11, S=11, E=54, F=54, U=4, Uw=4)
    assert conv2.shape == shape(G=2, C=48, M=128, H=30, W=30, R=5, S=5, E=26, F=26)
    fc6 = work.layers[5]
    assert fc6.op == "Gemm" and fc6.shape == shape(C=256, M=4096, H=6, W=6, R=6, S=6, E=1, F=1)


def test_zoo_resnet_batchnorms_fold() -> None:
    work = load_workload(os.path.join(LIGHT_DIR, "light_resnet50.onnx"))
    bns = [item for item in work.not_modelled if item.op == "BatchNormalization"]
    assert len(bns) == 53 and all(item.reason.startswith("folded into ") for item in bns)


# ---------------------------------------------------------------- Conv


def test_conv_basic() -> None:
    layer = only_layer(conv_model([1, 3, 32, 32], [16, 3, 3, 3], pads=[1, 1, 1, 1]))
    assert layer.name == "conv" and layer.op == "Conv"
    assert layer.shape == shape(C=3, M=16, H=34, W=34, R=3, S=3, E=32, F=32)


def test_conv_groups() -> None:
    layer = only_layer(conv_model([1, 8, 10, 10], [12, 4, 3, 3], group=2))
    assert layer.shape == shape(G=2, C=4, M=6, H=10, W=10, R=3, S=3, E=8, F=8)


def test_conv_depthwise() -> None:
    layer = only_layer(conv_model([1, 8, 10, 10], [16, 1, 3, 3], group=8, pads=[1, 1, 1, 1]))
    assert layer.shape == shape(G=8, C=1, M=2, H=12, W=12, R=3, S=3, E=10, F=10)


def test_conv_strides() -> None:
    layer = only_layer(conv_model([1, 3, 11, 17], [4, 3, 3, 5], strides=[2, 3]))
    assert layer.shape == shape(C=3, M=4, H=11, W=17, R=3, S=5, E=5, F=5, U=2, Uw=3)


def test_conv_asymmetric_pads() -> None:
    # pads = [h_begin, w_begin, h_end, w_end]
    layer = only_layer(conv_model([1, 3, 10, 12], [4, 3, 3, 3], pads=[0, 1, 2, 3]))
    assert layer.shape == shape(C=3, M=4, H=12, W=16, R=3, S=3, E=10, F=14)


@pytest.mark.parametrize(
    ("auto_pad", "H", "W", "E", "F"),
    [
        ("SAME_UPPER", 9, 9, 4, 4),  # E = ceil(7/2); total pad h = 3*2 + 3 - 7 = 2, w = 3*2 + 3 - 8 = 1
        ("SAME_LOWER", 9, 9, 4, 4),
        ("VALID", 7, 8, 3, 3),
        ("NOTSET", 9, 10, 4, 4),  # explicit pads 1 on every side
    ],
)
def test_conv_auto_pad(auto_pad: str, H: int, W: int, E: int, F: int) -> None:
    extra = {"pads": [1, 1, 1, 1]} if auto_pad == "NOTSET" else {}
    model = conv_model([1, 2, 7, 8], [5, 2, 3, 3], strides=[2, 2], auto_pad=auto_pad, **extra)
    layer = only_layer(model)
    assert layer.shape == shape(C=2, M=5, H=H, W=W, R=3, S=3, E=E, F=F, U=2, Uw=2)
    assert onnx_out_dims(model) == [1, 5, E, F]


def test_conv_dilations() -> None:
    layer = only_layer(conv_model([1, 2, 20, 20], [4, 2, 3, 3], dilations=[2, 3]))
    assert layer.shape == shape(C=2, M=4, H=20, W=20, R=3, S=3, E=16, F=14, Dh=2, Dw=3)


def test_conv_kernel_shape_inferred_from_weight() -> None:
    layer = only_layer(conv_model([1, 3, 9, 9], [4, 3, 2, 4]))
    assert (layer.R, layer.S, layer.E, layer.F) == (2, 4, 8, 6)


def test_conv_1d_is_one_row() -> None:
    layer = only_layer(conv_model([2, 4, 50], [8, 4, 5], strides=[2], pads=[1, 1], dilations=[1]), batch=2)
    assert layer.shape == shape(N=2, C=4, M=8, H=1, W=52, R=1, S=5, E=1, F=24, U=1, Uw=2)


def test_conv_3d_is_refused() -> None:
    message = error_of(conv_model([1, 2, 4, 8, 8], [3, 2, 1, 3, 3]))
    assert "3-D" in message and "'conv'" in message


@settings(max_examples=60, deadline=None)
@given(
    size=st.tuples(st.integers(1, 24), st.integers(1, 24)),
    kernel=st.tuples(st.integers(1, 5), st.integers(1, 5)),
    strides=st.tuples(st.integers(1, 4), st.integers(1, 4)),
    dilations=st.tuples(st.integers(1, 3), st.integers(1, 3)),
    pads=st.tuples(*[st.integers(0, 3)] * 4),
    auto_pad=st.sampled_from(["NOTSET", "VALID", "SAME_UPPER", "SAME_LOWER"]),
    group=st.sampled_from([1, 2, 3]),
    batch=st.integers(1, 3),
)
def test_conv_matches_onnx_inference(size, kernel, strides, dilations, pads, auto_pad, group, batch) -> None:
    attrs = {"pads": list(pads)} if auto_pad == "NOTSET" else {"auto_pad": auto_pad}
    model = conv_model([batch, 2 * group, *size], [3 * group, 2, *kernel], strides=list(strides),
                       dilations=list(dilations), group=group, **attrs)
    padded = [n + pads[i] + pads[i + 2] for i, n in enumerate(size)] if auto_pad == "NOTSET" else size
    spans = [d * (k - 1) + 1 for d, k in zip(dilations, kernel, strict=True)]
    fits = auto_pad.startswith("SAME") or all(p >= span for p, span in zip(padded, spans, strict=True))
    if not fits:
        assert "must be a positive integer" in error_of(model, batch)
        return
    out = onnx_out_dims(model)
    layer = only_layer(model, batch)
    assert out == [layer.N, layer.G * layer.M, layer.E, layer.F]
    assert layer.macs == math.prod(out) * 2 * kernel[0] * kernel[1]


# ---------------------------------------------------------------- Gemm and MatMul


def test_gemm_trans_b() -> None:
    node = helper.make_node("Gemm", ["x", "w", "b"], ["y"], name="fc", transB=1)
    layer = only_layer(make([node], [vi("x", [5, 64])], [init("w", [10, 64]), init("b", [10])]), batch=5)
    assert layer.op == "Gemm" and layer.shape == shape(N=5, C=64, M=10, H=1, W=1, R=1, S=1, E=1, F=1)


def test_gemm_trans_a() -> None:
    nodes = [helper.make_node("Transpose", ["x"], ["xt"], name="t", perm=[1, 0]),
             helper.make_node("Gemm", ["xt", "w"], ["y"], name="fc", transA=1)]
    layer = only_layer(make(nodes, [vi("x", [5, 64])], [init("w", [64, 10])]), batch=5)
    assert layer.shape == shape(N=5, C=64, M=10, H=1, W=1, R=1, S=1, E=1, F=1)


def test_gemm_with_dynamic_weight_is_a_product_of_activations() -> None:
    nodes = [helper.make_node("Transpose", ["x"], ["w"], name="t", perm=[1, 0]),
             helper.make_node("Gemm", ["x", "w"], ["y"], name="fc")]
    layer = only_layer(make(nodes, [vi("x", [5, 64])]))  # x·xᵀ: DESIGN.md, "Layers"
    assert (layer.op, layer.N, layer.C, layer.M) == ("Gemm(act)", 5, 64, 5)


@pytest.mark.parametrize(
    ("x", "expected"),
    [
        ([6, 32], shape(N=6, C=32, M=16, H=1, W=1, R=1, S=1, E=1, F=1)),
        ([2, 7, 32], shape(N=2, C=32, M=16, H=7, W=1, R=1, S=1, E=7, F=1)),
        ([2, 3, 5, 32], shape(N=2, C=32, M=16, H=3, W=5, R=1, S=1, E=3, F=5)),
        ([2, 4, 3, 5, 32], shape(N=8, C=32, M=16, H=3, W=5, R=1, S=1, E=3, F=5)),
    ],
)
def test_matmul_with_constant(x: list[int], expected: dict[str, int]) -> None:
    node = helper.make_node("MatMul", ["x", "w"], ["y"], name="mm")
    layer = only_layer(make([node], [vi("x", x)], [init("w", [32, 16])]), batch=x[0])
    assert layer.op == "MatMul" and layer.shape == expected
    assert layer.macs == math.prod(x) * 16


def test_matmul_constant_on_the_left() -> None:
    # W [16, 32] @ x [2, 32, 9]: free dims of x are [2, 9]
    node = helper.make_node("MatMul", ["w", "x"], ["y"], name="mm")
    layer = only_layer(make([node], [vi("x", [2, 32, 9])], [init("w", [16, 32])]), batch=2)
    assert layer.shape == shape(N=2, C=32, M=16, H=9, W=1, R=1, S=1, E=9, F=1)


def test_matmul_of_two_dynamic_tensors_is_a_product_of_activations() -> None:
    node = helper.make_node("MatMul", ["a", "b"], ["y"], name="attn")
    relu = helper.make_node("Relu", ["x"], ["b"], name="r")
    layer = only_layer(make([relu, node], [vi("a", [2, 4, 8]), vi("x", [2, 8, 4])]))
    assert (layer.op, layer.G, layer.N, layer.C, layer.M) == ("MatMul(act)", 2, 4, 8, 4)


def fc_after(ops: list[str], weight_op: str = "Gemm") -> onnx.ModelProto:
    """x [3, 8, 5, 4] -> ops -> Gemm/MatMul with 160 in-features."""
    nodes, inits, tensor = [], [init("w", [10, 160])], "x"
    for i, op in enumerate(ops):
        inputs = [tensor]
        if op == "Reshape":
            inputs.append(f"s{i}")
            inits.append(init(f"s{i}", [2], np.int64, [3, -1]))
        nodes.append(helper.make_node(op, inputs, [f"t{i}"], name=f"{op.lower()}{i}",
                                      **({"perm": [0, 2, 3, 1]} if op == "Transpose" else {})))
        tensor = f"t{i}"
    if weight_op == "Gemm":
        nodes.append(helper.make_node("Gemm", [tensor, "w"], ["y"], name="fc", transB=1))
    else:
        nodes.append(helper.make_node("Transpose", ["w"], ["wt"], name="wt", perm=[1, 0]))
        nodes.append(helper.make_node("MatMul", [tensor, "wt"], ["y"], name="fc"))
    return make(nodes, [vi("x", [3, 8, 5, 4])], inits)


WHOLE_INPUT = shape(N=3, C=8, M=10, H=5, W=4, R=5, S=4, E=1, F=1)
FLAT = shape(N=3, C=160, M=10, H=1, W=1, R=1, S=1, E=1, F=1)


@pytest.mark.parametrize(
    ("ops", "weight_op", "expected"),
    [
        (["Flatten"], "Gemm", WHOLE_INPUT),
        (["Relu", "Flatten", "Dropout", "Identity"], "Gemm", WHOLE_INPUT),
        (["Reshape"], "Gemm", WHOLE_INPUT),
        (["Flatten"], "MatMul", WHOLE_INPUT),
        # the transposed 4-D tensor [3, 5, 4, 8] is what is flattened: the filter covers it
        (["Transpose", "Flatten"], "Gemm", shape(N=3, C=5, M=10, H=4, W=8, R=4, S=8, E=1, F=1)),
    ],
)
def test_fc_filter_covers_4d_input(ops: list[str], weight_op: str, expected: dict[str, int]) -> None:
    layer = only_layer(fc_after(ops, weight_op), batch=3)
    assert layer.shape == expected and layer.macs == 3 * 160 * 10


def test_fc_without_4d_source_is_flat() -> None:
    # x [3, 8, 5, 4] -> Reshape [3, 40, 4] -> Transpose -> Reshape [3, 160]: no 4-D tensor reaches the Gemm
    nodes = [helper.make_node("Reshape", ["x", "s1"], ["r1"], name="r1"),
             helper.make_node("Transpose", ["r1"], ["t"], name="t", perm=[0, 2, 1]),
             helper.make_node("Reshape", ["t", "s2"], ["r2"], name="r2"),
             helper.make_node("Gemm", ["r2", "w"], ["y"], name="fc", transB=1)]
    inits = [init("s1", [3], np.int64, [3, 40, 4]), init("s2", [2], np.int64, [3, 160]), init("w", [10, 160])]
    assert only_layer(make(nodes, [vi("x", [3, 8, 5, 4])], inits), batch=3).shape == FLAT


# ---------------------------------------------------------------- where weights come from


def conv_with_weight(source: str) -> onnx.ModelProto:
    w_shape = [16, 3, 3, 3]
    inputs, inits, nodes = [vi("x", ["N", 3, 8, 8])], [], []
    if source == "initializer":
        inits.append(init("w", w_shape))
    elif source == "Constant":
        nodes.append(helper.make_node("Constant", [], ["w"], name="wc", value=init("wv", w_shape)))
    elif source == "ConstantOfShape":
        inits.append(init("w_shape", [4], np.int64, w_shape))
        nodes.append(helper.make_node("ConstantOfShape", ["w_shape"], ["w"], name="wc",
                                      value=init("v", [1], value=[0.02])))
    else:  # typed graph input without data
        inputs.append(vi("w", w_shape))
    nodes.append(helper.make_node("Conv", ["x", "w"], ["y"], name="conv", pads=[1, 1, 1, 1]))
    return make(nodes, inputs, inits)


@pytest.mark.parametrize("source", ["initializer", "Constant", "ConstantOfShape", "typed input"])
def test_weight_sources(source: str) -> None:
    work = load_workload(conv_with_weight(source), batch=2)
    assert work.layers[0].shape == shape(N=2, C=3, M=16, H=10, W=10, R=3, S=3, E=8, F=8)
    assert [item.op for item in work.not_modelled] == ([] if source in ("initializer", "typed input") else [source])


def test_typed_weights_through_no_mac_ops_are_parameters() -> None:
    # w [160, 10] typed input, transposed, then used as Gemm's B: a parameter, so its dim 0 keeps 160
    nodes = [helper.make_node("Flatten", ["x"], ["f"], name="flat"),
             helper.make_node("Transpose", ["w"], ["wt"], name="wt", perm=[1, 0]),
             helper.make_node("Gemm", ["f", "wt", "b"], ["y"], name="fc", transB=1)]
    model = make(nodes, [vi("x", ["N", 8, 5, 4]), vi("w", [160, 10]), vi("b", [10])])
    assert load_workload(model, batch=4).layer("fc").shape == {**WHOLE_INPUT, "N": 4}


def test_typed_matmul_weight_is_a_parameter() -> None:
    node = helper.make_node("MatMul", ["x", "w"], ["y"], name="mm")
    model = make([node], [vi("x", ["N", 7, 32]), vi("w", [32, 16])])
    assert only_layer(model, batch=3).shape == shape(N=3, C=32, M=16, H=7, W=1, R=1, S=1, E=7, F=1)


def test_model_proto_is_not_modified() -> None:
    model = conv_with_weight("typed input")
    before = model.SerializeToString()
    assert load_workload(model, batch=5).model == "g"
    assert model.SerializeToString() == before


# ---------------------------------------------------------------- batch


@pytest.mark.parametrize("dim0", ["N", 1, 7, None])
@pytest.mark.parametrize("batch", [1, 4])
def test_batch_symbolic_or_fixed(dim0: object, batch: int) -> None:
    node = helper.make_node("Conv", ["x", "w"], ["y"], name="conv")
    model = make([node], [vi("x", [dim0, 3, 8, 8])], [init("w", [4, 3, 3, 3])])
    assert only_layer(model, batch).shape == shape(N=batch, C=3, M=4, H=8, W=8, R=3, S=3, E=6, F=6)


def test_fixed_batch_reshapes_follow_the_batch() -> None:
    # shufflenet-style channel shuffle with the batch (1) written into the Reshape shapes, then [1, -1]
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], name="conv"),
        helper.make_node("Reshape", ["c", "s1"], ["r1"], name="split_groups"),
        helper.make_node("Transpose", ["r1"], ["t"], name="shuffle", perm=[0, 2, 1, 3, 4]),
        helper.make_node("Reshape", ["t", "s2"], ["r2"], name="merge_groups"),
        helper.make_node("Reshape", ["r2", "s3"], ["r3"], name="flatten"),
        helper.make_node("Gemm", ["r3", "fw"], ["y"], name="fc", transB=1),
    ]
    inits = [init("w", [8, 3, 3, 3]), init("s1", [5], np.int64, [1, 2, 4, 6, 6]),
             init("s2", [4], np.int64, [1, 8, 6, 6]), init("s3", [2], np.int64, [1, -1]), init("fw", [10, 288])]
    model = make(nodes, [vi("x", [1, 3, 8, 8])], inits)
    work = load_workload(model, batch=3)
    assert work.layer("conv").N == 3
    assert work.layer("fc").shape == shape(N=3, C=8, M=10, H=6, W=6, R=6, S=6, E=1, F=1)


@pytest.mark.parametrize("opset", [11, 13, 14])
@pytest.mark.parametrize("dim0", [1, "N"])
def test_flatten_by_shape_arithmetic(opset: int, dim0: object) -> None:
    # PyTorch-style x.view(x.size(0), -1): Reshape(x, Concat(Unsqueeze(Gather(Shape(x), 0)), [-1])).
    # Reshape before opset 14 does not use ONNX's data propagation: the importer computes the shape.
    unsqueeze = (helper.make_node("Unsqueeze", ["n"], ["n1"], name="unsq", axes=[0]) if opset < 13
                 else helper.make_node("Unsqueeze", ["n", "axes"], ["n1"], name="unsq"))
    nodes = [
        helper.make_node("Shape", ["x"], ["sh"], name="shape"),
        helper.make_node("Gather", ["sh", "zero"], ["n"], name="gather", axis=0),
        unsqueeze,
        helper.make_node("Concat", ["n1", "minus1"], ["target"], name="concat", axis=0),
        helper.make_node("Reshape", ["x", "target"], ["flat"], name="reshape"),
        helper.make_node("Gemm", ["flat", "w"], ["y"], name="fc", transB=1),
    ]
    inits = [init("zero", [], np.int64, 0), init("axes", [1], np.int64, [0]), init("minus1", [1], np.int64, [-1]),
             init("w", [10, 160])]
    work = load_workload(make(nodes, [vi("x", [dim0, 8, 5, 4])], inits, opset=opset), batch=6)
    assert work.layer("fc").shape == {**WHOLE_INPUT, "N": 6}
    assert len(work.not_modelled) == 5


@pytest.mark.parametrize("batch", [0, -1, 1.5, True])
def test_bad_batch(batch: object) -> None:
    assert "batch" in error_of(conv_with_weight("initializer"), batch)


# ---------------------------------------------------------------- folding and not-modelled ops


def test_batchnorm_after_conv_folds() -> None:
    bn_inputs = ["c", "s", "bias", "mean", "var"]
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv1"),
             helper.make_node("BatchNormalization", bn_inputs, ["b"], name="bn1"),
             helper.make_node("Relu", ["b"], ["r"], name="relu1"),
             helper.make_node("BatchNormalization", ["r", *bn_inputs[1:]], ["y"], name="bn2")]
    inits = [init("w", [4, 3, 3, 3]), *(init(n, [4]) for n in bn_inputs[1:])]
    work = load_workload(make(nodes, [vi("x", [1, 3, 8, 8])], inits))
    assert [(i.name, i.op, i.reason) for i in work.not_modelled] == [
        ("bn1", "BatchNormalization", "folded into conv1"),
        ("relu1", "Relu", "no MACs"),
        ("bn2", "BatchNormalization", "no MACs"),
    ]


def test_batchnorm_does_not_fold_when_conv_output_is_used_elsewhere() -> None:
    bn_inputs = ["c", "s", "bias", "mean", "var"]
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv1"),
             helper.make_node("BatchNormalization", bn_inputs, ["b"], name="bn1"),
             helper.make_node("Add", ["b", "c"], ["y"], name="add")]
    inits = [init("w", [4, 3, 3, 3]), *(init(n, [4]) for n in bn_inputs[1:])]
    work = load_workload(make(nodes, [vi("x", [1, 3, 8, 8])], inits))
    assert {i.name: i.reason for i in work.not_modelled} == {"bn1": "no MACs", "add": "no MACs"}


def pad_conv(opset: int, mode: str = "constant", value: float = 0.0, pads: tuple = (0, 0, 1, 2, 0, 0, 3, 4)
             ) -> onnx.ModelProto:
    conv = helper.make_node("Conv", ["p", "w"], ["y"], name="conv", pads=[1, 1, 1, 1])
    inits = [init("w", [4, 3, 3, 3])]
    if opset < 11:
        pad = helper.make_node("Pad", ["x"], ["p"], name="pad", mode=mode, pads=list(pads), value=value)
    else:
        pad = helper.make_node("Pad", ["x", "pads", "value"], ["p"], name="pad", mode=mode)
        inits += [init("pads", [8], np.int64, list(pads)), init("value", [], np.float32, value)]
    return make([pad, conv], [vi("x", [1, 3, 10, 10])], inits, opset=opset)


@pytest.mark.parametrize("opset", [7, 13])
def test_pad_folds_into_conv(opset: int) -> None:
    work = load_workload(pad_conv(opset))
    # H = 10 + (1 + 3) from the Pad + 2 from the Conv; W = 10 + (2 + 4) + 2
    assert work.layer("conv").shape == shape(C=3, M=4, H=16, W=18, R=3, S=3, E=14, F=16)
    assert [(i.name, i.reason) for i in work.not_modelled] == [("pad", "folded into conv")]


def test_pad_with_axes_folds_into_conv() -> None:
    model = pad_conv(18, pads=(1, 2, 3, 4))
    model.graph.node[0].input.append("axes")
    model.graph.initializer.append(init("axes", [2], np.int64, [2, -1]))
    assert load_workload(model).layer("conv").shape == shape(C=3, M=4, H=16, W=18, R=3, S=3, E=14, F=16)


@pytest.mark.parametrize(
    ("mode", "value", "pads"),
    [("reflect", 0.0, (0, 0, 1, 2, 0, 0, 3, 4)), ("constant", 1.0, (0, 0, 1, 2, 0, 0, 3, 4)),
     ("constant", 0.0, (0, 1, 1, 2, 0, 0, 3, 4))],
)
def test_pad_that_cannot_fold_is_listed(mode: str, value: float, pads: tuple) -> None:
    work = load_workload(pad_conv(13, mode, value, pads) if pads[1] == 0 else _channel_pad(pads))
    assert [(i.name, i.reason) for i in work.not_modelled] == [("pad", "no MACs")]
    assert work.layer("conv").H == 16 and work.layer("conv").W == 18  # the padded input, from inference


def _channel_pad(pads: tuple) -> onnx.ModelProto:
    model = pad_conv(13, pads=pads)
    model.graph.initializer[0].CopyFrom(init("w", [4, 4, 3, 3]))
    return model


def test_every_op_is_listed_and_names_are_made_unique() -> None:
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv"),
             helper.make_node("Relu", ["c"], ["r"], name=""),
             helper.make_node("MaxPool", ["r"], ["m"], name="conv", kernel_shape=[2, 2]),
             helper.make_node("GlobalAveragePool", ["m"], ["g"]),
             helper.make_node("Flatten", ["g"], ["f"], name="Flatten_4"),
             helper.make_node("Gemm", ["f", "fw"], ["y"], name="Flatten_4", transB=1)]
    work = load_workload(make(nodes, [vi("x", [1, 3, 8, 8])], [init("w", [4, 3, 3, 3]), init("fw", [10, 4])]))
    assert [layer.name for layer in work.layers] == ["conv", "Gemm_5"]
    assert [(i.name, i.op) for i in work.not_modelled] == [
        ("Relu_1", "Relu"), ("MaxPool_2", "MaxPool"), ("GlobalAveragePool_3", "GlobalAveragePool"),
        ("Flatten_4", "Flatten")]


def test_known_op_tables() -> None:
    for op in ("Relu", "Clip", "LeakyRelu", "PRelu", "Sigmoid", "Tanh", "HardSigmoid", "HardSwish", "Softmax",
               "LogSoftmax", "MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool", "LRN",
               "BatchNormalization", "Add", "Sum", "Sub", "Mul", "Div", "Concat", "Split", "Slice", "Reshape",
               "Flatten", "Transpose", "Squeeze", "Unsqueeze", "Dropout", "Identity", "Constant",
               "ConstantOfShape", "Shape", "Gather", "Cast", "Pad", "Resize", "Upsample", "ReduceMean"):
        assert op in NO_MAC_OPS
    assert not NO_MAC_OPS & MAC_OPS


@pytest.mark.parametrize(("op", "domain"), [("GRU", ""), ("LSTM", ""), ("FusedConv", "com.example")])
def test_unknown_op_is_refused(op: str, domain: str) -> None:
    node = helper.make_node(op, ["x", "w"], ["y"], name="mystery", domain=domain)
    model = make([node], [vi("x", [1, 3, 8, 8])], [init("w", [3, 4, 3, 3])])
    if domain:
        model.opset_import.append(helper.make_opsetid(domain, 1))
    message = error_of(model)
    assert op in message and "'mystery'" in message


def test_shape_that_cannot_be_inferred_is_named() -> None:
    node = helper.make_node("Conv", ["x", "w"], ["y"], name="conv")
    message = error_of(make([node], [vi("x", [1, 3, "H", "W"])], [init("w", [4, 3, 3, 3])]))
    assert "'x'" in message and "'conv'" in message and "cannot infer" in message


def test_graph_without_mac_layers_is_refused() -> None:
    message = error_of(make([helper.make_node("Relu", ["x"], ["y"], name="r")], [vi("x", [1, 3, 8, 8])]))
    assert "no layer with MACs" in message


def test_an_old_opset_is_upgraded_and_one_no_op_exists_at_is_refused() -> None:
    model = conv_with_weight("initializer")
    expected = load_workload(model)
    model.opset_import[0].version = 6  # tests/test_old_opsets.py has the rest
    assert load_workload(model).layers == expected.layers and model.opset_import[0].version == 6
    model.opset_import[0].version = 0
    assert "fails the ONNX checker: No Op registered for Conv with domain_version of 0" in error_of(model)


# ---------------------------------------------------------------- bad files


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.onnx"
    message = error_of(path)
    assert str(path) in message and "no such file" in message


def test_not_an_onnx_file(tmp_path: Path) -> None:
    path = tmp_path / "notes.onnx"
    path.write_bytes(b"this is not an ONNX model at all\n")
    message = error_of(path)
    assert str(path) in message and "not an ONNX" in message


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.onnx"
    path.write_bytes(b"")
    message = error_of(path)
    assert str(path) in message and "not an ONNX model" in message


def test_truncated_file(tmp_path: Path) -> None:
    data = Path(ZOO[0]).read_bytes()
    path = tmp_path / "truncated.onnx"
    path.write_bytes(data[: len(data) // 2])
    message = error_of(path)
    assert str(path) in message and "truncated" in message


def test_empty_graph(tmp_path: Path) -> None:
    path = tmp_path / "empty_graph.onnx"
    onnx.save(make([], [vi("y", [1, 3])]), str(path))
    message = error_of(path)
    assert str(path) in message and "no nodes" in message


def test_checker_failure(tmp_path: Path) -> None:
    model = conv_with_weight("initializer")
    model.graph.node[0].input[0] = "undefined"  # uses a tensor nothing defines
    path = tmp_path / "broken.onnx"
    path.write_bytes(model.SerializeToString())
    message = error_of(path)
    assert str(path) in message and "checker" in message


@pytest.mark.parametrize("keep_data_file", [True, False])
def test_external_data_is_not_needed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, keep_data_file: bool) -> None:
    path = tmp_path / "ext.onnx"
    onnx.save(fc_after(["Flatten"]), str(path), save_as_external_data=True, location="ext.bin", size_threshold=0)
    if not keep_data_file:
        (tmp_path / "ext.bin").unlink()
    monkeypatch.chdir(Path(__file__).parent)
    assert load_workload(path, batch=3).layer("fc").shape == WHOLE_INPUT


def test_path_like_and_name(tmp_path: Path) -> None:
    path = tmp_path / "tiny.onnx"
    onnx.save(conv_with_weight("ConstantOfShape"), str(path))
    assert load_workload(path).model == load_workload(str(path)).model == "tiny"


# ---------------------------------------------------------------- the bundled shape-only models


ALEXNET = MODELS_DIR / "alexnet.onnx"


@pytest.mark.parametrize("batch", [1, 4])
def test_bundled_alexnet_matches_design(batch: int) -> None:
    work = load_workload(ALEXNET, batch)
    expected = {
        "conv1": shape(N=batch, C=3, M=96, H=227, W=227, R=11, S=11, E=55, F=55, U=4, Uw=4),
        "conv2": shape(N=batch, G=2, C=48, M=128, H=31, W=31, R=5, S=5, E=27, F=27),
        "conv3": shape(N=batch, C=256, M=384, H=15, W=15, R=3, S=3, E=13, F=13),
        "conv4": shape(N=batch, G=2, C=192, M=192, H=15, W=15, R=3, S=3, E=13, F=13),
        "conv5": shape(N=batch, G=2, C=192, M=128, H=15, W=15, R=3, S=3, E=13, F=13),
        "fc6": shape(N=batch, C=256, M=4096, H=6, W=6, R=6, S=6, E=1, F=1),
        "fc7": shape(N=batch, C=4096, M=4096, H=1, W=1, R=1, S=1, E=1, F=1),
        "fc8": shape(N=batch, C=4096, M=1000, H=1, W=1, R=1, S=1, E=1, F=1),
    }
    assert {layer.name: layer.shape for layer in work.layers} == expected
    assert sum(layer.macs for layer in work.layers) == batch * 724_406_816


@pytest.mark.parametrize("path", sorted(MODELS_DIR.glob("*.onnx")), ids=lambda p: p.name)
def test_bundled_models_import(path: Path) -> None:
    model = onnx.load(str(path))
    work = load_workload(path, batch=2)
    fixed = onnx.ModelProto()
    fixed.CopyFrom(model)
    fixed.graph.input[0].type.tensor_type.shape.dim[0].dim_value = 1
    assert sum(layer.macs for layer in work.layers) == 2 * graph_macs(fixed)
    assert len(work.layers) + len(work.not_modelled) == len(model.graph.node)
