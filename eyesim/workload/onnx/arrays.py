"""Reading sample arrays from ``.npy`` / ``.npz`` files, each header checked before any of its data is read.

A header states the dtype and shape; the data it implies must be numbers, fit in the file (or the zip
member) and stay within ``MAX_SAMPLE_BYTES``, so a short file or a header claiming terabytes is refused
on one line instead of failing in NumPy's allocator.
"""

from __future__ import annotations

import math
import zipfile
from pathlib import Path
from typing import BinaryIO

import numpy as np

from eyesim.errors import EyesimError, first_line

MAX_SAMPLE_BYTES = 2**31  # 2 GiB per array
_MAGIC = b"\x93NUMPY"


def read_arrays(path: Path, names: tuple[str, ...]) -> dict[str, np.ndarray]:
    """The arrays ``names`` of a ``.npz`` file (those it has), or a ``.npy`` file's one array as ``names[0]``."""
    size = path.stat().st_size
    if size == 0:
        raise EyesimError(f"{path}: empty file; expected a NumPy .npy or .npz file")
    with open(path, "rb") as file:
        start = file.read(len(_MAGIC))
    if start == _MAGIC:
        with open(path, "rb") as file:
            return {names[0]: _read(file, size, f"{path}")}
    if not zipfile.is_zipfile(path):
        raise EyesimError(f"{path}: not a NumPy .npy/.npz file")
    try:
        with zipfile.ZipFile(path) as archive:
            members = {info.filename.removesuffix(".npy"): info for info in archive.infolist()}
            if names[0] not in members:
                has = ", ".join(sorted(members)) or "none"
                raise EyesimError(f"{path}: no array {names[0]!r} (the model inputs); it has {has}")
            found = {}
            for name in (n for n in names if n in members):
                with archive.open(members[name]) as file:
                    found[name] = _read(file, members[name].file_size, f"{path}: array {name!r}")
            return found
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, NotImplementedError) as err:
        raise EyesimError(f"{path}: not a readable .npz file ({first_line(err)})") from err


def _read(file: BinaryIO, size: int, label: str) -> np.ndarray:
    """One array from an open .npy stream of ``size`` bytes, its header checked first."""
    try:
        version = np.lib.format.read_magic(file)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(file)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(file)
        else:
            raise ValueError(f"format version {version} is not 1.0 or 2.0")
        header = file.tell()
    except (ValueError, OSError, EOFError, SyntaxError) as err:
        raise EyesimError(f"{label}: not a NumPy .npy array ({first_line(err)})") from err
    if dtype.hasobject or dtype.kind not in "biuf" or dtype.fields:
        raise EyesimError(f"{label}: samples must be numbers, got {dtype}")
    need = math.prod(shape) * dtype.itemsize
    if need > MAX_SAMPLE_BYTES:
        raise EyesimError(f"{label}: shape {shape} of {dtype} is {need:,} bytes, above the {MAX_SAMPLE_BYTES:,} "
                          "(2 GiB) eyesim reads")
    if header + need > size:
        raise EyesimError(f"{label}: truncated: shape {shape} of {dtype} needs {need:,} bytes, the file holds "
                          f"{max(size - header, 0):,}")
    data = bytearray(need)  # writable, and read in place: one copy of the samples in memory
    view, got = memoryview(data), 0
    while got < need and (count := file.readinto(view[got:])):
        got += count
    if got != need:
        raise EyesimError(f"{label}: truncated: {got:,} of {need:,} bytes")
    array = np.frombuffer(data, dtype=dtype)
    return array.reshape(shape[::-1]).T if fortran else array.reshape(shape)
