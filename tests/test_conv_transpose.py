"""ConvTranspose runs as the convolution over its stride-expanded input, charged with its real MACs
(DESIGN.md, "Layers"): the run convolution computes ONNX's result, its counts equal the trace walk, and
the MACs that run with zero gating are the real ones, counted by brute force and from onnxruntime's shapes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

import eyesim
from eyesim.cost.counts import layer_counts
from eyesim.cost.values import _transposed_nonzero, value_counts
from eyesim.errors import EyesimError
from eyesim.estimator import Target
from eyesim.hardware import load_hardware, with_overrides
from eyesim.mapping import Mapping
from eyesim.workload.layer import LayerIO
from eyesim.workload.onnx import load_workload
from tests.layers import tilings
from tests.mac_count import count_macs
from tests.reference_trace import trace_counts

ROOT = Path(__file__).resolve().parent.parent
CHIP = ROOT / "hwconfigs" / "eyeriss.yaml"


def convt_model(x_shape: list[int], w_shape: list[int], relu: bool = False, **attrs) -> onnx.ModelProto:
    """One ConvTranspose node (random weights) as an ONNX model."""
    rng = np.random.default_rng(1)
    w = numpy_helper.from_array(rng.standard_normal(w_shape).astype(np.float32), "w")
    nodes = [helper.make_node("ConvTranspose", ["x", "w"], ["y0" if relu else "y"], name="up", **attrs)]
    if relu:
        nodes.append(helper.make_node("Relu", ["y0"], ["y"], name="relu"))
    graph = helper.make_graph(nodes, "convt", [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [w])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def brute_real_macs(x_shape: list[int], w_shape: list[int], group: int, strides, dilations, begins, outs) -> int:
    """Every (input value, tap) product whose output index lands inside the output, counted one by one."""
    spatial = x_shape[2:]
    hits = 0
    for idx in np.ndindex(*spatial):
        for taps in np.ndindex(*w_shape[2:]):
            hits += all(0 <= i * s + k * d - b < o for i, k, s, d, b, o in
                        zip(idx, taps, strides, dilations, begins, outs, strict=True))
    return x_shape[0] * x_shape[1] * w_shape[1] * hits  # each input channel feeds the M/G filters of its group


@st.composite
def convt_cases(draw) -> tuple[list[int], list[int], dict]:
    """A small random 1-D or 2-D ConvTranspose: strides, dilations, pads or auto_pad, output_padding, groups."""
    nd = draw(st.integers(1, 2))
    group = draw(st.integers(1, 2))
    c, m = group * draw(st.integers(1, 2)), draw(st.integers(1, 2))
    sizes = [draw(st.integers(1, 4)) for _ in range(nd)]
    kernel = [draw(st.integers(1, 3)) for _ in range(nd)]
    strides = [draw(st.integers(1, 3)) for _ in range(nd)]
    dilations = [draw(st.integers(1, 2)) for _ in range(nd)]
    extra = [draw(st.integers(0, s - 1)) for s in strides]  # onnxruntime runs output_padding below the stride
    attrs = {"strides": strides, "dilations": dilations, "output_padding": extra, "group": group}
    auto = draw(st.sampled_from(["NOTSET", "NOTSET", "VALID", "SAME_UPPER", "SAME_LOWER"]))
    if auto == "NOTSET":
        full = [s * (n - 1) + o + (k - 1) * d + 1 for n, s, o, k, d in zip(sizes, strides, extra, kernel, dilations,
                                                                            strict=True)]
        pads = [draw(st.integers(0, 2)) for _ in range(2 * nd)]
        while any(f - pads[i] - pads[i + nd] < 1 for i, f in enumerate(full)):
            pads = [max(p - 1, 0) for p in pads]
        attrs["pads"] = pads
    else:
        attrs["auto_pad"] = auto
    return [draw(st.integers(1, 2)), c, *sizes], [c, m, *kernel], attrs


def _layer(x_shape, w_shape, attrs):
    return load_workload(convt_model(x_shape, w_shape, **attrs), batch=x_shape[0]).layers[0]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(convt_cases())
def test_real_macs_brute_force_and_onnxruntime(case):
    """eyesim's MACs = a brute-force count = tests/mac_count.py's count from onnxruntime's output shape."""
    x_shape, w_shape, attrs = case
    model = convt_model(x_shape, w_shape, **attrs)
    try:
        counted = count_macs(model)
    except Exception:  # a geometry onnxruntime refuses: eyesim must refuse it too, or agree on the shape
        return
    layer = load_workload(model, batch=x_shape[0]).layers[0]
    out = counted.shapes["y"][2:]
    nd = len(x_shape) - 2
    total = [max(0, s * (n - 1) + o + (k - 1) * d + 1 - y) for n, s, o, k, d, y in zip(
        x_shape[2:], attrs["strides"], attrs["output_padding"], w_shape[2:], attrs["dilations"], out, strict=True)]
    auto = attrs.get("auto_pad", "NOTSET")
    begins = (attrs["pads"][:nd] if auto == "NOTSET" else [0] * nd if auto == "VALID"
              else [t - t // 2 if auto == "SAME_LOWER" else t // 2 for t in total])
    brute = brute_real_macs(x_shape, w_shape, attrs["group"], attrs["strides"], attrs["dilations"], begins, out)
    assert layer.charged_macs == brute == counted.total
    assert ((1, *out) if nd == 1 else tuple(out)) == (layer.E, layer.F)
    assert layer.charged_macs <= layer.macs


def _run_convolution(x: np.ndarray, w: np.ndarray, layer) -> np.ndarray:
    """The convolution eyesim runs (stride 1, dilated, filter flipped, channels transposed) over the expanded x."""
    shape = layer.transposed
    xs = x.reshape(x.shape[0], layer.G * layer.C, *shape.size)
    grid = np.zeros((x.shape[0], layer.G * layer.C, layer.H, layer.W))
    rows = shape.before[0] + shape.strides[0] * np.arange(shape.size[0])
    cols = shape.before[1] + shape.strides[1] * np.arange(shape.size[1])
    kr, kc = (rows >= 0) & (rows < layer.H), (cols >= 0) & (cols < layer.W)
    grid[:, :, rows[kr][:, None], cols[kc][None, :]] = xs[:, :, kr][:, :, :, kc]
    wt = w.reshape(layer.G, layer.C, layer.M, layer.R, layer.S).swapaxes(1, 2)[..., ::-1, ::-1]
    out = np.zeros((x.shape[0], layer.G * layer.M, layer.E, layer.F))
    for g in range(layer.G):
        for r in range(layer.R):
            for s in range(layer.S):
                patch = grid[:, g * layer.C:(g + 1) * layer.C, r * layer.Dh:r * layer.Dh + layer.E,
                             s * layer.Dw:s * layer.Dw + layer.F]
                out[:, g * layer.M:(g + 1) * layer.M] += np.einsum("nchw,mc->nmhw", patch, wt[g, :, :, r, s])
    return out


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(convt_cases())
def test_run_convolution_computes_onnx_result(case):
    """The equivalent convolution over the expanded, padded (or cropped) input is onnxruntime's ConvTranspose."""
    x_shape, w_shape, attrs = case
    model = convt_model(x_shape, w_shape, **attrs)
    try:
        session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    except Exception:
        return
    x = np.random.default_rng(2).standard_normal(x_shape).astype(np.float32)
    want = session.run(None, {"x": x})[0]
    layer = load_workload(model, batch=x_shape[0]).layers[0]
    w = numpy_helper.to_array(model.graph.initializer[0]).astype(np.float64)
    got = _run_convolution(x.astype(np.float64), w, layer)
    assert np.allclose(got.reshape(want.shape), want, atol=1e-4)


@st.composite
def convt_with_tiling(draw):
    x_shape, w_shape, attrs = draw(convt_cases())
    layer = _layer(x_shape, w_shape, attrs)
    return layer, draw(tilings(layer))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(convt_with_tiling())
def test_counts_equal_trace_walk_and_gated_macs_are_real(case):
    """The run convolution's counts equal the trace walk; with the inserted zeros as zeros the walk executes
    exactly the real MACs, and so does eyesim's exact count from values (every real input non-zero)."""
    layer, tiling = case
    chip = load_hardware(CHIP)
    vec = Target.of(chip).vec
    counts, macs = layer_counts(layer, vec, Mapping(**tiling).vector())
    ref, ref_macs, _, _ = trace_counts(layer.shape, tiling, stage_filters=chip.glb.filter_kb > 0)
    assert macs == ref_macs == layer.macs
    assert np.array_equal(counts, ref)
    x = np.ones((layer.N, layer.G * layer.C, *layer.transposed.size))
    grid = _transposed_nonzero(x, layer).astype(np.int64)
    _, _, executed, _ = trace_counts(layer.shape, tiling, x=grid)
    assert executed == layer.charged_macs
    found = value_counts(x, np.ones((layer.N, layer.G * layer.M, layer.E, layer.F)), None, layer,
                         LayerIO(ifmap="x", weights="w", ofmap="y"), (16, 16))
    assert found.executed == found.gated == layer.charged_macs


@pytest.mark.parametrize("gating", [True, False])
def test_estimate_charges_real_macs(tmp_path, gating):
    """The result's MACs are the real ones; with zero gating only they run, without it the inserted zeros run too."""
    model = convt_model([1, 4, 5, 5], [4, 3, 3, 3], strides=[2, 2], pads=[1, 1, 1, 1], output_padding=[1, 1])
    hw = with_overrides(load_hardware(CHIP), {"sparsity.zero_gating": gating})
    result = eyesim.estimate(model, hw)
    layer = result.layers[0]
    assert layer.energy.macs == count_macs(model).total == layer.layer.charged_macs
    assert layer.energy.macs_executed == (layer.layer.charged_macs if gating else layer.layer.macs)
    assert layer.layer.op == "ConvTranspose"
    assert layer.effects.ifmap_dram == pytest.approx(  # DRAM stores the real input, not the expanded one
        (4 * 5 * 5) / (4 * layer.layer.H * layer.layer.W) * (4 / 3 if hw.sparsity.dram_compression == "rlc" else 1),
        rel=0.35)


def test_samples_count_inserted_zeros_exactly():
    """From samples, the executed MACs are those of non-zero real inputs and non-zero taps: never an inserted zero."""
    model = convt_model([1, 2, 4, 4], [2, 2, 2, 2], relu=True, strides=[2, 2])
    x = np.random.default_rng(3).standard_normal((4, 2, 4, 4)).astype(np.float32)
    x[x < 0] = 0
    result = eyesim.estimate(model, CHIP, samples=x)
    layer = result.layers[0]
    # each non-zero input value meets all 2 x 2 taps of its 2 filters (kernel = stride: no overlap, no crop)
    assert layer.energy.macs == 1 * 2 * 2 * 4 * 4 * 4
    assert layer.energy.macs_executed == round(np.count_nonzero(x) * 2 * 4 / len(x))
    assert layer.density.kinds[1] == "measured"


BAD = [
    ({"pads": [3, 3, 3, 3]}, "crop the whole output"),
    ({"pads": [1, 1]}, "pads"),
    ({"strides": [0, 1]}, "strides"),
    ({"strides": [1, 1, 1]}, "strides"),
    ({"auto_pad": "BOGUS"}, "auto_pad"),
    ({"output_shape": [9, 9, 9]}, "output_shape"),
    ({"kernel_shape": [2, 2]}, "kernel_shape"),
    ({"group": 3}, "group"),
    ({"output_padding": [2, 0], "strides": [2, 1]}, "output_padding"),
]


@pytest.mark.parametrize(("attrs", "needle"), BAD)
def test_bad_attributes_refused(attrs, needle):
    """Geometry that is not a ConvTranspose is refused on one line naming the node."""
    model = convt_model([1, 2, 3, 3], [2, 1, 3, 3], **attrs)
    with pytest.raises(EyesimError, match=needle):
        load_workload(model)


def test_3d_refused():
    model = convt_model([1, 2, 3, 3, 3], [2, 1, 2, 2, 2])
    with pytest.raises(EyesimError, match="1-D or 2-D"):
        load_workload(model)
