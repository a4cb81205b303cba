"""Write the golden outputs of ``eyesim estimate`` that ``tests/test_golden.py`` compares against.

Run from the repository root, only when an output is meant to change: ``python tests/golden/make_golden.py``.
Every bundled model on every bundled hardware file, plus a few option sets, each as JSON, CSV and the
terminal table, exactly as the command line writes them (gzip-compressed, with no time stamp, to stay small).
"""

from __future__ import annotations

import gzip
import sys
import tempfile
from pathlib import Path

from click.testing import CliRunner

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = Path(__file__).resolve().parent
HARDWARE = ("eyeriss", "eyeriss-isca256")
MODELS = ("alexnet", "googlenet", "lenet5-mnist", "mobilenetv2", "resnet50", "squeezenet1_0", "vgg16")
# name -> the options after MODEL (paths relative to the repository root)
VARIANTS: dict[str, tuple[str, ...]] = {
    **{f"{model}__{hw}": (f"models_onnx/{model}.onnx", "--hw", f"hwconfigs/{hw}.yaml")
       for model in MODELS for hw in HARDWARE},
    "alexnet__eyeriss__jssc2017": (
        "models_onnx/alexnet.onnx", "--hw", "hwconfigs/eyeriss.yaml", "--batch", "4",
        "--mapping", "hwconfigs/mappings/alexnet-jssc2017.yaml",
        "--density", "conv2.ifmap=0.613,conv3.ifmap=0.388,conv4.ifmap=0.29,conv5.ifmap=0.224"),
    "vgg16__eyeriss-isca256__bits8": (
        "models_onnx/vgg16.onnx", "--hw", "hwconfigs/eyeriss-isca256.yaml", "--batch", "3",
        "--bits", "weights=8,ifmap=8,psum=16", "--density", "ifmap=0.5,weights=0.4"),
}


def outputs(args: tuple[str, ...]) -> dict[str, bytes]:
    """The table, JSON and CSV of ``eyesim estimate ARGS``, run from the repository root."""
    from eyesim.cli import main

    with tempfile.TemporaryDirectory() as tmp:
        js, csv = Path(tmp, "r.json"), Path(tmp, "r.csv")
        res = CliRunner().invoke(main, ["estimate", *args, "-o", str(js), "-o", str(csv)])
        if res.exit_code != 0:
            raise RuntimeError(f"eyesim estimate {' '.join(args)} failed (exit {res.exit_code}): "
                               f"{res.output} {res.exception!r}")
        return {"txt": res.stdout.encode(), "json": js.read_bytes(), "csv": csv.read_bytes()}


def main() -> None:
    if Path.cwd().resolve() != ROOT:
        sys.exit(f"run from the repository root, {ROOT}")
    for name, args in VARIANTS.items():
        for suffix, data in outputs(args).items():
            with open(GOLDEN / f"{name}.{suffix}.gz", "wb") as out, gzip.GzipFile("", "wb", fileobj=out, mtime=0) as z:
                z.write(data)
        print(f"wrote {name}")


if __name__ == "__main__":
    main()
