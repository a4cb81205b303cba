"""Compile the exported kernels ahead of time into one extension module (Numba's pycc), with their fingerprint.

Run by setup.py at install; ``python -m eyesim.dataflow.aot_build`` rebuilds it in place after the kernels'
sources change (an editable install then uses the new build; until then it falls back to Numba's JIT). The
code is built for a generic CPU of the machine's architecture, so a built wheel runs on other machines too.
"""

from __future__ import annotations

import importlib
import os
import shutil
import sys
import tempfile
import warnings
from pathlib import Path

from eyesim.dataflow.exports import EXPORTS, HERE, signature, source_hash

NAME = "_aot"


def build(target: Path | None = None) -> Path:
    """Compile every export of ``exports.EXPORTS`` into the extension file ``target`` (default: beside this file)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pycc's pending-deprecation notice
        from numba.pycc import CC

    compiler = CC(NAME)
    for name, (module, _, _) in EXPORTS.items():
        kernel = getattr(importlib.import_module(f"eyesim.dataflow.{module}"), name)
        compiler.export(name, signature(name))(kernel.py_func)
    compiler.export("source_hash", "int64()")(_constant(source_hash()))
    target = target or HERE / compiler.output_file
    with tempfile.TemporaryDirectory(prefix="eyesim-aot-") as work:
        compiler.output_dir = work
        compiler.compile()
        target.parent.mkdir(parents=True, exist_ok=True)
        staged = target.with_name(f".{target.name}.new")
        shutil.copyfile(Path(work) / compiler.output_file, staged)
        os.replace(staged, target)  # a new file, not rewritten in place: a process may have the old one loaded
    return target


def _constant(value: int):
    """A function returning ``value``: compiled, it carries the fingerprint of the sources it was built from."""
    def source_hash() -> int:
        return value

    return source_hash


if __name__ == "__main__":
    print(f"built {build()}", file=sys.stderr)
