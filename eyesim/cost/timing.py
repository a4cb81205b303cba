"""Timing: compute cycles of a mapping, DRAM transfer time, latency and which bound dominates (DESIGN.md, "Time").

Compute: in every processing pass each active PE runs one MAC per cycle, n·p·q·S·F MACs for its
ofmap row (zero gating saves energy, not time); a pass lasts as long as its busiest PE. DRAM: the
bits moved (fmaps as stored, compressed or not) over the link's width and clock. The two overlap,
so a layer takes the longer of the two.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from eyesim import dataflow as df
from eyesim.cost.energy import word_bits
from eyesim.cost.zeros import ZeroEffects
from eyesim.hardware.spec import Bits, Hardware
from eyesim.mapping import Mapping
from eyesim.workload.layer import Layer


@dataclass(frozen=True)
class Timing:
    compute_cycles: int  # core clock cycles
    dram_cycles: int  # the DRAM transfer time, in core clock cycles
    latency_s: float

    @property
    def cycles(self) -> int:
        return max(self.compute_cycles, self.dram_cycles)

    @property
    def bound(self) -> str:
        return "compute" if self.compute_cycles >= self.dram_cycles else "dram"


def _busiest_sum(total: int, per_pe: int, per_pass: int) -> int:
    """Sum over chunks of ``per_pass`` items of the items the busiest PE set (``per_pe`` each) gets."""
    return (total // per_pass) * per_pe + min(per_pe, total % per_pass)


def compute_cycles(layer: Layer, mp: Mapping) -> int:
    """Cycles of all passes of all groups: sum over passes of n·min(p, filters)·min(q, channels)·S·F."""
    filters = _busiest_sum(layer.M, mp.p, mp.p * mp.t)
    channels = _busiest_sum(layer.C, mp.q, mp.q * mp.r)
    strips = -(-layer.E // mp.e)
    return layer.G * layer.N * filters * channels * strips * layer.S * layer.F


def dram_bits(counts: np.ndarray, bits: Bits, effects: ZeroEffects) -> float:
    """Bits crossing the DRAM link, as stored (compressed or not)."""
    words = counts[df.DRAM].sum(axis=1) * word_bits(bits)[df.DRAM]  # bits per data type
    stored = np.array([effects.weights_dram, effects.ifmap_dram, effects.ofmap_dram])
    return float(words @ stored)


def layer_timing(layer: Layer, mp: Mapping, counts: np.ndarray, hw: Hardware, bits: Bits,
                 effects: ZeroEffects) -> Timing:
    compute = compute_cycles(layer, mp)
    link_s = dram_bits(counts, bits, effects) / hw.dram.link_bits / (hw.dram.link_mhz * 1e6)
    dram = int(np.ceil(link_s * hw.clock_mhz * 1e6))
    return Timing(compute, dram, max(compute, dram) / (hw.clock_mhz * 1e6))
