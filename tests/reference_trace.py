"""Slow, obviously-correct reference: walk a mapping's loop nest MAC by MAC and count every word moved.

Used only by tests. It follows the dataflow literally (DESIGN.md, "Counting"):
- tile loops: groups, n-chunks, m-chunks, strips of e ofmap rows, channel chunks of q*r,
  then one processing pass per filter chunk of p*t;
- in a pass, PE set (ti, ri) holds filters ti*p.. and channels ri*q..; PE (i, j) of a set
  holds filter row i and computes ofmap row j of the strip for the pass's images.
Every count is a number of distinct things a pass or block touches, or a per-MAC tally.
"""

from __future__ import annotations

from collections import Counter, defaultdict

import numpy as np

DRAM, GLB, ARRAY, RF = range(4)
WEIGHTS, IFMAP, PSUM = range(3)
READ, WRITE = range(2)


def chunks(start: int, stop: int, size: int) -> list[range]:
    return [range(a, min(a + size, stop)) for a in range(start, stop, size)]


def trace_counts(shape: dict, mapping: dict, stage_filters: bool = False) -> tuple[np.ndarray, int]:
    """Counts [level, type, rw] and MACs of the layer ``shape`` (DESIGN notation) under ``mapping``."""
    N, G, C, M = shape["N"], shape["G"], shape["C"], shape["M"]
    R, S, E, F = shape["R"], shape["S"], shape["E"], shape["F"]
    U, Uw, Dh, Dw = shape["U"], shape["Uw"], shape["Dh"], shape["Dw"]
    m, n, e, p, q, r, t = (mapping[k] for k in "mnepqrt")
    counts = np.zeros((4, 3, 2), dtype=np.int64)
    macs = 0
    for _g in range(G):
        for imgs in chunks(0, N, n):
            for mchunk in chunks(0, M, m):
                for ys in chunks(0, E, e):
                    for cs_all in chunks(0, C, q * r):
                        block_ifmap = set()
                        first_c, last_c = cs_all.start == 0, cs_all.stop == C
                        for fs_all in chunks(mchunk.start, mchunk.stop, p * t):
                            pass_ifmap, pass_weights = set(), set()
                            pe_ifmap, pe_weights = set(), set()
                            in_pe = Counter()
                            contributors = defaultdict(set)
                            for ti, fs in enumerate(chunks(fs_all.start, fs_all.stop, p)):
                                for ri, cs in enumerate(chunks(cs_all.start, cs_all.stop, q)):
                                    for i in range(R):
                                        for j, y in enumerate(ys):
                                            pe = (ti, ri, i, j)
                                            for img in imgs:
                                                for f in fs:
                                                    for c in cs:
                                                        for x in range(F):
                                                            for s in range(S):
                                                                h, w = y * U + i * Dh, x * Uw + s * Dw
                                                                macs += 1
                                                                counts[RF, WEIGHTS, READ] += 1
                                                                counts[RF, IFMAP, READ] += 1
                                                                pe_ifmap.add((pe, img, c, h, w))
                                                                pass_ifmap.add((img, c, h, w))
                                                                pe_weights.add((pe, f, c, i, s))
                                                                pass_weights.add((f, c, i, s))
                                                                in_pe[(pe, img, f, y, x)] += 1
                                                                contributors[(img, f, y, x)].add(pe)
                            block_ifmap |= pass_ifmap
                            counts[GLB, IFMAP, READ] += len(pass_ifmap)
                            counts[ARRAY, IFMAP, READ] += len(pe_ifmap)
                            counts[DRAM, WEIGHTS, READ] += len(pass_weights)
                            if stage_filters:
                                counts[GLB, WEIGHTS, READ] += len(pass_weights)
                            counts[ARRAY, WEIGHTS, READ] += len(pe_weights)
                            for k in in_pe.values():  # the first MAC into a psum starts it
                                counts[RF, PSUM, READ] += k - 1
                                counts[RF, PSUM, WRITE] += k - 1
                            for pes in contributors.values():
                                counts[ARRAY, PSUM, READ] += len(pes) - 1  # accumulated PE to PE
                                if not first_c:
                                    counts[GLB, PSUM, READ] += 1  # earlier channels' psum comes back
                                if last_c:
                                    counts[DRAM, PSUM, WRITE] += 1
                                else:
                                    counts[GLB, PSUM, WRITE] += 1
                        counts[DRAM, IFMAP, READ] += len(block_ifmap)
    return counts, macs
