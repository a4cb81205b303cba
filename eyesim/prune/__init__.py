"""Pruning of a trained ONNX CNN guided by eyesim's energy estimate (docs/prune.md).

``method`` (the passes and the accuracy rule), ``layers`` (prunable layers as linear maps), ``restore``
(least-squares restoration of a layer's output), ``finetune`` (optional, torch), ``result`` (what a run returns).
"""

from eyesim.prune.method import METHODS, energy_estimate, prune, smallest_passing, with_weights
from eyesim.prune.result import PruneResult, Step, Totals, report_frame
