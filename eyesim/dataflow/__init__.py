"""Dataflow: the row-stationary kernels. NumPy arrays and integers in, arrays and numbers out (Numba).

``indices`` (what the vectors hold), ``geometry`` (ifmap rows and columns a strip needs), ``legality``
(the constraints), ``counts`` (accesses at every level), ``search`` (the least-energy mapping), ``runs`` (zero
runs of a stream, counted or expected). They import nothing of the rest of eyesim. ``exports`` names the kernels
the rest of eyesim calls; ``kernels`` loads them, compiled ahead of time at install (``aot_build``) or else by
Numba's JIT, whose compiled code ``cache`` keeps in the user's cache folder. The names below are those kernels;
any other kernel (``dataflow.count_channel_level``, ...) loads its JIT module on first use.
"""

import importlib

from eyesim.dataflow.indices import *  # every index and constraint code
from eyesim.dataflow.kernels import KERNELS

count_accesses = KERNELS["count_accesses"]
distinct_offsets = KERNELS["distinct_offsets"]
first_violation = KERNELS["first_violation"]
rlc_expected_pairs = KERNELS["rlc_expected_pairs"]
rlc_pairs = KERNELS["rlc_pairs"]
search_layer = KERNELS["search_layer"]
strip_rows_table = KERNELS["strip_rows_table"]
used_cols = KERNELS["used_cols"]
_JIT_ONLY = {"ceil_div": "geometry", "rows_over_strips": "geometry", "count_channel_level": "counts",
             "count_pass_level": "counts", "count_tile_level": "counts", "glb_bits_used": "legality",
             "rf_violation": "legality", "sets_that_fit": "legality", "best_m": "search", "mapping_energy": "search",
             "part_energy": "search"}


def __getattr__(name: str):
    if name in _JIT_ONLY:
        return getattr(importlib.import_module(f"eyesim.dataflow.{_JIT_ONLY[name]}"), name)
    raise AttributeError(f"module 'eyesim.dataflow' has no attribute {name!r}")
