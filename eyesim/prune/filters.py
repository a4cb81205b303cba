"""Filter (structured) pruning: whole filters and neurons removed, giving a physically smaller model (docs/prune.md).

``prune_filters(model, hw, data, ...) -> PruneResult``. Each pass estimates every layer's energy and visits the
prunable layers (``eyesim.prune.channels``; residual-joined layers together) from the most energy-hungry down.
A layer's filters are ranked by ``criterion`` (least important first; ``eyesim.prune.criteria``):

- ``nuclear-norm``: the nuclear norm of each filter's feature maps over the fitting samples, taken after the
  activation that follows the layer (Yeom, Shim, Hwang 2021);
- ``l1``: the L1 norm of each filter's weights (Li et al. 2017);
- ``energy-aware``: nuclear norm per unit of the energy the filter costs (``filter_energy``).

The kept count is the smallest (bisection, to one filter per block) whose model meets the rule on the validation
part, after the consumers of the removed channels are refitted by least squares on the fitting part to reproduce
the original network's outputs (their ridge chosen on the validation part). Label-free, the rule bounds the
consumers' relative output error.
"""

from __future__ import annotations

import time

import numpy as np
import onnx

from eyesim.errors import EyesimError
from eyesim.prune.channels import ChannelGroup, channel_groups, remove_channels
from eyesim.prune.criteria import l1_norms, nuclear_norms, ranking
from eyesim.prune.layers import LinearLayer, initializer_arrays, prunable_layers
from eyesim.prune.method import run_passes, smallest_passing, with_weights
from eyesim.prune.progress import Progress, Silent
from eyesim.prune.restore import RIDGES, Stats, layer_stats, relative_error
from eyesim.prune.result import PruneResult, Rule, Step
from eyesim.prune.run import Run, energy_estimate
from eyesim.prune.stats import ridged
from eyesim.workload.onnx.run import Runner, Samples

CRITERIA = ("nuclear-norm", "l1", "energy-aware")
# ops after a layer whose output is the "feature map" the nuclear norm is taken of (the first one ends the walk)
ACTIVATIONS = frozenset({"Relu", "LeakyRelu", "Clip", "Sigmoid", "Tanh", "Elu", "Selu", "HardSigmoid", "HardSwish",
                         "Softplus", "Gelu", "Mish", "PRelu"})


def prune_filters(model: onnx.ModelProto, hw, data: Samples, eval_data: Samples | None = None, *,
                  criterion: str = "nuclear-norm", max_drop: float = 1.0, min_accuracy: float | None = None,
                  max_output_error: float | None = None, validation: Samples | None = None,
                  validation_fraction: float = 0.2, passes: int = 1, freeze: tuple[str, ...] = (),
                  progress: Progress | None = None) -> PruneResult:
    """Remove whole filters of ``model`` (with weights) for ``hw``; see the module docstring."""
    if criterion not in CRITERIA:
        raise EyesimError(f"unknown criterion {criterion!r}; choose one of {', '.join(CRITERIA)}")
    run = _FilterRun(model, hw, criterion, Rule(max_drop, min_accuracy, max_output_error), progress or Silent(),
                     freeze)
    groups = run.prunable()
    run.prepare(data, validation, validation_fraction, eval_data)
    run.check_determined([use.node for group in groups for use in group.consumers])
    return run_passes(run, passes, f"filter {criterion}")


class _FilterRun(Run):
    """The state is the (shrinking) model itself; one onnxruntime session per model tried."""

    def __init__(self, model: onnx.ModelProto, hw, criterion: str, rule: Rule, progress: Progress,
                 freeze: tuple[str, ...]) -> None:
        super().__init__(model, hw, rule, progress, freeze)
        self.criterion = criterion
        self.state = self.base
        self._sessions: dict[int, tuple[onnx.ModelProto, Runner]] = {}
        self.kept_out: dict[str, np.ndarray] = {}  # a layer's output channels left, as the original's indices

    def prunable(self) -> list[ChannelGroup]:
        """The layers whose filters can go (not frozen); notes for the others; EyesimError when there is none."""
        groups, notes = channel_groups(self.state)
        groups = [g for g in groups if not set(g.members) & self.frozen]
        if not groups:
            raise EyesimError("no layer can be filter-pruned" + (f" ({'; '.join(notes)})" if notes else "") +
                              (f"; frozen: {', '.join(sorted(self.frozen))}" if self.frozen else ""))
        for note in notes:
            self.progress.note(note)
        return groups

    def as_model(self, state: onnx.ModelProto) -> onnx.ModelProto:
        return state

    def predict(self, x: np.ndarray, state: onnx.ModelProto) -> np.ndarray:
        return self.session(state).predict(x)

    def session(self, model: onnx.ModelProto) -> Runner:
        """A session over ``model`` (the last few are kept: a trial is scored several times)."""
        if id(model) not in self._sessions:
            if len(self._sessions) > 4:
                self._sessions.pop(next(iter(self._sessions)))
            self._sessions[id(model)] = (model, Runner(model))
        return self._sessions[id(model)][1]

    def one_pass(self, pass_no: int) -> list[Step]:
        """Prune every prunable layer once, most energy first."""
        shares = self.shares()
        groups = channel_groups(self.state)[0]
        order = [g.layer for g in sorted(groups, key=lambda g: -sum(shares.get(m, 0.0) for m in g.members))
                 if not set(g.members) & self.frozen]
        steps, energy = [], shares[""]
        for index, name in enumerate(order):
            group = {g.layer: g for g in channel_groups(self.state)[0]}.get(name)  # as earlier steps left it
            if group is None or group.channels <= group.blocks:
                continue
            self.progress.layer(name, pass_no, index, len(order))
            steps.append(self.prune_group(group, pass_no, sum(shares.get(m, 0.0) for m in group.members), energy))
            energy = steps[-1].energy_after
            self.progress.done(steps[-1])
        return steps

    def prune_group(self, group: ChannelGroup, pass_no: int, share: float, energy_before: float) -> Step:
        """The smallest kept count meeting the rule, with the consumers refitted."""
        started = time.perf_counter()
        order = ranking(self.scores(group), group.blocks)
        unit, total = group.blocks, group.channels
        trials: dict[int, tuple[bool, onnx.ModelProto, float, float, float]] = {total: (True, self.state, 0, 0, 0)}

        def passes(blocks_kept: int) -> bool:
            kept = blocks_kept * unit
            if kept not in trials:
                self.progress.trial(kept, total)
                model = remove_channels(self.state, {group.layer: np.sort(order[total - kept:])})
                model, fit_err, val_err, ridge = self.refit_consumers(model, group)
                meets = val_err <= self.rule.max_output_error if self.rule.label_free else self.accepts(model)
                trials[kept] = (meets, model, fit_err, val_err, ridge)
            return trials[kept][0]

        kept = smallest_passing(passes, total // unit, 1) * unit
        _, model, fit_err, val_err, ridge = trials[kept]
        energy_after = self.energy(model) if kept < total else energy_before
        support = self.criterion
        if energy_after > energy_before:
            model, kept, energy_after, support = self.state, total, energy_before, "undone: energy rose"
        weights_before = self._weights(self.state, group)
        if kept < total:
            self._keep(group, np.sort(order[total - kept:]))
        self.state = model
        return Step(pass_no, group.layer, group.op, share, weights_before[0], weights_before[1],
                    self._weights(model, group)[1], fit_err, val_err, support, ridge,
                    self.accuracy("fit", model), self.accuracy("val", model), self.accuracy("eval", model),
                    energy_before, energy_after, len(trials) - 1, time.perf_counter() - started, total, kept)

    def _keep(self, group: ChannelGroup, keep: np.ndarray) -> None:
        """Record which of the original output channels the group's layers keep."""
        for name in (*group.members, *(use.node for use in group.depthwise)):
            self.kept_out[name] = self.kept_out.get(name, np.arange(group.channels))[keep]

    def target(self, lay: LinearLayer, part: str) -> np.ndarray:
        """The original network's output of ``lay``, restricted to the output channels it still has."""
        y = self.original_tensor(lay.y, part)
        return y if lay.name not in self.kept_out else np.take(y, self.kept_out[lay.name], axis=1)

    def _weights(self, model: onnx.ModelProto, group: ChannelGroup) -> tuple[int, int]:
        """(weights, non-zero weights) of the group's layers in ``model``."""
        layers = [lay for lay in prunable_layers(model) if lay.name in group.members]
        arrays = initializer_arrays(model, {lay.weight for lay in layers}).values()
        return sum(a.size for a in arrays), sum(int(np.count_nonzero(a)) for a in arrays)

    def scores(self, group: ChannelGroup) -> np.ndarray:
        """The criterion's importance of each output channel of the group (summed over residual-joined layers)."""
        layers = {lay.name: lay for lay in prunable_layers(self.state)}
        if self.criterion == "l1":
            weights = initializer_arrays(self.state, {layers[m].weight for m in group.members})
            return sum(l1_norms(weights[layers[m].weight], layers[m]) for m in group.members)
        fmaps = self.session(self.state).run(self.x_fit, [feature_map(self.state, layers[m].y) for m in group.members])
        importance = sum(nuclear_norms(f) for f in fmaps)
        if self.criterion == "nuclear-norm":
            return importance
        density = sum((f != 0).reshape(f.shape[0], f.shape[1], -1).mean(axis=(0, 2)) for f in fmaps) / len(fmaps)
        return importance / np.maximum(self.filter_energy(group, layers, density), 1e-30)

    def filter_energy(self, group: ChannelGroup, layers: dict[str, LinearLayer], density: np.ndarray) -> np.ndarray:
        """Per output channel: the estimated energy it costs in its layer(s) and their consumers (MAC units).

        A layer's weight and computation energy is shared by its filters' non-zero weights, its ofmap energy by
        its channels' output densities; a consumer's ifmap and computation energy by those densities, its weight
        energy evenly. What a filter saves when it goes depends on all of these, so a filter whose maps are
        mostly zero (cheap under zero gating and run-length coding) saves less.
        """
        by_name = {lr.layer.name: lr.energy.by_type for lr in energy_estimate(self.state, self.hw, self.x_all).layers}
        share_d = density / max(density.sum(), 1e-30)
        cost = np.zeros(group.channels)
        for m in group.members:
            nnz = np.count_nonzero(layers[m].matrices(initializer_arrays(self.state, {layers[m].weight})[
                layers[m].weight]), axis=2).reshape(-1).astype(float)
            e = by_name.get(m, {})
            cost += (e.get("weights", 0.0) + e.get("comp", 0.0)) * nnz / max(nnz.sum(), 1.0)
            cost += e.get("ofmap", 0.0) * share_d
        for use in group.consumers:
            e = by_name.get(use.node, {})
            cost += (e.get("ifmap", 0.0) + e.get("comp", 0.0)) * share_d + e.get("weights", 0.0) / group.channels
        return cost

    def refit_consumers(self, model: onnx.ModelProto, group: ChannelGroup
                        ) -> tuple[onnx.ModelProto, float, float, float]:
        """``model`` with each consumer refitted to the original outputs; (model, worst fit and validation
        errors, the ridge of the worst)."""
        names = {use.node for use in group.consumers}
        layers = [lay for lay in prunable_layers(model) if lay.name in names]
        if not layers:
            return model, 0.0, 0.0, 0.0
        runner = Runner(model)
        xs_fit = runner.run(self.x_fit, [lay.x for lay in layers])
        xs_val = runner.run(self.x_val, [lay.x for lay in layers])
        weights, worst = {}, (0.0, 0.0, 0.0)
        for lay, x_fit, x_val in zip(layers, xs_fit, xs_val, strict=True):
            with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
                fit = layer_stats(lay, x_fit, self.target(lay, "fit"))
                val = layer_stats(lay, x_val, self.target(lay, "val"))
            mats, bias, ridge = dense_refit(fit, val)
            old = initializer_arrays(model, {lay.weight} | ({lay.bias} if lay.bias else set()))
            weights[lay.weight] = lay.tensor(mats, old[lay.weight].dtype)
            if lay.bias:
                weights[lay.bias] = lay.bias_tensor(bias, old[lay.bias].shape, old[lay.bias].dtype)
            errors = (relative_error(fit, mats, bias), relative_error(val, mats, bias), ridge)
            worst = max(worst, errors, key=lambda e: e[1])
        return with_weights(model, weights), *worst


def dense_refit(fit: Stats, val: Stats) -> tuple[np.ndarray, np.ndarray | None, float]:
    """Least squares of all weights (and bias) on the fitting statistics, for the ridge of RIDGES with the least
    validation error: (G x M x K weights, G x M bias or None, ridge). One solve per group serves every channel."""
    best = None
    for ridge in RIDGES:
        sols = []
        for g in range(fit.A.shape[0]):
            sols.append(np.linalg.solve(ridged(fit.A[g], ridge), fit.C[g]).T)  # M x K1
        w = np.stack(sols)
        mats, bias = (w[..., :-1], w[..., -1]) if fit.has_bias else (w, None)
        err = relative_error(val, mats, bias)
        if best is None or err < best[0]:
            best = (err, mats, bias, ridge)
    return best[1], best[2], best[3]


def feature_map(model: onnx.ModelProto, tensor: str) -> str:
    """The tensor holding a layer's feature maps: its output after a following BatchNormalization and activation
    (when the output feeds only those), else the output itself."""
    readers: dict[str, list[onnx.NodeProto]] = {}
    for node in model.graph.node:
        for name in node.input:
            readers.setdefault(name, []).append(node)
    current = tensor
    for _ in range(2):
        nodes = readers.get(current, [])
        if len(nodes) != 1 or nodes[0].op_type not in ACTIVATIONS | {"BatchNormalization"}:
            break
        current = nodes[0].output[0]
        if nodes[0].op_type in ACTIVATIONS:
            break
    return current
