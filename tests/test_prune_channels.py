"""Filter (structured) pruning's building blocks: which channels can go, removing them, and filter scores."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import helper, numpy_helper

from eyesim.errors import EyesimError
from eyesim.estimator import estimate
from eyesim.prune.channels import ChannelGroup, Use, channel_groups, remove_channels
from eyesim.prune.criteria import l1_norms, nuclear_norms, ranking
from eyesim.prune.layers import prunable_layers
from eyesim.workload.onnx.load import load_workload

from .channel_models import (
    Inits,
    build,
    chain_model,
    concat_model,
    conv,
    depthwise_model,
    grouped_model,
    op,
    residual_model,
    weights,
)
from .test_cli import ALEXNET, CHIP, ROOT

LENET = ROOT / "models_onnx" / "lenet5-mnist.onnx"


# ---------------------------------------------------------------- helpers


def run(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]


def arrays(model: onnx.ModelProto) -> Inits:
    return {t.name: numpy_helper.to_array(t).copy() for t in model.graph.initializer}


def with_arrays(model: onnx.ModelProto, values: Inits) -> onnx.ModelProto:
    out = onnx.ModelProto()
    out.CopyFrom(model)
    for init in out.graph.initializer:
        value = values[init.name]
        init.CopyFrom(numpy_helper.from_array(value if value.dtype == np.int64 else value.astype(np.float32),
                                              init.name))
    return out


def groups_of(model: onnx.ModelProto) -> dict[str, ChannelGroup]:
    return {group.layer: group for group in channel_groups(model)[0]}


def silenced(model: onnx.ModelProto, keep: dict[str, list[int]]) -> onnx.ModelProto:
    """``model`` with the channels ``keep`` drops carrying exact zeros: their filters and biases, the scale and
    bias of the BatchNorms and the biases of the depthwise convs on them are zero (every op between maps 0 to 0)."""
    values, nodes, groups = arrays(model), {n.name: n for n in model.graph.node}, groups_of(model)
    for layer, kept in keep.items():
        group = groups[layer]
        gone = np.setdiff1d(np.arange(group.channels), kept)
        for lay in prunable_layers(model):
            if lay.name not in group.members:
                continue
            values[lay.weight][(slice(None), gone) if lay.in_out else gone] = 0  # (K, M) or (M, ...)
            if lay.bias:
                values[lay.bias][gone] = 0
        for use in group.batchnorms:
            for param in nodes[use.node].input[1:3]:
                values[param][use.indices(gone)] = 0
        for use in group.depthwise:
            if len(nodes[use.node].input) > 2:
                values[nodes[use.node].input[2]][use.indices(gone)] = 0
    return with_arrays(model, values)


def checked(model: onnx.ModelProto, keep: dict) -> onnx.ModelProto:
    """remove_channels, then the full ONNX checker; the input model is left as it was."""
    before = model.SerializeToString()
    small = remove_channels(model, keep)
    onnx.checker.check_model(small, full_check=True)
    assert model.SerializeToString() == before
    assert [t.name for t in small.graph.initializer] == [t.name for t in model.graph.initializer]
    return small


def assert_same_outputs(model: onnx.ModelProto, keep: dict, x: np.ndarray) -> onnx.ModelProto:
    """Silencing the dropped channels, then removing them, gives the silenced model's outputs exactly."""
    quiet = silenced(model, keep)
    small = checked(quiet, keep)
    np.testing.assert_allclose(run(small, x), run(quiet, x), atol=1e-5, rtol=0)
    return small


def dims(model: onnx.ModelProto) -> dict[str, tuple[int, int]]:
    """(C, M) per layer as eyesim reads the model (per group)."""
    return {lay.name: (lay.C, lay.M) for lay in load_workload(model).layers}


def x_for(shape: list[int], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=[3, *shape]).astype(np.float32)


# ---------------------------------------------------------------- which channels can go


def test_chain_groups_map_channels_to_consumer_rows():
    groups, notes = channel_groups(chain_model())
    by = {g.layer: g for g in groups}
    assert list(by) == ["conv1", "conv2", "fc1"]
    assert by["conv1"].consumers == (Use("conv2", "Conv"),) and by["conv1"].through == ("r1", "p1")
    assert by["conv2"].consumers == (Use("fc1", "Gemm", 0, 16),)  # after Flatten: 16 rows (4 x 4) per channel
    assert by["fc1"].consumers == (Use("fc2", "Gemm"),)
    assert all(g.blocks == 1 and g.channels == m for g, m in zip(groups, (6, 4, 10), strict=True))
    assert notes == ["fc2: skipped, its output is the graph output 'y' (the network's final layer: never pruned)"]
    assert list(Use("fc1", "Gemm", 3, 16).indices(np.array([0, 2]))) == [*range(3, 19), *range(35, 51)]


def test_grouped_depthwise_concat_and_residual_groups():
    grouped = groups_of(grouped_model())
    assert grouped["conv1"].blocks == 2 and grouped["conv2"].blocks == 2  # conv2 reads 2 x 4, writes 2 x 3
    dw, notes = channel_groups(depthwise_model())
    by = {g.layer: g for g in dw}
    assert [u.node for u in by["conv1"].batchnorms] == ["bn1", "bn2"]
    assert [u.node for u in by["conv1"].depthwise] == ["dw1", "dw2"]
    assert by["conv1"].consumers == (Use("pw", "Conv", 0, 2),)  # dw2 makes 2 channels of each
    assert by["dw2"].blocks == 6 and "dw1: skipped, it is a depthwise conv" in notes[0]
    cat = groups_of(concat_model())
    assert cat["conva"].consumers == (Use("convc", "Conv", 0, 1),)
    assert cat["convb"].consumers == (Use("convc", "Conv", 4, 1),)
    assert cat["convb"].constants == (Use("r1", "PRelu", 4, 1),) and cat["convb"].through == ("cat", "r1")
    groups, notes = channel_groups(residual_model())
    res = {g.layer: g for g in groups}
    assert notes == ["conv0: prunable together with conv2 (joined by residual Add nodes): keep['conv0'] removes the "
                     "same channels from all of them", "fc: skipped, its output is the graph output 'y' (the "
                     "network's final layer: never pruned)"]
    assert res["conv0"].members == ("conv0", "conv2") and "conv2" not in res
    assert {u.node for u in res["conv0"].consumers} == {"conv1", "fc"} and "add1" in res["conv0"].through


def test_residual_add_with_the_graph_input_is_skipped_with_a_note():
    groups, notes = channel_groups(residual_model("x"))
    assert [g.layer for g in groups] == ["conv0", "conv1"]
    assert notes[0].startswith("conv2: skipped, its output reaches Add node 'add1' whose other input does not lose "
                               "the same channels")
    with pytest.raises(EyesimError, match="cannot remove channels of conv2: skipped, .*'add1'"):
        remove_channels(residual_model("x"), {"conv2": [0, 1]})


@pytest.mark.parametrize(("extra", "text"), [
    (lambda: [op("LRN", "c1", "z", size=3)], "conv1: prunable, but LRN node 'z' normalises across"),
    (lambda: [op("Reshape", ["c1", "odd"], "z")], "conv1: skipped, Reshape node 'z' mixes channels"),
    (lambda: [op("Softmax", "c1", "z", axis=1)], "conv1: skipped, its output reaches Softmax node 'z', which mixes"),
    (lambda: [op("Mul", ["c1", "c1"], "z")], "conv1: skipped, its output reaches Mul node 'z' whose other input"),
    (lambda: [op("Transpose", "c1", "z", perm=[0, 2, 1, 3])], "conv1: skipped, its output reaches Transpose node"),
])
def test_notes_name_the_node_in_the_way(extra, text):
    rng = np.random.default_rng(0)
    inits = {**weights(rng, w1=(4, 3, 3, 3)), "odd": np.array([0, 8, -1], dtype=np.int64)}
    nodes = [conv("conv1", "x", "c1", "w1", pads=[1, 1, 1, 1]), *extra()]
    nodes.append(op("Flatten", nodes[-1].output[0], "f"))
    inits.update(weights(rng, wf=(3, 64)))
    nodes.append(helper.make_node("Gemm", ["f", "wf"], ["y"], name="fc", transB=1))
    _, notes = channel_groups(build(nodes, inits, [3, 4, 4], 3))
    assert any(note.startswith(text) for note in notes), notes


# ---------------------------------------------------------------- removing them reproduces the outputs


@pytest.mark.parametrize(("flatten", "fc"), [("Flatten", "Gemm"), ("Reshape64", "Gemm"), ("Reshape0", "MatMul")])
def test_removing_duplicate_and_zero_filters_reproduces_the_outputs(flatten, fc):
    model = chain_model(flatten, fc)
    v = arrays(model)
    v["w1"][4], v["b1"][4] = v["w1"][1], v["b1"][1]  # conv1: filter 4 repeats filter 1, filter 5 is all zero
    v["w1"][5], v["b1"][5] = 0, 0
    v["w2"][3], v["b2"][3] = v["w2"][0], v["b2"][0]  # conv2: filter 3 repeats filter 0
    w3 = v["w3"] if fc == "Gemm" else v["w3"].T  # fc1 as (out, in)
    w3[7], v["b3"][7] = w3[2], v["b3"][2]  # fc1: neuron 7 repeats neuron 2
    model = with_arrays(model, v)
    x = x_for([3, 8, 8])
    reference = run(model, x)
    # the kept twin takes over its duplicate's consumer weights (by hand)
    v["w2"][:, 1] += v["w2"][:, 4]
    w3[:, 0:16] += w3[:, 48:64]  # conv2's channel c is fc1's inputs 16c ... 16c + 15
    v["w4"][2] += v["w4"][7]
    keep = {"conv1": [0, 1, 2, 3], "conv2": [0, 1, 2], "fc1": [0, 1, 2, 3, 4, 5, 6, 8, 9]}
    small = checked(with_arrays(model, v), keep)
    np.testing.assert_allclose(run(small, x), reference, atol=1e-5, rtol=0)
    assert dims(small) == {"conv1": (3, 4), "conv2": (4, 3), "fc1": (3, 9), "fc2": (9, 5)}
    if flatten == "Reshape64":
        assert list(arrays(small)["shape"]) == [-1, 48]


@pytest.mark.parametrize(("make", "keep", "shape"), [
    (lambda: chain_model(bn=True), {"conv1": [0, 2, 3, 5], "conv2": [1, 3], "fc1": [0, 4, 5, 9]}, [3, 8, 8]),
    (grouped_model, {"conv1": [0, 1, 3, 4, 6, 7], "conv2": [0, 2, 5, 3]}, [3, 6, 6]),
    (depthwise_model, {"conv1": [1, 2, 5], "dw2": [1, 2, 5, 6, 8, 11]}, [3, 6, 6]),
    (depthwise_model, {"dw2": [0, 3, 4, 6, 9, 11]}, [3, 6, 6]),
    (concat_model, {"conva": [0, 2, 3], "convb": [1]}, [3, 6, 6]),
    (residual_model, {"conv0": [0, 2, 3], "conv1": [1, 3]}, [4, 6, 6]),
])
def test_removing_silent_channels_reproduces_the_outputs(make, keep, shape):
    model = make()
    keep = {layer: sorted(kept) for layer, kept in keep.items()}
    before = dims(model)
    small = assert_same_outputs(model, keep, x_for(shape))
    after = dims(small)
    for layer, kept in keep.items():
        lay = next(lay for lay in load_workload(model).layers if lay.name == layer)
        assert after[layer][1] == len(kept) // lay.G  # M per group
    assert after != before


def test_grouped_and_depthwise_shapes_after_removal():
    small = checked(grouped_model(), {"conv1": [0, 1, 3, 4, 6, 7]})
    assert dims(small)["conv2"] == (3, 3)  # 2 groups of 3 inputs
    small = checked(depthwise_model(), {"conv1": [1, 2, 5]})
    nodes = {n.name: n for n in small.graph.node}
    assert [helper.get_attribute_value(a) for a in nodes["dw1"].attribute if a.name == "group"] == [3]
    assert arrays(small)["wd2"].shape == (6, 1, 3, 3) and arrays(small)["wp"].shape == (4, 6, 1, 1)
    assert arrays(small)["bn2.var"].shape == (3,)
    assert arrays(checked(concat_model(), {"convb": [1]}))["slope"].shape == (5, 1, 1)
    small = checked(residual_model(), {"conv2": [1, 2]})  # a member names its group
    assert arrays(small)["w0"].shape == (2, 4, 3, 3) and arrays(small)["w1"].shape == (4, 2, 3, 3)


def test_estimate_sees_the_smaller_layers():
    model = chain_model()
    keep = {"conv1": [0, 1, 2, 3], "conv2": [0, 1, 2], "fc1": list(range(8))}
    old = {lr.layer.name: lr for lr in estimate(model, CHIP, batch=1).layers}
    new = {lr.layer.name: lr for lr in estimate(checked(model, keep), CHIP, batch=1).layers}
    expected = {"conv1": (1, 4 / 6), "conv2": (4 / 6, 3 / 4), "fc1": (3 / 4, 8 / 10), "fc2": (8 / 10, 1)}
    for name, (c_ratio, m_ratio) in expected.items():
        a, b = old[name].layer, new[name].layer
        c, m = round(a.C * c_ratio), round(a.M * m_ratio)
        assert (c, m) == (b.C, b.M)
        assert new[name].energy.macs == round(old[name].energy.macs * c_ratio * m_ratio)
    assert sum(lr.energy.total for lr in new.values()) < sum(lr.energy.total for lr in old.values())


def test_lenet_channels_removed_end_to_end():
    model = onnx.load(str(LENET))
    groups, notes = channel_groups(model)
    assert [g.layer for g in groups] == ["conv1", "conv2", "fc1", "fc2"]
    assert notes == ["fc3: skipped, its output is the graph output 'logits' (the network's final layer: never "
                     "pruned)"]
    v = arrays(model)
    v["conv1.weight"][[1, 4]], v["conv1.bias"][[1, 4]] = 0, 0  # silent filters: removing them changes nothing
    v["fc1.weight"][100:], v["fc1.bias"][100:] = 0, 0
    model = with_arrays(model, v)
    x = np.random.default_rng(0).uniform(size=(4, 1, 28, 28)).astype(np.float32)
    keep = {"conv1": [0, 2, 3, 5], "fc1": list(range(100))}
    small = checked(model, keep)
    session = ort.InferenceSession(small.SerializeToString())
    np.testing.assert_allclose(session.run(None, {"input": x})[0],
                               ort.InferenceSession(model.SerializeToString()).run(None, {"input": x})[0], atol=1e-5)
    keep |= {"conv2": list(range(0, 16, 2)), "fc2": list(range(60))}
    small = checked(model, keep)
    assert ort.InferenceSession(small.SerializeToString()).run(None, {"input": x})[0].shape == (4, 10)
    result = {lr.layer.name: lr for lr in estimate(small, CHIP, batch=1).layers}
    shapes = {name: (lr.layer.C * lr.layer.R * lr.layer.S, lr.layer.M) for name, lr in result.items()}
    assert shapes == {"conv1": (25, 4), "conv2": (100, 8), "fc1": (200, 100), "fc2": (100, 60), "fc3": (60, 10)}
    assert result["conv2"].energy.macs == 240000 * 4 * 8 // (6 * 16)


# ---------------------------------------------------------------- bad input


def test_bad_keep_sets_are_refused_on_one_line():
    grouped = grouped_model()
    cases = [
        ({"conv1": []}, "non-empty"),
        ({"conv1": [0, 8]}, "out of range 0..7"),
        ({"conv1": [-1, 2]}, "out of range"),
        ({"conv1": [3, 1]}, "sorted, without repeats"),
        ({"conv1": [1, 1]}, "sorted, without repeats"),
        ({"conv1": [0.0, 1.0]}, "integer"),
        ({"conv1": [0, 1, 2, 3, 4, 5]}, r"same number kept in each of its 2 blocks .*\[4, 2\]"),
        ({"fc": [0, 1]}, "cannot remove channels of fc: skipped, its output is the graph output 'y'"),
        ({"conv9": [0]}, "no prunable layer named 'conv9'; the layers: conv1, conv2"),
    ]
    for keep, text in cases:
        with pytest.raises(EyesimError, match=text) as err:
            remove_channels(grouped, keep)
        assert "\n" not in str(err.value)
    with pytest.raises(EyesimError, match="both 'conv0' and 'conv2'"):
        remove_channels(residual_model(), {"conv0": [0], "conv2": [0]})


def test_shape_only_model_is_refused():
    with pytest.raises(EyesimError, match="needs the trained weights") as err:
        channel_groups(onnx.load(ALEXNET))
    assert "\n" not in str(err.value)
    with pytest.raises(EyesimError, match="needs the trained weights"):
        remove_channels(onnx.load(ALEXNET), {"conv1": [0]})


# ---------------------------------------------------------------- filter scores


def test_nuclear_norms_match_numpy_and_zero_filters_score_zero():
    rng = np.random.default_rng(5)
    for shape in [(7, 5, 3, 2), (4, 6, 5, 5), (9, 4), (3, 2, 7)]:
        fmap = np.maximum(rng.normal(size=shape), 0)
        fmap[:, 1] = 0
        expected = [np.linalg.norm(fmap[:, m].reshape(shape[0], -1), "nuc") for m in range(shape[1])]
        np.testing.assert_allclose(nuclear_norms(fmap), expected, rtol=1e-9, atol=1e-12)
        assert nuclear_norms(fmap)[1] == 0.0
    fmap = rng.normal(size=(40, 16, 13, 13)).astype(np.float32)
    expected = [np.linalg.norm(fmap[:, m].astype(np.float64).reshape(40, -1), "nuc") for m in range(16)]
    np.testing.assert_allclose(nuclear_norms(fmap), expected, rtol=1e-9)


def test_l1_norms_per_filter():
    rng = np.random.default_rng(6)
    w = rng.normal(size=(6, 2, 3, 3))
    np.testing.assert_allclose(l1_norms(w), np.abs(w).sum(axis=(1, 2, 3)))
    model = chain_model(fc="MatMul")
    fc1 = next(lay for lay in prunable_layers(model) if lay.name == "fc1")
    w3 = arrays(model)["w3"]  # stored (in, out)
    np.testing.assert_allclose(l1_norms(w3, fc1), np.abs(w3).sum(axis=0), rtol=1e-6)
    conv1 = prunable_layers(grouped_model())[1]
    w2 = arrays(grouped_model())["w2"]
    np.testing.assert_allclose(l1_norms(w2, conv1), l1_norms(w2))


def test_ranking_removes_the_least_important_first_by_blocks():
    assert list(ranking([3.0, 1.0, 2.0, 0.5])) == [3, 1, 2, 0]
    order = ranking([5, 1, 4, 2, 3, 0], blocks=2)
    assert list(order) == [5, 1, 3, 2, 4, 0]
    rng = np.random.default_rng(7)
    order = ranking(rng.normal(size=12), blocks=3)
    assert sorted(order) == list(range(12))
    for k in range(0, 13, 3):
        assert np.all(np.bincount(order[:k] // 4, minlength=3) == k // 3)
    with pytest.raises(EyesimError, match="equal blocks"):
        ranking(np.ones(5), blocks=2)
