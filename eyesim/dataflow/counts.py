"""Access counts of one mapping at every level, in closed form (Numba kernels)."""

from __future__ import annotations

import numpy as np
from numba import njit

import eyesim.dataflow.cache  # noqa: F401 - before @njit: the kernels' cache folder (not the installed package)
from eyesim.dataflow import indices as ix
from eyesim.dataflow.geometry import ceil_div, rows_over_strips


@njit(cache=True, inline="always")
def count_pass_level(layer: np.ndarray, rows_total: int, cols: int, filter_passes: int, filter_sets: int,
                     out: np.ndarray) -> int:
    """Counts decided by the strip height e and the filter split (p, t); returns the MACs.

    ``filter_passes`` = ceil(M / (p*t)) filter chunks over all m-chunks (m is a multiple of p*t,
    or M), ``filter_sets`` = ceil(M / p) active PE sets summed over them.
    """
    N, C, M, E, F = layer[ix.L_N], layer[ix.L_C], layer[ix.L_M], layer[ix.L_E], layer[ix.L_F]
    R, S = layer[ix.L_R], layer[ix.L_S]
    macs = N * M * C * E * F * R * S
    out[ix.GLB, ix.IFMAP, ix.READ] = filter_passes * N * C * rows_total * cols
    out[ix.ARRAY, ix.IFMAP, ix.READ] = N * filter_sets * C * R * E * cols
    out[ix.RF, ix.IFMAP, ix.READ] = macs
    out[ix.RF, ix.WEIGHTS, ix.READ] = macs
    out[ix.DRAM, ix.PSUM, ix.WRITE] = N * M * E * F
    return macs


@njit(cache=True, inline="always")
def count_channel_level(layer: np.ndarray, chan_chunks: int, chan_sets: int, out: np.ndarray) -> None:
    """Psum counts decided by the channel split (q, r).

    ``chan_chunks`` = ceil(C / (q*r)) channel chunks, ``chan_sets`` = ceil(C / q) active PE sets
    summed over them.
    """
    N, C, M, E, F = layer[ix.L_N], layer[ix.L_C], layer[ix.L_M], layer[ix.L_E], layer[ix.L_F]
    R, S = layer[ix.L_R], layer[ix.L_S]
    ofmap = N * M * E * F
    out[ix.GLB, ix.PSUM, ix.READ] = ofmap * (chan_chunks - 1)
    out[ix.GLB, ix.PSUM, ix.WRITE] = ofmap * (chan_chunks - 1)
    out[ix.ARRAY, ix.PSUM, ix.READ] = ofmap * (chan_sets * R - chan_chunks)
    out[ix.RF, ix.PSUM, ix.READ] = ofmap * R * (C * S - chan_sets)
    out[ix.RF, ix.PSUM, ix.WRITE] = ofmap * R * (C * S - chan_sets)


@njit(cache=True, inline="always")
def count_tile_level(layer: np.ndarray, hw: np.ndarray, strips: int, rows_total: int, cols: int,
                     n_chunks: int, m_chunks: int, out: np.ndarray) -> None:
    """DRAM-side counts decided by the batch and filter chunks held in the GLB (n, m) and e."""
    N, C, M, E = layer[ix.L_N], layer[ix.L_C], layer[ix.L_M], layer[ix.L_E]
    weights = M * C * layer[ix.L_R] * layer[ix.L_S]
    out[ix.DRAM, ix.IFMAP, ix.READ] = m_chunks * N * C * rows_total * cols
    out[ix.DRAM, ix.WEIGHTS, ix.READ] = n_chunks * strips * weights
    out[ix.GLB, ix.WEIGHTS, ix.READ] = n_chunks * strips * weights if hw[ix.HW_STAGE_FILTERS] else 0
    out[ix.ARRAY, ix.WEIGHTS, ix.READ] = n_chunks * E * weights


@njit(cache=True)
def count_accesses(layer: np.ndarray, hw: np.ndarray, mp: np.ndarray, rows_table: np.ndarray, cols: int,
                   out: np.ndarray) -> int:
    """Fill ``out[level, type, rw]`` with the words one group moves under mapping ``mp``; return MACs.

    Each count is the tile loop nest (n-chunks, m-chunks, strips, channel chunks, filter chunks)
    summed in closed form, uneven last tiles included; tests check it against a MAC-by-MAC walk.
    """
    N, C, M, E = layer[ix.L_N], layer[ix.L_C], layer[ix.L_M], layer[ix.L_E]
    m, n, e, p, q, r, t = mp[0], mp[1], mp[2], mp[3], mp[4], mp[5], mp[6]
    out[:] = 0
    strips = ceil_div(E, e)
    rows_total = rows_over_strips(layer, rows_table, e)
    macs = count_pass_level(layer, rows_total, cols, ceil_div(M, p * t), ceil_div(M, p), out)
    count_channel_level(layer, ceil_div(C, q * r), ceil_div(C, q), out)
    count_tile_level(layer, hw, strips, rows_total, cols, ceil_div(N, n), ceil_div(M, m), out)
    return macs
