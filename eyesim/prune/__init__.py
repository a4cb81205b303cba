"""Pruning of a trained ONNX CNN guided by eyesim's energy estimate (docs/prune.md).

``method`` (the passes and the rule), ``data`` (checks and the fitting/validation split), ``layers`` (prunable
layers as linear maps), ``restore`` (least-squares restoration of a layer's output), ``progress`` (what a run
tells while it works), ``finetune`` (optional, torch), ``result`` (what a run returns).
"""

from eyesim.prune.method import METHODS, prune, smallest_passing, with_weights
from eyesim.prune.result import PruneResult, Rule, Step, Totals, change, report_frame
from eyesim.prune.run import energy_estimate
