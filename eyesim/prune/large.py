"""A large layer's restored weights at any kept count, by the blocked OBS sweep of ``eyesim.prune.sweep``.

The ridge here pulls toward the current weights, ‖y − Pw‖² + λ‖w − w_now‖² (SparseGPT's dampening), not toward
zero as in the exact path: a large ridge then only damps the compensation, it does not shrink the weights that stay.

At each kept count q (``LargeLayer.at(q)``):

1. the ridge is chosen on validation by a probe (``probe_ridge``): on PROBE_CHANNELS sampled channels, the
   magnitude support at q's kept fraction (capped at PROBE_SUPPORT weights per channel, so a probe costs about
   a second) refitted exactly with every ridge of RIDGES; the least summed validation error wins;
2. the fitting Gram is factored at that ridge, in the sweep's processing order, and the start solved
   (``eyesim.prune.sweep.factor``, ``start``); factors are kept per ridge and a new one is made only while the
   layer's factoring work stays within FACTOR_BUDGET multiply-adds (an FC6 affords one, 0.9e12), else the kept
   ridge nearest the probe's is used; a ridge at which the Gram is not numerically definite (fewer samples than
   inputs) moves to the next larger one;
3. the sweep gives the greedy-like support and its restored weights (``"greedy"``); when ``plan`` finds them
   affordable within STEP_BUDGET multiply-adds per count, also the magnitude support restored by a sweep, and
   conjugate-gradient steps toward the exact least squares on each support; the least validation error wins.

The fitting error comes from the sweep's exact accounting (and the steps'), the validation error from a pivoted
Cholesky factor of each validation Gram (``Quadratic``). The first factor is made when the layer is built, at the
probe for half the weights (where the search starts).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.linalg

from eyesim.prune import sweep as ob  # the blocked OBS sweep
from eyesim.prune.greedy import RIDGES, magnitude_support
from eyesim.prune.stats import Quadratic, Stats, ridge_scale

STEP_BUDGET = 2e10  # multiply-adds per kept count for the optional work (the magnitude support, refit steps)
FACTOR_BUDGET = 1e12  # multiply-adds of factoring (potrf, trtri, the start) per layer; the first factor is always made
MAX_POLISH = 40  # conjugate-gradient steps per support at most
PROBE_CHANNELS = 16
PROBE_SUPPORT = 768  # kept weights per probe channel at most (an exact solve costs |S|³/3)
Progress = Callable[[int, int], None]
Restored = tuple[np.ndarray, np.ndarray | None, float, float, str, float]  # Candidate's fields


@dataclass(frozen=True)
class Plan:
    """The work per kept count: the supports restored ("greedy", maybe "magnitude") and the refit steps on each."""

    supports: tuple[str, ...]
    polish: int


def plan(fit: Stats, val_rank: int) -> Plan:
    """What fits in STEP_BUDGET besides the mandatory sweep (see the module docstring)."""
    groups, k1, m = fit.C.shape
    base = groups * m * k1 * (k1 / 2 + val_rank)  # a sweep and a validation error
    step = ob.refit_steps(fit)
    supports = ("greedy", "magnitude") if 2 * base <= STEP_BUDGET else ("greedy",)
    spare = STEP_BUDGET - len(supports) * base
    polish = int(spare // (len(supports) * step)) - 1 if spare > 0 else 0  # the first step costs two products
    return Plan(supports, max(0, min(MAX_POLISH, polish)))


def factor_work(fit: Stats) -> float:
    """Multiply-adds of one factor: potrf and trtri (K1³/3 each) and the start (M·K1²), per group."""
    groups, k1, m = fit.C.shape
    return float(groups * (2 * k1 ** 3 / 3 + m * k1 ** 2))


def probe_ridge(fit: Stats, val: Stats, mats: np.ndarray, bias: np.ndarray | None, kept: float) -> float:
    """The ridge of RIDGES with the least validation error of exact refits on sampled channels at ``kept``."""
    groups, m, k = mats.shape
    picks = np.random.default_rng(0).choice(groups * m, size=min(PROBE_CHANNELS, groups * m), replace=False)
    errors = np.zeros(len(RIDGES))
    for pick in np.sort(picks):
        g, ch = divmod(int(pick), m)
        live = np.flatnonzero(mats[g, ch])
        count = min(int(np.ceil(kept * len(live))), PROBE_SUPPORT)
        idx = np.sort(live[np.argsort(-np.abs(mats[g, ch, live]), kind="stable")[:count]])
        center = mats[g, ch, idx]
        if fit.has_bias:
            idx = np.append(idx, k)
            center = np.append(center, 0.0 if bias is None else bias[g, ch])
        if len(idx):
            errors += _probe_errors(fit, val, g, ch, idx, center)
    return RIDGES[int(np.argmin(errors))] if np.isfinite(errors).any() else RIDGES[-1]


def _probe_errors(fit: Stats, val: Stats, g: int, ch: int, idx: np.ndarray, center: np.ndarray) -> np.ndarray:
    """Validation error of one channel's refit on ``idx`` for each ridge (inf where the system is not definite)."""
    A, c = fit.A[g][np.ix_(idx, idx)], fit.C[g, idx, ch]
    Av, cv, yv = val.A[g][np.ix_(idx, idx)], val.C[g, idx, ch], val.yy[g, ch]
    scale = ridge_scale(fit.A[g])
    out = np.full(len(RIDGES), np.inf)
    for i, ridge in enumerate(RIDGES):
        try:
            w = scipy.linalg.cho_solve(scipy.linalg.cho_factor(A + ridge * scale * np.eye(len(idx)),
                                                               check_finite=False), c + ridge * scale * center,
                                       check_finite=False)
        except np.linalg.LinAlgError:
            continue
        out[i] = yv - 2 * cv @ w + w @ Av @ w
    return out


class LargeLayer:
    """Restored weights of a large layer at any kept count (module docstring)."""

    def __init__(self, fit: Stats, val: Stats, mats: np.ndarray, bias: np.ndarray | None,
                 progress: Progress | None = None) -> None:
        tell = progress or (lambda done, total: None)
        self.fit, self.val, self.mats, self.bias = fit, val, mats, bias
        self.live = int(np.count_nonzero(mats))
        self.valq = Quadratic(val)
        tell(1, 3)
        self.order = ob.frame_order(fit, mats)
        self.rows = np.argsort(self.order, axis=1)  # input -> frame row
        alive = self.in_frame(mats != 0, True)
        inputs = self.in_frame(np.ones(mats.shape, dtype=bool), False)  # every input, not the bias
        self.removable, self.forced = alive & inputs, ~alive & inputs
        self.plan = plan(fit, self.valq.rank)
        self.factors: dict[float, tuple[ob.Factor, np.ndarray, np.ndarray]] = {}
        self.factored = 0.0
        ridge = probe_ridge(fit, val, mats, bias, 0.5)  # the search starts at half the weights
        tell(2, 3)
        self.factored_at(ridge)
        tell(3, 3)

    def factored_at(self, ridge: float) -> tuple[ob.Factor, np.ndarray, np.ndarray]:
        """(factor, least-squares start, its ridged error) at ``ridge``, or at the nearest one kept (budget)."""
        if ridge in self.factors:
            return self.factors[ridge]
        if self.factors and self.factored + factor_work(self.fit) > FACTOR_BUDGET:
            return self.factors[min(self.factors, key=lambda kept: abs(np.log(kept / ridge)))]
        for at in RIDGES[RIDGES.index(ridge):]:  # a larger ridge when the Gram is not definite at this one
            if (fac := ob.factor(self.fit, at, self.order)) is not None:
                break
        else:
            raise np.linalg.LinAlgError("the fitting Gram is not positive definite even at the largest ridge")
        self.factored += factor_work(self.fit)
        self.factors[ridge] = (fac, *ob.start(fac, self.fit, self.current_in_frame()))
        return self.factors[ridge]

    def in_frame(self, mats: np.ndarray, bias) -> np.ndarray:
        """G x M x K weights (and the G x M bias, or a value for it) as G x K1 x M in the frame."""
        groups, m, k = mats.shape
        out = np.empty((groups, k + int(self.fit.has_bias), m), dtype=mats.dtype)
        for g in range(groups):
            out[g, self.rows[g][:k]] = mats[g].T
            if self.fit.has_bias:
                out[g, self.rows[g][k]] = np.broadcast_to(bias, (groups, m))[g]
        return out

    def current_in_frame(self) -> np.ndarray:
        """The current weights and bias in the frame: the ridge pulls toward them."""
        return self.in_frame(self.mats, 0.0 if self.bias is None else self.bias)

    def from_frame(self, w: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Frame weights (G x K1 x M) as (G x M x K weights, G x M bias or None)."""
        k = self.fit.k
        mats = np.stack([np.take(w[g].T, self.rows[g][:k], axis=1) for g in range(w.shape[0])])
        return mats, (np.stack([w[g, self.rows[g][k]] for g in range(w.shape[0])]) if self.fit.has_bias else None)

    def pull(self, lam: np.ndarray, mats: np.ndarray, bias: np.ndarray | None) -> float:
        """Σ λ_g ‖w − current‖² (the ridge term of the ridged error), over blocks of channels (small temporaries)."""
        total = 0.0
        for g in range(mats.shape[0]):
            for start in range(0, mats.shape[1], 256):
                diff = mats[g, start:start + 256] - self.mats[g, start:start + 256]
                total += lam[g] * np.einsum("mk,mk->", diff, diff)
            if self.fit.has_bias:
                total += lam[g] * float(np.sum((bias[g] - self.bias[g]) ** 2))
        return total

    def current(self) -> tuple[float, float]:
        """(fitting, validation) relative errors of the weights as they are (the ridge pulls toward them: no pull)."""
        fac, w0, base = next(iter(self.factors.values()))
        fit_error = _relative(ob.ridged_error(fac, w0, base, self.current_in_frame()).sum(), self.fit)
        return fit_error, self.valq.relative(self.mats, self.bias)

    def at(self, q: int) -> list[Restored]:
        """(weights, bias, fitting error, validation error, support, ridge) per support of the plan at count q."""
        fac, w0, base = self.factored_at(probe_ridge(self.fit, self.val, self.mats, self.bias, q / max(self.live, 1)))
        take = int(self.removable.sum()) - q
        out = []
        for kind in self.plan.supports:
            if kind == "greedy":
                w, added = ob.sweep(fac, w0, self.removable, self.forced, take=take)
            else:
                kept = self.in_frame(magnitude_support(self.mats, q), True)
                w, added = ob.sweep(fac, w0, self.removable, self.forced, fixed=self.removable & ~kept)
            ridged = (base + added).sum()  # the ridged fitting error
            if self.plan.polish:
                keep = w != 0
                keep[:, 0] |= self.fit.has_bias  # the bias, frame row 0, always stays
                w = ob.from_frame(fac, w)
                w, gain = ob.polish(self.fit, fac.lam, ob.from_frame(fac, self.current_in_frame()),
                                    ob.from_frame(fac, keep), w, self.plan.polish)
                w, ridged = ob.to_frame(fac, w), ridged - gain.sum()
            mats, bias = self.from_frame(w)
            fit_error = _relative(ridged - self.pull(fac.lam, mats, bias), self.fit)
            out.append((mats, bias, fit_error, self.valq.relative(mats, bias, w, self.rows), kind, fac.ridge))
        return out


def _relative(error: float, stats: Stats) -> float:
    """sqrt(error / Σy²), 0 for an all-zero Y."""
    total = stats.total()
    return float(np.sqrt(max(error, 0.0) / total)) if total > 0 else 0.0
