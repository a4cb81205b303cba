"""eyesim: energy estimates of CNNs on row-stationary spatial accelerators (Eyeriss and kin).

Python API: ``eyesim.estimate(model, hw, batch=1, mapping=None)`` returns a ``Result`` with
per-layer records, ``.to_dict()``, ``.to_frame()`` and ``.write(path)``; ``model`` is an ONNX file or
ModelProto, or a ``torch.nn.Module`` with ``example_inputs=x`` (exported with torch.onnx; torch is
imported only then). The names below load on first use, so the command line starts without Numba or pandas.

``import onnx`` is made lazy here, before any module of eyesim imports it (``_lazy_onnx``): onnx's ``__init__``
imports all its helpers and with them ml_dtypes (~0.6 s), which an estimate does not need.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys

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


def _lazy_onnx() -> None:
    """Register ``onnx`` unexecuted: its message classes and submodules load on their own, the rest on first use.

    ``onnx.ModelProto`` (any name of ``onnx.onnx_pb``, ``onnx_operators_pb``, ``onnx_data_pb``) and ``onnx.checker``
    or ``onnx.shape_inference`` (a submodule) load just that; any other name (``onnx.load``, ``onnx.__version__``)
    runs onnx's own ``__init__`` in the same module object, so the classes stay the same. Nothing is done when
    onnx is already imported or missing.
    """
    if "onnx" in sys.modules:
        return
    spec = importlib.util.find_spec("onnx")
    if spec is None or spec.loader is None or spec.submodule_search_locations is None:
        return
    module = importlib.util.module_from_spec(spec)
    protos_loaded = []

    def lazy(name: str):
        if name.startswith("__"):  # __version__, __all__ (from onnx import *): onnx's own
            return _full(module, spec, name)
        if not protos_loaded:
            protos_loaded.append(True)
            for part in ("onnx_pb", "onnx_operators_pb", "onnx_data_pb"):
                found = importlib.import_module(f"onnx.{part}")
                module.__dict__.update({k: v for k, v in vars(found).items() if not k.startswith("_")
                                        and k != "DESCRIPTOR" and k not in module.__dict__})
            if name in module.__dict__:
                return module.__dict__[name]
        if importlib.util.find_spec(f"onnx.{name}") is not None:
            return importlib.import_module(f"onnx.{name}")
        return _full(module, spec, name)

    def load_from_string(data: bytes, format: str | None = None):  # noqa: A002 - onnx's signature
        """onnx's own for a text format; protobuf parsed directly (shape inference returns its model this way)."""
        if format not in (None, "protobuf") or not isinstance(data, bytes):
            return _full(module, spec, "load_from_string")(data, format)
        model = module.ModelProto()
        decoded = model.ParseFromString(data)
        if decoded is not None and decoded != len(data):  # as onnx's reader checks
            raise importlib.import_module("google.protobuf.message").DecodeError(
                f"Protobuf decoding consumed too few bytes: {decoded} out of {len(data)}")
        return model

    module.__getattr__ = lazy
    module.load_from_string = load_from_string  # replaced by onnx's own if its __init__ runs
    sys.modules["onnx"] = module


def _full(module, spec, name: str):
    """Run onnx's ``__init__`` (once: it removes the lazy ``__getattr__``) and return ``name`` from it."""
    if module.__dict__.pop("__getattr__", None) is not None:
        spec.loader.exec_module(module)
    return getattr(module, name)


_lazy_onnx()
