"""Zero runs of a value stream, grouped as the chip's run-length code groups them (Numba kernel)."""

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
