"""Dataflow: the row-stationary kernels. NumPy arrays and integers in, arrays and numbers out (Numba).

``indices`` (what the vectors hold), ``geometry`` (ifmap rows and columns a strip needs), ``legality``
(the constraints), ``counts`` (accesses at every level), ``search`` (the least-energy mapping). They
import nothing of the rest of eyesim; ``eyesim.cost.counts`` turns specs into their vectors. ``cache`` (imported
first: before any kernel is decorated) keeps their compiled code in the user's cache folder, not in the package.
"""

from eyesim.dataflow import cache  # first: Numba picks a kernel's cache folder when the kernel is decorated
from eyesim.dataflow.counts import count_accesses, count_channel_level, count_pass_level, count_tile_level
from eyesim.dataflow.geometry import ceil_div, distinct_offsets, rows_over_strips, strip_rows_table, used_cols
from eyesim.dataflow.indices import *  # every index and constraint code
from eyesim.dataflow.legality import first_violation, glb_bits_used, rf_violation, sets_that_fit
from eyesim.dataflow.search import best_m, mapping_energy, part_energy, search_layer
