"""Benchmark: sweep throughput, in (configuration, layer) evaluations per second and per minute.

The grid is the issue's example on AlexNet and the Eyeriss chip: glb.size_kb (6 values) x array
(12x14, 16x16, 32x32) x rf.filter_words (64:512:64) x batch (1, 4, 16) = 432 configurations, 3,456
layer evaluations. "full search" searches every (configuration, layer) afresh (no reuse); "reuse"
is the default, where optima are reused across configurations that cannot change them. Each run
is end to end (worker start, evaluation, writing the Parquet file); median of --runs runs after
one warm-up run (Numba compiled). evals/cpu-s divides by the CPU time of this process and its
workers, a figure that other load on the machine does not change much.
Run: python benchmarks/bench_sweep.py [--runs 5]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import tempfile
import time
from pathlib import Path

from eyesim.sweep import Grid, clear_reuse_memo, make_job, parse_vary, run_sweep

ROOT = Path(__file__).resolve().parent.parent
MODEL = ROOT / "models_onnx" / "alexnet.onnx"
HW = ROOT / "hwconfigs" / "eyeriss.yaml"
GRID = ("glb.size_kb=32,64,108,128,256,512", "array=12x14,16x16,32x32", "rf.filter_words=64:512:64", "batch=1,4,16")
MODES = (("full search", False, 1), ("full search", False, 2), ("reuse", True, 1), ("reuse", True, 2))


def cpu_seconds() -> float:
    """CPU time of this process and of its finished children (the worker processes)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def one_run(reuse: bool, workers: int, folder: Path) -> tuple[float, float, int, int]:
    """Wall seconds, CPU seconds, layer evaluations and configurations of one sweep into a fresh file."""
    clear_reuse_memo()
    job = make_job(MODEL, HW, Grid(tuple(parse_vary(text) for text in GRID)), reuse=reuse)
    out = folder / f"bench-{time.monotonic_ns()}.parquet"
    began, cpu = time.perf_counter(), cpu_seconds()
    done = run_sweep(job, out, workers=workers)
    seconds, cpu = time.perf_counter() - began, cpu_seconds() - cpu
    out.unlink()
    return seconds, cpu, done.layer_evaluations, done.evaluated


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()[0]:.2f} (other processes share the {os.cpu_count()} cores)")
    with tempfile.TemporaryDirectory() as folder:
        one_run(False, 1, Path(folder))  # warm-up: Numba cache, imports
        print(f"{'mode':<13}{'workers':>8}{'configs':>9}{'layer evals':>13}{'median s':>10}{'evals/s':>10}"
              f"{'evals/min':>11}{'evals/cpu-s':>13}")
        for name, reuse, workers in MODES:
            runs = [one_run(reuse, workers, Path(folder)) for _ in range(args.runs)]
            seconds = statistics.median(run[0] for run in runs)
            per_cpu = statistics.median(run[2] / run[1] for run in runs)
            evals, configs = runs[0][2], runs[0][3]
            print(f"{name:<13}{workers:>8}{configs:>9}{evals:>13,}{seconds:>10.2f}{evals / seconds:>10,.0f}"
                  f"{60 * evals / seconds:>11,.0f}{per_cpu:>13,.0f}", flush=True)
    print(f"load average after: {os.getloadavg()[0]:.2f}")

if __name__ == "__main__":
    main()
