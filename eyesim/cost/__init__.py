"""The cost model: a layer's access counts weighed into energy and time, with its zeros and compression.

``counts`` (specs as the kernels' vectors, a layer's counts), ``energy`` (per-access costs), ``breakdown``
(energy by level and data type), ``timing`` (cycles and latency), ``zeros`` (densities and their effects),
``compression`` (stored sizes in DRAM), ``values`` and ``samples`` (zeros counted from real values).
"""
