"""Timing: the cycles of every processing pass, DRAM transfer time, latency and the bound (DESIGN.md, "Time").

A pass first loads its filter rows into the PEs' scratchpads (over the filter bus; from the GLB's
filter part, or at the DRAM link's rate for what does not fit there), then computes while ifmaps
stream in, earlier channels' psums stream in and finished psums stream out on their buses; after
its last MAC the last psums pass up the PE columns and leave. Compute is what the busiest PE's MACs
take (one per cycle; zero gating saves energy, not time), set-up everything else a pass takes. DRAM
time is the bits moved, as stored, over the link; it overlaps the array's work, so a layer takes the
longer of the two.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from math import ceil
from typing import NamedTuple

import numpy as np

from eyesim import dataflow as df
from eyesim.cost.counts import layer_vector
from eyesim.cost.energy import word_bits
from eyesim.cost.zeros import ZeroEffects
from eyesim.hardware.spec import Bits, Hardware
from eyesim.mapping import Mapping
from eyesim.workload.layer import Layer


@dataclass(frozen=True)
class Timing:
    compute_cycles: int  # core clock cycles: the busiest PE's MACs, summed over passes
    dram_cycles: int  # the DRAM transfer time, in core clock cycles
    latency_s: float
    setup_cycles: int = 0  # the rest of every pass: loading filters, streams beyond compute, draining psums

    @property
    def array_cycles(self) -> int:
        return self.compute_cycles + self.setup_cycles

    @property
    def cycles(self) -> int:
        return max(self.array_cycles, self.dram_cycles)

    @property
    def bound(self) -> str:
        return "compute" if self.array_cycles >= self.dram_cycles else "dram"


class PassWork(NamedTuple):
    """What one processing pass computes and moves, in words (DESIGN.md, "Time")."""

    compute: int  # MACs of the busiest PE
    filter_words: int  # distinct weights the pass's PEs hold
    ifmap_words: int  # distinct ifmap values delivered (multicast: once each)
    psum_in_words: int  # earlier channel chunks' psums brought back (0 in the first chunk)
    psum_out_words: int  # psums leaving the array
    busiest_filters: int  # filters per PE in the busiest set (psums each PE holds)
    chain: int  # PEs a psum passes through: filter rows x active channel sets
    last_psums: int  # psums of the last ofmap column, which leave after the last MAC


class _Rates(NamedTuple):
    """The hardware's buses as one pass sees them: widths in bits, word widths, staging room, link rate."""

    filter_bus: int
    ifmap_bus: int
    psum_in_bus: int
    psum_out_bus: int
    local_bus: int
    pipeline: int
    bits: Bits
    staged_words: int  # weights the GLB's filter part holds
    link_bits: float  # bits the DRAM link moves per core cycle

    @classmethod
    def of(cls, hw: Hardware, bits: Bits) -> _Rates:
        noc = hw.noc
        return cls(noc.filter_bits, noc.ifmap_bits, noc.psum_in_bits, noc.psum_out_bits, noc.local_bits,
                   noc.pipeline_stages, bits, int(hw.glb.filter_kb * 8192) // bits.weights,
                   hw.dram.link_bits * hw.dram.link_mhz / hw.clock_mhz)


def pass_cycles(work: PassWork, hw: Hardware, bits: Bits) -> int:
    """Cycles of one pass: filter load, then the longer of compute-and-drain and each stream."""
    return _pass_cycles(work, _Rates.of(hw, bits))


def _pass_cycles(work: PassWork, rates: _Rates) -> int:
    b = rates.bits
    drain = (rates.pipeline + (work.chain - 1) * _bus(work.busiest_filters, b.psum, rates.local_bus)
             + _bus(work.last_psums, b.psum, rates.psum_out_bus))
    return _filter_load(work.filter_words, rates) + max(work.compute + drain,
                                                        _bus(work.ifmap_words, b.ifmap, rates.ifmap_bus),
                                                        _bus(work.psum_in_words, b.psum, rates.psum_in_bus),
                                                        _bus(work.psum_out_words, b.psum, rates.psum_out_bus))


def filter_load_cycles(words: int, hw: Hardware, bits: Bits) -> int:
    """Filling the PEs' filter scratchpads: staged words over the filter bus, the rest at the DRAM link's rate.

    What fits the GLB's filter part was staged during the previous pass; what does not (all of it when
    filters bypass the GLB) arrives no faster than the link delivers it.
    """
    return _filter_load(words, _Rates.of(hw, bits))


def _filter_load(words: int, rates: _Rates) -> int:
    staged = min(words, rates.staged_words)
    rest_bits = (words - staged) * rates.bits.weights
    return (_bus(staged, rates.bits.weights, rates.filter_bus)
            + (ceil(rest_bits / min(rates.filter_bus, rates.link_bits)) if rest_bits else 0))


def _bus(words: int, bits: int, width: int) -> int:
    """Cycles to move ``words`` of ``bits`` over a ``width``-bit bus."""
    return -(-words * bits // width)


def _tiles(total: int, size: int) -> list[tuple[int, int]]:
    """(tile size, how many) of ``total`` cut into tiles of ``size``: the full ones, then the short one."""
    full, rest = divmod(total, size)
    return [(size, full)] * (full > 0) + [(rest, 1)] * (rest > 0)


def pass_kinds(layer: Layer, mp: Mapping) -> list[tuple[PassWork, int]]:
    """Every kind of pass of one group and how many passes of it (n-chunks x strips x channel x filter chunks)."""
    cols = int(df.used_cols(layer_vector(layer)))
    first, *later = _tiles(layer.C, mp.q * mp.r)
    chans = [(first[0], True, 1)] + ([(first[0], False, first[1] - 1)] if first[1] > 1 else [])
    chans += [(c, False, k) for c, k in later]
    e_tiles, m_tiles = _tiles(layer.E, mp.e), _tiles(layer.M, mp.p * mp.t)
    rows = {e: int(df.distinct_offsets(e, layer.U, layer.R, layer.Dh)) for e, _ in e_tiles}
    kinds = []
    for n, n_count in _tiles(layer.N, mp.n):
        for e, e_count in e_tiles:
            for c, is_first, c_count in chans:
                for f, f_count in m_tiles:
                    psums = n * f * e * layer.F
                    work = PassWork(
                        compute=n * min(mp.p, f) * min(mp.q, c) * layer.S * layer.F,
                        filter_words=f * c * layer.R * layer.S, ifmap_words=n * c * rows[e] * cols,
                        psum_in_words=0 if is_first else psums, psum_out_words=psums,
                        busiest_filters=min(mp.p, f), chain=layer.R * -(-c // mp.q), last_psums=f * e)
                    kinds.append((work, n_count * e_count * c_count * f_count))
    return kinds


def array_cycles(layer: Layer, mp: Mapping, hw: Hardware, bits: Bits) -> tuple[int, int]:
    """(compute, set-up) cycles of all passes of all groups."""
    kinds, rates = pass_kinds(layer, mp), _Rates.of(hw, bits)
    compute = total = 0
    for work, count in kinds:
        compute += work.compute * count
        total += _pass_cycles(work, rates) * count
    return layer.G * compute, layer.G * (total - compute)


def compute_cycles(layer: Layer, mp: Mapping) -> int:
    """Cycles of the busiest PEs' MACs over all passes of all groups: sum of n·min(p, filters)·min(q, channels)·S·F."""
    return layer.G * sum(work.compute * count for work, count in pass_kinds(layer, mp))


def dram_bits(counts: np.ndarray, bits: Bits, effects: ZeroEffects) -> float:
    """Bits crossing the DRAM link, as stored (compressed or not)."""
    words = counts[df.DRAM].sum(axis=1) * _dram_word_bits(bits)  # bits per data type
    stored = (effects.weights_dram, effects.ifmap_dram, effects.ofmap_dram)
    # summed in Python, in this order: a BLAS dot picks its kernel (FMA or not) by the CPU, and so its rounding
    return sum(float(w) * s for w, s in zip(words.tolist(), stored, strict=True))


def layer_timing(layer: Layer, mp: Mapping, counts: np.ndarray, hw: Hardware, bits: Bits,
                 effects: ZeroEffects) -> Timing:
    compute, setup = array_cycles(layer, mp, hw, bits)
    link_s = dram_bits(counts, bits, effects) / hw.dram.link_bits / (hw.dram.link_mhz * 1e6)
    dram = int(np.ceil(link_s * hw.clock_mhz * 1e6))
    return Timing(compute, dram, max(compute + setup, dram) / (hw.clock_mhz * 1e6), setup)


@functools.lru_cache(maxsize=64)
def _dram_word_bits(bits: Bits) -> np.ndarray:
    """``word_bits(bits)[DRAM]``, built once per widths (read-only: it is shared)."""
    row = word_bits(bits)[df.DRAM].copy()
    row.flags.writeable = False
    return row
