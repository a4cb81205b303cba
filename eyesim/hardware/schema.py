"""The hardware file's schema: each field by dotted path with its checks, and a Hardware as a plain mapping."""

from __future__ import annotations

import difflib
import math
import numbers
import reprlib
from dataclasses import dataclass
from typing import Any

from eyesim.errors import located

LEVELS = ("dram", "glb", "array", "rf")
COSTS = (*LEVELS, "mac")  # the figures in the ``energy`` section
NOT_GIVEN = "not given"
COMPRESSIONS = ("none", "rlc", "sigmap")  # how fmaps are stored in DRAM (DESIGN.md, "Zeros and bit widths")
_REPR = reprlib.Repr()  # bounded: a value in a message never costs more than its first few items
_REPR.maxstring = _REPR.maxother = 60
# the on-chip networks' widths in bits and the PE pipeline's depth (DESIGN.md, "Time")
NOC_FIELDS = ("filter_bits", "ifmap_bits", "psum_in_bits", "psum_out_bits", "local_bits", "pipeline_stages")
NATIVE_MAXIMA = ("max_filter_height", "max_filter_width", "max_filters", "max_channels", "max_horizontal_stride")


@dataclass(frozen=True)
class _Rule:
    """How one field is checked: its type, its inclusive range (numbers) and whether it must be given."""

    kind: type  # int, float, str, bool or tuple (a list of integers in the range)
    low: float = 0.0  # least allowed number
    high: float = 0.0  # greatest allowed number
    required: bool = True
    choices: tuple[str, ...] = ()  # allowed values of a str field (any if empty)


# Every range is wide enough for any real design and narrow enough that nothing computed from it
# overflows: capacities in bits stay far inside the kernels' int64 (2**24 words x 32 bits; 1e9 kB is
# 8e12 bits), cycles and energies stay finite floats, and no time or share divides by ~0.
_MHZ = 1e-3, 1e6  # 1 kHz to 1 THz
_COST = 1e-6, 1e9  # normalized energy per access (one 16-bit MAC = 1), and pJ per unit
_KB = 1e-3, 1e9  # a byte to a terabyte
_PES, _WORDS, _BITS = (1, 2**16), (1, 2**24), (1, 32)
_OPT_WORDS = _Rule(int, *_WORDS, required=False)
FIELDS: dict[str, _Rule] = {
    "name": _Rule(str),
    "clock_mhz": _Rule(float, *_MHZ),
    "word_bits": _Rule(int, *_BITS),
    **{f"bits.{dtype}": _Rule(int, *_BITS, required=False) for dtype in ("weights", "ifmap", "psum")},
    "array.rows": _Rule(int, *_PES),
    "array.cols": _Rule(int, *_PES),
    "rf.words": _OPT_WORDS,
    "rf.filter_words": _OPT_WORDS,
    "rf.ifmap_words": _OPT_WORDS,
    "rf.psum_words": _OPT_WORDS,
    "glb.size_kb": _Rule(float, *_KB),
    "glb.filter_kb": _Rule(float, 0.0, _KB[1], required=False),
    "dram.link_bits": _Rule(int, 1, 2**16),
    "dram.link_mhz": _Rule(float, *_MHZ),
    **{f"energy.{cost}": _Rule(float, *_COST) for cost in COSTS},
    "energy.pj_per_unit": _Rule(float, *_COST, required=False),
    **{f"energy.provenance.{cost}": _Rule(str, required=False) for cost in (*COSTS, "pj_per_unit")},
    **{f"noc.{bus}": _Rule(int, 1, 2**16, required=False) for bus in NOC_FIELDS},
    "sparsity.zero_gating": _Rule(bool, required=False),
    "sparsity.gate_psums": _Rule(bool, required=False),
    "sparsity.dram_compression": _Rule(str, required=False, choices=COMPRESSIONS),
    "sparsity.weight_compression": _Rule(str, required=False, choices=COMPRESSIONS),
    # the layer shapes the chip runs natively (reported, never enforced: DESIGN.md, "Filters wider than a
    # scratchpad or taller than the array")
    **{f"native.{limit}": _Rule(int, *_PES, required=False) for limit in NATIVE_MAXIMA},
    "native.vertical_strides": _Rule(tuple, *_PES, required=False),
}
SECTIONS = frozenset(path.rsplit(".", 1)[0] for path in FIELDS if "." in path)
RF_SPLIT = ("rf.filter_words", "rf.ifmap_words", "rf.psum_words")


def validate(data: object, label: str) -> dict[str, Any]:
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
            raise located(label, f"unknown key {cut(path)}{suggest(path[:200])}")
    return flat


def _check_value(path: str, value: object, rule: _Rule, label: str) -> object:
    if rule.kind is bool:
        if isinstance(value, bool):
            return value
        raise located(label, f"{path} must be true or false, got {_show(value)}")
    if rule.kind is tuple:
        return _check_list(path, value, rule, label)
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
    if isinstance(value, numbers.Integral):
        value = int(value)  # exact, however large; compared with the bounds without conversion to float
    elif not math.isfinite(value):
        raise located(label, f"{path} must be a finite number, got {_show(value)}")
    if not rule.low <= value <= rule.high:
        raise located(label, f"{path} must be {range_text(rule)}, got {_show(value)}")
    return rule.kind(value)


def _check_list(path: str, value: object, rule: _Rule, label: str) -> tuple[int, ...]:
    """A non-empty list of integers, each in the rule's range: kept sorted, without repeats."""
    if not isinstance(value, list | tuple) or not value:
        raise located(label, f"{path} must be a non-empty list of integers, got {_show(value)}")
    for item in value:
        if isinstance(item, bool) or not isinstance(item, numbers.Integral) or not rule.low <= item <= rule.high:
            raise located(label, f"{path} must list integers {range_text(rule)}, got {_show(item)}")
    return tuple(sorted({int(item) for item in value}))


def range_text(rule: _Rule) -> str:
    """The allowed range of a numeric field, for messages: 'at least 1 and at most 32'."""
    return f"at least {_bound(rule.low)} and at most {_bound(rule.high)}"


def _bound(number: float) -> str:
    return str(number) if isinstance(number, int) else f"{number:g}"


def _check_rf(flat: dict[str, Any], label: str) -> None:
    given = [path for path in ("rf.words", *RF_SPLIT) if path in flat]
    if "rf.words" in given and len(given) > 1:
        both = ", ".join(given)
        raise located(label, f"rf must give either words (unified) or the three split fields, not both; got {both}")
    if not given:
        raise located(label, "missing required field rf.words (or rf.filter_words, rf.ifmap_words, rf.psum_words)")
    missing = [path for path in RF_SPLIT if path not in flat]
    if "rf.words" not in given and missing:
        raise located(label, f"missing required field {missing[0]} (a split RF needs {', '.join(RF_SPLIT)})")


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


def set_path(nested: dict[str, Any], path: str, value: object) -> None:
    *parents, leaf = path.split(".")
    for part in parents:
        if not isinstance(nested.get(part), dict):
            nested[part] = {}
        nested = nested[part]
    nested[leaf] = value


def suggest(path: str) -> str:
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


def cut(text: str) -> str:
    """A name for a message, at most 60 characters (a YAML key may be a megabyte long)."""
    return text if len(text) <= 60 else f"{text[:57]}..."


def _show(value: object) -> str:
    """The value for a message, at most 60 characters (an integer too long to print is described)."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool) and abs(int(value)) >= 10**60:
        return f"an integer of {len(f'{int(value):x}')} hex digits"
    text = "nothing" if value is None else str(value) if isinstance(value, numbers.Real) else _REPR.repr(value)
    return text if len(text) <= 60 else f"{text[:57]}..."
