"""Benchmark: a first command's cost. Cold `eyesim estimate MODEL --hw HW --quiet` in new processes (Numba's
on-disk cache warm: one unmeasured run first), and `import eyesim` / `import eyesim.estimator` on their own.

Prints medians of --runs runs: CPU seconds (user + sys of the whole process), wall seconds and peak memory
(ru_maxrss), and the imports' CPU seconds. With ``--vs REF`` the same is measured for git revision REF, exported
with ``git archive`` to a temporary folder (no change to the repository), runs alternating between the two trees
so that both see the same machine load, and the ratios are printed.
Run: python benchmarks/bench_startup.py [--runs 7] [--vs c644a34]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
IMPORT_TIMER = ("import time; t = time.process_time(); import {module}; "
                "import sys; print(time.process_time() - t, sys.modules['eyesim'].__file__)")


def child_env(tree: Path) -> dict[str, str]:
    """The environment that makes ``tree``'s eyesim the one imported (ahead of the installed one)."""
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(tree), os.environ.get("PYTHONPATH", "")]).rstrip(":")}


def measure(cmd: list[str], tree: Path) -> tuple[float, float, float]:
    """(CPU seconds, wall seconds, peak MB) of one process, from the kernel's accounting of that process."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=tree, env=child_env(tree), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed in {tree}: {proc.stderr.read().decode()[-500:]}")
    proc.stderr.close()
    return usage.ru_utime + usage.ru_stime, wall, usage.ru_maxrss / 1024


def import_cpu(module: str, tree: Path) -> float:
    """CPU seconds of ``import module`` in a new process (checking that ``tree``'s eyesim is the one imported)."""
    out = subprocess.run([sys.executable, "-c", IMPORT_TIMER.format(module=module)], cwd=tree, env=child_env(tree),
                         check=True, capture_output=True, text=True).stdout.split()
    if not Path(out[1]).resolve().is_relative_to(tree.resolve()):
        sys.exit(f"{tree}: imported eyesim from {out[1]}, not from this tree")
    return float(out[0])


def estimate_cmd(model: str, hw: str) -> list[str]:
    return [sys.executable, "-m", "eyesim", "estimate", model, "--hw", hw, "--quiet"]


def bench(trees: dict[str, Path], model: str, hw: str, runs: int) -> dict[str, dict[str, float]]:
    """Medians per tree; the trees' runs alternate so that both see the same load."""
    cmd = estimate_cmd(str(ROOT / model), str(ROOT / hw))  # one input for every tree
    for tree in trees.values():
        measure(cmd, tree)  # warm Numba's cache for this tree (its kernels are cached by source path)
    samples: dict[str, dict[str, list[float]]] = {name: {} for name in trees}
    for _ in range(runs):
        for name, tree in trees.items():
            cpu, wall, peak = measure(cmd, tree)
            for key, value in (("cpu_s", cpu), ("wall_s", wall), ("peak_mb", peak),
                               ("import_eyesim_s", import_cpu("eyesim", tree)),
                               ("import_estimator_s", import_cpu("eyesim.estimator", tree))):
                samples[name].setdefault(key, []).append(value)
    return {name: {key: statistics.median(values) for key, values in found.items()}
            for name, found in samples.items()}


def export(ref: str, folder: Path) -> Path:
    """Revision ``ref`` of the repository as plain files in ``folder`` (git archive: no worktree, no git state)."""
    archive = folder / "ref.tar"
    with archive.open("wb") as out:
        subprocess.run(["git", "archive", "--format=tar", ref], cwd=ROOT, check=True, stdout=out)
    tree = folder / "tree"
    with tarfile.open(archive) as tar:
        tar.extractall(tree, filter="data")
    return tree


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="Runs per tree (medians are printed).")
    parser.add_argument("--vs", metavar="REF", help="Also measure this git revision, alternating, and print ratios.")
    parser.add_argument("--model", default="models_onnx/alexnet.onnx")
    parser.add_argument("--hw", default="hwconfigs/eyeriss.yaml")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="eyesim-bench-") as folder:
        trees = {"this tree": ROOT}
        if args.vs:
            trees = {args.vs: export(args.vs, Path(folder)), **trees}
        results = bench(trees, args.model, args.hw, args.runs)
    keys = ("cpu_s", "wall_s", "peak_mb", "import_eyesim_s", "import_estimator_s")
    print(f"cold `eyesim estimate {args.model} --hw {args.hw}`, medians of {args.runs} runs (Numba cache warm)")
    print(f"{'':>12}" + "".join(f"{key:>20}" for key in keys))
    for name, found in results.items():
        print(f"{name[:12]:>12}" + "".join(f"{found[key]:>20.3f}" for key in keys))
    if args.vs:
        ref, now = results[args.vs], results["this tree"]
        print(f"{'ratio ref/now':>12}" + "".join(f"{ref[key] / now[key]:>19.2f}x" for key in keys))


if __name__ == "__main__":
    main()
