"""Layer and Workload specs: the shapes of what is computed, in DESIGN.md notation, and where its tensors are."""

from __future__ import annotations

from dataclasses import dataclass, field

from eyesim.errors import EyesimError

SHAPE_KEYS = ("N", "G", "C", "M", "H", "W", "R", "S", "E", "F", "U", "Uw", "Dh", "Dw")
_INT = {int}


@dataclass(frozen=True)
class Transposed:
    """A ConvTranspose run as the convolution over its stride-expanded input (DESIGN.md, "Layers").

    ``strides`` (vertical, horizontal): s − 1 zeros are inserted between input values; ``before``: the
    padding (negative: cropping) ahead of the first input value; ``size``: the real input's height and
    width; ``real_macs``: each input value times each filter tap that lands inside the output.
    """

    strides: tuple[int, int]
    before: tuple[int, int]
    size: tuple[int, int]
    real_macs: int


def out_size(size: int, filt: int, stride: int, dilation: int) -> int:
    """Output extent of a convolution over a padded input of ``size``."""
    return (size - dilation * (filt - 1) - 1) // stride + 1


@dataclass(frozen=True)
class Layer:
    """One layer with MACs, as a (grouped, strided, dilated) convolution.

    C and M are per group; H and W are after padding; U/Uw are the vertical/horizontal
    strides and Dh/Dw the dilations. A fully connected layer is a convolution whose filter
    covers its whole input (E = F = 1).
    """

    name: str
    op: str
    N: int
    G: int
    C: int
    M: int
    H: int
    W: int
    R: int
    S: int
    E: int
    F: int
    U: int = 1
    Uw: int = 1
    Dh: int = 1
    Dw: int = 1
    transposed: Transposed | None = None  # a ConvTranspose: the inserted zeros and the real MACs
    act_operand: bool = False  # the "weights" are an activation (MatMul/Gemm/Einsum of two activations)

    def __post_init__(self) -> None:
        values = (self.N, self.G, self.C, self.M, self.H, self.W, self.R, self.S, self.E, self.F, self.U, self.Uw,
                  self.Dh, self.Dw)  # SHAPE_KEYS' values: plain ints >= 1 pass at once (layers are made often)
        if set(map(type, values)) != _INT or min(values) < 1:
            for key in SHAPE_KEYS:
                value = getattr(self, key)
                if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                    raise EyesimError(f"layer {self.name!r}: {key} must be a positive integer, got {value!r}")
        if out_size(self.H, self.R, self.U, self.Dh) != self.E:
            raise EyesimError(f"layer {self.name!r}: E={self.E} does not follow from H={self.H}, R={self.R}, "
                              f"U={self.U}")
        if out_size(self.W, self.S, self.Uw, self.Dw) != self.F:
            raise EyesimError(f"layer {self.name!r}: F={self.F} does not follow from W={self.W}, S={self.S}, "
                              f"Uw={self.Uw}")

    @property
    def shape(self) -> dict[str, int]:
        return {key: getattr(self, key) for key in SHAPE_KEYS}

    @property
    def macs(self) -> int:
        return self.N * self.G * self.M * self.C * self.E * self.F * self.R * self.S  # of the convolution as run

    @property
    def charged_macs(self) -> int:
        """The MACs the layer really does: a ConvTranspose's products that land in its output, else ``macs``."""
        return self.transposed.real_macs if self.transposed else self.macs

    @property
    def structural(self) -> float:
        """Fraction of the run convolution's MACs whose ifmap operand is a real value (not an inserted zero)."""
        return self.transposed.real_macs / self.macs if self.transposed else 1.0

    @property
    def covers_input(self) -> bool:
        """A fully connected layer written as a convolution whose filter covers its whole input."""
        return self.E == self.F == 1 and self.R == self.H and self.S == self.W and self.R * self.S > 1

    def flattened(self) -> Layer:
        """The same fully connected layer over the flattened input: C*R*S channels, 1 x 1 filters."""
        return Layer(**{**self.__dict__, "C": self.C * self.R * self.S, "H": 1, "W": 1, "R": 1, "S": 1})

    @property
    def patches(self) -> bool:
        """A convolution over non-overlapping patches (stride = filter, no dilation), e.g. a ViT's patch embedding."""
        return (self.R * self.S > 1 and self.transposed is None and (self.U, self.Uw) == (self.R, self.S)
                and self.Dh == self.Dw == 1)

    def as_patches(self) -> Layer:
        """The same MACs as a 1 x 1 convolution over its E x F patches: C*R*S channels (input rows and columns
        past the last patch, which no output reads, are left out)."""
        return Layer(**{**self.__dict__, "C": self.C * self.R * self.S, "H": self.E, "W": self.F, "R": 1, "S": 1,
                        "U": 1, "Uw": 1})

    def with_batch(self, batch: int) -> Layer:
        return Layer(**{**self.__dict__, "N": batch})


@dataclass(frozen=True)
class NotModelled:
    """An op without MACs that the papers' method does not charge; listed, never dropped."""

    name: str
    op: str
    reason: str = "no MACs"  # e.g. "no MACs", "folded into conv1"


@dataclass(frozen=True)
class LayerIO:
    """Where a layer's tensors are in its ONNX graph: to measure densities and count zeros from values."""

    ifmap: str  # the tensor the layer reads (before a folded Pad)
    weights: str  # its constant weight tensor
    ofmap: str  # its output, after a folded BatchNormalization and a directly following activation
    weights_in_out: bool = False  # weights stored (in, out) (Gemm transB=0, MatMul) rather than (out, in, ...)
    pad_top: int = 0  # leading zero padding of the ifmap (conv pads plus a folded Pad)
    pad_left: int = 0
    pad_bottom: int = 0  # trailing zero padding (the stored ifmap is the padded one: DESIGN.md, "Zeros and bit widths")
    pad_right: int = 0
    network_input: bool = False  # the ifmap is the network's input image (never compressed in DRAM)
    # an activation second operand (Layer.act_operand): its names upstream, whether it is the network's input
    # image, and the axis orders that bring both operands to (leading..., rows, K) and (leading..., K, out)
    weights_tensors: tuple[str, ...] = ()
    weights_input: bool = False
    operand_axes: tuple[tuple[int, ...], tuple[int, ...]] = ((), ())
    # Densities belong to tensors (onnx/links.py): the names of the fmaps, and the layers sharing them.
    ifmap_tensors: tuple[str, ...] = ()  # the ifmap's names, through value-preserving ops upstream
    ofmap_tensors: tuple[str, ...] = ()  # the ofmap's names, through value-preserving ops downstream
    readers: tuple[str, ...] = ()  # layers whose ifmap is this ofmap, values unchanged
    downstream: tuple[tuple[str, tuple[str, ...]], ...] = ()  # (layer, ops crossed) past value-changing ops


@dataclass(frozen=True)
class Workload:
    """A model's layers with MACs, in graph order, and the ops that are listed but not charged."""

    model: str
    batch: int
    layers: tuple[Layer, ...]
    not_modelled: tuple[NotModelled, ...] = field(default_factory=tuple)
    io: dict[str, LayerIO] = field(default_factory=dict, compare=False, hash=False)  # by layer name
    inputs: dict[str, tuple[int, ...]] = field(default_factory=dict, compare=False, hash=False)  # data inputs' dims

    def layer(self, name: str) -> Layer:
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise EyesimError(f"model {self.model!r} has no layer named {name!r}")
