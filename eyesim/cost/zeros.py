"""Densities and what they do to a layer's counts: gated filter reads, skipped MACs, stored DRAM sizes.

With zero gating a zero ifmap value skips its filter RF read, and a MAC runs only when both operands
are non-zero. Exact from counted values when they are known, else the analytical rule from densities
(executed MACs = MACs · d_w · d_a).
"""

from __future__ import annotations

from dataclasses import dataclass

from eyesim.cost.compression import dram_ratio
from eyesim.cost.values import ValueCounts
from eyesim.workload.layer import LayerIO

DENSITY_TYPES = ("weights", "ifmap", "ofmap")


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


def zero_effects(density: Density, counts: ValueCounts | None, io: LayerIO | None, gating: bool,
                 compression: str, bits: tuple[int, int]) -> ZeroEffects:
    """The factors of DESIGN.md ("Zeros and bit widths") for one layer, exact from ``counts`` when known."""
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
