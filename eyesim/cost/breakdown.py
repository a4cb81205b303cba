"""A layer's energy by level and by data type: its counts weighed by its per-access costs."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from eyesim import dataflow as df
from eyesim.cost.zeros import ZeroEffects
from eyesim.hardware.schema import LEVELS

DATA_TYPES = ("weights", "ifmap", "psum")
ENERGY_LEVELS = (*LEVELS, "mac")
ENERGY_TYPES = ("weights", "ifmap", "ofmap", "comp")  # psums are charged to the ofmaps


@dataclass(frozen=True)
class Breakdown:
    """Energy of one layer, by level and by data type (normalized units), and the counts behind it."""

    counts: np.ndarray  # [level, type, read/write], words moved, all groups (filter reads after zero gating)
    macs: int  # dense MACs
    macs_executed: int  # MACs that run (zero gating skips the others)
    by_level: dict[str, float]
    by_type: dict[str, float]

    @property
    def total(self) -> float:
        return sum(self.by_level.values())


def breakdown(counts: np.ndarray, macs: int, cost: np.ndarray, mac_cost: float, effects: ZeroEffects) -> Breakdown:
    """Weight the dataflow's counts by the layer's costs; both breakdowns sum to the same total."""
    energy = counts.sum(axis=2) * cost  # [level, type]
    comp = macs * mac_cost
    by_level = {level: float(energy[i].sum()) for i, level in enumerate(LEVELS)}
    by_level["mac"] = float(comp)
    by_type = {"weights": float(energy[:, 0].sum()), "ifmap": float(energy[:, 1].sum()),
               "ofmap": float(energy[:, 2].sum()), "comp": float(comp)}
    shown = counts.copy()
    shown[df.RF, df.WEIGHTS, df.READ] = round(counts[df.RF, df.WEIGHTS, df.READ] * effects.gated)
    return Breakdown(counts=shown, macs=macs, macs_executed=round(macs * effects.executed), by_level=by_level,
                     by_type=by_type)
