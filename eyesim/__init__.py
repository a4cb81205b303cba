"""eyesim: energy estimates of CNNs on row-stationary spatial accelerators (Eyeriss and kin).

Python API: ``eyesim.estimate(model, hw, batch=1, mapping=None)`` returns a ``Result`` with
per-layer records, ``.to_dict()``, ``.to_frame()`` and ``.write(path)``.
"""

from eyesim.errors import EyesimError
from eyesim.estimate import estimate
from eyesim.hardware import load_hardware
from eyesim.mapping import Mapping
from eyesim.result import LayerResult, Result

__all__ = ["EyesimError", "LayerResult", "Mapping", "Result", "estimate", "load_hardware"]
