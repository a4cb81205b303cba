"""``eyesim prune``: energy-aware pruning of a trained ONNX CNN (docs/prune.md)."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import click

from eyesim.cli.guard import FILE, SET_HELP, check_paths, guarded, hardware_with_sets, write_atomic
from eyesim.errors import printable


@click.command()
@click.argument("model", type=FILE)
@click.option("--hw", "hw_file", required=True, type=FILE, help="Hardware file (YAML), e.g. hwconfigs/eyeriss.yaml.")
@click.option("--set", "sets", multiple=True, metavar="PATH=VALUE", help=SET_HELP)
@click.option("--data", "data_file", required=True, type=FILE,
              help="Samples to choose with: .npz holding inputs 'x' (N x the model's input shape) and integer labels "
                   "'y' (labels may be left out with --max-output-error). Split into a fitting and a validation part.")
@click.option("--validation-fraction", type=float, default=0.2, show_default=True,
              help="Fraction of --data (per label) held back as the validation part the kept counts are chosen on.")
@click.option("--validation", "validation_file", type=FILE,
              help="Validation samples (.npz) instead of a part of --data (then all of --data is fitted on).")
@click.option("--eval", "eval_file", type=FILE,
              help="Held-out samples (.npz, x and y) for the reported accuracy; never used to choose. A fall of "
                   "more than --max-accuracy-drop on them fails the run (exit 1, no model written without --force).")
@click.option("--granularity", type=click.Choice(["weight", "filter"]), default="weight", show_default=True,
              help="weight: single weights become zeros (same graph); filter: whole filters and neurons go (a "
                   "smaller model, which saves energy even where weights are stored uncompressed).")
@click.option("--method", type=click.Choice(["energy-aware", "magnitude"]),
              help="Weight granularity: energy-aware (default; magnitude and greedy removal, least-squares restore) "
                   "or magnitude (the baseline).")
@click.option("--criterion", type=click.Choice(["nuclear-norm", "l1", "energy-aware"]),
              help="Filter granularity: nuclear-norm (default; of each filter's feature maps, Yeom et al. 2021), l1 "
                   "(of its weights, Li et al. 2017) or energy-aware (nuclear norm per unit of estimated energy).")
@click.option("--freeze", multiple=True, metavar="LAYER", help="Keep this layer as it is (repeatable).")
@click.option("--max-accuracy-drop", "max_drop", type=float, default=1.0, show_default=True,
              help="Top-1 accuracy (points) the pruned model may lose on the validation part (and on --eval).")
@click.option("--min-accuracy", type=float, help="And never below this top-1 accuracy (%) on the validation part.")
@click.option("--max-output-error", type=float,
              help="Label-free rule instead of accuracy: each layer's relative output error ||Y - Y'||/||Y|| on the "
                   "validation part stays at most this fraction, in (0, 1).")
@click.option("--passes", type=click.IntRange(min=1), default=1, show_default=True,
              help="At most this many passes over the layers (stops when a pass prunes nothing). Each pass chooses "
                   "again on the same validation part, so more passes prune more and promise less on new data.")
@click.option("--finetune-epochs", type=click.IntRange(min=0), default=0, show_default=True,
              help="Global fine-tuning by back-propagation after each pass (needs torch: the 'finetune' extra).")
@click.option("-o", "--output", type=FILE,
              help="Write the pruned model here (.onnx): the same graph with zeroed weights, or the smaller model.")
@click.option("--report", "report_file", type=FILE, help="Write the report as CSV.")
@click.option("--force", is_flag=True, help="Write the model even when the held-out check fails.")
@click.option("--quiet", is_flag=True, help="No progress, no table (warnings and errors are still shown).")
@click.pass_context
def prune(ctx: click.Context, model: Path, hw_file: Path, sets: tuple[str, ...], data_file: Path,
          validation_fraction: float, validation_file: Path | None, eval_file: Path | None, granularity: str,
          method: str | None, criterion: str | None, freeze: tuple[str, ...], max_drop: float,
          min_accuracy: float | None, max_output_error: float | None, passes: int, finetune_epochs: int,
          output: Path | None, report_file: Path | None, force: bool, quiet: bool) -> None:
    """Prune the trained ONNX MODEL, most energy-hungry layers first (Yang, Chen, Sze, CVPR 2017)."""

    def work() -> int:
        from eyesim.prune.result import Rule
        from eyesim.report.prune import report_text, write_report_csv
        from eyesim.workload.onnx.run import load_model, load_samples

        _check_paths(model, hw_file, data_file, validation_file, eval_file, output, report_file)
        Rule(max_drop, min_accuracy, max_output_error).check()
        run, options = _how(granularity, method, criterion, finetune_epochs, passes)
        hw = hardware_with_sets(hw_file, sets)
        proto = load_model(model)
        labels = max_output_error is None
        data = load_samples(data_file, need_labels=labels)
        held_back = load_samples(validation_file, need_labels=labels) if validation_file else None
        held_out = load_samples(eval_file) if eval_file else None
        result = run(proto, hw, data, held_out, max_drop=max_drop, min_accuracy=min_accuracy,
                     max_output_error=max_output_error, validation=held_back, validation_fraction=validation_fraction,
                     freeze=freeze, progress=_Bars(quiet), **options)
        if report_file is not None:
            write_atomic(report_file, lambda temp: write_report_csv(result, temp))
        if not quiet:
            click.echo(report_text(result, model))
        if output is not None and (result.failure is None or force):
            import onnx

            write_atomic(output, lambda temp: onnx.save(result.model, str(temp)))
        for path in (output, report_file):
            if path is not None and (path is report_file or result.failure is None or force):
                click.echo(f"wrote {path}", err=True)
        if result.failure is not None:
            kept = "written anyway (--force)" if force and output else "not written (--force writes it)"
            click.echo(f"eyesim: error: {result.failure}; the model was {kept}", err=True)
            return 1
        return 0

    guarded(ctx, lambda: _exit(work()))


def _exit(code: int) -> None:
    if code:
        sys.exit(code)


def _check_paths(model: Path, hw_file: Path, data_file: Path, validation_file: Path | None, eval_file: Path | None,
                 output: Path | None, report_file: Path | None) -> None:
    """Refuse, before any work, outputs that cannot be written or would overwrite an input."""
    check_paths({"-o": (output, (".onnx",)), "--report": (report_file, (".csv",))},
                {"MODEL": model, "--hw": hw_file, "--data": data_file, "--validation": validation_file,
                 "--eval": eval_file})


def _how(granularity: str, method: str | None, criterion: str | None, epochs: int, passes: int):
    """(the pruning function, its granularity's options); EyesimError for an option of the other granularity."""
    from eyesim.errors import EyesimError

    if granularity == "filter":
        if method is not None or epochs:
            raise EyesimError(f"{'--method' if method else '--finetune-epochs'} applies to --granularity weight; "
                              "filters are chosen by --criterion")
        from eyesim.prune.filters import prune_filters

        return prune_filters, {"criterion": criterion or "nuclear-norm", "passes": passes}
    if criterion is not None:
        raise EyesimError("--criterion applies to --granularity filter; weights are chosen by --method")
    from eyesim.prune.method import prune as prune_weights

    tune = None
    if epochs:
        from eyesim.prune.finetune import finetuner

        tune = finetuner(epochs)
    return prune_weights, {"method": method or "energy-aware", "passes": passes, "finetune": tune}


class _Bars:
    """Progress on stderr: bars on a terminal (pass, layer, kept count, elapsed, ETA), one line per layer otherwise."""

    def __init__(self, quiet: bool) -> None:
        self.quiet, self.tty = quiet, sys.stderr.isatty()
        self.outer = self.inner = None

    def warn(self, line: str) -> None:
        click.echo(f"eyesim: warning: {line}", err=True)

    def note(self, line: str) -> None:
        if not self.quiet:
            click.echo(f"eyesim: note: {line}", err=True)

    def layer(self, name: str, pass_no: int, index: int, count: int) -> None:
        if self.quiet or not self.tty:
            return
        from tqdm import tqdm

        if index == 0:
            self._close()
            self.outer = tqdm(total=count, desc=f"pass {pass_no}", unit="layer", file=sys.stderr, leave=False)
        self.inner = tqdm(total=None, desc=f"  {printable(name)}", unit="count", file=sys.stderr, leave=False)

    def trial(self, kept: int, of: int) -> None:
        if self.inner is not None:
            if self.inner.total is None:  # a bisection to 1/256 of the count (or to one filter) after the full count
                self.inner.total = 1 + math.ceil(math.log2(max(2, min(of, 256))))
            self.inner.set_postfix_str(f"kept {kept:,}/{of:,}")
            self.inner.update(1)

    def done(self, step) -> None:
        if self.inner is not None:
            self.inner.close()
            self.inner = None
        if self.outer is not None:
            self.outer.update(1)
            if self.outer.n >= self.outer.total:
                self._close()
        if not self.quiet and not self.tty:
            click.echo(f"pass {step.pass_no} {step.layer}: kept {step.nonzero_after:,}/{step.weights:,} weights, "
                       f"validation output error {100 * step.val_error:.1f}%, {step.seconds:.1f} s", err=True)

    def _close(self) -> None:
        if self.outer is not None:
            self.outer.close()
            self.outer = None
