"""Models older than opset 7 are upgraded by ONNX's version converter: estimated, run on samples and pruned as
their opset-7 twins are; every opset-6 graph onnx ships is counted (against tests/mac_count.py) or refused on
one line; what the converter cannot upgrade is refused, naming why."""

from __future__ import annotations

import glob
import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from click.testing import CliRunner
from onnx import TensorProto, helper, numpy_helper

import eyesim
from eyesim.cli import main
from eyesim.errors import EyesimError
from eyesim.prune import prune
from eyesim.workload.onnx import load_workload
from eyesim.workload.onnx.opsets import MIN_OPSET, ai_onnx_opset, upgraded
from eyesim.workload.onnx.run import Samples
from tests.mac_count import count_macs

ROOT = Path(__file__).resolve().parent.parent
CHIP = str(ROOT / "hwconfigs" / "eyeriss.yaml")
F = TensorProto.FLOAT
ONNX_DATA = Path(onnx.__file__).parent / "backend" / "test" / "data"
OLD_GRAPHS = sorted(path for path in glob.glob(str(ONNX_DATA / "*" / "*" / "model.onnx"))
                    if ai_onnx_opset(onnx.load(path, load_external_data=False)) < MIN_OPSET)


def twins(seed: int = 0, computed: bool = False) -> tuple[onnx.ModelProto, onnx.ModelProto]:
    """Conv -> Add(bias) -> Relu -> Flatten -> Gemm, at opset 6 (Add and Gemm with the ``broadcast`` attribute)
    and the same network at opset 7 (numpy broadcasting), with the same weights; ``computed``: the bias comes
    through an Identity node, so it is no constant."""
    rng = np.random.default_rng(seed)
    w = numpy_helper.from_array(rng.normal(size=(4, 3, 3, 3)).astype(np.float32), "w")
    w2 = numpy_helper.from_array(rng.normal(size=(144, 5)).astype(np.float32), "w2")
    b2 = numpy_helper.from_array(rng.normal(size=5).astype(np.float32), "b2")
    bias = rng.normal(size=4).astype(np.float32)
    models = []
    for opset in (6, 7):
        old = opset < 7  # a per-channel bias: broadcast from axis 1 at opset 6, shaped 4 x 1 x 1 at opset 7
        b = numpy_helper.from_array(bias if old else bias.reshape(4, 1, 1), "b")
        broadcast = {"broadcast": 1} if old else {}
        nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv"),
                 helper.make_node("Identity", ["b"], ["bi"], name="same"),
                 helper.make_node("Add", ["c", "bi" if computed else "b"], ["a"], name="bias", **broadcast,
                                  **({"axis": 1} if old else {})),
                 helper.make_node("Relu", ["a"], ["r"], name="relu"),
                 helper.make_node("Flatten", ["r"], ["f"], name="flat"),
                 helper.make_node("Gemm", ["f", "w2", "b2"], ["y"], name="fc", **broadcast)]
        graph = helper.make_graph(nodes, "twin", [helper.make_tensor_value_info("x", F, ["N", 3, 8, 8])],
                                  [helper.make_tensor_value_info("y", F, ["N", 5])], initializer=[w, b, w2, b2])
        models.append(helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)]))
    return models[0], models[1]


def declared(model: onnx.ModelProto, shapes: dict[str, tuple[int, ...]]) -> onnx.ModelProto:
    """``model`` with its data inputs declared at ``shapes`` (eyesim's batch of 1), so onnxruntime runs that."""
    for vi in model.graph.input:
        if vi.name in shapes:
            vi.type.tensor_type.shape.CopyFrom(helper.make_tensor_type_proto(F, shapes[vi.name]).tensor_type.shape)
    del model.graph.value_info[:]
    return model


def layers(result) -> list[dict]:
    return result.to_dict()["layers"]


@pytest.mark.parametrize("computed", [False, True])
def test_an_opset_6_model_estimates_and_runs_as_its_opset_7_twin_with_and_without_samples(computed):
    old, new = twins(computed=computed)
    before = old.SerializeToString()
    x = np.random.default_rng(1).normal(size=(6, 3, 8, 8)).astype(np.float32)
    runs = [ort.InferenceSession(m.SerializeToString()).run(None, {"x": x})[0] for m in (upgraded(old), new)]
    np.testing.assert_allclose(runs[0], runs[1], rtol=1e-5, atol=1e-5)  # the bias added per channel, as at opset 6
    assert layers(eyesim.estimate(old, CHIP, batch=2)) == layers(eyesim.estimate(new, CHIP, batch=2))
    measured = eyesim.estimate(old, CHIP, batch=2, samples=x)
    assert layers(measured) == layers(eyesim.estimate(new, CHIP, batch=2, samples=x))
    assert measured.layers[1].density.source != eyesim.estimate(old, CHIP, batch=2).layers[1].density.source
    assert old.SerializeToString() == before  # the caller's model is never changed


def test_an_opset_6_file_on_the_command_line_and_in_a_sweep(tmp_path):
    old, new = twins()
    for name, model in (("old", old), ("new", new)):
        onnx.save(model, str(tmp_path / f"{name}.onnx"))
        done = CliRunner().invoke(main, ["estimate", str(tmp_path / f"{name}.onnx"), "--hw", CHIP, "--batch", "2",
                                         "--quiet", "-o", str(tmp_path / f"{name}.json")])
        assert done.exit_code == 0, done.output
    found = {n: json.loads((tmp_path / f"{n}.json").read_text())["layers"] for n in ("old", "new")}
    assert found["old"] == found["new"]
    swept = CliRunner().invoke(main, ["sweep", str(tmp_path / "old.onnx"), "--hw", CHIP, "--vary", "batch=1,2",
                                      "-o", str(tmp_path / "sweep.csv"), "--quiet"])
    assert swept.exit_code == 0, swept.output


def test_a_pruned_opset_6_model_is_written_at_opset_7_and_runs():
    old, new = twins()
    x = np.random.default_rng(2).normal(size=(64, 3, 8, 8)).astype(np.float32)
    session = ort.InferenceSession(new.SerializeToString())  # the twin's own answers as labels: 100 % to start
    labels = np.concatenate([session.run(None, {"x": x[i:i + 2]})[0].argmax(1) for i in range(0, 64, 2)])
    result = prune(old, CHIP, Samples(x, labels, "x"), method="magnitude", max_drop=1.0, passes=1)
    assert ai_onnx_opset(result.model) == MIN_OPSET
    pruned = ort.InferenceSession(result.model.SerializeToString()).run(None, {"x": x[:2]})[0]
    assert pruned.shape == (2, 5) and result.after.nonzero < result.before.nonzero


def test_every_opset_6_graph_onnx_ships_is_counted_or_refused_on_one_line():
    assert len(OLD_GRAPHS) >= 100  # pytorch-converted and pytorch-operator graphs, exported at opset 6
    counted, refused = 0, set()
    for path in OLD_GRAPHS:
        try:
            result = eyesim.estimate(path, CHIP)
        except EyesimError as err:
            text = str(err)
            assert "\n" not in text and "older than" not in text and "internal" not in text, (path, text)
            refused.add(text.split(": ", 1)[1].split(" (")[0].split("'")[0])
            continue
        counted_macs = count_macs(declared(upgraded(onnx.load(path)), load_workload(path).inputs)).total
        assert sum(layer.energy.macs for layer in result.layers) == counted_macs, path
        counted += 1
    assert counted >= 25, counted
    assert all(reason.startswith(("no layer with MACs", "Conv node", "unsupported op", "no data input"))
               for reason in refused), refused


def test_every_opset_6_graph_onnx_ships_computes_its_expected_outputs_once_upgraded():
    """The upgrade keeps what a graph computes: onnx's own inputs and expected outputs (PRelu's per-channel slope,
    Add's broadcast from an axis, ...), run with onnxruntime on the upgraded model."""
    for path in OLD_GRAPHS:
        data = Path(path).parent / "test_data_set_0"
        inputs, outputs = ([numpy_helper.to_array(onnx.load_tensor(str(f))) for f in sorted(data.glob(f"{kind}_*.pb"))]
                           for kind in ("input", "output"))
        session = ort.InferenceSession(upgraded(onnx.load(path)).SerializeToString())
        found = session.run(None, dict(zip([i.name for i in session.get_inputs()], inputs, strict=True)))
        for got, expected in zip(found, outputs, strict=True):
            np.testing.assert_allclose(got, expected, rtol=1e-3, atol=1e-4, equal_nan=True, err_msg=path)


def test_unnamed_nodes_keep_their_names_and_a_shared_bias_is_spread_once():
    x = [helper.make_tensor_value_info("x", F, [1, 3, 8, 8])]
    w = numpy_helper.from_array(np.ones((4, 3, 3, 3), np.float32), "w")
    w2 = numpy_helper.from_array(np.ones((4, 4, 1, 1), np.float32), "w2")
    models = []
    for opset, bias, attrs in ((6, np.arange(4.0), {"broadcast": 1, "axis": 1}),
                               (7, np.arange(4.0).reshape(4, 1, 1), {})):
        b = numpy_helper.from_array(bias.astype(np.float32), "b")
        nodes = [helper.make_node("Conv", ["x", "w"], ["c"]),
                 helper.make_node("Add", ["c", "b"], ["a"], **attrs),
                 helper.make_node("Add", ["a", "b"], ["a2"], **attrs),  # the same bias, twice
                 helper.make_node("Conv", ["a2", "w2"], ["y"])]
        graph = helper.make_graph(nodes, "g", x, [helper.make_tensor_value_info("y", F, [1, 4, 6, 6])], [w, w2, b])
        models.append(helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)]))
    old, new = models
    assert [layer.layer.name for layer in eyesim.estimate(old, CHIP).layers] == ["Conv_0", "Conv_3"]  # as in the file
    up = upgraded(old)
    assert [n.op_type for n in up.graph.node].count("Unsqueeze") == 1
    image = {"x": np.random.default_rng(3).normal(size=(1, 3, 8, 8)).astype(np.float32)}
    runs = [ort.InferenceSession(m.SerializeToString()).run(None, image)[0] for m in (up, new)]
    np.testing.assert_allclose(runs[0], runs[1], rtol=1e-6)


def test_an_opset_6_model_with_external_data_is_read_from_any_folder(tmp_path, monkeypatch):
    old, new = twins()
    (tmp_path / "model").mkdir()
    (tmp_path / "elsewhere").mkdir()
    for name, model in (("old", old), ("new", new)):
        onnx.save(model, str(tmp_path / "model" / f"{name}.onnx"), save_as_external_data=True,
                  all_tensors_to_one_file=True, location=f"{name}.bin", size_threshold=0)
    monkeypatch.chdir(tmp_path / "elsewhere")
    found = [layers(eyesim.estimate(tmp_path / "model" / f"{name}.onnx", CHIP, batch=2)) for name in ("old", "new")]
    assert found[0] == found[1] and found[0][0]["density"]["weights_kind"] == "measured"  # read beside the model


def test_what_the_converter_cannot_upgrade_is_refused_naming_why(tmp_path):
    ins = [helper.make_tensor_value_info(name, F, [1, 2, 3, 4]) for name in ("x", "w", "r")]
    lstm = helper.make_graph([helper.make_node("LSTM", ["x", "w", "r"], ["y"], name="lstm")], "g", ins,
                             [helper.make_tensor_value_info("y", F, [1, 2, 3, 4])])
    unranked = helper.make_graph([helper.make_node("Conv", ["x", "w"], ["c"], name="conv"),
                                  helper.make_node("Add", ["c", "b"], ["y"], name="bias", broadcast=1, axis=1)], "g",
                                 [helper.make_tensor_value_info("x", F, [1, 3, 8, 8]),
                                  helper.make_tensor_value_info("b", F, None)],  # of unknown rank
                                 [helper.make_tensor_value_info("y", F, [1, 4, 6, 6])],
                                 [numpy_helper.from_array(np.ones((4, 3, 3, 3), np.float32), "w")])
    for name, graph, reason in (
            ("lstm", lstm, "older than 7, the oldest eyesim reads, and ONNX's version converter could not upgrade it: "
                           "No Adapter From Version $6 for LSTM"),
            ("unranked", unranked, "Add node 'bias' (opset < 7) broadcasts its second input from axis 1, and the "
                                   "ranks of its inputs are not known")):
        onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 6)]), str(tmp_path / f"{name}.onnx"))
        done = CliRunner().invoke(main, ["estimate", str(tmp_path / f"{name}.onnx"), "--hw", CHIP])
        line = done.output.strip()
        assert done.exit_code == 2 and "\n" not in line and reason in line and ".h:" not in line, line


def test_an_old_model_failing_the_checker_is_refused_by_the_checker(tmp_path):
    gemm = helper.make_graph([helper.make_node("Gemm", ["a", "b"], ["y"], name="fc")], "g",
                             [helper.make_tensor_value_info(n, F, [2, 2]) for n in ("a", "b")],
                             [helper.make_tensor_value_info("y", F, [2, 2])])  # Gemm-6 needs its C input
    path = tmp_path / "gemm.onnx"
    onnx.save(helper.make_model(gemm, opset_imports=[helper.make_opsetid("", 6)]), str(path))
    with pytest.raises(EyesimError, match=r"gemm\.onnx: fails the ONNX checker: .*input size 2 not in range"):
        eyesim.estimate(path, CHIP)
