"""Densities belong to tensors: given, linked across value-preserving ops, estimated across others."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import eyesim
from eyesim.errors import EyesimError
from tests.cli_support import assert_one_line_error

ROOT = Path(__file__).resolve().parent.parent
ALEXNET = str(ROOT / "models_onnx" / "alexnet.onnx")
EYERISS = str(ROOT / "hwconfigs" / "eyeriss.yaml")
JSSC_IFMAPS = {"conv2.ifmap": 0.613, "conv3.ifmap": 0.388, "conv4.ifmap": 0.29, "conv5.ifmap": 0.224}


@pytest.fixture(scope="module")
def jssc():
    """AlexNet at batch 4 with the chip's measured ifmap densities (JSSC 2017 Table V) given per layer."""
    return {lr.layer.name: lr for lr in eyesim.estimate(ALEXNET, EYERISS, batch=4, densities=JSSC_IFMAPS).layers}


def test_an_ifmap_density_is_the_ofmap_density_of_the_layer_writing_it(jssc) -> None:
    assert jssc["conv3"].density.ofmap == jssc["conv4"].density.ifmap == 0.29
    assert jssc["conv4"].density.ofmap == jssc["conv5"].density.ifmap == 0.224
    assert jssc["conv3"].density.kinds == ("dense", "given", "linked")
    assert "ofmap: linked to conv4.ifmap" in jssc["conv3"].density.source


def test_across_value_changing_ops_the_ofmap_is_estimated_and_says_so(jssc) -> None:
    conv1, conv5 = jssc["conv1"].density, jssc["conv5"].density
    assert conv1.ofmap == 0.613 and conv1.kinds[2] == "estimated"
    assert "ofmap: estimated from conv2.ifmap across LRN, MaxPool" in conv1.source
    assert conv5.ofmap == 1.0 and conv5.kinds[2] == "dense"  # nothing given downstream of its MaxPool


def test_linking_lowers_dram_traffic_to_what_the_same_tensors_given_twice_cost(jssc) -> None:
    both = dict(JSSC_IFMAPS, **{"conv3.ofmap": 0.29, "conv4.ofmap": 0.224})
    explicit = {lr.layer.name: lr for lr in eyesim.estimate(ALEXNET, EYERISS, batch=4, densities=both).layers}
    for name in ("conv3", "conv4"):
        assert jssc[name].energy.by_level["dram"] == pytest.approx(explicit[name].energy.by_level["dram"])
    dense = eyesim.estimate(ALEXNET, EYERISS, batch=4, densities=dict(JSSC_IFMAPS, **{"conv3.ofmap": 1.0}))
    assert dense.layers[2].density.kinds[2] == "given"
    assert dense.layers[2].energy.by_level["dram"] > 1.1 * jssc["conv3"].energy.by_level["dram"]


def test_a_tensor_name_sets_both_layers_sharing_it() -> None:
    layers = {lr.layer.name: lr.density for lr in eyesim.estimate(ALEXNET, EYERISS, densities={"relu3": 0.3}).layers}
    assert layers["conv3"].ofmap == layers["conv4"].ifmap == 0.3
    assert layers["conv3"].kinds[2] == layers["conv4"].kinds[1] == "given"
    assert layers["conv2"].ofmap == 1.0


def test_a_given_ofmap_links_to_the_reader_ifmap_and_wins_over_a_link() -> None:
    layers = {lr.layer.name: lr.density for lr in eyesim.estimate(
        ALEXNET, EYERISS, densities={"fc6.ofmap": 0.4, "conv3.ofmap": 0.5, "conv4.ifmap": 0.2}).layers}
    assert layers["fc7"].ifmap == 0.4 and layers["fc7"].kinds[1] == "linked"  # through Relu and Dropout
    assert layers["conv3"].ofmap == 0.5 and layers["conv4"].ifmap == 0.2  # each side's own value first


def test_global_densities_keep_their_meaning() -> None:
    layers = eyesim.estimate(ALEXNET, EYERISS, densities={"ifmap": 0.5, "conv4.ifmap": 0.2}).layers
    by = {lr.layer.name: lr.density for lr in layers}
    assert by["conv3"].ofmap == 0.2  # linked beats the global ifmap value
    assert by["conv5"].ofmap == 0.5 and by["conv5"].source.endswith("ofmap: user (ifmap)")
    assert by["conv2"].ifmap == 0.5


@pytest.mark.parametrize("key", ["conv9.ifmap", "nosuchtensor", "conv3.bias", "ifmaps"])
def test_an_unknown_density_key_is_one_clear_error(key: str) -> None:
    with pytest.raises(EyesimError, match="not a data type .* or the name of an fmap tensor"):
        eyesim.estimate(ALEXNET, EYERISS, densities={key: 0.5})


def _branchy() -> onnx.ModelProto:
    """a and b read x; Add(a, b) -> Relu -> Concat with relu(a) -> c: ops that change values between."""
    f = TensorProto.FLOAT
    w = {name: numpy_helper.from_array(np.ones(shape, np.float32), name)
         for name, shape in (("wa", (4, 2, 1, 1)), ("wb", (4, 2, 1, 1)), ("wc", (4, 8, 1, 1)))}
    nodes = [helper.make_node("Conv", ["x", "wa"], ["a"], name="a"),
             helper.make_node("Relu", ["a"], ["ra"]),
             helper.make_node("Conv", ["x", "wb"], ["b"], name="b"),
             helper.make_node("Add", ["ra", "b"], ["s"]),
             helper.make_node("Relu", ["s"], ["rs"]),
             helper.make_node("Concat", ["rs", "ra"], ["cat"], axis=1),
             helper.make_node("Conv", ["cat", "wc"], ["y"], name="c")]
    graph = helper.make_graph(nodes, "branchy", [helper.make_tensor_value_info("x", f, [1, 2, 5, 5])],
                              [helper.make_tensor_value_info("y", f, None)], list(w.values()))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def test_estimated_across_add_and_concat_names_every_op_crossed() -> None:
    layers = {lr.layer.name: lr.density for lr in eyesim.estimate(_branchy(), EYERISS,
                                                                  densities={"c.ifmap": 0.25}).layers}
    assert layers["a"].ofmap == layers["b"].ofmap == 0.25
    assert "estimated from c.ifmap across Concat" in layers["a"].source  # a's nearest path is its Concat input
    assert "estimated from c.ifmap across Add, Concat" in layers["b"].source


def test_the_table_marks_where_each_density_came_from(tmp_path) -> None:
    from click.testing import CliRunner

    from eyesim.cli.main import main

    args = ["estimate", ALEXNET, "--hw", EYERISS, *(f"--density={k}={v}" for k, v in JSSC_IFMAPS.items())]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    conv3 = next(line for line in res.output.splitlines() if line.startswith("conv3 "))
    assert "0.39g" in conv3 and "0.29l" in conv3
    assert "0.61e" in next(line for line in res.output.splitlines() if line.startswith("conv1 "))
    bad = CliRunner().invoke(main, ["estimate", ALEXNET, "--hw", EYERISS, "--density", "relu99=0.5"])
    assert_one_line_error(bad, "relu99")
