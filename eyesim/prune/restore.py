"""Output-feature-map restoration for one layer (docs/prune.md, "The algorithm", steps 2-4): ``Candidates``.

``Candidates(fit, val, mats, bias, method)`` gives a layer's restored weights at any kept count q (``at(q)``),
fitted on the fitting part's statistics (``eyesim.prune.stats``), judged (support and ridge) on the validation
part's. Two paths, by a cost estimate: the exact greedy's work Σ_groups M·K1³ (``exact_work``) against EXACT_WORK:

- small layers, exactly as before (``eyesim.prune.greedy``): the greedy backward elimination of every output
  channel (ridge chosen at the full support), then at each q the greedy and the magnitude supports, each
  refitted exactly with every ridge of RIDGES (a ridge pulling toward zero); the (support, ridge) with the least
  validation error wins. One BLAS thread: the work is many small solves.
- large layers (``eyesim.prune.large``, ``eyesim.prune.sweep``): at each q a ridge chosen on validation by a
  cheap probe, and a blocked OBS sweep (SparseGPT-style: one Cholesky factor of the Gram shared by all channels)
  that gives the support and its restored weights in O(M·K²) instead of O(M·K³); the ridge there pulls toward
  the current weights (SparseGPT's dampening), so a large ridge no longer shrinks the weights that stay; the
  magnitude support and exact-refit steps are added while they fit a per-count budget. The large products use
  every core, the rest one thread.

The names other modules use (``Stats``, ``layer_stats``, ``RIDGES``, ``refit``, ...) are re-exported here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from eyesim.prune.greedy import RIDGES, eliminate, greedy_support, magnitude_support, refit, removal_sequence
from eyesim.prune.large import LargeLayer
from eyesim.prune.stats import Quadratic, Stats, layer_stats, one_thread, output_error, relative_error, ridged

__all__ = ["RIDGES", "EXACT_WORK", "Candidate", "Candidates", "Stats", "eliminate", "exact_work", "greedy_support",
           "layer_stats", "magnitude_support", "output_error", "refit", "relative_error", "removal_sequence",
           "ridged"]

# The exact greedy's per-layer work (elimination, full-support refits, ~10 counts of 12 refits) took about 6.5e-9 s
# per unit of M·K1³ on one thread of the reference machine (2 cores, shared): 2e10 is about two minutes. Above it
# (AlexNet from conv2 on, the AlexNet-MNIST model's fc6; LeNet-5 stays exact) the large-layer path.
EXACT_WORK = 2e10
Progress = Callable[[int, int], None]


def exact_work(fit: Stats, mats: np.ndarray) -> float:
    """The exact greedy's work on a layer, Σ over groups of M·K1³ (its elimination is O(K1³) per channel)."""
    groups, k1, _ = fit.A.shape
    return float(groups * mats.shape[1] * k1 ** 3)


@dataclass(frozen=True)
class Candidate:
    """A layer's weights at one kept count, with their relative output errors ‖Y − Ŷ‖/‖Y‖ on both parts."""

    mats: np.ndarray  # G x M x K
    bias: np.ndarray | None  # G x M
    fit_error: float
    val_error: float
    support: str  # "greedy", "magnitude" or "unchanged"
    ridge: float  # the relative ridge of the refit (0 when not refitted; large layers: pulling toward the weights)


class Candidates:
    """The restored weights of one layer at any kept count q (module docstring).

    ``method`` "energy-aware": restored as above; "magnitude": the q largest weights unchanged. ``large``
    forces a path (None: by ``exact_work``). ``progress(done, total)`` is told during the precomputation.
    """

    def __init__(self, fit: Stats, val: Stats, mats: np.ndarray, bias: np.ndarray | None, method: str,
                 progress: Progress | None = None, *, large: bool | None = None) -> None:
        self.fit, self.val, self.mats, self.bias, self.method = fit, val, mats, bias, method
        self.alive = mats != 0
        self.large = exact_work(fit, mats) > EXACT_WORK if large is None else large
        self.sequence = None
        self.engine: LargeLayer | None = None
        self._quadratics: tuple[Quadratic, Quadratic] | None = None
        if method != "energy-aware":
            return
        with one_thread():  # many small solves or per-row work; the large products take every core themselves
            if self.large:
                self.engine = LargeLayer(fit, val, mats, bias, progress)
                return
            ridge = self._best_refit(self.alive, "greedy").ridge
            self.sequence = removal_sequence(fit, self.alive, ridge, progress)

    def current(self) -> Candidate:
        """The layer's weights as they are."""
        if self.engine is not None:
            with one_thread():
                return Candidate(self.mats, self.bias, *self.engine.current(), "unchanged", 0.0)
        return self._judge(self.mats, self.bias, "unchanged", 0.0)

    def at(self, q: int) -> Candidate:
        """The candidate that keeps ``q`` weights."""
        if self.method == "magnitude":
            return self._judge(self.mats * magnitude_support(self.mats, q), self.bias, "magnitude", 0.0)
        with one_thread():
            if self.engine is not None:
                return min((Candidate(*restored) for restored in self.engine.at(q)), key=lambda c: c.val_error)
            magnitude = magnitude_support(self.mats, q)
            greedy = greedy_support(self.alive, self.sequence, q)
            return min(self._best_refit(greedy, "greedy"), self._best_refit(magnitude, "magnitude"),
                       key=lambda c: c.val_error)

    def _best_refit(self, support: np.ndarray, kind: str) -> Candidate:
        refits = (refit(self.fit, support, ridge)[:2] + (ridge,) for ridge in RIDGES)
        return min((self._judge(mats, bias, kind, ridge) for mats, bias, ridge in refits), key=lambda c: c.val_error)

    def _judge(self, mats: np.ndarray, bias: np.ndarray | None, kind: str, ridge: float) -> Candidate:
        if not self.large:
            return Candidate(mats, bias, relative_error(self.fit, mats, bias), relative_error(self.val, mats, bias),
                             kind, ridge)
        if self._quadratics is None:  # large layers, magnitude method: factor once, O(M·K·r) per count
            with one_thread():
                self._quadratics = Quadratic(self.fit), Quadratic(self.val)
        with one_thread():
            fit_error, val_error = (part.relative(mats, bias) for part in self._quadratics)
        return Candidate(mats, bias, fit_error, val_error, kind, ridge)
