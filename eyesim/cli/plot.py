"""``eyesim plot``: a picture of an estimate result or of a sweep."""

from __future__ import annotations

from pathlib import Path

import click

from eyesim.cli.guard import FILE, check_paths, guarded, write_atomic


@click.command()
@click.argument("source", type=FILE)
@click.option("-o", "--output", type=FILE, default=None,
              help="Picture: FILE.png or FILE.svg [default: SOURCE with .png].")
@click.option("--x", "x", metavar="FIELD", default=None,
              help="Sweep: the field on the x axis [default: the first swept one; 'array' = PE count].")
@click.option("--by", "by", metavar="FIELD", default=None,
              help="Sweep: one line per value of this field [default: the next swept one].")
@click.pass_context
def plot(ctx: click.Context, source: Path, output: Path | None, x: str | None, by: str | None) -> None:
    """Draw SOURCE: a sweep (.parquet/.csv) as energy against a swept field and the energy-area Pareto front,
    or an estimate result (.json/.csv) as per-layer energy bars by data type and by level."""

    def work() -> None:
        from eyesim.report.plot import PICTURE_SUFFIXES, plot_file

        picture = output if output is not None else source.with_suffix(".png")
        check_paths({"-o": (picture, PICTURE_SUFFIXES)}, {"SOURCE": source})
        write_atomic(picture, lambda temp: plot_file(source, temp, x=x, by=by))
        click.echo(f"wrote {picture}", err=True)

    guarded(ctx, work)
