"""The kernels the rest of eyesim calls, each with its one signature, and the fingerprint of their sources.

One table serves both the ahead-of-time build (``aot_build``) and the loader (``kernels``): a kernel is named
with the module that defines it, its argument kinds and its return type. Imports no Numba.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
# the modules whose source the compiled kernels are built from: a change in any of them makes a build stale
SOURCES = ("indices", "geometry", "legality", "counts", "search", "runs")
# argument kinds: Numba's type for the build, NumPy's dtype and dimensions for the loader (None: a scalar)
KINDS = {
    "i": ("int64", np.int64, None),
    "f": ("float64", np.float64, None),
    "i1": ("int64[::1]", np.int64, 1),
    "i3": ("int64[:, :, ::1]", np.int64, 3),
    "f1": ("float64[::1]", np.float64, 1),
    "f2": ("float64[:, ::1]", np.float64, 2),
    "b1": ("boolean[::1]", np.bool_, 1),
}
# name: (module, argument kinds, return type)
EXPORTS = {
    "search_layer": ("search", ("i1", "i1", "i1", "i", "f2", "f", "f1"), "Tuple((int64[::1], float64, int64))"),
    "first_violation": ("legality", ("i1", "i1", "i1"), "int64"),
    "strip_rows_table": ("geometry", ("i1",), "int64[::1]"),
    "used_cols": ("geometry", ("i1",), "int64"),
    "distinct_offsets": ("geometry", ("i", "i", "i", "i"), "int64"),
    "count_accesses": ("counts", ("i1", "i1", "i1", "i1", "i", "i3"), "int64"),
    "rlc_pairs": ("runs", ("b1", "i"), "int64"),
    "rlc_expected_pairs": ("runs", ("f", "i", "i1"), "float64"),
}


def signature(name: str) -> str:
    """Numba's signature text of an exported kernel, e.g. ``int64(int64[::1])``."""
    _, args, result = EXPORTS[name]
    return f"{result}({', '.join(KINDS[kind][0] for kind in args)})"


def source_hash() -> int:
    """A 60-bit fingerprint of the kernels' sources and export table (fits an int64 constant in the build)."""
    digest = hashlib.sha256(repr(sorted(EXPORTS.items())).encode())
    for module in SOURCES:
        digest.update((HERE / f"{module}.py").read_bytes())
    return int(digest.hexdigest()[:15], 16)
