"""Ops without MACs found in models from the wild (positional encodings, bitwise masks, detection heads and their
post-processing) are listed, not charged, and the layers around them are counted as onnxruntime runs them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import eyesim
from eyesim.workload.onnx.ops import NO_MAC_OPS
from tests.mac_count import count_macs

ROOT = Path(__file__).resolve().parent.parent
CHIP = str(ROOT / "hwconfigs" / "eyeriss.yaml")
F, I64 = TensorProto.FLOAT, TensorProto.INT64


def const(name: str, value) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(value), name)


def conv(x: str, y: str, w: str, name: str) -> onnx.NodeProto:
    return helper.make_node("Conv", [x, w], [y], name=name)


# each case: (ops under test, nodes from the first conv's output "c" [1, 4, 6, 6] to "z", extra constants, opset)
ELEMENTWISE = [(op, [helper.make_node(op, ["c"], ["z"], name="f")], [], 22)
               for op in ("Sin", "Cos", "Tan", "Atan", "Sinh", "Cosh", "Asinh")] + [
    (op, [helper.make_node("Sigmoid", ["c"], ["u"], name="unit"), helper.make_node(op, ["u"], ["z"], name="f")], [],
     22) for op in ("Asin", "Acos", "Atanh")] + [  # inputs inside their domains: (0, 1), then >= 1 for Acosh
    ("Acosh", [helper.make_node("Abs", ["c"], ["a"], name="abs"), helper.make_node("Add", ["a", "one"], ["u"],
                                                                                  name="shift"),
               helper.make_node("Acosh", ["u"], ["z"], name="f")], [const("one", np.float32(1.0))], 22)]
CASES = [
    *ELEMENTWISE,
    ("Swish", [helper.make_node("Swish", ["c"], ["z"], name="f")], [], 24),
    ("BitwiseNot BitwiseAnd BitwiseOr BitwiseXor BitShift",
     [helper.make_node("Cast", ["c"], ["i"], name="cast", to=TensorProto.UINT8),
      helper.make_node("BitwiseNot", ["i"], ["n"], name="not"),
      helper.make_node("BitwiseAnd", ["n", "i"], ["a"], name="and"),
      helper.make_node("BitwiseOr", ["a", "i"], ["o"], name="or"),
      helper.make_node("BitwiseXor", ["o", "n"], ["b"], name="xor"),
      helper.make_node("BitShift", ["b", "one"], ["s"], name="shift", direction="RIGHT"),
      helper.make_node("Cast", ["s"], ["z"], name="back", to=F)], [const("one", np.uint8(1))], 18),
    ("RoiAlign MaxRoiPool",  # a detection head: box features by region, then a conv over each region
     [helper.make_node("RoiAlign", ["c", "rois", "index"], ["r"], name="align", output_height=4, output_width=4),
      helper.make_node("MaxRoiPool", ["c", "rois5"], ["p"], name="pool", pooled_shape=[4, 4]),
      helper.make_node("Add", ["r", "p"], ["z"], name="sum")],
     [const("rois", np.array([[0, 0, 4, 4], [1, 1, 5, 5], [0, 2, 3, 5]], np.float32)),
      const("rois5", np.array([[0, 0, 0, 4, 4], [0, 1, 1, 5, 5], [0, 0, 2, 3, 5]], np.float32)),
      const("index", np.zeros(3, np.int64))], 16),
    ("GridSample AffineGrid",
     [helper.make_node("AffineGrid", ["theta", "size"], ["g"], name="grid"),
      helper.make_node("GridSample", ["c", "g"], ["z"], name="sample")],
     [const("theta", np.array([[[1, 0, 0], [0, 1, 0]]], np.float32)), const("size", np.array([1, 4, 5, 5]))], 20),
    ("CenterCropPad ReverseSequence EyeLike RandomNormalLike RandomUniformLike Bernoulli",
     [helper.make_node("CenterCropPad", ["c", "crop"], ["k"], name="crop", axes=[2, 3]),
      helper.make_node("Reshape", ["k", "rows"], ["t"], name="rows"),
      helper.make_node("ReverseSequence", ["t", "lengths"], ["v"], name="reverse", batch_axis=1, time_axis=0),
      helper.make_node("Reshape", ["v", "back"], ["b"], name="back"),
      helper.make_node("Slice", ["b", "s0", "s1", "s2"], ["sq"], name="square"),
      helper.make_node("Reshape", ["sq", "plane"], ["sq2"], name="plane"),
      helper.make_node("EyeLike", ["sq2"], ["e"], name="eye"),
      helper.make_node("RandomNormalLike", ["b"], ["rn"], name="normal"),
      helper.make_node("RandomUniformLike", ["b"], ["ru"], name="uniform"),
      helper.make_node("Bernoulli", ["ru"], ["bern"], name="coin"),
      helper.make_node("Mul", ["rn", "bern"], ["m"], name="mask"),
      helper.make_node("Add", ["b", "m"], ["z"], name="noisy")],
     [const("crop", np.array([5, 5])), const("rows", np.array([4, 25])), const("lengths", np.array([1, 2, 3, 4] * 6
      + [4])), const("back", np.array([1, 4, 5, 5])), const("s0", np.array([0])), const("s1", np.array([1])),
      const("s2", np.array([0])), const("plane", np.array([4, 25]))], 20),
]


def model_of(nodes: list, extra: list, opset: int) -> onnx.ModelProto:
    rng = np.random.default_rng(0)
    inits = [const("w", rng.normal(size=(4, 3, 3, 3)).astype(np.float32)),
             const("w2", rng.normal(size=(2, 4, 2, 2)).astype(np.float32)), *extra]
    graph = helper.make_graph([conv("x", "c", "w", "conv"), *nodes, conv("z", "y", "w2", "head")], "wild",
                              [helper.make_tensor_value_info("x", F, [1, 3, 8, 8])],
                              [helper.make_tensor_value_info("y", F, None)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    return model


@pytest.mark.parametrize(("ops", "nodes", "extra", "opset"), CASES, ids=[case[0].split()[0] for case in CASES])
def test_wild_ops_are_listed_and_the_layers_around_them_counted(ops, nodes, extra, opset):
    model = model_of(nodes, extra, opset)
    result = eyesim.estimate(model, CHIP)
    assert [layer.layer.name for layer in result.layers] == ["conv", "head"]
    assert {layer.op for layer in result.not_modelled} >= set(ops.split())
    assert sum(layer.energy.macs for layer in result.layers) == count_macs(model).total


def test_non_max_suppression_after_a_detector_head():
    boxes = [helper.make_node("Reshape", ["c", "as_boxes"], ["boxes"], name="boxes"),
             helper.make_node("ReduceMean", ["boxes"], ["s"], name="score", axes=[2], keepdims=0),
             helper.make_node("Unsqueeze", ["s", "zero"], ["scores"], name="scores"),
             helper.make_node("NonMaxSuppression", ["boxes", "scores", "keep", "iou", "least"], ["picked"], name="nms"),
             helper.make_node("Shape", ["picked"], ["n0"], name="count"),
             helper.make_node("Greater", ["s", "least"], ["keep_mask"], name="positive"),
             helper.make_node("Reshape", ["keep_mask", "row"], ["flat_mask"], name="flat"),
             helper.make_node("Compress", ["s", "flat_mask"], ["kept"], name="compress", axis=1),
             helper.make_node("Unique", ["kept"], ["values"], name="unique"),
             helper.make_node("Shape", ["values"], ["n1"], name="distinct"),
             helper.make_node("Concat", ["n0", "n1"], ["n"], name="both", axis=0)]
    inits = [const("w", np.ones((4, 3, 3, 3), np.float32)), const("as_boxes", np.array([1, 36, 4])),
             const("zero", np.array([0])), const("keep", np.array([5])), const("iou", np.array([0.5], np.float32)),
             const("least", np.array([0.0], np.float32)), const("row", np.array([-1]))]
    graph = helper.make_graph([conv("x", "c", "w", "conv"), *boxes], "detector",
                              [helper.make_tensor_value_info("x", F, [1, 3, 8, 8])],
                              [helper.make_tensor_value_info("n", I64, [3])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    result = eyesim.estimate(model, CHIP)
    assert [layer.layer.name for layer in result.layers] == ["conv"]
    assert {"NonMaxSuppression", "Compress", "Unique"} <= {layer.op for layer in result.not_modelled}
    assert result.layers[0].energy.macs == count_macs(model).total
    assert {"NonMaxSuppression", "RoiAlign", "GridSample", "Sin", "Swish"} <= NO_MAC_OPS
