"""Output-feature-map restoration for one layer (docs/prune.md, "The algorithm", steps 2-4), in NumPy.

A layer maps patches P (rows: output positions over the samples) to outputs Y = P·Wᵀ + b, per group. All
that pruning needs is in the normal equations of each group: the Gram matrix A = [P 1]ᵀ[P 1], the
cross terms C = [P 1]ᵀY (one column per output channel) and Σy² per channel (``Stats``). The output error
of any weights w of a channel is ‖y − [P 1]w‖² = Σy² − 2cᵀw + wᵀAw, so no sample is touched again.

- ``layer_stats(layer, x, y)``: the statistics, accumulated over chunks of samples.
- ``removal_sequence(stats, alive)``: the greedy backward elimination of every output channel (remove the
  weight whose removal, with the others re-solved by least squares, adds the least output error; the
  inverse Gram is downdated in rank one per removal, kept as H − UUᵀ, and recomputed every so often), merged over the
  channels of the layer by least added error: a layer-wide removal order.
- ``greedy_support`` / ``magnitude_support``: the kept weights at a count q.
- ``refit(stats, support, ridge)``: closed-form least squares of the kept weights (and bias) on their support.
- ``output_error(stats, mats, bias)``: Σ‖y − ŷ‖² of given weights.
- ``Candidates(fit, val, mats, bias, method)``: a layer's restored weights at any kept count q (``at(q)``),
  fitted on the fitting part's statistics, judged (support and ridge) on the validation part's.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from eyesim.prune.layers import LinearLayer

RIDGES = (1e-9, 1e-6, 1e-4, 1e-3, 1e-2, 1e-1)  # relative ridges on the Gram diagonal, chosen on validation
CHUNK_ELEMENTS = 1 << 22  # im2col elements per chunk of samples
RECOMPUTE = 4  # the inverse Gram is recomputed after removing 1/RECOMPUTE of the remaining weights


@dataclass(frozen=True)
class Stats:
    """Normal equations of a layer, per group: A (G, K1, K1), C (G, K1, M), yy (G, M); K1 = K + 1 with a bias."""

    A: np.ndarray
    C: np.ndarray
    yy: np.ndarray
    has_bias: bool

    @property
    def k(self) -> int:
        """Weights per output channel (the bias, when there is one, is index k)."""
        return self.A.shape[1] - int(self.has_bias)

    def total(self) -> float:
        """Σ‖y‖² over the layer's outputs."""
        return float(self.yy.sum())


def layer_stats(layer: LinearLayer, x: np.ndarray, y: np.ndarray) -> Stats:
    """The normal equations of ``layer`` for inputs ``x`` and target outputs ``y`` (both over the same samples)."""
    groups, m, k = layer.matrix_shape
    k1 = k + int(layer.bias is not None)
    A, C, yy = np.zeros((groups, k1, k1)), np.zeros((groups, k1, m)), np.zeros((groups, m))
    per_sample = max(1, layer.patches(x[:1], 0).size)
    step = max(1, CHUNK_ELEMENTS // per_sample)
    for start in range(0, x.shape[0], step):
        xs, ys = x[start:start + step], y[start:start + step]
        for g in range(groups):
            p = layer.patches(xs, g).astype(np.float64)
            t = layer.targets(ys, g).astype(np.float64)
            if layer.bias is not None:
                p = np.hstack([p, np.ones((p.shape[0], 1))])
            A[g] += p.T @ p
            C[g] += p.T @ t
            yy[g] += np.einsum("ij,ij->j", t, t)
    return Stats(A, C, yy, layer.bias is not None)


def _ridge(A: np.ndarray, ridge: float) -> np.ndarray:
    """A with a relative ridge on its diagonal (the smallest keeps dead, all-zero inputs solvable)."""
    scale = max(float(np.trace(A)) / A.shape[0], 1e-30)
    return A + ridge * scale * np.eye(A.shape[0])


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
        rounds = max(1, int(can.sum()) // RECOMPUTE)
        U = np.zeros((len(keep), rounds))  # the downdates so far: H_now = H - U Uᵀ
        gone = np.zeros(len(keep), dtype=bool)
        for t in range(rounds):
            with np.errstate(divide="ignore", invalid="ignore"):
                score = np.where(can & ~gone, w * w / diag, np.inf)
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


def removal_sequence(stats: Stats, alive: np.ndarray, ridge: float = RIDGES[0]
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Layer-wide greedy removal order of the ``alive`` weights (G x M x K bool): arrays (group, channel, index).

    Each channel's elimination adds errors e1, e2, ...; the channels are merged by their running maximum (so
    each channel's own order is kept), least first.
    """
    groups, m, _ = alive.shape
    fixed = np.array([stats.k] if stats.has_bias else [], dtype=np.intp)
    parts, keys = [], []
    for g in range(groups):
        A = _ridge(stats.A[g], ridge)
        for ch in range(m):
            order, gains = eliminate(A, stats.C[g, :, ch], np.flatnonzero(alive[g, ch]), fixed)
            parts.append(np.stack([np.full(len(order), g), np.full(len(order), ch), order]))
            keys.append(np.maximum.accumulate(gains) if len(gains) else gains)
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
        A = _ridge(stats.A[g], ridge)
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


def output_error(stats: Stats, mats: np.ndarray, bias: np.ndarray | None) -> float:
    """Σ‖y − ŷ‖² over the layer's outputs for weights ``mats`` (G x M x K) and ``bias`` (G x M)."""
    w = np.concatenate([mats, bias[..., None]], axis=2) if stats.has_bias else mats  # G, M, K1
    quad = np.einsum("gmk,gkl,gml->gm", w, stats.A, w)
    cross = np.einsum("gmk,gkm->gm", w, stats.C)
    return float(max((stats.yy - 2 * cross + quad).sum(), 0.0))


@dataclass(frozen=True)
class Candidate:
    """A layer's weights at one kept count, with their relative output errors ‖Y − Ŷ‖/‖Y‖ on both parts."""

    mats: np.ndarray  # G x M x K
    bias: np.ndarray | None  # G x M
    fit_error: float
    val_error: float
    support: str  # "greedy", "magnitude" or "unchanged"
    ridge: float  # the relative ridge of the refit (0 when not refitted)


class Candidates:
    """The restored weights of one layer at any kept count q.

    ``method`` "energy-aware": the greedy and the magnitude supports, each refitted on the fitting part with
    every ridge of RIDGES; the (support, ridge) with the least validation error wins. "magnitude": the q
    largest weights unchanged. The greedy order is computed with the ridge that suits the full support best.
    """

    def __init__(self, fit: Stats, val: Stats, mats: np.ndarray, bias: np.ndarray | None, method: str) -> None:
        self.fit, self.val, self.mats, self.bias, self.method = fit, val, mats, bias, method
        self.alive = mats != 0
        self.sequence = None
        if method == "energy-aware":
            ridge = self._best_refit(self.alive, "greedy").ridge
            self.sequence = removal_sequence(fit, self.alive, ridge)

    def current(self) -> Candidate:
        """The layer's weights as they are."""
        return self._judge(self.mats, self.bias, "unchanged", 0.0)

    def at(self, q: int) -> Candidate:
        """The candidate that keeps ``q`` weights."""
        magnitude = magnitude_support(self.mats, q)
        if self.method == "magnitude":
            return self._judge(self.mats * magnitude, self.bias, "magnitude", 0.0)
        greedy = greedy_support(self.alive, self.sequence, q)
        return min(self._best_refit(greedy, "greedy"), self._best_refit(magnitude, "magnitude"),
                   key=lambda c: c.val_error)

    def _best_refit(self, support: np.ndarray, kind: str) -> Candidate:
        refits = (refit(self.fit, support, ridge)[:2] + (ridge,) for ridge in RIDGES)
        return min((self._judge(mats, bias, kind, ridge) for mats, bias, ridge in refits), key=lambda c: c.val_error)

    def _judge(self, mats: np.ndarray, bias: np.ndarray | None, kind: str, ridge: float) -> Candidate:
        return Candidate(mats, bias, relative_error(self.fit, mats, bias), relative_error(self.val, mats, bias),
                         kind, ridge)


def relative_error(stats: Stats, mats: np.ndarray, bias: np.ndarray | None) -> float:
    """‖Y − Ŷ‖ / ‖Y‖ (0 for an all-zero Y)."""
    total = stats.total()
    return float(np.sqrt(output_error(stats, mats, bias) / total)) if total > 0 else 0.0
