"""Which ifmap rows and columns a strip of ofmap rows needs (Numba kernels)."""

from __future__ import annotations

import numpy as np
from numba import njit

import eyesim.dataflow.cache  # noqa: F401 - before @njit: the kernels' cache folder (not the installed package)
from eyesim.dataflow import indices as ix


@njit(cache=True, inline="always")
def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


@njit(cache=True)
def distinct_offsets(count: int, step: int, taps: int, dilation: int) -> int:
    """How many distinct indices ``k*step + i*dilation`` (k < count, i < taps) there are.

    Gives the ifmap rows a strip of ``count`` ofmap rows needs, or the ifmap columns a
    PE's 1-D convolution reads.
    """
    if count <= 0:
        return 0
    if dilation == 1 and step <= taps:  # windows overlap or touch: one contiguous span
        return (count - 1) * step + taps
    span = (count - 1) * step + (taps - 1) * dilation + 1
    seen = np.zeros(span, dtype=np.bool_)
    distinct = 0
    for k in range(count):
        for i in range(taps):
            j = k * step + i * dilation
            distinct += not seen[j]  # counted here, not by seen.sum(): one kernel less to compile
            seen[j] = True
    return distinct


@njit(cache=True)
def strip_rows_table(layer: np.ndarray) -> np.ndarray:
    """rows[e] = ifmap rows needed by a strip of e ofmap rows, for e = 0..E."""
    E = layer[ix.L_E]
    rows = np.zeros(E + 1, dtype=np.int64)
    for e in range(1, E + 1):
        rows[e] = distinct_offsets(e, layer[ix.L_U], layer[ix.L_R], layer[ix.L_DH])
    return rows


@njit(cache=True, inline="always")
def rows_over_strips(layer: np.ndarray, rows_table: np.ndarray, e: int) -> int:
    """Ifmap rows read over all strips of e ofmap rows (full strips, then the remainder)."""
    E = layer[ix.L_E]
    return (E // e) * rows_table[e] + rows_table[E % e]


@njit(cache=True)
def used_cols(layer: np.ndarray) -> int:
    """Ifmap columns any MAC reads (every PE's 1-D convolution reads the same ones)."""
    return distinct_offsets(layer[ix.L_F], layer[ix.L_UW], layer[ix.L_S], layer[ix.L_DW])
