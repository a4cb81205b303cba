"""eyesim: energy estimates of CNNs on row-stationary spatial accelerators (Eyeriss and kin).

Python API: ``eyesim.estimate(model, hw, batch=1, mapping=None)`` returns a ``Result`` with
per-layer records, ``.to_dict()``, ``.to_frame()`` and ``.write(path)``; ``model`` is an ONNX file or
ModelProto, or a ``torch.nn.Module`` with ``example_inputs=x`` (exported with torch.onnx; torch is
imported only then). The names below load on first use, so the command line starts without Numba or pandas.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "EyesimError": "eyesim.errors",
    "estimate": "eyesim.estimator",
    "load_hardware": "eyesim.hardware",
    "Mapping": "eyesim.mapping",
    "LayerResult": "eyesim.result",
    "Result": "eyesim.result",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'eyesim' has no attribute {name!r}")
