"""The ONNX ops eyesim knows: those with MACs, those without, and which inputs hold parameters."""

from __future__ import annotations

import onnx

from eyesim.workload.onnx.proto import attribute_value

MAC_OPS = frozenset({"Conv", "ConvTranspose", "Gemm", "MatMul", "Einsum"})
_REDUCE_OPS = frozenset(
    {"ReduceMean", "ReduceMax", "ReduceMin", "ReduceSum", "ReduceProd", "ReduceL1", "ReduceL2",
     "ReduceLogSum", "ReduceLogSumExp", "ReduceSumSquare"}
)
_UNARY_OPS = frozenset(
    {"Relu", "Clip", "LeakyRelu", "PRelu", "Sigmoid", "Tanh", "HardSigmoid", "HardSwish", "Elu", "Selu",
     "Celu", "Gelu", "Mish", "Softplus", "Softsign", "ThresholdedRelu", "Erf", "Exp", "Log", "Sqrt",
     "Reciprocal", "Abs", "Neg", "Sign", "Floor", "Ceil", "Round", "Not", "IsNaN", "IsInf", "Shrink",
     "Dropout", "Identity", "Cast", "CastLike", "Sin", "Cos", "Tan", "Asin", "Acos", "Atan", "Sinh", "Cosh",
     "Asinh", "Acosh", "Atanh", "Swish", "BitwiseNot"}
)
# Known ops without MACs: listed in the report as "not modelled", never charged.
NO_MAC_OPS = _REDUCE_OPS | _UNARY_OPS | frozenset(
    {"Softmax", "LogSoftmax", "Hardmax", "MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool",
     "LpPool", "GlobalLpPool", "MaxUnpool", "LRN", "BatchNormalization", "InstanceNormalization",
     "LayerNormalization", "GroupNormalization", "LpNormalization", "MeanVarianceNormalization",
     "Add", "Sum", "Sub", "Mul", "Div", "Pow", "Mod", "Max", "Min", "Mean", "Equal", "Less", "LessOrEqual",
     "Greater", "GreaterOrEqual", "And", "Or", "Xor", "Where",
     "Concat", "Split", "Slice", "Reshape", "Flatten", "Transpose", "Squeeze", "Unsqueeze", "Expand", "Tile",
     "Pad", "Resize", "Upsample", "DepthToSpace", "SpaceToDepth", "Gather", "GatherElements", "GatherND",
     "ScatterND", "ScatterElements", "Shape", "Size", "Range", "Constant", "ConstantOfShape", "OneHot",
     "NonZero", "CumSum", "TopK", "ArgMax", "ArgMin", "Trilu", "QuantizeLinear", "DequantizeLinear",
     "BitwiseAnd", "BitwiseOr", "BitwiseXor", "BitShift", "EyeLike", "RandomNormalLike", "RandomUniformLike",
     "Bernoulli", "Compress", "Unique", "ReverseSequence", "CenterCropPad", "GridSample", "AffineGrid", "RoiAlign",
     "MaxRoiPool", "NonMaxSuppression"}  # detection heads and post-processing, positional encodings, masks
)
# Activations the chip applies before writing an ofmap to DRAM (their output is what gets compressed).
ACTIVATIONS = frozenset({"Relu", "Clip", "LeakyRelu"})
# Ops that keep the element order of their input 0: a fully connected layer is traced back through them.
TRANSPARENT_OPS = _UNARY_OPS | frozenset({"Reshape", "Flatten", "Squeeze", "Unsqueeze"})
# Input positions that hold parameters (weights, shapes, axes, ...), never batch data.
PARAM_INPUTS: dict[str, tuple[int, ...]] = {
    "Conv": (1, 2), "ConvTranspose": (1, 2), "Gemm": (1, 2), "MatMul": (1,), "BatchNormalization": (1, 2, 3, 4),
    "InstanceNormalization": (1, 2), "LayerNormalization": (1, 2), "GroupNormalization": (1, 2),
    "PRelu": (1,), "Clip": (1, 2), "Dropout": (1, 2), "Reshape": (1,), "Pad": (1, 2, 3), "Slice": (1, 2, 3, 4),
    "Resize": (1, 2, 3), "Upsample": (1,), "Squeeze": (1,), "Unsqueeze": (1,), "Split": (1,), "Tile": (1,),
    "Expand": (1,), "ConstantOfShape": (0,), "Gather": (1,), "TopK": (1,), "CumSum": (1,), "OneHot": (1, 2),
    "Range": (0, 1, 2), "QuantizeLinear": (1, 2), "DequantizeLinear": (1, 2), "NonMaxSuppression": (2, 3, 4),
    "CenterCropPad": (1,), "AffineGrid": (1,), "ReverseSequence": (1,),
    **{op: (1,) for op in _REDUCE_OPS},
}


def node_attrs(node: onnx.NodeProto) -> dict:
    """A node's attributes by name, as Python values."""
    return {attr.name: attribute_value(attr) for attr in node.attribute}
