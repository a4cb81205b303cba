"""Energy-aware pruning of a trained ONNX CNN (Yang, Chen, Sze, CVPR 2017; docs/prune.md, "The algorithm").

``prune(model, hw, data, ...) -> PruneResult``. ``data`` is split into a fitting part (the least squares
fits on it) and a validation part (kept counts, supports and ridges are chosen on it; see ``eyesim.prune.data``).
Each pass estimates the energy of every layer with eyesim's own estimate, then prunes the layers from the most
energy-hungry down, each once (then frozen):

- ``energy-aware`` (default): the layer's inputs X are taken from the network as pruned so far and its
  target outputs Y from the original network; for a kept count q, weights are removed by magnitude and by the
  greedy output-error elimination, refitted by least squares (``eyesim.prune.restore.Candidates``). A step
  that would raise the network's estimated energy (a refit can make activations denser) is undone.
- ``magnitude``: the q weights of largest magnitude are kept as they are (no restore), the baseline.

q is the smallest count (bisection, to 1/256 of the layer's weights) that meets the rule on the validation
part: top-1 accuracy at or above the unpruned accuracy minus ``max_drop`` points (and ``min_accuracy``), or,
label-free, a relative output error ‖Y − Ŷ‖/‖Y‖ of the layer at most ``max_output_error``. Passes repeat while
one prunes anything, at most ``passes`` times; an optional ``finetune`` callable (``eyesim.prune.finetune``)
runs between passes. ``eval_data`` is only ever reported, and a fall of more than ``max_drop`` points on it
marks the result as failed.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable

import numpy as np
import onnx
from onnx import numpy_helper

from eyesim.errors import EyesimError
from eyesim.prune.layers import LinearLayer, initializer_arrays
from eyesim.prune.progress import Progress, Silent
from eyesim.prune.restore import Candidate, Candidates, layer_stats
from eyesim.prune.result import PruneResult, Rule, Step, Totals
from eyesim.prune.run import Run, eval_failure
from eyesim.workload.onnx.run import Samples

METHODS = ("energy-aware", "magnitude")
RESOLUTION = 256  # the kept count is searched to 1/RESOLUTION of the layer's current non-zero weights
Weights = dict[str, np.ndarray]
Finetune = Callable[[onnx.ModelProto, Weights, Samples], Weights]


def prune(model: onnx.ModelProto, hw, data: Samples, eval_data: Samples | None = None, *,
          method: str = "energy-aware", max_drop: float = 1.0, min_accuracy: float | None = None,
          max_output_error: float | None = None, validation: Samples | None = None,
          validation_fraction: float = 0.2, passes: int = 1, finetune: Finetune | None = None,
          freeze: tuple[str, ...] = (), progress: Progress | None = None) -> PruneResult:
    """Prune ``model`` (with weights) for ``hw`` (path or Hardware); see the module docstring."""
    if method not in METHODS:
        raise EyesimError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    rule = Rule(max_drop, min_accuracy, max_output_error)
    run = _WeightRun(model, hw, method, rule, progress or Silent(), freeze)
    run.prepare(data, validation, validation_fraction, eval_data)
    if method == "energy-aware":
        run.check_determined()
    if finetune is not None and run.fit.y is None:
        raise EyesimError("fine-tuning needs labels in --data")
    return run_passes(run, passes, method, finetune)


def run_passes(run, passes: int, method: str, finetune: Finetune | None = None) -> PruneResult:
    """Passes of ``run.one_pass`` while one prunes anything; the result with before/after totals."""
    before = run.totals()
    run.set_threshold(before)
    easier = easier_than_held_out(before, len(run.val), None if run.eval is None else len(run.eval))
    if easier:
        run.warnings.append(easier)
        run.progress.warn(easier)
    steps: list[Step] = []
    for pass_no in range(1, passes + 1):
        done = run.one_pass(pass_no)
        steps += done
        if finetune is not None:
            run.finetune(finetune)
        if not any(s.nonzero_after < s.nonzero_before for s in done):
            break
    after = run.totals()
    return PruneResult(run.as_model(run.state), method, run.rule, run.threshold, before, after, steps, run.sources,
                       run.hw.source or run.hw.name, run.warnings, eval_failure(run.rule, before, after))


def easier_than_held_out(before: Totals, n_val: int, n_eval: int | None) -> str | None:
    """A warning when the validation part scores clearly above --eval (more than two standard errors of the
    difference, and more than a point): samples the model was trained on make the rule optimistic."""
    if n_eval is None or before.accuracy_val is None or before.accuracy_eval is None:
        return None
    p, q = before.accuracy_val / 100, before.accuracy_eval / 100
    se = 100 * np.sqrt(p * (1 - p) / n_val + q * (1 - q) / n_eval)
    gap = before.accuracy_val - before.accuracy_eval
    if gap <= max(2 * se, 1.0):
        return None
    return (f"the validation part scores {before.accuracy_val:.1f}% but the held-out samples "
            f"{before.accuracy_eval:.1f}%: the choosing samples look easier (images the model was trained on?), "
            "so the rule checked on them is optimistic; choose on samples the model never saw")


def with_weights(model: onnx.ModelProto, weights: Weights) -> onnx.ModelProto:
    """A copy of ``model`` whose initializers named in ``weights`` hold the given arrays."""
    out = copy.deepcopy(model)
    for init in out.graph.initializer:
        if init.name in weights:
            init.CopyFrom(numpy_helper.from_array(weights[init.name], init.name))
    return out


class _WeightRun(Run):
    """Unstructured pruning: the state is the weights of the original graph, fed to one onnxruntime session."""

    def __init__(self, model: onnx.ModelProto, hw, method: str, rule: Rule, progress: Progress,
                 freeze: tuple[str, ...]) -> None:
        super().__init__(model, hw, rule, progress, freeze)
        self.method = method
        self.original = initializer_arrays(self.base, self.params)
        self.state: Weights = {k: v.copy() for k, v in self.original.items()}

    def as_model(self, state: Weights) -> onnx.ModelProto:
        return with_weights(self.base, state)

    def predict(self, x: np.ndarray, state: Weights) -> np.ndarray:
        return self.runner.predict(x, state)

    def one_pass(self, pass_no: int) -> list[Step]:
        """Prune every layer once, most energy first."""
        shares = self.shares()
        order = [lay for lay in sorted(self.layers, key=lambda lay: -shares.get(lay.name, 0.0))
                 if lay.name not in self.frozen and np.count_nonzero(self.state[lay.weight])]
        steps, energy = [], shares[""]
        for index, lay in enumerate(order):
            self.progress.layer(lay.name, pass_no, index, len(order))
            steps.append(self.prune_layer(lay, pass_no, shares.get(lay.name, 0.0), energy))
            energy = steps[-1].energy_after
            self.progress.done(steps[-1])
        return steps

    def finetune(self, tune: Finetune) -> None:
        """Global fine-tuning on the fitting part; kept only if the validation part still meets the rule."""
        tuned = tune(self.base, self.state, self.fit)
        if self.accepts(tuned):
            self.state = tuned

    def candidates(self, lay: LinearLayer) -> Candidates:
        """The layer's candidates: statistics of the network as pruned so far against the original's outputs."""
        x_fit, x_val = (self.runner.run(x, [lay.x], self.state)[0] for x in (self.x_fit, self.x_val))
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            fit = layer_stats(lay, x_fit, self.original_tensor(lay.y, "fit"))
            val = layer_stats(lay, x_val, self.original_tensor(lay.y, "val"))
        mats = lay.matrices(self.state[lay.weight]).astype(np.float64)
        bias = lay.bias_vector(self.state[lay.bias]) if lay.bias else None
        return Candidates(fit, val, mats, bias, self.method)

    def prune_layer(self, lay: LinearLayer, pass_no: int, share: float, energy_before: float) -> Step:
        """Search the smallest kept count meeting the rule, and keep those weights unless energy rises."""
        started = time.perf_counter()
        candidates = self.candidates(lay)
        nonzero = int(np.count_nonzero(candidates.mats))
        trials: dict[int, tuple[bool, Candidate, Weights]] = {}

        def passes(q: int) -> bool:
            if q not in trials:
                self.progress.trial(q, nonzero)
                cand = candidates.at(q) if q < nonzero else candidates.current()
                weights = self._weights(lay, cand)
                meets = cand.val_error <= self.rule.max_output_error if self.rule.label_free else self.accepts(weights)
                trials[q] = (meets, cand, weights)
            return trials[q][0]

        if not passes(nonzero):
            return self._step(lay, pass_no, share, nonzero, trials[nonzero][1], len(trials), energy_before,
                              energy_before, started)
        q = smallest_passing(passes, nonzero, max(1, nonzero // RESOLUTION))
        _, cand, weights = trials[q]
        energy_after = self.energy(weights) if q < nonzero else energy_before
        if self.method == "energy-aware" and energy_after > energy_before:
            cand, weights, energy_after = candidates.current(), self.state, energy_before
            cand = Candidate(cand.mats, cand.bias, cand.fit_error, cand.val_error, "undone: energy rose", 0.0)
        self.state = weights
        return self._step(lay, pass_no, share, nonzero, cand, len(trials), energy_before, energy_after, started)

    def _weights(self, lay: LinearLayer, cand: Candidate) -> Weights:
        """All current weights with ``lay``'s replaced by the candidate's."""
        out = dict(self.state)
        out[lay.weight] = lay.tensor(cand.mats, self.state[lay.weight].dtype)
        if lay.bias and cand.bias is not None:
            old = self.state[lay.bias]
            out[lay.bias] = lay.bias_tensor(cand.bias, old.shape, old.dtype)
        return out

    def _step(self, lay: LinearLayer, pass_no: int, share: float, before: int, cand: Candidate, trials: int,
              energy_before: float, energy_after: float, started: float) -> Step:
        after = int(np.count_nonzero(self.state[lay.weight]))
        return Step(pass_no, lay.name, lay.op, share, int(np.prod(lay.weight_shape)), before, after, cand.fit_error,
                    cand.val_error, cand.support, cand.ridge, self.accuracy("fit", self.state),
                    self.accuracy("val", self.state), self.accuracy("eval", self.state), energy_before,
                    energy_after, trials, time.perf_counter() - started)


def smallest_passing(passes: Callable[[int], bool], hi: int, tol: int) -> int:
    """Bisection for the smallest count in (0, hi] that passes, ``hi`` passing; stops within ``tol``."""
    lo = 0
    while hi - lo > tol:
        mid = (lo + hi) // 2
        if passes(mid):
            hi = mid
        else:
            lo = mid
    return hi

