"""Area: a storage-plus-compute area model of an Eyeriss-like accelerator (docs/sweep.md, "Area").

After the method of the ISCA 2016 comparison (Chen, Emer, Sze): storage area is the sum over the
stores (each PE's RF, the GLB) of size × area per byte, where the area per byte falls with the size
of the store; compute area is a fixed area per PE. Our per-byte curve is a power law clamped at the
bit-cell floor; its constants are estimates for a 65 nm process, documented in docs/sweep.md.
"""

from __future__ import annotations

import math
import numbers
import reprlib
from dataclasses import dataclass, fields
from typing import Any

from eyesim.errors import EyesimError
from eyesim.hardware.spec import Hardware

KB = 1024  # bytes
REFERENCE_BITS = 16  # the compute area is given for a 16-bit x 16-bit MAC
AREA_COLUMNS = ("area_mm2", "area_compute_mm2", "area_rf_mm2", "area_glb_mm2")
UM2_PER_MM2 = 1e6
# The allowed range of each constant: wide, but every area computed from it stays a finite float
# (a slope above 1 would make a larger store smaller, and (ref/size)**slope overflow).
_RANGES = {"compute_um2_per_pe": (0.0, 1e9), "um2_per_byte_at_ref": (1e-6, 1e9), "ref_bytes": (1e-3, 1e12),
           "slope": (0.0, 1.0), "floor_um2_per_byte": (0.0, 1e9)}


@dataclass(frozen=True)
class AreaModel:
    """Constants of the area model; every one can be replaced (sweep spec ``area:`` or Python)."""

    compute_um2_per_pe: float = 20_000.0  # MAC and PE control at 16 x 16 bits (ISCA 2016 comparison)
    um2_per_byte_at_ref: float = 32.0  # storage area per byte of a store of ``ref_bytes``
    ref_bytes: float = 512.0  # reference store size: the ISCA 2016 RF (256 16-bit words)
    slope: float = 0.25  # per-byte area falls as size**-slope (32 um2/B at 512 B, 8 um2/B at 128 kB)
    floor_um2_per_byte: float = 4.0  # 65 nm 6T bit cell (~0.5 um2/bit) without periphery

    def __post_init__(self) -> None:
        for item in fields(self):
            value = getattr(self, item.name)
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
                raise EyesimError(f"area.{item.name} must be a finite number, got {reprlib.repr(value)}")
            low, high = _RANGES[item.name]
            if not low <= value <= high:
                raise EyesimError(f"area.{item.name} must be at least {low:g} and at most {high:g}, "
                                  f"got {reprlib.repr(value)}")

    @classmethod
    def from_dict(cls, data: Any, label: str) -> AreaModel:
        """Constants from a mapping such as a sweep spec's ``area:`` section; unknown keys are errors."""
        if data is None:
            return cls()
        if not isinstance(data, dict):
            raise EyesimError(f"{label}: area must be a mapping of constants, got {reprlib.repr(data)}")
        known = {item.name for item in fields(cls)}
        unknown = sorted(set(map(str, data)) - known)
        if unknown:
            raise EyesimError(f"{label}: unknown area constant {reprlib.repr(unknown[0])} "
                              f"(known: {', '.join(sorted(known))})")
        try:
            return cls(**{str(k): v for k, v in data.items()})
        except EyesimError as err:
            raise EyesimError(f"{label}: {err}") from None

    def as_dict(self) -> dict[str, float]:
        return {item.name: float(getattr(self, item.name)) for item in fields(self)}

    def um2_per_byte(self, size_bytes: float) -> float:
        """Area per byte of one store of ``size_bytes``: a power law in size, never below the floor."""
        curve = self.um2_per_byte_at_ref * (self.ref_bytes / size_bytes) ** self.slope
        return max(curve, self.floor_um2_per_byte)

    def store_um2(self, size_bytes: float) -> float:
        """Area of one store of ``size_bytes`` (0 for an empty store)."""
        return 0.0 if size_bytes <= 0 else size_bytes * self.um2_per_byte(size_bytes)

    def of(self, hw: Hardware) -> dict[str, float]:
        """The hardware's area in mm², total and by part (the ``AREA_COLUMNS``)."""
        word_bytes = hw.word_bits / 8
        rf = hw.rf
        stores = (rf.words,) if rf.unified else (rf.filter_words, rf.ifmap_words, rf.psum_words)
        rf_um2 = hw.array.pes * sum(self.store_um2(words * word_bytes) for words in stores)
        glb_um2 = self.store_um2(hw.glb.size_kb * KB)
        bits = hw.widths
        compute_um2 = hw.array.pes * self.compute_um2_per_pe * (bits.weights / REFERENCE_BITS) * (
            bits.ifmap / REFERENCE_BITS)
        parts = {"area_compute_mm2": compute_um2, "area_rf_mm2": rf_um2, "area_glb_mm2": glb_um2}
        return {"area_mm2": sum(parts.values()) / UM2_PER_MM2, **{k: v / UM2_PER_MM2 for k, v in parts.items()}}
