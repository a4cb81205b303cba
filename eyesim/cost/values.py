"""What the values of a layer's tensors show: zero-skipping MAC counts, densities and run-length words."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from eyesim.cost.compression import rlc_words
from eyesim.workload.layer import Layer, LayerIO


@dataclass(frozen=True)
class ValueCounts:
    """What the values of one layer show, summed over ``images`` sample images."""

    images: int
    macs: int  # dense MACs over the samples
    gated: int  # MACs whose ifmap operand is non-zero
    executed: int  # MACs whose operands are both non-zero
    ifmap_density: float
    ofmap_density: float
    ifmap_rlc_words: int  # 64-bit words of the ifmap stream, one stream per image
    ofmap_rlc_words: int
    ifmap_values: int  # values in the ifmap (unpadded) and ofmap, over the samples
    ofmap_values: int


def conv_zero_counts(x: np.ndarray, w: np.ndarray | None, layer: Layer, io: LayerIO) -> tuple[int, int, int]:
    """(dense MACs, MACs with a non-zero ifmap, MACs with both operands non-zero) over the images in ``x``.

    ``x`` is the layer's unpadded ifmap (images first); ``w`` the weights as stored in ONNX, or None
    (all non-zero). Fully connected layers are counted on the flattened ifmap.
    """
    if layer.op == "MatMul":
        return _matmul_zero_counts(x, w, layer)
    xnz = _padded_nonzero(x, layer, io)
    wnz = _weights_nonzero(w, layer, io)
    images = xnz.shape[0]
    gated = executed = 0
    for g in range(layer.G):
        xg = xnz[:, g * layer.C:(g + 1) * layer.C]
        per_tap = wnz[g * layer.M:(g + 1) * layer.M].sum(axis=0, dtype=np.int64)  # (C, R, S) non-zero filters
        for r in range(layer.R):
            for s in range(layer.S):
                rows = slice(r * layer.Dh, r * layer.Dh + (layer.E - 1) * layer.U + 1, layer.U)
                cols = slice(s * layer.Dw, s * layer.Dw + (layer.F - 1) * layer.Uw + 1, layer.Uw)
                seen = xg[:, :, rows, cols].sum(axis=(0, 2, 3), dtype=np.int64)  # (C,) non-zero ifmap values
                gated += int(seen.sum()) * layer.M
                executed += int(seen @ per_tap[:, r, s])
    dense = images * layer.G * layer.M * layer.C * layer.E * layer.F * layer.R * layer.S
    return dense, gated, executed


def _matmul_zero_counts(x: np.ndarray, w: np.ndarray | None, layer: Layer) -> tuple[int, int, int]:
    """MatMul x @ W: every row of x meets every column of W."""
    rows = (x != 0).reshape(-1, layer.C)
    per_k = np.full(layer.C, layer.M, dtype=np.int64) if w is None else np.count_nonzero(w, axis=1)
    gated = int(rows.sum(dtype=np.int64)) * layer.M
    return rows.shape[0] * layer.C * layer.M, gated, int(rows.sum(axis=0, dtype=np.int64) @ per_k)


def _padded_nonzero(x: np.ndarray, layer: Layer, io: LayerIO) -> np.ndarray:
    """Non-zero mask of the ifmap as the layer sees it: (images, G*C, H, W) with its zero padding."""
    images = x.shape[0]
    if layer.R == layer.H and layer.S == layer.W and layer.E == layer.F == 1 and x.ndim == 2:
        return (x != 0).reshape(images, layer.G * layer.C, layer.H, layer.W)  # flattened fully connected input
    nz = (x != 0).reshape(images, layer.G * layer.C, -1, x.shape[-1])
    out = np.zeros((images, layer.G * layer.C, layer.H, layer.W), dtype=np.bool_)
    h, w = nz.shape[2], nz.shape[3]
    out[:, :, io.pad_top:io.pad_top + h, io.pad_left:io.pad_left + w] = nz[:, :, :layer.H - io.pad_top,
                                                                           :layer.W - io.pad_left]
    return out


def _weights_nonzero(w: np.ndarray | None, layer: Layer, io: LayerIO) -> np.ndarray:
    """Non-zero mask of the weights as (G*M, C, R, S)."""
    shape = (layer.G * layer.M, layer.C, layer.R, layer.S)
    if w is None:
        return np.ones(shape, dtype=np.bool_)
    nz = w != 0
    if io.weights_in_out:
        nz = nz.T
    return nz.reshape(shape)


def value_counts(x: np.ndarray, y: np.ndarray, w: np.ndarray | None, layer: Layer, io: LayerIO,
                 bits: tuple[int, int]) -> ValueCounts:
    """Everything the values of one layer's ifmap ``x`` and ofmap ``y`` (images first) tell."""
    dense, gated, executed = conv_zero_counts(x, w, layer, io)
    in_bits, out_bits = bits
    return ValueCounts(
        images=x.shape[0], macs=dense, gated=gated, executed=executed,
        ifmap_density=float(np.count_nonzero(x)) / x.size, ofmap_density=float(np.count_nonzero(y)) / y.size,
        ifmap_rlc_words=sum(rlc_words(img, in_bits) for img in x), ofmap_rlc_words=sum(rlc_words(img, out_bits)
                                                                                       for img in y),
        ifmap_values=x.size, ofmap_values=y.size)


def merge_counts(a: ValueCounts | None, b: ValueCounts) -> ValueCounts:
    """Counts of two batches of samples together."""
    if a is None:
        return b
    images = a.images + b.images
    return ValueCounts(
        images=images, macs=a.macs + b.macs, gated=a.gated + b.gated, executed=a.executed + b.executed,
        ifmap_density=(a.ifmap_density * a.ifmap_values + b.ifmap_density * b.ifmap_values)
        / (a.ifmap_values + b.ifmap_values),
        ofmap_density=(a.ofmap_density * a.ofmap_values + b.ofmap_density * b.ofmap_values)
        / (a.ofmap_values + b.ofmap_values),
        ifmap_rlc_words=a.ifmap_rlc_words + b.ifmap_rlc_words, ofmap_rlc_words=a.ofmap_rlc_words + b.ofmap_rlc_words,
        ifmap_values=a.ifmap_values + b.ifmap_values, ofmap_values=a.ofmap_values + b.ofmap_values)
