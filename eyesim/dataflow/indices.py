"""The kernels' vocabulary: indices into their int64 vectors and counts array, and the constraint codes.

A layer is a vector indexed by ``L_*`` (one group; the caller multiplies by G), the hardware one
indexed by ``HW_*`` (capacities in bits), a mapping the vector (m, n, e, p, q, r, t).
"""

from __future__ import annotations

# layer vector (per group)
L_N, L_C, L_M, L_H, L_W, L_R, L_S, L_E, L_F, L_U, L_UW, L_DH, L_DW = range(13)

# hardware vector; capacities in bits
HW_ROWS, HW_COLS, HW_RF_UNIFIED, HW_RF_BITS, HW_RF_FILTER, HW_RF_IFMAP, HW_RF_PSUM = range(7)
HW_GLB_BITS, HW_STAGE_FILTERS, HW_BITS_W, HW_BITS_I, HW_BITS_P = range(7, 12)
HW_LEN = 12

# mapping vector, in this order
MAPPING_KEYS = ("m", "n", "e", "p", "q", "r", "t")

# counts array: [level, data type, read/write]
DRAM, GLB, ARRAY, RF = range(4)
WEIGHTS, IFMAP, PSUM = range(3)
READ, WRITE = range(2)

# constraint codes returned by first_violation (0 = legal); their messages are in eyesim/mapping.py
OK, BAD_N, BAD_E, BAD_QR, BAD_PT, BAD_M_MULTIPLE = range(6)
BAD_RF_FILTER, BAD_RF_IFMAP, BAD_RF_PSUM, BAD_RF_UNIFIED, BAD_ARRAY, BAD_GLB = range(6, 12)
