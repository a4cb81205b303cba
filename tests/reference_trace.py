"""Slow, obviously-correct reference: walk a mapping's loop nest MAC by MAC and count every word moved.

Used only by tests. It follows the dataflow literally (DESIGN.md, "Counting"):
- tile loops: groups, n-chunks, m-chunks, strips of e ofmap rows, channel chunks of q*r,
  then one processing pass per filter chunk of p*t;
- in a pass, PE set (ti, ri) holds filters ti*p.. and channels ri*q..; PE (i, j) of a set
  holds filter row i and computes ofmap row j of the strip for the pass's images.
Every count is a number of distinct things a pass or block touches, or a per-MAC tally. Each pass's
work (``eyesim.cost.timing.PassWork``) is read off the same walk: the busiest PE's MACs and the
distinct weights, ifmap values and psums the pass moves.
"""

from __future__ import annotations

from collections import Counter, defaultdict

import numpy as np

from eyesim.cost.timing import PassWork

DRAM, GLB, ARRAY, RF = range(4)
WEIGHTS, IFMAP, PSUM = range(3)
READ, WRITE = range(2)


def chunks(start: int, stop: int, size: int) -> list[range]:
    return [range(a, min(a + size, stop)) for a in range(start, stop, size)]


def trace_counts(shape: dict, mapping: dict, stage_filters: bool = False, x: np.ndarray | None = None,
                 w: np.ndarray | None = None, gate_psums: bool = False,
                 passes: list | None = None, slice_width: int | None = None,
                 slice_height: int | None = None) -> tuple[np.ndarray, int, int, int]:
    """Counts [level, type, rw], MACs, executed MACs and compute cycles of ``shape`` under ``mapping``.

    With values (``x``: padded ifmap (N, G*C, H, W); ``w``: (G*M, C, R, S)) the walk zero-gates as the
    chip does: a zero ifmap value skips its filter RF read, and a MAC runs only if both operands are
    non-zero; with ``gate_psums`` a zero ifmap value also skips the psum RF read and write of its MAC,
    unless that MAC starts the psum in its PE (it has none to skip). A pass lasts as many cycles as its
    busiest PE has MACs (dense: gating saves no time). ``passes``, if given, receives each pass's PassWork.
    With ``slice_width`` s (a divisor of S) and ``slice_height`` h (a divisor of R) the filter runs as
    k = (R/h)(S/s) slices, an explicit loop over the ORIGINAL layer: run channel cc is slice j = cc % k of
    channel c = cc // k, (a, b) = divmod(j, S/s), its rows a*h.. a*h+h-1 and taps b*s.. b*s+s-1; PE row i of a
    set holds the slice's row i (filter row a*h + i). Each slice reads its own window of the ifmap (an element
    is (cc, h, col): overlapping rows and columns are read again).
    """
    N, G, C, M = shape["N"], shape["G"], shape["C"], shape["M"]
    R, S, E, F = shape["R"], shape["S"], shape["E"], shape["F"]
    U, Uw, Dh, Dw = shape["U"], shape["Uw"], shape["Dh"], shape["Dw"]
    m, n, e, p, q, r, t = (mapping[k] for k in "mnepqrt")
    width = S if slice_width is None else slice_width
    height = R if slice_height is None else slice_height
    across = S // width
    assert across * width == S and (R // height) * height == R, "a slice divides the filter"
    slices = (R // height) * across
    C_run = C * slices  # channels as run: the slices of a filter accumulate like extra channels
    counts = np.zeros((4, 3, 2), dtype=np.int64)
    macs = executed = cycles = 0
    for g in range(G):
        for imgs in chunks(0, N, n):
            for mchunk in chunks(0, M, m):
                for ys in chunks(0, E, e):
                    for cs_all in chunks(0, C_run, q * r):
                        block_ifmap = set()
                        first_c, last_c = cs_all.start == 0, cs_all.stop == C_run
                        for fs_all in chunks(mchunk.start, mchunk.stop, p * t):
                            pass_ifmap, pass_weights = set(), set()
                            pe_ifmap, pe_weights = set(), set()
                            in_pe = Counter()
                            skipped = Counter()  # gated MACs whose psum RF read and write are skipped
                            contributors = defaultdict(set)
                            pe_macs = Counter()
                            for ti, fs in enumerate(chunks(fs_all.start, fs_all.stop, p)):
                                for ri, cs in enumerate(chunks(cs_all.start, cs_all.stop, q)):
                                    for i in range(height):
                                        for j, y in enumerate(ys):
                                            pe = (ti, ri, i, j)
                                            for img in imgs:
                                                for f in fs:
                                                    for cc in cs:
                                                        c, sl = divmod(cc, slices)
                                                        down, over = divmod(sl, across)
                                                        row = down * height + i  # the filter row, as given
                                                        for xo in range(F):
                                                            for s in range(over * width, (over + 1) * width):
                                                                h, col = y * U + row * Dh, xo * Uw + s * Dw
                                                                a = 1 if x is None else x[img, g * C + c, h, col]
                                                                b = 1 if w is None else w[g * M + f, c, row, s]
                                                                macs += 1
                                                                pe_macs[pe] += 1
                                                                executed += a != 0 and b != 0
                                                                counts[RF, WEIGHTS, READ] += a != 0
                                                                counts[RF, IFMAP, READ] += 1
                                                                pe_ifmap.add((pe, img, cc, h, col))
                                                                pass_ifmap.add((img, cc, h, col))
                                                                pe_weights.add((pe, f, c, row, s))
                                                                pass_weights.add((f, c, row, s))
                                                                key = (pe, img, f, y, xo)
                                                                if gate_psums and a == 0 and key in in_pe:
                                                                    skipped[key] += 1
                                                                in_pe[key] += 1
                                                                contributors[(img, f, y, xo)].add(pe)
                            cycles += max(pe_macs.values())
                            block_ifmap |= pass_ifmap
                            counts[GLB, IFMAP, READ] += len(pass_ifmap)
                            counts[ARRAY, IFMAP, READ] += len(pe_ifmap)
                            counts[DRAM, WEIGHTS, READ] += len(pass_weights)
                            if stage_filters:
                                counts[GLB, WEIGHTS, READ] += len(pass_weights)
                            counts[ARRAY, WEIGHTS, READ] += len(pe_weights)
                            for key, k in in_pe.items():  # the first MAC into a psum starts it
                                counts[RF, PSUM, READ] += k - 1 - skipped[key]
                                counts[RF, PSUM, WRITE] += k - 1 - skipped[key]
                            if passes is not None:
                                passes.append(PassWork(
                                    compute=max(pe_macs.values()), filter_words=len(pass_weights),
                                    ifmap_words=len(pass_ifmap),
                                    psum_in_words=0 if first_c else len(contributors),
                                    psum_out_words=len(contributors),
                                    busiest_filters=max(len(fs) for fs in chunks(fs_all.start, fs_all.stop, p)),
                                    chain=max(len(pes) for pes in contributors.values()),
                                    last_psums=len({(f, y) for (_, f, y, _) in contributors})))
                            for pes in contributors.values():
                                counts[ARRAY, PSUM, READ] += len(pes) - 1  # accumulated PE to PE
                                if not first_c:
                                    counts[GLB, PSUM, READ] += 1  # earlier channels' psum comes back
                                if last_c:
                                    counts[DRAM, PSUM, WRITE] += 1
                                else:
                                    counts[GLB, PSUM, WRITE] += 1
                        counts[DRAM, IFMAP, READ] += len(block_ifmap)
    return counts, macs, executed, cycles
