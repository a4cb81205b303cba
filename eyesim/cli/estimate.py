"""``eyesim estimate``: the per-layer energy of an ONNX model on one hardware file."""

from __future__ import annotations

from pathlib import Path

import click

from eyesim.cli.guard import FILE, SET_HELP, check_paths, guarded, hardware_with_sets, with_progress, write_atomic
from eyesim.errors import EyesimError


@click.command()
@click.argument("model", type=FILE)
@click.option("--hw", "hw_file", required=True, type=FILE,
              help="Hardware file (YAML), e.g. hwconfigs/eyeriss.yaml; schema in docs/hardware.md.")
@click.option("--set", "sets", multiple=True, metavar="PATH=VALUE", help=SET_HELP)
@click.option("--batch", default=1, show_default=True, type=click.IntRange(min=1),
              help="Batch size N; sets the inputs' batch dim: the first dim of a 4-D input, or a first dim "
                   "named like N, B or batch (other inputs: --input-shape).")
@click.option("--input-shape", "input_shape_items", multiple=True, metavar="NAME=d0,d1,...",
              help="Fix a data input's whole shape, e.g. input=1,3,224,224 (free and fixed dims alike); "
                   "repeatable; --batch then leaves that input alone.")
@click.option("--mapping", "mapping_file", type=FILE,
              help="YAML file pinning layers' mappings: 'conv1: {m: 96, n: 1, e: 7, p: 16, q: 1, r: 1, t: 2}'. "
                   "Layers it does not name are searched.")
@click.option("-o", "--output", "outputs", multiple=True, type=FILE,
              help="Write the result to FILE.json or FILE.csv (repeatable).")
@click.option("--bits", "bits_text", metavar="TYPE=BITS,...",
              help="Bit widths per data type, e.g. weights=8,ifmap=8,psum=16 (1 to 32); replaces the hardware "
                   "file's. Data energy scales with bits/16, MAC energy with (w/16)(ifmap/16); capacities are in "
                   "bits, so the search re-optimizes.")
@click.option("--samples", type=FILE,
              help="Model inputs (.npy, or .npz with array x) to run through the model (onnxruntime) to measure "
                   "each layer's ifmap and ofmap densities and count zero-skipped MACs exactly.")
@click.option("--density", "density_items", multiple=True, metavar="[LAYER.]TYPE=D",
              help="Non-zero fraction (0 to 1) of weights, ifmap or ofmap, for every layer (ifmap=0.4), one "
                   "(conv3.ifmap=0.3) or one fmap tensor by name (relu3=0.3); repeatable; wins over measured "
                   "values. It also sets the other layer reading or writing the same tensor (linked), and "
                   "estimates an ofmap written before pooling/LRN/Add/Concat.")
@click.option("--plot", "plot_file", type=FILE,
              help="Also draw the per-layer energy bars to FILE.png or FILE.svg (needs eyesim[plot]).")
@click.option("--quiet", is_flag=True, help="Do not print the table.")
@click.pass_context
def estimate(ctx: click.Context, model: Path, hw_file: Path, sets: tuple[str, ...], batch: int,
             input_shape_items: tuple[str, ...], mapping_file: Path | None, outputs: tuple[Path, ...],
             bits_text: str | None, samples: Path | None,
             density_items: tuple[str, ...], plot_file: Path | None, quiet: bool) -> None:
    """Estimate per-layer energy of the ONNX MODEL on the accelerator in --hw."""
    from eyesim.estimator import estimate as run
    from eyesim.report.table import summary, table

    def work():
        check_paths({"-o": (outputs, (".json", ".csv")), "--plot": (plot_file, (".png", ".svg"))},
                    {"MODEL": model, "--hw": hw_file, "--mapping": mapping_file, "--samples": samples})
        from eyesim.workload.onnx.batch import parse_input_shapes

        options = {"batch": batch, "input_shapes": parse_input_shapes(input_shape_items), "mapping": mapping_file,
                   "bits": _bits(bits_text), "samples": samples, "densities": _densities(density_items)}
        hw = hardware_with_sets(hw_file, sets)
        result = with_progress(lambda progress: run(model, hw, progress=progress, **options))
        for out in outputs:
            write_atomic(out, result.write)
        if plot_file is not None:
            from eyesim.report.plot import plot_result

            write_atomic(plot_file, lambda temp: plot_result(result.to_dict(), temp))
        if not quiet:
            click.echo(summary(result))
            click.echo(table(result))
        for out in (*outputs, *([plot_file] if plot_file else [])):
            click.echo(f"wrote {out}", err=True)

    guarded(ctx, work)


def _pairs(text: str, option: str) -> list[tuple[str, str]]:
    pairs = []
    items = [part.strip() for part in text.split(",")]
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise EyesimError(f"{option} {item!r}: expected KEY=VALUE")
        if key.strip() in dict(pairs):
            raise EyesimError(f"{option}: {key.strip()} is given twice")
        pairs.append((key.strip(), value.strip()))
    return pairs


def _typed_pairs(texts: tuple[str, ...], option: str, convert: type, what: str) -> dict:
    """``KEY=VALUE,...`` items (from one or more option values) with converted values."""
    out = {}
    for text in texts:
        for key, value in _pairs(text, option):
            if key in out:
                raise EyesimError(f"{option}: {key} is given twice")
            try:
                out[key] = convert(value)
            except ValueError:
                raise EyesimError(f"{option} {key}={value}: {what}") from None
    return out


def _bits(text: str | None) -> dict[str, int] | None:
    if text is None:
        return None
    return _typed_pairs((text,), "--bits", int, "a bit width is a whole number from 1 to 32")


def _densities(items: tuple[str, ...]) -> dict[str, float]:
    return _typed_pairs(items, "--density", float, "a density is a number from 0 to 1")
