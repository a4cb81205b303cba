"""Row-stationary dataflow: legality and access counts of one mapping (Numba kernels).

The loop nest, the counting rules and the notation are in the project's DESIGN.md (§ "Counting").
Kernels see only NumPy arrays and integers: a layer is an int64 vector indexed by the ``L_*``
constants (one group; the caller multiplies by G), the hardware an int64 vector indexed by the
``HW_*`` constants, a mapping the int64 vector (m, n, e, p, q, r, t).
"""

from __future__ import annotations

import numpy as np
from numba import njit

# layer vector (per group)
L_N, L_C, L_M, L_H, L_W, L_R, L_S, L_E, L_F, L_U, L_UW, L_DH, L_DW = range(13)
# hardware vector; capacities in bits
HW_ROWS, HW_COLS, HW_RF_UNIFIED, HW_RF_BITS, HW_RF_FILTER, HW_RF_IFMAP, HW_RF_PSUM = range(7)
HW_GLB_BITS, HW_STAGE_FILTERS, HW_BITS_W, HW_BITS_I, HW_BITS_P = range(7, 12)
HW_LEN = 12
# mapping vector, in this order
MAPPING_KEYS = ("m", "n", "e", "p", "q", "r", "t")
# counts array: [level, data type, read/write]
DRAM, GLB, ARRAY, RF = range(4)
WEIGHTS, IFMAP, PSUM = range(3)
READ, WRITE = range(2)

# constraint codes returned by first_violation (0 = legal); messages live in mapping.py
OK, BAD_N, BAD_E, BAD_QR, BAD_PT, BAD_M_MULTIPLE = range(6)
BAD_RF_FILTER, BAD_RF_IFMAP, BAD_RF_PSUM, BAD_RF_UNIFIED, BAD_ARRAY, BAD_GLB = range(6, 12)


@njit(cache=True)
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
    for k in range(count):
        for i in range(taps):
            seen[k * step + i * dilation] = True
    return int(seen.sum())


@njit(cache=True)
def strip_rows_table(layer: np.ndarray) -> np.ndarray:
    """rows[e] = ifmap rows needed by a strip of e ofmap rows, for e = 0..E."""
    E = layer[L_E]
    rows = np.zeros(E + 1, dtype=np.int64)
    for e in range(1, E + 1):
        rows[e] = distinct_offsets(e, layer[L_U], layer[L_R], layer[L_DH])
    return rows


@njit(cache=True)
def rows_over_strips(layer: np.ndarray, rows_table: np.ndarray, e: int) -> int:
    """Ifmap rows read over all strips of e ofmap rows (full strips, then the remainder)."""
    E = layer[L_E]
    return (E // e) * rows_table[e] + rows_table[E % e]


@njit(cache=True)
def used_cols(layer: np.ndarray) -> int:
    """Ifmap columns any MAC reads (every PE's 1-D convolution reads the same ones)."""
    return distinct_offsets(layer[L_F], layer[L_UW], layer[L_S], layer[L_DW])


@njit(cache=True)
def sets_that_fit(R: int, e: int, rows: int, cols: int) -> int:
    """PE sets of R x e that pack into a rows x cols array.

    A set wider than the array is cut into width pieces stacked vertically (the chip runs
    5 x 27 as 5 x 14 over 5 x 13); sets are then packed side by side in a grid.
    """
    height = R * ceil_div(e, cols)
    width = min(e, cols)
    if height > rows:
        return 0
    return (rows // height) * (cols // width)


@njit(cache=True)
def rf_violation(p: int, q: int, S: int, hw: np.ndarray) -> int:
    """First RF capacity a PE holding p filters x q channels of S-wide rows breaks (0 = fits)."""
    filt = p * q * S * hw[HW_BITS_W]
    ifmap = q * S * hw[HW_BITS_I]
    psum = p * hw[HW_BITS_P]
    if hw[HW_RF_UNIFIED]:
        return BAD_RF_UNIFIED if filt + ifmap + psum > hw[HW_RF_BITS] else OK
    if filt > hw[HW_RF_FILTER]:
        return BAD_RF_FILTER
    if ifmap > hw[HW_RF_IFMAP]:
        return BAD_RF_IFMAP
    if psum > hw[HW_RF_PSUM]:
        return BAD_RF_PSUM
    return OK


@njit(cache=True)
def glb_bits_used(n: int, m: int, e: int, qr: int, layer: np.ndarray, rows_e: int, cols: int,
                  hw: np.ndarray) -> int:
    """GLB bits a pass needs: the psum chunk (n*m*e*F) and the ifmap strip (n*q*r*rows*cols)."""
    return n * m * e * layer[L_F] * hw[HW_BITS_P] + n * qr * rows_e * cols * hw[HW_BITS_I]


@njit(cache=True)
def first_violation(layer: np.ndarray, hw: np.ndarray, mp: np.ndarray) -> int:
    """Code of the first constraint the mapping breaks, OK (0) if it is legal."""
    m, n, e, p, q, r, t = mp[0], mp[1], mp[2], mp[3], mp[4], mp[5], mp[6]
    if n > layer[L_N]:
        return BAD_N
    if e > layer[L_E]:
        return BAD_E
    if q * r > layer[L_C]:
        return BAD_QR
    if p * t > m or m > layer[L_M]:
        return BAD_PT
    if m % (p * t) != 0 and m != layer[L_M]:
        return BAD_M_MULTIPLE
    bad_rf = rf_violation(p, q, layer[L_S], hw)
    if bad_rf != OK:
        return bad_rf
    if sets_that_fit(layer[L_R], e, hw[HW_ROWS], hw[HW_COLS]) < r * t:
        return BAD_ARRAY
    rows_e = distinct_offsets(e, layer[L_U], layer[L_R], layer[L_DH])
    if glb_bits_used(n, m, e, q * r, layer, rows_e, used_cols(layer), hw) > hw[HW_GLB_BITS]:
        return BAD_GLB
    return OK


# The counts split into three disjoint parts by the loop level that decides them, so that the
# search can evaluate each part once per level. Each fills its own entries of out[level, type, rw].


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
