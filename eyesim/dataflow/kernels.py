"""Which compiled form of the kernels eyesim calls: the ahead-of-time build, else Numba's just-in-time one.

``pip install`` compiles the kernels of ``exports.EXPORTS`` into the extension ``eyesim.dataflow._aot`` (setup.py,
``aot_build``). A process that finds it, built from the current sources, calls it and never imports Numba: a cold
command starts ~1 s sooner and the first command compiles nothing. Otherwise (no C compiler at install, kernels
edited since, or ``EYESIM_KERNELS=jit``) the kernels are Numba's, compiled on first use and cached (``cache``).
The compiled functions take exactly their declared types, so each call passes C-contiguous arrays of the
declared dtype and plain numbers (the JIT forms would accept more, and compile again for it).
"""

from __future__ import annotations

import functools
import importlib
import operator
import os
from collections.abc import Callable

import numpy as np

from eyesim.dataflow.exports import EXPORTS, KINDS, source_hash
from eyesim.errors import EyesimError

ENV = "EYESIM_KERNELS"  # "jit" forces Numba's just-in-time kernels; "auto" (or unset) prefers the build


def _mode() -> str:
    mode = os.environ.get(ENV, "") or "auto"
    if mode not in ("auto", "jit"):
        raise EyesimError(f"{ENV}={mode!r}: must be 'auto' (the ahead-of-time kernels when built) or 'jit'")
    return mode


def _built() -> tuple[object | None, str]:
    """The ahead-of-time extension if it is usable, and why not otherwise."""
    if _mode() == "jit":
        return None, f"{ENV}=jit"
    try:
        aot = importlib.import_module("eyesim.dataflow._aot")
        built_from = aot.source_hash()
    except ModuleNotFoundError:
        return None, "no ahead-of-time build (pip install compiles one when a C compiler is present)"
    except (ImportError, AttributeError, OSError, RuntimeError) as err:  # e.g. built against another NumPy ABI
        return None, f"the ahead-of-time build does not load ({type(err).__name__}: {err})"
    if built_from != source_hash():
        return None, "the kernels' sources changed since the build (python -m eyesim.dataflow.aot_build rebuilds it)"
    return aot, "ahead-of-time build"


def _strict(kernel: Callable, kinds: tuple[str, ...]) -> Callable:
    """``kernel`` (a compiled export) called with its arguments in exactly the declared types.

    A wrong dtype or layout would be read as raw memory by the compiled code (a wrong number or a crash), so
    every array is passed through ``np.ascontiguousarray`` (no copy when it already fits) and every integer
    through ``operator.index``. The wrapper's text is generated per signature: a call costs ~0.3 µs per array,
    not the several µs of a generic loop over converters.
    """
    names = [f"a{i}" for i in range(len(kinds))]
    passed = [f"contiguous({name}, dtype={KINDS[kind][1].__name__})" if KINDS[kind][2] else
              f"{'index' if kind == 'i' else 'float'}({name})" for name, kind in zip(names, kinds, strict=True)]
    scope = {"kernel": kernel, "contiguous": np.ascontiguousarray, "index": operator.index,
             **{KINDS[k][1].__name__: np.dtype(KINDS[k][1]) for k in kinds if KINDS[k][2]}}
    exec(f"def call({', '.join(names)}):\n    return kernel({', '.join(passed)})", scope)
    return functools.wraps(kernel)(scope["call"])


def _load() -> tuple[dict[str, Callable], str]:
    aot, why = _built()
    if aot is not None:
        return {name: _strict(getattr(aot, name), kinds) for name, (_, kinds, _) in EXPORTS.items()}, why
    from eyesim.dataflow import cache  # noqa: F401 - first: the JIT kernels' cache folder

    return {name: getattr(importlib.import_module(f"eyesim.dataflow.{module}"), name)
            for name, (module, _, _) in EXPORTS.items()}, f"Numba just-in-time ({why})"


KERNELS, SOURCE = _load()
