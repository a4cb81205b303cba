"""Filters wider than a scratchpad run as slices whose psums accumulate like extra input channels.

A filter row of S taps is cut into k = S / s slices of s taps (s divides S, so every MAC is a real
one and the counts stay exact); slice j convolves taps j·s … j·s + s − 1 with the ifmap shifted by
j·s·Dw columns. Run as a layer, that is C·k input channels of filter width s, each reading its own
window of W' = (F − 1)·Uw + (s − 1)·Dw + 1 columns (DESIGN.md, "Filters wider than a scratchpad").
Channel c' of the sliced layer is slice j = c' mod k of channel c = c' // k.
"""

from __future__ import annotations

from dataclasses import dataclass

from eyesim.workload.layer import Layer


@dataclass(frozen=True)
class Slices:
    """How a layer runs sliced: ``count`` slices of ``width`` taps; ``layer`` is the layer as given."""

    count: int
    width: int
    layer: Layer

    def as_dict(self) -> dict:
        return {"count": self.count, "width": self.width, "layer_shape": self.layer.shape}

    @property
    def text(self) -> str:
        return f"{self.count} slices of {self.width}"


def slice_widths(S: int) -> list[int]:
    """The slice widths a filter row of S taps can be cut into: the divisors of S below S, widest first."""
    return [s for s in range(S - 1, 0, -1) if S % s == 0]


def slice_window(layer: Layer, width: int) -> int:
    """Ifmap columns one slice of ``width`` taps reads: W' = (F − 1)·Uw + (width − 1)·Dw + 1."""
    return (layer.F - 1) * layer.Uw + (width - 1) * layer.Dw + 1


def sliced(layer: Layer, width: int) -> tuple[Layer, Slices]:
    """``layer`` as run in slices of ``width`` taps (a divisor of S): C·k channels, filter width s, window W'."""
    if width < 1 or layer.S % width:
        raise ValueError(f"layer {layer.name!r}: slice width {width} does not divide S={layer.S}")
    count = layer.S // width
    run = Layer(**{**layer.__dict__, "C": layer.C * count, "S": width, "W": slice_window(layer, width)})
    return run, Slices(count, width, layer)
