"""The large-layer restore: one Cholesky factor per group shared by all output channels, and a blocked OBS sweep.

The sweep is sequential optimal brain surgery in the manner of SparseGPT (Frantar & Alistarh, 2023): the
inputs are taken one at a time in a fixed order; at input j each channel either keeps its weight (frozen from then
on) or drops it, and the inputs not yet taken are re-solved by least squares to compensate. With the ridged Gram
A + λI = L Lᵀ factored with the inputs in reverse processing order, the compensation of dropping w_j is the row of
L⁻¹ at j scaled by w_j / (L⁻¹)_jj, and the error it adds is exactly (w_j / (L⁻¹)_jj)². The updates are batched:
rank one within a sub-block of SUB rows, BLAS-3 into the rest of the BLOCK, then into all rows below: O(M·K²/2)
per sweep for M channels of K inputs, against O(M·K³) for the exact greedy.

Which weights drop is decided at each input, on the weights as compensated so far: those whose added error is
below a threshold that would drop the wanted count over the inputs left (renewed REFRESHES times per sweep from
a sample of channels), clamped so the count comes out exact. Inputs go least important first (importance: input
energy A_jj times the squared weights on it), so the weights that drop tend to have the most inputs left to
compensate with; the bias comes last and never drops.

The ridged error is ‖y − Pw‖² + λ‖w − center‖², the ridge pulling toward ``center`` (the current weights).

- ``Factor`` / ``factor(stats, ridge, order)``: the ridged, reordered Gram's inverse Cholesky factor per group
  (None when it is not positive definite at that ridge); ``frame_order(stats, mats)`` the processing order.
- ``start(fac, stats, center)``: the sweep's start, the minimiser over all inputs, and its ridged error;
  ``ridged_error(fac, w0, base, w)`` the ridged error of any weights (one triangular solve).
- ``sweep(fac, w0, removable, forced, take=..., fixed=...)``: weights and added error after dropping ``take``
  of the ``removable`` weights (or exactly those in ``fixed``), always dropping the ``forced`` ones.
- ``polish(stats, lam, center, keep, w, steps)``: conjugate-gradient steps (Jacobi preconditioner) toward the
  exact ridged least squares on a fixed support; ``refit_steps`` its cost unit.
- ``to_frame`` / ``from_frame``: rows between input order and the frame.

Arrays here are "G x K1 x M" (one column per output channel) and, in the frame, rows in ``Factor.order``. The
large products take every core (``wide``); the per-row work runs on the caller's single thread.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.linalg import blas, lapack

from eyesim.prune.stats import Stats, ridge_scale, wide

BLOCK = 128  # rows per BLAS-3 update of all rows below
SUB = 16  # rows per BLAS-3 update within a block (rank-one updates inside), at most 1/REFRESHES of the rows
REFRESHES = 128  # the drop threshold is renewed REFRESHES times per sweep (small layers: at every row)
SAMPLE = 64  # channels whose scores estimate the drop threshold
CONVERGED = 1e-20  # polish stops when every channel's preconditioned residual fell by this factor


@dataclass(frozen=True)
class Factor:
    """Per group: the processing frame and the inverse of the lower Cholesky factor L of the ridged Gram in it."""

    order: np.ndarray  # G x K1: frame row -> input index (the bias, if any, is row 0)
    linvt: np.ndarray  # G x K1 x K1: (L⁻¹)ᵀ, upper triangular, C order
    lam: np.ndarray  # G: the absolute ridge on the diagonal
    ridge: float  # the relative ridge


def frame_order(stats: Stats, mats: np.ndarray) -> np.ndarray:
    """G x K1 frame rows: the bias first, then the inputs from the most to the least important (taken last first)."""
    k = stats.k
    rows = []
    for g in range(stats.A.shape[0]):
        importance = np.diag(stats.A[g])[:k] * np.einsum("mk,mk->k", mats[g], mats[g])
        inputs = np.argsort(-importance, kind="stable")
        rows.append(np.concatenate([[k], inputs]) if stats.has_bias else inputs)
    return np.asarray(rows, dtype=np.intp)


def factor(stats: Stats, ridge: float, order: np.ndarray) -> Factor | None:
    """The inverse Cholesky factor of each ridged, reordered Gram; None when one is not positive definite."""
    groups, k1, _ = stats.A.shape
    linvt = np.empty((groups, k1, k1))
    lam = np.array([ridge * ridge_scale(A) for A in stats.A])
    for g in range(groups):
        np.take(np.take(stats.A[g], order[g], axis=0), order[g], axis=1, out=linvt[g])
        linvt[g].flat[:: k1 + 1] += lam[g]
        with wide():  # linvt[g].T is the same symmetric matrix in Fortran order: LAPACK works in place in it
            low, info = lapack.dpotrf(linvt[g].T, lower=1, clean=1, overwrite_a=1)
            if not info:
                low, info = lapack.dtrtri(low, lower=1, overwrite_c=1)
        if info:
            return None
        if not np.shares_memory(low, linvt[g]):
            linvt[g] = low.T
    return Factor(order, linvt, lam, ridge)


def start(fac: Factor, stats: Stats, center: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The sweep's start: (G x K1 x M minimiser over all inputs of the ridged error, G x M its ridged error).

    The ridged error is ‖y − Pw‖² + λ‖w − center‖² (``center``, G x K1 x M in the frame: the current weights), whose
    minimiser is (A + λI)⁻¹(c + λ·center); at it the error is Σy² + λ‖center‖² − (c + λ·center)ᵀw.
    """
    groups, k1, _ = fac.linvt.shape
    w = np.empty((groups, k1, stats.C.shape[2]))
    rhs = np.empty_like(w)
    for g in range(groups):
        np.take(stats.C[g], fac.order[g], axis=0, out=rhs[g])
        rhs[g] += fac.lam[g] * center[g]
        w[g] = rhs[g]
        low = fac.linvt[g].T  # L⁻¹ in Fortran order
        with wide():  # w = L⁻ᵀ L⁻¹ rhs, as wᵀ = rhsᵀ L⁻ᵀ then · L⁻¹ on the Fortran view wᵀ of the C-ordered w
            blas.dtrmm(1.0, low, w[g].T, side=1, lower=1, trans_a=1, overwrite_b=1)
            blas.dtrmm(1.0, low, w[g].T, side=1, lower=1, trans_a=0, overwrite_b=1)
    error = stats.yy + fac.lam[:, None] * np.einsum("gkm,gkm->gm", center, center)
    return w, error - np.einsum("gkm,gkm->gm", rhs, w)


def ridged_error(fac: Factor, w0: np.ndarray, base: np.ndarray, w: np.ndarray) -> np.ndarray:
    """The G x M ridged error of weights ``w`` (frame): base + ‖Lᵀ(w − w0)‖², one triangular solve (M·K1²/2)."""
    out = base.copy()
    for g in range(w.shape[0]):
        z = np.ascontiguousarray(w[g] - w0[g])  # zᵀ ← zᵀ L, solving zᵀ (L⁻¹) = (w − w0)ᵀ in place
        with wide():
            blas.dtrsm(1.0, fac.linvt[g].T, z.T, side=1, lower=1, trans_a=0, overwrite_b=1)
        out[g] += np.einsum("km,km->m", z, z)
    return out


def to_frame(fac: Factor, a: np.ndarray) -> np.ndarray:
    """A G x K1 x M array with its rows in the frame."""
    return np.stack([a[g][fac.order[g]] for g in range(a.shape[0])])


def from_frame(fac: Factor, a: np.ndarray) -> np.ndarray:
    """Inverse of ``to_frame``."""
    out = np.empty_like(a)
    for g in range(a.shape[0]):
        out[g][fac.order[g]] = a[g]
    return out


def sweep(fac: Factor, w0: np.ndarray, removable: np.ndarray, forced: np.ndarray, *, take: int = 0,
          fixed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(weights, G x M added ridged error) after the drops; all arrays G x K1 x M in the frame.

    Drops ``take`` of the ``removable`` weights chosen on the way, or, given ``fixed``, exactly those; the
    ``forced`` ones (dead already) always.
    """
    w = w0.copy()
    groups, k1, m = w.shape
    diag = np.stack([np.diagonal(fac.linvt[g]) for g in range(groups)])  # G x K1: (L⁻¹)_jj
    below = np.concatenate([[0], np.cumsum(removable.sum(axis=(0, 2)))])  # removable weights in rows < b
    chooser = None if fixed is not None else _Chooser(w, diag, removable, below, take)
    loss = np.zeros((groups, m))
    sub = max(1, min(SUB, k1 // REFRESHES))
    for b2 in range(k1, 0, -BLOCK):
        b1 = max(b2 - BLOCK, 0)
        drops = np.zeros((groups, b2 - b1, m))
        for s2 in range(b2, b1, -sub):
            s1 = max(s2 - sub, b1)
            if chooser is not None:
                chooser.renew(s2)
            for b in range(s2 - 1, s1 - 1, -1):
                cut = forced[:, b] | (fixed[:, b] if chooser is None else chooser.choose(b))
                e = np.where(cut, w[:, b] / diag[:, b, None], 0.0)
                loss += e * e
                w[:, s1:b] -= fac.linvt[:, s1:b, b][:, :, None] * e[:, None, :]
                w[:, b][cut] = 0.0  # exactly: the update leaves rounding there
                drops[:, b - b1] = e
            for g in range(groups):
                w[g, b1:s1] -= fac.linvt[g, b1:s1, s1:s2] @ drops[g, s1 - b1:s2 - b1]
        for g in range(groups if b1 else 0):  # w[:b1] -= (L⁻¹)[b1:b2, :b1]ᵀ · drops, in place
            with wide():
                blas.dgemm(-1.0, drops[g].T, fac.linvt[g, :b1, b1:b2], beta=1.0, c=w[g, :b1].T, trans_b=1,
                           overwrite_c=1)
    return w, loss


class _Chooser:
    """The drops of one sweep: a threshold on the added error, renewed as the sweep goes, and exact counts per row."""

    def __init__(self, w: np.ndarray, diag: np.ndarray, removable: np.ndarray, below: np.ndarray, take: int):
        self.w, self.diag, self.removable, self.below, self.left = w, diag, removable, below, int(take)
        groups, k1, m = w.shape
        picks = np.sort(np.random.default_rng(0).choice(groups * m, size=min(SAMPLE, groups * m), replace=False))
        self.sample = [picks[picks // m == g] % m for g in range(groups)]  # sampled channels of each group
        self.period, self.renewed, self.tau = max(1, k1 // REFRESHES), k1 + k1, -np.inf

    def renew(self, b2: int) -> None:
        """Every ``period`` rows: the added error below which the rows < b2 would give the count still wanted."""
        if self.renewed - b2 < self.period:
            return
        self.renewed = b2
        avail = int(self.below[b2])
        if self.left <= 0 or avail <= 0 or self.left >= avail:
            self.tau = -np.inf if self.left <= 0 or avail <= 0 else np.inf
            return
        scores = np.concatenate([
            ((np.take(self.w[g, :b2], ms, axis=1) / self.diag[g, :b2, None]) ** 2)[
                np.take(self.removable[g, :b2], ms, axis=1)] for g, ms in enumerate(self.sample)])
        if not scores.size:  # no live weight sampled: drop the least important inputs' weights first
            self.tau = np.inf
            return
        nth = int(self.left / avail * scores.size)
        self.tau = np.partition(scores, nth - 1)[nth - 1] if nth >= 1 else -np.inf

    def choose(self, b: int) -> np.ndarray:
        """The weights of row b (G x M) to drop: under the threshold, as many as the rows left allow and need."""
        ok = self.removable[:, b]
        scores = (self.w[:, b] / self.diag[:, b, None]) ** 2
        cut = ok & (scores <= self.tau)
        n = int(cut.sum())
        lo, hi = max(self.left - int(self.below[b]), 0), min(self.left, int(ok.sum()))
        if not lo <= n <= hi:
            n = min(max(n, lo), hi)
            flat = np.where(ok, scores, np.inf).ravel()
            cut = np.zeros(flat.size, dtype=bool)
            cut[np.argsort(flat, kind="stable")[:n]] = True
            cut = cut.reshape(ok.shape)
        self.left -= n
        return cut


def refit_steps(stats: Stats) -> float:
    """Multiply-adds of one polish step (a Gram times the weights of every channel)."""
    groups, k1, m = stats.C.shape
    return float(groups * m * k1 * k1)


def polish(stats: Stats, lam: np.ndarray, center: np.ndarray, keep: np.ndarray, w: np.ndarray, steps: int
           ) -> tuple[np.ndarray, np.ndarray]:
    """Up to ``steps`` preconditioned conjugate-gradient steps of the ridged least squares on ``keep`` from ``w``.

    All G x K1 x M in input order. Returns the weights and the G x M decrease of the ridged error (each step
    lowers it by α·rᵀz; the support does not change).
    """
    w = w.copy()
    gain = np.zeros(w.shape[::2])
    for g in range(w.shape[0]):
        A, mask = stats.A[g], keep[g]
        precond = (1.0 / np.maximum(np.diag(A) + lam[g], 1e-300))[:, None]
        with wide():
            r = (stats.C[g] + lam[g] * (center[g] - w[g]) - A @ w[g]) * mask
        z = r * precond
        p, rz = z.copy(), np.einsum("km,km->m", r, z)
        first = rz.copy()
        for _ in range(steps):
            if (rz <= CONVERGED * first).all():
                break
            with wide():
                ap = (A @ p + lam[g] * p) * mask
            pap = np.einsum("km,km->m", p, ap)
            alpha = np.divide(rz, pap, out=np.zeros_like(rz), where=pap > 0)
            w[g] += alpha * p
            r -= alpha * ap
            gain[g] += alpha * rz
            z = r * precond
            rz_next = np.einsum("km,km->m", r, z)
            beta = np.divide(rz_next, rz, out=np.zeros_like(rz), where=rz > 0)
            rz = rz_next
            p = z + beta * p
    return w, gain
