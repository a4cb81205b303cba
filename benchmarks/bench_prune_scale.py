"""Benchmark: the per-layer work of energy-aware pruning on AlexNet-sized layers (shape-only AlexNet, random data).

For each Conv/Gemm layer of ``models_onnx/alexnet.onnx`` (only its shapes are read) it makes random weights
(and bias), random ReLU-like inputs (non-negative, about half zeros, correlated through a few shared factors and,
for convolutions, smooth in space, with a different scale per input channel) and their exact outputs, enough
samples for at least ``--min-rows`` rows and a fitting part of at least ``--fit-ratio`` x (K + 1) rows, split
80/20 into fitting and validation samples. It then times what ``eyesim.prune.method`` does per layer in the
label-free mode: the statistics of both parts (``layer_stats``), ``Candidates(...)``, and the bisection of the
kept count (the smallest with a validation output error at most ``--max-output-error``, to 1/256 of the
weights; ``current()`` first, then ~9 calls of ``at(q)``). One row per layer: K, M per group, groups, rows
(fitting + validation), seconds per phase and in all, the peak resident memory during the restore (statistics,
candidates, search; the outputs and weights resident, the inputs freed after the statistics) and of the whole
process (the data made, too), the kept fraction, its validation error and ridge, the 1-minute load average at
the end (the machine is shared: timings scale with it), the path (exact or large) and the support kept.

Run: python benchmarks/bench_prune_scale.py [--layers conv3,fc6] [--repeat 1] [--max-output-error 0.1]
       [--min-rows 2000] [--fit-ratio 1.1] [--path auto|exact|large]
Each layer runs in a child process of its own (so its memory is its own); ``--repeat N`` gives the median time.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

from eyesim.prune.layers import Geometry, LinearLayer
from eyesim.prune.restore import Candidate, Candidates, layer_stats
from eyesim.workload.layer import Layer
from eyesim.workload.onnx.load import load_workload

ROOT = Path(__file__).resolve().parent.parent
MODEL = ROOT / "models_onnx" / "alexnet.onnx"
RESOLUTION = 256  # as eyesim.prune.method: the kept count to 1/256 of the layer's weights
FACTORS = 32  # shared factors of the random inputs (their correlation)


def linear_layer(lay: Layer) -> LinearLayer:
    """The workload layer as a prunable linear map; its input is given already padded (pads 0)."""
    k = lay.C * lay.R * lay.S
    if lay.op == "Conv":
        geo = Geometry((lay.R, lay.S), (lay.U, lay.Uw), (lay.Dh, lay.Dw), (0, 0, 0, 0))
        return LinearLayer(lay.name, "Conv", "x", "y", "w", (lay.G * lay.M, lay.C, lay.R, lay.S), "b", lay.G, geo)
    return LinearLayer(lay.name, "Gemm", "x", "y", "w", (lay.M, k), "b")


def samples_needed(lay: Layer, min_rows: int, fit_ratio: float) -> int:
    """Samples for at least ``min_rows`` rows and a fitting part (80 %) of ``fit_ratio`` x (K + 1) rows (5 or more:
    the validation part gets one at least)."""
    per_sample = lay.E * lay.F if lay.op == "Conv" else 1
    rows = max(min_rows, math.ceil(fit_ratio * (lay.C * lay.R * lay.S + 1) / 0.8))
    return max(5, math.ceil(rows / per_sample))


def random_inputs(lay: Layer, n: int, rng: np.random.Generator) -> np.ndarray:
    """ReLU-like float32 inputs: a few shared factors plus noise, clipped at 0 (about half zeros)."""
    channels = lay.G * lay.C
    scale = np.exp(rng.normal(scale=0.5, size=channels)).astype(np.float32)  # each input channel its own energy
    if lay.op != "Conv":  # a flattened feature map: its inputs are channels x positions
        mix = rng.normal(size=(FACTORS, lay.C * lay.R * lay.S)).astype(np.float32) / np.sqrt(FACTORS)
        x = rng.standard_normal((n, FACTORS), dtype=np.float32) @ mix
        x += rng.standard_normal(x.shape, dtype=np.float32)
        return np.maximum(x, 0) * np.repeat(scale, lay.R * lay.S)
    mix = rng.normal(size=(FACTORS, channels)).astype(np.float32) / np.sqrt(FACTORS)
    z = rng.standard_normal((n, lay.H, lay.W, FACTORS), dtype=np.float32) @ mix
    z += rng.standard_normal(z.shape, dtype=np.float32)
    z = (z + np.roll(z, 1, 1) + np.roll(z, 1, 2) + np.roll(z, (1, 1), (1, 2))) / 2  # smooth in space
    x = np.maximum(z, 0) * scale
    pad = max(0, (lay.R - 1) // 2) if lay.U == 1 else 0  # the zero border of a padded input
    if pad:
        x[:, :pad], x[:, -pad:], x[:, :, :pad], x[:, :, -pad:] = 0, 0, 0, 0
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


def outputs(lin: LinearLayer, x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The layer's exact outputs, N x (G·M) x E x F (or N x M), float32."""
    groups, m, _ = w.shape
    parts = []
    for g in range(groups):
        t = lin.patches(x, g) @ w[g].T + b[g]
        parts.append(t.reshape(x.shape[0], -1, m).transpose(0, 2, 1) if lin.geometry is not None else t)
    if lin.geometry is None:
        return parts[0].astype(np.float32)
    e_f = parts[0].shape[2]
    side = int(round(math.sqrt(e_f)))
    return np.concatenate(parts, axis=1).reshape(x.shape[0], groups * m, side, e_f // side).astype(np.float32)


class PeakMemory:
    """The largest resident set size seen while it runs (sampled every 20 ms from /proc/self/statm)."""

    def __enter__(self) -> PeakMemory:
        self.peak, self._stop = resident(), threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        return self

    def _watch(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, resident())

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, resident())


def resident() -> int:
    """Resident set size of this process in bytes."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * resource.getpagesize()


def bisect(cands: Candidates, bound: float) -> tuple[int, Candidate, int]:
    """(kept count, its candidate, calls): method.py's label-free search, the trials kept as it keeps them."""
    nonzero = int(np.count_nonzero(cands.mats))
    trials = {nonzero: cands.current()}
    if trials[nonzero].val_error > bound:
        return nonzero, trials[nonzero], 1
    lo, hi, tol = 0, nonzero, max(1, nonzero // RESOLUTION)
    while hi - lo > tol:
        mid = (lo + hi) // 2
        trials[mid] = cands.at(mid)
        if trials[mid].val_error <= bound:
            hi = mid
        else:
            lo = mid
    return hi, trials[hi], len(trials)


def run_layer(lay: Layer, args: argparse.Namespace) -> dict:
    """Make the layer's data, then time and measure its restore (one child process)."""
    rng = np.random.default_rng(args.seed)
    lin = linear_layer(lay)
    groups, m, k = lin.matrix_shape
    w = rng.normal(size=(groups, m, k)) / np.sqrt(k)
    b = 0.1 * rng.normal(size=(groups, m))
    n = samples_needed(lay, args.min_rows, args.fit_ratio)
    x = random_inputs(lay, n, rng)
    y = outputs(lin, x, w, b)
    n_fit = int(round(0.8 * n))
    rows, fit_rows = lin.rows(x), lin.rows(x[:n_fit])
    data_peak = resident()
    times = []
    with PeakMemory() as mem:
        for repeat in range(args.repeat):
            t0 = time.perf_counter()
            fit, val = layer_stats(lin, x[:n_fit], y[:n_fit]), layer_stats(lin, x[n_fit:], y[n_fit:])
            if repeat == args.repeat - 1:
                del x, y  # as in eyesim.prune.method: the layer's inputs go once its statistics are made
            t1 = time.perf_counter()
            large = None if args.path == "auto" else args.path == "large"
            cands = Candidates(fit, val, w, b, "energy-aware", large=large)
            path = "large" if cands.large else "exact"
            t2 = time.perf_counter()
            kept, best, calls = bisect(cands, args.max_output_error)
            t3 = time.perf_counter()
            times.append((t1 - t0, t2 - t1, t3 - t2))
            del fit, val, cands
    stats_s, build_s, search_s = (statistics.median(t[i] for t in times) for i in range(3))
    return {"layer": lay.name, "K": k, "M": m, "G": groups, "rows": rows, "fit_rows": fit_rows,
            "stats_s": stats_s, "build_s": build_s, "search_s": search_s, "calls": calls,
            "total_s": stats_s + build_s + search_s, "restore_peak_gb": mem.peak / 2**30, "data_gb": data_peak / 2**30,
            "process_peak_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
            "kept": kept / w.size, "val_error": best.val_error, "support": best.support, "ridge": best.ridge,
            "path": path, "load": os.getloadavg()[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", help="comma-separated layer names (default: all)")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--max-output-error", type=float, default=0.1)
    parser.add_argument("--min-rows", type=int, default=2000)
    parser.add_argument("--fit-ratio", type=float, default=1.1)
    parser.add_argument("--path", choices=["auto", "exact", "large"], default="auto")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--one", help=argparse.SUPPRESS)  # the child: run this layer, print its row as JSON
    args = parser.parse_args()
    layers = {lay.name: lay for lay in load_workload(MODEL).layers}
    if args.one:
        print(json.dumps(run_layer(layers[args.one], args)))
        return
    names = args.layers.split(",") if args.layers else list(layers)
    print(f"AlexNet shapes, random data, label-free bound {args.max_output_error}, repeat {args.repeat}")
    print(f"{'layer':<6} {'K':>6} {'M':>5} {'G':>2} {'rows':>13} {'stats s':>8} {'build s':>8} {'search s':>9} "
          f"{'calls':>5} {'total s':>8} {'peak GB':>8} {'proc GB':>8} {'kept':>6} {'val err':>8} {'ridge':>6} "
          f"{'load':>5}  path")
    for name in names:
        child = [sys.executable, __file__, "--one", name, "--repeat", str(args.repeat), "--max-output-error",
                 str(args.max_output_error), "--min-rows", str(args.min_rows), "--fit-ratio", str(args.fit_ratio),
                 "--path", args.path, "--seed", str(args.seed)]
        proc = subprocess.run(child, capture_output=True, text=True, cwd=ROOT)
        if proc.returncode:
            print(f"{name:<6} failed: {proc.stderr.strip().splitlines()[-1]}")
            continue
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        print(f"{r['layer']:<6} {r['K']:>6} {r['M']:>5} {r['G']:>2} {r['fit_rows']:>6}+{r['rows'] - r['fit_rows']:<6} "
              f"{r['stats_s']:>8.1f} {r['build_s']:>8.1f} {r['search_s']:>9.1f} {r['calls']:>5} {r['total_s']:>8.1f} "
              f"{r['restore_peak_gb']:>8.2f} {r['process_peak_gb']:>8.2f} {r['kept']:>6.3f} {r['val_error']:>8.4f} "
              f"{r['ridge']:>6.0e} {r['load']:>5.1f}  {r['path']} ({r['support']})", flush=True)


if __name__ == "__main__":
    main()
