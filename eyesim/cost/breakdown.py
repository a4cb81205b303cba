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

    counts: np.ndarray  # [level, type, read/write], words moved, all groups (RF filter and psum accesses after gating)
    macs: int  # dense MACs
    macs_executed: int  # MACs that run (zero gating skips the others)
    by_level: dict[str, float]
    by_type: dict[str, float]

    @property
    def total(self) -> float:
        return sum(self.by_level.values())


def breakdown(counts: np.ndarray, macs: int, cost: np.ndarray, mac_cost: float, effects: ZeroEffects,
              psum_skipped: float = 0.0) -> Breakdown:
    """Weight the dataflow's counts by the layer's costs; both breakdowns sum to the same total.

    ``psum_skipped``: psum RF read-write pairs that exact psum gating skips (``zeros.psum_skips``).
    """
    dense = counts.sum(axis=2).astype(np.float64)
    dense[df.RF, df.PSUM] -= 2.0 * psum_skipped
    energy = dense * cost  # [level, type]
    comp = float(macs * mac_cost)
    # one reduction per axis: numpy adds a row's 3 or a column's 4 values in the same order as summing each alone
    by_level = dict(zip(LEVELS, energy.sum(axis=1).tolist(), strict=True))
    by_level["mac"] = comp
    weights, ifmap, ofmap = energy.sum(axis=0).tolist()
    by_type = {"weights": weights, "ifmap": ifmap, "ofmap": ofmap, "comp": comp}
    shown = counts.copy()
    shown[df.RF, df.WEIGHTS, df.READ] = round(counts[df.RF, df.WEIGHTS, df.READ] * effects.gated)
    for rw in (df.READ, df.WRITE):
        shown[df.RF, df.PSUM, rw] = round(counts[df.RF, df.PSUM, rw] * effects.psums - psum_skipped)
    return Breakdown(counts=shown, macs=macs, macs_executed=round(macs * effects.executed), by_level=by_level,
                     by_type=by_type)
