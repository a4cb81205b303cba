"""Benchmark: a ViT-B/16 estimate (about 17.6 GMACs; issue 13, item 7) must stay under 1 s warm.

The model is torchvision's vit_b_16 exported with torch.onnx when torchvision is installed, else a
ViT-B/16-shaped ONNX graph written with onnx.helper (12 blocks, d = 768, 12 heads, 197 tokens, MLP 3072;
weights as typed graph inputs: only their shapes matter). warm: in-process, Numba compiled, a fresh
search cache each run; the median of several runs, of the import alone and of the whole estimate.
Run: python benchmarks/bench_vit.py [--runs 5]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import onnx
from onnx import TensorProto, helper, numpy_helper

import eyesim
from eyesim.workload.onnx import load_workload

ROOT = Path(__file__).resolve().parent.parent
HW = ROOT / "hwconfigs" / "eyeriss.yaml"  # the chip: its 16 x 16 patch filter runs as a 1 x 1 conv over patches
D, HEADS, TOKENS, HIDDEN, DEPTH, PATCH, IMAGE, CLASSES = 768, 12, 197, 3072, 12, 16, 224, 1000


class _Graph:
    """Nodes, weight inputs and small constants of the graph being written."""

    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.weights: list[onnx.ValueInfoProto] = []
        self.consts: list[onnx.TensorProto] = []
        self.count = 0

    def op(self, op_type: str, inputs: list[str], **attrs) -> str:
        self.count += 1
        out = f"{op_type.lower()}_{self.count}"
        self.nodes.append(helper.make_node(op_type, inputs, [out], name=out, **attrs))
        return out

    def weight(self, name: str, dims: list[int]) -> str:
        self.weights.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, dims))
        return name

    def const(self, name: str, values: list[int]) -> str:
        self.consts.append(numpy_helper.from_array(__import__("numpy").array(values, dtype="int64"), name))
        return name


def _linear(g: _Graph, x: str, name: str, k: int, n: int) -> str:
    return g.op("Add", [g.op("MatMul", [x, g.weight(f"{name}.w", [k, n])]), g.weight(f"{name}.b", [n])])


def _norm(g: _Graph, x: str, name: str) -> str:
    return g.op("LayerNormalization", [x, g.weight(f"{name}.g", [D]), g.weight(f"{name}.b", [D])], axis=-1)


def _block(g: _Graph, x: str, i: int) -> str:
    """Pre-norm attention (Q·Kᵀ and A·V multiply two activations) and a GELU MLP."""
    qkv = _linear(g, _norm(g, x, f"b{i}.n1"), f"b{i}.qkv", D, 3 * D)
    heads = g.op("Transpose", [g.op("Reshape", [qkv, g.const(f"b{i}.s1", [1, TOKENS, 3, HEADS, D // HEADS])])],
                 perm=[2, 0, 3, 1, 4])
    q, k, v = (g.op("Gather", [heads, g.const(f"b{i}.i{j}", j)], axis=0) for j in range(3))
    scores = g.op("Softmax", [g.op("MatMul", [q, g.op("Transpose", [k], perm=[0, 1, 3, 2])])], axis=-1)
    context = g.op("Transpose", [g.op("MatMul", [scores, v])], perm=[0, 2, 1, 3])
    x = g.op("Add", [x, _linear(g, g.op("Reshape", [context, g.const(f"b{i}.s2", [1, TOKENS, D])]),
                                f"b{i}.proj", D, D)])
    hidden = g.op("Gelu", [_linear(g, _norm(g, x, f"b{i}.n2"), f"b{i}.fc1", D, HIDDEN)])
    return g.op("Add", [x, _linear(g, hidden, f"b{i}.fc2", HIDDEN, D)])


def vit_b16_graph() -> onnx.ModelProto:
    """A ViT-B/16-shaped ONNX graph (weights as typed graph inputs)."""
    g = _Graph()
    patches = g.op("Conv", ["image", g.weight("embed.w", [D, 3, PATCH, PATCH]), g.weight("embed.b", [D])],
                   strides=[PATCH, PATCH])
    tokens = g.op("Transpose", [g.op("Reshape", [patches, g.const("s0", [1, D, TOKENS - 1])])], perm=[0, 2, 1])
    x = g.op("Add", [g.op("Concat", [g.weight("cls", [1, 1, D]), tokens], axis=1), g.weight("pos", [1, TOKENS, D])])
    for i in range(DEPTH):
        x = _block(g, x, i)
    first = g.op("Gather", [_norm(g, x, "head.n"), g.const("zero", 0)], axis=1)
    logits = _linear(g, first, "head", D, CLASSES)
    graph = helper.make_graph(g.nodes, "vit_b16", [helper.make_tensor_value_info("image", TensorProto.FLOAT,
                                                                                 [1, 3, IMAGE, IMAGE]), *g.weights],
                              [helper.make_tensor_value_info(logits, TensorProto.FLOAT, None)], g.consts)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)])


def vit_b16() -> tuple[onnx.ModelProto, str]:
    """torchvision's vit_b_16 exported, if torchvision is installed; else the graph written here."""
    try:
        import torch
        from torchvision.models import vit_b_16
    except ImportError:
        return vit_b16_graph(), "ViT-B/16-shaped graph (onnx.helper)"
    from eyesim.workload.torch_export import export_module

    return export_module(vit_b_16().eval(), torch.zeros(1, 3, IMAGE, IMAGE)), "torchvision vit_b_16"


def median_s(work, runs: int) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        work()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    model, source = vit_b16()
    first = time.perf_counter()
    result = eyesim.estimate(model, HW)  # compiles the kernels or loads them from the cache
    first = time.perf_counter() - first
    macs = sum(lr.energy.macs for lr in result.layers)
    load = median_s(lambda: load_workload(model), args.runs)
    warm = median_s(lambda: eyesim.estimate(model, HW), args.runs)
    print(f"{source}: {len(result.layers)} layers, {macs / 1e9:.2f} GMACs")
    print(f"first estimate {first:.2f} s; warm, median of {args.runs}: import {load:.3f} s, "
          f"estimate {warm:.3f} s ({'under' if warm < 1 else 'OVER'} 1 s)")


if __name__ == "__main__":
    main()
