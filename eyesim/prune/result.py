"""What a pruning run returns: its rule, the pruned model, a step per layer pruned, before/after totals; CSV form."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import onnx

from eyesim.errors import EyesimError


@dataclass(frozen=True)
class Rule:
    """What each layer's kept count must meet on the validation part.

    With labels: the paired accuracy drop against the unpruned model, plus one standard error of it, at most
    ``max_drop`` points (``drop_bound``), and top-1 at least ``min_accuracy``. The standard error is why the rule
    holds on data the choice never saw: a count chosen to just pass on a few hundred samples would otherwise pass
    by luck. Label-free (``max_output_error`` set): the layer's ‖Y − Ŷ‖/‖Y‖ at most that fraction.
    ``max_drop`` also bounds the fall of the held-out (``--eval``) accuracy.
    """

    max_drop: float = 1.0
    min_accuracy: float | None = None
    max_output_error: float | None = None

    @property
    def label_free(self) -> bool:
        return self.max_output_error is not None

    def check(self) -> None:
        """EyesimError for values outside their ranges."""
        if not self.max_drop >= 0:
            raise EyesimError(f"--max-accuracy-drop {self.max_drop:g}: must be 0 or more points")
        if self.min_accuracy is not None and not 0 <= self.min_accuracy <= 100:
            raise EyesimError(f"--min-accuracy {self.min_accuracy:g}: must be between 0 and 100 (%)")
        if self.label_free and not 0 < self.max_output_error < 1:
            raise EyesimError(f"--max-output-error {self.max_output_error:g}: must be between 0 and 1 "
                              "(a fraction of the layer's output norm)")

    def describe(self, threshold: float) -> str:
        """The rule in words."""
        if self.label_free:
            return f"layer output error <= {100 * self.max_output_error:g}% on the validation part"
        floor = f" and accuracy >= {threshold:.2f}%" if self.min_accuracy is not None else ""
        return f"validation accuracy drop + 1 s.e. <= {self.max_drop:g} points{floor}"

    def accepts(self, before_ok: np.ndarray, after_ok: np.ndarray) -> bool:
        """Whether per-sample correctness ``after_ok`` (against the unpruned ``before_ok``) meets the rule."""
        drop, se = drop_bound(before_ok, after_ok)
        accuracy = 100.0 * float(np.mean(after_ok))
        return drop + se <= self.max_drop + 1e-9 and (self.min_accuracy is None or accuracy >= self.min_accuracy)


def drop_bound(before_ok: np.ndarray, after_ok: np.ndarray) -> tuple[float, float]:
    """(accuracy drop, its standard error), in points, of paired per-sample correctness (McNemar's pairs):
    b samples newly wrong, c newly right, n in all: drop = (b - c) / n, s.e. = sqrt(b + c) / n."""
    n = max(len(before_ok), 1)
    lost, won = int(np.sum(before_ok & ~after_ok)), int(np.sum(~before_ok & after_ok))
    return 100.0 * (lost - won) / n, 100.0 * np.sqrt(lost + won) / n


@dataclass(frozen=True)
class Step:
    """One layer pruned in one pass (accuracies in percent, errors as fractions, energies in MAC units)."""

    pass_no: int
    layer: str
    op: str
    energy_share: float  # of the network's estimated energy at the start of the pass, in [0, 1]
    weights: int  # weights of the layer (biases not counted)
    nonzero_before: int
    nonzero_after: int
    fit_error: float  # ‖Y − Ŷ‖ / ‖Y‖ on the fitting part, Y the original network's output of the layer
    val_error: float  # the same on the validation part
    support: str  # which support was kept: "greedy", "magnitude", "unchanged" or "undone: energy rose"
    ridge: float  # the relative ridge of the least-squares refit (0: no refit)
    accuracy_fit: float | None
    accuracy_val: float | None
    accuracy_eval: float | None
    energy_before: float  # the network's, before and after this step
    energy_after: float
    trials: int  # kept counts tried
    seconds: float
    channels_before: int | None = None  # filter pruning: output channels (filters, neurons) before and after
    channels_after: int | None = None


@dataclass(frozen=True)
class Totals:
    """A network's figures: energy (normalized units), non-zero weights, MACs, accuracy (percent) per part."""

    energy: float
    weights: int
    nonzero: int
    macs: int
    macs_executed: int
    accuracy: float | None  # the fitting part
    accuracy_val: float | None
    accuracy_eval: float | None


@dataclass
class PruneResult:
    """The pruned model and what happened to it."""

    model: onnx.ModelProto
    method: str
    rule: Rule
    threshold: float
    before: Totals
    after: Totals
    steps: list[Step] = field(default_factory=list)
    sources: tuple[str, str, str | None] = ("", "", None)  # fitting, validation, eval samples
    hardware: str = ""
    warnings: list[str] = field(default_factory=list)
    failure: str | None = None  # why the held-out check failed, or None

    def ratio(self, key: str) -> float:
        """before / after for a Totals field (how many times smaller)."""
        after = getattr(self.after, key)
        return float("inf") if after == 0 else getattr(self.before, key) / after


def change(before: float, after: float) -> str:
    """A saving as "4.31x less" (or "-0.9%" when under 10 %), a loss as "+4.2% more", else "no change"."""
    if after == before:
        return "no change"
    if after > before:
        return f"+{100 * (after / before - 1):.1f}% more" if before else "more (from 0)"
    if after == 0:
        return "all of it"
    return f"{before / after:.2f}x less" if before > 1.1 * after else f"-{100 * (1 - after / before):.1f}%"


def report_frame(result: PruneResult):
    """The CSV form: one row per pruned layer and pass, then a ``TOTAL`` row; method, hardware, rule on every row."""
    from eyesim.result import frame_of_rows

    common = {"method": result.method, "hardware": result.hardware, "threshold": _threshold(result)}
    rows = [{**common, "pass": s.pass_no, "layer": s.layer, "op": s.op, "energy_share": s.energy_share,
             "weights": s.weights, "nonzero_before": s.nonzero_before, "nonzero_after": s.nonzero_after,
             "weights_kept": s.nonzero_after / s.weights, "fit_error": s.fit_error, "val_error": s.val_error,
             "support": s.support, "ridge": s.ridge, "accuracy_fit": s.accuracy_fit, "accuracy_val": s.accuracy_val,
             "accuracy_eval": s.accuracy_eval, "energy_before": s.energy_before, "energy_after": s.energy_after,
             "trials": s.trials, "seconds": s.seconds, "channels_before": s.channels_before,
             "channels_after": s.channels_after} for s in result.steps]
    b, a = result.before, result.after
    rows.append({**common, "pass": "", "layer": "TOTAL", "op": "", "energy_share": 1.0, "weights": a.weights,
                 "nonzero_before": b.nonzero, "nonzero_after": a.nonzero, "weights_kept": a.nonzero / a.weights,
                 "support": result.method, "accuracy_fit": a.accuracy, "accuracy_val": a.accuracy_val,
                 "accuracy_eval": a.accuracy_eval, "energy_before": b.energy, "energy_after": a.energy,
                 "trials": sum(s.trials for s in result.steps), "seconds": sum(s.seconds for s in result.steps),
                 "accuracy_fit_before": b.accuracy, "accuracy_val_before": b.accuracy_val,
                 "accuracy_eval_before": b.accuracy_eval, "macs": a.macs, "macs_executed_before": b.macs_executed,
                 "macs_executed_after": a.macs_executed})
    return frame_of_rows(rows)


def _threshold(result: PruneResult) -> str:
    return result.rule.describe(result.threshold)
