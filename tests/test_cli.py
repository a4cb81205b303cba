"""The command line: output files, and one-line errors with exit code 2 for every kind of bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import onnx
import pytest
from click.testing import CliRunner
from onnx import TensorProto, helper

from eyesim.cli import main
from tests.cli_support import assert_one_line_error

ROOT = Path(__file__).resolve().parent.parent
ALEXNET = str(ROOT / "models_onnx" / "alexnet.onnx")
CHIP = str(ROOT / "hwconfigs" / "eyeriss.yaml")


def run(*args: str):
    return CliRunner().invoke(main, list(args))




def test_estimate_prints_table_and_writes_csv_and_json(tmp_path):
    csv, js = tmp_path / "r.csv", tmp_path / "r.json"
    res = run("estimate", ALEXNET, "--hw", CHIP, "--batch", "2", "-o", str(csv), "-o", str(js))
    assert res.exit_code == 0, res.output
    assert "TOTAL" in res.stdout and "conv1" in res.stdout and "10^6 MAC units" in res.stdout
    data = json.loads(js.read_text())
    assert data["batch"] == 2
    assert csv.read_text().splitlines()[-1].startswith("TOTAL")


def test_pinned_mapping_file_is_used(tmp_path):
    pin = tmp_path / "map.yaml"
    pin.write_text("conv1: {m: 96, n: 1, e: 7, p: 16, q: 1, r: 1, t: 2}\n")
    js = tmp_path / "r.json"
    res = run("estimate", ALEXNET, "--hw", CHIP, "--mapping", str(pin), "-o", str(js), "--quiet")
    assert res.exit_code == 0, res.output
    layer = json.loads(js.read_text())["layers"][0]
    assert layer["mapping"] == {"m": 96, "n": 1, "e": 7, "p": 16, "q": 1, "r": 1, "t": 2}
    assert layer["mapping_source"] == "pinned" and layer["active_pes"] == 154


def test_missing_model_file():
    assert_one_line_error(run("estimate", "nope.onnx", "--hw", CHIP), "nope.onnx")


def test_file_that_is_not_onnx(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_text("this is not a protobuf\n" * 20)
    assert_one_line_error(run("estimate", str(bad), "--hw", CHIP), "bad.onnx")


def test_truncated_onnx(tmp_path):
    data = Path(ROOT / "models_onnx" / "resnet50.onnx").read_bytes()
    cut = tmp_path / "cut.onnx"
    cut.write_bytes(data[: len(data) // 3])
    assert_one_line_error(run("estimate", str(cut), "--hw", CHIP), "cut.onnx")


def test_empty_graph(tmp_path):
    graph = helper.make_graph([], "empty", [], [])
    path = tmp_path / "empty.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)
    assert_one_line_error(run("estimate", str(path), "--hw", CHIP), "empty.onnx")


def test_shapes_that_inference_cannot_fill(tmp_path):
    # The conv's input comes through a Reshape whose target shape is only known at run time.
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3 * 8 * 8])
    shape = helper.make_tensor_value_info("shape", TensorProto.INT64, [4])
    w = helper.make_tensor_value_info("w", TensorProto.FLOAT, [4, 3, 3, 3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    nodes = [helper.make_node("Reshape", ["x", "shape"], ["x4"], name="reshape"),
             helper.make_node("Conv", ["x4", "w"], ["y"], name="conv")]
    graph = helper.make_graph(nodes, "dyn", [x, shape, w], [y])
    path = tmp_path / "dyn.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)
    assert_one_line_error(run("estimate", str(path), "--hw", CHIP), "conv")


def test_layer_that_no_mapping_fits(tmp_path):
    hw = tmp_path / "tiny.yaml"
    hw.write_text(Path(CHIP).read_text().replace("rows: 12", "rows: 8").replace("size_kb: 108", "size_kb: 8.2"))
    assert_one_line_error(run("estimate", ALEXNET, "--hw", str(hw)), "conv1", "array", "nor as slices")


def test_bad_hardware_file(tmp_path):
    hw = tmp_path / "bad.yaml"
    hw.write_text(Path(CHIP).read_text().replace("size_kb: 108", "size_kb: -4"))
    assert_one_line_error(run("estimate", ALEXNET, "--hw", str(hw)), "glb.size_kb", "bad.yaml")


def test_missing_hardware_file():
    assert_one_line_error(run("estimate", ALEXNET, "--hw", "nothere.yaml"), "nothere.yaml")


def test_bad_mapping_file(tmp_path):
    pin = tmp_path / "map.yaml"
    pin.write_text("conv1: {m: 96, n: 1}\n")
    assert_one_line_error(run("estimate", ALEXNET, "--hw", CHIP, "--mapping", str(pin)), "missing e")


def test_bad_output_suffix(tmp_path):
    assert_one_line_error(run("estimate", ALEXNET, "--hw", CHIP, "-o", str(tmp_path / "r.txt")), ".json or .csv")


def test_bad_batch():
    res = run("estimate", ALEXNET, "--hw", CHIP, "--batch", "0")
    assert res.exit_code == 2 and "batch" in res.stderr


@pytest.mark.parametrize("debug", [False, True])
def test_real_process_error_output(tmp_path, debug):
    """A real ``eyesim`` process: one line and exit 2, the traceback only with --debug."""
    args = [sys.executable, "-m", "eyesim", *(["--debug"] if debug else []), "estimate", "nope.onnx", "--hw", CHIP]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith("eyesim: error:")
    assert ("Traceback" in proc.stderr) == debug


def test_bits_density_and_time_reach_the_outputs(tmp_path):
    js = tmp_path / "r.json"
    res = run("estimate", ALEXNET, "--hw", CHIP, "--bits", "weights=8,ifmap=8,psum=16", "--density", "ifmap=0.5",
              "--density", "conv3.ifmap=0.3", "-o", str(js))
    assert res.exit_code == 0, res.output
    data = json.loads(js.read_text())
    assert data["bits"] == {"weights": 8, "ifmap": 8, "psum": 16}
    conv3 = data["layers"][2]
    assert conv3["density"]["ifmap"] == 0.3 and conv3["macs_executed"] < conv3["macs"]
    assert set(conv3["time"]) == {"compute_cycles", "setup_cycles", "dram_cycles", "cycles", "latency_s", "bound"}
    assert {"latency_s", "fps", "power_w", "energy_j"} <= set(data["total"])
    assert "frames/s" in res.stdout


@pytest.mark.parametrize(("args", "needle"), [
    (["--bits", "weights=0"], "from 1 to 32"),
    (["--bits", "ifmap=40"], "from 1 to 32"),
    (["--bits", "weights"], "KEY=VALUE"),
    (["--bits", "weights=eight"], "whole number"),
    (["--density", "ifmap=1.2"], "from 0 to 1"),
    (["--density", "ifmap=-0.1"], "from 0 to 1"),
    (["--density", "conv99.ifmap=0.5"], "conv99"),
    (["--samples", "nothere.npz"], "nothere.npz"),
])
def test_bad_sparsity_and_bitwidth_options(args, needle):
    assert_one_line_error(run("estimate", ALEXNET, "--hw", CHIP, *args), needle)


def test_samples_for_a_shape_only_model_say_weights_are_needed(tmp_path):
    import numpy as np

    np_path = tmp_path / "s.npy"
    np.save(np_path, np.zeros((2, 3, 227, 227), dtype=np.float32))
    assert_one_line_error(run("estimate", ALEXNET, "--hw", CHIP, "--samples", str(np_path)), "shape-only")


@pytest.mark.parametrize(("text", "needle"), [
    ("\x00\xff\xfe binary", "not a text file"),
    ("conv1: {m: 96, n: 1, e: 7, p: 16, q: 1, r: 1, t: 2}\nconv1: {m: 96, n: 1, e: 7, p: 16, q: 1, r: 1, t: 1}\n",
     "duplicate key"),
    ("conv1: {m: 10000000000000000000000, n: 1, e: 7, p: 16, q: 1, r: 1, t: 2}\n", "from 1 to"),
])
def test_broken_mapping_files(tmp_path, text, needle):
    pin = tmp_path / "map.yaml"
    pin.write_bytes(text.encode("latin-1"))
    assert_one_line_error(run("estimate", ALEXNET, "--hw", CHIP, "--mapping", str(pin)), needle)


@pytest.mark.parametrize(("args", "needle"), [
    (["-o", "/nonexistent-folder/x.csv"], "does not exist"),
    (["--plot", "energy.jpg"], ".png or .svg"),
    (["--bits", ""], "KEY=VALUE"),
    (["--bits", "weights=8,weights=4"], "twice"),
    (["--density", "ifmap=0.4", "--density", "ifmap=0.3"], "twice"),
])
def test_outputs_and_options_are_checked_before_any_work(args, needle):
    assert_one_line_error(run("estimate", ALEXNET, "--hw", CHIP, *args), needle)


def test_huge_hardware_sizes_are_refused(tmp_path):
    hw = tmp_path / "huge.yaml"
    hw.write_text(Path(CHIP).read_text().replace("size_kb: 108", "size_kb: 1.0e+16"))
    assert_one_line_error(run("estimate", ALEXNET, "--hw", str(hw)), "glb.size_kb", "at most")
