"""What every command shares: the error guard (one line and exit 2 for bad input), output checks, progress."""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Callable
from pathlib import Path

import click

from eyesim.errors import EyesimError, printable

FILE = click.Path(dir_okay=False, path_type=Path)


def guarded(ctx: click.Context, work) -> None:
    """Run a command; user errors become one line and exit 2, others one line and exit 1."""
    debug = ctx.ensure_object(dict).setdefault("debug", False)  # a command run on its own has no group options
    try:
        work()
    except EyesimError as err:
        if debug:
            traceback.print_exc()
        click.echo(f"eyesim: error: {one_line(str(err))}", err=True)
        sys.exit(2)
    except Exception as err:  # noqa: BLE001 - last resort: never a bare traceback
        if debug:
            traceback.print_exc()
        what = f"{type(err).__name__}: {one_line(str(err))}"
        click.echo(f"eyesim: internal error: {what} (rerun with --debug for the traceback)", err=True)
        sys.exit(1)


def one_line(text: str) -> str:
    """``text`` on one line: line breaks and other control characters (from file or layer names) escaped."""
    return printable(text)


def check_output(path: Path, suffixes: tuple[str, ...]) -> None:
    """Refuse, before any work, an output that could not be written (or whose writing would hang)."""
    if path.suffix.lower() not in suffixes:
        raise EyesimError(f"{path}: output must end in {' or '.join(suffixes)}")
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.exists():
        raise EyesimError(f"{path}: folder {folder} does not exist")
    if not folder.is_dir():
        raise EyesimError(f"{path}: {folder} is not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise EyesimError(f"{path}: folder {folder} is not writable")
    if len(os.fsencode(path.name)) > _name_max(folder):
        raise EyesimError(f"{path}: file name too long ({len(os.fsencode(path.name))} bytes, at most "
                          f"{_name_max(folder)})")
    if path.exists() and not path.is_file():  # a FIFO would block the write forever; a device is not an output
        raise EyesimError(f"{path}: exists and is not a regular file; choose another output")
    if path.exists() and not os.access(path, os.W_OK):
        raise EyesimError(f"{path}: exists and is not writable")


def _name_max(folder: Path) -> int:
    try:
        return os.pathconf(folder, "PC_NAME_MAX")
    except (OSError, ValueError):
        return 255


Paths = Path | None | tuple[Path, ...]  # an option's value: none, one file, or several (a repeatable option)


def check_paths(outputs: dict[str, tuple[Paths, tuple[str, ...]]], inputs: dict[str, Path | None]) -> None:
    """Refuse, before any work, every output (option -> (paths, suffixes)) that cannot be written or is an input."""
    for paths, suffixes in outputs.values():
        for path in _each(paths):
            check_output(path, suffixes)
    check_distinct({name: paths for name, (paths, _) in outputs.items()}, inputs)


def _each(paths: Paths) -> tuple[Path, ...]:
    return paths if isinstance(paths, tuple) else () if paths is None else (paths,)


def write_atomic(path: Path, save: Callable[[Path], None]) -> None:
    """``save(temporary path)`` then rename over ``path``: a kill or an error never leaves half a file.

    The temporary file keeps the suffix (writers choose the format by it); a symlinked output is written through.
    """
    target = path.resolve()
    temp = target.with_name(f".{target.stem}.{os.getpid()}.tmp{target.suffix}")
    try:
        save(temp)
        os.replace(temp, target)
    except OSError as err:
        raise EyesimError(f"{path}: cannot write ({err.strerror or err})") from None
    finally:
        temp.unlink(missing_ok=True)


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


def check_distinct(outputs: dict[str, Paths], inputs: dict[str, Path | None]) -> None:
    """Refuse an output that is one of the inputs, or two outputs that are one file.

    One file: the same path once resolved (symlinks, '..'), or the same inode (hard links, bind mounts).
    """
    seen: list[tuple[str, Path]] = [(name, path) for name, path in inputs.items() if path is not None]
    for name, paths in outputs.items():
        for path in _each(paths):
            for other, known in seen:
                if same_file(path, known):
                    raise EyesimError(f"{name} {path}: is the same file as {other} {known}; refusing to overwrite it")
            seen.append((name, path))


def same_file(a: Path, b: Path) -> bool:
    """True when the paths name one file: equal once resolved, or one inode (hard links)."""
    try:
        if a.resolve() == b.resolve():
            return True
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except (OSError, RuntimeError):  # a symlink loop or an unreadable folder: not provably the same
        return False


def with_progress(job):
    """Run ``job(progress)`` with a progress line on stderr when it is a terminal."""
    if not sys.stderr.isatty():
        return job(None)
    from tqdm import tqdm

    with tqdm(desc="estimating", file=sys.stderr, leave=False, bar_format="{desc} [{elapsed}]") as bar:
        def progress(status: str) -> None:
            bar.set_description(printable(status))
            bar.update(1)

        return job(progress)
