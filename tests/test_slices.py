"""Filters wider than a scratchpad run as slices; layers outside the chip's native shapes are reported
(DESIGN.md, "Filters wider than a scratchpad or taller than the array")."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

import eyesim
from eyesim import dataflow as df
from eyesim.cost.breakdown import breakdown
from eyesim.cost.counts import layer_counts, layer_vector
from eyesim.cost.energy import layer_costs
from eyesim.cost.timing import PassWork, array_cycles, pass_cycles
from eyesim.cost.values import conv_zero_counts
from eyesim.cost.zeros import ZeroEffects
from eyesim.errors import EyesimError
from eyesim.estimator import SMALLEST, Target, _energy_floor, best_mapping, estimate_layer
from eyesim.hardware import load_hardware, with_overrides
from eyesim.hardware.spec import Bits, NativeSpec
from eyesim.mapping import Mapping
from eyesim.report.table import table
from eyesim.sweep.grid import Grid, parse_vary
from eyesim.sweep.job import make_job
from eyesim.sweep.output import read_sweep
from eyesim.sweep.run import run_sweep
from eyesim.workload import Layer, out_size
from eyesim.workload.layer import LayerIO
from eyesim.workload.slices import divisors_below, slice_shapes, sliced
from tests.hostile import run_cli
from tests.layers import tilings
from tests.mac_count import count_macs
from tests.reference_trace import trace_counts

ROOT = Path(__file__).resolve().parent.parent
CHIP_FILE = ROOT / "hwconfigs" / "eyeriss.yaml"
ISCA_FILE = ROOT / "hwconfigs" / "eyeriss-isca256.yaml"
CHIP, ISCA = load_hardware(CHIP_FILE), load_hardware(ISCA_FILE)
LENET = ROOT / "models_onnx" / "lenet5-mnist.onnx"


def conv1d(path: Path, C: int = 1, M: int = 32, W: int = 16000, S: int = 80, stride: int = 10, N: int = 1,
           H: int | None = None, R: int = 1) -> Path:
    """A 1-D conv (or, with H, a 2-D one R x S) followed by a ReLU, as an ONNX file."""
    rng = np.random.default_rng(0)
    spatial = [W] if H is None else [H, W]
    kernel = [S] if H is None else [R, S]
    weights = numpy_helper.from_array(rng.standard_normal((M, C, *kernel)).astype(np.float32), "w")
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [N, C, *spatial])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    strides = [stride] if H is None else [1, stride]
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv1", strides=strides),
             helper.make_node("Relu", ["c"], ["y"], name="relu1")]
    graph = helper.make_graph(nodes, "audio", [x], [y], [weights])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)
    return path


# --- the 1-D audio conv with an 80-tap filter now runs on the chip -----------------------------------------------


@pytest.mark.parametrize("C", [1, 64])
def test_the_80_tap_audio_conv_runs_on_the_chip_as_slices(tmp_path, C):
    result = eyesim.estimate(conv1d(tmp_path / "audio.onnx", C=C), CHIP_FILE)
    lr = result.layers[0]
    F = (16000 - 80) // 10 + 1
    assert lr.energy.macs == 32 * C * F * 80 == lr.slices.layer.macs  # the layer's real MACs
    assert lr.slices.count * lr.slices.width == 80 and lr.slices.width <= CHIP.rf.ifmap_words
    run = lr.layer  # the sliced layer: C*k channels of s taps, each slice reading its own window of W' columns
    want = (C * lr.slices.count, lr.slices.width, F, (F - 1) * 10 + lr.slices.width)
    assert want == (run.C, run.S, run.F, run.W)
    assert lr.outside_native == ("filter width 80 > 32",)
    text = table(result)
    k, s = lr.slices.count, lr.slices.width
    assert f"k1x80/1x10 slices {k}x{s}" in text
    assert f"  conv1: filter width 80 > 32 (run as {k} slices of {s})" in text.splitlines()[-1]
    layer = result.to_dict()["layers"][0]
    assert layer["slices"] == {"count": k, "width": s, "height": 1, "layer_shape": lr.slices.layer.shape}
    assert layer["outside_native"] == ["filter width 80 > 32"]
    assert result.to_dict()["hardware"]["native"]["vertical_strides"] == [1, 2, 4]


def test_the_cli_writes_the_slices_and_the_native_report(tmp_path):
    model = conv1d(tmp_path / "audio.onnx", C=4, W=4000)
    out = run_cli(["estimate", str(model), "--hw", str(CHIP_FILE), "-o", str(tmp_path / "r.csv"),
                   "-o", str(tmp_path / "r.json")])
    assert out.code == 0, out.stderr
    assert "outside the hardware's native layer shapes" in out.stdout
    assert "conv1: filter width 80 > 32 (run as" in out.stdout
    row = pd.read_csv(tmp_path / "r.csv").iloc[0]
    data = json.loads((tmp_path / "r.json").read_text())["layers"][0]
    assert (row["slices"], row["slice_width"], row["slice_height"]) == (
        data["slices"]["count"], data["slices"]["width"], data["slices"]["height"]) and row["slice_height"] == 1
    assert row["outside_native"] == "filter width 80 > 32"
    assert row["macs"] == 32 * 4 * ((4000 - 80) // 10 + 1) * 80


# --- the search chooses the slice width of least energy ------------------------------------------------------------


def each_width(layer: Layer, target: Target, **kwargs) -> dict[tuple[int, int], float]:
    """The energy of every slice shape (rows, taps) that fits, each estimated as a layer of its own."""
    energies = {}
    for height, width in slice_shapes(layer.R, layer.S):
        run, _ = sliced(layer, width, height)
        if df.first_violation(layer_vector(run), target.vec, SMALLEST.vector()) == df.OK:
            found = estimate_layer(run, target, **kwargs)
            assert found.slices is None  # it fits: estimated as it is
            energies[height, width] = found.energy.total
    return energies


def check_least_energy(layer: Layer, target: Target, **kwargs) -> None:
    result = estimate_layer(layer, target, **kwargs)
    energies = each_width(layer, target, **kwargs)
    least = min(energies.values())
    assert result.energy.total == least
    ties = [(layer.R // h * layer.S // w, -w, h) for (h, w), e in energies.items() if e == least]
    count, width, height = min(ties)  # ties: the fewest slices, then the widest
    assert (result.slices.count, result.slices.width, result.slices.height) == (count, -width, height)
    assert result.energy.macs == layer.macs


@st.composite
def wide_layers(draw) -> Layer:
    """Conv layers whose filter rows are too wide for the chip's 12-word ifmap scratchpad."""
    S, Uw, Dw = draw(st.integers(13, 64)), draw(st.integers(1, 12)), draw(st.integers(1, 2))
    R, U = draw(st.integers(1, 3)), draw(st.integers(1, 2))
    W = Dw * (S - 1) + 1 + draw(st.integers(0, 200))
    H = R + draw(st.integers(0, 20)) + (W == S)  # not a fully connected layer (those run flattened)
    return Layer("wide", "Conv", N=draw(st.integers(1, 2)), G=draw(st.integers(1, 2)), C=draw(st.integers(1, 40)),
                 M=draw(st.integers(1, 70)), H=H, W=W, R=R, S=S, E=out_size(H, R, U, 1), F=out_size(W, S, Uw, Dw),
                 U=U, Uw=Uw, Dw=Dw)


NARROW = [CHIP, with_overrides(CHIP, {"rf.ifmap_words": 24, "rf.filter_words": 48}),
          with_overrides(ISCA, {"rf.words": 30}), with_overrides(CHIP, {"glb.size_kb": 9})]


@settings(max_examples=80, deadline=None)
@given(layer=wide_layers(), hw=st.sampled_from(NARROW), zeros=st.tuples(*(st.floats(0.05, 1.0),) * 3))
def test_the_chosen_slice_width_has_the_least_energy(layer, hw, zeros):
    target = Target.of(hw)
    if df.first_violation(layer_vector(layer), target.vec, SMALLEST.vector()) == df.OK:
        return  # it fits as given (a wide RF): nothing to choose
    gated, dram, psums = zeros
    effects = ZeroEffects(gated=gated, executed=gated / 2, ifmap_dram=dram, ofmap_dram=dram, psums=psums)
    try:
        check_least_energy(layer, target, effects=effects)
    except EyesimError as err:  # no width fits either: then no width may fit when tried one by one
        assert "nor as slices" in str(err) and not each_width(layer, target)


@st.composite
def tall_layers(draw) -> Layer:
    """Conv layers with more filter rows than the chip's 12 PE rows (and rows of up to 14 taps)."""
    R, S, U, Dh = draw(st.integers(13, 28)), draw(st.integers(1, 14)), draw(st.integers(1, 3)), draw(st.integers(1, 2))
    H, W = Dh * (R - 1) + 1 + draw(st.integers(0, 30)), S + draw(st.integers(1, 40))
    return Layer("tall", "Conv", N=1, G=draw(st.integers(1, 2)), C=draw(st.integers(1, 8)), M=draw(st.integers(1, 40)),
                 H=H, W=W, R=R, S=S, E=out_size(H, R, U, Dh), F=out_size(W, S, 1, 1), U=U, Dh=Dh)


@settings(max_examples=30, deadline=None)
@given(layer=tall_layers(), zeros=st.tuples(*(st.floats(0.05, 1.0),) * 3))
def test_the_chosen_slice_shape_of_a_tall_filter_has_the_least_energy(layer, zeros):
    gated, dram, psums = zeros
    effects = ZeroEffects(gated=gated, executed=gated / 2, ifmap_dram=dram, ofmap_dram=dram, psums=psums)
    check_least_energy(layer, Target.of(CHIP), effects=effects)


def test_the_audio_convs_width_is_the_least_energy_one_with_its_zeros(tmp_path):
    result = eyesim.estimate(conv1d(tmp_path / "audio.onnx", C=16), CHIP_FILE)
    lr = result.layers[0]
    check_least_energy(lr.slices.layer, Target.of(CHIP), density=lr.density, effects=lr.effects)


def test_a_unified_rf_too_small_for_the_row_is_sliced_too():
    hw = with_overrides(ISCA, {"rf.words": 40})
    layer = Layer("wide", "Conv", N=1, G=1, C=3, M=8, H=4, W=200, R=2, S=60, E=3, F=141)
    check_least_energy(layer, Target.of(hw))


# --- the counts equal the MAC-by-MAC walk of the sliced loop nest over the original layer --------------------------


@st.composite
def sliced_cases(draw):
    """A small layer, a slice shape (rows dividing R, taps dividing S, not the whole filter), and a tiling of the
    sliced layer."""
    S = draw(st.sampled_from([1, 2, 3, 4, 6]))
    R, U, Uw, Dh, Dw = draw(st.integers(1 + (S == 1), 4)), *(draw(st.integers(1, 3)) for _ in range(2)), \
        *(draw(st.integers(1, 2)) for _ in range(2))
    H = Dh * (R - 1) + 1 + draw(st.integers(0, 4))
    W = Dw * (S - 1) + 1 + draw(st.integers(0, 5))
    layer = Layer("l", "Conv", N=draw(st.integers(1, 2)), G=draw(st.integers(1, 2)), C=draw(st.integers(1, 3)),
                  M=draw(st.integers(1, 5)), H=H, W=W, R=R, S=S, E=out_size(H, R, U, Dh), F=out_size(W, S, Uw, Dw),
                  U=U, Uw=Uw, Dh=Dh, Dw=Dw)
    height, width = draw(st.sampled_from(slice_shapes(R, S)))
    run, _ = sliced(layer, width, height)
    return layer, (height, width), run, draw(tilings(run))


def staging(stage: bool) -> np.ndarray:
    vec = np.zeros(df.HW_LEN, dtype=np.int64)
    vec[df.HW_STAGE_FILTERS] = stage
    return vec


@settings(max_examples=200, deadline=None)
@given(case=sliced_cases(), stage=st.booleans())
def test_sliced_counts_equal_the_walk_over_the_original_layer(case, stage):
    layer, (height, width), run, tiling = case
    counts, macs = layer_counts(run, staging(stage), Mapping(**tiling).vector())
    ref, ref_macs, _, _ = trace_counts(layer.shape, tiling, stage_filters=stage, slice_width=width,
                                       slice_height=height)
    assert macs == ref_macs == layer.macs == run.macs
    np.testing.assert_array_equal(counts, ref)


@settings(max_examples=60, deadline=None)
@given(case=sliced_cases(), data=st.data())
def test_sliced_passes_and_zeros_equal_the_walk(case, data):
    layer, (height, width), run, tiling = case
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    x = rng.integers(0, 3, (layer.N, layer.G * layer.C, layer.H, layer.W)) * rng.integers(0, 2, (1, 1, 1, layer.W))
    w = rng.integers(0, 2, (layer.G * layer.M, layer.C, layer.R, layer.S))
    passes: list[PassWork] = []
    _, macs, executed, cycles = trace_counts(layer.shape, tiling, x=x, w=w, passes=passes, slice_width=width,
                                             slice_height=height)
    # zeros counted on the layer as given are those the slices meet: the same MACs on the same values
    dense, _, counted = conv_zero_counts(x, w, layer, LayerIO("x", "w", "y"))
    assert (dense, counted) == (macs, executed)
    compute, setup = array_cycles(run, Mapping(**tiling), CHIP, Bits(16, 16, 16))
    assert compute == cycles
    assert compute + setup == sum(pass_cycles(work, CHIP, Bits(16, 16, 16)) for work in passes)


@settings(max_examples=150, deadline=None)
@given(case=sliced_cases(), hw=st.sampled_from([CHIP, ISCA]), zeros=st.tuples(*(st.floats(0.0, 1.0),) * 4))
def test_the_energy_floor_is_below_every_mapping(case, hw, zeros):
    _, _, run, tiling = case
    target = Target.of(hw)
    gated, executed, dram, psums = zeros
    effects = ZeroEffects(gated=gated, executed=executed, ifmap_dram=dram, ofmap_dram=dram, psums=psums)
    costs = layer_costs(target.cost, target.mac_cost, effects)
    counts, macs = layer_counts(run, target.vec, Mapping(**tiling).vector())
    assert _energy_floor(run, target, costs, effects) <= breakdown(counts, macs, *costs, effects).total


# --- a layer that fits is never sliced -------------------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(layer=wide_layers())
def test_a_layer_that_fits_keeps_its_result(layer):
    target = Target.of(with_overrides(CHIP, {"rf.ifmap_words": 64, "rf.filter_words": 4096}))
    result = estimate_layer(layer, target)
    chosen, evaluated = best_mapping(layer, target)
    assert result.slices is None and result.layer == layer
    assert (result.mapping, result.evaluated) == (chosen, evaluated)
    assert result.outside_native == ((f"filter width {layer.S} > 32",) if layer.S > 32 else ())


def test_bundled_models_on_a_file_without_native_shapes_report_nothing():
    result = eyesim.estimate(LENET, ISCA_FILE)
    assert all(lr.slices is None and not lr.outside_native for lr in result.layers)
    assert "native" not in result.to_dict()["hardware"] and "native layer shapes" not in table(result)
    assert not {"slices", "slice_width", "outside_native"} & set(result.to_frame().columns)


def test_lenet_is_inside_the_chips_native_shapes():
    result = eyesim.estimate(LENET, CHIP_FILE)
    assert all(not lr.outside_native for lr in result.layers) and "native layer shapes" not in table(result)


# --- the native shapes --------------------------------------------------------------------------------------------

SHAPE = {"R": 3, "S": 3, "M": 64, "C": 64, "U": 1, "Uw": 1}


@pytest.mark.parametrize(("change", "texts"), [
    ({}, ()),
    ({"R": 12, "S": 32, "M": 1024, "C": 1024, "U": 4, "Uw": 12}, ()),
    ({"R": 13}, ("filter height 13 > 12",)),
    ({"S": 80}, ("filter width 80 > 32",)),
    ({"M": 4096}, ("filters M 4096 > 1024",)),
    ({"C": 9216}, ("channels C 9216 > 1024",)),
    ({"U": 3}, ("vertical stride 3 not in 1, 2, 4",)),
    ({"U": 8}, ("vertical stride 8 not in 1, 2, 4",)),
    ({"Uw": 13}, ("horizontal stride 13 > 12",)),
    ({"S": 33, "U": 3, "Uw": 16}, ("filter width 33 > 32", "vertical stride 3 not in 1, 2, 4",
                                   "horizontal stride 16 > 12")),
])
def test_the_chips_native_shapes(change, texts):
    assert CHIP.native.outside({**SHAPE, **change}) == texts
    assert NativeSpec().outside({**SHAPE, **change}) == ()  # nothing declared, nothing reported


def test_fully_connected_layers_outside_the_native_shapes_are_reported_as_given():
    fc = Layer("fc6", "Gemm", N=1, G=1, C=64, M=4096, H=13, W=13, R=13, S=13, E=1, F=1)
    result = estimate_layer(fc, Target.of(CHIP))
    assert result.layer.C == 64 * 13 * 13 and result.slices is None  # 13 rows are too tall: it ran flattened
    assert result.outside_native == ("filter height 13 > 12", "filters M 4096 > 1024")  # the layer as given


def test_a_native_override_changes_only_the_report(tmp_path):
    model = conv1d(tmp_path / "audio.onnx", C=2, W=2000)
    base = eyesim.estimate(model, CHIP_FILE)
    wider = eyesim.estimate(model, with_overrides(CHIP, {"native.max_filter_width": 128}))
    assert wider.layers[0].outside_native == () and base.layers[0].outside_native
    assert wider.layers[0].energy.total == base.layers[0].energy.total


# --- sweeps evaluate sliced layers as the estimate does ----------------------------------------------------------


def test_a_sweep_slices_where_the_estimate_does(tmp_path):
    model = conv1d(tmp_path / "audio.onnx", C=4, W=3000)
    grid = Grid((parse_vary("rf.ifmap_words=12,100"),), 1)
    run_sweep(make_job(str(model), CHIP_FILE, grid), tmp_path / "s.csv", workers=1)
    frame = read_sweep(tmp_path / "s.csv")
    layers = frame[frame["layer"] == "conv1"].set_index("rf.ifmap_words")
    for words in (12, 100):
        lr = eyesim.estimate(model, with_overrides(CHIP, {"rf.ifmap_words": words})).layers[0]
        assert layers.loc[words, "energy_total"] == lr.energy.total
        assert layers.loc[words, "macs"] == lr.energy.macs
        if lr.slices is None:
            assert pd.isna(layers.loc[words, "slices"])
        else:
            assert layers.loc[words, "slices"] == lr.slices.count
    assert lr.slices is None and pd.notna(layers.loc[12, "slices"])  # 100 words hold the 80-tap row


# --- what slicing cannot help, and hostile native sections ---------------------------------------------------------


@pytest.mark.parametrize(("R", "S"), [(13, 20), (31, 31), (16, 3), (64, 64)])
def test_a_filter_taller_than_the_array_runs_as_row_slices(tmp_path, R, S):
    # large-kernel CNNs (31 x 31 depthwise), an FCN's 64 x 64 upsampling: more filter rows than the chip's 12
    model = conv1d(tmp_path / "tall.onnx", C=2, M=4, W=S + 40, S=S, stride=1, H=R + 20, R=R)
    lr = eyesim.estimate(model, CHIP_FILE).layers[0]
    assert lr.slices.height <= CHIP.array.rows and R % lr.slices.height == 0 and S % lr.slices.width == 0
    assert lr.energy.macs == lr.slices.layer.macs == 4 * 2 * 21 * 41 * R * S  # the layer's real MACs
    check_least_energy(lr.slices.layer, Target.of(CHIP), density=lr.density, effects=lr.effects)
    assert f"(run as {lr.slices.count} slices of {lr.slices.height}x{lr.slices.width})" in table(
        eyesim.estimate(model, CHIP_FILE))


@pytest.mark.parametrize("case", ["transposed", "depthwise"])
def test_tall_transposed_and_depthwise_filters_run_as_row_slices(tmp_path, case):
    """An FCN-style 16 x 16 upsampling (ConvTranspose, stride 8) and a 15 x 15 depthwise conv: charged with the MACs
    onnxruntime's shapes give (tests/mac_count.py), run as slices of at most 12 rows."""
    rng = np.random.default_rng(0)
    if case == "transposed":
        weights, x = rng.standard_normal((4, 4, 16, 16)), [1, 4, 6, 6]
        node = helper.make_node("ConvTranspose", ["x", "w"], ["y"], name="up", strides=[8, 8], pads=[4, 4, 4, 4])
    else:
        weights, x = rng.standard_normal((8, 1, 15, 15)), [1, 8, 30, 30]
        node = helper.make_node("Conv", ["x", "w"], ["y"], name="dw", group=8, pads=[7, 7, 7, 7])
    graph = helper.make_graph([node], case, [helper.make_tensor_value_info("x", TensorProto.FLOAT, x)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              [numpy_helper.from_array(weights.astype(np.float32), "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    lr = eyesim.estimate(model, CHIP_FILE).layers[0]
    assert lr.slices is not None and lr.slices.height <= CHIP.array.rows < lr.slices.layer.R
    assert lr.energy.macs == count_macs(model).total


def test_a_slice_shape_above_the_search_limits_is_skipped_and_the_refusal_says_so():
    # a long 1-D signal (an ECG) with a 13-tap filter down its rows at stride 2: fine as given, but 13 rows do not
    # fit 12 PE rows, and a cut row steps by 1, not by the stride: a strip's rows are scanned one by one (E^2 h)
    layer = Layer("ecg", "Conv", N=1, G=1, C=1, M=8, H=300_000, W=1, R=13, S=1, E=out_size(300_000, 13, 2, 1),
                  F=1, U=2)
    with pytest.raises(EyesimError, match=r"nor as slices of any rows dividing R=13 and taps dividing S=1 \(1 of "
                                          r"them above the search's limits: E\*E\*R = 22,498,200,036 is above"):
        estimate_layer(layer, Target.of(CHIP))


def test_a_filter_no_slice_fits_is_refused(tmp_path):
    model = conv1d(tmp_path / "tall.onnx", C=2, M=4, W=4000, S=20, stride=1, H=20, R=13)
    small = with_overrides(CHIP, {"glb.size_kb": 10})  # 2 kB beside the filters: not one row of 3,981 psums
    with pytest.raises(EyesimError, match="no mapping fits.*nor as slices of any rows dividing R=13 and taps "
                                          "dividing S=20"):
        eyesim.estimate(model, small)


def test_exact_psum_gating_from_samples_is_refused_for_a_sliced_layer(tmp_path):
    model = conv1d(tmp_path / "audio.onnx", C=1, M=4, W=400, S=40, stride=4)
    samples = tmp_path / "x.npy"
    np.save(samples, np.random.default_rng(1).standard_normal((2, 1, 400)).astype(np.float32))
    run_cli(["estimate", str(model), "--hw", str(CHIP_FILE), "--samples", str(samples), "--set",
             "sparsity.gate_psums=true"], watch=tmp_path).refused("exact psum gating", "--density",
                                                                   "sparsity.gate_psums")
    with pytest.raises(EyesimError, match="exact psum gating"):
        eyesim.estimate(model, with_overrides(CHIP, {"sparsity.gate_psums": True}), samples=samples)
    ok = eyesim.estimate(model, CHIP_FILE, samples=samples)  # the chip does not gate psums: exact zeros apply
    assert ok.layers[0].slices is not None and ok.layers[0].effects.exact


def test_a_pinned_mapping_is_checked_against_the_layer_as_given(tmp_path):
    model = conv1d(tmp_path / "audio.onnx", C=1, M=4, W=400, S=40, stride=4)
    pins = tmp_path / "pin.yaml"
    pins.write_text("conv1: {m: 4, n: 1, e: 1, p: 1, q: 1, r: 1, t: 1}\n")
    run_cli(["estimate", str(model), "--hw", str(CHIP_FILE), "--mapping", str(pins)], watch=tmp_path).refused(
        "pinned mapping", "ifmap scratchpad")


@pytest.mark.parametrize("S", [13, 17, 31, 53, 97])
def test_a_prime_filter_width_runs_as_single_taps(tmp_path, S):
    lr = eyesim.estimate(conv1d(tmp_path / "p.onnx", C=2, M=8, W=400, S=S, stride=3), CHIP_FILE).layers[0]
    assert (lr.slices.count, lr.slices.width) == (S, 1) and lr.energy.macs == lr.slices.layer.macs


def test_a_width_with_many_divisors_stays_quick():
    import time

    layer = Layer("wide", "Conv", N=1, G=1, C=2, M=16, H=1, W=5040 + 99, R=1, S=5040, E=1, F=100)
    start = time.perf_counter()
    found = estimate_layer(layer, Target.of(ISCA))
    assert time.perf_counter() - start < 30 and found.energy.macs == layer.macs
    assert found.slices.width in divisors_below(5040)


MAXIMA = ("max_filter_height", "max_filter_width", "max_filters", "max_channels", "max_horizontal_stride")
BAD_MAXIMA = {"0": "at least 1", "-3": "at least 1", "70000": "at most 65536", "2.5": "must be an integer",
              "'12'": "must be an integer", "true": "must be an integer", "[12]": "must be an integer",
              "~": "must be an integer"}


@pytest.mark.parametrize("field", MAXIMA)
@pytest.mark.parametrize(("value", "needle"), BAD_MAXIMA.items())
def test_bad_native_maxima_are_refused(tmp_path, field, value, needle):
    run_cli(["estimate", str(LENET), "--hw", str(CHIP_FILE), "--set", f"native.{field}={value}", "--quiet"],
            watch=tmp_path).refused(f"native.{field}", needle)


BAD_STRIDES = {"[]": "non-empty list", "4": "non-empty list", "'1,2'": "non-empty list", "~": "non-empty list",
               "{a: 1}": "non-empty list", "[0]": "at least 1", "[1, -2]": "at least 1", "[1, 70000]": "at most 65536",
               "[1.5]": "must list integers", "[true]": "must list integers", "['2']": "must list integers",
               "[[1]]": "must list integers", "[1, ~]": "must list integers"}


@pytest.mark.parametrize(("value", "needle"), BAD_STRIDES.items())
def test_bad_native_strides_are_refused(tmp_path, value, needle):
    run_cli(["estimate", str(LENET), "--hw", str(CHIP_FILE), "--set", f"native.vertical_strides={value}", "--quiet"],
            watch=tmp_path).refused("native.vertical_strides", needle)


@pytest.mark.parametrize(("text", "needle"), [
    ("native: 12", "native must be a mapping"),
    ("native: [1, 2]", "native must be a mapping"),
    ("native: {max_filter_widht: 32}", "unknown key native.max_filter_widht (did you mean native.max_filter_width?)"),
    ("native: {max_filter_width: 32, max_filter_width: 16}", "duplicate key"),
    ("native: {vertical_strides: [1, 2, 4], horizontal_stride: 12}", "unknown key native.horizontal_stride"),
    ("native: {max_channels: 1.0e+3}", "native.max_channels must be an integer"),
])
def test_bad_native_sections_in_a_file(tmp_path, text, needle):
    hw = tmp_path / "hw.yaml"
    before = CHIP_FILE.read_text().split("\nnative:\n")[0]
    hw.write_text(before + "\n" + text + "\n")
    run_cli(["estimate", str(LENET), "--hw", str(hw), "--quiet"], watch=tmp_path).refused(needle)


def test_an_empty_native_section_declares_nothing(tmp_path):
    hw = tmp_path / "hw.yaml"
    hw.write_text(CHIP_FILE.read_text().split("\nnative:\n")[0] + "\nnative:\n")
    assert not load_hardware(hw).native.declared and CHIP.native.declared
