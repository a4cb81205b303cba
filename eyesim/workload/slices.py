"""Filters too wide for a scratchpad or too tall for the array run as slices whose psums accumulate like extra
input channels.

A filter of R x S taps is cut into k = (R / h)·(S / s) slices of h rows and s taps (h divides R and s divides S,
so every MAC is a real one and the counts stay exact); slice (a, b) convolves rows a·h … a·h + h − 1 and taps
b·s … b·s + s − 1 with the ifmap shifted by a·h·Dh rows and b·s·Dw columns. Run as a layer, that is C·k input
channels of an h x s filter, each reading its own window of H' = (E − 1)·U + (h − 1)·Dh + 1 rows and
W' = (F − 1)·Uw + (s − 1)·Dw + 1 columns (DESIGN.md, "Filters wider than a scratchpad or taller than the array").
Channel c' of the sliced layer is slice j = c' mod k of channel c = c' // k, and slice j is (a, b) = divmod(j, S / s).
"""

from __future__ import annotations

from dataclasses import dataclass

from eyesim.workload.layer import Layer


@dataclass(frozen=True)
class Slices:
    """How a layer runs sliced: ``count`` slices of ``height`` rows and ``width`` taps; ``layer`` as given."""

    count: int
    width: int
    layer: Layer
    height: int

    def as_dict(self) -> dict:
        return {"count": self.count, "width": self.width, "height": self.height, "layer_shape": self.layer.shape}

    @property
    def size(self) -> str:
        """A slice's taps (S) or, where the filter rows are cut too, its rows and taps (RxS)."""
        return str(self.width) if self.height == self.layer.R else f"{self.height}x{self.width}"

    @property
    def text(self) -> str:
        return f"{self.count} slices of {self.size}"

    @property
    def short(self) -> str:
        return f"{self.count}x{self.size}"


def divisors_below(n: int) -> list[int]:
    """The sizes a filter dimension of n taps can be cut into: the divisors of n below n, largest first."""
    return [d for d in range(n - 1, 0, -1) if n % d == 0]


def slice_shapes(R: int, S: int) -> list[tuple[int, int]]:
    """Every (rows, taps) slice a filter of R x S can be cut into, other than the whole filter."""
    return [(h, s) for h in (R, *divisors_below(R)) for s in (S, *divisors_below(S)) if (h, s) != (R, S)]


def slice_window(layer: Layer, width: int) -> int:
    """Ifmap columns one slice of ``width`` taps reads: W' = (F − 1)·Uw + (width − 1)·Dw + 1."""
    return (layer.F - 1) * layer.Uw + (width - 1) * layer.Dw + 1


def slice_rows(layer: Layer, height: int) -> int:
    """Ifmap rows one slice of ``height`` filter rows reads: H' = (E − 1)·U + (height − 1)·Dh + 1."""
    return (layer.E - 1) * layer.U + (height - 1) * layer.Dh + 1


def sliced(layer: Layer, width: int, height: int | None = None) -> tuple[Layer, Slices]:
    """``layer`` as run in slices of ``height`` rows (a divisor of R; all R rows if None) and ``width`` taps (a
    divisor of S): C·k channels, an h x s filter, a window of H' x W'."""
    height = layer.R if height is None else height
    if width < 1 or layer.S % width or height < 1 or layer.R % height:
        raise ValueError(f"layer {layer.name!r}: slices of {height}x{width} do not divide R x S = "
                         f"{layer.R}x{layer.S}")
    count = (layer.R // height) * (layer.S // width)
    rows = layer.H if height == layer.R else slice_rows(layer, height)  # an uncut dimension keeps its size
    cols = layer.W if width == layer.S else slice_window(layer, width)
    run = Layer(**{**layer.__dict__, "C": layer.C * count, "R": height, "S": width, "H": rows, "W": cols})
    return run, Slices(count, width, layer, height)
