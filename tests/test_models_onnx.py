"""The bundled shape-only ONNX models (models_onnx/): validity, size, and MAC/weight counts vs. published figures.

Counts are taken straight from the graphs after ONNX shape inference at batch 1, independently
of eyesim's importer: Conv MACs = N*E*F*M*(C/G)*R*S, Gemm MACs = rows*in*out; weights are the
elements of Conv/Gemm weight tensors, biases and BatchNorm gamma/beta are counted separately.
"""

from __future__ import annotations

import importlib.util
import math
import subprocess
import sys
from collections import Counter
from pathlib import Path
from types import ModuleType
from typing import Any

import onnx
import pytest
from onnx import TensorProto

MODELS_DIR = Path(__file__).resolve().parent.parent / "models_onnx"
SCRIPT = MODELS_DIR / "make_models.py"
MAX_BYTES = 300 * 1024


def _load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("eyesim_make_models", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class body runs
    spec.loader.exec_module(module)
    return module


make_models = _load_script()
NAMES = list(make_models.MODELS)


def load(name: str) -> onnx.ModelProto:
    """The committed model file."""
    return onnx.load(str(MODELS_DIR / f"{name}.onnx"))


def with_batch(model: onnx.ModelProto, batch: int = 1) -> onnx.ModelProto:
    """Copy of ``model`` with the symbolic batch fixed to ``batch``, shapes inferred (strict)."""
    fixed = onnx.ModelProto()
    fixed.CopyFrom(model)
    for value in (*fixed.graph.input, *fixed.graph.output):
        dims = value.type.tensor_type.shape.dim
        if dims and dims[0].dim_param == "N":
            dims[0].dim_value = batch  # clears dim_param (oneof)
    return onnx.shape_inference.infer_shapes(fixed, check_type=True, strict_mode=True, data_prop=True)


def shapes_of(model: onnx.ModelProto) -> dict[str, tuple[int, ...]]:
    """Static shapes of all typed values of an inferred model (unknown dims as -1)."""
    shapes = {}
    for value in (*model.graph.input, *model.graph.value_info, *model.graph.output):
        dims = value.type.tensor_type.shape.dim
        shapes[value.name] = tuple(d.dim_value if d.HasField("dim_value") else -1 for d in dims)
    return shapes


def count(model: onnx.ModelProto) -> Counter[str]:
    """MAC, weight, bias and BatchNorm-parameter counts of a model inferred at a fixed batch."""
    shapes = shapes_of(model)
    counts: Counter[str] = Counter()
    for node in model.graph.node:
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        if node.op_type == "Conv":
            weight = shapes[node.input[1]]  # [M, C/G, R, S]
            out = shapes[node.output[0]]  # [N, G*M, E, F]
            counts["conv_macs"] += math.prod(out) * math.prod(weight[1:])
            counts["conv_weights"] += math.prod(weight)
        elif node.op_type == "Gemm":
            a, w = shapes[node.input[0]], shapes[node.input[1]]
            rows, inner = (a[1], a[0]) if attrs.get("transA", 0) else a
            out_features = w[0] if attrs.get("transB", 0) else w[1]
            counts["fc_macs"] += rows * inner * out_features
            counts["fc_weights"] += math.prod(w)
        elif node.op_type == "BatchNormalization":
            counts["bn_params"] += sum(math.prod(shapes[i]) for i in node.input[1:3])  # gamma, beta
        if node.op_type in ("Conv", "Gemm") and len(node.input) > 2 and node.input[2]:
            counts["biases"] += math.prod(shapes[node.input[2]])
    counts["macs"] = counts["conv_macs"] + counts["fc_macs"]
    counts["weights"] = counts["conv_weights"] + counts["fc_weights"]
    counts["params"] = counts["weights"] + counts["biases"] + counts["bn_params"]
    return counts


def totals() -> dict[str, Counter[str]]:
    """Whole-model counts at batch 1, per model (used for models_onnx/README.md)."""
    return {name: count(with_batch(load(name))) for name in NAMES}


def mac_layers(model: onnx.ModelProto) -> list[str]:
    return [node.name for node in model.graph.node if node.op_type in ("Conv", "Gemm")]


# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
def test_file_is_small_and_valid(name: str) -> None:
    path = MODELS_DIR / f"{name}.onnx"
    assert path.stat().st_size < MAX_BYTES
    model = onnx.load(str(path))
    onnx.checker.check_model(model, full_check=True)
    assert [(o.domain, o.version) for o in model.opset_import] == [("", 13)]


@pytest.mark.parametrize("name", NAMES)
def test_shape_only_no_data(name: str) -> None:
    model = load(name)
    graph = model.graph
    assert not graph.initializer and not graph.sparse_initializer
    for node in graph.node:
        if node.op_type == "Constant":  # Clip bounds and Dropout ratios only
            value = onnx.numpy_helper.to_array(node.attribute[0].t)
            assert value.size == 1, node.name
    params = {v.name: v for v in graph.input[1:]}
    for node in graph.node:
        if node.op_type in ("Conv", "Gemm", "BatchNormalization"):
            for tensor in node.input[1:]:
                info = params[tensor]  # every parameter is a typed graph input ...
                assert info.type.tensor_type.elem_type == TensorProto.FLOAT
                assert all(d.dim_value > 0 for d in info.type.tensor_type.shape.dim)  # ... with a full shape
    assert len(params) == sum(
        len(n.input) - 1 for n in graph.node if n.op_type in ("Conv", "Gemm", "BatchNormalization")
    )


@pytest.mark.parametrize("name", NAMES)
def test_interface_and_names(name: str) -> None:
    model = load(name)
    graph = model.graph
    size = make_models.INPUT_SIZE[name]
    data, out = graph.input[0], graph.output[0]
    assert data.name == "input" and out.name == "output" and len(graph.output) == 1
    dims = data.type.tensor_type.shape.dim
    assert dims[0].dim_param == "N" and [d.dim_value for d in dims[1:]] == [3, size, size]
    assert out.type.tensor_type.shape.dim[0].dim_param == "N"
    names = [node.name for node in graph.node]
    assert all(names) and len(set(names)) == len(names)


@pytest.mark.parametrize("name", NAMES)
def test_full_shape_inference(name: str) -> None:
    """Strict inference (symbolic and batch 1) gives every node output a complete shape."""
    model = load(name)
    symbolic = shapes_of(onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True))
    fixed = shapes_of(with_batch(model))
    for node in model.graph.node:
        tensor = node.output[0]
        assert tensor in symbolic and tensor in fixed, tensor
        if node.op_type != "Constant":
            assert fixed[tensor][0] == 1 and all(d > 0 for d in fixed[tensor]), (tensor, fixed[tensor])
            assert symbolic[tensor][1:] == fixed[tensor][1:]
    assert fixed["output"] == (1, 1000)


def test_alexnet_layers() -> None:
    model = with_batch(load("alexnet"))
    assert mac_layers(model) == ["conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7", "fc8"]
    shapes = shapes_of(model)
    assert shapes["conv1"] == (1, 96, 55, 55)
    assert shapes["conv1.weight"] == (96, 3, 11, 11)
    groups = {
        n.name: onnx.helper.get_attribute_value(a) for n in model.graph.node for a in n.attribute if a.name == "group"
    }
    assert groups == {"conv1": 1, "conv2": 2, "conv3": 1, "conv4": 2, "conv5": 2}
    assert shapes["fc6.weight"] == (4096, 9216)
    ops = [n.op_type for n in model.graph.node if n.op_type != "Constant"]
    assert ops[:4] == ["Conv", "Relu", "LRN", "MaxPool"] and ops[-1] == "Softmax"


def test_vgg16_layers() -> None:
    convs = [f"conv{s}_{i}" for s, depth in enumerate([2, 2, 3, 3, 3], 1) for i in range(1, depth + 1)]
    assert mac_layers(load("vgg16")) == [*convs, "fc6", "fc7", "fc8"]


def test_layer_counts() -> None:
    """Conv / FC layer counts of Sze et al. (table "Summary of popular DNNs"), and the other models' structure."""
    ops = {name: Counter(n.op_type for n in load(name).graph.node) for name in NAMES}
    assert (ops["alexnet"]["Conv"], ops["alexnet"]["Gemm"]) == (5, 3)
    assert (ops["vgg16"]["Conv"], ops["vgg16"]["Gemm"]) == (13, 3)
    assert (ops["googlenet"]["Conv"], ops["googlenet"]["Gemm"], ops["googlenet"]["Concat"]) == (57, 1, 9)
    assert (ops["resnet50"]["Conv"], ops["resnet50"]["BatchNormalization"], ops["resnet50"]["Add"]) == (53, 53, 16)
    assert (ops["squeezenet1_0"]["Conv"], ops["squeezenet1_0"]["Concat"]) == (26, 8)
    assert (ops["mobilenetv2"]["Conv"], ops["mobilenetv2"]["Add"], ops["mobilenetv2"]["Clip"]) == (52, 10, 35)


def test_conv_bias_only_without_batchnorm() -> None:
    for name in NAMES:
        graph = load(name).graph
        consumers = {i: n.op_type for n in graph.node for i in n.input}
        for node in graph.node:
            if node.op_type == "Conv":
                has_bias = len(node.input) > 2
                assert has_bias != (consumers.get(node.output[0]) == "BatchNormalization"), (name, node.name)


def test_googlenet_modules() -> None:
    """Inception outputs and map sizes of Szegedy et al. 2015, Table 1 ('output size' column)."""
    shapes = shapes_of(with_batch(load("googlenet")))
    expected = {
        "3a": (256, 28), "3b": (480, 28),
        "4a": (512, 14), "4b": (512, 14), "4c": (512, 14), "4d": (528, 14), "4e": (832, 14),
        "5a": (832, 7), "5b": (1024, 7),
    }  # fmt: skip
    for module, (channels, size) in expected.items():
        assert shapes[f"inception_{module}/output"] == (1, channels, size, size)
    assert shapes["conv1/7x7_s2"] == (1, 64, 112, 112) and shapes["pool2/3x3_s2"] == (1, 192, 28, 28)


def test_resnet50_is_v1_5() -> None:
    """Stride 2 sits on the 3x3 conv (conv2) of each stage's first block, not on its 1x1 conv1."""
    model = load("resnet50")
    strides = {
        n.name: onnx.helper.get_attribute_value(a) for n in model.graph.node for a in n.attribute if a.name == "strides"
    }
    for stage in (2, 3, 4):
        assert strides[f"layer{stage}.0.conv1"] == [1, 1] and strides[f"layer{stage}.0.conv2"] == [2, 2]
        assert strides[f"layer{stage}.0.downsample.0"] == [2, 2]


def test_depthwise_convs_in_mobilenetv2() -> None:
    model = with_batch(load("mobilenetv2"))
    shapes = shapes_of(model)
    depthwise = [n for n in model.graph.node if n.name.endswith(".depthwise")]
    assert len(depthwise) == 17
    for node in depthwise:
        group = next(onnx.helper.get_attribute_value(a) for a in node.attribute if a.name == "group")
        assert group == shapes[node.output[0]][1] and shapes[node.input[1]][1] == 1


FIGURES = [(name, figure) for name, figures in make_models.published_counts().items() for figure in figures]


def _figure_id(name: str, figure: Any) -> str:
    variant = f"[{figure.variant}]" if figure.variant else ""
    return f"{name}{variant}-{figure.quantity}-{figure.printed}-{figure.source.split()[0].strip(',')}"


@pytest.mark.parametrize(("name", "figure"), FIGURES, ids=[_figure_id(n, f) for n, f in FIGURES])
def test_published_counts(name: str, figure: Any) -> None:
    model = make_models.VARIANTS[name][figure.variant]() if figure.variant else load(name)
    counted = count(with_batch(model))[figure.quantity]
    assert counted > 0
    assert abs(counted - figure.value) <= figure.tolerance * figure.value, (
        f"{_figure_id(name, figure)}: counted {counted:,}, published {figure.printed} ({figure.source}),"
        f" off by {counted / figure.value - 1:+.2%} > {figure.tolerance:.2%}"
    )
    if figure.rtol is not None:  # a wider tolerance than the figure's rounding must say why
        assert figure.why and figure.rtol <= 0.11


def test_every_model_has_published_macs_and_weights() -> None:
    published = make_models.published_counts()
    assert set(published) == set(NAMES)
    for figures in published.values():
        quantities = {f.quantity for f in figures}
        assert quantities & {"macs", "conv_macs"} and quantities & {"weights", "conv_weights", "params"}


def test_regeneration_is_byte_identical(tmp_path: Path) -> None:
    subprocess.run([sys.executable, str(SCRIPT), str(tmp_path)], check=True, capture_output=True)
    for name in NAMES:
        fresh = (tmp_path / f"{name}.onnx").read_bytes()
        assert fresh == (MODELS_DIR / f"{name}.onnx").read_bytes(), f"{name}.onnx differs: rerun make_models.py"
