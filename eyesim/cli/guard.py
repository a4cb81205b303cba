"""What every command shares: the error guard (one line and exit 2 for bad input), output checks, progress."""

from __future__ import annotations

import os
import sys
import traceback
from pathlib import Path

import click

from eyesim.errors import EyesimError

FILE = click.Path(dir_okay=False, path_type=Path)


def guarded(ctx: click.Context, work) -> None:
    """Run a command; user errors become one line and exit 2, others one line and exit 1."""
    debug = ctx.ensure_object(dict).setdefault("debug", False)  # a command run on its own has no group options
    try:
        work()
    except EyesimError as err:
        if debug:
            traceback.print_exc()
        click.echo(f"eyesim: error: {err}", err=True)
        sys.exit(2)
    except Exception as err:  # noqa: BLE001 - last resort: never a bare traceback
        if debug:
            traceback.print_exc()
        click.echo(f"eyesim: internal error: {type(err).__name__}: {err} (rerun with --debug for the traceback)",
                   err=True)
        sys.exit(1)


def check_output(path: Path, suffixes: tuple[str, ...]) -> None:
    """Refuse, before any work, an output that could not be written."""
    if path.suffix.lower() not in suffixes:
        raise EyesimError(f"{path}: output must end in {' or '.join(suffixes)}")
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise EyesimError(f"{path}: folder {folder} does not exist")
    if not os.access(folder, os.W_OK):
        raise EyesimError(f"{path}: folder {folder} is not writable")


SET_HELP = ("Replace a field of the hardware file, as a dotted path (as sweep --vary names them), e.g. "
            "--set sparsity.weight_compression=rlc --set glb.size_kb=64; repeatable.")


def hardware_with_sets(hw_file: Path, sets: tuple[str, ...]):
    """The hardware file as a path (no ``--set``), or loaded with its ``--set PATH=VALUE`` fields replaced."""
    if not sets:
        return hw_file
    from eyesim.hardware.load import load_hardware, with_overrides
    from eyesim.yamlio import parse_yaml

    overrides: dict[str, object] = {}
    for text in sets:
        path, sep, value = text.partition("=")
        path = path.strip()
        if not sep or not path or not value.strip():
            raise EyesimError(f"--set {text}: expected PATH=VALUE, e.g. sparsity.weight_compression=rlc")
        if path in overrides:
            raise EyesimError(f"--set: {path} is given twice")
        overrides[path] = parse_yaml(value.strip(), f"--set {path}")
    return with_overrides(load_hardware(hw_file), overrides)


def check_distinct(outputs: dict[str, Path | None], inputs: dict[str, Path | None]) -> None:
    """Refuse an output that is one of the inputs, or two outputs that are one file."""
    seen: dict[Path, str] = {}
    for name, path in inputs.items():
        if path is not None:
            seen[path.resolve()] = name
    for name, path in outputs.items():
        if path is None:
            continue
        if path.resolve() in seen:
            raise EyesimError(f"{name} {path}: is the same file as {seen[path.resolve()]}; refusing to overwrite it")
        seen[path.resolve()] = name


def with_progress(job):
    """Run ``job(progress)`` with a progress line on stderr when it is a terminal."""
    if not sys.stderr.isatty():
        return job(None)
    from tqdm import tqdm

    with tqdm(desc="estimating", file=sys.stderr, leave=False, bar_format="{desc} [{elapsed}]") as bar:
        def progress(status: str) -> None:
            bar.set_description(status)
            bar.update(1)

        return job(progress)
