"""Stored sizes in DRAM: the chip's run-length code and a significance map, counted from values or expected."""

from __future__ import annotations

import numpy as np

from eyesim import dataflow as df

RLC_RUN_BITS = 5  # a run of up to 31 zeros
RLC_MAX_RUN = 2**RLC_RUN_BITS - 1
RLC_WORD_BITS = 64  # pairs pack into 64-bit words whose last bit marks the final word


def rlc_pairs_per_word(bits: int) -> int:
    """(run, value) pairs in one 64-bit word: three for 16-bit values, as on the chip."""
    return (RLC_WORD_BITS - 1) // (RLC_RUN_BITS + bits)


def rlc_words(values: np.ndarray, bits: int = 16) -> int:
    """64-bit words that code ``values`` (one stream, in C-order) with the chip's run-length code."""
    return -(-df.rlc_pairs(np.ascontiguousarray(values).ravel() != 0, RLC_MAX_RUN) // rlc_pairs_per_word(bits))


def rlc_expected_ratio(density: float, bits: int) -> float:
    """Expected stored bits / raw bits of a long i.i.d. stream with the given non-zero density.

    A pair covers min(zeros before the next non-zero, 31) + 1 values; the expected number of
    those zeros is the sum over k = 1..31 of P(at least k zeros) = (1 - d)^k.
    """
    zeros = sum((1.0 - density) ** k for k in range(1, RLC_MAX_RUN + 1))
    return RLC_WORD_BITS / (rlc_pairs_per_word(bits) * (1.0 + zeros) * bits)


class Planes(tuple):
    """The stream one image's tensor is coded as: ``planes`` planes of ``height`` x ``width`` values (non-zero
    with probability d, independently), each framed by zero padding ``pads`` (top, bottom, left, right).

    An immutable tuple (planes, height, width, top, bottom, left, right), so it can key a cache.
    """

    __slots__ = ()

    def __new__(cls, planes: int, height: int, width: int, pads: tuple[int, int, int, int] = (0, 0, 0, 0)):
        return super().__new__(cls, (int(planes), int(height), int(width), *(int(p) for p in pads)))

    planes = property(lambda self: self[0])
    height = property(lambda self: self[1])
    width = property(lambda self: self[2])
    pads = property(lambda self: self[3:])

    @property
    def values(self) -> int:
        """Values in the stream, padding included."""
        top, bottom, left, right = self.pads
        return self.planes * (top + self.height + bottom) * (left + self.width + right)

    @property
    def interior(self) -> int:
        return self.planes * self.height * self.width


_PAIRS: dict[tuple[float, Planes], float] = {}  # expected pairs already worked out (estimates repeat shapes)


def rlc_expected_pairs(density: float, stream: Planes) -> float:
    """Expected (run, value) pairs that code ``stream``, padding included (``dataflow.rlc_expected_pairs``: the
    coder's state, the run length, is a Markov chain over the values; the same bits on every CPU)."""
    key = (float(density), stream)
    if key not in _PAIRS:
        if len(_PAIRS) >= 4096:
            _PAIRS.clear()
        _PAIRS[key] = df.rlc_expected_pairs(key[0], RLC_MAX_RUN, np.array(stream, dtype=np.int64))
    return _PAIRS[key]


def rlc_stream_ratio(density: float, bits: int, stream: Planes) -> float:
    """Expected stored bits / raw bits of ``stream`` (padding counts as stored values)."""
    words = rlc_expected_pairs(float(density), stream) / rlc_pairs_per_word(bits)
    return words * RLC_WORD_BITS / (stream.values * bits)


def sigmap_ratio(density: float, bits: int) -> float:
    """Significance map: one bit per value, plus the width of each non-zero value."""
    return (1.0 + density * bits) / bits


def dram_ratio(scheme: str, density: float, bits: int, stream: Planes) -> float:
    """Expected stored bits / raw bits of a tensor in DRAM whose interior values have non-zero density d.

    The raw bits count every value of ``stream``, padding included, and so do the stored ones.
    """
    if scheme == "none":
        return 1.0
    if scheme == "sigmap":
        return sigmap_ratio(density * stream.interior / stream.values, bits)
    return rlc_stream_ratio(density, bits, stream)


def measured_ratio(scheme: str, bits: int, rlc_words_counted: int, values: int, nonzero: int) -> float:
    """Stored bits / raw bits of values counted exactly: ``values`` in all, ``nonzero`` of them, coded
    in ``rlc_words_counted`` 64-bit words."""
    if scheme == "none" or values == 0:
        return 1.0
    if scheme == "sigmap":
        return sigmap_ratio(nonzero / values, bits)
    return rlc_words_counted * RLC_WORD_BITS / (values * bits)
