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
from eyesim.prune import data as checks
from eyesim.prune.layers import LinearLayer, initializer_arrays, prunable_layers
from eyesim.prune.progress import Progress, Silent
from eyesim.prune.restore import Candidate, Candidates, layer_stats
from eyesim.prune.result import PruneResult, Rule, Step, Totals
from eyesim.workload.onnx.run import Runner, Samples, check_samples

METHODS = ("energy-aware", "magnitude")
RESOLUTION = 256  # the kept count is searched to 1/RESOLUTION of the layer's current non-zero weights
Weights = dict[str, np.ndarray]
Finetune = Callable[[onnx.ModelProto, Weights, Samples], Weights]


def prune(model: onnx.ModelProto, hw, data: Samples, eval_data: Samples | None = None, *,
          method: str = "energy-aware", max_drop: float = 1.0, min_accuracy: float | None = None,
          max_output_error: float | None = None, validation: Samples | None = None,
          validation_fraction: float = 0.2, passes: int = 3, finetune: Finetune | None = None,
          progress: Progress | None = None) -> PruneResult:
    """Prune ``model`` (with weights) for ``hw`` (path or Hardware); see the module docstring."""
    rule = Rule(max_drop, min_accuracy, max_output_error)
    run = _Run(model, hw, method, rule, progress or Silent())
    run.prepare(data, validation, validation_fraction, eval_data)
    if finetune is not None and run.fit.y is None:
        raise EyesimError("fine-tuning needs labels in --data")
    before = run.totals()
    run.set_threshold(before)
    steps: list[Step] = []
    for pass_no in range(1, passes + 1):
        done = run.one_pass(pass_no)
        steps += done
        if finetune is not None:
            run.finetune(finetune)
        if not any(s.nonzero_after < s.nonzero_before for s in done):
            break
    after = run.totals()
    return PruneResult(run.model(), method, rule, run.threshold, before, after, steps, run.sources,
                       run.hw.source or run.hw.name, run.warnings, _eval_failure(rule, before, after))


def _eval_failure(rule: Rule, before: Totals, after: Totals) -> str | None:
    """Why the held-out check failed (None when it passed or there is no held-out accuracy)."""
    if before.accuracy_eval is None or after.accuracy_eval >= before.accuracy_eval - rule.max_drop - 1e-9:
        return None
    return (f"held-out accuracy fell {before.accuracy_eval - after.accuracy_eval:.2f} points "
            f"({before.accuracy_eval:.2f}% -> {after.accuracy_eval:.2f}%), more than the allowed {rule.max_drop:g}")


def with_weights(model: onnx.ModelProto, weights: Weights) -> onnx.ModelProto:
    """A copy of ``model`` whose initializers named in ``weights`` hold the given arrays."""
    out = copy.deepcopy(model)
    for init in out.graph.initializer:
        if init.name in weights:
            init.CopyFrom(numpy_helper.from_array(weights[init.name], init.name))
    return out


def energy_estimate(model: onnx.ModelProto, hw, x: np.ndarray):
    """eyesim's estimate at batch 1, with the sparsity the samples ``x`` show."""
    from eyesim.estimator import estimate

    return estimate(model, hw, batch=1, samples=x)


def total_energy(result) -> float:
    """The estimate's energy summed over layers (normalized units)."""
    return float(sum(lr.energy.total for lr in result.layers))


class _Run:
    """The state of one pruning run: current weights, the samples and their parts, the session, the rule."""

    def __init__(self, model: onnx.ModelProto, hw, method: str, rule: Rule, progress: Progress) -> None:
        from eyesim.hardware.load import load_hardware
        from eyesim.hardware.spec import Hardware

        if method not in METHODS:
            raise EyesimError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
        rule.check()
        self.layers = prunable_layers(model)
        self.hw = hw if isinstance(hw, Hardware) else load_hardware(hw)
        names = {lay.weight for lay in self.layers} | {lay.bias for lay in self.layers if lay.bias}
        self.original = initializer_arrays(model, names)
        self.current: Weights = {k: v.copy() for k, v in self.original.items()}
        self.base, self.method, self.rule, self.progress = model, method, rule, progress
        self.runner = Runner(model, names)
        self.threshold = -np.inf
        self._targets: dict[tuple[str, str], np.ndarray] = {}

    def prepare(self, data: Samples, validation: Samples | None, fraction: float, eval_data: Samples | None) -> None:
        """Check the samples (before any work), split them, and keep their inputs in the model's element type."""
        need_labels = not self.rule.label_free
        for part in (data, validation, eval_data):
            if part is not None:
                check_samples(self.base, part)
                checks.check_finite(part)
                if part.y is None and (need_labels or part is eval_data):
                    raise EyesimError(f"{part.source}: no labels (give 'y', or use --max-output-error without labels)")
        classes = self.runner.classes(check_samples(self.base, data.head(1)))
        if not 0 < fraction < 1 and validation is None:
            raise EyesimError(f"--validation-fraction {fraction:g}: must be between 0 and 1")
        self.fit, self.val = (data, validation) if validation is not None else checks.split(data, fraction)
        self.warnings: list[str] = []
        for part in (data, self.val, eval_data):  # the fitting part need not hold every class
            if part is not None and part.y is not None:
                checks.check_labels(part, classes)
        for part in (data, validation):
            if part is not None:
                self.warnings += checks.mix_warnings(part, classes, eval_data)
        for line in self.warnings:
            self.progress.warn(line)
        self.eval = eval_data
        self.x_fit, self.x_val = check_samples(self.base, self.fit), check_samples(self.base, self.val)
        self.x_all = np.concatenate([self.x_fit, self.x_val])
        self.x_eval = None if eval_data is None else check_samples(self.base, eval_data)
        self.sources = (self.fit.source, self.val.source, None if eval_data is None else eval_data.source)
        if self.method == "energy-aware":
            self._check_determined()

    def _check_determined(self) -> None:
        """EyesimError when a layer's least squares has fewer fitting rows than live inputs per output."""
        inputs = self.runner.run(self.x_fit, [lay.x for lay in self.layers], self.original)
        for lay, x in zip(self.layers, inputs, strict=True):
            rows, live = lay.rows(x), lay.live_inputs(x)
            if rows < live:
                raise EyesimError(f"layer {lay.name}: its least-squares restore fits {live:,} live inputs per output "
                                  f"and needs at least {live:,} fitting samples, {self.fit.source} gives {rows:,} "
                                  "rows; give more samples or a smaller --validation-fraction")

    def set_threshold(self, before: Totals) -> None:
        """The unpruned model's per-sample correctness on the validation part, and the accuracy floor."""
        if self.rule.label_free:
            return
        if self.rule.min_accuracy is not None and before.accuracy_val < self.rule.min_accuracy:
            raise EyesimError(f"the unpruned model already misses the accuracy target: {before.accuracy_val:.2f}% on "
                              f"{self.val.source} < --min-accuracy {self.rule.min_accuracy:g}%")
        self.threshold = self.rule.min_accuracy if self.rule.min_accuracy is not None else -np.inf
        self.base_ok = self.correct(self.original)

    def correct(self, weights: Weights) -> np.ndarray:
        """Per validation sample: is the top-1 prediction right."""
        return self.runner.predict(self.x_val, weights) == self.val.y

    def model(self) -> onnx.ModelProto:
        return with_weights(self.base, self.current)

    def accuracy(self, part: str, weights: Weights) -> float | None:
        """Top-1 (percent) on the fitting, validation or eval part; None without labels."""
        samples, x = {"fit": (self.fit, self.x_fit), "val": (self.val, self.x_val),
                      "eval": (self.eval, self.x_eval)}[part]
        if samples is None or samples.y is None:
            return None
        return self.runner.accuracy(samples, x, weights)

    def energy(self, weights: Weights) -> float:
        return total_energy(energy_estimate(with_weights(self.base, weights), self.hw, self.x_all))

    def totals(self) -> Totals:
        """Energy, weights and accuracy of the current model."""
        result = energy_estimate(self.model(), self.hw, self.x_all)
        weights = [self.current[lay.weight] for lay in self.layers]
        return Totals(energy=total_energy(result), weights=sum(w.size for w in weights),
                      nonzero=sum(int(np.count_nonzero(w)) for w in weights),
                      macs=int(sum(lr.energy.macs for lr in result.layers)),
                      macs_executed=sum(int(lr.energy.macs_executed) for lr in result.layers),
                      accuracy=self.accuracy("fit", self.current), accuracy_val=self.accuracy("val", self.current),
                      accuracy_eval=self.accuracy("eval", self.current))

    def one_pass(self, pass_no: int) -> list[Step]:
        """Prune every layer once, most energy first."""
        result = energy_estimate(self.model(), self.hw, self.x_all)
        energy = {lr.layer.name: lr.energy.total for lr in result.layers}
        total = sum(energy.values()) or 1.0
        order = [lay for lay in sorted(self.layers, key=lambda lay: -energy.get(lay.name, 0.0))
                 if np.count_nonzero(self.current[lay.weight])]
        steps = []
        for index, lay in enumerate(order):
            self.progress.layer(lay.name, pass_no, index, len(order))
            steps.append(self.prune_layer(lay, pass_no, energy.get(lay.name, 0.0) / total, total_energy(result)))
            self.progress.done(steps[-1])
        return steps

    def finetune(self, tune: Finetune) -> None:
        """Global fine-tuning on the fitting part; kept only if the validation part still meets the rule."""
        tuned = tune(self.base, self.current, self.fit)
        if self.rule.accepts(self.base_ok, self.correct(tuned)):
            self.current = tuned

    def target(self, lay: LinearLayer, part: str) -> np.ndarray:
        """The original network's output of ``lay`` on the fitting or validation part (cached)."""
        if (lay.name, part) not in self._targets:
            x = self.x_fit if part == "fit" else self.x_val
            self._targets[lay.name, part] = self.runner.run(x, [lay.y], self.original)[0]
        return self._targets[lay.name, part]

    def candidates(self, lay: LinearLayer) -> Candidates:
        """The layer's candidates: statistics of the network as pruned so far against the original's outputs."""
        x_fit, x_val = (self.runner.run(x, [lay.x], self.current)[0] for x in (self.x_fit, self.x_val))
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            fit = layer_stats(lay, x_fit, self.target(lay, "fit"))
            val = layer_stats(lay, x_val, self.target(lay, "val"))
        mats = lay.matrices(self.current[lay.weight]).astype(np.float64)
        bias = lay.bias_vector(self.current[lay.bias]) if lay.bias else None
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
                trials[q] = (self.meets(cand, weights), cand, weights)
            return trials[q][0]

        if not passes(nonzero):
            return self._step(lay, pass_no, share, nonzero, trials[nonzero][1], len(trials), energy_before,
                              energy_before, started)
        q = smallest_passing(passes, nonzero, max(1, nonzero // RESOLUTION))
        _, cand, weights = trials[q]
        energy_after = self.energy(weights) if q < nonzero else energy_before
        if self.method == "energy-aware" and energy_after > energy_before:
            cand, weights, energy_after = candidates.current(), self.current, energy_before
            cand = Candidate(cand.mats, cand.bias, cand.fit_error, cand.val_error, "undone: energy rose", 0.0)
        self.current = weights
        return self._step(lay, pass_no, share, nonzero, cand, len(trials), energy_before, energy_after, started)

    def meets(self, cand: Candidate, weights: Weights) -> bool:
        """The rule on the validation part."""
        if self.rule.label_free:
            return cand.val_error <= self.rule.max_output_error
        return self.rule.accepts(self.base_ok, self.correct(weights))

    def _weights(self, lay: LinearLayer, cand: Candidate) -> Weights:
        """All current weights with ``lay``'s replaced by the candidate's."""
        out = dict(self.current)
        out[lay.weight] = lay.tensor(cand.mats, self.current[lay.weight].dtype)
        if lay.bias and cand.bias is not None:
            old = self.current[lay.bias]
            out[lay.bias] = lay.bias_tensor(cand.bias, old.shape, old.dtype)
        return out

    def _step(self, lay: LinearLayer, pass_no: int, share: float, before: int, cand: Candidate, trials: int,
              energy_before: float, energy_after: float, started: float) -> Step:
        after = int(np.count_nonzero(self.current[lay.weight]))
        return Step(pass_no, lay.name, lay.op, share, int(np.prod(lay.weight_shape)), before, after, cand.fit_error,
                    cand.val_error, cand.support, cand.ridge, self.accuracy("fit", self.current),
                    self.accuracy("val", self.current), self.accuracy("eval", self.current), energy_before,
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

