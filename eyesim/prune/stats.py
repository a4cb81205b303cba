"""The normal equations of a layer's least squares (``Stats``, ``layer_stats``) and the output error of any weights.

A layer maps patches P (rows: output positions over the samples) to outputs Y = P·Wᵀ + b, per group. All
that pruning needs is in the normal equations of each group: the Gram matrix A = [P 1]ᵀ[P 1], the
cross terms C = [P 1]ᵀY (one column per output channel) and Σy² per channel. The output error of any
weights w of a channel is ‖y − [P 1]w‖² = Σy² − 2cᵀw + wᵀAw, so no sample is touched again.

- ``layer_stats(layer, x, y)``: the statistics, accumulated in place (BLAS syrk/gemm) over chunks of samples.
- ``output_error(stats, mats, bias)`` / ``relative_error``: Σ‖y − ŷ‖² and ‖Y − Ŷ‖/‖Y‖ of given weights.
- ``ridged(A, ridge)``: A with a relative ridge on its diagonal (``ridge_scale`` the absolute unit).
- ``Quadratic(stats)``: the same errors for many weights, from a pivoted Cholesky factor of each group's Gram
  (rank r ≤ rows): O(M·K·r) per evaluation instead of a full M·K² product.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.linalg import blas, lapack

from eyesim.prune.layers import LinearLayer

CHUNK_ELEMENTS = 1 << 22  # im2col elements per chunk of samples


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
            t = np.ascontiguousarray(layer.targets(ys, g), dtype=np.float64)
            if layer.bias is not None:
                p = np.hstack([p, np.ones((p.shape[0], 1))])
            _accumulate(A[g], C[g], p, t)
            yy[g] += np.einsum("ij,ij->j", t, t)
    for g in range(groups):  # syrk filled one triangle
        A[g] = np.triu(A[g]) + np.triu(A[g], 1).T
    return Stats(A, C, yy, layer.bias is not None)


def _accumulate(A: np.ndarray, C: np.ndarray, p: np.ndarray, t: np.ndarray) -> None:
    """A += pᵀp (upper triangle) and C += pᵀt in place: no K1 x K1 temporary per chunk (680 MB for an FC6)."""
    p = np.ascontiguousarray(p)
    # A and C are C-ordered, so their transposes are the Fortran arrays BLAS updates in place
    blas.dsyrk(1.0, p.T, beta=1.0, c=A.T, trans=0, lower=1, overwrite_c=1)
    blas.dgemm(1.0, t.T, p.T, beta=1.0, c=C.T, trans_b=1, overwrite_c=1)


def ridge_scale(A: np.ndarray) -> float:
    """The unit of a relative ridge: the mean diagonal of A."""
    return max(float(np.trace(A)) / A.shape[0], 1e-30)


def ridged(A: np.ndarray, ridge: float) -> np.ndarray:
    """A with a relative ridge on its diagonal (the smallest keeps dead, all-zero inputs solvable)."""
    return A + ridge * ridge_scale(A) * np.eye(A.shape[0])


def with_bias(stats: Stats, mats: np.ndarray, bias: np.ndarray | None) -> np.ndarray:
    """The G x M x K1 weights the statistics multiply (the bias as the last input)."""
    return np.concatenate([mats, bias[..., None]], axis=2) if stats.has_bias else mats


def output_error(stats: Stats, mats: np.ndarray, bias: np.ndarray | None) -> float:
    """Σ‖y − ŷ‖² over the layer's outputs for weights ``mats`` (G x M x K) and ``bias`` (G x M)."""
    w = with_bias(stats, mats, bias)  # G, M, K1
    quad = np.einsum("gmk,gmk->gm", np.matmul(w, stats.A), w)  # a BLAS product, not a K x K loop per channel
    cross = np.einsum("gmk,gkm->gm", w, stats.C)
    return float(max((stats.yy - 2 * cross + quad).sum(), 0.0))


def relative_error(stats: Stats, mats: np.ndarray, bias: np.ndarray | None) -> float:
    """‖Y − Ŷ‖ / ‖Y‖ (0 for an all-zero Y)."""
    total = stats.total()
    return float(np.sqrt(output_error(stats, mats, bias) / total)) if total > 0 else 0.0


class Quadratic:
    """Output errors of many weights on one part's statistics, via a pivoted Cholesky factor of each Gram.

    A[piv, piv] = F Fᵀ with F lower trapezoidal (K1 x r, r the numerical rank: at most the rows of the part), so
    wᵀAw = ‖Fᵀ w[piv]‖²: one triangular product and one r-column product per evaluation.
    """

    def __init__(self, stats: Stats) -> None:
        self.stats = stats
        self.factors: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # per group: piv, F[:r], F[r:]
        for A in stats.A:
            k1 = A.shape[0]
            if not A.any():  # no input at all: nothing to factor
                self.factors.append((np.arange(k1), np.zeros((0, 0), order="F"), np.zeros((k1, 0))))
                continue
            c, piv, rank, info = lapack.dpstrf(A, tol=-1.0, lower=1)
            if info < 0:
                raise np.linalg.LinAlgError(f"dpstrf failed ({info})")
            F = np.tril(c[:, :rank])
            self.factors.append((piv - 1, np.asfortranarray(F[:rank]), F[rank:]))

    def errors(self, wt: np.ndarray) -> np.ndarray:
        """Σ(y − ŷ)² per output channel (G x M) for weights ``wt`` (G x K1 x M: one column per channel)."""
        st = self.stats
        out = st.yy - 2 * np.einsum("gkm,gkm->gm", wt, st.C)
        for g, (piv, top, rest) in enumerate(self.factors):
            r = top.shape[0]
            if not r:
                continue
            w = wt[g][piv]  # K1 x M, rows in pivot order
            z = blas.dtrmm(1.0, top, np.asfortranarray(w[:r]), side=0, lower=1, trans_a=1, overwrite_b=1)
            if rest.shape[0]:
                z += rest.T @ w[r:]
            out[g] += np.einsum("rm,rm->m", z, z)
        return np.maximum(out, 0.0)

    def relative(self, wt: np.ndarray) -> float:
        """‖Y − Ŷ‖ / ‖Y‖ of weights ``wt`` (G x K1 x M)."""
        total = self.stats.total()
        return float(np.sqrt(self.errors(wt).sum() / total)) if total > 0 else 0.0
