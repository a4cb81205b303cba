"""What every pruning run shares: the samples (checked, split), the rule, and the accuracy and energy of a state.

``Run`` is the base of the unstructured run (``eyesim.prune.method``; its state is the weights of a fixed graph,
fed to one onnxruntime session) and of the filter run (``eyesim.prune.filters``; its state is a smaller model).
Subclasses give ``state``, ``as_model(state)`` and ``predict(x, state)``.
"""

from __future__ import annotations

import numpy as np
import onnx

from eyesim.errors import EyesimError
from eyesim.prune import data as checks
from eyesim.prune.layers import initializer_arrays, prunable_layers
from eyesim.prune.progress import Progress
from eyesim.prune.result import Rule, Totals
from eyesim.workload.onnx.opsets import upgraded
from eyesim.workload.onnx.run import Runner, Samples, check_samples


def energy_estimate(model: onnx.ModelProto, hw, x: np.ndarray):
    """eyesim's estimate at batch 1, with the sparsity the samples ``x`` show."""
    from eyesim.estimator import estimate

    return estimate(model, hw, batch=1, samples=x)


def total_energy(result) -> float:
    """The estimate's energy summed over layers (normalized units)."""
    return float(sum(lr.energy.total for lr in result.layers))


class Run:
    """A pruning run's samples and their parts, its rule, and the original network's tensors."""

    state: object

    def __init__(self, model: onnx.ModelProto, hw, rule: Rule, progress: Progress, freeze: tuple[str, ...] = ()
                 ) -> None:
        from eyesim.hardware.load import load_hardware
        from eyesim.hardware.spec import Hardware

        rule.check()
        model = upgraded(model)  # an opset older than eyesim reads, as the estimate reads it
        self.layers = prunable_layers(model)
        unknown = sorted(set(freeze) - {lay.name for lay in self.layers})
        if unknown:
            raise EyesimError(f"--freeze {unknown[0]}: no prunable layer of that name; the layers: "
                              f"{', '.join(lay.name for lay in self.layers)}")
        self.frozen = frozenset(freeze)
        self.hw = hw if isinstance(hw, Hardware) else load_hardware(hw)
        self.params = {lay.weight for lay in self.layers} | {lay.bias for lay in self.layers if lay.bias}
        self.base, self.rule, self.progress = model, rule, progress
        self.runner = Runner(model, self.params)  # the original network (and, in subclasses, its weights fed)
        self.threshold = -np.inf
        self._tensors: dict[tuple[str, str], np.ndarray] = {}

    def as_model(self, state) -> onnx.ModelProto:
        raise NotImplementedError

    def predict(self, x: np.ndarray, state) -> np.ndarray:
        raise NotImplementedError

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
        for part in (data, self.val, eval_data):  # the fitting part need not hold every class
            if part is not None and part.y is not None:
                checks.check_labels(part, classes)
        self.warnings = [line for part in (data, validation) if part is not None
                         for line in checks.mix_warnings(part, classes, eval_data)]
        for line in self.warnings:
            self.progress.warn(line)
        self.eval = eval_data
        self.x_fit, self.x_val = check_samples(self.base, self.fit), check_samples(self.base, self.val)
        self.x_all = np.concatenate([self.x_fit, self.x_val])
        self.x_eval = None if eval_data is None else check_samples(self.base, eval_data)
        self.sources = (self.fit.source, self.val.source, None if eval_data is None else eval_data.source)

    def check_determined(self, names: list[str] | None = None) -> None:
        """EyesimError when a layer's least squares has fewer fitting rows than live inputs per output."""
        layers = [lay for lay in self.layers if names is None or lay.name in names]
        inputs = self.runner.run(self.x_fit, [lay.x for lay in layers])
        for lay, x in zip(layers, inputs, strict=True):
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
        self.base_ok = self.runner.predict(self.x_val) == self.val.y

    def accepts(self, state) -> bool:
        """The accuracy rule on the validation part for ``state``."""
        return self.rule.accepts(self.base_ok, self.predict(self.x_val, state) == self.val.y)

    def accuracy(self, part: str, state) -> float | None:
        """Top-1 (percent) on the fitting, validation or eval part; None without labels."""
        samples, x = {"fit": (self.fit, self.x_fit), "val": (self.val, self.x_val),
                      "eval": (self.eval, self.x_eval)}[part]
        if samples is None or samples.y is None:
            return None
        return 100.0 * float(np.mean(self.predict(x, state) == samples.y))

    def energy(self, state) -> float:
        return total_energy(energy_estimate(self.as_model(state), self.hw, self.x_all))

    def totals(self) -> Totals:
        """Energy, weights, MACs and accuracy of the current state."""
        model = self.as_model(self.state)
        result = energy_estimate(model, self.hw, self.x_all)
        layers = prunable_layers(model)
        weights = initializer_arrays(model, {lay.weight for lay in layers}).values()
        return Totals(energy=total_energy(result), weights=sum(w.size for w in weights),
                      nonzero=sum(int(np.count_nonzero(w)) for w in weights),
                      macs=int(sum(lr.energy.macs for lr in result.layers)),
                      macs_executed=sum(int(lr.energy.macs_executed) for lr in result.layers),
                      accuracy=self.accuracy("fit", self.state), accuracy_val=self.accuracy("val", self.state),
                      accuracy_eval=self.accuracy("eval", self.state))

    def original_tensor(self, name: str, part: str) -> np.ndarray:
        """The original network's tensor ``name`` on the fitting or validation part (cached)."""
        if (name, part) not in self._tensors:
            x = self.x_fit if part == "fit" else self.x_val
            self._tensors[name, part] = self.runner.run(x, [name])[0]
        return self._tensors[name, part]

    def shares(self) -> dict[str, float]:
        """Each layer's share of the network's estimated energy now, and the total (key "")."""
        result = energy_estimate(self.as_model(self.state), self.hw, self.x_all)
        energy = {lr.layer.name: lr.energy.total for lr in result.layers}
        total = sum(energy.values()) or 1.0
        return {**{name: e / total for name, e in energy.items()}, "": total}


def eval_failure(rule: Rule, before: Totals, after: Totals) -> str | None:
    """Why the held-out check failed (None when it passed or there is no held-out accuracy)."""
    if before.accuracy_eval is None or after.accuracy_eval >= before.accuracy_eval - rule.max_drop - 1e-9:
        return None
    return (f"held-out accuracy fell {before.accuracy_eval - after.accuracy_eval:.2f} points "
            f"({before.accuracy_eval:.2f}% -> {after.accuracy_eval:.2f}%), more than the allowed {rule.max_drop:g}")
