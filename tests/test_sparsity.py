"""Zeros, bit widths and time: numbers worked by hand, and the trace walk on sparse values."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

import eyesim
from eyesim import dataflow as df
from eyesim.cost.compression import (
    RLC_MAX_RUN,
    Planes,
    dram_ratio,
    rlc_expected_pairs,
    rlc_expected_ratio,
    rlc_stream_ratio,
    rlc_words,
    sigmap_ratio,
)
from eyesim.cost.counts import layer_vector
from eyesim.cost.energy import layer_costs, psum_extra
from eyesim.cost.timing import compute_cycles
from eyesim.cost.values import conv_zero_counts, value_counts
from eyesim.cost.zeros import Density, psum_skips, zero_effects
from eyesim.dataflow.search import mapping_energy
from eyesim.errors import EyesimError
from eyesim.estimator import Target, best_mapping, estimate_layer
from eyesim.hardware import load_hardware, with_overrides
from eyesim.mapping import Mapping
from eyesim.workload import LayerIO
from tests.layers import small_layers, tilings
from tests.reference_trace import trace_counts

ROOT = Path(__file__).resolve().parent.parent
ALEXNET = ROOT / "models_onnx" / "alexnet.onnx"
CHIP = ROOT / "hwconfigs" / "eyeriss.yaml"
ISCA = ROOT / "hwconfigs" / "eyeriss-isca256.yaml"


def test_run_length_code_of_known_vectors():
    # 5 | 0 0 0 7 | 31 zeros + a zero that closes the run | 8 zeros 3  -> 4 pairs -> 2 words of 3 pairs
    vector = np.array([5, 0, 0, 0, 7] + [0] * 40 + [3])
    assert rlc_words(vector) == 2
    assert rlc_words(np.array([1, 0, 0])) == 1  # (0, 1) and a closing pair for the trailing zeros
    assert rlc_words(np.zeros(64)) == 1  # two pairs of 32 zeros
    assert rlc_words(np.arange(1, 7)) == 2  # six non-zero values: six pairs
    assert rlc_words(np.arange(1, 8), bits=8) == 2  # 8-bit values: four 13-bit pairs per word


def test_expected_compression_from_density():
    assert rlc_expected_ratio(1.0, 16) == pytest.approx(64 / 48)  # dense data grows by a third
    assert rlc_expected_ratio(0.0, 16) == pytest.approx(64 / 3 / 32 / 16)  # a pair per 32 zeros
    rng = np.random.default_rng(0)
    stream = rng.random(200_000) < 0.3
    measured = rlc_words(stream) * 64 / (stream.size * 16)
    assert measured == pytest.approx(rlc_expected_ratio(0.3, 16), rel=0.01)
    assert sigmap_ratio(0.25, 16) == pytest.approx((1 + 4) / 16)


@pytest.mark.parametrize("stream", [Planes(2, 2, 3, (1, 1, 1, 1)), Planes(1, 1, 10, (0, 0, 12, 13)),
                                    Planes(3, 1, 4, (20, 1, 0, 5)), Planes(1, 3, 3)])
@pytest.mark.parametrize("density", [0.0, 0.3, 0.77, 1.0])
def test_expected_pairs_equal_the_average_over_every_pattern(stream, density):
    # every pattern of non-zero interior values, weighted by its probability, coded by the counter
    top, bottom, left, right = stream.pads
    expected = 0.0
    for code in range(2**stream.interior):
        bits = np.array([(code >> k) & 1 for k in range(stream.interior)], dtype=bool)
        plane = np.zeros((stream.planes, top + stream.height + bottom, left + stream.width + right), dtype=bool)
        plane[:, top:top + stream.height, left:left + stream.width] = bits.reshape(stream.planes, stream.height,
                                                                                     stream.width)
        pairs = df.rlc_pairs(plane.ravel(), RLC_MAX_RUN)
        expected += density ** bits.sum() * (1 - density) ** (~bits).sum() * pairs
    assert rlc_expected_pairs(density, stream) == pytest.approx(expected, rel=1e-12, abs=1e-12)


def test_expected_sizes_of_padded_tensors():
    # dense interior: a pair per value, plus one for each run of padding zeros that no value closes
    assert rlc_expected_pairs(1.0, Planes(1, 2, 2, (1, 1, 1, 1))) == 5  # 4 values, the trailing 5 zeros
    assert rlc_expected_pairs(0.0, Planes(1, 1, 40)) == 2  # 31 zeros and a zero, then 8 zeros
    stream = Planes(4, 3, 5, (1, 2, 0, 1))  # 4 planes of 6 x 6, 15 values each inside
    assert stream.values == 144 and stream.interior == 60
    assert dram_ratio("sigmap", 0.5, 16, stream) == pytest.approx((144 + 30 * 16) / (144 * 16))
    assert dram_ratio("none", 0.5, 16, stream) == 1.0


def encode_rlc(values: np.ndarray) -> list[int]:
    """The chip's run-length code, written out: (run of up to 31 zeros: 5 bits, value: 16 bits) pairs, three
    to a 64-bit word whose last bit marks the final word; a zero value closes a full run; a stream ending
    in zeros closes with a pair whose value is zero."""
    pairs, run = [], 0
    for v in (int(v) & 0xFFFF for v in values.ravel()):
        if v == 0 and run < 31:
            run += 1
            continue
        pairs.append((run, v))
        run = 0
    if run:
        pairs.append((run - 1, 0))
    words = []
    for start in range(0, len(pairs), 3):
        word = 0
        for k, (zeros, value) in enumerate(pairs[start:start + 3]):
            word |= ((zeros << 16) | value) << (21 * k)
        words.append(word << 1 | (start + 3 >= len(pairs)))
    return words


def test_stored_bits_of_a_relu_fmap_equal_its_run_length_code(tmp_path):
    rng = np.random.default_rng(7)
    path = tmp_path / "tiny.onnx"
    tiny_model(path, rng)
    x = rng.normal(size=(6, 1, 8, 8)).astype(np.float32)
    model = onnx.load(path)
    model.graph.output.append(helper.make_tensor_value_info("r1", TensorProto.FLOAT, None))
    (r1,) = ort.InferenceSession(model.SerializeToString()).run(["r1"], {"x": x})
    q = np.where(r1 > 0, np.maximum(np.round(r1 * 256), 1), 0).astype(np.int64)  # 16-bit fixed point, zeros kept
    assert np.array_equal(q != 0, r1 != 0)
    # conv2 reads r1 padded by one zero row at the bottom and one zero column at the right (pads 0, 0, 1, 1)
    padded = np.pad(q, ((0, 0), (0, 0), (0, 1), (0, 1)))
    words = sum(len(encode_rlc(img)) for img in padded)
    one_pass = {"conv2": Mapping(m=6, n=1, e=4, p=1, q=1, r=1, t=1)}  # one strip, one m-chunk: each value once
    conv2 = eyesim.estimate(path, CHIP, batch=6, samples=x, mapping=one_pass).layers[1]
    reads = conv2.energy.counts[df.DRAM, df.IFMAP, df.READ]
    assert reads == padded.size  # the raw count is the padded tensor
    assert round(reads * 16 * conv2.effects.ifmap_dram) == 64 * words  # and so is the stored size, exactly
    unpadded = sum(len(encode_rlc(img)) for img in q)
    assert words <= unpadded * 1.1  # padding costs a few pairs, not the 81/64 of a raw count


@st.composite
def sparse_values(draw):
    layer = draw(small_layers())
    tiling = draw(tilings(layer))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    x = rng.integers(-2, 3, size=(layer.N, layer.G * layer.C, layer.H, layer.W)) * (rng.random(1) < 0.9)
    w = rng.integers(-1, 2, size=(layer.G * layer.M, layer.C, layer.R, layer.S))
    return layer, tiling, x, w


@settings(max_examples=150, deadline=None)
@given(case=sparse_values(), gate_psums=st.booleans())
def test_zero_gating_matches_the_trace_walk_on_sparse_values(case, gate_psums):
    layer, tiling, x, w = case
    ref_counts, ref_macs, ref_executed, ref_cycles = trace_counts(layer.shape, tiling, x=x, w=w,
                                                                  gate_psums=gate_psums)
    io = LayerIO("x", "w", "y")
    dense, gated, executed = conv_zero_counts(x, w, layer, io)
    assert (dense, gated, executed) == (ref_macs, ref_counts[df.RF, df.WEIGHTS, df.READ], ref_executed)
    hw = with_overrides(load_hardware(ISCA), {"sparsity.zero_gating": True, "sparsity.gate_psums": gate_psums,
                                              "array.rows": 64, "array.cols": 64, "rf.words": 4096,
                                              "glb.size_kb": 4096})
    counts = value_counts(x, np.ones((1, 1)), w, layer, io, (16, 16))
    effects = zero_effects(layer, Density(), counts, io, hw.sparsity, (16, 16))
    result = estimate_layer(layer, Target.of(hw), Mapping(**tiling), effects=effects)
    np.testing.assert_array_equal(result.energy.counts, ref_counts)
    assert result.energy.macs_executed == ref_executed
    assert result.timing.compute_cycles == ref_cycles == compute_cycles(layer, Mapping(**tiling))
    assert result.energy.by_level["rf"] == pytest.approx(ref_counts[df.RF].sum(), rel=1e-12)  # RF costs 1


def test_halving_every_width_halves_data_energy():
    pins = eyesim.estimate(ALEXNET, ISCA).layers
    mapping = {lr.layer.name: lr.mapping for lr in pins}
    full = eyesim.estimate(ALEXNET, ISCA, mapping=mapping, bits={"weights": 16, "ifmap": 16, "psum": 16})
    half = eyesim.estimate(ALEXNET, ISCA, mapping=mapping, bits={"weights": 8, "ifmap": 8, "psum": 8})
    for a, b in zip(full.layers, half.layers, strict=True):
        data_a = a.energy.total - a.energy.by_level["mac"]
        data_b = b.energy.total - b.energy.by_level["mac"]
        assert data_b == pytest.approx(data_a / 2, rel=1e-12)
        assert b.energy.by_level["mac"] == pytest.approx(a.energy.by_level["mac"] / 4, rel=1e-12)


def test_narrower_words_are_searched_again():
    wide = eyesim.estimate(ALEXNET, CHIP)
    narrow = eyesim.estimate(ALEXNET, CHIP, bits={"weights": 4, "ifmap": 4, "psum": 8})
    assert any(a.mapping != b.mapping for a, b in zip(wide.layers, narrow.layers, strict=True))
    conv3 = narrow.layers[2]
    assert conv3.mapping.p * conv3.mapping.q * 3 * 4 <= 224 * 16  # filter scratchpad in bits


def test_densities_from_the_user_drive_the_analytical_rule():
    res = eyesim.estimate(ALEXNET, CHIP, densities={"ifmap": 0.4, "conv3.ifmap": 0.3, "weights": 0.5})
    conv1, conv3 = res.layers[0], res.layers[2]
    assert conv3.density.ifmap == 0.3 and conv1.density.ifmap == 0.4
    assert conv3.energy.macs_executed == round(conv3.energy.macs * 0.5 * 0.3)
    # the stored ifmap is the padded one: 256 planes of 13 x 13 values framed by one zero on every side
    assert conv3.effects.ifmap_dram == pytest.approx(rlc_stream_ratio(0.3, 16, Planes(256, 13, 13, (1, 1, 1, 1))))
    assert conv3.effects.ifmap_dram < rlc_expected_ratio(0.3, 16)  # padding zeros join runs: cheaper per value
    assert conv1.effects.ifmap_dram == 1.0  # the input image is stored as it is
    assert "user (conv3.ifmap)" in conv3.density.source
    dense = eyesim.estimate(ALEXNET, CHIP)
    assert res.total()["energy"]["total"] < dense.total()["energy"]["total"]


def tiny_model(path: Path, rng: np.random.Generator) -> None:
    """Conv -> Relu -> Conv (weights with zeros) -> Relu -> Flatten -> Gemm, with real weights."""
    w1 = rng.normal(size=(4, 1, 3, 3)).astype(np.float32)
    w2 = (rng.normal(size=(6, 4, 3, 3)) * (rng.random((6, 4, 3, 3)) < 0.5)).astype(np.float32)
    w3 = rng.normal(size=(5, 6 * 4 * 4)).astype(np.float32)
    nodes = [helper.make_node("Conv", ["x", "w1"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
             helper.make_node("Conv", ["r1", "w2"], ["c2"], name="conv2", strides=[2, 2], pads=[0, 0, 1, 1]),
             helper.make_node("Relu", ["c2"], ["r2"], name="relu2"),
             helper.make_node("Flatten", ["r2"], ["f"], name="flat"),
             helper.make_node("Gemm", ["f", "w3"], ["y"], name="fc", transB=1)]
    inits = [numpy_helper.from_array(a, n) for a, n in ((w1, "w1"), (w2, "w2"), (w3, "w3"))]
    graph = helper.make_graph(nodes, "tiny", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 5])], inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8), path)


def test_measured_density_equals_the_captured_tensor(tmp_path):
    rng = np.random.default_rng(1)
    path = tmp_path / "tiny.onnx"
    tiny_model(path, rng)
    x = rng.normal(size=(20, 1, 8, 8)).astype(np.float32)
    np.savez(tmp_path / "s.npz", x=x)
    res = eyesim.estimate(path, CHIP, samples=tmp_path / "s.npz", batch=20)
    model = onnx.load(path)
    model.graph.output.extend([helper.make_tensor_value_info(t, TensorProto.FLOAT, None) for t in ("r1", "r2")])
    r1, r2 = ort.InferenceSession(model.SerializeToString()).run(["r1", "r2"], {"x": x})
    conv1, conv2, fc = res.layers
    assert conv2.density.ifmap == pytest.approx(np.count_nonzero(r1) / r1.size)
    assert conv1.density.ofmap == pytest.approx(np.count_nonzero(r1) / r1.size)
    assert fc.density.ifmap == pytest.approx(np.count_nonzero(r2) / r2.size)
    assert conv2.density.weights == pytest.approx(np.count_nonzero(numpy_helper.to_array(model.graph.initializer[1]))
                                                  / (6 * 4 * 9))
    assert "ifmap: samples" in conv2.density.source and "weights: onnx" in conv2.density.source
    # exact executed MACs from the values, at the samples' own batch
    layer = conv2.layer
    padded = np.zeros((20, 4, layer.H, layer.W), dtype=np.float32)
    padded[:, :, :8, :8] = r1
    _, gated, executed = trace_gated(layer, padded, numpy_helper.to_array(model.graph.initializer[1]))
    assert conv2.energy.macs_executed == executed
    assert conv2.energy.counts[df.RF, df.WEIGHTS, df.READ] == gated
    assert conv1.effects.ifmap_dram == 1.0 and conv2.effects.ifmap_dram != 1.0


def trace_gated(layer, x, w):
    """MACs, non-zero-ifmap MACs and both-non-zero MACs by direct enumeration."""
    dense = gated = executed = 0
    for n in range(layer.N):
        for m in range(layer.M):
            for c in range(layer.C):
                for e in range(layer.E):
                    for f in range(layer.F):
                        for r in range(layer.R):
                            for s in range(layer.S):
                                a = x[n, c, e * layer.U + r, f * layer.Uw + s]
                                dense += 1
                                gated += a != 0
                                executed += a != 0 and w[m, c, r, s] != 0
    return dense, gated, executed


def test_time_power_and_joules_are_reported():
    res = eyesim.estimate(ALEXNET, CHIP, batch=4)
    total = res.total()
    assert total["latency_s"] == pytest.approx(sum(lr.timing.latency_s for lr in res.layers))
    assert total["fps"] == pytest.approx(4 / total["latency_s"])
    assert total["energy_j"] == pytest.approx(total["energy"]["total"] * 1.2e-12)
    assert total["power_w"] == pytest.approx(total["energy_j"] / total["latency_s"])
    fc6 = res.layers[5]
    assert fc6.timing.bound == "dram"  # 37.7 M weights over a 64-bit, 60 MHz link
    conv1 = res.layers[0]
    assert conv1.timing.compute_cycles == compute_cycles(conv1.layer, conv1.mapping)


@pytest.mark.parametrize(("kwargs", "needle"), [
    ({"bits": {"weights": 0}}, "from 1 to 32"),
    ({"bits": {"ifmap": 33}}, "from 1 to 32"),
    ({"densities": {"ifmap": 1.5}}, "from 0 to 1"),
    ({"densities": {"conv9.ifmap": 0.5}}, "conv9"),
    ({"densities": {"conv1.zeros": 0.5}}, "data type"),
])
def test_bad_settings_are_refused_naming_the_value(kwargs, needle):
    with pytest.raises(EyesimError, match=needle):
        eyesim.estimate(ALEXNET, CHIP, **kwargs)


def test_samples_that_do_not_fit_the_model(tmp_path):
    path = tmp_path / "tiny.onnx"
    tiny_model(path, np.random.default_rng(2))
    np.save(tmp_path / "bad.npy", np.zeros((3, 1, 9, 9), dtype=np.float32))
    with pytest.raises(EyesimError, match="do not fit"):
        eyesim.estimate(path, CHIP, samples=tmp_path / "bad.npy")


def test_weight_compression_from_the_stored_weights(tmp_path):
    rng = np.random.default_rng(3)
    path = tmp_path / "tiny.onnx"
    tiny_model(path, rng)
    w2 = numpy_helper.to_array(onnx.load(path).graph.initializer[1])
    rlc = with_overrides(load_hardware(CHIP), {"sparsity.weight_compression": "rlc"})
    conv2 = eyesim.estimate(path, rlc).layers[1]
    assert conv2.effects.weights_dram == pytest.approx(rlc_words(w2) * 64 / (w2.size * 16))
    sig = with_overrides(load_hardware(CHIP), {"sparsity.weight_compression": "sigmap"})
    conv2 = eyesim.estimate(path, sig, densities={"conv2.weights": 0.25}).layers[1]
    assert conv2.effects.weights_dram == pytest.approx((1 + 0.25 * 16) / 16)
    plain = eyesim.estimate(path, CHIP).layers[1]
    assert plain.effects.weights_dram == 1.0  # the chip stores filters uncompressed
    assert conv2.energy.by_type["weights"] < plain.energy.by_type["weights"]


def test_samples_run_at_the_files_own_fixed_batch(tmp_path):
    rng = np.random.default_rng(4)
    path = tmp_path / "tiny.onnx"
    tiny_model(path, rng)
    model = onnx.load(path)
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_value = 4  # fixed batch 4
    fixed = tmp_path / "fixed4.onnx"
    onnx.save(model, fixed)
    x = rng.normal(size=(10, 1, 8, 8)).astype(np.float32)
    res = eyesim.estimate(fixed, CHIP, batch=3, samples=x)  # 8 of the 10 samples, in two runs of 4
    flexible = eyesim.estimate(path, CHIP, batch=3, samples=x[:8])
    assert [lr.density for lr in res.layers] == [lr.density for lr in flexible.layers]
    with pytest.raises(EyesimError, match="fixes its batch at 4"):
        eyesim.estimate(fixed, CHIP, samples=x[:3])
    with pytest.raises(EyesimError, match="NaN"):
        eyesim.estimate(path, CHIP, samples=np.full((2, 1, 8, 8), np.nan, dtype=np.float32))


def test_a_normalized_input_image_is_still_stored_uncompressed(tmp_path):
    rng = np.random.default_rng(5)
    path = tmp_path / "tiny.onnx"
    tiny_model(path, rng)
    model = onnx.load(path)
    model.graph.node[0].input[0] = "xs"
    model.graph.node.insert(0, helper.make_node("Mul", ["x", "half"], ["xs"], name="normalize"))
    model.graph.initializer.append(numpy_helper.from_array(np.array(0.5, dtype=np.float32), "half"))
    scaled = tmp_path / "scaled.onnx"
    onnx.save(model, scaled)
    conv1 = eyesim.estimate(scaled, CHIP).layers[0]
    assert conv1.effects.ifmap_dram == 1.0


def test_ofmaps_go_to_dram_at_the_activation_width():
    pins = {lr.layer.name: lr.mapping for lr in eyesim.estimate(ALEXNET, ISCA).layers}
    psum16 = eyesim.estimate(ALEXNET, ISCA, mapping=pins, bits={"psum": 16})
    psum8 = eyesim.estimate(ALEXNET, ISCA, mapping=pins, bits={"psum": 8})  # narrower psums still fit
    for a, b in zip(psum16.layers, psum8.layers, strict=True):
        dram_psum = a.energy.counts[df.DRAM, df.PSUM].sum() * 200
        assert b.energy.by_level["dram"] == pytest.approx(a.energy.by_level["dram"], rel=1e-12)
        assert dram_psum > 0


def test_a_global_ifmap_density_is_also_the_ofmaps():
    conv2 = eyesim.estimate(ALEXNET, CHIP, densities={"ifmap": 0.4}).layers[1]
    assert conv2.density.ofmap == 0.4 and "ofmap: user (ifmap)" in conv2.density.source
    assert conv2.effects.ofmap_dram == pytest.approx(rlc_stream_ratio(0.4, 16, Planes(256, 27, 27)))
    assert conv2.effects.ofmap_dram == pytest.approx(rlc_expected_ratio(0.4, 16), rel=1e-3)  # a long stream


def test_psum_gating_by_the_density_rule():
    gate = with_overrides(load_hardware(CHIP), {"sparsity.gate_psums": True})
    pins = {lr.layer.name: lr.mapping for lr in eyesim.estimate(ALEXNET, CHIP).layers}
    plain = eyesim.estimate(ALEXNET, CHIP, mapping=pins, densities={"conv3.ifmap": 0.3}).layers[2]
    gated = eyesim.estimate(ALEXNET, gate, mapping=pins, densities={"conv3.ifmap": 0.3}).layers[2]
    dense = plain.energy.counts[df.RF, df.PSUM]
    np.testing.assert_array_equal(gated.energy.counts[df.RF, df.PSUM], np.round(dense * 0.3))
    assert plain.energy.by_level["rf"] - gated.energy.by_level["rf"] == pytest.approx(dense.sum() * 0.7)
    no_gating = with_overrides(gate, {"sparsity.zero_gating": False})  # psum gating needs zero gating
    alone = eyesim.estimate(ALEXNET, no_gating, mapping=pins, densities={"conv3.ifmap": 0.3}).layers[2]
    np.testing.assert_array_equal(alone.energy.counts[df.RF, df.PSUM], dense)


def test_exact_psum_gating_is_what_the_search_minimizes(tmp_path):
    rng = np.random.default_rng(8)
    path = tmp_path / "tiny.onnx"
    tiny_model(path, rng)
    x = rng.normal(size=(5, 1, 8, 8)).astype(np.float32)
    gate = with_overrides(load_hardware(CHIP), {"sparsity.gate_psums": True})
    gated = eyesim.estimate(path, gate, batch=5, samples=x)
    plain = eyesim.estimate(path, CHIP, batch=5, samples=x, mapping={lr.layer.name: lr.mapping
                                                                     for lr in gated.layers})
    target = Target.of(gate)
    for g, p in zip(gated.layers, plain.layers, strict=True):
        cost, mac = layer_costs(target.cost, target.mac_cost, g.effects)
        lv = layer_vector(g.layer)
        extra = psum_extra(g.layer, cost, psum_skips(g.layer, g.effects))
        objective = mapping_energy(lv, target.vec, g.mapping.vector(), df.strip_rows_table(lv), df.used_cols(lv),
                                   cost, mac, extra)
        assert g.energy.total == pytest.approx(objective * g.layer.G, rel=1e-12)
        assert best_mapping(g.layer, target, None, cost, mac, psum_skips(g.layer, g.effects))[0] == g.mapping
        skipped = p.energy.counts[df.RF, df.PSUM] - g.energy.counts[df.RF, df.PSUM]
        assert skipped[0] == skipped[1] > 0
        assert g.energy.total == pytest.approx(p.energy.total - 2 * skipped[0], rel=1e-12)  # RF costs 1


def test_exact_psum_gating_of_a_fully_connected_layer_run_flattened(tmp_path):
    rng = np.random.default_rng(3)
    path = tmp_path / "tiny.onnx"
    tiny_model(path, rng)
    x = rng.normal(size=(3, 1, 8, 8)).astype(np.float32)
    short = with_overrides(load_hardware(CHIP), {"array.rows": 3, "sparsity.gate_psums": True})  # fc's 4 rows
    fc = eyesim.estimate(path, short, batch=3, samples=x).layers[2]
    assert (fc.layer.C, fc.layer.R) == (96, 1)  # run over its flattened input: one channel per value
    model = onnx.load(path)
    model.graph.output.append(helper.make_tensor_value_info("f", TensorProto.FLOAT, None))
    (flat,) = ort.InferenceSession(model.SerializeToString()).run(["f"], {"x": x})
    tiling = fc.mapping.as_dict()
    ref, *_ = trace_counts(fc.layer.shape, tiling, x=flat.reshape(3, 96, 1, 1), w=np.ones((5, 96, 1, 1)),
                           gate_psums=True)
    np.testing.assert_array_equal(fc.energy.counts[df.RF], ref[df.RF])


def test_an_uneven_padding_is_stored_where_onnx_puts_it(tmp_path):
    # SAME_UPPER with stride 2 over 8 x 8: one row and one column of padding, both at the end
    w1 = numpy_helper.from_array(np.ones((4, 1, 3, 3), dtype=np.float32), "w1")
    w2 = numpy_helper.from_array(np.ones((6, 4, 3, 3), dtype=np.float32), "w2")
    nodes = [helper.make_node("Conv", ["x", "w1"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
             helper.make_node("Conv", ["r1", "w2"], ["y"], name="conv2", strides=[2, 2], auto_pad="SAME_UPPER")]
    graph = helper.make_graph(nodes, "uneven", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [w1, w2])
    path = tmp_path / "uneven.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8), path)
    conv2 = eyesim.estimate(path, CHIP, densities={"conv2.ifmap": 0.4}).layers[1]
    assert (conv2.layer.H, conv2.layer.W) == (9, 9)
    assert conv2.effects.ifmap_dram == pytest.approx(rlc_stream_ratio(0.4, 16, Planes(4, 8, 8, (0, 1, 0, 1))))
