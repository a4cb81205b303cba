"""Benchmark: sweep throughput (layer evaluations per minute), Dask scaling, and the memory of a streamed sweep.

Throughput: the issue's grid on AlexNet and the Eyeriss chip: glb.size_kb (6 values) x array (12x14,
16x16, 32x32) x rf.filter_words (64:512:64) x batch (1, 4, 16) = 432 configurations, 3,456 layer
evaluations, with reuse (the default) and with a full search of every (configuration, layer), serially
and on 2 local processes. Each measurement runs in a fresh process (after one warm-up sweep there:
Numba cache, imports) and times run_sweep end to end (worker start, evaluation, writing the Parquet file).
``--vs REV`` runs the same measurements on git revision REV (a temporary ``git worktree``), alternating
with this tree run by run, so the ratio is measured under the same load. evals/cpu-s divides by the CPU
time of the measuring process and its workers, which other load on the machine changes less.

``--dask``: a LocalCluster of 1 and of 2 workers, alternately, on a 6,144-configuration grid (this tree
only); start-up (cluster, imports, kernels, warm-up) is excluded from the rate and reported.
``--memory``: peak memory (RSS and Arrow's pool) of streamed ResNet-50 sweeps of two grid sizes with a
small write threshold (what the default's bound scales from), and the bytes per row of the output.
Run: python benchmarks/bench_sweep.py [--runs 5] [--vs REV] [--dask] [--memory [--memory-configs 500,1000,2000]]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GRID = ("glb.size_kb=32,64,108,128,256,512", "array=12x14,16x16,32x32", "rf.filter_words=64:512:64", "batch=1,4,16")
DASK_GRID = ("glb.size_kb=16:512:16", "array=12x14,14x12,16x16,32x32", "rf.filter_words=64:512:64",
             "batch=1,2,4,8,16,32")
WARM_GRID = ("glb.size_kb=64,108", "batch=1,4")
MODES = {"full search x1": (False, 1), "full search x2": (False, 2), "reuse x1": (True, 1), "reuse x2": (True, 2)}


def cpu_seconds() -> float:
    """CPU time of this process and of its finished children (the worker processes)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def child(args: argparse.Namespace) -> None:
    """One measurement in this process (run by the parent with the tree to measure on PYTHONPATH); prints JSON."""
    import eyesim
    from eyesim.sweep import Grid, clear_reuse_memo, make_job, parse_vary, run_sweep

    tree = str(Path(eyesim.__file__).resolve().parent.parent)
    model, hw = Path(tree) / "models_onnx" / "alexnet.onnx", Path(tree) / "hwconfigs" / "eyeriss.yaml"

    def sweep(texts: tuple[str, ...], reuse: bool, folder: str, **options: object) -> dict:
        clear_reuse_memo()
        job = make_job(model, hw, Grid(tuple(parse_vary(text) for text in texts)), reuse=reuse)
        out = Path(folder) / f"bench-{time.monotonic_ns()}.parquet"
        began, cpu = time.perf_counter(), cpu_seconds()
        done = run_sweep(job, out, **options)
        seconds, cpu = time.perf_counter() - began, cpu_seconds() - cpu
        out.unlink()
        startup = getattr(done, "startup_seconds", 0.0)
        return {"seconds": seconds, "cpu": cpu, "evals": done.layer_evaluations, "configs": done.evaluated,
                "startup": startup, "tree": tree}

    with tempfile.TemporaryDirectory() as folder:
        sweep(WARM_GRID, False, folder, workers=1)  # warm-up: imports, Numba cache
        if args.child == "dask":
            result = sweep(DASK_GRID, True, folder, dask_workers=args.dask_workers)
        else:
            reuse, workers = MODES[args.child]
            result = sweep(GRID, reuse, folder, workers=workers)
    print(json.dumps(result))


def measure(tree: Path, mode: str, dask_workers: int | None = None) -> dict:
    """A measurement in a fresh process importing eyesim from ``tree``."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    command = [sys.executable, str(Path(__file__).resolve()), "--child", mode]
    if dask_workers is not None:
        command += ["--dask-workers", str(dask_workers)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"measurement {mode} on {tree} failed:\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    if Path(result["tree"]).resolve() != tree.resolve():
        raise SystemExit(f"the measurement imported eyesim from {result['tree']}, not {tree}")
    return result


def throughput(runs: int, vs: str | None) -> None:
    """Each mode on this tree (and on REV), alternately, ``runs`` times; medians and the ratio."""
    with tempfile.TemporaryDirectory() as folder:
        trees = {"this tree": ROOT}
        if vs is not None:
            worktree = Path(folder) / "vs"
            subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(worktree), vs], check=True,
                           capture_output=True)
            trees[f"{vs[:12]}"] = worktree
        try:
            print(f"{'mode':<16}{'tree':<14}{'layer evals':>12}{'median s':>10}{'evals/min':>11}{'evals/cpu-s':>13}")
            for mode in MODES:
                found: dict[str, list[dict]] = {name: [] for name in trees}
                for _ in range(runs):
                    for name, tree in trees.items():
                        found[name].append(measure(tree, mode))
                rates = {}
                for name, results in found.items():
                    seconds = statistics.median(r["seconds"] for r in results)
                    per_cpu = statistics.median(r["evals"] / r["cpu"] for r in results)
                    rates[name] = statistics.median(60 * r["evals"] / r["seconds"] for r in results)
                    print(f"{mode:<16}{name:<14}{results[0]['evals']:>12,}{seconds:>10.2f}{rates[name]:>11,.0f}"
                          f"{per_cpu:>13,.0f}", flush=True)
                if len(rates) == 2:
                    mine, theirs = rates.values()
                    print(f"{'':<16}{'ratio':<14}{'':>12}{'':>10}{mine / theirs:>10.2f}x", flush=True)
        finally:
            if vs is not None:
                subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(worktree)], check=False)


def dask_scaling(runs: int) -> None:
    """A LocalCluster of 1 and of 2 workers, alternately, on DASK_GRID; rates exclude the start-up."""
    print(f"\nDask LocalCluster, {' x '.join(DASK_GRID)}")
    print(f"{'workers':<9}{'configs':>8}{'layer evals':>12}{'start-up s':>11}{'sweep s':>9}{'evals/min':>11}")
    found: dict[int, list[dict]] = {1: [], 2: []}
    ratios = []
    for _ in range(runs):
        for workers in (1, 2):
            found[workers].append(measure(ROOT, "dask", workers))
        one, two = (found[w][-1] for w in (1, 2))
        ratios.append((one["seconds"] - one["startup"]) / (two["seconds"] - two["startup"]))
    for workers, results in found.items():
        work = statistics.median(r["seconds"] - r["startup"] for r in results)
        startup = statistics.median(r["startup"] for r in results)
        print(f"{workers:<9}{results[0]['configs']:>8,}{results[0]['evals']:>12,}{startup:>11.2f}{work:>9.2f}"
              f"{60 * results[0]['evals'] / work:>11,.0f}")
    print(f"2 workers / 1 worker: median {statistics.median(ratios):.2f}x (per run: "
          f"{', '.join(f'{r:.2f}' for r in ratios)}); load average {os.getloadavg()[0]:.2f}")


def memory_child(configs: int, pending_rows: int) -> None:
    """Peak memory of one streamed ResNet-50 sweep of ``configs`` configurations (in this fresh process)."""
    import pyarrow as pa

    from eyesim.sweep import Grid, make_job, parse_vary, read_table, run_sweep, sink

    sink._BATCH_ROWS = pending_rows  # row groups as small as the write threshold: the bound shows at this size

    grid = Grid((parse_vary(f"clock_mhz=1:{configs}"),))  # search once, then every configuration reuses it
    job = make_job(ROOT / "models_onnx" / "resnet50.onnx", ROOT / "hwconfigs" / "eyeriss.yaml", grid)
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "s.parquet"
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        run_sweep(job, out, workers=1, pending_rows=pending_rows)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        arrow_peak = pa.default_memory_pool().max_memory()
        table = read_table(out)
        per_row = table.nbytes / table.num_rows
    print(json.dumps({"rows": table.num_rows, "rss_before_mb": before / 1024, "rss_peak_mb": peak / 1024,
                      "arrow_peak_mb": arrow_peak / 2**20, "bytes_per_row": per_row}))


def memory(configs: tuple[int, ...] = (500, 1_000, 2_000), pending_rows: int = 2_000) -> None:
    """Streamed sweeps of a few sizes (a fresh process each), the fitted slope of peak RSS over configurations
    extrapolated to 100,000, and the default's bound."""
    print(f"\nStreamed ResNet-50 sweep to Parquet (rows written every {pending_rows:,} rows)")
    print(f"{'configs':>8}{'rows':>10}{'RSS before MB':>15}{'RSS peak MB':>13}{'Arrow peak MB':>15}{'B/row':>8}")
    peaks = []
    for n in configs:
        done = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--memory-child", str(n),
                               str(pending_rows)], capture_output=True, text=True, check=True,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})
        r = json.loads(done.stdout.strip().splitlines()[-1])
        print(f"{n:>8,}{r['rows']:>10,}{r['rss_before_mb']:>15.0f}{r['rss_peak_mb']:>13.0f}{r['arrow_peak_mb']:>15.0f}"
              f"{r['bytes_per_row']:>8.0f}", flush=True)
        peaks.append(r["rss_peak_mb"])
    slope, base = (statistics.linear_regression(configs, peaks) if len(configs) > 1 else (0.0, peaks[0]))
    print(f"peak RSS ~ {base:.0f} MB + {1024 * slope:.1f} kB per configuration: {base + 100_000 * slope:,.0f} MB "
          "at 100,000 configurations (fitted)")
    from eyesim.sweep.run import PENDING_ROWS
    from eyesim.sweep.sink import _BATCH_ROWS

    held = (PENDING_ROWS + 3 * _BATCH_ROWS) * r["bytes_per_row"] / 2**20
    whole = 100_000 * r["rows"] / configs[-1] * r["bytes_per_row"] / 2**30
    print(f"bound at the defaults: {PENDING_ROWS:,} pending rows + a {_BATCH_ROWS:,}-row group read, merged and "
          f"written ~ {held:.0f} MB over the process's base; the whole 100,000-configuration table would be "
          f"{whole:.1f} GB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--vs", metavar="REV", help="also measure git revision REV (a temporary worktree)")
    parser.add_argument("--dask", action="store_true", help="Dask LocalCluster 1 vs 2 workers")
    parser.add_argument("--memory", action="store_true", help="memory of streamed ResNet-50 sweeps")
    parser.add_argument("--memory-configs", default="500,1000,2000", help="grid sizes of --memory (comma-separated)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--dask-workers", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--memory-child", nargs=2, type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args)
    if args.memory_child:
        return memory_child(*args.memory_child)
    print(f"load average before: {os.getloadavg()[0]:.2f} (other processes share the {os.cpu_count()} cores)")
    throughput(args.runs, args.vs)
    if args.dask:
        dask_scaling(args.runs)
    if args.memory:
        memory(tuple(int(n) for n in args.memory_configs.split(",")))
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
