"""Access counts of one mapping at every level, in closed form (Numba kernels)."""

from __future__ import annotations

import numpy as np
from numba import njit

from eyesim.dataflow.geometry import ceil_div, rows_over_strips
from eyesim.dataflow.indices import (
    ARRAY,
    DRAM,
    GLB,
    HW_STAGE_FILTERS,
    IFMAP,
    L_C,
    L_E,
    L_F,
    L_M,
    L_N,
    L_R,
    L_S,
    PSUM,
    READ,
    RF,
    WEIGHTS,
    WRITE,
)


@njit(cache=True)
def count_pass_level(layer: np.ndarray, rows_total: int, cols: int, filter_passes: int, filter_sets: int,
                     out: np.ndarray) -> int:
    """Counts decided by the strip height e and the filter split (p, t); returns the MACs.

    ``filter_passes`` = ceil(M / (p*t)) filter chunks over all m-chunks (m is a multiple of p*t,
    or M), ``filter_sets`` = ceil(M / p) active PE sets summed over them.
    """
    N, C, M, E, F = layer[L_N], layer[L_C], layer[L_M], layer[L_E], layer[L_F]
    R, S = layer[L_R], layer[L_S]
    macs = N * M * C * E * F * R * S
    out[GLB, IFMAP, READ] = filter_passes * N * C * rows_total * cols
    out[ARRAY, IFMAP, READ] = N * filter_sets * C * R * E * cols
    out[RF, IFMAP, READ] = macs
    out[RF, WEIGHTS, READ] = macs
    out[DRAM, PSUM, WRITE] = N * M * E * F
    return macs


@njit(cache=True)
def count_channel_level(layer: np.ndarray, chan_chunks: int, chan_sets: int, out: np.ndarray) -> None:
    """Psum counts decided by the channel split (q, r).

    ``chan_chunks`` = ceil(C / (q*r)) channel chunks, ``chan_sets`` = ceil(C / q) active PE sets
    summed over them.
    """
    N, C, M, E, F = layer[L_N], layer[L_C], layer[L_M], layer[L_E], layer[L_F]
    R, S = layer[L_R], layer[L_S]
    ofmap = N * M * E * F
    out[GLB, PSUM, READ] = ofmap * (chan_chunks - 1)
    out[GLB, PSUM, WRITE] = ofmap * (chan_chunks - 1)
    out[ARRAY, PSUM, READ] = ofmap * (chan_sets * R - chan_chunks)
    out[RF, PSUM, READ] = ofmap * R * (C * S - chan_sets)
    out[RF, PSUM, WRITE] = ofmap * R * (C * S - chan_sets)


@njit(cache=True)
def count_tile_level(layer: np.ndarray, hw: np.ndarray, strips: int, rows_total: int, cols: int,
                     n_chunks: int, m_chunks: int, out: np.ndarray) -> None:
    """DRAM-side counts decided by the batch and filter chunks held in the GLB (n, m) and e."""
    N, C, M, E = layer[L_N], layer[L_C], layer[L_M], layer[L_E]
    weights = M * C * layer[L_R] * layer[L_S]
    out[DRAM, IFMAP, READ] = m_chunks * N * C * rows_total * cols
    out[DRAM, WEIGHTS, READ] = n_chunks * strips * weights
    out[GLB, WEIGHTS, READ] = n_chunks * strips * weights if hw[HW_STAGE_FILTERS] else 0
    out[ARRAY, WEIGHTS, READ] = n_chunks * E * weights


@njit(cache=True)
def count_accesses(layer: np.ndarray, hw: np.ndarray, mp: np.ndarray, rows_table: np.ndarray, cols: int,
                   out: np.ndarray) -> int:
    """Fill ``out[level, type, rw]`` with the words one group moves under mapping ``mp``; return MACs.

    Each count is the tile loop nest (n-chunks, m-chunks, strips, channel chunks, filter chunks)
    summed in closed form, uneven last tiles included; tests check it against a MAC-by-MAC walk.
    """
    N, C, M, E = layer[L_N], layer[L_C], layer[L_M], layer[L_E]
    m, n, e, p, q, r, t = mp[0], mp[1], mp[2], mp[3], mp[4], mp[5], mp[6]
    out[:] = 0
    strips = ceil_div(E, e)
    rows_total = rows_over_strips(layer, rows_table, e)
    macs = count_pass_level(layer, rows_total, cols, ceil_div(M, p * t), ceil_div(M, p), out)
    count_channel_level(layer, ceil_div(C, q * r), ceil_div(C, q), out)
    count_tile_level(layer, hw, strips, rows_total, cols, ceil_div(N, n), ceil_div(M, m), out)
    return macs
