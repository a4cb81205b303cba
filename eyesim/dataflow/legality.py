"""Legality of a mapping: the first constraint of DESIGN.md it breaks, if any (Numba kernels)."""

from __future__ import annotations

import numpy as np
from numba import njit

import eyesim.dataflow.cache  # noqa: F401 - before @njit: the kernels' cache folder (not the installed package)
from eyesim.dataflow import indices as ix
from eyesim.dataflow.geometry import ceil_div, distinct_offsets, used_cols


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
    filt = p * q * S * hw[ix.HW_BITS_W]
    ifmap = q * S * hw[ix.HW_BITS_I]
    psum = p * hw[ix.HW_BITS_P]
    if hw[ix.HW_RF_UNIFIED]:
        return ix.BAD_RF_UNIFIED if filt + ifmap + psum > hw[ix.HW_RF_BITS] else ix.OK
    if filt > hw[ix.HW_RF_FILTER]:
        return ix.BAD_RF_FILTER
    if ifmap > hw[ix.HW_RF_IFMAP]:
        return ix.BAD_RF_IFMAP
    if psum > hw[ix.HW_RF_PSUM]:
        return ix.BAD_RF_PSUM
    return ix.OK


@njit(cache=True)
def glb_bits_used(n: int, m: int, e: int, qr: int, layer: np.ndarray, rows_e: int, cols: int,
                  hw: np.ndarray) -> int:
    """GLB bits a pass needs: the psum chunk (n*m*e*F) and the ifmap strip (n*q*r*rows*cols)."""
    return n * m * e * layer[ix.L_F] * hw[ix.HW_BITS_P] + n * qr * rows_e * cols * hw[ix.HW_BITS_I]


@njit(cache=True)
def first_violation(layer: np.ndarray, hw: np.ndarray, mp: np.ndarray) -> int:
    """Code of the first constraint the mapping breaks, OK (0) if it is legal."""
    m, n, e, p, q, r, t = mp[0], mp[1], mp[2], mp[3], mp[4], mp[5], mp[6]
    if n > layer[ix.L_N]:
        return ix.BAD_N
    if e > layer[ix.L_E]:
        return ix.BAD_E
    if q * r > layer[ix.L_C]:
        return ix.BAD_QR
    if p * t > m or m > layer[ix.L_M]:
        return ix.BAD_PT
    if m % (p * t) != 0 and m != layer[ix.L_M]:
        return ix.BAD_M_MULTIPLE
    bad_rf = rf_violation(p, q, layer[ix.L_S], hw)
    if bad_rf != ix.OK:
        return bad_rf
    if sets_that_fit(layer[ix.L_R], e, hw[ix.HW_ROWS], hw[ix.HW_COLS]) < r * t:
        return ix.BAD_ARRAY
    rows_e = distinct_offsets(e, layer[ix.L_U], layer[ix.L_R], layer[ix.L_DH])
    if glb_bits_used(n, m, e, q * r, layer, rows_e, used_cols(layer), hw) > hw[ix.HW_GLB_BITS]:
        return ix.BAD_GLB
    return ix.OK
