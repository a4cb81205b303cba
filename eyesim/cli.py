"""Command line: ``eyesim estimate``. Bad input gives one line on stderr and exit code 2."""

from __future__ import annotations

import sys
import traceback
from pathlib import Path

import click

from eyesim.errors import EyesimError


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="eyesim")
@click.option("--debug", is_flag=True, help="Show the full traceback on errors.")
@click.pass_context
def main(ctx: click.Context, debug: bool) -> None:
    """Energy of CNNs on a row-stationary (Eyeriss-like) spatial accelerator."""
    ctx.obj = {"debug": debug}


@main.command()
@click.argument("model", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--hw", "hw_file", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Hardware file (YAML), e.g. hwconfigs/eyeriss.yaml; schema in docs/hardware.md.")
@click.option("--batch", default=1, show_default=True, type=click.IntRange(min=1),
              help="Batch size N; replaces the model's batch dimension, symbolic or fixed.")
@click.option("--mapping", "mapping_file", type=click.Path(dir_okay=False, path_type=Path),
              help="YAML file pinning layers' mappings: 'conv1: {m: 96, n: 1, e: 7, p: 16, q: 1, r: 1, t: 2}'. "
                   "Layers it does not name are searched.")
@click.option("-o", "--output", "outputs", multiple=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Write the result to FILE.json or FILE.csv (repeatable).")
@click.option("--quiet", is_flag=True, help="Do not print the table.")
@click.pass_context
def estimate(ctx: click.Context, model: Path, hw_file: Path, batch: int, mapping_file: Path | None,
             outputs: tuple[Path, ...], quiet: bool) -> None:
    """Estimate per-layer energy of the ONNX MODEL on the accelerator in --hw."""
    from eyesim.estimate import estimate as run
    from eyesim.report import summary, table

    def work():
        for out in outputs:
            if out.suffix.lower() not in (".json", ".csv"):
                raise EyesimError(f"{out}: output must end in .json or .csv")
        result = _with_progress(lambda progress: run(model, hw_file, batch=batch, mapping=mapping_file,
                                                     progress=progress))
        for out in outputs:
            result.write(out)
        if not quiet:
            click.echo(summary(result))
            click.echo(table(result))
        for out in outputs:
            click.echo(f"wrote {out}", err=True)

    _guarded(ctx, work)


def _with_progress(job):
    """Run ``job(progress)`` with a progress line on stderr when it is a terminal."""
    if not sys.stderr.isatty():
        return job(None)
    with click.progressbar(length=0, label="searching mappings", file=sys.stderr, show_pos=True) as bar:
        def progress(name: str) -> None:
            bar.label = f"searched {name}"
            bar.update(1)

        return job(progress)


def _guarded(ctx: click.Context, work) -> None:
    """Run a command; user errors become one line and exit 2, others one line and exit 1."""
    try:
        work()
    except EyesimError as err:
        if ctx.obj["debug"]:
            traceback.print_exc()
        click.echo(f"eyesim: error: {err}", err=True)
        sys.exit(2)
    except Exception as err:  # noqa: BLE001 - last resort: never a bare traceback
        if ctx.obj["debug"]:
            traceback.print_exc()
        click.echo(f"eyesim: internal error: {type(err).__name__}: {err} (rerun with --debug for the traceback)",
                   err=True)
        sys.exit(1)
