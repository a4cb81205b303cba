"""Specs as the kernels' vectors, and the access counts of a whole layer (all groups) under a mapping."""

from __future__ import annotations

import numpy as np

from eyesim import dataflow as df
from eyesim.hardware.spec import Bits, Hardware
from eyesim.workload.layer import Layer


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


def layer_counts(layer: Layer, hw_vec: np.ndarray, mapping: np.ndarray) -> tuple[np.ndarray, int]:
    """Access counts of the whole layer (all G groups) under a legal mapping."""
    lv = layer_vector(layer)
    rows_table = df.strip_rows_table(lv)
    counts = np.zeros((4, 3, 2), dtype=np.int64)
    macs = df.count_accesses(lv, hw_vec, np.asarray(mapping, dtype=np.int64), rows_table, df.used_cols(lv), counts)
    return counts * layer.G, int(macs) * layer.G
