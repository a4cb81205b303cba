"""Benchmark: whole `estimate` of every bundled model on both bundled hardware files.

warm: in-process, Numba compiled, a fresh search cache each run (median of 5 runs);
cold: a fresh `eyesim estimate` process with the Numba on-disk cache warm (median of 3 runs).
Then the warm medians of ResNet-50 and AlexNet on the chip (median of 15 runs), the issue's targets.
``--vs REV``: the same two against a git revision checked out in a temporary worktree, measured in one
run by two worker processes, one per tree, asked alternately pair by pair (so load hits both alike); then
``load_workload`` alone and writing the result's JSON file, the same way. A worktree has no ahead-of-time kernel
build: EYESIM_KERNELS=jit makes both trees use the same (Numba's) kernels.
Run: python benchmarks/bench_estimate.py [--batch N] [--vs REV] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import eyesim

ROOT = Path(__file__).resolve().parent.parent
HW = [ROOT / "hwconfigs" / "eyeriss.yaml", ROOT / "hwconfigs" / "eyeriss-isca256.yaml"]
TARGETS = ["resnet50", "alexnet"]  # issue 14: ResNet-50 <= 20 ms, AlexNet <= 4 ms warm
WORKER = """
import json, os, sys, tempfile, time
import eyesim
from eyesim.workload.onnx.load import load_workload
print(json.dumps(eyesim.__file__), flush=True)
out = os.path.join(tempfile.mkdtemp(prefix="eyesim-bench-"), "result.json")
for line in sys.stdin:
    what, model, hw, batch = json.loads(line)
    result = eyesim.estimate(model, hw, batch=batch) if what == "json" else None
    t0 = time.perf_counter()
    if what == "estimate":
        eyesim.estimate(model, hw, batch=batch)
    elif what == "load":
        load_workload(model, batch=batch)
    else:
        result.write(out)
    print(json.dumps(time.perf_counter() - t0), flush=True)
"""
PARTS = {"estimate": "warm estimate", "load": "load_workload", "json": "JSON write"}  # what --vs times


def warm_ms(model: Path, hw: Path, batch: int, runs: int = 5) -> float:
    eyesim.estimate(model, hw, batch=batch)  # compile / load the Numba cache
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        eyesim.estimate(model, hw, batch=batch)
        times.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(times)


def cold_s(model: Path, hw: Path, batch: int, runs: int = 3) -> float:
    cmd = [sys.executable, "-m", "eyesim", "estimate", str(model), "--hw", str(hw), "--batch", str(batch), "--quiet"]
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


class Worker:
    """A process importing eyesim from ``tree``, timing one estimate per request."""

    def __init__(self, tree: Path) -> None:
        env = dict(os.environ, PYTHONPATH=str(tree))
        self.proc = subprocess.Popen([sys.executable, "-c", WORKER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True, env=env, cwd=tree)
        self.where = json.loads(self.proc.stdout.readline())

    def time_ms(self, model: Path, hw: Path, batch: int, what: str = "estimate") -> float:
        self.proc.stdin.write(json.dumps([what, str(model), str(hw), batch]) + "\n")
        self.proc.stdin.flush()
        return 1e3 * json.loads(self.proc.stdout.readline())

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait()


def compare(rev: str, batch: int, runs: int) -> None:
    """Warm medians of the target models, this tree against ``rev``, alternating pair by pair."""
    with tempfile.TemporaryDirectory(prefix="eyesim-vs-") as tmp:
        other = Path(tmp) / "tree"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(other), rev], check=True,
                       capture_output=True)
        try:
            workers = {"this": Worker(ROOT), rev: Worker(other)}
            for name, w in workers.items():
                print(f"{name[:12]}: eyesim from {w.where}")
            print(f"\nwarm ms, median of {runs} alternating pairs (eyeriss.yaml, batch {batch})")
            print(f"{'model':<12}{'what':<16}{'this':>9}{rev[:12]:>14}{'ratio':>8}")
            for what, label in PARTS.items():
                for name in TARGETS:
                    model = ROOT / "models_onnx" / f"{name}.onnx"
                    times: dict[str, list[float]] = {k: [] for k in workers}
                    for w in workers.values():
                        w.time_ms(model, HW[0], batch, what)  # compile / load the Numba cache
                    for _ in range(runs):
                        for k, w in workers.items():
                            times[k].append(w.time_ms(model, HW[0], batch, what))
                    this, base = statistics.median(times["this"]), statistics.median(times[rev])
                    print(f"{name:<12}{label:<16}{this:>9.1f}{base:>14.1f}{base / this:>7.2f}x", flush=True)
            for w in workers.values():
                w.close()
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(other)], check=False,
                           capture_output=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--vs", metavar="REV", help="also compare the target models' warm times with this revision")
    parser.add_argument("--quick", action="store_true", help="skip the all-model table")
    parser.add_argument("--runs", type=int, default=15, help="runs per target model (default 15)")
    args = parser.parse_args()
    if not args.quick:
        print(f"{'model':<16}{'hardware':<22}{'layers':>7}{'warm ms':>10}{'cold s':>9}")
        for model in sorted((ROOT / "models_onnx").glob("*.onnx")):
            for hw in HW:
                layers = len(eyesim.estimate(model, hw, batch=args.batch).layers)
                print(f"{model.stem:<16}{hw.stem:<22}{layers:>7}{warm_ms(model, hw, args.batch):>10.1f}"
                      f"{cold_s(model, hw, args.batch):>9.2f}", flush=True)
    print(f"\nwarm ms, median of {args.runs} runs (eyeriss.yaml, batch {args.batch})")
    for name in TARGETS:
        print(f"{name:<12}{warm_ms(ROOT / 'models_onnx' / f'{name}.onnx', HW[0], args.batch, args.runs):>9.1f}",
              flush=True)
    if args.vs:
        compare(args.vs, args.batch, args.runs)


if __name__ == "__main__":
    main()
