"""Hostile ONNX inputs and sizes: counts that would overflow int64, external data that lies, invalid graphs that
onnxruntime rejects, inputs whose first dim is not the batch, and sample files that are not samples.

Every hostile case runs ``eyesim estimate`` in a forked child (tests/hostile.py): exit 2, one line, in
bounds of time and memory. A few API checks show what is accepted stays exact.
"""

from __future__ import annotations

import json
import math
import os
import zipfile
from pathlib import Path

import numpy as np
import onnx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

import eyesim.estimator  # noqa: F401 - imported once here, so forked cases measure only their own work
from eyesim.errors import EyesimError
from eyesim.estimator import estimate
from eyesim.workload.limits import MAX_DIM, MAX_WORDS, largest_batch, layer_sizes
from eyesim.workload.onnx.load import load_workload
from tests.hostile import run_cli

ROOT = Path(__file__).resolve().parent.parent
CHIP = str(ROOT / "hwconfigs" / "eyeriss.yaml")
VGG16 = str(ROOT / "models_onnx" / "vgg16.onnx")
LENET = str(ROOT / "models_onnx" / "lenet5-mnist.onnx")
F = TensorProto.FLOAT
GIB = 2**30


def vi(name: str, shape: list | None, elem: int = F) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, elem, shape)


def save(path: Path, nodes: list, inputs: list, inits: list = (), opset: int = 13, out: int = F) -> Path:
    graph = helper.make_graph(nodes, "g", inputs, [vi("y", None, out)], initializer=list(inits))
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)]), str(path))
    return path


def conv(path: Path, x: list, w: list, elem: int = F, **attrs: object) -> Path:
    """A shape-only Conv (its weight a typed graph input)."""
    return save(path, [helper.make_node("Conv", ["x", "w"], ["y"], name="conv", **attrs)],
                [vi("x", x, elem), vi("w", w, elem)])


def matmul(path: Path, x: list, w: list, elem: int = F) -> Path:
    return save(path, [helper.make_node("MatMul", ["x", "w"], ["y"], name="mm")], [vi("x", x, elem), vi("w", w, elem)])


def estimate_cli(model: Path | str, *extra: str) -> list[str]:
    return ["estimate", str(model), "--hw", CHIP, "--quiet", *extra]


# ---------------------------------------------------------------- counts that would not stay exact

BATCHES = [10**11, 10**15, MAX_WORDS, 2**57, 2**62, 2**63 - 1, 2**63, 2**64 + 1, 10**30]


@pytest.mark.parametrize("batch", BATCHES)
def test_batch_too_large_is_refused_with_the_largest_batch(tmp_path: Path, batch: int) -> None:
    model = conv(tmp_path / "c.onnx", ["N", 3, 32, 32], [64, 3, 3, 3])
    allowed = largest_batch(load_workload(model))
    run_cli(estimate_cli(model, "--batch", str(batch)), watch=tmp_path).refused(
        f"--batch {batch} is too large", f"the largest batch it allows is {allowed:,}")


@pytest.mark.parametrize("batch", ["10000000000", "9223372036854775808"])
def test_vgg16_huge_batch_is_refused(batch: str) -> None:
    run_cli(estimate_cli(VGG16, "--batch", batch)).refused("--batch", "the largest batch it allows is 38,956,619")


def test_largest_batch_stays_exact(tmp_path: Path) -> None:
    model = conv(tmp_path / "c.onnx", ["N", 3, 32, 32], [64, 3, 3, 3])
    batch = largest_batch(load_workload(model))
    result = estimate(model, CHIP, batch=batch)
    (layer,) = result.layers
    assert layer.layer.macs == batch * 64 * 3 * 9 * 30 * 30 <= MAX_WORDS
    assert result.to_dict()["total"]["macs"] == layer.layer.macs
    with pytest.raises(EyesimError, match="largest batch it allows"):
        estimate(model, CHIP, batch=batch + 1)


@settings(max_examples=15, deadline=None)
@given(channels=st.integers(1, 2**20), filters=st.integers(1, 512), size=st.integers(3, 64),
       kernel=st.integers(1, 3))
def test_largest_batch_is_the_boundary(tmp_path_factory: pytest.TempPathFactory, channels: int, filters: int,
                                       size: int, kernel: int) -> None:
    model = conv(tmp_path_factory.mktemp("b") / "c.onnx", ["N", channels, size, size],
                 [filters, channels, kernel, kernel])
    allowed = largest_batch(load_workload(model))
    assert max(layer_sizes(load_workload(model, allowed).layers[0]).values()) <= MAX_WORDS
    with pytest.raises(EyesimError, match=f"the largest batch it allows is {allowed:,}$"):
        load_workload(model, allowed + 1)


@pytest.mark.parametrize(("x", "w", "needle"), [
    ([1, 3, 8, 8], [10**10, 3, 3, 3], "M=10,000,000,000 is above"),
    ([1, 3, 8, 8], [MAX_DIM + 1, 3, 3, 3], f"M={MAX_DIM + 1:,} is above"),
    ([1, 3, MAX_DIM + 3, 3], [4, 3, 3, 3], f"H={MAX_DIM + 3:,} is above"),
    ([1, 3, 3, MAX_DIM + 3], [4, 3, 3, 3], f"W={MAX_DIM + 3:,} is above"),
    ([1, 3, 4096, 8], [MAX_DIM, 3, 3, 3], "E*M"),
    ([1, 2**50, 8, 8], [4, 2**50, 3, 3], "MACs, above 2^56"),
    ([1, 3, 2**40, 2**20], [4, 3, 3, 3], "values, above 2^56"),
    ([1, 2**62, 1, 1], [1, 2**62, 1, 1], "above 2^56"),
])
def test_layer_too_large_is_refused(tmp_path: Path, x: list, w: list, needle: str) -> None:
    run_cli(estimate_cli(conv(tmp_path / "c.onnx", x, w)), watch=tmp_path).refused(needle)


def test_dilated_strips_too_long_are_refused(tmp_path: Path) -> None:
    model = conv(tmp_path / "c.onnx", [1, 3, 2**17, 8], [4, 3, 3, 3], dilations=[2, 1])
    run_cli(estimate_cli(model), watch=tmp_path).refused("E*E*R")


@pytest.mark.parametrize(("x", "w", "needle"), [
    ([2**31, 2**31, 16], [16, 4], "values, above 2^56"),
    ([2**40, 16], [16, 2**20], "above 2^56"),
    ([4, 2**58], [2**58, 2], "above 2^56"),
])
def test_matmul_too_large_is_refused(tmp_path: Path, x: list, w: list, needle: str) -> None:
    run_cli(estimate_cli(matmul(tmp_path / "m.onnx", x, w)), watch=tmp_path).refused(needle)


def raw_tensor(dims: list, data: bytes) -> onnx.TensorProto:
    """An initializer ``w`` whose raw data need not fill its dims (onnx.helper would refuse to make it)."""
    tensor = TensorProto(name="w", data_type=F, raw_data=data)
    tensor.dims.extend(dims)
    return tensor


@pytest.mark.parametrize("dims", [[2**40, 2**40], [2**31, 2**31, 2**31], [2**63 - 1]])
def test_initializer_too_large_is_refused(tmp_path: Path, dims: list) -> None:
    weight = raw_tensor(dims, b"")  # dims alone: no data to read
    node = helper.make_node("MatMul", ["x", "w"], ["y"], name="mm")
    model = save(tmp_path / "m.onnx", [node], [vi("x", [1, dims[0]])], [weight])
    run_cli(estimate_cli(model), watch=tmp_path).refused("above 2^56")


@pytest.mark.parametrize(("data", "needle"), [(b"", "one and only one value field"), (bytes(10), "too small"),
                                            (bytes(433), "does not match its dims [4, 3, 3, 3]")])
def test_initializer_data_that_does_not_fill_its_dims_is_refused(tmp_path: Path, data: bytes, needle: str) -> None:
    weight = raw_tensor([4, 3, 3, 3], data)
    model = save(tmp_path / "m.onnx", [helper.make_node("Conv", ["x", "w"], ["y"], name="conv")],
                 [vi("x", [1, 3, 8, 8])], [weight])
    run_cli(estimate_cli(model), watch=tmp_path).refused("w", needle)


def test_flatten_whose_size_overflows_is_refused(tmp_path: Path) -> None:
    nodes = [helper.make_node("Flatten", ["x"], ["f"], name="flat", axis=0),
             helper.make_node("MatMul", ["f", "w"], ["y"], name="mm")]
    model = save(tmp_path / "f.onnx", nodes, [vi("x", [2**40, 2**30, 8]), vi("w", [8, 4])])
    run_cli(estimate_cli(model), watch=tmp_path).refused()


@pytest.mark.parametrize("shape", ["x=1,3,99999999999,99999999999", f"x=1,3,{2**63 - 1},8", f"x=1,3,{2**70},8"])
def test_input_shape_too_large_is_refused(tmp_path: Path, shape: str) -> None:
    model = conv(tmp_path / "c.onnx", ["N", 3, 8, 8], [4, 3, 3, 3])
    run_cli(estimate_cli(model, "--input-shape", shape), watch=tmp_path).refused("above 2^56")


# ---------------------------------------------------------------- external data


def external_model(folder: Path, dims: tuple[int, ...] = (4, 3, 3, 3), constant: bool = False, **info: str) -> Path:
    """A Conv whose weight (an initializer, or a Constant node's value) is external data described by ``info``."""
    tensor = TensorProto(name="w", data_type=F, data_location=TensorProto.EXTERNAL)
    tensor.dims.extend(dims)
    for key, value in info.items():
        entry = tensor.external_data.add()
        entry.key, entry.value = key, value
    nodes = [helper.make_node("Conv", ["x", "w"], ["y"], name="conv")]
    if constant:
        nodes.insert(0, helper.make_node("Constant", [], ["w"], name="weights", value=tensor))
    return save(folder / "model.onnx", nodes, [vi("x", [1, 3, 8, 8])], [] if constant else [tensor])


def sparse(path: Path, size: int) -> Path:
    with open(path, "wb") as file:
        file.truncate(size)
    return path


EXTENTS = [  # (file size, info, dims, needle)
    (3 * GIB + 16, {"offset": "0", "length": str(3 * GIB)}, (4, 3, 3, 3), "does not match the tensor's 432 bytes"),
    (6 * GIB + 16, {"offset": "0", "length": str(6 * GIB)}, (4, 3, 3, 3), "does not match"),
    (3 * GIB, {"offset": "0", "length": str(3 * GIB)}, (768, 1024, 32, 32), "above the 2,147,483,648 (2 GiB)"),
    (3 * GIB, {}, (768, 1024, 32, 32), "above the 2,147,483,648 (2 GiB)"),
    (100, {"offset": str(10**12), "length": "432"}, (4, 3, 3, 3), "past the end"),
    (500, {"offset": "100", "length": "432"}, (4, 3, 3, 3), "past the end"),
    (400, {}, (4, 3, 3, 3), "does not match"),
    (500, {"offset": "-1", "length": "432"}, (4, 3, 3, 3), "is not a whole number"),
    (500, {"offset": "abc"}, (4, 3, 3, 3), "is not a whole number"),
    (500, {"length": "9" * 30}, (4, 3, 3, 3), "is not a whole number"),
    (500, {"length": "4.32e2"}, (4, 3, 3, 3), "is not a whole number"),
]


@pytest.mark.parametrize(("size", "info", "dims", "needle"), EXTENTS)
def test_external_extent_is_checked_before_reading(tmp_path: Path, size: int, info: dict, dims: tuple,
                                                   needle: str) -> None:
    sparse(tmp_path / "w.bin", size)
    model = external_model(tmp_path, dims, location="w.bin", **info)
    watch = tmp_path if size < 2**20 else None  # the watcher would read a sparse file of GiBs to hash it
    run_cli(estimate_cli(model), watch=watch).refused("tensor 'w'", needle, seconds=2.0)


@pytest.mark.parametrize(("location", "needle"), [
    ("../outside.bin", "outside the model's folder"),
    ("sub/../../outside.bin", "outside the model's folder"),
    ("/etc/passwd", "absolute path"),
    ("/dev/zero", "absolute path"),
    ("C:\\weights.bin", "absolute path"),
    ("link.bin", "outside the model's folder"),
    ("", "names no location"),
    ("missing.bin", "does not exist"),
    ("folder", "not a regular file"),
    ("fifo", "not a regular file"),
    ("w\0.bin", "NUL byte"),
])
def test_external_location_is_refused(tmp_path: Path, location: str, needle: str) -> None:
    folder = tmp_path / "model"
    folder.mkdir()
    sparse(tmp_path / "outside.bin", 432)
    (folder / "link.bin").symlink_to(tmp_path / "outside.bin")
    (folder / "folder").mkdir()
    os.mkfifo(folder / "fifo")
    model = external_model(folder, location=location)
    run_cli(estimate_cli(model), watch=tmp_path).refused(needle, seconds=2.0)


def test_external_constant_outside_the_folder_is_refused(tmp_path: Path) -> None:
    model = external_model(tmp_path, constant=True, location="../../etc/passwd")
    run_cli(estimate_cli(model), watch=tmp_path).refused("outside the model's folder")


def test_good_external_data_is_read(tmp_path: Path) -> None:
    weights = np.zeros((4, 3, 3, 3), np.float32)
    weights[0] = 1.0
    (tmp_path / "w.bin").write_bytes(bytes(16) + weights.tobytes())
    model = external_model(tmp_path, location="w.bin", offset="16", length="432")
    (layer,) = estimate(model, CHIP).layers
    assert layer.density.weights == pytest.approx(0.25)


# ---------------------------------------------------------------- invalid graphs onnxruntime rejects


INVALID = [  # (attrs of the Conv, element type, needle)
    ({"pads": [-1, -1, -1, -1]}, F, "pads must not contain negative values"),
    ({"pads": [0, -2, 0, 0]}, F, "pads"),
    ({"strides": [0, 0]}, F, "strides must only contain positive values"),
    ({"strides": [1, -1]}, F, "strides"),
    ({"dilations": [0, 1]}, F, "dilations"),
    ({"kernel_shape": [5, 5]}, F, "kernel"),
    ({"group": 5}, F, "group"),
    ({"group": 0}, F, "group"),
    ({"auto_pad": "SIDEWAYS"}, F, "auto_pad"),
    ({}, TensorProto.INT64, "unsupported type: tensor(int64)"),
    ({}, TensorProto.INT32, "unsupported type: tensor(int32)"),
    ({}, TensorProto.STRING, "unsupported type"),
]


@pytest.mark.parametrize(("attrs", "elem", "needle"), INVALID)
def test_invalid_conv_is_refused(tmp_path: Path, attrs: dict, elem: int, needle: str) -> None:
    model = conv(tmp_path / "c.onnx", [1, 4, 8, 8], [4, 4, 3, 3], elem=elem, **attrs)
    run_cli(estimate_cli(model), watch=tmp_path).refused(needle)


@pytest.mark.parametrize(("op", "elem"), [("MatMul", TensorProto.INT64), ("MatMul", TensorProto.INT32),
                                          ("Gemm", TensorProto.INT64), ("Gemm", TensorProto.UINT64)])
def test_integer_layers_are_refused(tmp_path: Path, op: str, elem: int) -> None:
    node = helper.make_node(op, ["x", "w"], ["y"], name="fc")
    model = save(tmp_path / "i.onnx", [node], [vi("x", [2, 16], elem), vi("w", [16, 4], elem)], out=elem)
    run_cli(estimate_cli(model), watch=tmp_path).refused("values; eyesim models layers of float tensors")


def test_missing_weight_is_named(tmp_path: Path) -> None:
    model = save(tmp_path / "m.onnx", [helper.make_node("Conv", ["x", "w"], ["y"], name="conv")],
                 [vi("x", [1, 3, 8, 8])])
    run_cli(estimate_cli(model), watch=tmp_path).refused(
        "Conv node 'conv' reads 'w', which is no graph input, initializer or node output")


def test_unsorted_nodes_are_named(tmp_path: Path) -> None:
    nodes = [helper.make_node("Conv", ["r", "w"], ["y"], name="conv"), helper.make_node("Relu", ["x"], ["r"])]
    model = save(tmp_path / "u.onnx", nodes, [vi("x", [1, 3, 8, 8]), vi("w", [4, 3, 3, 3])])
    run_cli(estimate_cli(model), watch=tmp_path).refused("not in topological order", "reads 'r' before node")


def reshape_model(path: Path) -> Path:
    """Conv, then a Reshape whose constant shape hard-codes batch 1 as [1, 288] (not rewritable: not batch-led)."""
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv"),
             helper.make_node("Reshape", ["c", "s"], ["r"], name="flat"),
             helper.make_node("Gemm", ["r", "fw"], ["y"], name="fc", transB=1)]
    inits = [numpy_helper.from_array(np.array([1, 288], np.int64), "s")]
    return save(path, nodes, [vi("x", [1, 3, 8, 8]), vi("w", [8, 3, 3, 3]), vi("fw", [10, 288])], inits)


def test_reshape_that_drops_values_is_refused(tmp_path: Path) -> None:
    model = reshape_model(tmp_path / "r.onnx")
    run_cli(estimate_cli(model, "--input-shape", "x=1,3,10,10"), watch=tmp_path).refused("Reshape node 'flat'")


# ---------------------------------------------------------------- the batch and --input-shape


def test_time_major_input_is_not_rebatched(tmp_path: Path) -> None:
    model = matmul(tmp_path / "t.onnx", [50, 2, 16], [16, 64])
    assert sum(lr.layer.macs for lr in estimate(model, CHIP).layers) == 50 * 2 * 16 * 64 == 102_400
    result = estimate(model, CHIP, input_shapes={"x": (50, 8, 16)})
    assert sum(lr.layer.macs for lr in result.layers) == 50 * 8 * 16 * 64


def test_input_shape_on_the_command_line(tmp_path: Path) -> None:
    model = matmul(tmp_path / "t.onnx", ["T", "B", 16], [16, 64])
    out = tmp_path / "out.json"
    done = run_cli(estimate_cli(model, "--input-shape", "x=50,8,16", "-o", str(out)))
    assert done.code == 0, done.stderr
    assert json.loads(out.read_text())["total"]["macs"] == 50 * 8 * 16 * 64


@pytest.mark.parametrize(("x", "args", "needle"), [
    ([50, 2, 16], ["--batch", "4"], "--batch 4 cannot apply to input 'x' ([50, 2, 16])"),
    (["T", "B", 16], ["--batch", "4"], "--input-shape x=d0,d1,..."),
    (["T", "B", 16], [], "input 'x' is ['T', 'B', 16]: give its shape with --input-shape x="),
    ([2, "T", 16], [], "input 'x' is [2, 'T', 16]: give its shape with --input-shape x="),
    ([-5, 2, 16], [], "input 'x' has the dims [-5, 2, 16]: each must be >= 1"),
    ([5, 0, 16], [], "input 'x' has the dims [5, 0, 16]: each must be >= 1"),
    ([None, 2, 16], ["--batch", "3"], "not clearly the batch"),
    (["T", "B", 16], ["--input-shape", "x=5,2,16", "--batch", "4"], "its shape is given by --input-shape"),
    (["T", "B", 16], ["--input-shape", "y=5,2,16"], "no data input 'y' (its data inputs: x)"),
    (["T", "B", 16], ["--input-shape", "x=5,2"], "2 dims given, but input 'x' has 3"),
    (["T", "B", 16], ["--input-shape", "x=5,0,16"], "whole numbers >= 1"),
    (["T", "B", 16], ["--input-shape", "x=5,two,16"], "whole numbers >= 1"),
    (["T", "B", 16], ["--input-shape", "x=5,-2,16"], "whole numbers >= 1"),
    (["T", "B", 16], ["--input-shape", "x"], "expected NAME=d0,d1"),
    (["T", "B", 16], ["--input-shape", "=5,2,16"], "expected NAME=d0,d1"),
    (["T", "B", 16], ["--input-shape", "x=5,2,16", "--input-shape", "x=5,2,16"], "given twice"),
    (["T", "B", 16], ["--input-shape", "x=5,2,16,"], "whole numbers >= 1"),
    (["T", "B", 16], ["--input-shape", "x=" + "9" * 5000], "whole numbers >= 1"),
])
def test_batch_that_cannot_apply_is_refused(tmp_path: Path, x: list, args: list, needle: str) -> None:
    model = matmul(tmp_path / "t.onnx", x, [16, 64])
    run_cli(estimate_cli(model, *args), watch=tmp_path).refused(needle)


@pytest.mark.parametrize("name", ["N", "batch", "batch_size", "B", "bs", "nBatch"])
def test_batch_named_first_dim_takes_the_batch(tmp_path: Path, name: str) -> None:
    (layer,) = load_workload(matmul(tmp_path / "b.onnx", [name, 16], [16, 64]), batch=6).layers
    assert layer.N == 6 and layer.macs == 6 * 16 * 64


def test_sweep_takes_input_shape(tmp_path: Path) -> None:
    model = matmul(tmp_path / "t.onnx", ["T", "B", 16], [16, 64])
    args = ["sweep", str(model), "--hw", CHIP, "--vary", "glb.size_kb=64", "--workers", "1", "--quiet",
            "-o", str(tmp_path / "s.csv")]
    run_cli([*args, "--input-shape", "x=5,2"]).refused("2 dims given")
    assert run_cli([*args, "--input-shape", "x=5,2,16"]).code == 0


# ---------------------------------------------------------------- sample files


def npy_header(shape: tuple, descr: str = "<f4") -> bytes:
    text = f"{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}".encode()
    text += b" " * (118 - len(text)) + b"\n"
    return b"\x93NUMPY\x01\x00" + len(text).to_bytes(2, "little") + text


def write_samples(path: Path, kind: str) -> Path:
    """A hostile samples file of the given kind."""
    good = np.zeros((2, 1, 28, 28), np.float32)
    makers = {
        "empty file": lambda: path.write_bytes(b""),
        "no samples": lambda: np.save(path, np.zeros((0, 1, 28, 28), np.float32)),
        "flat empty": lambda: np.save(path, np.zeros((0,), np.float32)),
        "scalar": lambda: np.save(path, np.float32(1)),
        "huge header": lambda: path.write_bytes(npy_header((10**11, 1, 28, 28)) + bytes(64)),
        "truncated": lambda: path.write_bytes(npy_header((2, 1, 28, 28)) + bytes(64)),
        "complex": lambda: np.save(path, good.astype(np.complex64)),
        "strings": lambda: np.save(path, np.array([["a"]])),
        "objects": lambda: np.save(path, np.array([None, 1], dtype=object), allow_pickle=True),
        "structured": lambda: np.save(path, np.zeros(2, dtype=[("a", "f4")])),
        "garbage": lambda: path.write_bytes(b"\x93NUMPY\x09\x00garbage"),
        "bad header": lambda: path.write_bytes(b"\x93NUMPY\x01\x00\x10\x00{'descr': 3}    \n"),
        "nan": lambda: np.save(path, np.full_like(good, np.nan)),
    }
    makers[kind]()
    return path


SAMPLES = [("empty file", "empty file"), ("no samples", "holds no samples"), ("flat empty", "do not fit"),
           ("scalar", "do not fit"), ("huge header", "above the 2,147,483,648"), ("truncated", "truncated"),
           ("complex", "must be numbers"), ("strings", "must be numbers"), ("objects", "must be numbers"),
           ("structured", "must be numbers"), ("garbage", "not a NumPy .npy array"),
           ("bad header", "not a NumPy .npy array"), ("nan", "NaN")]


@pytest.mark.parametrize(("kind", "needle"), SAMPLES)
def test_bad_samples_are_refused(tmp_path: Path, kind: str, needle: str) -> None:
    samples = write_samples(tmp_path / "s.npy", kind)
    run_cli(estimate_cli(LENET, "--samples", str(samples)), watch=tmp_path).refused(needle)


def zip_with(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


@pytest.mark.parametrize(("members", "needle"), [
    ({"y.npy": b""}, "no array 'x' (the model inputs); it has y"),
    ({}, "it has none"),
    ({"x.npy": npy_header((2, 1, 28, 28))}, "truncated"),
    ({"x.npy": npy_header((2, 1, 28, 28)) + bytes(6272), "y.npy": b"junk"}, "array 'y': not a NumPy .npy array"),
    ({"x.npy": npy_header((10**9, 1, 28, 28))}, "above the 2,147,483,648"),
    ({"x.npy": b"not numpy"}, "not a NumPy .npy array"),
])
def test_bad_npz_is_refused(tmp_path: Path, members: dict, needle: str) -> None:
    samples = zip_with(tmp_path / "s.npz", members)
    run_cli(estimate_cli(LENET, "--samples", str(samples)), watch=tmp_path).refused(needle)


def test_zip_bomb_is_refused_unread(tmp_path: Path) -> None:
    path = tmp_path / "bomb.npz"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive, archive.open("x.npy", "w",
                                                                                   force_zip64=True) as member:
        member.write(npy_header((3 * GIB // 3136, 1, 28, 28)))
        zeros = bytes(2**24)
        for _ in range(4):  # the first 64 MiB of its 3 GiB of zeros, a few kB compressed
            member.write(zeros)
    assert path.stat().st_size < 2**20
    run_cli(estimate_cli(LENET, "--samples", str(path)), watch=tmp_path).refused("above the 2,147,483,648")


def test_not_a_zip_npz_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.npz"
    path.write_bytes(b"PK\x03\x04" + bytes(40))
    run_cli(estimate_cli(LENET, "--samples", str(path)), watch=tmp_path).refused("not a NumPy .npy/.npz file")


def test_samples_count_is_exact_on_a_good_file(tmp_path: Path) -> None:
    x = np.random.default_rng(0).random((3, 1, 28, 28), np.float32)
    x[x < 0.5] = 0.0
    np.save(tmp_path / "x.npy", x)
    result = estimate(LENET, CHIP, samples=tmp_path / "x.npy")
    assert result.layers[0].density.ifmap == pytest.approx(np.count_nonzero(x) / x.size)
    assert math.isfinite(result.to_dict()["total"]["energy"]["total"])


def test_an_onnx_file_over_protobufs_limit_is_refused_before_reading(tmp_path: Path) -> None:
    sparse(tmp_path / "huge.onnx", 2**31 + 5)
    run_cli(estimate_cli(tmp_path / "huge.onnx")).refused("at most 2 GiB", seconds=2.0)
