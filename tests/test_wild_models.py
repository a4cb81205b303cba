"""Models from the wild (issue 13): a small ViT, a U-Net, a 1-D audio net and a detector with symbolic H x W,
exported at opsets 13 and 17 and with the dynamo exporter, estimated with the MACs onnxruntime's shapes give;
and products of two activations (MatMul, Gemm, Einsum) as layers (DESIGN.md, "Layers")."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import eyesim
from eyesim.errors import EyesimError
from eyesim.workload.onnx import load_workload
from tests.mac_count import count_macs

pytest.importorskip("torch")
from tests.wild_models import EXPORTERS, WILD, exported  # noqa: E402  (needs torch)

ROOT = Path(__file__).resolve().parent.parent
CHIP = ROOT / "hwconfigs" / "eyeriss.yaml"


def _shapes(name: str) -> dict[str, tuple[int, ...]]:
    """The example shape, given for a model exported with symbolic dims."""
    case = WILD[name]
    return {"x": case.shape} if case.symbolic else {}


@pytest.mark.parametrize("exporter", EXPORTERS)
@pytest.mark.parametrize("name", sorted(WILD))
def test_mac_total_matches_onnxruntime(name, exporter):
    """eyesim's MAC total equals the independent count from the shapes onnxruntime produces."""
    model = exported(name, exporter)
    shapes = _shapes(name)
    result = eyesim.estimate(model, CHIP, input_shapes=shapes or None)
    assert sum(lr.energy.macs for lr in result.layers) == count_macs(model, shapes).total
    ops = {lr.layer.op for lr in result.layers}
    if name == "vit":
        assert "MatMul(act)" in ops
    if name == "unet":
        assert "ConvTranspose" in ops
    if name == "audio":
        assert any(lr.slices is not None for lr in result.layers)  # the 80-tap filter runs as slices


def test_detector_needs_its_shape():
    """Symbolic H x W: refused with the input named and the option to give; accepted with it."""
    model = exported("detector", "opset17")
    with pytest.raises(EyesimError, match="--input-shape x="):
        load_workload(model)
    assert load_workload(model, input_shapes={"x": (1, 3, 64, 96)}).layers[0].H > 64


def test_detector_cli_input_shape(tmp_path):
    """The same from the command line: --input-shape NAME=d0,d1,..."""
    from tests.hostile import run_cli

    path = tmp_path / "det.onnx"
    onnx.save(exported("detector", "opset13"), path)
    out = run_cli(["estimate", str(path), "--hw", str(CHIP), "--input-shape", "x=1,3,32,48", "-o",
                   str(tmp_path / "r.json")])
    assert out.code == 0, out.stderr
    assert (tmp_path / "r.json").is_file()


def test_vit_samples_measure_operand_densities():
    """Samples measure the second operand's density like any fmap's; it is stored compressed as an fmap."""
    model = exported("vit", "opset17")
    x = np.random.default_rng(0).standard_normal((4, 3, 32, 32)).astype(np.float32)
    result = eyesim.estimate(model, CHIP, samples=x)
    acts = [lr for lr in result.layers if lr.layer.op == "MatMul(act)"]
    assert len(acts) == 4
    for lr in acts:
        assert lr.density.kinds[0] == "measured" and lr.density.source.startswith("weights: samples")
        assert lr.layer.G == 2 and lr.layer.N == 16  # heads x batch groups; 16 tokens share the operand


def _two_acts(op: str, a_shape, b_shape, **attrs) -> onnx.ModelProto:
    """x and y through Relu, then one product node ``op`` of the two activations."""
    nodes = [helper.make_node("Relu", ["a"], ["ra"], name="ra"), helper.make_node("Relu", ["b"], ["rb"], name="rb"),
             helper.make_node(op, ["ra", "rb"], ["y"], name="prod", **attrs)]
    graph = helper.make_graph(nodes, "prod", [helper.make_tensor_value_info("a", TensorProto.FLOAT, a_shape),
                                              helper.make_tensor_value_info("b", TensorProto.FLOAT, b_shape)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None),
                               helper.make_tensor_value_info("rb", TensorProto.FLOAT, None)])  # b is data
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


PRODUCTS = [
    ("MatMul", [2, 3, 5, 4], [2, 3, 4, 6], {}, dict(N=5, G=6, C=4, M=6)),
    ("MatMul", [3, 5, 4], [4, 6], {}, dict(N=5, G=3, C=4, M=6)),
    ("MatMul", [1, 5, 4], [3, 4, 6], {}, dict(N=5, G=3, C=4, M=6)),
    ("MatMul", [4], [2, 4, 6], {}, dict(N=1, G=2, C=4, M=6)),
    ("MatMul", [5, 4], [4], {}, dict(N=5, G=1, C=4, M=1)),
    ("Gemm", [5, 4], [4, 6], {}, dict(N=5, G=1, C=4, M=6)),
    ("Gemm", [4, 5], [6, 4], {"transA": 1, "transB": 1}, dict(N=5, G=1, C=4, M=6)),
    ("Einsum", [2, 3, 5, 4], [2, 3, 7, 4], {"equation": "bhqd,bhkd->bhqk"}, dict(N=5, G=6, C=4, M=7)),
    ("Einsum", [2, 3, 5, 7], [2, 3, 7, 4], {"equation": "bhqk,bhkd->bhqd"}, dict(N=5, G=6, C=7, M=4)),
    ("Einsum", [4, 5], [4, 6], {"equation": "kq,kn->qn"}, dict(N=5, G=1, C=4, M=6)),
]


@pytest.mark.parametrize(("op", "a", "b", "attrs", "dims"), PRODUCTS)
def test_products_of_two_activations(op, a, b, attrs, dims):
    """Groups = leading dims, rows = batch role, K = channels; MACs equal onnxruntime's; values counted exactly."""
    model = _two_acts(op, a, b, **attrs)
    batch = a[0] if len(a) == 4 else 1  # --batch sets dim 0 of a 4-D input
    layer = load_workload(model, batch=batch).layers[0]
    assert {k: getattr(layer, k) for k in dims} == dims
    assert layer.op == f"{op}(act)" and layer.act_operand
    assert layer.charged_macs == count_macs(model).total
    rng = np.random.default_rng(1)
    samples = {"a": rng.standard_normal(a).astype(np.float32), "b": rng.standard_normal(b).astype(np.float32)}
    from eyesim.cost.values import value_counts

    io = load_workload(model, batch=batch).io["prod"]
    ra, rb = np.maximum(samples["a"], 0), np.maximum(samples["b"], 0)
    found = value_counts(ra, np.zeros(1), rb, layer, io, (16, 16))
    brute = _brute_executed(op, ra, rb, attrs)
    assert found.executed == brute
    assert found.macs == layer.macs


def _brute_executed(op: str, a: np.ndarray, b: np.ndarray, attrs: dict) -> int:
    """Products of two non-zero operands, counted with numpy's own product of the 0/1 masks."""
    a, b = (a != 0).astype(np.int64), (b != 0).astype(np.int64)
    if op == "Einsum":
        return int(np.einsum(attrs["equation"], a, b).sum())
    if op == "Gemm":
        a, b = (a.T if attrs.get("transA") else a), (b.T if attrs.get("transB") else b)
    return int(np.matmul(a, b).sum())


def test_operand_bits_and_density_by_tensor_name():
    """The second operand moves at the fmap width and is compressed as an fmap; its tensor's density applies."""
    model = _two_acts("MatMul", [1, 2, 8, 4], [1, 2, 4, 8])
    hw = eyesim.load_hardware(CHIP)
    result = eyesim.estimate(model, hw, bits={"weights": 8, "ifmap": 16}, densities={"rb": 0.25})
    layer = result.layers[0]
    assert layer.density.weights == 0.25 and layer.density.kinds[0] == "given"
    plain = eyesim.estimate(model, hw, bits={"weights": 16, "ifmap": 16}, densities={"rb": 0.25})
    assert layer.energy.total == pytest.approx(plain.layers[0].energy.total)  # the operand is 16-bit either way
    assert layer.effects.weights_dram == 1.0  # computed from the input by no-MAC ops: the image, never coded
    vit = eyesim.estimate(exported("vit", "opset17"), hw, densities={"weights": 0.1})
    for lr in (lr for lr in vit.layers if lr.layer.act_operand):  # coded as an fmap (run-length), dense
        assert lr.effects.weights_dram == pytest.approx(vit.layers[0].effects.ofmap_dram, rel=0.05)
        assert lr.density.weights == 1.0  # the global weights density is for weights, not activations


EINSUM_REFUSED = ["bij,bjk", "ii,ij->j", "bij,bjk->bik,", "...ij,...jk->...ik", "ij,jk->ki", "ij,kl->ijkl",
                  "bij,bj->bi", "ij,ij->ij", "i,i->"]


@pytest.mark.parametrize("equation", EINSUM_REFUSED)
def test_einsum_that_is_no_batched_product_refused(equation):
    """Only batched matrix products: anything else is refused on one line naming the node and the rule."""
    letters = equation.split("->")[0].split(",")
    shapes = [[3] * len(t.replace("...", "x")) for t in letters[:2]] + [[3, 3]] * (2 - len(letters[:2]))
    model = _two_acts("Einsum", shapes[0], shapes[1], equation=equation)
    with pytest.raises(EyesimError) as err:
        load_workload(model)
    assert "\n" not in str(err.value)


def test_weighted_einsum_keeps_weight_width():
    """An Einsum with a constant second operand is a layer with weights (op 'Einsum')."""
    w = numpy_helper.from_array(np.ones((2, 4, 6), dtype=np.float32), "w")
    node = helper.make_node("Einsum", ["a", "w"], ["y"], name="e", equation="bqd,bdn->bqn")
    graph = helper.make_graph([node], "e", [helper.make_tensor_value_info("a", TensorProto.FLOAT, [2, 5, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    layer = load_workload(model, batch=2).layers[0]
    assert (layer.op, layer.act_operand, layer.G, layer.N) == ("Einsum", False, 2, 5)


# Hostile inputs through the command line (tests/hostile.py): one line, exit 2, nothing written.
EINSUM_HOSTILE = [*EINSUM_REFUSED, "bhqd,bhkd", "bhqd,bhkd->bhkq", "bqd,bkd->bqkd",
                  "bqd,bkd->b", "qd,kd->", "abc,abd->abcd", "ab,ab->ab", "xyz,xzy->xyy", "bhqd,bhkd->bhqkz",
                  "b q d,b k d->b q k z", "1,2->3", "ij,jk->", "ij->ij"]
CONVT_HOSTILE = [
    ({"pads": [3, 3, 3, 3]}, "ConvTranspose"), ({"pads": [1, 1]}, "pads"), ({"strides": [0, 1]}, "strides"),
    ({"strides": [1, 1, 1]}, "strides"), ({"auto_pad": "BOGUS"}, "auto_pad"), ({"kernel_shape": [2, 2]}, "kernel"),
    ({"group": 3}, "group"), ({"output_padding": [2, 0], "strides": [2, 1]}, "output_padding"),
    ({"output_padding": [-1, 0]}, "output_padding"), ({"dilations": [0, 1]}, "dilation"),
    ({"output_shape": [9, 9, 9]}, "output_shape"), ({"pads": [-1, 0, 0, 0]}, "pads"),
]


def _einsum_file(path: Path, equation: str) -> Path:
    letters = equation.split("->")[0].split(",")
    shapes = [[3] * len(t.replace("...", "x").replace(" ", "")) or [3] for t in letters[:2]] + [[3, 3]] * (
        2 - len(letters[:2]))
    onnx.save(_two_acts("Einsum", shapes[0], shapes[1], equation=equation), path)
    return path


@pytest.mark.parametrize("equation", EINSUM_HOSTILE)
def test_cli_refuses_einsum_that_is_no_batched_product(tmp_path, equation):
    from tests.hostile import run_cli

    model = _einsum_file(tmp_path / "e.onnx", equation)
    run_cli(["estimate", str(model), "--hw", str(CHIP)], watch=tmp_path).refused("Einsum")


@pytest.mark.parametrize(("attrs", "needle"), CONVT_HOSTILE)
def test_cli_refuses_bad_conv_transpose(tmp_path, attrs, needle):
    from tests.hostile import run_cli
    from tests.test_conv_transpose import convt_model

    path = tmp_path / "t.onnx"
    onnx.save(convt_model([1, 2, 3, 3], [2, 1, 3, 3], **attrs), path)
    run_cli(["estimate", str(path), "--hw", str(CHIP)], watch=tmp_path).refused(needle)


@pytest.mark.parametrize(("a", "b"), [([2, 3, 5, 4], [2, 3, 5, 6]), ([3, 5, 4], [2, 4, 6]), ([5, 4], [6]),
                                      ([2, 5, 4], [3, 4, 6])])
def test_cli_refuses_products_that_do_not_agree(tmp_path, a, b):
    from tests.hostile import run_cli

    path = tmp_path / "m.onnx"
    onnx.save(_two_acts("MatMul", a, b), path)
    run_cli(["estimate", str(path), "--hw", str(CHIP), "--input-shape", f"a={','.join(map(str, a))}",
             "--input-shape", f"b={','.join(map(str, b))}"], watch=tmp_path).refused("prod")
