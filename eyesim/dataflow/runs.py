"""Zero runs of a value stream, grouped as the chip's run-length code groups them: counted from the values, or
expected from their non-zero density (Numba kernels)."""

from __future__ import annotations

import numpy as np
from numba import njit

import eyesim.dataflow.cache  # noqa: F401 - before @njit: the kernels' cache folder (not the installed package)


@njit(cache=True)
def rlc_pairs(nonzero: np.ndarray, max_run: int) -> int:
    """(run, value) pairs that code a stream: each pair is up to ``max_run`` zeros and the value after them.

    A run that reaches ``max_run`` zeros is closed by the next value even if that value is zero; a
    stream ending in zeros closes with one pair.
    """
    pairs = 0
    run = 0
    for nz in nonzero:
        if not nz and run < max_run:
            run += 1
        else:
            pairs += 1
            run = 0
    if run > 0:
        pairs += 1
    return pairs


@njit(cache=True, inline="always")
def _step(density: float, max_run: int) -> np.ndarray:
    """One value of the coder as an affine map of (P(run = 0..max_run), expected pairs so far), row-vector form.

    A non-zero value (probability d) closes a pair; a zero extends the run, or closes a pair when the run
    already holds ``max_run`` zeros.
    """
    size = max_run + 2
    step = np.zeros((size, size))
    for run in range(max_run + 1):
        closes = 1.0 if run == max_run else density
        step[run, 0] += closes
        step[run, size - 1] += closes
        if run < max_run:
            step[run, run + 1] += 1.0 - density
    step[size - 1, size - 1] = 1.0
    return step


@njit(cache=True)
def _product(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a @ b`` summed over k in one fixed order: the same bits on every CPU (BLAS picks its kernel, and so its
    rounding, by the CPU it runs on)."""
    n, m = a.shape[0], b.shape[1]
    out = np.zeros((n, m))
    for i in range(n):
        for k in range(a.shape[1]):
            aik = a[i, k]
            if aik != 0.0:  # exact: a zero term adds nothing (the maps are sparse until raised to high powers)
                for j in range(m):
                    out[i, j] += aik * b[k, j]
    return out


@njit(cache=True)
def _power(matrix: np.ndarray, exponent: int) -> np.ndarray:
    """``matrix ** exponent`` by squaring, with ``_product``."""
    result = np.eye(matrix.shape[0])
    base = matrix.copy()
    first = True
    while exponent > 0:
        if exponent & 1:
            result = base.copy() if first else _product(result, base)
            first = False
        exponent >>= 1
        if exponent:
            base = _product(base, base)
    return result


@njit(cache=True)
def rlc_expected_pairs(density: float, max_run: int, stream: np.ndarray) -> float:
    """Expected (run, value) pairs that code ``stream`` = (planes, height, width, top, bottom, left, right):
    ``planes`` planes of height x width values, each non-zero with probability ``density`` independently,
    framed by zero padding. The coder's state (the run length) is a Markov chain over the values; a plane's
    map is a product of matrix powers."""
    planes, height, width, top, bottom, left, right = stream[0], stream[1], stream[2], stream[3], stream[4], \
        stream[5], stream[6]
    zero, value = _step(0.0, max_run), _step(density, max_run)
    side = left + width + right
    row = _product(_product(_power(zero, left), _power(value, width)), _power(zero, right))
    plane = _product(_product(_power(zero, top * side), _power(row, height)), _power(zero, bottom * side))
    state = _power(plane, planes)[0]  # from an empty run
    return state[max_run + 1] + 1.0 - state[0]  # a stream ending in zeros closes with one pair
