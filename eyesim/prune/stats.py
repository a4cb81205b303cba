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

import os
from dataclasses import dataclass
from functools import cache

import numpy as np
from scipy.linalg import blas, lapack
from threadpoolctl import ThreadpoolController

from eyesim.prune.layers import LinearLayer

CHUNK_ELEMENTS = 1 << 22  # im2col elements per chunk of samples ...
CHUNK_ROWS = 2048  # ... or at least this many rows: thin BLAS updates of a large Gram run slowly


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
    rows = max(1, layer.patches(x[:1], 0).shape[0])  # rows per sample
    step = max(1, CHUNK_ELEMENTS // (rows * k), CHUNK_ROWS // rows)
    for start in range(0, x.shape[0], step):
        xs, ys = x[start:start + step], y[start:start + step]
        for g in range(groups):
            p = layer.patches(xs, g).astype(np.float64)
            t = np.ascontiguousarray(layer.targets(ys, g), dtype=np.float64)
            if layer.bias is not None:
                p = np.hstack([p, np.ones((p.shape[0], 1))])
            _accumulate(A[g], C[g], p, t)
            yy[g] += np.einsum("ij,ij->j", t, t)
    for g in range(groups):  # syrk filled the upper triangle; the lower one is still 0
        A[g] += np.triu(A[g], 1).T
    return Stats(A, C, yy, layer.bias is not None)


def _accumulate(A: np.ndarray, C: np.ndarray, p: np.ndarray, t: np.ndarray) -> None:
    """A += pᵀp (upper triangle) and C += pᵀt in place: no K1 x K1 temporary per chunk (680 MB for an FC6)."""
    p = np.ascontiguousarray(p)
    with wide():  # A and C are C-ordered, so their transposes are the Fortran arrays BLAS updates in place
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


@cache
def _controller() -> ThreadpoolController:
    return ThreadpoolController()


def wide():
    """A context with every core other processes leave free, for the large BLAS-3 products and factorizations.

    The restore otherwise runs on one thread. Free cores come from the 1-minute load average (less this process):
    OpenBLAS threads sharing a busy core wait on each other, measured on 2 cores with the other one busy: a
    Cholesky factorization of 6000 took 8.5 s on 2 threads, 5.5 s on 1 (a product: the same either way).
    """
    cores = os.cpu_count() or 1
    others = os.getloadavg()[0] - 1
    return _controller().limit(limits=max(1, min(cores, round(cores - others))), user_api="blas")


def one_thread():
    """A context with one BLAS thread: many small solves, or the per-row work (threads only add overhead there)."""
    return _controller().limit(limits=1, user_api="blas")


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
            if not A.any():  # no input at all: nothing to factor
                self.factors.append((np.arange(A.shape[0]), np.zeros((0, 0), order="F"), np.zeros((0, 0), order="F")))
                continue
            with wide():
                c, piv, rank, info = lapack.dpstrf(A, tol=-1.0, lower=1)
            if info < 0:
                raise np.linalg.LinAlgError(f"dpstrf failed ({info})")
            F = np.tril(c[:, :rank])
            self.factors.append((piv - 1, np.asfortranarray(F[:rank]), np.asfortranarray(F[rank:])))

    @property
    def rank(self) -> int:
        """The largest rank over the groups."""
        return max(top.shape[0] for _, top, _ in self.factors)

    def quadratic(self, wt: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
        """wᵀAw per output channel (G x M) of weights ``wt`` (G x K1' x M, one column per channel); input i is row
        ``rows[g][i]`` of ``wt[g]`` (None: row i)."""
        out = np.zeros(wt.shape[::2])
        for g, (piv, top, rest) in enumerate(self.factors):
            r = top.shape[0]
            if not r:
                continue
            at = piv if rows is None else rows[g][piv]
            z = np.take(wt[g], at[:r], axis=0)  # r x M; zᵀ ← zᵀ F[:r] in place on its Fortran view
            with wide():
                blas.dtrmm(1.0, top, z.T, side=1, lower=1, trans_a=0, overwrite_b=1)
                if rest.shape[0]:
                    blas.dgemm(1.0, np.take(wt[g], at[r:], axis=0).T, rest, beta=1.0, c=z.T, overwrite_c=1)
            out[g] = np.einsum("rm,rm->m", z, z)
        return out

    def errors(self, mats: np.ndarray, bias: np.ndarray | None, wt: np.ndarray | None = None,
               rows: np.ndarray | None = None) -> np.ndarray:
        """Σ(y − ŷ)² per output channel (G x M) of weights ``mats`` (G x M x K) and ``bias``; ``wt``/``rows``, if
        given, hold the same weights as ``quadratic`` takes them (saves a copy)."""
        st = self.stats
        cross = np.einsum("gmk,gkm->gm", mats, st.C[:, : st.k])
        if st.has_bias:
            cross += bias * st.C[:, st.k]
        if wt is None:
            wt = np.concatenate([mats, bias[..., None]], 2) if st.has_bias else mats
            wt, rows = np.ascontiguousarray(wt.transpose(0, 2, 1)), None
        return np.maximum(st.yy - 2 * cross + self.quadratic(wt, rows), 0.0)

    def relative(self, mats: np.ndarray, bias: np.ndarray | None, wt: np.ndarray | None = None,
                 rows: np.ndarray | None = None) -> float:
        """‖Y − Ŷ‖ / ‖Y‖ of weights ``mats`` and ``bias`` (``errors``)."""
        total = self.stats.total()
        return float(np.sqrt(self.errors(mats, bias, wt, rows).sum() / total)) if total > 0 else 0.0
