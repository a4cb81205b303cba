"""A fast first command: what the estimate path imports, and the light ONNX path giving onnx's own answers.

``eyesim/__init__.py`` makes ``import onnx`` lazy (onnx's helpers pull ml_dtypes, ~0.6 s) and
``eyesim/workload/onnx/proto.py`` stands in for the few helpers an estimate needs; pandas, tqdm, onnxruntime and
the other heavy packages load only in the commands that use them. Checked in new processes (the test process has
imported onnx itself), without timing: benchmarks/bench_startup.py measures the time.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from eyesim.workload.onnx.proto import attribute_value, read_model, tensor_array, tensor_type

ROOT = Path(__file__).resolve().parent.parent
MODELS = sorted((ROOT / "models_onnx").glob("*.onnx"))
CHIP = str(ROOT / "hwconfigs" / "eyeriss.yaml")
# never on the estimate path: heavy, and needed only by other commands or options (Numba: only when the kernels
# were not built at install, tests/test_kernels.py)
UNWANTED = ("numba", "llvmlite", "pandas", "pyarrow", "onnxruntime", "torch", "matplotlib", "dask", "distributed",
            "sklearn", "tqdm", "ml_dtypes", "onnx.helper", "onnx.numpy_helper", "onnx.reference", "onnx.compose",
            "onnxscript")


def python(code: str, cwd: Path) -> str:
    """Run ``code`` in a new interpreter; its stdout."""
    done = subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def estimate_code(model: Path, out: Path, first: str = "") -> str:
    """A process running ``eyesim estimate`` (JSON output) that prints the modules it imported."""
    return (f"{first}import json, sys\nfrom eyesim.cli.main import main\n"
            f"try:\n    main(['estimate', {str(model)!r}, '--hw', {CHIP!r}, '--quiet', '-o', {str(out)!r}])\n"
            "except SystemExit as end:\n    assert not end.code, end.code\n"
            "print(json.dumps(sorted(sys.modules)))\n")


def heavy(modules: list[str]) -> list[str]:
    return [m for m in modules if any(m == u or m.startswith(u + ".") for u in UNWANTED)]


def test_estimate_imports_nothing_heavy(tmp_path):
    out = tmp_path / "alexnet.json"
    modules = json.loads(python(estimate_code(ROOT / "models_onnx" / "alexnet.onnx", out), tmp_path))
    assert out.is_file()
    assert not heavy(modules), heavy(modules)


def test_import_eyesim_is_light(tmp_path):
    modules = json.loads(python("import json, sys, eyesim\nprint(json.dumps(sorted(sys.modules)))", tmp_path))
    assert not [m for m in modules if m.split(".")[0] in ("numpy", "numba", "click", "yaml", "google")]
    assert "onnx" in modules and "onnx.onnx_ml_pb2" not in modules  # registered, not yet run


@pytest.mark.parametrize("model", [m for m in MODELS if m.stem in ("alexnet", "lenet5-mnist", "squeezenet1_0",
                                                                   "mobilenetv2", "googlenet")], ids=lambda m: m.stem)
def test_light_path_gives_onnx_answers(model, tmp_path):
    """The same JSON result with the lazy onnx as with onnx imported whole before eyesim."""
    light, whole = tmp_path / "light.json", tmp_path / "whole.json"
    python(estimate_code(model, light), tmp_path)
    python(estimate_code(model, whole, first="import onnx\n"), tmp_path)
    assert json.loads(light.read_text()) == json.loads(whole.read_text())


def test_lazy_onnx_is_onnx(tmp_path):
    """After eyesim, ``onnx`` behaves as onnx: helpers, load, version, one set of message classes."""
    code = ("import sys, eyesim, onnx\nproto = onnx.ModelProto\nassert 'ml_dtypes' not in sys.modules\n"
            "from onnx import helper, numpy_helper\nimport onnx.reference\n"
            "node = helper.make_node('Relu', ['x'], ['y'])\nassert isinstance(node, onnx.NodeProto)\n"
            "assert onnx.ModelProto is proto is onnx.onnx_ml_pb2.ModelProto and callable(onnx.load)\n"
            "assert onnx.__version__ and 'ModelProto' in dir(onnx)\n"
            "from onnx import *\nprint(TensorProto.FLOAT, len(onnx.load_from_string(helper.make_model("
            "helper.make_graph([node], 'g', [], [])).SerializeToString()).graph.node))\n")
    assert python(code, tmp_path).split() == ["1", "1"]


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.stem)
def test_proto_helpers_match_onnx(model):
    proto = read_model(model)
    assert proto == onnx.load(str(model), load_external_data=False)
    tensors = [*proto.graph.initializer, *(a.t for n in proto.graph.node for a in n.attribute if a.type == a.TENSOR)]
    for tensor in tensors:
        _same_array(tensor)
    for node in proto.graph.node:
        for attr in node.attribute:
            assert attribute_value(attr) == helper.get_attribute_value(attr)


def _same_array(tensor: TensorProto, expected: np.ndarray | None = None) -> None:
    """``tensor_array`` gives what ``numpy_helper.to_array`` gives: dtype, shape and values."""
    expected = numpy_helper.to_array(tensor) if expected is None else expected
    found = tensor_array(tensor)
    assert (found.dtype, found.shape) == (expected.dtype, expected.shape), tensor.name
    assert np.array_equal(found, expected, equal_nan=found.dtype.kind == "f"), tensor.name


DTYPES = [np.float32, np.float64, np.float16, np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32,
          np.uint64, np.bool_]


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("shape", [(), (0,), (3,), (2, 3, 4)], ids=str)
def test_tensor_array_matches_numpy_helper(dtype, shape):
    values = (np.arange(int(np.prod(shape))) % 7 - 3).astype(dtype).reshape(shape)
    raw = numpy_helper.from_array(values, "raw")
    typed = helper.make_tensor("typed", helper.np_dtype_to_tensor_dtype(np.dtype(dtype)), shape, values.flatten())
    for tensor in (raw, typed):
        _same_array(tensor)


@pytest.mark.parametrize("tensor", [
    TensorProto(name="short", data_type=TensorProto.FLOAT, dims=[4], raw_data=b"\0" * 12),
    TensorProto(name="few", data_type=TensorProto.INT64, dims=[4], int64_data=[1, 2]),
    helper.make_tensor("bf16", TensorProto.BFLOAT16, [2], [1.0, 2.0]),
    helper.make_tensor("text", TensorProto.STRING, [1], [b"a"]),
], ids=lambda t: t.name)
def test_tensor_array_odd_tensors_as_numpy_helper(tensor):
    """A short tensor is refused as onnx refuses it; other types are read by onnx's helper itself."""
    try:
        expected = numpy_helper.to_array(tensor)
    except ValueError:
        with pytest.raises(ValueError):
            tensor_array(tensor)
        return
    _same_array(tensor, expected)


ATTRS = [("f", 1.5), ("i", -3), ("s", b"same"), ("floats", [1.0, 2.5]), ("ints", [1, -2, 3]), ("strings", [b"a"]),
         ("t", numpy_helper.from_array(np.ones(2, np.float32))), ("g", helper.make_graph([], "g", [], [])),
         ("tensors", [numpy_helper.from_array(np.zeros(1, np.int64))]), ("empty", [])]


@pytest.mark.parametrize(("name", "value"), ATTRS, ids=[a[0] for a in ATTRS])
def test_attribute_value_matches_helper(name, value):
    kind = onnx.AttributeProto.INTS if name == "empty" else None  # an empty list has no type of its own
    attr = helper.make_attribute(name, value, attr_type=kind)
    assert attribute_value(attr) == helper.get_attribute_value(attr)


@pytest.mark.parametrize("dims", [[], [1], [3, 224, 224], [2**40]], ids=str)
def test_tensor_type_matches_helper(dims):
    assert tensor_type(TensorProto.FLOAT, dims) == helper.make_tensor_type_proto(TensorProto.FLOAT, dims)


def test_read_model_refuses_what_onnx_refuses(tmp_path):
    good = (ROOT / "models_onnx" / "lenet5-mnist.onnx").read_bytes()
    for cut in (1, 7, len(good) // 2, len(good) - 1):
        path = tmp_path / f"cut{cut}.onnx"
        path.write_bytes(good[:cut])
        try:
            expected = onnx.load(str(path), load_external_data=False)
        except Exception:  # noqa: BLE001 - whatever onnx raises, the light reader raises too
            with pytest.raises(Exception):  # noqa: B017
                read_model(path)
            continue
        assert read_model(path) == expected


def test_read_model_text_format(tmp_path):
    model = onnx.load(str(ROOT / "models_onnx" / "lenet5-mnist.onnx"))
    path = tmp_path / "lenet.txtpb"
    onnx.save(model, str(path))
    assert read_model(path) == onnx.load(str(path))
