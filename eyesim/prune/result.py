"""What a pruning run returns: the pruned model, a step per layer pruned, before/after totals; its CSV form."""

from __future__ import annotations

from dataclasses import dataclass, field

import onnx


@dataclass(frozen=True)
class Step:
    """One layer pruned in one pass."""

    pass_no: int
    layer: str
    op: str
    energy_share: float  # of the network's estimated energy at the start of the pass, in [0, 1]
    weights: int  # weights of the layer (biases not counted)
    nonzero_before: int
    nonzero_after: int
    output_error: float  # ‖Y − Ŷ‖ / ‖Y‖ on the data samples, Y the original network's output of the layer
    support: str  # which support was kept: "greedy", "magnitude", or "unchanged"
    accuracy: float  # top-1 on the data samples after this layer, percent
    accuracy_eval: float | None  # top-1 on the eval samples, percent
    trials: int  # accuracy evaluations spent on the search


@dataclass(frozen=True)
class Totals:
    """A network's figures: energy (normalized units), non-zero weights, MACs, accuracy (percent)."""

    energy: float
    weights: int
    nonzero: int
    macs: int
    macs_executed: int
    accuracy: float
    accuracy_eval: float | None


@dataclass
class PruneResult:
    """The pruned model and what happened to it."""

    model: onnx.ModelProto
    method: str
    threshold: float
    before: Totals
    after: Totals
    steps: list[Step] = field(default_factory=list)
    data_source: str = ""
    eval_source: str | None = None

    def ratio(self, key: str) -> float:
        """before / after for a Totals field (how many times smaller)."""
        after = getattr(self.after, key)
        return float("inf") if after == 0 else getattr(self.before, key) / after


def report_frame(result: PruneResult):
    """The CSV form: one row per pruned layer and pass, then a ``TOTAL`` row with before/after figures."""
    import pandas as pd

    rows = [{"pass": s.pass_no, "layer": s.layer, "op": s.op, "energy_share": s.energy_share, "weights": s.weights,
             "nonzero_before": s.nonzero_before, "nonzero_after": s.nonzero_after,
             "weights_kept": s.nonzero_after / s.weights, "output_error": s.output_error, "support": s.support,
             "accuracy": s.accuracy, "accuracy_eval": s.accuracy_eval, "trials": s.trials} for s in result.steps]
    b, a = result.before, result.after
    rows.append({"pass": "", "layer": "TOTAL", "op": "", "energy_share": 1.0, "weights": a.weights,
                 "nonzero_before": b.nonzero, "nonzero_after": a.nonzero, "weights_kept": a.nonzero / a.weights,
                 "output_error": None, "support": result.method, "accuracy": a.accuracy,
                 "accuracy_eval": a.accuracy_eval, "trials": sum(s.trials for s in result.steps),
                 "accuracy_before": b.accuracy, "accuracy_eval_before": b.accuracy_eval,
                 "energy_before": b.energy, "energy_after": a.energy, "macs": a.macs,
                 "macs_executed_before": b.macs_executed, "macs_executed_after": a.macs_executed})
    return pd.DataFrame(rows)
