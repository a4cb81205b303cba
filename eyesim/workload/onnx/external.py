"""External data of an ONNX file: where each tensor's bytes are, checked before any byte is read, then read.

A tensor stored outside the ``.onnx`` file names a ``location`` (relative to the model's folder), an
``offset`` and a ``length``. Before anything is read, every location must be a regular, readable file
inside the model's folder (no absolute path, no ``..`` or symbolic link leading out), and every extent
must lie within the file and hold exactly the tensor's bytes; all of them together at most
``MAX_EXTERNAL_BYTES``. A model is read shape-only first; values are read only when they are used.
"""

from __future__ import annotations

import math
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path, PureWindowsPath

import numpy as np
import onnx

from eyesim.errors import EyesimError

MAX_EXTERNAL_BYTES = 2**31  # 2 GiB in all: the most a single ONNX file may hold itself
_PACKED_4BIT = {getattr(onnx.TensorProto, name) for name in ("INT4", "UINT4", "FLOAT4E2M1")
                if hasattr(onnx.TensorProto, name)}


@dataclass(frozen=True)
class Extent:
    """Where one external tensor's bytes are: a checked file, offset and length."""

    tensor: onnx.TensorProto
    path: Path
    offset: int
    length: int


def external_tensors(model: onnx.ModelProto) -> list[onnx.TensorProto]:
    """Tensors of the graph (initializers, node attributes) whose bytes are stored outside the file."""
    found = [t for t in model.graph.initializer if t.data_location == onnx.TensorProto.EXTERNAL]
    for node in model.graph.node:
        for attr in node.attribute:  # an unset ``t`` is a default tensor, never external: not read (it is slow)
            if attr.HasField("t") and attr.t.data_location == onnx.TensorProto.EXTERNAL:
                found.append(attr.t)
            if attr.tensors:
                found += [t for t in attr.tensors if t.data_location == onnx.TensorProto.EXTERNAL]
    return found


def check_external(model: onnx.ModelProto, folder: Path, need_files: bool = True,
                   tensors: list[onnx.TensorProto] | None = None) -> list[Extent]:
    """The extents of every external tensor, all checked (see the module docstring), or EyesimError.

    With ``need_files`` False (a shape-only read) a missing file is let pass: its values are not used yet.
    ``tensors``: ``external_tensors(model)``, when the caller has them (finding them walks every attribute).
    """
    tensors = external_tensors(model) if tensors is None else tensors
    extents = [_extent(tensor, folder, need_files) for tensor in tensors]
    extents = [extent for extent in extents if extent is not None]
    total = sum(extent.length for extent in extents)
    if total > MAX_EXTERNAL_BYTES:
        more = f" and {len(extents) - 1} more" if len(extents) > 1 else ""
        raise EyesimError(f"external data of tensor {extents[0].tensor.name!r}{more} holds {total:,} bytes, above "
                          f"the {MAX_EXTERNAL_BYTES:,} (2 GiB) eyesim reads")
    return extents


def load_external(model: onnx.ModelProto, folder: Path) -> None:
    """Read every external tensor's bytes into ``model`` (in place), after checking them all."""
    for extent in check_external(model, folder):
        with open(extent.path, "rb") as file:
            file.seek(extent.offset)
            data = file.read(extent.length)
        if len(data) != extent.length:
            raise EyesimError(f"tensor {extent.tensor.name!r}: external data file {extent.path.name!r} ended "
                              f"after {len(data)} of {extent.length} bytes (changed while being read?)")
        tensor = extent.tensor
        del tensor.external_data[:]
        tensor.data_location = onnx.TensorProto.DEFAULT
        tensor.raw_data = data


def _extent(tensor: onnx.TensorProto, folder: Path, need_files: bool) -> Extent | None:
    info = {entry.key: entry.value for entry in tensor.external_data}
    label = f"tensor {tensor.name!r}: external data"
    path = _location(info.get("location", ""), folder, label)
    if not need_files and not os.path.lexists(path):
        return None
    if not path.exists():
        raise EyesimError(f"{label} file {info['location']!r} does not exist (next to the model); eyesim reads "
                          "the weights to count their zeros")
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))  # never blocks on a FIFO
    except OSError as err:
        raise EyesimError(f"{label} file {path.name!r} cannot be read ({err.strerror})") from err
    try:
        info_stat = os.fstat(fd)
    finally:
        os.close(fd)
    if not stat.S_ISREG(info_stat.st_mode):
        raise EyesimError(f"{label} {path.name!r} is not a regular file")
    size = info_stat.st_size
    offset = _count(info.get("offset", "0"), f"{label} offset")
    length = _count(info["length"], f"{label} length") if "length" in info else max(size - offset, 0)
    expected = _tensor_bytes(tensor, label)
    if length != expected:
        raise EyesimError(f"{label} length {length:,} does not match the tensor's {expected:,} bytes "
                          f"(dims {list(tensor.dims)})")
    if offset + length > size:
        raise EyesimError(f"{label} offset {offset:,} + length {length:,} is past the end of {path.name!r} "
                          f"({size:,} bytes)")
    return Extent(tensor, path, offset, length)


def _location(location: str, folder: Path, label: str) -> Path:
    """The checked file a location names: relative, inside ``folder``, existing."""
    if not location:
        raise EyesimError(f"{label} names no location (file)")
    if "\0" in location:
        raise EyesimError(f"{label} location {location!r} holds a NUL byte: not a file name")
    if os.path.isabs(location) or PureWindowsPath(location).anchor:
        raise EyesimError(f"{label} location {location!r} is an absolute path; it must be a file in the "
                          "model's folder")
    base = folder.resolve()
    path = (base / location).resolve()
    if not path.is_relative_to(base):
        raise EyesimError(f"{label} location {location!r} is outside the model's folder")
    return path


def _count(text: str, label: str) -> int:
    """A byte offset or length: a non-negative whole number (as ONNX writes it)."""
    if not re.fullmatch(r"[0-9]{1,19}", text.strip()):
        raise EyesimError(f"{label} {text[:40]!r} is not a whole number of bytes")
    return int(text)


def _tensor_bytes(tensor: onnx.TensorProto, label: str) -> int:
    """The bytes a tensor's dims and element type take."""
    if any(d < 0 for d in tensor.dims):
        raise EyesimError(f"{label}: the tensor has negative dims {list(tensor.dims)}")
    count = math.prod(tensor.dims)
    if tensor.data_type in _PACKED_4BIT:
        return -(-count // 2)
    try:
        itemsize = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(tensor.data_type)).itemsize
    except (KeyError, TypeError, ValueError) as err:
        raise EyesimError(f"{label}: element type {tensor.data_type} cannot be stored externally") from err
    if tensor.data_type == onnx.TensorProto.STRING:
        raise EyesimError(f"{label}: string tensors cannot be stored externally")
    return count * itemsize
