"""Prunable layers as linear maps: Conv (over im2col patches, per group), Gemm and MatMul with a weight initializer.

Public API:

- ``prunable_layers(model) -> list[LinearLayer]``: the model's Conv, Gemm and MatMul nodes with their weights,
  named as ``eyesim estimate`` names them (ONNX node names; nameless nodes ``<op>_<index>``).
- ``LinearLayer``: ``matrices(w)`` views a weight tensor as ``G x M x K`` matrices (one row per output channel of
  each group, the im2col order C, R, S), ``tensor(mats)`` is the inverse; ``patches(x, g)`` the ``P x K`` inputs of
  group ``g``; ``targets(y, g)`` its ``P x M`` outputs. Then ``y = patches @ matrix.T + bias`` per group.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import onnx
from numpy.lib.stride_tricks import sliding_window_view
from onnx import helper, numpy_helper

from eyesim.errors import EyesimError
from eyesim.workload.onnx.graph import node_names


@dataclass(frozen=True)
class Geometry:
    """2-D convolution geometry (a 1-D conv is one row): kernel, strides, dilations, pads (top, left, bottom, right)."""

    kernel: tuple[int, int]
    strides: tuple[int, int]
    dilations: tuple[int, int]
    pads: tuple[int, int, int, int]


@dataclass(frozen=True)
class LinearLayer:
    """A prunable layer: a weight initializer applied linearly to one data tensor (plus an optional bias)."""

    name: str
    op: str
    x: str  # the data input tensor
    y: str  # the output tensor
    weight: str  # weight initializer name
    weight_shape: tuple[int, ...]
    bias: str | None  # bias initializer (refitted with the weights), or None
    groups: int = 1
    geometry: Geometry | None = None  # Conv only
    in_out: bool = False  # weight stored (K, M): Gemm transB=0, MatMul
    scale: float = 1.0  # Gemm alpha
    bias_scale: float = 1.0  # Gemm beta

    @property
    def out_channels(self) -> int:
        """Output channels per group."""
        return self.matrix_shape[1]

    @property
    def matrix_shape(self) -> tuple[int, int, int]:
        """(G, M, K): groups, output channels per group, inputs per output."""
        if self.geometry is not None:
            return self.groups, self.weight_shape[0] // self.groups, math.prod(self.weight_shape[1:])
        k, m = self.weight_shape if self.in_out else self.weight_shape[::-1]
        return 1, m, k

    def matrices(self, w: np.ndarray) -> np.ndarray:
        """The weight tensor as G x M x K matrices of the effective map (Gemm alpha folded in)."""
        if self.geometry is not None:
            return w.reshape(self.matrix_shape)
        return self.scale * (w.T if self.in_out else w)[None]

    def tensor(self, mats: np.ndarray, dtype: np.dtype) -> np.ndarray:
        """Inverse of ``matrices``: the stored weight tensor."""
        if self.geometry is not None:
            return mats.reshape(self.weight_shape).astype(dtype)
        w = mats[0] / self.scale
        return (w.T if self.in_out else w).astype(dtype)

    def patches(self, x: np.ndarray, g: int) -> np.ndarray:
        """Inputs of group ``g``: one row per output position (im2col for Conv), K columns."""
        if self.geometry is None:
            return x.reshape(-1, self.matrix_shape[2])
        geo = self.geometry
        c = x.shape[1] // self.groups
        x4 = x[:, g * c:(g + 1) * c].reshape(x.shape[0], c, -1, x.shape[-1])
        top, left, bottom, right = geo.pads
        xp = np.pad(x4, ((0, 0), (0, 0), (top, bottom), (left, right)))
        (r, s), (u, uw), (dh, dw) = geo.kernel, geo.strides, geo.dilations
        win = sliding_window_view(xp, ((r - 1) * dh + 1, (s - 1) * dw + 1), axis=(2, 3))
        win = win[:, :, ::u, ::uw, ::dh, ::dw]  # N, C, E, F, R, S
        return win.transpose(0, 2, 3, 1, 4, 5).reshape(-1, c * r * s)

    def targets(self, y: np.ndarray, g: int) -> np.ndarray:
        """Outputs of group ``g``: P x M, rows in the order of ``patches``."""
        m = self.out_channels
        if self.geometry is None:
            return y.reshape(-1, m)
        part = y[:, g * m:(g + 1) * m].reshape(y.shape[0], m, -1)
        return part.transpose(0, 2, 1).reshape(-1, m)

    def rows(self, x: np.ndarray) -> int:
        """Rows of the least-squares problem for inputs ``x``: output positions over the samples."""
        if self.geometry is None:
            return int(x.size // self.matrix_shape[2])
        return int(self.patches(x[:1], 0).shape[0] * x.shape[0])

    def live_inputs(self, x: np.ndarray) -> int:
        """Inputs per output channel that are non-zero somewhere in ``x`` (the most over the groups)."""
        if self.geometry is None:
            return int((x.reshape(-1, self.matrix_shape[2]) != 0).any(axis=0).sum())
        live = (x != 0).any(axis=tuple(i for i in range(x.ndim) if i != 1))
        per_tap = self.matrix_shape[2] // (x.shape[1] // self.groups)
        return int(live.reshape(self.groups, -1).sum(axis=1).max() * per_tap)

    def bias_vector(self, b: np.ndarray | None) -> np.ndarray | None:
        """The effective bias per output channel, G x M (Gemm beta folded in)."""
        return None if b is None else (self.bias_scale * b).reshape(self.groups, -1)

    def bias_tensor(self, b: np.ndarray, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        """Inverse of ``bias_vector``."""
        return (b / self.bias_scale).reshape(shape).astype(dtype)


def prunable_layers(model: onnx.ModelProto) -> list[LinearLayer]:
    """Conv, Gemm and MatMul nodes of ``model``; EyesimError when one has no weight values (a shape-only file)."""
    graph = model.graph
    inits = {init.name: init for init in graph.initializer}
    dequantized = {node.output[0] for node in graph.node if node.op_type == "DequantizeLinear" and node.output}
    layers = []
    for node, name in zip(graph.node, node_names(graph.node), strict=True):
        if node.op_type not in ("Conv", "Gemm", "MatMul"):
            continue
        w_pos = 1
        if node.op_type == "MatMul" and node.input[1] not in inits and node.input[0] in inits:
            raise EyesimError(f"MatMul node {name!r} has its weights on the left; eyesim prunes x @ W only")
        if node.input[w_pos] not in inits:
            raise EyesimError(f"{node.op_type} node {name!r}: its weights {node.input[w_pos]!r} " + (
                "are quantized (they come out of a DequantizeLinear); prune the float model, then quantize it"
                if node.input[w_pos] in dequantized else "have no values in the model (a shape-only file?); pruning "
                "needs the trained weights as initializers"))
        layers.append(_layer(node, name, inits))
    if not layers:
        raise EyesimError("no layer to prune (Conv, Gemm or MatMul with a weight initializer)")
    return layers


def _layer(node: onnx.NodeProto, name: str, inits: dict[str, onnx.TensorProto]) -> LinearLayer:
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    w_shape = tuple(inits[node.input[1]].dims)
    bias = node.input[2] if len(node.input) > 2 and node.input[2] else None
    if bias is not None and bias not in inits:
        raise EyesimError(f"{node.op_type} node {name!r}: its bias {bias!r} is not an initializer")
    if inits[node.input[1]].data_type not in (onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE,
                                              onnx.TensorProto.FLOAT16):
        raise EyesimError(f"{node.op_type} node {name!r}: weights must be floating point to be pruned")
    common = {"name": name, "op": node.op_type, "x": node.input[0], "y": node.output[0],
              "weight": node.input[1], "weight_shape": w_shape}
    if node.op_type == "Conv":
        return LinearLayer(**common, bias=bias, groups=int(attrs.get("group", 1)),
                           geometry=_geometry(name, attrs, w_shape))
    if len(w_shape) != 2:
        raise EyesimError(f"{node.op_type} node {name!r}: weights of shape {list(w_shape)}; eyesim prunes 2-D ones")
    if node.op_type == "MatMul":
        return LinearLayer(**common, bias=None, in_out=True)
    if attrs.get("transA", 0) or attrs.get("alpha", 1.0) == 0:
        raise EyesimError(f"Gemm node {name!r}: transA=1 or alpha=0 is not supported by pruning")
    in_out = not attrs.get("transB", 0)
    m = w_shape[1] if in_out else w_shape[0]
    if bias is not None and (math.prod(inits[bias].dims) != m or attrs.get("beta", 1.0) == 0):
        raise EyesimError(f"Gemm node {name!r}: its bias C must hold one value per output ({m}) to be refitted")
    return LinearLayer(**common, bias=bias, in_out=in_out, scale=float(attrs.get("alpha", 1.0)),
                       bias_scale=float(attrs.get("beta", 1.0)))


def _geometry(name: str, attrs: dict, w_shape: tuple[int, ...]) -> Geometry:
    """The Conv's geometry as 2-D (a 1-D conv gets a height of 1)."""
    nd = len(w_shape) - 2
    if nd not in (1, 2):
        raise EyesimError(f"Conv node {name!r} is {nd}-D; eyesim prunes 1-D and 2-D convolutions")
    kernel = list(w_shape[2:])
    strides = list(attrs.get("strides", [1] * nd))
    dilations = list(attrs.get("dilations", [1] * nd))
    auto_pad = attrs.get("auto_pad", b"NOTSET")
    auto_pad = auto_pad.decode() if isinstance(auto_pad, bytes) else auto_pad
    if auto_pad not in ("NOTSET", "", "VALID"):
        raise EyesimError(f"Conv node {name!r}: auto_pad {auto_pad} is not supported by pruning; use explicit pads")
    pads = [0] * 2 * nd if auto_pad == "VALID" else list(attrs.get("pads", [0] * 2 * nd))
    if nd == 1:
        kernel, strides, dilations = [1, *kernel], [1, *strides], [1, *dilations]
        pads = [0, pads[0], 0, pads[1]]
    return Geometry(tuple(kernel), tuple(strides), tuple(dilations), tuple(pads))


def initializer_arrays(model: onnx.ModelProto, names: set[str]) -> dict[str, np.ndarray]:
    """The named initializers as NumPy arrays (copies)."""
    return {init.name: numpy_helper.to_array(init).copy() for init in model.graph.initializer if init.name in names}
