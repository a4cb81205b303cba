"""Mapping: how a layer is laid onto the RS array. The (m, n, e, p, q, r, t) spec, its legality, pinned files."""

from __future__ import annotations

import reprlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from eyesim import dataflow as df
from eyesim.errors import EyesimError, located
from eyesim.yamlio import read_yaml

MAX_PARAM = 2**31 - 1  # the kernels count in int64 (p*t, q*r stay below 2**62); no layer dimension comes near
_REPR = reprlib.Repr()  # a value in a message, bounded whatever the file holds
_REPR.maxstring = _REPR.maxother = 60

CONSTRAINTS = {
    df.BAD_N: "n <= N (batch items per pass)",
    df.BAD_E: "e <= E (ofmap rows per strip)",
    df.BAD_QR: "q*r <= C (input channels per pass)",
    df.BAD_PT: "p*t <= m <= M (filters per pass and per GLB psum chunk)",
    df.BAD_M_MULTIPLE: "m is a multiple of p*t, or m = M",
    df.BAD_RF_FILTER: "filter scratchpad: p*q*S weights fit",
    df.BAD_RF_IFMAP: "ifmap scratchpad: q*S ifmap values fit",
    df.BAD_RF_PSUM: "psum scratchpad: p psums fit",
    df.BAD_RF_UNIFIED: "unified RF: p*q*S weights + q*S ifmap values + p psums fit",
    df.BAD_ARRAY: "array: r*t PE sets of R x e fit on the rows x cols array",
    df.BAD_GLB: "GLB: n*m*e*F psums + n*q*r*(strip rows)*(used cols) ifmap values fit",
}


@dataclass(frozen=True)
class Mapping:
    """RS mapping parameters (DESIGN.md, "Notation"): m, n, e, p, q, r, t, all positive integers."""

    m: int
    n: int
    e: int
    p: int
    q: int
    r: int
    t: int

    def __post_init__(self) -> None:
        for key, value in zip(df.MAPPING_KEYS, (self.m, self.n, self.e, self.p, self.q, self.r, self.t), strict=True):
            if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_PARAM:
                shown = _REPR.repr(value)
                raise EyesimError(f"mapping {key} must be a whole number from 1 to {MAX_PARAM}, got {shown}")

    def vector(self) -> np.ndarray:
        return np.array([self.m, self.n, self.e, self.p, self.q, self.r, self.t], dtype=np.int64)

    @classmethod
    def from_vector(cls, vec: np.ndarray) -> Mapping:
        return cls(*vec.tolist())  # an int64 vector's items as Python ints, in one call

    def as_dict(self) -> dict[str, int]:
        return {key: getattr(self, key) for key in df.MAPPING_KEYS}


def violation(code: int) -> str:
    return CONSTRAINTS[int(code)]


def load_mapping_file(path: str | Path) -> dict[str, Mapping]:
    """Read a pinned-mapping YAML file: ``layer name: {m: .., n: .., e: .., p: .., q: .., r: .., t: ..}``."""
    path = Path(path)
    data = read_yaml(path, "mapping file")
    if not isinstance(data, dict) or not data:
        raise located(str(path), f"expected a mapping of layer names to {{m, n, e, p, q, r, t}}, got {_show(data)}")
    return {_layer_name(path, name): _parse_entry(path, _show(name), entry) for name, entry in data.items()}


def _layer_name(path: Path, name: object) -> str:
    """A layer name: printable text or a number as YAML gives it (a list, a mapping or a line break is no name)."""
    if isinstance(name, str | int | float) and not isinstance(name, bool) and str(name).strip() and (
            str(name).isprintable()):
        return str(name)
    raise located(str(path), f"{_REPR.repr(name)} is not a layer name (write the ONNX node's name as the key)")


def _parse_entry(path: Path, name: str, entry: object) -> Mapping:
    if not isinstance(entry, dict):
        raise located(str(path), f"{name}: expected {{m, n, e, p, q, r, t}}, got {_show(entry)}")
    keys = {str(key): value for key, value in entry.items()}
    missing = [k for k in df.MAPPING_KEYS if k not in keys]
    unknown = sorted(set(keys) - set(df.MAPPING_KEYS))
    if missing or unknown:
        what = f"missing {', '.join(missing)}" if missing else f"unknown key {_show(unknown[0])}"
        raise located(str(path), f"{name}: {what} (a mapping needs exactly m, n, e, p, q, r, t)")
    try:
        return Mapping(**{k: keys[k] for k in df.MAPPING_KEYS})
    except EyesimError as err:
        raise located(str(path), f"{name}: {err}") from None


def _show(value: object) -> str:
    """A value for a message: its bounded repr, a name as it is (at most 60 characters)."""
    text = value if isinstance(value, str) else _REPR.repr(value)
    return text if len(text) <= 60 else f"{text[:57]}..."
