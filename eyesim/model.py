"""Model: turns a layer, a hardware spec and a mapping into access counts and energy.

Bridges the frozen specs to the Numba kernels (plain int64 vectors) and weights the
counts by the per-access costs of DESIGN §3: data energy scales with bits/16, MAC energy
with (b_w/16)·(b_a/16). Energy is in normalized units (one 16-bit MAC = 1).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from eyesim import dataflow as df
from eyesim.hardware import LEVELS, Bits, Hardware
from eyesim.sparsity import ZeroEffects
from eyesim.workload import Layer

DATA_TYPES = ("weights", "ifmap", "psum")
ENERGY_LEVELS = (*LEVELS, "mac")
ENERGY_TYPES = ("weights", "ifmap", "ofmap", "comp")  # psums are charged to the ofmaps
REFERENCE_BITS = 16  # the costs are per 16-bit access


def layer_vector(layer: Layer) -> np.ndarray:
    """One group of the layer as the kernels' int64 vector (see dataflow.L_*)."""
    return np.array([layer.N, layer.C, layer.M, layer.H, layer.W, layer.R, layer.S, layer.E, layer.F,
                     layer.U, layer.Uw, layer.Dh, layer.Dw], dtype=np.int64)


def hw_vector(hw: Hardware, bits: Bits) -> np.ndarray:
    """The hardware as the kernels' int64 vector (see dataflow.HW_*); capacities in bits."""
    wb = hw.word_bits
    rf = hw.rf
    vec = np.zeros(df.HW_LEN, dtype=np.int64)
    vec[df.HW_ROWS], vec[df.HW_COLS] = hw.array.rows, hw.array.cols
    vec[df.HW_RF_UNIFIED] = int(rf.unified)
    if rf.unified:
        vec[df.HW_RF_BITS] = rf.words * wb
    else:
        vec[df.HW_RF_FILTER] = rf.filter_words * wb
        vec[df.HW_RF_IFMAP] = rf.ifmap_words * wb
        vec[df.HW_RF_PSUM] = rf.psum_words * wb
    vec[df.HW_GLB_BITS] = hw.glb.fmap_bits
    vec[df.HW_STAGE_FILTERS] = int(hw.glb.stages_filters)
    vec[df.HW_BITS_W], vec[df.HW_BITS_I], vec[df.HW_BITS_P] = bits.weights, bits.ifmap, bits.psum
    return vec


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
    """Per-access costs of one layer with its zeros: gated filter reads, skipped MACs, stored DRAM fmaps."""
    cost = base.copy()
    cost[df.DRAM, df.IFMAP] *= effects.ifmap_dram
    cost[df.DRAM, df.PSUM] *= effects.ofmap_dram
    cost[df.DRAM, df.WEIGHTS] *= effects.weights_dram
    cost[df.RF, df.WEIGHTS] *= effects.gated
    return cost, base_mac * effects.executed


@dataclass(frozen=True)
class Breakdown:
    """Energy of one layer, by level and by data type (normalized units), and the counts behind it."""

    counts: np.ndarray  # [level, type, read/write], words moved, all groups (filter reads after zero gating)
    macs: int  # dense MACs
    macs_executed: int  # MACs that run (zero gating skips the others)
    by_level: dict[str, float]
    by_type: dict[str, float]

    @property
    def total(self) -> float:
        return sum(self.by_level.values())


def breakdown(counts: np.ndarray, macs: int, cost: np.ndarray, mac_cost: float, effects: ZeroEffects) -> Breakdown:
    """Weight the dataflow's counts by the layer's costs; both breakdowns sum to the same total."""
    energy = counts.sum(axis=2) * cost  # [level, type]
    comp = macs * mac_cost
    by_level = {level: float(energy[i].sum()) for i, level in enumerate(LEVELS)}
    by_level["mac"] = float(comp)
    by_type = {"weights": float(energy[:, 0].sum()), "ifmap": float(energy[:, 1].sum()),
               "ofmap": float(energy[:, 2].sum()), "comp": float(comp)}
    shown = counts.copy()
    shown[df.RF, df.WEIGHTS, df.READ] = round(counts[df.RF, df.WEIGHTS, df.READ] * effects.gated)
    return Breakdown(counts=shown, macs=macs, macs_executed=round(macs * effects.executed), by_level=by_level,
                     by_type=by_type)


def layer_counts(layer: Layer, hw_vec: np.ndarray, mapping: np.ndarray) -> tuple[np.ndarray, int]:
    """Access counts of the whole layer (all G groups) under a legal mapping."""
    lv = layer_vector(layer)
    rows_table = df.strip_rows_table(lv)
    counts = np.zeros((4, 3, 2), dtype=np.int64)
    macs = df.count_accesses(lv, hw_vec, np.asarray(mapping, dtype=np.int64), rows_table, df.used_cols(lv), counts)
    return counts * layer.G, int(macs) * layer.G
