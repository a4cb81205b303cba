"""The kernels built ahead of time at install equal Numba's JIT ones, and the loader picks the right form.

``pip install`` (setup.py) compiles eyesim/dataflow's exported kernels into ``eyesim.dataflow._aot``; the
test environment is such an install, so the build is there and is what eyesim calls. Each exported kernel is
compared with its JIT form on random layers, hardware and mappings; then the choice itself, in new processes.
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eyesim import dataflow as df
from eyesim.cost.counts import layer_vector
from eyesim.dataflow.exports import EXPORTS
from eyesim.dataflow.kernels import ENV, KERNELS, SOURCE
from tests.hostile import run_fresh
from tests.layers import small_hw_vectors, small_layers, tilings

ROOT = Path(__file__).resolve().parent.parent
ALEXNET, CHIP = str(ROOT / "models_onnx" / "alexnet.onnx"), str(ROOT / "hwconfigs" / "eyeriss.yaml")
SHOW = ("import json, sys\nfrom eyesim.dataflow.kernels import SOURCE\n"
        "print(json.dumps([SOURCE, 'numba' in sys.modules]))")


def jit(name: str):
    """The JIT form of an exported kernel, from the module that defines it."""
    return getattr(importlib.import_module(f"eyesim.dataflow.{EXPORTS[name][0]}"), name)


def same(found, expected) -> bool:
    if isinstance(expected, tuple):
        return len(found) == len(expected) and all(same(f, e) for f, e in zip(found, expected, strict=True))
    return np.array_equal(np.asarray(found), np.asarray(expected)) and type(found) is type(expected)


def test_the_install_built_the_kernels_and_eyesim_calls_them():
    assert SOURCE == "ahead-of-time build"
    assert {type(KERNELS[name].__wrapped__).__name__ for name in EXPORTS} == {"builtin_function_or_method"}
    assert df.search_layer is KERNELS["search_layer"] and df.rlc_pairs is KERNELS["rlc_pairs"]


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_every_exported_kernel_equals_its_jit_form(data):
    layer, hw = data.draw(small_layers()), data.draw(small_hw_vectors())
    lv = layer_vector(layer)
    mapping = np.array([data.draw(tilings(layer))[k] for k in df.MAPPING_KEYS], dtype=np.int64)
    rows, cols = jit("strip_rows_table")(lv), jit("used_cols")(lv)
    cost = np.array(data.draw(st.lists(st.floats(0.5, 300.0), min_size=12, max_size=12))).reshape(4, 3)
    extra = data.draw(st.just(np.zeros(0)) | st.lists(st.floats(-40.0, 0.0), min_size=layer.C + 1,
                                                          max_size=layer.C + 1).map(np.array))
    stream = np.array(data.draw(st.lists(st.booleans(), max_size=200)), dtype=np.bool_)
    calls = {
        "search_layer": (lv, hw, rows, cols, cost, 1.5, extra),
        "first_violation": (lv, hw, mapping),
        "strip_rows_table": (lv,),
        "used_cols": (lv,),
        "distinct_offsets": tuple(data.draw(st.integers(0, 40)) for _ in range(4)),
        "count_accesses": (lv, hw, mapping, rows, cols),
        "rlc_pairs": (stream, data.draw(st.integers(1, 40))),
        "rlc_expected_pairs": (data.draw(st.floats(0.0, 1.0)), data.draw(st.integers(1, 31)),
                               np.array([data.draw(st.integers(0, 300)) for _ in range(7)], dtype=np.int64)),
    }
    assert set(calls) == set(EXPORTS)
    for name, args in calls.items():
        if name == "count_accesses":  # fills a counts array in place and returns the MACs
            built, own = np.zeros((4, 3, 2), np.int64), np.zeros((4, 3, 2), np.int64)
            assert KERNELS[name](*args, built) == jit(name)(*args, own) and np.array_equal(built, own)
            continue
        found, expected = KERNELS[name](*args), jit(name)(*args)
        assert same(found, expected) or (np.isscalar(expected) and found == expected), (name, found, expected)


def test_arguments_are_passed_in_the_declared_types():
    """A non-contiguous or differently typed array reaches the compiled code as the declared C-contiguous int64."""
    lv = np.arange(2 * (df.L_DW + 1), dtype=np.int32)[::2] % 5 + 1
    assert KERNELS["used_cols"](lv) == jit("used_cols")(np.ascontiguousarray(lv, dtype=np.int64))
    stream = np.array([0, 0, 1, 0] * 20, dtype=np.int8)[::2] != 0
    assert KERNELS["rlc_pairs"](stream, 31) == jit("rlc_pairs")(np.ascontiguousarray(stream), 31)
    assert KERNELS["distinct_offsets"](np.int64(3), 4, True, 1) == jit("distinct_offsets")(3, 4, 1, 1)
    with pytest.raises(TypeError):  # a float where an integer is declared is refused, never truncated
        KERNELS["distinct_offsets"](3.5, 4, 11, 1)


def python(code: str, cwd: Path = ROOT, **env: str) -> list:
    """Run ``code`` in a new interpreter (``env`` added); the JSON of its last line."""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600,
                          env={**os.environ, **env}, cwd=cwd)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.splitlines()[-1])


def test_a_cold_process_calls_the_build_without_numba_and_jit_gives_the_same_result(tmp_path):
    assert python(SHOW) == ["ahead-of-time build", False]
    assert python(SHOW, **{ENV: "jit"}) == ["Numba just-in-time (EYESIM_KERNELS=jit)", True]
    run = (f"import json, eyesim\nr = eyesim.estimate({ALEXNET!r}, {CHIP!r}, batch=2)\n"
           "print(json.dumps(r.to_dict()))")
    assert python(run) == python(run, **{ENV: "jit"})


def test_a_build_of_other_sources_is_not_used(tmp_path):
    """An editable install whose kernels were edited since the build falls back to the JIT kernels."""
    copy = tmp_path / "eyesim"
    shutil.copytree(ROOT / "eyesim", copy, ignore=shutil.ignore_patterns("__pycache__"))
    with open(copy / "dataflow" / "geometry.py", "a") as source:
        source.write("\n# edited after the build\n")
    source_found = python(SHOW, tmp_path, PYTHONPATH=str(tmp_path))[0]
    assert source_found.startswith("Numba just-in-time (the kernels' sources changed since the build")
    (copy / "dataflow" / "geometry.py").write_bytes((ROOT / "eyesim" / "dataflow" / "geometry.py").read_bytes())
    assert python(SHOW, tmp_path, PYTHONPATH=str(tmp_path)) == ["ahead-of-time build", False]


def test_a_build_that_is_missing_leaves_the_jit_kernels(tmp_path):
    copy = tmp_path / "eyesim"
    shutil.copytree(ROOT / "eyesim", copy, ignore=shutil.ignore_patterns("__pycache__", "_aot*"))
    assert python(SHOW, tmp_path, PYTHONPATH=str(tmp_path))[0].startswith("Numba just-in-time (no ahead-of-time build")


def test_an_unknown_kernel_choice_is_refused_on_one_line(tmp_path):
    for value in ("JIT", "aot", "numba", " ", "jit\n"):
        outcome = run_fresh([str(Path(sys.executable).parent / "eyesim"), "estimate", ALEXNET, "--hw", CHIP],
                            env={**os.environ, ENV: value}, cwd=tmp_path, watch=tmp_path)
        outcome.refused(f"{ENV}=", "must be 'auto'")


def test_a_build_that_does_not_load_leaves_the_jit_kernels(tmp_path):
    """An extension file that does not load (here not a shared object at all) falls back."""
    copy = tmp_path / "eyesim"
    shutil.copytree(ROOT / "eyesim", copy, ignore=shutil.ignore_patterns("__pycache__"))
    for built in (copy / "dataflow").glob("_aot*"):
        built.write_bytes(b"not a shared object\n" * 100)
    found, numba_loaded = python(SHOW, tmp_path, PYTHONPATH=str(tmp_path))
    assert found.startswith("Numba just-in-time (the ahead-of-time build does not load (ImportError") and numba_loaded
