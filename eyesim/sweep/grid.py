"""The grid of a sweep: axes over hardware fields (by dotted path) and the batch, from --vary text or a spec file.

An axis is first read as a plan (its explicit values and its ranges, unexpanded), so the grid's size
is known from the product of the plans' sizes and a grid over ``max_configs`` (``MAX_CONFIGS`` unless
raised) is refused before one value of it is listed. Every number is checked against its field's
range (docs/hardware.md) and kept to ``_DIGITS`` significant digits and exponents, so range arithmetic
is exact and cheap, whatever the text.
"""

from __future__ import annotations

import difflib
import functools
import itertools
import math
import os
import reprlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from decimal import Context, Decimal, InvalidOperation, localcontext
from typing import Any

from eyesim.errors import EyesimError
from eyesim.hardware.area import AreaModel
from eyesim.hardware.schema import FIELDS
from eyesim.yamlio import read_yaml

Number = int | float
BATCH = "batch"
ARRAY = "array"  # shorthand: array=12x14 sets array.rows and array.cols
ARRAY_PATHS = ("array.rows", "array.cols")
KINDS: dict[str, type] = {path: rule.kind for path, rule in FIELDS.items() if rule.kind in (int, float)}
MAX_CONFIGS = 1_000_000  # configurations in one sweep unless --max-configs raises it
MAX_BATCH = 2**31 - 1  # a batch size, as the mapping's n (eyesim.mapping.MAX_PARAM)
_SPEC_KEYS = ("vary", "area")
_DIGITS = 30  # a grid number: at most this many significant digits, magnitude within 10**±_DIGITS
_EXACT = Context(prec=4 * _DIGITS)  # exact for sums, differences and quotients of such numbers
_HUGE = 10**100  # grid sizes above this are reported as "more than 10^100"


@dataclass(frozen=True)
class Axis:
    """One swept dimension: the fields it sets (dotted paths, or ``batch``) and its values, one tuple each."""

    paths: tuple[str, ...]
    values: tuple[tuple[Number, ...], ...]


@dataclass(frozen=True)
class _Run:
    """The range start, start + step, ... of ``count`` values, not listed until the grid is known to fit."""

    name: str
    start: Decimal
    step: Decimal
    count: int
    label: str

    def values(self) -> Iterator[tuple[Number, ...]]:
        with localcontext(_EXACT):
            for i in range(self.count):
                yield (_typed(self.name, self.start + i * self.step, self.label),)


@dataclass(frozen=True)
class AxisPlan:
    """An axis before its ranges are listed: ``size`` (before duplicates are dropped) costs nothing."""

    paths: tuple[str, ...]
    label: str
    parts: tuple[tuple[tuple[Number, ...], ...] | _Run, ...]

    @property
    def size(self) -> int:
        return sum(part.count if isinstance(part, _Run) else len(part) for part in self.parts)

    def axis(self) -> Axis:
        """The axis with every value listed, duplicates dropped (first kept)."""
        values = (value for part in self.parts for value in (part.values() if isinstance(part, _Run) else part))
        return Axis(self.paths, tuple(dict.fromkeys(values)))


@dataclass(frozen=True)
class Grid:
    """The cartesian product of the axes (last axis fastest); ``batch`` is used when no axis sets it."""

    axes: tuple[Axis, ...]
    batch: int = 1
    max_configs: int = MAX_CONFIGS

    def __post_init__(self) -> None:
        seen: set[str] = set()
        for axis in self.axes:
            for path in axis.paths:
                if path in seen:
                    raise EyesimError(f"{path} is swept twice; give each field once")
                seen.add(path)
        _check_size([len(axis.values) for axis in self.axes], [axis.paths for axis in self.axes], self.max_configs)

    @property
    def columns(self) -> tuple[str, ...]:
        """The configuration's columns: every swept path in axis order, and ``batch``."""
        paths = tuple(path for axis in self.axes for path in axis.paths)
        return paths if BATCH in paths else (*paths, BATCH)

    def __len__(self) -> int:
        return math.prod(len(axis.values) for axis in self.axes)

    def key(self, index: int) -> tuple[Number, ...]:
        """Configuration ``index`` as its values in ``columns`` order."""
        picked: list[Number] = []
        for axis in reversed(self.axes):
            index, at = divmod(index, len(axis.values))
            picked[:0] = axis.values[at]
        return tuple(picked) if len(picked) == len(self.columns) else (*picked, self.batch)

    def keys(self) -> Iterator[tuple[Number, ...]]:
        """Every configuration's values, in grid order."""
        for combo in itertools.product(*(axis.values for axis in self.axes)):
            picked = tuple(value for part in combo for value in part)
            yield picked if len(picked) == len(self.columns) else (*picked, self.batch)

    def batches(self) -> tuple[int, ...]:
        """The batch sizes the grid uses."""
        for axis in self.axes:
            if axis.paths == (BATCH,):
                return tuple(int(v[0]) for v in axis.values)
        return (self.batch,)


def build_grid(spec: str | os.PathLike[str] | None, vary: Iterable[str], batch: int = 1,
               max_configs: int = MAX_CONFIGS) -> tuple[Grid, AreaModel | None]:
    """The grid of a spec file's axes then the ``--vary`` axes, refused over ``max_configs`` before it is listed."""
    plans, area = load_plans(spec) if spec is not None else ([], None)
    plans = [*plans, *(plan_vary(text) for text in vary)]
    if not plans:
        raise EyesimError("nothing to sweep: give --vary PATH=VALUES (repeatable) or --spec FILE")
    return Grid(expand(plans, max_configs), batch, max_configs), area


def expand(plans: list[AxisPlan], max_configs: int = MAX_CONFIGS) -> tuple[Axis, ...]:
    """The plans' axes, listed only once the product of their sizes is known to be within ``max_configs``."""
    _check_size([plan.size for plan in plans], [plan.paths for plan in plans], max_configs)
    return tuple(plan.axis() for plan in plans)


def _check_size(sizes: list[int], paths: list[tuple[str, ...]], max_configs: int) -> None:
    total = 1
    for size in sizes:
        total = min(total * size, _HUGE + 1)
    if total <= max_configs:
        return
    shown = "more than 10^100" if total > _HUGE else f"{total:,}"
    factors = " x ".join(f"{size:,} {'/'.join(p)}" for size, p in zip(sizes, paths, strict=True)) if (
        len(sizes) <= 8 and total <= _HUGE) else f"{len(sizes)} axes"
    raise EyesimError(f"the sweep grid would be {shown} configurations ({factors}), over the limit of "
                      f"{max_configs:,}; sweep fewer values or raise the limit with --max-configs N")


def parse_vary(text: str, max_configs: int = MAX_CONFIGS) -> Axis:
    """An axis from ``PATH=VALUES`` (the ``--vary`` syntax): ``glb.size_kb=32,64``, ``rf.words=64:512:64``,
    ``array=12x14,16x16``, ``batch=1,4``. Ranges ``start:stop[:step]`` include ``stop`` when it is on the grid."""
    return expand([plan_vary(text)], max_configs)[0]


def plan_vary(text: str) -> AxisPlan:
    """The plan of a ``--vary PATH=VALUES`` axis (see ``parse_vary``)."""
    path, sep, values = text.partition("=")
    path = path.strip()
    if not sep or not path or not values.strip():
        raise EyesimError(f"--vary {_show(text)}: expected PATH=VALUES, e.g. glb.size_kb=32,64,108 or "
                          "rf.words=64:512:64")
    return plan_axis(path, values, f"--vary {_show(path)}")


def make_axis(name: str, raw: Any, label: str, max_configs: int = MAX_CONFIGS) -> Axis:
    """An axis named ``name`` (a dotted path, ``batch``, ``array`` or a group label) from YAML or CLI values."""
    return expand([plan_axis(name, raw, label)], max_configs)[0]


def plan_axis(name: str, raw: Any, label: str) -> AxisPlan:
    """The plan of an axis named ``name`` from YAML or CLI values.

    ``raw`` is a comma-separated string, a number, a ``{from, to, step}`` range, or a list of these; a
    list of mappings ``{path: value, ...}`` (all with the same paths) sets several fields together.
    """
    if isinstance(raw, list) and raw and all(isinstance(item, dict) and "from" not in item for item in raw):
        return _group_plan(raw, label)
    paths = ARRAY_PATHS if name == ARRAY else (_check_path(name, label),)
    parts: list[list[tuple[Number, ...]] | _Run] = []
    for token in _tokens(raw, label):
        part = _token_part(name, token, label)
        if isinstance(part, _Run) or not parts or isinstance(parts[-1], _Run):
            parts.append(part if isinstance(part, _Run) else list(part))
        else:
            parts[-1].extend(part)  # consecutive listed values share one part (repeats counted once)
    if not parts:
        raise EyesimError(f"{label}: no values given")
    return AxisPlan(paths, label, tuple(part if isinstance(part, _Run) else tuple(dict.fromkeys(part))
                                        for part in parts))


def load_spec(path: str | os.PathLike[str], max_configs: int = MAX_CONFIGS) -> tuple[list[Axis], AreaModel]:
    """Axes (``vary:``) and area constants (``area:``) of a YAML sweep-spec file (docs/sweep.md)."""
    plans, area = load_plans(path)
    return list(expand(plans, max_configs)), area


def load_plans(path: str | os.PathLike[str]) -> tuple[list[AxisPlan], AreaModel]:
    """The plans of a sweep spec's axes and its area constants, nothing listed yet."""
    label = str(path)
    data = read_yaml(path, "sweep spec")
    if not isinstance(data, dict) or not isinstance(data.get("vary"), dict) or not data["vary"]:
        raise EyesimError(f"{label}: a sweep spec is a mapping with a non-empty 'vary:' mapping of fields to values")
    unknown = sorted(set(map(str, data)) - set(_SPEC_KEYS))
    if unknown:
        raise EyesimError(f"{label}: unknown key {_show(unknown[0])} (a sweep spec has {', '.join(_SPEC_KEYS)})")
    plans = [plan_axis(str(name), raw, f"{label}: vary: {_show(str(name))}") for name, raw in data["vary"].items()]
    return plans, AreaModel.from_dict(data.get("area"), label)


def _check_path(path: str, label: str) -> str:
    if path == BATCH or path in KINDS:
        return path
    if path in FIELDS:
        raise EyesimError(f"{label}: {path} is not a numeric field and cannot be swept")
    known = [*KINDS, BATCH, ARRAY]
    close = difflib.get_close_matches(path[:100], known, n=1, cutoff=0.6)
    hint = f" (did you mean {close[0]}?)" if close else " (see docs/hardware.md for the fields)"
    raise EyesimError(f"{label}: unknown field {_show(path)}{hint}")


def _tokens(raw: Any, label: str) -> list[Any]:
    """Flatten the raw values into single tokens: numbers, range strings, ``RxC`` strings, range mappings."""
    if isinstance(raw, list):
        return [token for item in raw for token in _tokens(item, label)]
    if isinstance(raw, str):
        parts = [part.strip() for part in raw.split(",")]
        if any(not part for part in parts):
            raise EyesimError(f"{label}: empty value in {_show(raw)}")
        return parts
    if isinstance(raw, dict | int | float) and not isinstance(raw, bool):
        return [raw]
    raise EyesimError(f"{label}: expected numbers, ranges or lists, got {_show(raw)}")


def _token_part(name: str, token: Any, label: str) -> tuple[tuple[Number, ...], ...] | _Run:
    if isinstance(token, dict):
        return _range_of_mapping(name, token, label)
    if name == ARRAY:
        return (_array_shape(token, label),)
    if isinstance(token, str) and ":" in token:
        parts = token.split(":")
        if len(parts) not in (2, 3):
            raise EyesimError(f"{label}: range {_show(token)} must be start:stop or start:stop:step")
        return _range(name, *parts, label=label)
    return ((_number(name, token, label),),)


def _range_of_mapping(name: str, token: dict, label: str) -> _Run:
    keys = set(map(str, token))
    if not {"from", "to"} <= keys or keys - {"from", "to", "step"}:
        raise EyesimError(f"{label}: a range mapping has keys from, to and optionally step; got "
                          f"{_show(sorted(keys))}")
    return _range(name, token["from"], token["to"], token.get("step", 1), label=label)


def _range(name: str, start: Any, stop: Any, step: Any = 1, *, label: str) -> _Run:
    """Values start, start+step, ... up to stop, inclusive when stop falls on the grid (exact decimals).

    Only counted here: the values are listed once the whole grid is known to be within the limit.
    """
    a, b, s = (_decimal(name, v, label) for v in (start, stop, step))
    shown = _show(f"{start}:{stop}:{step}")
    if s <= 0:
        raise EyesimError(f"{label}: range {shown} has no values (step must be > 0)")
    if a > b:
        raise EyesimError(f"{label}: range {shown} has no values (start is above stop)")
    for end in (a, b):
        _in_range(name, end, label)
    if KINDS.get(name, int) is int and (a != a.to_integral_value() or s != s.to_integral_value()):
        raise EyesimError(f"{label}: {name} takes integers, got range {shown}")
    with localcontext(_EXACT):
        count = int((b - a) // s) + 1
    return _Run(name, a, s, count, label)


def _number(name: str, token: Any, label: str) -> Number:
    value = _decimal(name, token, label)
    _in_range(name, value, label)
    return _typed(name, value, label)


def _decimal(name: str, token: Any, label: str) -> Decimal:
    """The token as an exact decimal of at most _DIGITS digits and exponent (else refused)."""
    if isinstance(token, bool):
        raise EyesimError(f"{label}: {token!r} is not a number")
    if not isinstance(token, int | float | str):
        raise EyesimError(f"{label}: {_show(token)} is not a number")
    text = str(token).strip() if not isinstance(token, int) or token.bit_length() < 128 else "x" * 99
    if len(text) > 2 * _DIGITS:
        raise EyesimError(f"{label}: {_show(token)} is too large or too precise for a sweep (at most {_DIGITS} "
                          f"digits, magnitude from 1e-{_DIGITS} to 1e+{_DIGITS})")
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise EyesimError(f"{label}: {_show(token)} is not a number") from None
    if not value.is_finite():
        raise EyesimError(f"{label}: {_show(token)} is not a finite number")
    if value and (abs(value.adjusted()) > _DIGITS or (len(text) > _DIGITS and len(value.as_tuple().digits) > _DIGITS)):
        raise EyesimError(f"{label}: {_show(token)} is too large or too precise for a sweep (at most {_DIGITS} "
                          f"digits, magnitude from 1e-{_DIGITS} to 1e+{_DIGITS})")
    return value


def _in_range(name: str, value: Decimal, label: str) -> None:
    """Refuse a value outside its field's range (docs/hardware.md): it could never be a valid configuration."""
    low, high = _limits(name)
    if not low <= value <= high:
        low, high = (1, MAX_BATCH) if name == BATCH else (FIELDS[name].low, FIELDS[name].high)
        what = "batch sizes" if name == BATCH else name
        raise EyesimError(f"{label}: {what} must be at least {_bound(low)} and at most {_bound(high)}, "
                          f"got {value}")


@functools.cache
def _limits(name: str) -> tuple[Decimal, Decimal]:
    """The field's range as exact decimals (batch: 1 to MAX_BATCH)."""
    low, high = (1, MAX_BATCH) if name == BATCH else (FIELDS[name].low, FIELDS[name].high)
    return Decimal(str(low)), Decimal(str(high))


def _bound(number: float) -> str:
    return str(number) if isinstance(number, int) else f"{number:g}"


def _typed(name: str, value: Decimal, label: str) -> Number:
    """The value as the field's kind: an int for integer fields (and batch), else a float."""
    if KINDS.get(name, int) is float:
        return float(value)
    if value != value.to_integral_value():
        raise EyesimError(f"{label}: {name} takes integers, got {value}")
    return int(value)


def _array_shape(token: Any, label: str) -> tuple[int, int]:
    text = str(token).lower().replace("×", "x") if isinstance(token, str | int | float) else ""
    rows, sep, cols = text.partition("x")
    if not sep:
        raise EyesimError(f"{label}: array values are ROWSxCOLS such as 12x14, got {_show(token)}")
    return int(_number("array.rows", rows, label)), int(_number("array.cols", cols, label))


def _group_plan(items: list[dict], label: str) -> AxisPlan:
    paths = tuple(str(p) for p in items[0])
    for item in items:
        if tuple(str(p) for p in item) != paths:
            raise EyesimError(f"{label}: every entry of a group must set the same fields {_show(list(paths))}, "
                              f"got {_show(item)}")
    for path in paths:
        if path in (ARRAY, BATCH):
            raise EyesimError(f"{label}: a group sets hardware fields by dotted path, not {path}")
        _check_path(path, label)
    values = [tuple(_number(p, item[p], label) for p in paths) for item in items]
    return AxisPlan(paths, label, (tuple(dict.fromkeys(values)),))


def _show(value: object) -> str:
    """A value for a message, bounded (a YAML list may hold 100,000 items) and on one line."""
    if not isinstance(value, str) or not value.isprintable():
        return reprlib.repr(value)
    return value if len(value) <= 60 else f"{value[:57]}..."
