"""Mapping search: the exhaustive minimum-energy RS mapping of one layer (Numba kernel).

The objective is the layer's energy summed in three parts, one per loop level of the search
(pass level: e, p, t; channel level: q, r; tile level: n, m); see the project's DESIGN.md,
"Search". The search is a branch and bound over every legal (m, n, e, p, q, r, t) ("Constraints")
that returns exactly what a brute-force scan returns: the least energy, ties going to the
lexicographically smallest (m, n, e, p, q, r, t). Points are skipped only when provably unable
to win:
- a branch whose lower bound already exceeds the best energy found;
- for given (n, e, p, q, r, t), every m but the smallest one reaching the fewest m-chunks;
- points whose n, q or r can be lowered by one without changing any count nor raising the
  channel-level energy (the lower one fits wherever the higher one does, and wins the tie);
- the rest of a p, r or q loop once a bound that only grows along the loop exceeds the best
  (the pass part as p falls; the least channel part over q' <= q, r' <= r as r or q falls);
- q*r above the GLB cap for n = 1 (no n fits there).
The strip height runs e = 1, E, 2, E - 1, ... so that a good energy is found early. The small kernels the
search calls ~10^4 times are inlined (``inline="always"``, also in counts and geometry): 1.6x faster searches.

``psum_extra`` (per q; empty for none) is channel-level energy that depends on q itself rather than on
the chunk counts: exact psum gating (the cost package's ``energy.psum_extra``). Always an array, so each
kernel has one signature (compiled once, and exportable ahead of time).
"""

from __future__ import annotations

import numpy as np
from numba import njit

import eyesim.dataflow.cache  # noqa: F401 - before @njit: the kernels' cache folder (not the installed package)
from eyesim.dataflow import indices as ix
from eyesim.dataflow.counts import count_channel_level, count_pass_level, count_tile_level
from eyesim.dataflow.geometry import ceil_div, rows_over_strips
from eyesim.dataflow.legality import rf_violation, sets_that_fit

ONE = np.int64(1)  # passed for a constant 1: a literal 1 would compile the callee a second time, typed Literal[int]


@njit(cache=True, inline="always")
def part_energy(counts, cost) -> float:
    """Energy of the words in ``counts[level, type, rw]`` (entries of other parts are zero)."""
    total = 0.0
    for lv in range(counts.shape[0]):
        for ty in range(counts.shape[1]):
            total += (counts[lv, ty, 0] + counts[lv, ty, 1]) * cost[lv, ty]
    return total


@njit(cache=True, inline="always")
def _pass_energy(layer, rows_total, cols, p, t, cost, mac_cost, scratch) -> float:
    M = layer[ix.L_M]
    scratch[:] = 0
    macs = count_pass_level(layer, rows_total, cols, ceil_div(M, p * t), ceil_div(M, p), scratch)
    return macs * mac_cost + part_energy(scratch, cost)


@njit(cache=True, inline="always")
def _channel_energy(layer, q, r, cost, scratch, psum_extra) -> float:
    C = layer[ix.L_C]
    scratch[:] = 0
    count_channel_level(layer, ceil_div(C, q * r), ceil_div(C, q), scratch)
    if psum_extra.size == 0:
        return part_energy(scratch, cost)
    return part_energy(scratch, cost) + psum_extra[q]


@njit(cache=True, inline="always")
def _tile_energy(layer, hw, e, rows_total, cols, n, m, cost, scratch) -> float:
    scratch[:] = 0
    count_tile_level(layer, hw, ceil_div(layer[ix.L_E], e), rows_total, cols, ceil_div(layer[ix.L_N], n),
                     ceil_div(layer[ix.L_M], m), scratch)
    return part_energy(scratch, cost)


@njit(cache=True)
def mapping_energy(layer, hw, mp, rows_table, cols, cost, mac_cost, psum_extra) -> float:
    """The search's objective for one mapping of one group, summed exactly as the search sums it."""
    m, n, e, p, q, r, t = mp[0], mp[1], mp[2], mp[3], mp[4], mp[5], mp[6]
    scratch = np.zeros((4, 3, 2), dtype=np.int64)
    rows_total = rows_over_strips(layer, rows_table, e)
    upper = _pass_energy(layer, rows_total, cols, p, t, cost, mac_cost, scratch) + _channel_energy(
        layer, q, r, cost, scratch, psum_extra)
    return upper + _tile_energy(layer, hw, e, rows_total, cols, n, m, cost, scratch)


@njit(cache=True, inline="always")
def best_m(n, e, pt, qr, layer, rows_e, cols, hw) -> int:
    """Smallest m among those reaching the fewest m-chunks that fit the GLB; 0 if none fits."""
    M = layer[ix.L_M]
    room = hw[ix.HW_GLB_BITS] - n * qr * rows_e * cols * hw[ix.HW_BITS_I]
    if room < 0:
        return 0
    m_cap = room // (n * e * layer[ix.L_F] * hw[ix.HW_BITS_P])
    if m_cap >= M:
        return M
    m_hi = (m_cap // pt) * pt
    if m_hi < pt:
        return 0
    chunks = ceil_div(M, m_hi)
    return ceil_div(ceil_div(M, chunks), pt) * pt


@njit(cache=True)
def _tile_bound(layer, hw, e, pt, rows_e, rows_total, cols, cost, scratch) -> float:
    """Least tile-level energy any (n, m) reaches with the smallest ifmap strip (q*r = 1); inf if none fits."""
    N = layer[ix.L_N]
    lowest = np.inf
    for n in range(1, N + 1):
        if _lowering_keeps_counts(N, n):
            continue
        m = best_m(n, e, pt, ONE, layer, rows_e, cols, hw)
        if m == 0:
            break
        lowest = min(lowest, _tile_energy(layer, hw, e, rows_total, cols, n, m, cost, scratch))
    return lowest


@njit(cache=True)
def _fit_cap(layer, hw, e, pt, rows_e, cols) -> int:
    """Largest q*r (<= C) whose ifmap strip still leaves n = 1 a legal m in the GLB; 0 if none.

    best_m(1, ..., qr) > 0 is monotone in qr (more ifmap leaves less room), so a bisection finds
    the edge, and a larger n leaves even less room: no q*r above the cap fits any n.
    """
    lo, hi = 0, layer[ix.L_C]
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if best_m(ONE, e, pt, mid, layer, rows_e, cols, hw) > 0:
            lo = mid
        else:
            hi = mid - 1
    return lo


@njit(cache=True, inline="always")
def _key_less(energy, mp, best_energy, best):
    """Order of candidates: energy, then (m, n, e, p, q, r, t) lexicographically."""
    if energy != best_energy:
        return energy < best_energy
    for i in range(7):
        if mp[i] != best[i]:
            return mp[i] < best[i]
    return False


@njit(cache=True, inline="always")
def _lowering_keeps_counts(total, k):
    """True if k - 1 splits ``total`` into as many chunks as k does (so k - 1 ties and wins)."""
    return k > 1 and ceil_div(total, k - 1) == ceil_div(total, k)


@njit(cache=True)
def _channel_tables(layer, hw, cost, scratch, psum_extra):
    """Channel-level energy for every (q, r), and its running minimum over q' <= q, r' <= r."""
    C, R, S = layer[ix.L_C], layer[ix.L_R], layer[ix.L_S]
    q_cap = 0
    while q_cap < C and rf_violation(ONE, q_cap + 1, S, hw) == ix.OK:
        q_cap += 1
    r_cap = min(C, hw[ix.HW_ROWS] * hw[ix.HW_COLS] // R)
    energy = np.full((q_cap + 1, r_cap + 1), np.inf)
    lowest = np.full((q_cap + 1, r_cap + 1), np.inf)
    for q in range(1, q_cap + 1):
        for r in range(1, min(r_cap, C // q) + 1):
            energy[q, r] = _channel_energy(layer, q, r, cost, scratch, psum_extra)
    for q in range(1, q_cap + 1):
        for r in range(1, r_cap + 1):
            lowest[q, r] = min(energy[q, r], lowest[q - 1, r], lowest[q, r - 1])
    return energy, lowest, q_cap


@njit(cache=True)
def search_layer(layer, hw, rows_table, cols, cost, mac_cost, psum_extra):
    """Exhaustive search of one group; returns (best mapping, its energy, mappings evaluated).

    The best mapping is all zeros (energy inf) when no mapping is legal.
    """
    N, C, M, E, R, S = layer[ix.L_N], layer[ix.L_C], layer[ix.L_M], layer[ix.L_E], layer[ix.L_R], layer[ix.L_S]
    best = np.zeros(7, dtype=np.int64)
    best_energy = np.inf
    mp = np.zeros(7, dtype=np.int64)
    scratch = np.zeros((4, 3, 2), dtype=np.int64)
    chan_energy, chan_lowest, q_cap = _channel_tables(layer, hw, cost, scratch, psum_extra)
    q_max_of_p = np.zeros(M + 1, dtype=np.int64)  # most channels a PE holding p filters fits
    for p in range(1, M + 1):
        q = q_cap if p == 1 else q_max_of_p[p - 1]
        while q > 0 and rf_violation(p, q, S, hw) != ix.OK:
            q -= 1
        q_max_of_p[p] = q
    tile_bounds = np.empty(M + 1)  # per p*t, for the current e
    fit_caps = np.empty(M + 1, dtype=np.int64)  # per p*t, for the current e
    evaluated = 0
    for i in range(E):  # e = 1, E, 2, E - 1, ...: the optimum is mostly near one end (a good bound early)
        e = E - i // 2 if i % 2 else 1 + i // 2
        n_sets = sets_that_fit(R, e, hw[ix.HW_ROWS], hw[ix.HW_COLS])
        rows_e = rows_table[e]
        rows_total = rows_over_strips(layer, rows_table, e)
        tile_floor = _tile_energy(layer, hw, e, rows_total, cols, N, M, cost, scratch)  # one n- and m-chunk
        tile_bounds[:] = -1.0
        fit_caps[:] = -1
        for t in range(min(n_sets, M), 0, -1):
            r_max = min(n_sets // t, C)
            chan_floor = chan_lowest[q_cap, r_max]  # q_max_of_p[p] <= q_cap for every p
            for p in range(M // t, 0, -1):
                q_max = q_max_of_p[p]
                if q_max == 0:
                    continue
                pt = p * t
                pass_e = _pass_energy(layer, rows_total, cols, p, t, cost, mac_cost, scratch)
                if (pass_e + chan_floor) + tile_floor > best_energy:
                    break  # a smaller p has no lower pass energy (ceil(M/(p*t)), ceil(M/p) grow)
                if (pass_e + chan_lowest[q_max, r_max]) + tile_floor > best_energy:
                    continue
                if tile_bounds[pt] < 0:
                    tile_bounds[pt] = _tile_bound(layer, hw, e, pt, rows_e, rows_total, cols, cost, scratch)
                tile_bound = tile_bounds[pt]
                if (pass_e + chan_lowest[q_max, r_max]) + tile_bound > best_energy:
                    continue
                if fit_caps[pt] < 0:  # only now: most (e, p*t) never get here
                    fit_caps[pt] = _fit_cap(layer, hw, e, pt, rows_e, cols)
                fit_cap = fit_caps[pt]
                for r in range(min(r_max, fit_cap), 0, -1):
                    if (pass_e + chan_lowest[q_max, r]) + tile_bound > best_energy:
                        break  # chan_lowest only grows as r falls
                    for q in range(min(q_max, C // r, fit_cap // r), 0, -1):
                        if (pass_e + chan_lowest[q, r]) + tile_bound > best_energy:
                            break  # and as q falls
                        if (_lowering_keeps_counts(C, q) and ceil_div(C, (q - 1) * r) == ceil_div(C, q * r)
                                and chan_energy[q - 1, r] <= chan_energy[q, r]):
                            continue
                        if r > 1 and ceil_div(C, q * (r - 1)) == ceil_div(C, q * r):
                            continue
                        upper = pass_e + chan_energy[q, r]
                        if upper + tile_bound > best_energy:
                            continue
                        for n in range(1, N + 1):
                            if _lowering_keeps_counts(N, n):
                                continue
                            m = best_m(n, e, pt, q * r, layer, rows_e, cols, hw)
                            if m == 0:
                                break  # a larger n leaves even less GLB room
                            energy = upper + _tile_energy(layer, hw, e, rows_total, cols, n, m, cost, scratch)
                            evaluated += 1
                            mp[0], mp[1], mp[2], mp[3], mp[4], mp[5], mp[6] = m, n, e, p, q, r, t
                            if _key_less(energy, mp, best_energy, best):
                                best_energy = energy
                                for k in range(7):  # not best[:] = mp: its shape-check message costs seconds of compile
                                    best[k] = mp[k]
    return best, best_energy, evaluated
