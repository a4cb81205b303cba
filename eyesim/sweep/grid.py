"""The grid of a sweep: axes over hardware fields (by dotted path) and the batch, from --vary text or a spec file."""

from __future__ import annotations

import difflib
import itertools
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
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
_SPEC_KEYS = ("vary", "area")


@dataclass(frozen=True)
class Axis:
    """One swept dimension: the fields it sets (dotted paths, or ``batch``) and its values, one tuple each."""

    paths: tuple[str, ...]
    values: tuple[tuple[Number, ...], ...]


@dataclass(frozen=True)
class Grid:
    """The cartesian product of the axes (last axis fastest); ``batch`` is used when no axis sets it."""

    axes: tuple[Axis, ...]
    batch: int = 1

    def __post_init__(self) -> None:
        seen: set[str] = set()
        for axis in self.axes:
            for path in axis.paths:
                if path in seen:
                    raise EyesimError(f"{path} is swept twice; give each field once")
                seen.add(path)

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


def parse_vary(text: str) -> Axis:
    """An axis from ``PATH=VALUES`` (the ``--vary`` syntax): ``glb.size_kb=32,64``, ``rf.words=64:512:64``,
    ``array=12x14,16x16``, ``batch=1,4``. Ranges ``start:stop[:step]`` include ``stop`` when it is on the grid."""
    path, sep, values = text.partition("=")
    path = path.strip()
    if not sep or not path or not values.strip():
        raise EyesimError(f"--vary {text}: expected PATH=VALUES, e.g. glb.size_kb=32,64,108 or rf.words=64:512:64")
    return make_axis(path, values, f"--vary {path}")


def make_axis(name: str, raw: Any, label: str) -> Axis:
    """An axis named ``name`` (a dotted path, ``batch``, ``array`` or a group label) from YAML or CLI values.

    ``raw`` is a comma-separated string, a number, a ``{from, to, step}`` range, or a list of these; a
    list of mappings ``{path: value, ...}`` (all with the same paths) sets several fields together.
    """
    if isinstance(raw, list) and raw and all(isinstance(item, dict) and "from" not in item for item in raw):
        return _group_axis(raw, label)
    paths = ARRAY_PATHS if name == ARRAY else (_check_path(name, label),)
    values: list[tuple[Number, ...]] = []
    for token in _tokens(raw, label):
        values.extend(_token_values(name, token, label))
    if not values:
        raise EyesimError(f"{label}: no values given")
    return Axis(paths, tuple(dict.fromkeys(values)))


def load_spec(path: str | os.PathLike[str]) -> tuple[list[Axis], AreaModel]:
    """Axes (``vary:``) and area constants (``area:``) of a YAML sweep-spec file (docs/sweep.md)."""
    label = str(path)
    data = read_yaml(path, "sweep spec")
    if not isinstance(data, dict) or not isinstance(data.get("vary"), dict) or not data["vary"]:
        raise EyesimError(f"{label}: a sweep spec is a mapping with a non-empty 'vary:' mapping of fields to values")
    unknown = sorted(set(map(str, data)) - set(_SPEC_KEYS))
    if unknown:
        raise EyesimError(f"{label}: unknown key {unknown[0]} (a sweep spec has {', '.join(_SPEC_KEYS)})")
    axes = [make_axis(str(name), raw, f"{label}: vary: {name}") for name, raw in data["vary"].items()]
    return axes, AreaModel.from_dict(data.get("area"), label)


def _check_path(path: str, label: str) -> str:
    if path == BATCH or path in KINDS:
        return path
    if path in FIELDS:
        raise EyesimError(f"{label}: {path} is not a numeric field and cannot be swept")
    known = [*KINDS, BATCH, ARRAY]
    close = difflib.get_close_matches(path, known, n=1, cutoff=0.6)
    hint = f" (did you mean {close[0]}?)" if close else " (see docs/hardware.md for the fields)"
    raise EyesimError(f"{label}: unknown field {path}{hint}")


def _tokens(raw: Any, label: str) -> list[Any]:
    """Flatten the raw values into single tokens: numbers, range strings, ``RxC`` strings, range mappings."""
    if isinstance(raw, list):
        return [token for item in raw for token in _tokens(item, label)]
    if isinstance(raw, str):
        parts = [part.strip() for part in raw.split(",")]
        if any(not part for part in parts):
            raise EyesimError(f"{label}: empty value in {raw!r}")
        return parts
    if isinstance(raw, dict | int | float) and not isinstance(raw, bool):
        return [raw]
    raise EyesimError(f"{label}: expected numbers, ranges or lists, got {raw!r}")


def _token_values(name: str, token: Any, label: str) -> list[tuple[Number, ...]]:
    if isinstance(token, dict):
        return [(v,) for v in _range_of_mapping(name, token, label)]
    if name == ARRAY:
        return [_array_shape(token, label)]
    if isinstance(token, str) and ":" in token:
        parts = token.split(":")
        if len(parts) not in (2, 3):
            raise EyesimError(f"{label}: range {token!r} must be start:stop or start:stop:step")
        return [(v,) for v in _range(name, *parts, label=label)]
    return [(_number(name, token, label),)]


def _range_of_mapping(name: str, token: dict, label: str) -> list[Number]:
    keys = set(map(str, token))
    if not {"from", "to"} <= keys or keys - {"from", "to", "step"}:
        raise EyesimError(f"{label}: a range mapping has keys from, to and optionally step; got {sorted(keys)}")
    return _range(name, token["from"], token["to"], token.get("step", 1), label=label)


def _range(name: str, start: Any, stop: Any, step: Any = 1, *, label: str) -> list[Number]:
    """Values start, start+step, ... up to stop, inclusive when stop falls on the grid (exact decimals)."""
    a, b, s = (_decimal(name, v, label) for v in (start, stop, step))
    shown = f"{start}:{stop}:{step}"
    if s <= 0:
        raise EyesimError(f"{label}: range {shown} has no values (step must be > 0)")
    if a > b:
        raise EyesimError(f"{label}: range {shown} has no values (start is above stop)")
    count = int((b - a) // s) + 1
    return [_typed(name, a + i * s, label) for i in range(count)]


def _number(name: str, token: Any, label: str) -> Number:
    return _typed(name, _decimal(name, token, label), label)


def _decimal(name: str, token: Any, label: str) -> Decimal:
    if isinstance(token, bool):
        raise EyesimError(f"{label}: {token!r} is not a number")
    try:
        value = Decimal(str(token).strip())
    except InvalidOperation:
        raise EyesimError(f"{label}: {token!r} is not a number") from None
    if not value.is_finite():
        raise EyesimError(f"{label}: {token!r} is not a finite number")
    return value


def _typed(name: str, value: Decimal, label: str) -> Number:
    """The value as the field's kind: an int for integer fields (and batch), else a float."""
    if KINDS.get(name, int) is float:
        return float(value)
    if value != value.to_integral_value():
        raise EyesimError(f"{label}: {name} takes integers, got {value}")
    number = int(value)
    if name == BATCH and number < 1:
        raise EyesimError(f"{label}: batch sizes must be >= 1, got {number}")
    return number


def _array_shape(token: Any, label: str) -> tuple[int, int]:
    text = str(token).lower().replace("×", "x")
    rows, sep, cols = text.partition("x")
    if not sep:
        raise EyesimError(f"{label}: array values are ROWSxCOLS such as 12x14, got {token!r}")
    return int(_number("array.rows", rows, label)), int(_number("array.cols", cols, label))


def _group_axis(items: list[dict], label: str) -> Axis:
    paths = tuple(str(p) for p in items[0])
    for item in items:
        if tuple(str(p) for p in item) != paths:
            raise EyesimError(f"{label}: every entry of a group must set the same fields {list(paths)}, got {item}")
    for path in paths:
        if path in (ARRAY, BATCH):
            raise EyesimError(f"{label}: a group sets hardware fields by dotted path, not {path}")
        _check_path(path, label)
    values = [tuple(_number(p, item[p], label) for p in paths) for item in items]
    return Axis(paths, tuple(dict.fromkeys(values)))
