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
