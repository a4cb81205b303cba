"""``eyesim sweep``: the estimate over a grid of hardware configurations, into a resumable table."""

from __future__ import annotations

from pathlib import Path

import click

from eyesim.cli.guard import FILE, check_distinct, check_output, guarded
from eyesim.errors import EyesimError

VARY_HELP = ("Sweep a field: PATH=VALUES, repeatable. PATH is a numeric field of the hardware file by dotted path "
             "(glb.size_kb, rf.filter_words, bits.weights, energy.dram, ...), 'batch', or 'array' (ROWSxCOLS, "
             "sets array.rows and array.cols). VALUES is a comma-separated list of numbers and ranges "
             "START:STOP[:STEP]; a range includes STOP when STOP falls on the grid (64:512:64 gives 64, 128, ..., "
             "512; 64:500:64 stops at 448).")


@click.command()
@click.argument("model", type=FILE)
@click.option("--hw", "hw_file", required=True, type=FILE,
              help="Base hardware file (YAML); the swept fields replace its values.")
@click.option("--vary", "vary", multiple=True, metavar="PATH=VALUES", help=VARY_HELP)
@click.option("--spec", "spec_file", type=FILE,
              help="YAML sweep spec (vary: {PATH: VALUES, ...}, optional area: constants); see docs/sweep.md.")
@click.option("--batch", default=1, show_default=True, type=click.IntRange(min=1),
              help="Batch size when batch is not swept (sets the inputs' batch dims, as in estimate).")
@click.option("--input-shape", "input_shape_items", multiple=True, metavar="NAME=d0,d1,...",
              help="Fix a data input's whole shape, e.g. input=1,3,224,224 (free and fixed dims alike); "
                   "repeatable; the batch then leaves that input alone.")
@click.option("--max-configs", default=1_000_000, show_default=True, type=click.IntRange(min=1),
              help="Refuse a grid of more configurations than this (counted from the ranges before any is "
                   "listed); raise it for a larger sweep.")
@click.option("-o", "--output", required=True, type=FILE,
              help="Results: FILE.parquet or FILE.csv. An existing output of the same sweep is resumed.")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Local worker processes [default: all cores]; 1 runs in this process.")
@click.option("--scheduler", metavar="ADDRESS", help="Run on an existing Dask cluster (tcp://host:8786).")
@click.option("--dask-workers", type=click.IntRange(min=1), default=None,
              help="Run on a Dask LocalCluster of N worker processes started for this sweep.")
@click.option("--scheduler-timeout", default=10.0, show_default=True, type=click.FloatRange(min=0, min_open=True),
              help="Seconds to wait for the Dask scheduler before giving up.")
@click.option("--chunk-size", type=click.IntRange(min=1), default=None,
              help="Configurations per task [default: about 8 tasks per worker, at most 64].")
@click.option("--no-reuse", is_flag=True, help="Search every (configuration, layer) afresh (for checks and timing).")
@click.option("--quiet", is_flag=True, help="No progress bar and no summary.")
@click.pass_context
def sweep(ctx: click.Context, model: Path, hw_file: Path, vary: tuple[str, ...], spec_file: Path | None,
          batch: int, input_shape_items: tuple[str, ...], max_configs: int, output: Path, workers: int | None,
          scheduler: str | None,
          dask_workers: int | None,
          scheduler_timeout: float, chunk_size: int | None, no_reuse: bool, quiet: bool) -> None:
    """Estimate MODEL on a grid of hardware configurations, with a row per (configuration, layer)."""

    def work() -> None:
        from eyesim.sweep.grid import build_grid
        from eyesim.sweep.job import make_job
        from eyesim.sweep.output import output_format
        from eyesim.sweep.run import run_sweep
        from eyesim.sweep.sink import lock_path, output_lock

        output_format(output)
        check_output(output, (".parquet", ".pq", ".csv"))
        check_distinct({"-o": output, "-o's lock file": lock_path(output)},
                       {"MODEL": model, "--hw": hw_file, "--spec": spec_file})
        if not vary and spec_file is None:
            raise EyesimError("nothing to sweep: give --vary PATH=VALUES (repeatable) or --spec FILE")
        grid, area = build_grid(spec_file, vary, batch, max_configs)  # refused over --max-configs, before listing
        ctx.with_resource(output_lock(output))  # before any work: a second writer of the output is refused
        from eyesim.workload.onnx.batch import parse_input_shapes

        job = make_job(model, hw_file, grid, area, reuse=not no_reuse,
                       input_shapes=parse_input_shapes(input_shape_items))
        done = run_sweep(job, output, workers=workers, scheduler=scheduler, dask_workers=dask_workers,
                         scheduler_timeout=scheduler_timeout, chunk_size=chunk_size, progress=not quiet)
        if not quiet and done.evaluated == 0:
            click.echo(f"nothing to do: all {done.configurations} configurations are already in {done.output}",
                       err=True)
        elif not quiet:
            rate = done.layer_evaluations / done.seconds if done.seconds > 0 else 0.0
            click.echo(f"{done.configurations} configurations: {done.evaluated} evaluated ({done.invalid} invalid), "
                       f"{done.skipped} already in {done.output}; {done.layer_evaluations} layer evaluations in "
                       f"{done.seconds:.1f} s ({rate:,.0f}/s) on {done.workers} worker(s)", err=True)
            click.echo(f"wrote {done.output}", err=True)

    guarded(ctx, work)
