"""Benchmark: CPU seconds the first command after a fresh install spends compiling kernels, and the install's build.

Each run is a new process with an empty EYESIM_CACHE_DIR that imports eyesim and estimates AlexNet on the chip
(the issue's measure: target <= 5 s); it reports the compile share, timed by Numba's compile events. With the
kernels built at install (this tree, when ``eyesim/dataflow/_aot*`` is there) that share is zero; the install's
build itself is timed apart (``aot_build`` into a temporary file). ``--kernels jit`` measures the JIT fallback
(no C compiler at install) and each kernel's signature count (one is the aim: a second signature is a second
compile). Median of 3 runs.
Run: python benchmarks/bench_compile.py [--runs N] [--vs REV] [--kernels auto|jit]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROBE = """
import json, time
from numba.core import event
spent = [0.0, 0, 0.0]  # compile CPU s, nesting depth, start

class Timer(event.Listener):
    def on_start(self, ev):
        spent[1] += 1
        if spent[1] == 1:
            spent[2] = time.process_time()
    def on_end(self, ev):
        spent[1] -= 1
        if spent[1] == 0:
            spent[0] += time.process_time() - spent[2]

event.register("numba:compile", Timer())
t = time.process_time()
import eyesim
eyesim.estimate("models_onnx/alexnet.onnx", "hwconfigs/eyeriss.yaml")
total = time.process_time() - t
import eyesim.dataflow as df
sigs = {k: len(getattr(df, k).signatures) for k in dir(df) if getattr(getattr(df, k), "signatures", None)}
print(json.dumps([total, spent[0], sigs]))
"""
BUILD = """
import sys, tempfile, time
from pathlib import Path
t = time.process_time()
from eyesim.dataflow.aot_build import build
with tempfile.TemporaryDirectory() as folder:
    build(Path(folder) / "_aot.so")
print(time.process_time() - t)
"""


def one_run(tree: Path, kernels: str) -> tuple[float, float, dict, float]:
    """(total CPU s, compile CPU s, signatures per kernel, install build CPU s or nan) of fresh processes with an
    empty cache."""
    with tempfile.TemporaryDirectory(prefix="eyesim-compile-") as cache:
        env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
        env.update(EYESIM_CACHE_DIR=cache, PYTHONPATH=str(tree), EYESIM_KERNELS=kernels)
        out = subprocess.run([sys.executable, "-c", PROBE], env=env, cwd=tree, check=True, capture_output=True,
                             text=True).stdout
        total, compile_s, sigs = json.loads(out.splitlines()[-1])
        build = float("nan")
        if list((tree / "eyesim" / "dataflow").glob("_aot*")) and kernels == "auto":
            build = float(subprocess.run([sys.executable, "-c", BUILD], env=env, cwd=tree, check=True,
                                         capture_output=True, text=True).stdout.split()[-1])
    return total, compile_s, sigs, build


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--vs", metavar="REV", help="also measure this git revision (temporary worktree), alternating")
    parser.add_argument("--kernels", choices=("auto", "jit"), default="auto",
                        help="jit: the JIT fallback (what an install without a C compiler compiles on first use)")
    args = parser.parse_args()
    trees = {"this": ROOT}
    tmp = tempfile.TemporaryDirectory(prefix="eyesim-vs-")
    if args.vs:
        trees[args.vs] = Path(tmp.name) / "tree"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(trees[args.vs]), args.vs],
                       check=True, capture_output=True)
    try:
        runs: dict[str, list] = {k: [] for k in trees}
        for _ in range(args.runs):
            for k, tree in trees.items():
                runs[k].append(one_run(tree, args.kernels))
        print(f"first command (import + AlexNet estimate, empty kernel cache, EYESIM_KERNELS={args.kernels}), "
              f"median of {args.runs}")
        print(f"{'tree':<14}{'total CPU s':>12}{'compile CPU s':>15}{'install build CPU s':>20}")
        for k, got in runs.items():
            print(f"{k[:12]:<14}{statistics.median(r[0] for r in got):>12.2f}"
                  f"{statistics.median(r[1] for r in got):>15.2f}{statistics.median(r[3] for r in got):>20.2f}")
        many = {k: n for k, n in runs["this"][-1][2].items() if n > 1}
        print(f"kernels compiled for more than one signature: {many or 'none'}")
    finally:
        if args.vs:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(trees[args.vs])],
                           check=False, capture_output=True)
        tmp.cleanup()


if __name__ == "__main__":
    main()
