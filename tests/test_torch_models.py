"""PyTorch modules in one call (issue 13, item 5) and the coverage infrastructure of item 6.

Supported CNNs (Conv2d/Linear/BatchNorm, ResNet-like blocks, a short Conv1d), exported at opsets 13 and
17 and with the dynamo exporter: eyesim's MACs equal an independent count from onnxruntime's shapes
(tests/mac_count.py), layer by layer, and layers are named after the module's own names. The wild
models of tests/wild_models.py export with every exporter and are counted by tests/mac_count.py, whose
count equals a hand formula (the ViT) or torch's own forward hooks (the others).
"""

from __future__ import annotations

import functools
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper
from torch import nn

import eyesim
from eyesim.errors import EyesimError
from eyesim.sweep import Grid, make_job, parse_vary, read_sweep, run_sweep
from eyesim.workload.torch_export import export_module, rename
from tests.mac_count import count_macs
from tests.wild_models import EXPORTERS, SUPPORTED, WILD, build, exported, hook_macs, vit_macs

ROOT = Path(__file__).resolve().parent.parent
CHIP = str(ROOT / "hwconfigs" / "eyeriss.yaml")
ALEXNET = str(ROOT / "models_onnx" / "alexnet.onnx")
SPECS = {"opset13": ("torchscript", 13), "opset17": ("torchscript", 17), "dynamo": ("dynamo", None)}
NAMES = {
    "cnn": ["features.0", "features.4", "classifier.1", "classifier.3"],
    "resnet": ["stem.0", "layer1.0.conv1", "layer1.0.conv2", "layer1.1.conv1", "layer1.1.conv2", "layer2.0.conv1",
               "layer2.0.conv2", "layer2.0.down.0", "layer2.1.conv1", "layer2.1.conv2", "fc"],
    "conv1d": ["conv1", "conv2", "fc"],
}
VIT_NAMES = ["patch_embed", *(f"blocks.{b}.{n}" for b in range(2) for n in (
    "attn.qkv", "attn.MatMul", "attn.MatMul_1", "attn.proj", "mlp.0", "mlp.2")), "head"]


@functools.cache
def eyesim_export(name: str, spec: str) -> onnx.ModelProto:
    """eyesim's own export (nodes named after the module) of a case, cached: the dynamo exporter takes seconds."""
    model, x = build({**SUPPORTED, **WILD}[name])
    return export_module(model, x, *SPECS[spec])


@pytest.mark.parametrize("spec", list(SPECS))
@pytest.mark.parametrize("name", list(SUPPORTED))
def test_macs_equal_onnxruntime_count_layer_by_layer(name, spec):
    proto = eyesim_export(name, spec)
    counted = count_macs(proto)
    result = eyesim.estimate(proto, CHIP)
    assert {lr.layer.name: lr.energy.macs for lr in result.layers} == {n.name: n.macs for n in counted.nodes}
    assert result.total()["macs"] == counted.total == hook_macs(*build(SUPPORTED[name]))
    assert [lr.layer.name for lr in result.layers] == NAMES[name]
    assert result.model == SUPPORTED[name].build.__name__


@pytest.mark.parametrize("spec", list(SPECS))
def test_estimate_takes_a_module(spec):
    model, x = build(SUPPORTED["cnn"])
    exporter, opset = SPECS[spec]
    result = eyesim.estimate(model, CHIP, example_inputs=x, exporter=exporter, opset=opset)
    same = eyesim.estimate(eyesim_export("cnn", spec), CHIP)
    assert result.to_dict() == same.to_dict()
    assert result.batch == 1 and [lr.layer.name for lr in result.layers] == NAMES["cnn"]


def test_batch_follows_example_inputs_unless_given():
    model, _ = build(SUPPORTED["resnet"])
    x = torch.randn(3, 3, 16, 16)
    three = eyesim.estimate(model, CHIP, example_inputs=x)
    one = eyesim.estimate(model, CHIP, example_inputs=x, batch=1)
    assert (three.batch, one.batch) == (3, 1)
    assert three.total()["macs"] == 3 * one.total()["macs"] == 3 * hook_macs(model, x[:1])


def test_numpy_inputs_and_training_mode_restored():
    model, x = build(SUPPORTED["cnn"])
    model.train()
    result = eyesim.estimate(model, CHIP, example_inputs=(x.numpy().astype(np.float64),))
    assert model.training and all(m.training for m in model.modules())
    assert result.total()["macs"] == hook_macs(model.eval(), x)


def test_sweep_takes_a_module(tmp_path):
    model, x = build(SUPPORTED["resnet"])
    job = make_job(model, CHIP, Grid((parse_vary("glb.size_kb=64,108"),), 2), example_inputs=x)
    run_sweep(job, tmp_path / "sweep.csv", workers=1)
    frame = read_sweep(tmp_path / "sweep.csv")
    totals = frame[frame["layer"] == "TOTAL"]
    assert len(totals) == 2 and set(totals["macs"]) == {2 * hook_macs(model, x)}
    assert set(frame["layer"]) == {*NAMES["resnet"], "TOTAL"}


def test_dynamo_at_an_older_opset_keeps_module_names():
    model, x = build(SUPPORTED["cnn"])
    proto = export_module(model, x, "dynamo", 17)
    assert proto.opset_import[0].version == 17
    assert [lr.layer.name for lr in eyesim.estimate(proto, CHIP).layers] == NAMES["cnn"]


@pytest.mark.parametrize("spec", ["opset17", "dynamo"])
def test_attention_layers_are_named_after_modules(spec):
    proto = eyesim_export("vit", spec)
    assert [n.name for n in proto.graph.node if n.op_type in ("Conv", "Gemm", "MatMul")] == VIT_NAMES
    names = [n.name for n in proto.graph.node]
    assert len(set(names)) == len(names)


class Shared(nn.Module):
    """One Linear run twice, nn.MultiheadAttention, functional attention and an Einsum at the root."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(16, 16)
        self.mha = nn.MultiheadAttention(16, 2, batch_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.fc(self.fc(x))
        q = y.reshape(1, 4, 2, 8).transpose(1, 2)
        a = nn.functional.scaled_dot_product_attention(q, q, q).transpose(1, 2).reshape(1, 4, 16)
        b, _ = self.mha(a, a, a)
        return b + torch.einsum("bik,bjk->bij", b, b).sum()


@pytest.mark.parametrize("exporter", ["torchscript", "dynamo"])
def test_repeated_modules_and_root_ops_get_distinct_names(exporter):
    proto = export_module(Shared().eval(), torch.randn(1, 4, 16), exporter)
    layers = [n.name for n in proto.graph.node if n.op_type in ("Gemm", "MatMul", "Einsum")]
    assert layers == ["fc.MatMul", "fc.MatMul_1", "MatMul", "MatMul_1", "mha.MatMul", "mha.MatMul_1",
                      "mha.MatMul_2", "mha.Gemm", "Einsum"]
    assert len({n.name for n in proto.graph.node}) == len(proto.graph.node)


def test_rename_keeps_every_name_distinct():
    ops = ["Conv", "Relu", "Conv", "Conv", "Conv", "Conv", "MatMul"]
    paths = ["a", "a", "b", "b", "", "Conv", "c"]
    nodes = [helper.make_node(op, ["x"], [f"t{i}"]) for i, op in enumerate(ops)]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])], [])
    proto = helper.make_model(graph)
    rename(proto, paths)
    assert [n.name for n in proto.graph.node] == ["a", "a.Relu", "b.Conv", "b.Conv_1", "Conv", "Conv_1", "c"]


def test_import_eyesim_does_not_import_torch():
    code = ("import sys, eyesim, eyesim.estimator, eyesim.sweep, eyesim.cli.main; "
            f"r = eyesim.estimate({ALEXNET!r}, {CHIP!r}); "
            "assert 'torch' not in sys.modules and 'onnxscript' not in sys.modules, 'torch imported'")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stderr


class Raises(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise ValueError("boom\nand more")


class Attention(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(8, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(nn.functional.scaled_dot_product_attention(x, x, x))


CNN, X = build(SUPPORTED["cnn"])
BAD = {
    "no example inputs": (lambda: eyesim.estimate(CNN, CHIP), "needs example_inputs"),
    "wrong channels": (lambda: eyesim.estimate(CNN, CHIP, example_inputs=torch.randn(1, 4, 14, 14)),
                       "forward fails on example_inputs of shape 1x4x14x14"),
    "wrong rank": (lambda: eyesim.estimate(CNN, CHIP, example_inputs=torch.randn(3, 14, 14)), "shape 3x14x14"),
    "too small": (lambda: eyesim.estimate(CNN, CHIP, example_inputs=torch.randn(1, 3, 2, 2)), "forward fails"),
    "empty tuple": (lambda: eyesim.estimate(CNN, CHIP, example_inputs=()), "forward fails"),
    "string input": (lambda: eyesim.estimate(CNN, CHIP, example_inputs="x"), "example_inputs[0] must be"),
    "dict input": (lambda: eyesim.estimate(CNN, CHIP, example_inputs={"x": X}), "got dict"),
    "list of None": (lambda: eyesim.estimate(CNN, CHIP, example_inputs=[X, None]), "example_inputs[1]"),
    "string array": (lambda: eyesim.estimate(CNN, CHIP, example_inputs=np.array(["a"])), "numeric NumPy"),
    "unknown exporter": (lambda: eyesim.estimate(CNN, CHIP, example_inputs=X, exporter="onnx"), "exporter must"),
    "opset too old": (lambda: eyesim.estimate(CNN, CHIP, example_inputs=X, opset=5), "opset must"),
    "opset too new": (lambda: eyesim.estimate(CNN, CHIP, example_inputs=X, opset=99), "from 7 to 23"),
    "opset as text": (lambda: eyesim.estimate(CNN, CHIP, example_inputs=X, opset="17"), "opset must"),
    "opset as bool": (lambda: eyesim.estimate(CNN, CHIP, example_inputs=X, opset=True), "opset must"),
    "forward raises": (lambda: eyesim.estimate(Raises(), CHIP, example_inputs=X), "Raises's forward fails"),
    "op too new for opset": (lambda: eyesim.estimate(Attention(), CHIP, example_inputs=torch.randn(1, 2, 4, 8),
                                                     opset=13), "could not export Attention"),
    "dynamo below its opset": (lambda: export_module(CNN, X, "dynamo", 7), "use opset 18 or later"),
    "not a model": (lambda: eyesim.estimate(42, CHIP), "model must be an ONNX file path"),
    "tensor as model": (lambda: eyesim.estimate(X, CHIP), "got Tensor"),
    "inputs for a file": (lambda: eyesim.estimate(ALEXNET, CHIP, example_inputs=X), "only for a torch.nn.Module"),
    "opset for a file": (lambda: eyesim.estimate(ALEXNET, CHIP, opset=13), "opset: only for"),
    "exporter for a file": (lambda: eyesim.estimate(ALEXNET, CHIP, exporter="dynamo"), "exporter: only for"),
    "sweep without inputs": (lambda: make_job(CNN, CHIP, Grid((parse_vary("glb.size_kb=64"),), 1)),
                             "needs example_inputs"),
    "sweep, bad inputs": (lambda: make_job(CNN, CHIP, Grid((parse_vary("glb.size_kb=64"),), 1),
                                           example_inputs=torch.randn(2, 2)), "forward fails"),
}


BAD_OPSETS = [-1, 0, 6, 24, 1000, 17.0, "17", True, False, [17], (13,)]
BAD_EXPORTERS = ["", "TorchScript", "onnx", "jit", "dynamo ", 1, False, ("dynamo",)]
BAD_ITEMS = [1, 2.5, b"x", {1}, object(), "tensor", [X], (X,), np.array([object()])]
BAD_SHAPES = [(1, 3), (1, 3, 14), (1, 1, 14, 14), (1, 6, 14, 14), (1, 3, 1, 1), (1, 3, 14, 14, 1), (2, 2, 2, 2)]
EMPTY_SHAPES = [(0, 3, 14, 14), (1, 0, 14, 14), (1, 3, 0, 14)]
BAD.update({f"opset {v!r}": (functools.partial(eyesim.estimate, CNN, CHIP, example_inputs=X, opset=v), "opset must")
            for v in BAD_OPSETS})
BAD.update({f"exporter {v!r}": (functools.partial(eyesim.estimate, CNN, CHIP, example_inputs=X, exporter=v),
                                "exporter must") for v in BAD_EXPORTERS})
BAD.update({f"input item {type(v).__name__} {i}": (functools.partial(eyesim.estimate, CNN, CHIP,
                                                                     example_inputs=(X, v)), "example_inputs[1]")
            for i, v in enumerate(BAD_ITEMS)})
BAD.update({f"input shape {s}": (functools.partial(eyesim.estimate, CNN, CHIP, example_inputs=torch.randn(s)),
                                 "forward fails on example_inputs of shape") for s in BAD_SHAPES})
BAD.update({f"empty input {s}": (functools.partial(eyesim.estimate, CNN, CHIP, example_inputs=torch.randn(s)),
                                 "is empty") for s in EMPTY_SHAPES})


@pytest.mark.parametrize("case", list(BAD))
def test_bad_module_or_inputs_is_one_quiet_line(case, capfd):
    call, needle = BAD[case]
    with pytest.raises(EyesimError) as raised:
        call()
    message = str(raised.value)
    assert "\n" not in message and "\x1b" not in message and needle in message, message
    out, err = capfd.readouterr()
    assert out == "" and err == "", (out + err)[:500]


@pytest.mark.parametrize("exporter", EXPORTERS)
@pytest.mark.parametrize("name", list(WILD))
def test_wild_models_export_and_are_counted(name, exporter):
    proto = exported(name, exporter)
    onnx.checker.check_model(proto)
    model, x = build(WILD[name])
    counted = count_macs(proto, {"x": WILD[name].shape})  # the detector's height and width are symbolic
    assert counted.total == (vit_macs() if name == "vit" else hook_macs(model, x))
    ops = counted.by_op()
    if name == "vit":  # per block: q·kᵀ and scores·v multiply two activations of 2 heads × 16 tokens × 16
        assert ops["Conv"] == 16 * 32 * 3 * 64 and ops["Gemm"] == 32 * 10
        assert sorted(n.macs for n in counted.nodes if n.op == "MatMul")[:4] == [2 * 16 * 16 * 16] * 4
    if name == "unet":  # up2: 4x4 inputs, 32 > 16, every 2x2 tap lands; up1: 8x8, 16 > 8, 3x3 taps, pads crop
        # the products of input row/col 0 with tap 0 (23 of 24 land per dim)
        assert ops["ConvTranspose"] == 16 * 32 * 16 * 4 + 16 * 8 * 23 * 23
    if name == "audio":
        assert any(shape[-1:] == (80,) and len(shape) == 3 for shape in counted.shapes.values())


@pytest.mark.parametrize("exporter", EXPORTERS)
def test_detector_has_symbolic_height_and_width(exporter):
    proto = exported("detector", exporter)
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_param for d in dims[2:]] == ["height", "width"]
    model, _ = build(WILD["detector"])
    for shape in [(1, 3, 64, 96), (1, 3, 40, 56)]:
        assert count_macs(proto, {"x": shape}).total == hook_macs(model, torch.randn(shape))
