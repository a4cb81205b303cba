"""Densities and what they do to a layer's counts: gated filter and psum reads, skipped MACs, stored DRAM sizes.

With zero gating a zero ifmap value skips its filter RF read, and a MAC runs only when both operands
are non-zero; with psum gating as well (``sparsity.gate_psums``) it also skips the psum RF read and
write it would make. Exact from counted values when they are known, else the analytical rule from
densities (executed MACs = MACs · d_w · d_a; gated reads = reads · d_a).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from eyesim.cost.compression import Planes, dram_ratio, measured_ratio
from eyesim.cost.values import ValueCounts
from eyesim.hardware.spec import SparsitySpec
from eyesim.workload.layer import Layer, LayerIO

DENSITY_TYPES = ("weights", "ifmap", "ofmap")
_NONE = np.zeros(0)


@dataclass(frozen=True)
class Density:
    """Fractions of non-zero values, and where each came from (cost/densities.py)."""

    weights: float = 1.0
    ifmap: float = 1.0
    ofmap: float = 1.0
    source: str = "weights: dense, ifmap: dense, ofmap: dense"
    kinds: tuple[str, str, str] = ("dense", "dense", "dense")  # per type: given, linked, measured, estimated, dense

    @property
    def user_set(self) -> bool:
        """Some density was given by the user (directly or through a shared tensor): not counted from values."""
        return bool({"given", "linked"} & set(self.kinds))


@dataclass(frozen=True)
class ZeroEffects:
    """Factors a layer's dense counts are scaled by (DESIGN.md, "Zeros and bit widths")."""

    gated: float = 1.0  # filter RF reads that happen / dense
    executed: float = 1.0  # MACs that run / dense
    ifmap_dram: float = 1.0  # DRAM ifmap bits as stored / raw
    ofmap_dram: float = 1.0  # DRAM ofmap bits as stored / raw
    exact: bool = False  # counted from values
    weights_dram: float = 1.0  # DRAM weight bits as stored / raw
    psums: float = 1.0  # psum RF reads (and writes) that happen / dense, by the density rule
    # exact psum gating: MACs with a zero ifmap / dense MACs, and per input channel the MACs that start a
    # PE's psum with a zero ifmap (nothing to skip) / dense MACs, for the layer as given and run flattened
    psum_zero: float = 0.0
    first_taps: np.ndarray = field(default_factory=lambda: _NONE, compare=False)
    first_taps_flat: np.ndarray = field(default_factory=lambda: _NONE, compare=False)

    def flattened(self) -> ZeroEffects:
        """The effects of the same layer run over its flattened input (one channel per input value)."""
        return replace(self, first_taps=self.first_taps_flat)


def ifmap_stream(layer: Layer, io: LayerIO | None) -> Planes:
    """The ifmap one image stores in DRAM, as the layer reads it: G·C planes, padding included.

    A ConvTranspose stores its real input (no inserted zeros, no padding)."""
    if layer.transposed is not None:
        return Planes(layer.G * layer.C, *layer.transposed.size)
    top, bottom, left, right = (io.pad_top, io.pad_bottom, io.pad_left, io.pad_right) if io else (0, 0, 0, 0)
    return Planes(layer.G * layer.C, layer.H - top - bottom, layer.W - left - right, (top, bottom, left, right))


def zero_effects(layer: Layer, density: Density, counts: ValueCounts | None, io: LayerIO | None,
                 sparsity: SparsitySpec, bits: tuple[int, int], weights_dram: float = 1.0) -> ZeroEffects:
    """The factors of DESIGN.md ("Zeros and bit widths") for one layer, exact from ``counts`` when known.

    ``weights_dram``: the DRAM weights' stored / raw bits, taken as given (the caller counts them)."""
    gating = sparsity.zero_gating
    effects = _zero_effects(layer, density, counts, io, sparsity, bits, weights_dram)
    if layer.transposed is None:
        return effects
    # a ConvTranspose: DRAM stores the real input, read as the expanded one; with gating the inserted zeros
    # (and the padding) gate like any zero ifmap value, exactly: the structural density
    stored = ifmap_stream(layer, io).values / (layer.G * layer.C * layer.H * layer.W)
    effects = replace(effects, ifmap_dram=effects.ifmap_dram * stored)
    if not gating or counts is not None:  # counted from values: the expanded ifmap's zeros are counted
        return effects
    return replace(effects, gated=effects.gated * layer.structural, executed=effects.executed * layer.structural,
                   psums=effects.psums * layer.structural if sparsity.gate_psums else 1.0)


def _zero_effects(layer: Layer, density: Density, counts: ValueCounts | None, io: LayerIO | None,
                  sparsity: SparsitySpec, bits: tuple[int, int], weights_dram: float) -> ZeroEffects:
    """``zero_effects`` of the layer's own tensors (a ConvTranspose's inserted zeros aside)."""
    in_bits, out_bits = bits
    gating, scheme = sparsity.zero_gating, sparsity.dram_compression
    first = io is not None and io.network_input  # the input image is stored uncompressed
    if counts is not None:
        zero = (counts.macs - counts.gated) / counts.macs if gating else 0.0
        taps = counts.first_tap_zeros * (layer.M / counts.macs)
        flat = counts.first_tap_zeros_flat * (layer.M / counts.macs)
        ifmap = 1.0 if first else measured_ratio(scheme, in_bits, counts.ifmap_rlc_words, counts.ifmap_values,
                                                 counts.ifmap_nonzero)
        ofmap = measured_ratio(scheme, out_bits, counts.ofmap_rlc_words, counts.ofmap_values, counts.ofmap_nonzero)
        exact_psums = gating and sparsity.gate_psums
        return ZeroEffects(1.0 - zero, counts.executed / counts.macs if gating else 1.0, ifmap, ofmap, exact=True,
                           weights_dram=weights_dram, psum_zero=zero if exact_psums else 0.0,
                           first_taps=taps if exact_psums else _NONE, first_taps_flat=flat if exact_psums else _NONE)
    gated = density.ifmap if gating else 1.0
    executed = density.weights * density.ifmap if gating else 1.0
    ifmap = 1.0 if first else dram_ratio(scheme, density.ifmap, in_bits, ifmap_stream(layer, io))
    ofmap = dram_ratio(scheme, density.ofmap, out_bits, Planes(layer.G * layer.M, layer.E, layer.F))
    return ZeroEffects(gated, executed, ifmap, ofmap, exact=False, weights_dram=weights_dram,
                       psums=gated if sparsity.gate_psums else 1.0)


def psum_skips(layer: Layer, effects: ZeroEffects) -> np.ndarray | None:
    """Exact psum gating: per q (index 0..C), the psum RF read-write pairs skipped / the layer's dense MACs.

    Every MAC with a zero ifmap skips its pair, except the one that starts a PE's psum (at the first
    channel of the PE, c = k·q, tap s = 0), which has none (DESIGN.md, "Zeros and bit widths").
    None when psums are not gated exactly (the density rule scales them by ``effects.psums``).
    """
    taps = effects.first_taps
    if taps.size == 0:
        return None
    if taps.size != layer.C:
        raise ValueError(f"layer {layer.name!r}: {taps.size} first-tap counts for {layer.C} channels")
    table = np.zeros(layer.C + 1)
    for q in range(1, layer.C + 1):
        table[q] = effects.psum_zero - taps[::q].sum()
    return table
