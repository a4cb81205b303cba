"""``eyesim prune``: energy-aware pruning of a trained ONNX CNN (docs/prune.md)."""

from __future__ import annotations

from pathlib import Path

import click

from eyesim.cli.guard import FILE, guarded
from eyesim.errors import EyesimError


@click.command()
@click.argument("model", type=FILE)
@click.option("--hw", "hw_file", required=True, type=FILE, help="Hardware file (YAML), e.g. hwconfigs/eyeriss.yaml.")
@click.option("--data", "data_file", required=True, type=FILE,
              help="Samples to choose with: .npz holding inputs 'x' (N x the model's input shape) and labels 'y'.")
@click.option("--eval", "eval_file", type=FILE,
              help="Held-out samples (.npz, x and y) for the reported accuracy; never used to choose.")
@click.option("--method", type=click.Choice(["energy-aware", "magnitude"]), default="energy-aware", show_default=True,
              help="energy-aware: magnitude and greedy removal, least-squares restore; magnitude: the baseline.")
@click.option("--max-accuracy-drop", "max_drop", type=click.FloatRange(min=0), default=1.0, show_default=True,
              help="Accuracy (top-1, points) the pruned model may lose on --data.")
@click.option("--min-accuracy", type=click.FloatRange(0, 100),
              help="And never below this top-1 accuracy (%) on --data.")
@click.option("--passes", type=click.IntRange(min=1), default=3, show_default=True,
              help="At most this many passes over the layers (stops when a pass prunes nothing).")
@click.option("--finetune-epochs", type=click.IntRange(min=0), default=0, show_default=True,
              help="Global fine-tuning by back-propagation after each pass (needs torch: the 'finetune' extra).")
@click.option("-o", "--output", type=FILE, help="Write the pruned model (same graph, zeroed weights) here.")
@click.option("--report", "report_file", type=FILE, help="Write the report as CSV.")
@click.option("--quiet", is_flag=True, help="No progress lines, no table.")
@click.pass_context
def prune(ctx: click.Context, model: Path, hw_file: Path, data_file: Path, eval_file: Path | None, method: str,
          max_drop: float, min_accuracy: float | None, passes: int, finetune_epochs: int, output: Path | None,
          report_file: Path | None, quiet: bool) -> None:
    """Prune the trained ONNX MODEL, most energy-hungry layers first (Yang, Chen, Sze, CVPR 2017)."""

    def work() -> None:
        import onnx

        from eyesim.prune.method import prune as run
        from eyesim.prune.result import report_frame
        from eyesim.report.prune import report_text
        from eyesim.workload.onnx.run import load_model, load_samples

        for path, suffix in ((output, ".onnx"), (report_file, ".csv")):
            if path is not None and path.suffix.lower() != suffix:
                raise EyesimError(f"{path}: must end in {suffix}")
        proto = load_model(model)
        data = load_samples(data_file)
        held_out = load_samples(eval_file) if eval_file else None
        tune = _finetune(finetune_epochs)
        say = None if quiet else (lambda line: click.echo(line, err=True))
        result = run(proto, hw_file, data, held_out, method=method, max_drop=max_drop, min_accuracy=min_accuracy,
                     passes=passes, finetune=tune, progress=say)
        if output is not None:
            _write(lambda: onnx.save(result.model, str(output)), output)
        if report_file is not None:
            _write(lambda: report_frame(result).to_csv(report_file, index=False), report_file)
        if not quiet:
            click.echo(report_text(result, model, hw_file))
        for path in (output, report_file):
            if path is not None:
                click.echo(f"wrote {path}", err=True)

    guarded(ctx, work)


def _finetune(epochs: int):
    """The fine-tuning callable, or None; EyesimError when torch is missing."""
    if not epochs:
        return None
    from eyesim.prune.finetune import finetuner

    return finetuner(epochs)


def _write(save, path: Path) -> None:
    try:
        save()
    except OSError as err:
        raise EyesimError(f"{path}: cannot write ({err.strerror or err})") from None
