"""Filter pruning end to end: redundant filters go and the smaller model reproduces the original, the criteria rank
as their papers say, the CLI writes a smaller model that eyesim estimates with the smaller shapes, bad input."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pandas as pd
import pytest
from click.testing import CliRunner
from onnx import numpy_helper

from eyesim.cli.main import main
from eyesim.estimator import estimate
from eyesim.prune.filters import dense_refit, feature_map, prune_filters
from eyesim.prune.layers import prunable_layers
from eyesim.prune.restore import layer_stats
from eyesim.workload.onnx.run import Runner, Samples
from tests.channel_models import build, conv, op, weights
from tests.cli_support import assert_one_line_error
from tests.conftest import arrays

from .test_cli import ALEXNET, CHIP


def redundant_model(seed: int = 0) -> onnx.ModelProto:
    """conv1 (8 filters: 2 all zero, 1 a copy of another) -> relu -> conv2 -> relu -> flatten -> fc (input 2x6x6)."""
    rng = np.random.default_rng(seed)
    inits = weights(rng, w1=(8, 2, 3, 3), b1=(8,), w2=(6, 8, 3, 3), b2=(6,), w3=(4, 6 * 36), b3=(4,))
    inits["w1"][[2, 5]] = 0.0
    inits["b1"][[2, 5]] = -1.0  # zero filters with a negative bias: their maps are 0 after the ReLU
    inits["w1"][[1, 7]] = 0.3 * inits["w1"][1]  # filter 7 repeats filter 1; both are the weakest live filters, so
    inits["b1"][[1, 7]] = 0.0  # they are ranked next (no bias: their maps are not a constant a refit could absorb)
    nodes = [conv("conv1", "x", "c1", "w1", "b1", pads=[1, 1, 1, 1]), op("Relu", "c1", "r1"),
             conv("conv2", "r1", "c2", "w2", "b2", pads=[1, 1, 1, 1]), op("Relu", "c2", "r2"),
             op("Flatten", "r2", "f"), helper_gemm()]
    return build(nodes, inits, [2, 6, 6], 4)


def helper_gemm() -> onnx.NodeProto:
    return onnx.helper.make_node("Gemm", ["f", "w3", "b3"], ["y"], name="fc", transB=1)


def samples(n: int, seed: int = 1) -> Samples:
    x = np.random.default_rng(seed).normal(size=(n, 2, 6, 6)).astype(np.float32)
    return Samples(x, None, "random")


def test_redundant_filters_go_and_the_smaller_model_reproduces_the_original():
    model = redundant_model()
    data = samples(400)
    result = prune_filters(model, CHIP, data, criterion="nuclear-norm", max_output_error=1e-4, freeze=("conv2",))
    (step,) = [s for s in result.steps if s.layer == "conv1"]
    assert (step.channels_before, step.channels_after) == (8, 5)  # the two zero filters and one of the twins
    w1 = {t.name: numpy_helper.to_array(t) for t in result.model.graph.initializer}["w1"]
    assert w1.shape == (5, 2, 3, 3) and np.all(np.abs(w1).reshape(5, -1).sum(1) > 0)
    onnx.checker.check_model(result.model, full_check=True)
    x = samples(50, seed=7).x
    (y0,) = ort.InferenceSession(model.SerializeToString()).run(None, {"x": x})
    (y1,) = ort.InferenceSession(result.model.SerializeToString()).run(None, {"x": x})
    assert np.allclose(y0, y1, atol=1e-3 * np.abs(y0).max())
    by_name = {lr.layer.name: lr.layer for lr in estimate(result.model, CHIP).layers}
    assert by_name["conv1"].M == 5 and by_name["conv2"].C == 5


def test_feature_map_is_taken_after_the_activation():
    model = redundant_model()
    assert feature_map(model, "c1") == "r1" and feature_map(model, "y") == "y"


def test_dense_refit_recovers_a_linear_map_and_picks_the_smallest_useful_ridge():
    model = redundant_model()
    (lay,) = [lay for lay in prunable_layers(model) if lay.name == "fc"]
    x = np.maximum(np.random.default_rng(2).normal(size=(600, 6 * 36)), 0).astype(np.float32)
    w, b = np.random.default_rng(3).normal(size=(4, 216)), np.arange(4.0)
    y = x @ w.T + b
    fit, val = layer_stats(lay, x[:500], y[:500]), layer_stats(lay, x[500:], y[500:])
    mats, bias, ridge = dense_refit(fit, val)
    assert np.allclose(mats[0], w, atol=1e-4) and np.allclose(bias[0], b, atol=1e-4) and ridge <= 1e-6


@pytest.mark.parametrize("criterion", ["nuclear-norm", "l1", "energy-aware"])
def test_filter_pruning_of_the_digits_cnn_writes_a_smaller_model(digits, tmp_path, criterion):
    out, csv = tmp_path / "f.onnx", tmp_path / "f.csv"
    res = CliRunner().invoke(main, ["prune", str(digits / "cnn.onnx"), "--hw", CHIP, "--data",
                                    str(digits / "data.npz"), "--eval", str(digits / "eval.npz"), "--granularity",
                                    "filter", "--criterion", criterion, "--max-accuracy-drop", "2", "-o", str(out),
                                    "--report", str(csv), "--force"])
    assert res.exit_code in (0, 1), res.output
    assert "fc: skipped, its output is the graph output" in res.stderr
    report = pd.read_csv(csv)
    steps = report.query("layer != 'TOTAL'")
    assert set(steps.layer) <= {"conv1", "conv2"} and (steps.channels_after <= steps.channels_before).all()
    assert (steps.channels_after % 2 == 0).all()  # conv2 has 2 groups: its blocks stay equal
    smaller = onnx.load(str(out))
    onnx.checker.check_model(smaller, full_check=True)
    layers = {lr.layer.name: lr.layer for lr in estimate(smaller, CHIP).layers}
    kept = dict(zip(steps.layer, steps.channels_after, strict=True))
    conv2 = layers["conv2"]  # C and M are per group
    assert kept.get("conv1", 8) == conv2.G * conv2.C and kept.get("conv2", 8) == conv2.G * conv2.M
    total = report.query("layer == 'TOTAL'").iloc[0]
    e = arrays(digits / "eval.npz")
    (logits,) = ort.InferenceSession(str(out)).run(None, {"x": e["x"]})
    assert 100 * np.mean(logits.argmax(1) == e["y"]) == pytest.approx(total.accuracy_eval)
    assert total.energy_after <= total.energy_before


def test_a_residual_block_is_pruned_on_both_branches_together(tmp_path):
    rng = np.random.default_rng(0)
    inits = weights(rng, w0=(6, 2, 3, 3), w1=(6, 6, 3, 3), w2=(6, 6, 3, 3), w3=(3, 6 * 16), b3=(3,))
    inits["w0"][[0, 3]] *= 0.01  # weak channels on the block input: the same channels must go from conv0 and conv2
    inits["w2"][[0, 3]] *= 0.01
    nodes = [conv("conv0", "x", "c0", "w0", pads=[1, 1, 1, 1]), op("Relu", "c0", "r0"),
             conv("conv1", "r0", "c1", "w1", pads=[1, 1, 1, 1]), op("Relu", "c1", "r1"),
             conv("conv2", "r1", "c2", "w2", pads=[1, 1, 1, 1]), op("Add", ["c2", "r0"], "s", name="add"),
             op("Relu", "s", "r2"), op("Flatten", "r2", "f"),
             onnx.helper.make_node("Gemm", ["f", "w3", "b3"], ["y"], name="fc", transB=1)]
    model = build(nodes, inits, [2, 4, 4], 3)
    data = Samples(rng.normal(size=(300, 2, 4, 4)).astype(np.float32), None, "random")
    result = prune_filters(model, CHIP, data, max_output_error=0.05, freeze=("conv1",))
    onnx.checker.check_model(result.model, full_check=True)
    shapes = {t.name: tuple(t.dims) for t in result.model.graph.initializer}
    assert shapes["w0"][0] == shapes["w2"][0] == shapes["w1"][1] < 6  # pruned together
    Runner(result.model).run(data.x[:5], ["y"])


def test_bad_input_is_one_line(digits):
    base = ["prune", str(digits / "cnn.onnx"), "--hw", CHIP, "--data", str(digits / "data.npz")]
    cases = [([*base, "--granularity", "filter", "--criterion", "nope"], "'nope' is not one of"),
             ([*base, "--granularity", "pieces"], "'pieces' is not one of"),
             ([*base, "--granularity", "filter", "--freeze", "conv9"], "--freeze conv9: no prunable layer"),
             ([*base, "--granularity", "filter", "--freeze", "conv1", "--freeze", "conv2"], "no layer can be filter"),
             ([*base, "--criterion", "l1"], "--criterion applies to --granularity filter"),
             ([*base, "--granularity", "filter", "--method", "magnitude"], "--method applies to --granularity weight"),
             (["prune", ALEXNET, "--hw", CHIP, "--data", str(digits / "data.npz"), "--granularity", "filter"],
              "needs the trained weights")]
    for args, needle in cases:
        assert_one_line_error(CliRunner().invoke(main, args), needle)
