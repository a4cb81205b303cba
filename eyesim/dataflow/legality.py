"""Legality of a mapping: the first constraint of DESIGN.md it breaks, if any (Numba kernels)."""

from __future__ import annotations

import numpy as np
from numba import njit

from eyesim.dataflow.geometry import ceil_div, distinct_offsets, used_cols
from eyesim.dataflow.indices import (
    BAD_ARRAY,
    BAD_E,
    BAD_GLB,
    BAD_M_MULTIPLE,
    BAD_N,
    BAD_PT,
    BAD_QR,
    BAD_RF_FILTER,
    BAD_RF_IFMAP,
    BAD_RF_PSUM,
    BAD_RF_UNIFIED,
    HW_BITS_I,
    HW_BITS_P,
    HW_BITS_W,
    HW_COLS,
    HW_GLB_BITS,
    HW_RF_BITS,
    HW_RF_FILTER,
    HW_RF_IFMAP,
    HW_RF_PSUM,
    HW_RF_UNIFIED,
    HW_ROWS,
    L_C,
    L_DH,
    L_E,
    L_F,
    L_M,
    L_N,
    L_R,
    L_S,
    L_U,
    OK,
)


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
