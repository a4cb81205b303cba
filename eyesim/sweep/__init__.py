"""Sweep: estimate a model on a grid of hardware configurations, serially, on local processes or on Dask.

A grid is a list of axes; each axis sets one or more hardware fields (by dotted path) or the batch
size. Every configuration is estimated with the ordinary estimate (``eyesim.estimate``); a layer's
search result is reused across configurations that cannot change it (``reuse``). Results are
one row per (configuration, layer) plus a ``TOTAL`` row, written to Parquet or CSV in chunks that
are complete or absent, so a sweep can be killed and resumed. Spec and file format: docs/sweep.md.

Modules, in the order a sweep uses them: ``grid`` (the configurations), ``job`` (what a worker evaluates),
``reuse`` (search results kept across configurations), ``runners`` (serial, processes, Dask), ``sink`` and
``output`` (the output file), ``run`` (all of it together).
"""

from eyesim.sweep.grid import Axis, Grid, load_spec, make_axis, parse_vary
from eyesim.sweep.job import Chunk, SweepJob, evaluate_chunk, evaluate_rows, make_job
from eyesim.sweep.output import OK_STATUS, TOTAL, config_columns, output_format, read_sweep, read_table
from eyesim.sweep.reuse import ReuseMemo, clear_reuse_memo
from eyesim.sweep.run import SweepSummary, run_sweep
