"""Size limits: every count eyesim makes stays exact in 64-bit integers, and no kernel table outgrows memory.

Every access count of a layer is at most its MACs or one of its tensors' words (DESIGN.md, "Counting"
and "Limits"); the kernels multiply a count by at most 32 bits and add two such products, so with the
MACs and every tensor's words at most ``MAX_WORDS`` = 2^56 each intermediate stays below 2^62. The
search keeps int64 tables over M and over E (≤ H) and marks ifmap rows and columns, so M, H and W are
at most ``MAX_DIM``, and the search's scan (E·M pairs, E²·R rows for dilated strips) at most ``MAX_SEARCH``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import TYPE_CHECKING

from eyesim.errors import EyesimError

if TYPE_CHECKING:
    from eyesim.workload.layer import Layer, Workload

MAX_WORDS = 2**56  # MACs and words of any tensor
MAX_DIM = 2**20  # M, H and W of a layer: the search keeps tables as long and loops over E
MAX_SEARCH = 2**31  # E*M pairs the search scans; E*E*R rows it marks when a strip's rows are not one span
_LIMIT_TEXT = f"2^56 = {MAX_WORDS:.3g}, the most eyesim counts exactly in 64-bit integers"
_BATCH_SIZES = ("MACs", "ifmap words", "ofmap words")  # the sizes that grow with the batch


class TooLarge(EyesimError):
    """A size above a limit; when it grows with the batch, the caller can say which batch fits."""


def check_dims(dims: Iterable[int], label: str) -> int:
    """The number of values of a tensor with ``dims`` (all known, >= 0); TooLarge above MAX_WORDS."""
    dims = list(dims)
    if any(d < 0 for d in dims):
        raise EyesimError(f"{label} has the negative dims {dims}")
    if any(d > MAX_WORDS for d in dims) or math.prod(dims) > MAX_WORDS:
        raise TooLarge(f"{label} of dims {dims} would hold {math.prod(dims):.3g} values, above {_LIMIT_TEXT}")
    return math.prod(dims)


def layer_sizes(layer: Layer) -> dict[str, int]:
    """The sizes that bound every count of the layer (DESIGN.md, "Limits")."""
    return {"MACs": layer.macs, "ifmap words": layer.N * layer.G * layer.C * layer.H * layer.W,
            "ofmap words": layer.N * layer.G * layer.M * layer.E * layer.F,
            "weight words": layer.G * layer.M * layer.C * layer.R * layer.S}


def check_workload(workload: Workload) -> None:
    """Refuse (TooLarge) a layer with a dimension or a count the kernels could not hold exactly."""
    for layer in workload.layers:
        check_layer(layer)


def check_layer(layer: Layer) -> None:
    """``check_workload`` of one layer; also of a layer as run (sliced, its strips' rows may no longer be one span)."""
    for key in ("M", "H", "W"):
        if getattr(layer, key) > MAX_DIM:
            raise TooLarge(f"layer {layer.name!r} ({_shape(layer)}): {key}={getattr(layer, key):,} is above "
                           f"{MAX_DIM:,} (2^20), the most eyesim's mapping search handles")
    work = {"E*M": layer.E * layer.M}
    if layer.Dh > 1 or layer.U > layer.R:  # a strip's rows are not one span: each is marked (E^2 R)
        work["E*E*R"] = layer.E * layer.E * layer.R
    for what, size in work.items():
        if size > MAX_SEARCH:
            raise TooLarge(f"layer {layer.name!r} ({_shape(layer)}): {what} = {size:,} is above {MAX_SEARCH:,} "
                           "(2^31), the most eyesim's mapping search scans in seconds")
    key, value = max(layer.shape.items(), key=lambda item: item[1])
    if value > MAX_WORDS:
        raise TooLarge(f"layer {layer.name!r} ({_shape(layer)}): {key}={value:.3g} is above {_LIMIT_TEXT}")
    for what, size in layer_sizes(layer).items():
        if size > MAX_WORDS:
            raise TooLarge(f"layer {layer.name!r} ({_shape(layer)}) would count {size:.3g} {what}, above "
                           f"{_LIMIT_TEXT}")


def _shape(layer: Layer) -> str:
    """The layer's shape for a refusal (built only then: a workload has thousands of layers that pass)."""
    return " ".join(f"{k}={v}" for k, v in layer.shape.items())


def largest_batch(workload: Workload) -> int:
    """The largest batch at which every layer's batch-grown sizes stay within MAX_WORDS (they grow linearly)."""
    return min((MAX_WORDS * workload.batch // size for layer in workload.layers
                for what, size in layer_sizes(layer).items() if what in _BATCH_SIZES), default=MAX_WORDS)


def batch_refusal(batch: int, reason: str, fitting: Workload) -> EyesimError:
    """The one-line refusal of ``--batch`` ``batch``, with the largest batch that ``fitting`` (smaller) shows."""
    return EyesimError(f"--batch {batch} is too large for this model: {reason}; the largest batch it allows is "
                       f"{largest_batch(fitting):,}")


def rebatched(workload: Workload, batch: int) -> Workload:
    """``workload`` with every layer at ``batch``, checked; a batch too large is refused with the largest that fits.

    Only a workload whose every layer has N = its batch can be re-batched (an input led by a time axis cannot).
    """
    from eyesim.workload.layer import Workload

    if batch != workload.batch:
        odd = next((layer for layer in workload.layers if workload.batch != layer.N), None)
        if odd is not None:
            raise EyesimError(f"workload {workload.model!r}: layer {odd.name!r} has N={odd.N}, not the batch "
                              f"{workload.batch}, so it cannot be re-batched; load the ONNX model at batch {batch} "
                              "(or with input_shapes) instead")
        workload = Workload(workload.model, batch, tuple(layer.with_batch(batch) for layer in workload.layers),
                            workload.not_modelled, workload.io, workload.inputs)
    try:
        check_workload(workload)
    except TooLarge as err:
        if batch == 1 or any(batch != layer.N for layer in workload.layers):
            raise
        raise batch_refusal(batch, str(err), rebatched(workload, 1)) from err
    return workload
