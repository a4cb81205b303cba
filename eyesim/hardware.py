"""Hardware: what the layers run on. Frozen specs of an Eyeriss-like accelerator, loaded from YAML."""

from __future__ import annotations

import difflib
import math
import numbers
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from eyesim.errors import located
from eyesim.yamlio import read_yaml

LEVELS = ("dram", "glb", "array", "rf")
COSTS = (*LEVELS, "mac")  # the figures in the ``energy`` section
NOT_GIVEN = "not given"
COMPRESSIONS = ("none", "rlc", "sigmap")  # how fmaps are stored in DRAM (DESIGN §3.1, §5)


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
class SparsitySpec:
    """What the hardware does with zeros (DESIGN §3.1, §5)."""

    zero_gating: bool = False  # a zero ifmap skips the MAC and the filter RF read (energy, not time)
    dram_compression: str = "none"  # fmaps in DRAM: none, rlc (the chip's run-length code) or sigmap
    weight_compression: str = "none"  # weights in DRAM, likewise (the chip stores them uncompressed)


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

    @property
    def widths(self) -> Bits:
        """The bit widths in force."""
        return self.bits or Bits(self.word_bits, self.word_bits, self.word_bits)

    def __post_init__(self) -> None:
        _validate(hardware_to_dict(self), self.source or "hardware")


# --- schema: one row per field of a hardware file, addressed by dotted path --------------------


@dataclass(frozen=True)
class _Rule:
    """How one field is checked: its type, its bounds and whether it must be given."""

    kind: type  # int, float, str or bool
    low: float = 0.0  # lower bound of a number
    strict: bool = True  # value > low (else value >= low)
    high: float | None = None  # inclusive upper bound
    required: bool = True
    choices: tuple[str, ...] = ()  # allowed values of a str field (any if empty)


# Upper bounds keep every capacity, in bits, and every count well inside the kernels' int64.
_MAX_COUNT, _MAX_AMOUNT = 2**24, 1e9
_COUNT, _AMOUNT = _Rule(int, high=_MAX_COUNT), _Rule(float, high=_MAX_AMOUNT)
_OPT_COUNT = _Rule(int, high=_MAX_COUNT, required=False)

FIELDS: dict[str, _Rule] = {
    "name": _Rule(str),
    "clock_mhz": _AMOUNT,
    "word_bits": _Rule(int, low=1, strict=False, high=32),
    **{f"bits.{dtype}": _Rule(int, low=1, strict=False, high=32, required=False)
       for dtype in ("weights", "ifmap", "psum")},
    "array.rows": _COUNT,
    "array.cols": _COUNT,
    "rf.words": _OPT_COUNT,
    "rf.filter_words": _OPT_COUNT,
    "rf.ifmap_words": _OPT_COUNT,
    "rf.psum_words": _OPT_COUNT,
    "glb.size_kb": _AMOUNT,
    "glb.filter_kb": _Rule(float, strict=False, high=_MAX_AMOUNT, required=False),
    "dram.link_bits": _COUNT,
    "dram.link_mhz": _AMOUNT,
    **{f"energy.{cost}": _AMOUNT for cost in COSTS},
    "energy.pj_per_unit": _Rule(float, high=_MAX_AMOUNT, required=False),
    **{f"energy.provenance.{cost}": _Rule(str, required=False) for cost in (*COSTS, "pj_per_unit")},
    "sparsity.zero_gating": _Rule(bool, required=False),
    "sparsity.dram_compression": _Rule(str, required=False, choices=COMPRESSIONS),
    "sparsity.weight_compression": _Rule(str, required=False, choices=COMPRESSIONS),
}
SECTIONS = frozenset(path.rsplit(".", 1)[0] for path in FIELDS if "." in path)
_RF_SPLIT = ("rf.filter_words", "rf.ifmap_words", "rf.psum_words")


# --- public API ---------------------------------------------------------------------------------


def load_hardware(path: str | os.PathLike[str]) -> Hardware:
    """Read, validate and return the hardware described by the YAML file at ``path``."""
    source = str(path)
    return hardware_from_dict(read_yaml(source, "hardware file"), source)


def hardware_from_dict(data: dict[str, Any], source: str) -> Hardware:
    """Validate a hardware mapping (the YAML schema) and build it; errors name ``source``."""
    return _build(_validate(data, source), source)


def hardware_to_dict(hw: Hardware) -> dict[str, Any]:
    """The hardware as a plain mapping in the YAML schema (inverse of hardware_from_dict)."""
    nested: dict[str, Any] = {}
    for path in FIELDS:
        value = _lookup(hw, path)
        if value is not None:
            _put(nested, path, _plain(value))
    return nested


def with_overrides(hw: Hardware, overrides: Mapping[str, object]) -> Hardware:
    """A validated copy of ``hw`` with fields replaced by dotted path, e.g. ``{"glb.size_kb": 64}``.

    Overriding ``rf.words`` makes the RF unified; overriding a split field drops ``rf.words``.
    """
    label = f"{hw.source or 'hardware'} (with overrides)"
    data = hardware_to_dict(hw)
    for path, value in overrides.items():
        if path not in FIELDS:
            raise located(label, f"unknown field {path}{_suggest(str(path))}")
        _drop_other_rf_layout(data, path)
        _put(data, path, value)
    return _build(_validate(data, label), hw.source)


# --- reading ------------------------------------------------------------------------------------


# --- validation ---------------------------------------------------------------------------------


def _validate(data: object, label: str) -> dict[str, Any]:
    """Check ``data`` against FIELDS; return its fields flattened to dotted paths, normalized."""
    if not isinstance(data, dict):
        raise located(label, f"top level must be a mapping of hardware fields, got {_show(data)}")
    flat = _flatten(data, "", label)
    for path, rule in FIELDS.items():
        if path in flat:
            flat[path] = _check_value(path, flat[path], rule, label)
        elif rule.required:
            raise located(label, f"missing required field {path}")
    _check_rf(flat, label)
    _check_glb(flat, label)
    return flat


def _flatten(data: dict[Any, Any], prefix: str, label: str) -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in data.items():
        path = f"{prefix}{key}"
        if path in FIELDS:
            flat[path] = value
        elif path in SECTIONS:
            value = {} if value is None else value
            if not isinstance(value, dict):
                raise located(label, f"{path} must be a mapping of fields, got {_show(value)}")
            flat.update(_flatten(value, f"{path}.", label))
        else:
            raise located(label, f"unknown key {path}{_suggest(path)}")
    return flat


def _check_value(path: str, value: object, rule: _Rule, label: str) -> object:
    if rule.kind is bool:
        if isinstance(value, bool):
            return value
        raise located(label, f"{path} must be true or false, got {_show(value)}")
    if rule.kind is str:
        if rule.choices and value not in rule.choices:
            raise located(label, f"{path} must be one of {', '.join(rule.choices)}, got {_show(value)}")
        if isinstance(value, str) and value.strip():
            return value
        raise located(label, f"{path} must be a non-empty string, got {_show(value)}")
    wanted = "an integer" if rule.kind is int else "a number"
    wrong_type = located(label, f"{path} must be {wanted}, got {_show(value)}{_text_hint(value)}")
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise wrong_type
    if rule.kind is int and not isinstance(value, numbers.Integral):
        raise wrong_type
    number = float(value) if abs(value) < 1e300 else math.inf
    if not math.isfinite(number):
        raise located(label, f"{path} must be a finite number, got {_show(value)}")
    too_low = number < rule.low or (rule.strict and number == rule.low)
    if too_low or (rule.high is not None and number > rule.high):
        bounds = _bounds(rule) if too_low or rule.high < _MAX_COUNT else f"at most {rule.high:.10g}"
        raise located(label, f"{path} must be {bounds}, got {_show(value)}")
    return rule.kind(value)


def _check_rf(flat: dict[str, Any], label: str) -> None:
    given = [path for path in ("rf.words", *_RF_SPLIT) if path in flat]
    if "rf.words" in given and len(given) > 1:
        both = ", ".join(given)
        raise located(label, f"rf must give either words (unified) or the three split fields, not both; got {both}")
    if not given:
        raise located(label, "missing required field rf.words (or rf.filter_words, rf.ifmap_words, rf.psum_words)")
    missing = [path for path in _RF_SPLIT if path not in flat]
    if "rf.words" not in given and missing:
        raise located(label, f"missing required field {missing[0]} (a split RF needs {', '.join(_RF_SPLIT)})")


def _check_glb(flat: dict[str, Any], label: str) -> None:
    size, staged = flat["glb.size_kb"], flat.get("glb.filter_kb", 0.0)
    if staged >= size:
        raise located(label, f"glb.filter_kb must be < glb.size_kb ({size:g}), got {staged:g}")


def _text_hint(value: object) -> str:
    """A hint for numbers that arrived as text (quoted, or YAML 1.1 exponents such as 2e2)."""
    if not isinstance(value, str):
        return ""
    try:
        float(value)
    except ValueError:
        return ""
    return " (given as text; write a plain number such as 200 or 2.0e+2)"


def _bounds(rule: _Rule) -> str:
    if rule.high is not None and rule.high < _MAX_COUNT:  # a real range, not just the int64 guard
        return f"between {rule.low:g} and {rule.high:g}"
    return f"{'>' if rule.strict else '>='} {rule.low:g}"


# --- building and helpers -----------------------------------------------------------------------


def _build(flat: dict[str, Any], source: str) -> Hardware:
    provenance = {cost: flat.get(f"energy.provenance.{cost}", NOT_GIVEN) for cost in (*COSTS, "pj_per_unit")}
    return Hardware(
        name=flat["name"],
        array=ArraySpec(**_section(flat, "array")),
        rf=RFSpec(**_section(flat, "rf")),
        glb=GLBSpec(**_section(flat, "glb")),
        dram=DRAMSpec(**_section(flat, "dram")),
        clock_mhz=flat["clock_mhz"],
        word_bits=flat["word_bits"],
        energy=EnergySpec(**_section(flat, "energy"), provenance=provenance),
        bits=_bits(flat),
        sparsity=SparsitySpec(**_section(flat, "sparsity")),
        source=source,
    )


def _bits(flat: dict[str, Any]) -> Bits | None:
    given = _section(flat, "bits")
    if not given:
        return None
    return Bits(**{dtype: given.get(dtype, flat["word_bits"]) for dtype in ("weights", "ifmap", "psum")})


def _section(flat: dict[str, Any], name: str) -> dict[str, Any]:
    """The direct fields of section ``name`` (not its sub-sections), keyed by their last part."""
    start = f"{name}."
    return {
        path[len(start) :]: value for path, value in flat.items() if path.startswith(start) and path.count(".") == 1
    }


def _lookup(hw: Hardware, path: str) -> Any:
    node: Any = hw
    for part in path.split("."):
        node = node.get(part) if isinstance(node, dict) else getattr(node, part, None)
    return node


def _put(nested: dict[str, Any], path: str, value: object) -> None:
    *parents, leaf = path.split(".")
    for part in parents:
        if not isinstance(nested.get(part), dict):
            nested[part] = {}
        nested = nested[part]
    nested[leaf] = value


def _drop_other_rf_layout(data: dict[str, Any], path: str) -> None:
    """Overriding one RF layout (unified or split) removes the other one's fields."""
    rf = data.get("rf", {})
    if path == "rf.words":
        for split in _RF_SPLIT:
            rf.pop(split.split(".")[1], None)
    elif path in _RF_SPLIT:
        rf.pop("words", None)


def _plain(value: object) -> object:
    """Numbers as plain int/float (e.g. numpy scalars), so the mapping dumps to YAML or JSON."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return value
    return int(value) if isinstance(value, numbers.Integral) else float(value)


def _suggest(path: str) -> str:
    """' (did you mean X?)' for the closest known key, else the keys known at that level."""
    prefix, _, key = path.rpartition(".")
    start = f"{prefix}." if prefix else ""
    known = sorted({p[len(start) :].split(".")[0] for p in FIELDS if p.startswith(start)})
    close = difflib.get_close_matches(key, known, n=1) or [name for name in known if name.startswith(key)][:1]
    if close:
        return f" (did you mean {prefix + '.' if prefix else ''}{close[0]}?)"
    elsewhere = [p for p in FIELDS if p.rpartition(".")[2] == key] or difflib.get_close_matches(path, list(FIELDS), n=1)
    if elsewhere:
        return f" (did you mean {elsewhere[0]}?)"
    return f" (known here: {', '.join(known)})" if known else ""


def _show(value: object) -> str:
    text = "nothing" if value is None else str(value) if isinstance(value, numbers.Real) else repr(value)
    return text if len(text) <= 60 else f"{text[:57]}..."


