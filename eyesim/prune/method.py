"""Energy-aware pruning of a trained ONNX CNN (Yang, Chen, Sze, CVPR 2017; docs/prune.md, "The algorithm").

``prune(model, hw, data, ...) -> PruneResult``. Each pass estimates the energy of every layer with eyesim's own
estimate (the model's measured sparsity on the ``data`` inputs), then prunes the layers from the most
energy-hungry down, each once (then frozen):

- ``energy-aware`` (default): the layer's inputs X are taken from the network as pruned so far and its
  target outputs Y from the original network; for a kept count q, weights are removed by magnitude and by the
  greedy output-error elimination (``eyesim.prune.restore``), both supports are refitted by closed-form least
  squares, and the one with the smaller output-feature-map error ‖Y − Ŷ‖ is kept.
- ``magnitude``: the q weights of largest magnitude are kept as they are (no restore), the baseline.

q is the smallest count (bisection, to 1/256 of the layer's weights) at which the top-1 accuracy on ``data``
stays at or above the threshold (the unpruned accuracy minus ``max_drop`` points, and at least
``min_accuracy``). Passes repeat while one prunes anything, at most ``passes`` times; an optional
``finetune`` callable (global back-propagation, ``eyesim.prune.finetune``) runs between and after passes. Accuracy
reported "after" comes from ``eval_data`` when given (never used for choosing).
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable

import numpy as np
import onnx
from onnx import numpy_helper

from eyesim.errors import EyesimError
from eyesim.prune import restore
from eyesim.prune.layers import LinearLayer, initializer_arrays, prunable_layers
from eyesim.prune.result import PruneResult, Step, Totals
from eyesim.workload.onnx.run import Runner, Samples, check_samples

METHODS = ("energy-aware", "magnitude")
RESOLUTION = 256  # the kept count is searched to 1/RESOLUTION of the layer's current non-zero weights
Weights = dict[str, np.ndarray]
Finetune = Callable[[onnx.ModelProto, Weights, Samples], Weights]


def prune(model: onnx.ModelProto, hw, data: Samples, eval_data: Samples | None = None, *,
          method: str = "energy-aware", max_drop: float = 1.0, min_accuracy: float | None = None,
          passes: int = 3, finetune: Finetune | None = None,
          progress: Callable[[str], None] | None = None) -> PruneResult:
    """Prune ``model`` (with weights) for ``hw`` (path or Hardware); see the module docstring."""
    if method not in METHODS:
        raise EyesimError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    run = _Run(model, hw, data, eval_data, method, progress or (lambda _: None))
    acc0 = run.accuracy(run.current)
    threshold = max(acc0 - max_drop, -np.inf if min_accuracy is None else min_accuracy)
    if min_accuracy is not None and acc0 < min_accuracy:
        raise EyesimError(f"the unpruned model already misses the accuracy target: {acc0:.2f}% on {data.source} "
                          f"< --min-accuracy {min_accuracy:g}%")
    run.threshold = threshold
    before = run.totals()
    steps: list[Step] = []
    for pass_no in range(1, passes + 1):
        done = run.one_pass(pass_no)
        steps += done
        if finetune is not None:
            run.finetune(finetune)
        if not any(s.nonzero_after < s.nonzero_before for s in done):
            break
    return PruneResult(run.model(), method, threshold, before, run.totals(), steps, data.source,
                       None if eval_data is None else eval_data.source)


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


def executed_macs(layer_result) -> int:
    """MACs that run (zero gating skips the others), from a layer result."""
    return int(layer_result.energy.macs_executed)


class _Run:
    """The state of one pruning run: current weights, the sessions, the threshold."""

    def __init__(self, model: onnx.ModelProto, hw, data: Samples, eval_data: Samples | None, method: str,
                 progress: Callable[[str], None]) -> None:
        from eyesim.hardware.load import load_hardware
        from eyesim.hardware.spec import Hardware

        self.layers = prunable_layers(model)
        self.hw = hw if isinstance(hw, Hardware) else load_hardware(hw)
        names = {lay.weight for lay in self.layers} | {lay.bias for lay in self.layers if lay.bias}
        self.original = initializer_arrays(model, names)
        self.current: Weights = {k: v.copy() for k, v in self.original.items()}
        self.base = model
        self.runner = Runner(model, names)
        self.data, self.x = data, check_samples(model, data)
        self.eval_data = eval_data
        self.x_eval = None if eval_data is None else check_samples(model, eval_data)
        self.method, self.progress = method, progress
        self.threshold = -np.inf
        self._targets: dict[str, np.ndarray] = {}

    def model(self) -> onnx.ModelProto:
        return with_weights(self.base, self.current)

    def accuracy(self, weights: Weights) -> float:
        return self.runner.accuracy(self.data, self.x, weights)

    def accuracy_eval(self, weights: Weights) -> float | None:
        return None if self.eval_data is None else self.runner.accuracy(self.eval_data, self.x_eval, weights)

    def totals(self) -> Totals:
        """Energy, weights and accuracy of the current model."""
        result = energy_estimate(self.model(), self.hw, self.x)
        weights = [self.current[lay.weight] for lay in self.layers]
        return Totals(energy=float(sum(lr.energy.total for lr in result.layers)),
                      weights=sum(w.size for w in weights), nonzero=sum(int(np.count_nonzero(w)) for w in weights),
                      macs=int(sum(lr.energy.macs for lr in result.layers)),
                      macs_executed=sum(executed_macs(lr) for lr in result.layers),
                      accuracy=self.accuracy(self.current), accuracy_eval=self.accuracy_eval(self.current))

    def one_pass(self, pass_no: int) -> list[Step]:
        """Prune every layer once, most energy first."""
        result = energy_estimate(self.model(), self.hw, self.x)
        energy = {lr.layer.name: lr.energy.total for lr in result.layers}
        total = sum(energy.values()) or 1.0
        order = sorted(self.layers, key=lambda lay: -energy.get(lay.name, 0.0))
        steps = []
        for lay in order:
            if np.count_nonzero(self.current[lay.weight]):
                steps.append(self.prune_layer(lay, pass_no, energy.get(lay.name, 0.0) / total))
                s = steps[-1]
                self.progress(f"pass {pass_no} {lay.name}: kept {s.nonzero_after:,}/{s.weights:,} weights, "
                              f"output error {100 * s.output_error:.1f}%, accuracy {s.accuracy:.2f}%")
        return steps

    def finetune(self, tune: Finetune) -> None:
        """Global fine-tuning; kept only if the data accuracy stays at or above the threshold."""
        tuned = tune(self.base, self.current, self.data)
        if self.accuracy(tuned) >= self.threshold:
            self.current = tuned

    def target(self, lay: LinearLayer) -> np.ndarray:
        """The original network's output of ``lay`` on the data samples (cached)."""
        if lay.name not in self._targets:
            self._targets[lay.name] = self.runner.run(self.x, [lay.y], self.original)[0]
        return self._targets[lay.name]

    def prune_layer(self, lay: LinearLayer, pass_no: int, share: float) -> Step:
        """Search the smallest kept count meeting the threshold, and keep those weights."""
        (x,) = self.runner.run(self.x, [lay.x], self.current)
        stats = restore.layer_stats(lay, x, self.target(lay))
        mats = lay.matrices(self.current[lay.weight]).astype(np.float64)
        candidates = _Candidates(lay, stats, mats, self.current, self.method)
        trials: dict[int, tuple[float, Weights, float, str]] = {}

        def passes(q: int) -> bool:
            if q not in trials:
                weights, err, kind = candidates.at(q)
                trials[q] = (self.accuracy(weights), weights, err, kind)
            return trials[q][0] >= self.threshold - 1e-9

        nonzero = int(np.count_nonzero(mats))
        if not passes(nonzero):
            return self._step(lay, pass_no, share, nonzero, nonzero, candidates.current_error(), "unchanged",
                              self.accuracy(self.current), len(trials))
        q = smallest_passing(passes, nonzero, max(1, nonzero // RESOLUTION))
        acc, weights, err, kind = trials[q]
        self.current = weights
        after = int(np.count_nonzero(weights[lay.weight]))
        return self._step(lay, pass_no, share, nonzero, after, err, kind, acc, len(trials))

    def _step(self, lay: LinearLayer, pass_no: int, share: float, before: int, after: int, err: float, kind: str,
              acc: float, trials: int) -> Step:
        return Step(pass_no, lay.name, lay.op, share, int(np.prod(lay.weight_shape)), before, after, err, kind, acc,
                    self.accuracy_eval(self.current), trials)


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


class _Candidates:
    """The weights of one layer at a kept count q, for the chosen method."""

    def __init__(self, lay: LinearLayer, stats: restore.Stats, mats: np.ndarray, current: Weights, method: str) -> None:
        self.lay, self.stats, self.mats, self.current, self.method = lay, stats, mats, current, method
        self.alive = mats != 0
        self.bias = lay.bias_vector(current[lay.bias]) if lay.bias else None
        self.sequence = None
        if method == "energy-aware":
            with _one_blas_thread():
                self.sequence = restore.removal_sequence(stats, self.alive)

    def current_error(self) -> float:
        return self._relative(restore.output_error(self.stats, self.mats, self.bias))

    def _relative(self, err: float) -> float:
        return float(np.sqrt(err / self.stats.total())) if self.stats.total() > 0 else 0.0

    def at(self, q: int) -> tuple[Weights, float, str]:
        """(all current weights with this layer's replaced, relative output error, support kind) at count q."""
        magnitude = restore.magnitude_support(self.mats, q)
        if self.method == "magnitude":
            mats, bias, kind = self.mats * magnitude, self.bias, "magnitude"
            err = restore.output_error(self.stats, mats, bias)
        else:
            mats, bias, err = restore.refit(self.stats, restore.greedy_support(self.alive, self.sequence, q))
            mats_m, bias_m, err_m = restore.refit(self.stats, magnitude)
            kind = "greedy"
            if err_m < err:
                mats, bias, err, kind = mats_m, bias_m, err_m, "magnitude"
        return self._weights(mats, bias), self._relative(err), kind

    def _weights(self, mats: np.ndarray, bias: np.ndarray | None) -> Weights:
        lay, out = self.lay, dict(self.current)
        out[lay.weight] = lay.tensor(mats, self.current[lay.weight].dtype)
        if lay.bias and bias is not None:
            old = self.current[lay.bias]
            out[lay.bias] = lay.bias_tensor(bias, old.shape, old.dtype)
        return out


def _one_blas_thread():
    """BLAS on one thread for the many small solves of the elimination (threads only add contention there)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return contextlib.nullcontext()
    return threadpool_limits(1, user_api="blas")
