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
