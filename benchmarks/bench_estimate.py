"""Benchmark: whole `estimate` of every bundled model on both bundled hardware files.

warm: in-process, Numba compiled, a fresh search cache each run (median of 5 runs);
cold: a fresh `eyesim estimate` process with the Numba on-disk cache warm (median of 3 runs).
Run: python benchmarks/bench_estimate.py [--batch N]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

import eyesim

ROOT = Path(__file__).resolve().parent.parent
HW = [ROOT / "hwconfigs" / "eyeriss.yaml", ROOT / "hwconfigs" / "eyeriss-isca256.yaml"]


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=1)
    args = parser.parse_args()
    print(f"{'model':<16}{'hardware':<22}{'layers':>7}{'warm ms':>10}{'cold s':>9}")
    for model in sorted((ROOT / "models_onnx").glob("*.onnx")):
        for hw in HW:
            layers = len(eyesim.estimate(model, hw, batch=args.batch).layers)
            print(f"{model.stem:<16}{hw.stem:<22}{layers:>7}{warm_ms(model, hw, args.batch):>10.1f}"
                  f"{cold_s(model, hw, args.batch):>9.2f}", flush=True)


if __name__ == "__main__":
    main()
