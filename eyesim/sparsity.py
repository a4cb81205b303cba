"""Sparsity: per-layer densities, zero-skipping counts from values, and fmap compression in DRAM.

DESIGN §3.1 and §5: with zero gating a zero ifmap value skips its filter RF read, and a MAC runs
only when both operands are non-zero; fmaps in DRAM are run-length coded (the chip's format) or
stored with a significance map. Exact counts come from the values when they are known, else the
analytical rule from densities (executed MACs = MACs · d_w · d_a).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

from eyesim.workload import Layer, LayerIO

RLC_RUN_BITS = 5  # a run of up to 31 zeros
RLC_MAX_RUN = 2**RLC_RUN_BITS - 1
RLC_WORD_BITS = 64  # pairs pack into 64-bit words whose last bit marks the final word


@dataclass(frozen=True)
class Density:
    """Fractions of non-zero values, and where each came from (dense, onnx, samples, user)."""

    weights: float = 1.0
    ifmap: float = 1.0
    ofmap: float = 1.0
    source: str = "weights: dense, ifmap: dense, ofmap: dense"


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


@dataclass(frozen=True)
class ZeroEffects:
    """Factors a layer's dense counts are scaled by (DESIGN §5)."""

    gated: float = 1.0  # filter RF reads that happen / dense
    executed: float = 1.0  # MACs that run / dense
    ifmap_dram: float = 1.0  # DRAM ifmap bits as stored / raw
    ofmap_dram: float = 1.0  # DRAM ofmap bits as stored / raw
    exact: bool = False  # counted from values
    weights_dram: float = 1.0  # DRAM weight bits as stored / raw


# ----------------------------------------------------------------------------- compression


def rlc_pairs_per_word(bits: int) -> int:
    """(run, value) pairs in one 64-bit word: three for 16-bit values, as on the chip."""
    return (RLC_WORD_BITS - 1) // (RLC_RUN_BITS + bits)


@njit(cache=True)
def rlc_pairs(nonzero: np.ndarray) -> int:
    """(run, value) pairs that code a stream: each pair is up to 31 zeros and the value after them.

    A run that reaches 31 zeros is closed by the next value even if that value is zero; a
    stream ending in zeros closes with one pair.
    """
    pairs = 0
    run = 0
    for nz in nonzero:
        if not nz and run < RLC_MAX_RUN:
            run += 1
        else:
            pairs += 1
            run = 0
    if run > 0:
        pairs += 1
    return pairs


def rlc_words(values: np.ndarray, bits: int = 16) -> int:
    """64-bit words that code ``values`` (one stream, in C-order) with the chip's run-length code."""
    return -(-rlc_pairs(np.ascontiguousarray(values).ravel() != 0) // rlc_pairs_per_word(bits))


def rlc_expected_ratio(density: float, bits: int) -> float:
    """Expected stored bits / raw bits of a long i.i.d. stream with the given non-zero density.

    A pair covers min(zeros before the next non-zero, 31) + 1 values; the expected number of
    those zeros is the sum over k = 1..31 of P(at least k zeros) = (1 - d)^k.
    """
    zeros = sum((1.0 - density) ** k for k in range(1, RLC_MAX_RUN + 1))
    return RLC_WORD_BITS / (rlc_pairs_per_word(bits) * (1.0 + zeros) * bits)


def sigmap_ratio(density: float, bits: int) -> float:
    """Significance map: one bit per value, plus the width of each non-zero value."""
    return (1.0 + density * bits) / bits


def dram_ratio(scheme: str, density: float, bits: int, rlc_words_measured: int | None = None,
               values: int | None = None) -> float:
    """Stored bits / raw bits of an fmap in DRAM; exact from measured RLC words when given."""
    if scheme == "none":
        return 1.0
    if scheme == "sigmap":
        return sigmap_ratio(density, bits)
    if rlc_words_measured is not None and values:
        return rlc_words_measured * RLC_WORD_BITS / (values * bits)
    return rlc_expected_ratio(density, bits)


# ----------------------------------------------------------------------------- counts from values


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


# ----------------------------------------------------------------------------- effects


def zero_effects(density: Density, counts: ValueCounts | None, io: LayerIO | None, gating: bool,
                 compression: str, bits: tuple[int, int]) -> ZeroEffects:
    """The factors of DESIGN §5 for one layer, exact from ``counts`` when the values are known."""
    in_bits, out_bits = bits
    first = io is not None and io.network_input  # the input image is stored uncompressed
    if counts is not None:
        gated = counts.gated / counts.macs if gating else 1.0
        executed = counts.executed / counts.macs if gating else 1.0
        ifmap = 1.0 if first else dram_ratio(compression, counts.ifmap_density, in_bits, counts.ifmap_rlc_words,
                                             counts.ifmap_values)
        ofmap = dram_ratio(compression, counts.ofmap_density, out_bits, counts.ofmap_rlc_words, counts.ofmap_values)
        return ZeroEffects(gated, executed, ifmap, ofmap, exact=True)
    gated = density.ifmap if gating else 1.0
    executed = density.weights * density.ifmap if gating else 1.0
    ifmap = 1.0 if first else dram_ratio(compression, density.ifmap, in_bits)
    return ZeroEffects(gated, executed, ifmap, dram_ratio(compression, density.ofmap, out_bits), exact=False)
