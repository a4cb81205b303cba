"""What the values of a layer's tensors show: zero-skipping MAC counts, densities and run-length words."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from eyesim.cost.compression import rlc_words
from eyesim.workload.layer import Layer, LayerIO


@dataclass(frozen=True)
class ValueCounts:
    """What the values of one layer show, summed over ``images`` sample images.

    The ifmap in DRAM is the padded one (DESIGN.md, "Zeros and bit widths"): its run-length words,
    values and non-zero values count the padding; ``ifmap_density`` is that of the tensor itself.
    """

    images: int
    macs: int  # dense MACs over the samples
    gated: int  # MACs whose ifmap operand is non-zero
    executed: int  # MACs whose operands are both non-zero
    ifmap_density: float  # of the unpadded ifmap
    ofmap_density: float
    ifmap_rlc_words: int  # 64-bit words of the padded ifmap stream, one stream per image
    ofmap_rlc_words: int
    ifmap_values: int  # values in the padded ifmap and in the ofmap, over the samples
    ofmap_values: int
    ifmap_nonzero: int = 0  # non-zero values of the ifmap
    ofmap_nonzero: int = 0
    # zero ifmap values at each channel's first filter tap (s = 0), over images, groups, filter rows, ofmap
    # rows and columns: where a PE's psum starts (DESIGN.md, "Zeros and bit widths", psum gating)
    first_tap_zeros: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64), compare=False)
    first_tap_zeros_flat: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64), compare=False)
    weights_density: float | None = None  # of an activation second operand (Layer.act_operand)


def conv_zero_counts(x: np.ndarray, w: np.ndarray | None, layer: Layer, io: LayerIO) -> tuple[int, int, int]:
    """(dense MACs, MACs with a non-zero ifmap, MACs with both operands non-zero) over the images in ``x``.

    ``x`` is the layer's unpadded ifmap (images first); ``w`` the weights as stored in ONNX, or None
    (all non-zero). Fully connected layers are counted on the flattened ifmap.
    """
    if _is_product(io):
        return _product_zero_counts(x, w, layer, io)
    if layer.op == "MatMul":
        return _matmul_zero_counts(x, w, layer)
    return _mask_zero_counts(_padded_nonzero(x, layer, io), w, layer, io)


def _is_product(io: LayerIO) -> bool:
    """A matrix product of two activations, or an Einsum (workload/onnx/products.py)."""
    return io.operand_axes != ((), ())


def _product_operands(x: np.ndarray, w: np.ndarray, layer: Layer, io: LayerIO) -> tuple[np.ndarray, np.ndarray]:
    """Both operands' non-zero masks as (groups, rows, K) and (groups, K, out), leading dims broadcast."""
    a = (x != 0).transpose(io.operand_axes[0])
    b = (w != 0).transpose(io.operand_axes[1])
    a, b = (a[None] if a.ndim == 1 else a), (b[:, None] if b.ndim == 1 else b)
    lead = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    a = np.broadcast_to(a, (*lead, *a.shape[-2:])).reshape(-1, layer.N, layer.C)
    return a, np.broadcast_to(b, (*lead, *b.shape[-2:])).reshape(-1, layer.C, layer.M)


def _product_zero_counts(x: np.ndarray, w: np.ndarray | None, layer: Layer, io: LayerIO) -> tuple[int, int, int]:
    """A (rows, K) times B (K, out) per group: every row of A meets every column of B."""
    if w is None:  # an operand without values: all non-zero
        w = np.ones([1] * (len(io.operand_axes[1]) - 2) + [layer.C, layer.M])
    a, b = _product_operands(x, w, layer, io)
    per_k_a = a.sum(axis=1, dtype=np.int64)  # (groups, K) non-zero A values meeting each k
    per_k_b = b.sum(axis=2, dtype=np.int64)  # (groups, K) non-zero B values at each k
    dense = a.shape[0] * layer.N * layer.C * layer.M
    return dense, int(per_k_a.sum()) * layer.M, int((per_k_a * per_k_b).sum())


def _transposed_nonzero(x: np.ndarray, layer: Layer) -> np.ndarray:
    """Non-zero mask of a ConvTranspose's ifmap as run: s − 1 zeros inserted between values, then padded
    (or cropped) to H × W, (images, G*C, H, W)."""
    shape = layer.transposed
    nz = (x != 0).reshape(x.shape[0], layer.G * layer.C, *shape.size)
    out = np.zeros((x.shape[0], layer.G * layer.C, layer.H, layer.W), dtype=np.bool_)
    rows = shape.before[0] + shape.strides[0] * np.arange(shape.size[0])
    cols = shape.before[1] + shape.strides[1] * np.arange(shape.size[1])
    keep_r, keep_c = (rows >= 0) & (rows < layer.H), (cols >= 0) & (cols < layer.W)
    out[:, :, rows[keep_r][:, None], cols[keep_c][None, :]] = nz[:, :, keep_r][:, :, :, keep_c]
    return out


def _mask_zero_counts(xnz: np.ndarray, w: np.ndarray | None, layer: Layer, io: LayerIO) -> tuple[int, int, int]:
    """``conv_zero_counts`` from the padded non-zero mask of the ifmap."""
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
    if layer.transposed is not None:  # ONNX's (G*C, M, R, S): channels transposed, the filter flipped
        nz = nz.reshape(layer.G, layer.C, layer.M, layer.R, layer.S).swapaxes(1, 2)[..., ::-1, ::-1]
    elif io.weights_in_out:
        nz = nz.T
    return nz.reshape(shape)


def first_tap_zeros(xnz: np.ndarray, layer: Layer) -> np.ndarray:
    """Per input channel c: zero ifmap values at the filter tap (i, s = 0) of every ofmap position, summed
    over images, groups and filter rows i. ``xnz`` is the padded non-zero mask (images, G*C, H, W)."""
    zeros = np.zeros(layer.C, dtype=np.int64)
    for g in range(layer.G):
        xg = xnz[:, g * layer.C:(g + 1) * layer.C]
        cols = slice(0, (layer.F - 1) * layer.Uw + 1, layer.Uw)
        for r in range(layer.R):
            rows = slice(r * layer.Dh, r * layer.Dh + (layer.E - 1) * layer.U + 1, layer.U)
            seen = xg[:, :, rows, cols]
            zeros += xnz.shape[0] * layer.E * layer.F - seen.sum(axis=(0, 2, 3), dtype=np.int64)
    return zeros


def _stored_ifmap(x: np.ndarray, layer: Layer, io: LayerIO) -> np.ndarray:
    """Non-zero mask of the ifmap as stored in DRAM and read by the layer: padded, images first."""
    if layer.op == "MatMul" or _is_product(io) or layer.transposed is not None:
        return (x != 0).reshape(x.shape[0], -1)  # a ConvTranspose stores its real input
    return _padded_nonzero(x, layer, io)


def _tap_zeros(x: np.ndarray, stored: np.ndarray, layer: Layer, io: LayerIO) -> tuple[np.ndarray, np.ndarray]:
    """``first_tap_zeros`` of the layer as given and, for a fully connected layer over a 4-D input, as run
    flattened (one channel per input value, in C-order)."""
    if layer.op == "MatMul" or _is_product(io):
        rows = (x != 0).transpose(io.operand_axes[0] or tuple(range(x.ndim))).reshape(-1, layer.C)
        return (rows.shape[0] - rows.sum(axis=0, dtype=np.int64)), np.zeros(0, dtype=np.int64)
    if layer.transposed is not None:
        return first_tap_zeros(_transposed_nonzero(x, layer), layer), np.zeros(0, dtype=np.int64)
    given = first_tap_zeros(stored, layer)
    if not layer.covers_input:
        return given, np.zeros(0, dtype=np.int64)
    flat = stored.reshape(stored.shape[0], layer.G, -1)
    return given, (flat.shape[0] - flat.sum(axis=0, dtype=np.int64)).sum(axis=0)


def value_counts(x: np.ndarray, y: np.ndarray, w: np.ndarray | None, layer: Layer, io: LayerIO,
                 bits: tuple[int, int]) -> ValueCounts:
    """Everything the values of one layer's ifmap ``x`` and ofmap ``y`` (images first) tell."""
    stored = _stored_ifmap(x, layer, io)
    if _is_product(io):
        dense, gated, executed = _product_zero_counts(x, w, layer, io)
    elif layer.op == "MatMul":
        dense, gated, executed = _matmul_zero_counts(x, w, layer)
    elif layer.transposed is not None:
        dense, gated, executed = _mask_zero_counts(_transposed_nonzero(x, layer), w, layer, io)
    else:
        dense, gated, executed = _mask_zero_counts(stored, w, layer, io)
    in_bits, out_bits = bits
    given, flat = _tap_zeros(x, stored, layer, io)
    return ValueCounts(
        images=x.shape[0], macs=dense, gated=gated, executed=executed,
        ifmap_density=float(np.count_nonzero(x)) / x.size, ofmap_density=float(np.count_nonzero(y)) / y.size,
        ifmap_rlc_words=sum(rlc_words(img, in_bits) for img in stored),
        ofmap_rlc_words=sum(rlc_words(img, out_bits) for img in y),
        ifmap_values=stored.size, ofmap_values=y.size, ifmap_nonzero=int(np.count_nonzero(stored)),
        ofmap_nonzero=int(np.count_nonzero(y)), first_tap_zeros=given, first_tap_zeros_flat=flat,
        weights_density=float(np.count_nonzero(w)) / w.size if layer.act_operand and w is not None else None)


def merge_counts(a: ValueCounts | None, b: ValueCounts) -> ValueCounts:
    """Counts of two batches of samples together."""
    if a is None:
        return b
    images = a.images + b.images
    return ValueCounts(
        images=images, macs=a.macs + b.macs, gated=a.gated + b.gated, executed=a.executed + b.executed,
        ifmap_density=(a.ifmap_density * a.images + b.ifmap_density * b.images) / images,
        ofmap_density=(a.ofmap_density * a.ofmap_values + b.ofmap_density * b.ofmap_values)
        / (a.ofmap_values + b.ofmap_values),
        ifmap_rlc_words=a.ifmap_rlc_words + b.ifmap_rlc_words, ofmap_rlc_words=a.ofmap_rlc_words + b.ofmap_rlc_words,
        ifmap_values=a.ifmap_values + b.ifmap_values, ofmap_values=a.ofmap_values + b.ofmap_values,
        ifmap_nonzero=a.ifmap_nonzero + b.ifmap_nonzero, ofmap_nonzero=a.ofmap_nonzero + b.ofmap_nonzero,
        first_tap_zeros=a.first_tap_zeros + b.first_tap_zeros,
        first_tap_zeros_flat=a.first_tap_zeros_flat + b.first_tap_zeros_flat,
        weights_density=None if a.weights_density is None or b.weights_density is None
        else (a.weights_density * a.images + b.weights_density * b.images) / images)
