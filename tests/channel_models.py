"""Small CNNs built with onnx.helper (random weights) for the channel-pruning tests: a conv/FC chain, grouped and
depthwise convs, a Concat, a residual block."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

Inits = dict[str, np.ndarray]


def conv(name: str, x: str, out: str, w: str, b: str | None = None, **attrs) -> onnx.NodeProto:
    """A Conv node named ``name``."""
    return helper.make_node("Conv", [x, w, *([b] if b else [])], [out], name=name, **attrs)


def op(kind: str, x: str | list[str], out: str, name: str | None = None, **attrs) -> onnx.NodeProto:
    """A node of type ``kind``, named after its output unless ``name`` is given."""
    return helper.make_node(kind, [x] if isinstance(x, str) else x, [out], name=name or out, **attrs)


def batchnorm(name: str, x: str, out: str, rng: np.random.Generator, inits: Inits, channels: int) -> onnx.NodeProto:
    """A BatchNormalization node; its random parameters go into ``inits``."""
    params = [f"{name}.{p}" for p in ("scale", "bias", "mean", "var")]
    inits.update({params[0]: rng.uniform(0.5, 1.5, channels), params[1]: rng.normal(size=channels),
                  params[2]: rng.normal(size=channels), params[3]: rng.uniform(0.5, 2.0, channels)})
    return helper.make_node("BatchNormalization", [x, *params], [out], name=name)


def build(nodes: list[onnx.NodeProto], inits: Inits, x_shape: list[int], outputs: int) -> onnx.ModelProto:
    """A checked opset-13 model: data input ``x`` (N x ``x_shape``), output ``y`` (N x ``outputs``)."""
    consts = [numpy_helper.from_array(v if v.dtype == np.int64 else v.astype(np.float32), k) for k, v in inits.items()]
    graph = helper.make_graph(nodes, "net", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", *x_shape])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", outputs])], consts)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
    onnx.checker.check_model(model, full_check=True)
    return model


def weights(rng: np.random.Generator, **shapes: tuple[int, ...]) -> Inits:
    """Random arrays of the given shapes, scaled by 1/sqrt(fan-in)."""
    return {name: rng.normal(size=shape) / np.sqrt(np.prod(shape[1:]) if len(shape) > 1 else 1.0)
            for name, shape in shapes.items()}


def chain_model(flatten: str = "Flatten", fc: str = "Gemm", bn: bool = False, seed: int = 0) -> onnx.ModelProto:
    """conv1 -> [bn1] -> relu -> maxpool -> conv2 -> relu -> flatten -> fc1 -> relu -> fc2 (input 3 x 8 x 8)."""
    rng = np.random.default_rng(seed)
    inits = weights(rng, w1=(6, 3, 3, 3), b1=(6,), w2=(4, 6, 3, 3), b2=(4,), b3=(10,), w4=(10, 5), b4=(5,))
    inits["w3"] = rng.normal(size=(10, 64) if fc == "Gemm" else (64, 10)) / 8
    nodes = [conv("conv1", "x", "c1", "w1", "b1", pads=[1, 1, 1, 1])]
    if bn:
        nodes.append(batchnorm("bn1", "c1", "c1n", rng, inits, 6))
    nodes += [op("Relu", nodes[-1].output[0], "r1"), op("MaxPool", "r1", "p1", kernel_shape=[2, 2], strides=[2, 2]),
              conv("conv2", "p1", "c2", "w2", "b2", pads=[1, 1, 1, 1]), op("Relu", "c2", "r2")]
    if flatten == "Flatten":
        nodes.append(op("Flatten", "r2", "f"))
    else:  # a Reshape to (N, 64) or (N, -1): 64 is rewritten when channels go
        inits["shape"] = np.array([-1, 64] if flatten == "Reshape64" else [0, -1], dtype=np.int64)
        nodes.append(op("Reshape", ["r2", "shape"], "f"))
    if fc == "Gemm":
        nodes.append(helper.make_node("Gemm", ["f", "w3", "b3"], ["g1"], name="fc1", transB=1))
    else:
        nodes += [helper.make_node("MatMul", ["f", "w3"], ["g1m"], name="fc1"), op("Add", ["g1m", "b3"], "g1")]
    nodes += [op("Relu", "g1", "r3"), helper.make_node("Gemm", ["r3", "w4", "b4"], ["y"], name="fc2")]
    return build(nodes, inits, [3, 8, 8], 5)


def head(x: str, channels: int, rng: np.random.Generator, inits: Inits) -> list[onnx.NodeProto]:
    """Global average pool, flatten and a 3-way classifier ``fc``."""
    inits.update(weights(rng, wf=(3, channels), bf=(3,)))
    return [op("GlobalAveragePool", x, "gap"), op("Flatten", "gap", "flat"),
            helper.make_node("Gemm", ["flat", "wf", "bf"], ["y"], name="fc", transB=1)]


def grouped_model() -> onnx.ModelProto:
    """conv1 (8) -> relu -> conv2 (group 2: 6 filters over 2 x 4 channels) -> relu -> head."""
    rng = np.random.default_rng(1)
    inits = weights(rng, w1=(8, 3, 3, 3), b1=(8,), w2=(6, 4, 3, 3), b2=(6,))
    nodes = [conv("conv1", "x", "c1", "w1", "b1", pads=[1, 1, 1, 1]), op("Relu", "c1", "r1"),
             conv("conv2", "r1", "c2", "w2", "b2", pads=[1, 1, 1, 1], group=2), op("Relu", "c2", "r2"),
             *head("r2", 6, rng, inits)]
    return build(nodes, inits, [3, 6, 6], 3)


def depthwise_model() -> onnx.ModelProto:
    """conv1 (6) -> bn1 -> relu -> dw1 (depthwise) -> bn2 -> relu -> dw2 (depthwise, 2 filters each) -> relu ->
    pw (1x1, 12 -> 4) -> head."""
    rng = np.random.default_rng(2)
    inits = weights(rng, w1=(6, 3, 3, 3), b1=(6,), wd1=(6, 1, 3, 3), bd1=(6,), wd2=(12, 1, 3, 3), wp=(4, 12, 1, 1))
    nodes = [conv("conv1", "x", "c1", "w1", "b1", pads=[1, 1, 1, 1]), batchnorm("bn1", "c1", "n1", rng, inits, 6),
             op("Relu", "n1", "r1"), conv("dw1", "r1", "d1", "wd1", "bd1", pads=[1, 1, 1, 1], group=6),
             batchnorm("bn2", "d1", "n2", rng, inits, 6), op("Clip", "n2", "r2"),
             conv("dw2", "r2", "d2", "wd2", pads=[1, 1, 1, 1], group=6), op("Relu", "d2", "r3"),
             conv("pw", "r3", "c3", "wp"), op("Relu", "c3", "r4"), *head("r4", 4, rng, inits)]
    return build(nodes, inits, [3, 6, 6], 3)


def concat_model() -> onnx.ModelProto:
    """conva (4) and convb (3) of the input -> Concat -> PRelu (a slope per channel) -> convc (5) -> relu -> head."""
    rng = np.random.default_rng(3)
    inits = weights(rng, wa=(4, 3, 3, 3), ba=(4,), wb=(3, 3, 1, 1), bb=(3,), wc=(5, 7, 3, 3), bc=(5,), slope=(7, 1, 1))
    nodes = [conv("conva", "x", "ca", "wa", "ba", pads=[1, 1, 1, 1]), conv("convb", "x", "cb", "wb", "bb"),
             op("Concat", ["ca", "cb"], "cat", axis=1), op("PRelu", ["cat", "slope"], "r1"),
             conv("convc", "r1", "cc", "wc", "bc"),
             op("Relu", "cc", "r2"), *head("r2", 5, rng, inits)]
    return build(nodes, inits, [3, 6, 6], 3)


def residual_model(shortcut: str = "r0") -> onnx.ModelProto:
    """conv0 (4) -> relu -> conv1 -> relu -> conv2; Add(conv2, shortcut) -> relu -> head. ``shortcut`` is the
    block input r0 (conv0's channels) or the graph input x."""
    rng = np.random.default_rng(4)
    inits = weights(rng, w0=(4, 4, 3, 3), b0=(4,), w1=(4, 4, 3, 3), b1=(4,), w2=(4, 4, 3, 3), b2=(4,))
    nodes = [conv("conv0", "x", "c0", "w0", "b0", pads=[1, 1, 1, 1]), op("Relu", "c0", "r0"),
             conv("conv1", "r0", "c1", "w1", "b1", pads=[1, 1, 1, 1]), op("Relu", "c1", "r1"),
             conv("conv2", "r1", "c2", "w2", "b2", pads=[1, 1, 1, 1]), op("Add", ["c2", shortcut], "sum", name="add1"),
             op("Relu", "sum", "r2"), *head("r2", 4, rng, inits)]
    return build(nodes, inits, [4, 6, 6], 3)
