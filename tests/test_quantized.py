"""Quantized models: in QDQ form (onnxruntime.quantization's default) eyesim charges their Conv/Gemm and reads the
zeros of the quantized weights (a weight is zero where it equals its zero point); in operator form (QLinearConv,
ConvInteger, ...) they are refused on one line that says how to quantize them in QDQ form."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from click.testing import CliRunner
from onnx import numpy_helper
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_dynamic, quantize_static

import eyesim
from eyesim.cli import main
from eyesim.report.table import summary
from tests.conftest import arrays

ROOT = Path(__file__).resolve().parent.parent
CHIP = str(ROOT / "hwconfigs" / "eyeriss.yaml")


class Calibration(CalibrationDataReader):
    """Real digits, one image a batch (the model's batch is fixed to 1 for the calibration)."""

    def __init__(self, x: np.ndarray) -> None:
        self.images = iter(x[i:i + 1] for i in range(len(x)))

    def get_next(self) -> dict | None:
        image = next(self.images, None)
        return None if image is None else {"x": image}


def sparse_float_model(digits: Path, tmp: Path) -> tuple[Path, dict[str, float]]:
    """The digits CNN with every other weight of each Conv/Gemm set to zero, at batch 1; its weights' densities."""
    model = onnx.load(str(digits / "cnn.onnx"))
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_value = 1
    weights = {node.input[1]: node.name for node in model.graph.node if node.op_type in ("Conv", "Gemm")}
    density = {}
    for index, init in enumerate(model.graph.initializer):
        if init.name in weights:
            values = numpy_helper.to_array(init).copy()
            values.flat[::2] = 0.0
            model.graph.initializer[index].CopyFrom(numpy_helper.from_array(values, init.name))
            density[weights[init.name]] = np.count_nonzero(values) / values.size
    path = tmp / "sparse.onnx"
    onnx.save(model, str(path))
    return path, density


@pytest.mark.parametrize(("per_channel", "weight_type"), [(False, QuantType.QInt8), (True, QuantType.QInt8),
                                                          (True, QuantType.QUInt8)])
def test_a_qdq_model_is_charged_with_the_zeros_of_its_quantized_weights(digits, tmp_path, per_channel, weight_type):
    source, _ = sparse_float_model(digits, tmp_path)
    x = arrays(digits / "data.npz")["x"]
    quantized = tmp_path / "qdq.onnx"
    quantize_static(str(source), str(quantized), Calibration(x[:32]), quant_format=QuantFormat.QDQ,
                    per_channel=per_channel, weight_type=weight_type, activation_type=QuantType.QUInt8)
    model = onnx.load(str(quantized))
    assert {"QuantizeLinear", "DequantizeLinear"} <= {node.op_type for node in model.graph.node}
    result = eyesim.estimate(quantized, CHIP, bits={"weights": 8, "ifmap": 8})
    expected = independent_weight_densities(model)
    found = {layer.layer.name: layer.density.weights for layer in result.layers}
    assert found == pytest.approx(expected, abs=0) and all(d <= 0.5 for d in found.values())
    if weight_type == QuantType.QUInt8:  # asymmetric: a zero weight is its zero point, not the integer 0
        inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
        assert any(np.any(inits[node.input[2]] != 0) for node in model.graph.node if node.op_type == "DequantizeLinear"
                   and inits.get(node.input[0], np.zeros(0, np.int32)).dtype == np.uint8)
    dense = eyesim.estimate(quantized, CHIP, bits={"weights": 8, "ifmap": 8}, densities={"weights": 1.0})
    assert result.total()["energy"]["total"] < dense.total()["energy"]["total"]
    sampled = eyesim.estimate(quantized, CHIP, samples=x[:16])  # onnxruntime runs the QDQ graph
    assert all(layer.density.kinds[1] == "measured" for layer in sampled.layers[1:])


def independent_weight_densities(model: onnx.ModelProto) -> dict[str, float]:
    """Each Conv/Gemm's non-zero weight fraction: dequantize its weights with onnx's own helper, count non-zeros."""
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    dequantized = {}
    for node in model.graph.node:
        if node.op_type == "DequantizeLinear" and node.input[0] in inits:
            q, scale = inits[node.input[0]].astype(np.float64), inits[node.input[1]].astype(np.float64)
            zero = inits[node.input[2]].astype(np.float64) if len(node.input) > 2 else np.zeros(())
            axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
            shape = [-1 if d == axis else 1 for d in range(q.ndim)] if scale.ndim == 1 else []
            dequantized[node.output[0]] = (q - zero.reshape(shape)) * scale.reshape(shape)
    return {node.name: np.count_nonzero(dequantized[node.input[1]]) / dequantized[node.input[1]].size
            for node in model.graph.node if node.op_type in ("Conv", "Gemm")}


def test_quantized_operator_forms_are_refused_saying_how_to_quantize_in_qdq_form(digits, tmp_path):
    source, _ = sparse_float_model(digits, tmp_path)
    x = arrays(digits / "data.npz")["x"]
    operators = tmp_path / "qop.onnx"
    quantize_static(str(source), str(operators), Calibration(x[:8]), quant_format=QuantFormat.QOperator)
    dynamic = tmp_path / "dynamic.onnx"
    quantize_dynamic(str(source), str(dynamic), op_types_to_quantize=["Conv"])
    for path, op in ((operators, "QLinearConv"), (dynamic, "DynamicQuantizeLinear")):
        done = CliRunner().invoke(main, ["estimate", str(path), "--hw", CHIP])
        line = done.output.strip()
        assert done.exit_code == 2 and "\n" not in line, line
        assert f"unsupported op {op}" in line and "quant_format=QuantFormat.QDQ" in line, line


def dequantized_conv(tmp_path: Path, q: np.ndarray, zero: np.ndarray | None, scale_shape: tuple = (), axis=None,
                     qtype: int = onnx.TensorProto.INT8, opset: int = 13) -> Path:
    """DequantizeLinear(q, scale, zero point) -> Conv, written by hand (the cases onnxruntime's tools never make)."""
    if qtype in (onnx.TensorProto.INT4, onnx.TensorProto.UINT4):
        make = lambda name, values: onnx.helper.make_tensor(name, qtype, values.shape, values.flatten().tolist())  # noqa: E731
    else:
        make = lambda name, values: numpy_helper.from_array(  # noqa: E731
            values.astype(onnx.helper.tensor_dtype_to_np_dtype(qtype)), name)
    inits = [make("wq", q), numpy_helper.from_array(np.full(scale_shape, 0.5, np.float32), "scale")]
    if zero is not None:
        inits.append(make("zero", np.asarray(zero)))
    inputs = ["wq", "scale"] + (["zero"] if zero is not None else [])
    nodes = [onnx.helper.make_node("DequantizeLinear", inputs, ["w"], name="dq",
                                   **({} if axis is None else {"axis": axis})),
             onnx.helper.make_node("Conv", ["x", "w"], ["y"], name="conv")]
    graph = onnx.helper.make_graph(nodes, "g", [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT,
                                                                                     [1, 3, 8, 8])],
                                   [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)], inits)
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", opset)])
    model.ir_version = 10 if opset >= 21 else 8
    path = tmp_path / "dq.onnx"
    onnx.save(model, str(path))
    return path


Q = np.random.default_rng(0).integers(-2, 3, (4, 3, 3, 3))


@pytest.mark.parametrize(("zero", "scale_shape", "axis", "qtype", "opset"), [
    (None, (), None, onnx.TensorProto.INT8, 13),  # no zero point: 0
    (np.array([1, 0, 0, 2]), (4,), -4, onnx.TensorProto.INT8, 13),  # per axis, counted from the end
    (np.array([1, 0, 0, 2]), (), 0, onnx.TensorProto.INT8, 13),  # per-axis zero points, one scale
    (np.int8(0), (), None, onnx.TensorProto.INT4, 21),
    (np.uint8(2), (), None, onnx.TensorProto.UINT4, 21)])
def test_dequantized_weights_are_zero_where_they_equal_their_zero_point(tmp_path, zero, scale_shape, axis, qtype,
                                                                       opset):
    q = Q % 8 if qtype == onnx.TensorProto.UINT4 else Q
    found = eyesim.estimate(dequantized_conv(tmp_path, q, zero, scale_shape, axis, qtype, opset), CHIP).layers[0]
    zero_point = np.zeros(()) if zero is None else np.asarray(zero).reshape((-1, 1, 1, 1) if np.ndim(zero) else ())
    assert found.density.weights == np.count_nonzero(q != zero_point) / q.size
    assert found.density.kinds[0] == "measured"


def test_a_zero_point_that_does_not_match_its_axis_is_refused_on_one_line(tmp_path):
    path = dequantized_conv(tmp_path, Q, np.array([1, 0, 0, 2]), (4,), axis=1)  # axis 1 holds 3 channels, not 4
    done = CliRunner().invoke(main, ["estimate", str(path), "--hw", CHIP])
    line = done.output.strip()
    assert done.exit_code == 2 and "\n" not in line, line
    assert "DequantizeLinear node 'dq': axis 1 of a tensor of dims [4, 3, 3, 3] does not match its 4 scales" in line


def test_fake_quantized_float_weights_count_the_zeros_quantization_makes(tmp_path):
    """float weights -> QuantizeLinear -> DequantizeLinear (a PyTorch fake-quantized export): a weight is zero
    where it rounds to the zero point, as ONNX rounds (half to even)."""
    w = np.array([0.0, 0.2, 0.25, 0.3, -0.25, -0.26, 1.0, 0.75] * 27, np.float32)[:108].reshape(4, 3, 3, 3)
    inits = [numpy_helper.from_array(w, "w"), numpy_helper.from_array(np.float32(0.5), "scale"),
             numpy_helper.from_array(np.int8(0), "zero")]
    nodes = [onnx.helper.make_node("QuantizeLinear", ["w", "scale", "zero"], ["wq"], name="q"),
             onnx.helper.make_node("DequantizeLinear", ["wq", "scale", "zero"], ["wd"], name="dq"),
             onnx.helper.make_node("Conv", ["x", "wd"], ["y"], name="conv")]
    graph = onnx.helper.make_graph(nodes, "g", [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT,
                                                                                     [1, 3, 8, 8])],
                                   [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)], inits)
    path = tmp_path / "fake.onnx"
    onnx.save(onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 13)]), str(path))
    found = eyesim.estimate(path, CHIP).layers[0].density.weights
    import onnxruntime as ort  # the reference: onnxruntime's own quantize-dequantize of the same weights

    probe = onnx.helper.make_graph(nodes[:2], "p", [], [onnx.helper.make_tensor_value_info("wd", onnx.TensorProto.FLOAT,
                                                                                             None)], inits)
    model = onnx.helper.make_model(probe, opset_imports=[onnx.helper.make_opsetid("", 13)])
    (rounded,) = ort.InferenceSession(model.SerializeToString()).run(None, {})
    assert found == np.count_nonzero(rounded) / rounded.size < np.count_nonzero(w) / w.size


@pytest.mark.parametrize(("op", "hint"), [("QuickGelu", None), ("QuantizeLinear", "UseQDQContribOps"),
                                          ("MatMulNBits", "quant_format=QuantFormat.QDQ"),
                                          ("QGemm", "quant_format=QuantFormat.QDQ")])
def test_onnxruntime_contrib_ops_get_the_hint_that_fits(op, hint):
    node = onnx.helper.make_node(op, ["x"], ["y"], name="n", domain="com.microsoft")
    graph = onnx.helper.make_graph([node], "g", [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [2])],
                                   [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [2])])
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 13),
                                                         onnx.helper.make_opsetid("com.microsoft", 1)])
    with pytest.raises(eyesim.errors.EyesimError) as info:
        eyesim.estimate(model, CHIP)
    text = str(info.value)
    assert f"unsupported op com.microsoft.{op}" in text and "\n" not in text
    assert (hint in text) if hint else ("quantize" not in text), text


def test_a_quantized_models_widths_are_noted_when_the_estimate_uses_wider_ones(digits, tmp_path):
    source, _ = sparse_float_model(digits, tmp_path)
    quantized = tmp_path / "qdq.onnx"
    quantize_static(str(source), str(quantized), Calibration(arrays(digits / "data.npz")["x"][:8]),
                    quant_format=QuantFormat.QDQ)
    wide = eyesim.estimate(quantized, CHIP)  # the chip's 16-bit widths
    (note,) = wide.notes
    assert "quantizes weights to 8 bits and ifmap to 8 bits" in note and "--bits weights=8,ifmap=8" in note
    assert wide.to_dict()["notes"] == [note] and f"note: {note}" in summary(wide).splitlines()
    assert eyesim.estimate(quantized, CHIP, bits={"weights": 8, "ifmap": 8}).notes == ()
    four = eyesim.estimate(dequantized_conv(tmp_path, Q, np.int8(0), qtype=onnx.TensorProto.INT4, opset=21), CHIP)
    assert four.notes == ("the model quantizes weights to 4 bits (DequantizeLinear), but this estimate moves them "
                          "at 16 bits: --bits weights=4 (bits= in the API) estimates them at the model's widths",)
    plain = eyesim.estimate(source, CHIP)
    assert plain.notes == () and "notes" not in plain.to_dict()


def test_pruning_a_quantized_model_is_refused_saying_to_prune_the_float_one(digits, tmp_path):
    source, _ = sparse_float_model(digits, tmp_path)
    quantized = tmp_path / "qdq.onnx"
    quantize_static(str(source), str(quantized), Calibration(arrays(digits / "data.npz")["x"][:8]),
                    quant_format=QuantFormat.QDQ)
    done = CliRunner().invoke(main, ["prune", str(quantized), "--hw", CHIP, "--data", str(digits / "data.npz"),
                                     "-o", str(tmp_path / "pruned.onnx")])
    line = done.output.strip().splitlines()[-1]
    assert done.exit_code == 2 and "are quantized (they come out of a DequantizeLinear); prune the float model, " \
        "then quantize it" in line, done.output
