"""Stored sizes in DRAM: the chip's run-length code and a significance map, counted from values or expected."""

from __future__ import annotations

import numpy as np
from numba import njit

RLC_RUN_BITS = 5  # a run of up to 31 zeros
RLC_MAX_RUN = 2**RLC_RUN_BITS - 1
RLC_WORD_BITS = 64  # pairs pack into 64-bit words whose last bit marks the final word


def rlc_pairs_per_word(bits: int) -> int:
    """(run, value) pairs in one 64-bit word: three for 16-bit values, as on the chip."""
    return (RLC_WORD_BITS - 1) // (RLC_RUN_BITS + bits)


@njit(cache=True)
def rlc_pairs(nonzero: np.ndarray) -> int:
    """(run, value) pairs that code a stream: each pair is up to 31 zeros and the value after them.

    A run that reaches 31 zeros is closed by the next value even if that value is zero; a
    stream ending in zeros closes with one pair.
    """
    pairs = 0
    run = 0
    for nz in nonzero:
        if not nz and run < RLC_MAX_RUN:
            run += 1
        else:
            pairs += 1
            run = 0
    if run > 0:
        pairs += 1
    return pairs


def rlc_words(values: np.ndarray, bits: int = 16) -> int:
    """64-bit words that code ``values`` (one stream, in C-order) with the chip's run-length code."""
    return -(-rlc_pairs(np.ascontiguousarray(values).ravel() != 0) // rlc_pairs_per_word(bits))


def rlc_expected_ratio(density: float, bits: int) -> float:
    """Expected stored bits / raw bits of a long i.i.d. stream with the given non-zero density.

    A pair covers min(zeros before the next non-zero, 31) + 1 values; the expected number of
    those zeros is the sum over k = 1..31 of P(at least k zeros) = (1 - d)^k.
    """
    zeros = sum((1.0 - density) ** k for k in range(1, RLC_MAX_RUN + 1))
    return RLC_WORD_BITS / (rlc_pairs_per_word(bits) * (1.0 + zeros) * bits)


def sigmap_ratio(density: float, bits: int) -> float:
    """Significance map: one bit per value, plus the width of each non-zero value."""
    return (1.0 + density * bits) / bits


def dram_ratio(scheme: str, density: float, bits: int, rlc_words_measured: int | None = None,
               values: int | None = None) -> float:
    """Stored bits / raw bits of an fmap in DRAM; exact from measured RLC words when given."""
    if scheme == "none":
        return 1.0
    if scheme == "sigmap":
        return sigmap_ratio(density, bits)
    if rlc_words_measured is not None and values:
        return rlc_words_measured * RLC_WORD_BITS / (values * bits)
    return rlc_expected_ratio(density, bits)
