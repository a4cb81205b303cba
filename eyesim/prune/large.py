"""A large layer's restored weights at any kept count, by the blocked OBS sweep of ``eyesim.prune.sweep``.

Once per layer (``LargeLayer(fit, val, mats, bias)``):

1. the ridge, chosen on validation at two probe counts (1/2 and 1/8 of the live weights): on PROBE_CHANNELS
   channels, the magnitude support refitted exactly for every ridge of RIDGES (each channel's support capped at
   PROBE_SUPPORT weights so the probe stays a few seconds); the ridge with the least validation error wins;
2. the fitting Gram's inverse Cholesky factor in the processing order at that ridge (the next larger ridge when
   it is not numerically positive definite: fewer samples than inputs), and the least squares of all inputs;
3. a pivoted Cholesky factor of each validation Gram (``Quadratic``) for the validation errors.

Per kept count q (``at(q)``): the sweep's own support (``"greedy"``), and, when ``plan`` finds them affordable
within STEP_BUDGET multiply-adds, the magnitude support restored by a sweep too, and conjugate-gradient steps
toward the exact least squares on each support; the candidate with the least validation error wins. The fitting
error comes from the sweep's exact error accounting, the validation error from ``Quadratic``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.linalg

from eyesim.prune import sweep as ob
from eyesim.prune.greedy import RIDGES, magnitude_support
from eyesim.prune.stats import Quadratic, Stats, output_error, ridge_scale

STEP_BUDGET = 4e10  # multiply-adds per kept count for the optional work (the magnitude support, refit steps)
MAX_POLISH = 40  # conjugate-gradient steps per support at most
PROBE_CHANNELS = 32
PROBE_KEPT = (1 / 2, 1 / 8)  # the probe counts, as fractions of each channel's live weights
PROBE_SUPPORT = 1024  # kept weights per probe channel at most (an exact solve costs |S|³/3)
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class Plan:
    """The work per kept count: the supports restored ("greedy", maybe "magnitude") and the refit steps on each."""

    supports: tuple[str, ...]
    polish: int


def plan(fit: Stats, val_rank: int) -> Plan:
    """What fits in STEP_BUDGET besides the mandatory sweep (documented in docs/prune.md, "Large layers")."""
    groups, k1, m = fit.C.shape
    base = groups * m * k1 * (k1 / 2 + val_rank)  # a sweep and a validation error
    step = ob.refit_steps(fit)
    supports = ("greedy", "magnitude") if 2 * base <= STEP_BUDGET else ("greedy",)
    spare = STEP_BUDGET - len(supports) * base
    polish = int(spare // (len(supports) * step)) - 1 if spare > 0 else 0  # the first step costs two products
    return Plan(supports, max(0, min(MAX_POLISH, polish)))


def probe_ridge(fit: Stats, val: Stats, mats: np.ndarray) -> float:
    """The ridge of RIDGES with the least validation error of exact refits on sampled channels at the probe counts."""
    groups, m, k = mats.shape
    picks = np.random.default_rng(0).choice(groups * m, size=min(PROBE_CHANNELS, groups * m), replace=False)
    errors = np.zeros(len(RIDGES))
    for pick in np.sort(picks):
        g, ch = divmod(int(pick), m)
        live = np.flatnonzero(mats[g, ch])
        ranked = live[np.argsort(-np.abs(mats[g, ch, live]), kind="stable")]
        for fraction in PROBE_KEPT:
            count = min(max(1, int(np.ceil(fraction * len(live)))), PROBE_SUPPORT) if len(live) else 0
            idx = np.sort(ranked[:count])
            if fit.has_bias:
                idx = np.append(idx, k)
            if len(idx):
                errors += _probe_errors(fit, val, g, ch, idx)
    return RIDGES[int(np.argmin(errors))] if np.isfinite(errors).any() else RIDGES[-1]


def _probe_errors(fit: Stats, val: Stats, g: int, ch: int, idx: np.ndarray) -> np.ndarray:
    """Validation error of one channel's refit on ``idx`` for each ridge (inf where the system is not definite)."""
    A, c = fit.A[g][np.ix_(idx, idx)], fit.C[g, idx, ch]
    Av, cv, yv = val.A[g][np.ix_(idx, idx)], val.C[g, idx, ch], val.yy[g, ch]
    scale = ridge_scale(fit.A[g])
    out = np.full(len(RIDGES), np.inf)
    for i, ridge in enumerate(RIDGES):
        try:
            w = scipy.linalg.cho_solve(scipy.linalg.cho_factor(A + ridge * scale * np.eye(len(idx)),
                                                               check_finite=False), c, check_finite=False)
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
        self.valq = Quadratic(val)
        tell(1, 4)
        ridge = probe_ridge(fit, val, mats)
        tell(2, 4)
        order = ob.frame_order(fit, mats)
        fac = None
        for ridge in RIDGES[RIDGES.index(ridge):]:  # a larger ridge when the Gram is not definite at this one
            if (fac := ob.factor(fit, ridge, order)) is not None:
                break
        if fac is None:
            raise np.linalg.LinAlgError("the fitting Gram is not positive definite even at the largest ridge")
        self.fac = fac
        tell(3, 4)
        self.w0, self.base = ob.start(fac, fit)
        alive = self.weights_in_frame(mats != 0, True)
        inputs = self.weights_in_frame(np.ones(mats.shape, dtype=bool), False)  # every input, not the bias
        self.removable, self.forced = alive & inputs, ~alive & inputs
        self.plan = plan(fit, max(top.shape[0] for _, top, _ in self.valq.factors))
        tell(4, 4)

    @property
    def ridge(self) -> float:
        """The relative ridge of every refit of this layer."""
        return self.fac.ridge

    def weights_in_frame(self, mats: np.ndarray, bias) -> np.ndarray:
        """G x M x K weights (and the G x M bias, or a value for it) as G x K1 x M in the frame."""
        groups, m, _ = mats.shape
        rows = [mats.transpose(0, 2, 1)]
        if self.fit.has_bias:
            rows.append(np.broadcast_to(np.asarray(bias, dtype=mats.dtype), (groups, m))[:, None, :])
        return ob.to_frame(self.fac, np.concatenate(rows, axis=1))

    def split(self, w: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """G x K1 x M input-order weights as (G x M x K weights, G x M bias or None)."""
        k = self.fit.k
        mats = np.ascontiguousarray(w[:, :k].transpose(0, 2, 1))
        return mats, (np.ascontiguousarray(w[:, k]) if self.fit.has_bias else None)

    def current(self) -> tuple[float, float]:
        """(fitting, validation) relative errors of the weights as they are."""
        fit_error = _relative(output_error(self.fit, self.mats, self.bias), self.fit)
        w = np.concatenate([self.mats, self.bias[..., None]], 2) if self.fit.has_bias else self.mats
        return fit_error, self.valq.relative(np.ascontiguousarray(w.transpose(0, 2, 1)))

    def at(self, q: int) -> list[tuple[str, np.ndarray, np.ndarray | None, float, float]]:
        """(support, weights, bias, fitting error, validation error) for each support of the plan at count q."""
        take = int(self.removable.sum()) - q
        out = []
        for kind in self.plan.supports:
            if kind == "greedy":
                w, added = ob.sweep(self.fac, self.w0, self.removable, self.forced, take=take)
            else:
                kept = self.weights_in_frame(magnitude_support(self.mats, q), True)
                w, added = ob.sweep(self.fac, self.w0, self.removable, self.forced, fixed=self.removable & ~kept)
            w = ob.from_frame(self.fac, w)
            ridged = self.base + added  # the ridged fitting error of each channel
            if self.plan.polish:
                w, gain = ob.polish(self.fit, self.fac.lam, w != 0, w, self.plan.polish)
                ridged -= gain
            unridged = ridged.sum() - np.einsum("g,gkm,gkm->", self.fac.lam, w, w)
            mats, bias = self.split(w)
            out.append((kind, mats, bias, _relative(unridged, self.fit), self.valq.relative(w)))
        return out


def _relative(error: float, stats: Stats) -> float:
    """sqrt(error / Σy²), 0 for an all-zero Y."""
    total = stats.total()
    return float(np.sqrt(max(error, 0.0) / total)) if total > 0 else 0.0
