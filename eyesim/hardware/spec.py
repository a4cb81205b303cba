"""Frozen specs of an Eyeriss-like accelerator: array, RF, GLB, DRAM link, energy costs, zeros, bit widths."""

from __future__ import annotations

import numbers
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from eyesim.hardware.schema import FIELDS, NOT_GIVEN, set_path, validate

_PREVALIDATED: ContextVar[bool] = ContextVar("eyesim_hardware_prevalidated", default=False)


@dataclass(frozen=True)
class ArraySpec:
    rows: int  # J: physical PE rows
    cols: int  # K: physical PE columns

    @property
    def pes(self) -> int:
        return self.rows * self.cols


@dataclass(frozen=True)
class RFSpec:
    """Per-PE register file: one unified store (``words``) or three scratchpads."""

    words: int | None = None
    filter_words: int | None = None
    ifmap_words: int | None = None
    psum_words: int | None = None

    @property
    def unified(self) -> bool:
        return self.words is not None


@dataclass(frozen=True)
class GLBSpec:
    size_kb: float  # whole global buffer, kB (1 kB = 1024 bytes)
    filter_kb: float = 0.0  # part reserved for staging filters; 0 = filters bypass the GLB

    @property
    def fmap_bits(self) -> int:
        """Capacity left for ifmaps and psums, in bits."""
        return int((self.size_kb - self.filter_kb) * 1024 * 8)

    @property
    def stages_filters(self) -> bool:
        return self.filter_kb > 0


@dataclass(frozen=True)
class DRAMSpec:
    link_bits: int
    link_mhz: float


@dataclass(frozen=True)
class EnergySpec:
    """Normalized energy per 16-bit access at each level (one 16-bit MAC = 1), with provenance."""

    dram: float
    glb: float
    array: float
    rf: float
    mac: float
    pj_per_unit: float | None = None  # picojoules per normalized unit (technology scale); None: not given
    provenance: dict[str, str] = field(default_factory=dict, hash=False, compare=False)

    def note(self, cost: str) -> str:
        """Where the figure for ``cost`` (a level or ``mac``) came from."""
        return self.provenance.get(cost, NOT_GIVEN)


@dataclass(frozen=True)
class NocSpec:
    """The networks that feed the PE array and drain it, and the PE pipeline (DESIGN.md, "Time").

    Defaults are the Eyeriss chip's (JSSC 2017): 64-bit filter and psum input buses, a 16-bit ifmap
    bus, a 64-bit global output network, 64-bit links between neighbouring PEs, 3 pipeline stages.
    """

    filter_bits: int = 64  # filter input bus, GLB -> PEs
    ifmap_bits: int = 16  # ifmap input bus
    psum_in_bits: int = 64  # psum input bus (earlier channels' psums back into the array)
    psum_out_bits: int = 64  # global output network, PEs -> GLB
    local_bits: int = 64  # psum link between neighbouring PEs
    pipeline_stages: int = 3  # PE pipeline depth


@dataclass(frozen=True)
class SparsitySpec:
    """What the hardware does with zeros (DESIGN.md, "Zeros and bit widths")."""

    zero_gating: bool = False  # a zero ifmap skips the MAC and the filter RF read (energy, not time)
    gate_psums: bool = False  # with zero_gating, it also skips the psum RF read and write (the chip does not)
    dram_compression: str = "none"  # fmaps in DRAM: none, rlc (the chip's run-length code) or sigmap
    weight_compression: str = "none"  # weights in DRAM, likewise (the chip stores them uncompressed)


@dataclass(frozen=True)
class NativeSpec:
    """The layer shapes the chip runs natively (``native`` section; None: no limit given).

    Reported for each layer outside them, never enforced: eyesim runs such a layer as the model
    allows (a filter wider than the scratchpads as slices). C and M are per group.
    """

    max_filter_height: int | None = None  # R
    max_filter_width: int | None = None  # S
    max_filters: int | None = None  # M
    max_channels: int | None = None  # C
    vertical_strides: tuple[int, ...] | None = None  # the strides U allowed
    max_horizontal_stride: int | None = None  # Uw

    @property
    def declared(self) -> bool:
        return any(value is not None for value in self.__dict__.values())

    def outside(self, shape: dict[str, int]) -> tuple[str, ...]:
        """How a layer of ``shape`` (Layer.shape) falls outside the native shapes, one text per limit broken."""
        found = [f"{what} {shape[key]} > {limit}" for what, key, limit in (
            ("filter height", "R", self.max_filter_height), ("filter width", "S", self.max_filter_width),
            ("filters M", "M", self.max_filters), ("channels C", "C", self.max_channels))
            if limit is not None and shape[key] > limit]
        if self.vertical_strides is not None and shape["U"] not in self.vertical_strides:
            found.append(f"vertical stride {shape['U']} not in {', '.join(map(str, self.vertical_strides))}")
        if self.max_horizontal_stride is not None and shape["Uw"] > self.max_horizontal_stride:
            found.append(f"horizontal stride {shape['Uw']} > {self.max_horizontal_stride}")
        return tuple(found)


@dataclass(frozen=True)
class Bits:
    """Bit widths per data type (weights, ifmap, psum); each defaults to ``word_bits``."""

    weights: int
    ifmap: int
    psum: int


@dataclass(frozen=True)
class Hardware:
    name: str
    array: ArraySpec
    rf: RFSpec
    glb: GLBSpec
    dram: DRAMSpec
    clock_mhz: float
    word_bits: int
    energy: EnergySpec
    bits: Bits | None = None  # None: every data type is word_bits wide
    sparsity: SparsitySpec = field(default_factory=SparsitySpec)
    source: str = ""  # file it was loaded from
    noc: NocSpec = field(default_factory=NocSpec)
    native: NativeSpec = field(default_factory=NativeSpec)  # the natively supported layer shapes, if declared

    @property
    def widths(self) -> Bits:
        """The bit widths in force."""
        return self.bits or Bits(self.word_bits, self.word_bits, self.word_bits)

    def __post_init__(self) -> None:
        if not _PREVALIDATED.get():  # built from fields validate() just passed (load.py): checking again is waste
            validate(hardware_to_dict(self), self.source or "hardware")


def prevalidated(build: Callable[[], Hardware]) -> Hardware:
    """``build()``, a Hardware made of fields that ``validate`` has just passed, without validating them again."""
    token = _PREVALIDATED.set(True)
    try:
        return build()
    finally:
        _PREVALIDATED.reset(token)


def hardware_to_dict(hw: Hardware) -> dict[str, Any]:
    """The hardware as a plain mapping in the YAML schema (inverse of hardware_from_dict)."""
    nested: dict[str, Any] = {}
    for path in FIELDS:
        value = _lookup(hw, path)
        if value is not None:
            set_path(nested, path, _plain(value))
    return nested


def _lookup(hw: Hardware, path: str) -> Any:
    node: Any = hw
    for part in path.split("."):
        node = node.get(part) if isinstance(node, dict) else getattr(node, part, None)
    return node


def _plain(value: object) -> object:
    """Numbers as plain int/float (e.g. numpy scalars), so the mapping dumps to YAML or JSON."""
    if isinstance(value, tuple):
        return [_plain(item) for item in value]
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return value
    return int(value) if isinstance(value, numbers.Integral) else float(value)
