"""Energy per access of each data type at each level, and per MAC, with bit widths and a layer's zeros.

The costs are per 16-bit access (one 16-bit MAC = 1): data energy scales with bits/16, MAC energy with
(b_w/16)·(b_i/16).
"""

from __future__ import annotations

import numpy as np

from eyesim import dataflow as df
from eyesim.cost.zeros import ZeroEffects
from eyesim.hardware.schema import LEVELS
from eyesim.hardware.spec import Bits, Hardware
from eyesim.workload.layer import Layer

REFERENCE_BITS = 16  # the costs are per 16-bit access


def word_bits(bits: Bits) -> np.ndarray:
    """Bits of one word of each data type at each level, [level, type].

    The only psum words in DRAM are finished ofmaps, which are activations: they are written at
    the ifmap width (the next layer reads them back at that width).
    """
    table = np.tile(np.array([bits.weights, bits.ifmap, bits.psum], dtype=np.float64), (len(LEVELS), 1))
    table[df.DRAM, df.PSUM] = bits.ifmap
    return table


def access_costs(hw: Hardware, bits: Bits) -> np.ndarray:
    """cost[level, type]: energy of one access of one word of that type at that level."""
    per_level = np.array([getattr(hw.energy, level) for level in LEVELS], dtype=np.float64)
    return per_level[:, None] * word_bits(bits) / REFERENCE_BITS


def mac_cost(hw: Hardware, bits: Bits) -> float:
    return hw.energy.mac * (bits.weights / REFERENCE_BITS) * (bits.ifmap / REFERENCE_BITS)


def layer_costs(base: np.ndarray, base_mac: float, effects: ZeroEffects) -> tuple[np.ndarray, float]:
    """Per-access costs of one layer with its zeros: gated filter (and psum) reads, skipped MACs, stored DRAM fmaps."""
    cost = base.copy()
    cost[df.RF, df.PSUM] *= effects.psums
    cost[df.DRAM, df.IFMAP] *= effects.ifmap_dram
    cost[df.DRAM, df.PSUM] *= effects.ofmap_dram
    cost[df.DRAM, df.WEIGHTS] *= effects.weights_dram
    cost[df.RF, df.WEIGHTS] *= effects.gated
    return cost, base_mac * effects.executed


def psum_extra(layer: Layer, cost: np.ndarray, skips: np.ndarray | None) -> np.ndarray:
    """Exact psum gating as the search sees it: per q, the energy of one group's skipped psum RF reads and writes
    (negative), from ``zeros.psum_skips``; empty without exact psum gating."""
    if skips is None:
        return np.zeros(0)
    return -2.0 * cost[df.RF, df.PSUM] * skips * (layer.macs // layer.G)
