"""The exact greedy restore of small layers: backward elimination per output channel, supports, refit.

- ``removal_sequence(stats, alive)``: the greedy backward elimination of every output channel (remove the
  weight whose removal, with the others re-solved by least squares, adds the least output error; the
  inverse Gram is downdated in rank one per removal, kept as H − UUᵀ, and recomputed every so often, or as soon
  as a downdated diagonal has lost its precision), merged over the channels of the layer by least added error:
  a layer-wide removal order.
- ``greedy_support`` / ``magnitude_support``: the kept weights at a count q.
- ``refit(stats, support, ridge)``: closed-form least squares of the kept weights (and bias) on their support.

Cost: about M·K³ per group for the elimination and M·|S|³/3 per refit, one BLAS thread (many small solves);
``eyesim.prune.restore`` sends larger layers to ``eyesim.prune.sweep`` instead.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from eyesim.prune.stats import Stats, output_error, ridged

RIDGES = (1e-9, 1e-6, 1e-4, 1e-3, 1e-2, 1e-1)  # relative ridges on the Gram diagonal, chosen on validation
RECOMPUTE = 4  # the inverse Gram is recomputed after removing 1/RECOMPUTE of the remaining weights
# ... or when a downdated diagonal fell below this fraction of its fresh value: H − UUᵀ then cancels to noise (a
# Gram near singular, e.g. fewer samples than inputs), which would pick wrong weights and overflow
PRECISION = 1e-10
Progress = Callable[[int, int], None]


def eliminate(A: np.ndarray, c: np.ndarray, removable: np.ndarray, fixed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Greedy backward elimination for one output channel.

    ``A``: ridged Gram (K1 x K1); ``c``: cross terms (K1); ``removable``: indices that may be removed;
    ``fixed``: indices always kept (the bias). Returns the removable indices in removal order and the output
    error each removal adds (w_j² / (A_SS⁻¹)_jj, with w the least-squares weights on the current support S).
    """
    keep = np.concatenate([removable, fixed]).astype(np.intp)
    can = np.arange(len(keep)) < len(removable)
    order, gains = [], []
    while can.any():
        H = np.linalg.inv(A[np.ix_(keep, keep)])  # fresh inverse of the current support
        w, diag = H @ c[keep], np.diag(H).copy()
        floor = PRECISION * diag
        rounds = max(1, int(can.sum()) // RECOMPUTE)
        U = np.zeros((len(keep), rounds))  # the downdates so far: H_now = H - U Uᵀ
        gone = np.zeros(len(keep), dtype=bool)
        for t in range(rounds):
            live = can & ~gone
            if t and (diag[live] <= floor[live]).any():
                break  # precision lost: recompute the inverse of the support left
            with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
                score = np.where(live, w * w / diag, np.inf)
            j = int(np.argmin(score))
            order.append(keep[j])
            gains.append(max(float(score[j]), 0.0))
            h = H[:, j] - U[:, :t] @ U[j, :t]  # column j of H_now
            root = np.sqrt(max(h[j], 1e-300))
            U[:, t] = h / root
            w -= U[:, t] * (w[j] / root)
            diag -= U[:, t] ** 2
            gone[j] = True
        keep, can = keep[~gone], can[~gone]
    return np.asarray(order, dtype=np.intp), np.asarray(gains)


def removal_sequence(stats: Stats, alive: np.ndarray, ridge: float = RIDGES[0], progress: Progress | None = None
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Layer-wide greedy removal order of the ``alive`` weights (G x M x K bool): arrays (group, channel, index).

    Each channel's elimination adds errors e1, e2, ...; the channels are merged by their running maximum (so
    each channel's own order is kept), least first. ``progress(done, total)`` is told after each channel.
    """
    groups, m, _ = alive.shape
    fixed = np.array([stats.k] if stats.has_bias else [], dtype=np.intp)
    parts, keys = [], []
    for g in range(groups):
        A = ridged(stats.A[g], ridge)
        for ch in range(m):
            order, gains = eliminate(A, stats.C[g, :, ch], np.flatnonzero(alive[g, ch]), fixed)
            parts.append(np.stack([np.full(len(order), g), np.full(len(order), ch), order]))
            keys.append(np.maximum.accumulate(gains) if len(gains) else gains)
            if progress is not None:
                progress(g * m + ch + 1, groups * m)
    seq = np.concatenate(parts, axis=1) if parts else np.zeros((3, 0), dtype=np.intp)
    key = np.concatenate(keys) if keys else np.zeros(0)
    position = np.concatenate([np.arange(len(k)) for k in keys]) if keys else np.zeros(0)
    rank = np.lexsort((position, key))
    return seq[0][rank], seq[1][rank], seq[2][rank]


def greedy_support(alive: np.ndarray, sequence: tuple[np.ndarray, np.ndarray, np.ndarray], q: int) -> np.ndarray:
    """The ``q`` weights left after removing ``alive.sum() - q`` in the order of ``sequence``."""
    support = alive.copy()
    drop = int(alive.sum()) - q
    g, ch, idx = (part[:max(drop, 0)] for part in sequence)
    support[g, ch, idx] = False
    return support


def magnitude_support(mats: np.ndarray, q: int) -> np.ndarray:
    """The ``q`` weights of largest magnitude in the layer (ties: the first in storage order)."""
    flat = np.abs(mats).ravel()
    keep = np.argsort(-flat, kind="stable")[:q]
    support = np.zeros(flat.shape, dtype=bool)
    support[keep] = flat[keep] != 0
    return support.reshape(mats.shape)


def refit(stats: Stats, support: np.ndarray, ridge: float = RIDGES[0]
          ) -> tuple[np.ndarray, np.ndarray | None, float]:
    """Least-squares weights on ``support`` (and bias): (G x M x K weights, G x M bias or None, output error)."""
    groups, m, k = support.shape
    mats, bias = np.zeros(support.shape), np.zeros((groups, m)) if stats.has_bias else None
    for g in range(groups):
        A = ridged(stats.A[g], ridge)
        for ch in range(m):
            idx = np.flatnonzero(support[g, ch])
            if stats.has_bias:
                idx = np.append(idx, k)
            if not len(idx):
                continue
            sol = np.linalg.solve(A[np.ix_(idx, idx)], stats.C[g, idx, ch])
            mats[g, ch, idx[idx < k]] = sol[: len(idx) - int(stats.has_bias)]
            if bias is not None:
                bias[g, ch] = sol[-1]
    return mats, bias, output_error(stats, mats, bias)
