"""The hardware file's schema: each field by dotted path with its checks, and a Hardware as a plain mapping."""

from __future__ import annotations

import difflib
import math
import numbers
from dataclasses import dataclass
from typing import Any

from eyesim.errors import located

LEVELS = ("dram", "glb", "array", "rf")
COSTS = (*LEVELS, "mac")  # the figures in the ``energy`` section
NOT_GIVEN = "not given"
COMPRESSIONS = ("none", "rlc", "sigmap")  # how fmaps are stored in DRAM (DESIGN.md, "Zeros and bit widths")


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
            raise located(label, f"unknown key {path}{suggest(path)}")
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


def _bounds(rule: _Rule) -> str:
    if rule.high is not None and rule.high < _MAX_COUNT:  # a real range, not just the int64 guard
        return f"between {rule.low:g} and {rule.high:g}"
    return f"{'>' if rule.strict else '>='} {rule.low:g}"


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


def _show(value: object) -> str:
    text = "nothing" if value is None else str(value) if isinstance(value, numbers.Real) else repr(value)
    return text if len(text) <= 60 else f"{text[:57]}..."
