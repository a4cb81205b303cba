"""Reuse of searched optima across configurations of a sweep, where they provably are the optimum again."""

from __future__ import annotations

import struct
from typing import Any

import numpy as np

from eyesim import dataflow as df
from eyesim.estimator import Target
from eyesim.mapping import Mapping
from eyesim.sweep.grid import Number

_CAPACITY = np.array([df.HW_ROWS, df.HW_COLS, df.HW_RF_BITS, df.HW_RF_FILTER, df.HW_RF_IFMAP, df.HW_RF_PSUM,
                      df.HW_GLB_BITS])
_CAPACITY_FIELDS = ("array.", "rf.", "glb.size_kb", "glb.filter_kb")  # enter the search through _CAPACITY only
_TIME_ONLY_FIELDS = ("name", "clock_mhz", "dram.", "energy.pj_per_unit", "energy.provenance.")  # not the search
_PURE_CAPACITY_FIELDS = ("array.", "rf.", "glb.size_kb")  # only decide legality: not in a mapping's result
_CANDIDATES = 4
_RESULTS = 20_000  # layer results kept (a few kB each)  # dominating entries tried before a full search


class ReuseMemo:
    """Searched optima, reused where they provably are the optimum again.

    The energy of a mapping depends on the layer, the costs, the bit widths, the zero effects and
    whether the GLB stages filters, never on the capacities (array size, RF, GLB), which only decide
    which mappings are legal; and a larger capacity never makes a legal mapping illegal. So if
    configuration A has every capacity >= B's and all else that enters the search equal, B's
    mappings are a subset of A's, and A's optimum, when legal on B, is B's optimum (same energy,
    same tie-break). Equal capacities are the exact case (e.g. configurations that differ only in
    clock or DRAM link, which enter the time but not the search).
    """

    def __init__(self, limit: int = 500_000) -> None:
        self._limit = limit
        self._size = 0
        self.hits = 0  # lookups answered
        self._entries: dict[bytes, _Entries] = {}
        self._results: dict[bytes, Any] = {}  # whole layer results, by layer, mapping and all but capacities

    def clear(self) -> None:
        self._entries.clear()
        self._results.clear()
        self._size = 0

    @staticmethod
    def result_context(context: tuple[bytes, np.ndarray], overrides: dict[str, Number]) -> bytes:
        """What a layer's result depends on besides its mapping: the search's context and the fields that
        enter the time (clock, DRAM link, GLB filter staging), never the pure capacities."""
        timed = sorted((p, v) for p, v in overrides.items() if not p.startswith(_PURE_CAPACITY_FIELDS))
        return context[0] + b"\0" + repr(timed).encode()

    def layer_result(self, context: bytes, layer: bytes, mapping: Mapping) -> tuple[Any, dict] | None:
        """The layer's whole result under ``mapping`` and its row when they were kept for this context (else None)."""
        return self._results.get(context + layer + mapping.vector().tobytes())

    def keep(self, context: bytes, layer: bytes, result: Any, row: dict) -> None:
        """Keep a layer's result and row for configurations that differ from this one in pure capacities only (at
        most ``_RESULTS`` of them: a grid over clocks makes a new context per configuration, and memory must not
        grow). The row depends on the hardware only through fields in the context (DRAM compression schemes,
        ``energy.pj_per_unit``)."""
        if len(self._results) >= _RESULTS:
            self._results.clear()
        self._results[context + layer + result.mapping.vector().tobytes()] = result, row

    @staticmethod
    def context(target: Target, overrides: dict[str, Number]) -> tuple[bytes, np.ndarray]:
        """What must be equal for reuse, and the capacities. Within one job only the overrides change the
        hardware; all of them but the capacities and the time-only fields are part of the context."""
        rest = target.vec.copy()
        rest[_CAPACITY] = 0
        search = sorted((p, v) for p, v in overrides.items() if not p.startswith(_CAPACITY_FIELDS + _TIME_ONLY_FIELDS))
        extra = repr(search).encode()
        return rest.tobytes() + target.cost.tobytes() + struct.pack("d", target.mac_cost) + extra, target.vec[_CAPACITY]

    def lookup(self, context: tuple[bytes, np.ndarray], layer: bytes, lv: np.ndarray,
               hw_vec: np.ndarray) -> Mapping | None:
        """The optimum of the layer (``layer``: its key) on this hardware if a stored one provably is it."""
        entry = self._entries.get(context[0] + layer)
        if entry is None:
            return None
        for at in entry.tightest_above(context[1]):
            if df.first_violation(lv, hw_vec, entry.vectors[at]) == df.OK:
                self.hits += 1
                return entry.mappings[at]
        return None

    def record(self, context: tuple[bytes, np.ndarray], layer: bytes, mapping: Mapping) -> None:
        if self._size >= self._limit:
            self.clear()
        self._entries.setdefault(context[0] + layer, _Entries()).add(context[1], mapping)
        self._size += 1


class _Entries:
    """The optima stored for one layer and context: capacity vectors (a growing array) and mappings."""

    def __init__(self) -> None:
        self.caps = np.empty((4, len(_CAPACITY)), dtype=np.int64)
        self.count = 0
        self.vectors: list[np.ndarray] = []
        self.mappings: list[Mapping] = []

    def add(self, caps: np.ndarray, mapping: Mapping) -> None:
        if self.count == len(self.caps):
            self.caps = np.concatenate([self.caps, np.empty_like(self.caps)])
        self.caps[self.count] = caps
        self.count += 1
        self.vectors.append(mapping.vector())
        self.mappings.append(mapping)

    def tightest_above(self, caps: np.ndarray) -> np.ndarray:
        """Up to _CANDIDATES entries whose capacities are all >= ``caps``, the closest first."""
        stored = self.caps[: self.count]
        above = np.flatnonzero((stored >= caps).all(axis=1))
        if len(above) > _CANDIDATES:
            excess = (stored[above] / np.maximum(caps, 1)).sum(axis=1)
            above = above[np.argsort(excess, kind="stable")[:_CANDIDATES]]
        return above


_MEMOS: dict[str, ReuseMemo] = {}  # per process, for one job at a time: kept across its chunks


def memo_for(token: str) -> ReuseMemo:
    """The memo of the job ``token`` in this process (a new job's replaces the last one's)."""
    if token not in _MEMOS:
        _MEMOS.clear()
        _MEMOS[token] = ReuseMemo()
    return _MEMOS[token]


def clear_reuse_memo() -> None:
    """Forget every stored search result of this process (benchmarks call this between runs)."""
    _MEMOS.clear()
