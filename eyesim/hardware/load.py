"""Building a Hardware: from a YAML file, from a mapping in the schema, or from another with fields replaced."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from eyesim.errors import located
from eyesim.hardware.schema import COSTS, FIELDS, NOT_GIVEN, RF_SPLIT, cut, set_path, suggest, validate
from eyesim.hardware.spec import (
    ArraySpec,
    Bits,
    DRAMSpec,
    EnergySpec,
    GLBSpec,
    Hardware,
    NativeSpec,
    NocSpec,
    RFSpec,
    SparsitySpec,
    hardware_to_dict,
    prevalidated,
)
from eyesim.yamlio import parse_yaml, read_text

_LOADED: dict[tuple[str, str], Hardware] = {}  # (source, file text) -> its Hardware, in this process
_MAX_LOADED = 64


def load_hardware(path: str | os.PathLike[str]) -> Hardware:
    """Read, validate and return the hardware described by the YAML file at ``path``.

    The file is read every time; a text read before gives the Hardware built from it then (a function of
    the text and ``source`` alone, and frozen, so it is shared): parsing and checks cost ~100x the read.
    """
    source = str(path)
    key = (source, read_text(source, "hardware file"))
    if key not in _LOADED:
        hardware = hardware_from_dict(parse_yaml(key[1], source), source)
        if len(_LOADED) >= _MAX_LOADED:
            _LOADED.clear()
        _LOADED[key] = hardware
    return _LOADED[key]


def hardware_from_dict(data: dict[str, Any], source: str) -> Hardware:
    """Validate a hardware mapping (the YAML schema) and build it; errors name ``source``."""
    return _build(validate(data, source), source)


def with_overrides(hw: Hardware, overrides: Mapping[str, object]) -> Hardware:
    """A validated copy of ``hw`` with fields replaced by dotted path, e.g. ``{"glb.size_kb": 64}``.

    Overriding ``rf.words`` makes the RF unified; overriding a split field drops ``rf.words``.
    """
    label = f"{hw.source or 'hardware'} (with overrides)"
    data = hardware_to_dict(hw)
    for path, value in overrides.items():
        if path not in FIELDS:
            raise located(label, f"unknown field {cut(str(path))}{suggest(str(path)[:200])}")
        _drop_other_rf_layout(data, path)
        set_path(data, path, value)
    return _build(validate(data, label), hw.source)


def _build(flat: dict[str, Any], source: str) -> Hardware:
    """The Hardware of ``flat``, which ``validate`` has passed (so it is not validated again)."""
    return prevalidated(lambda: _hardware(flat, source))


def _hardware(flat: dict[str, Any], source: str) -> Hardware:
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
        noc=NocSpec(**_section(flat, "noc")),
        native=NativeSpec(**_section(flat, "native")),
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


def _drop_other_rf_layout(data: dict[str, Any], path: str) -> None:
    """Overriding one RF layout (unified or split) removes the other one's fields."""
    rf = data.get("rf", {})
    if path == "rf.words":
        for split in RF_SPLIT:
            rf.pop(split.split(".")[1], None)
    elif path in RF_SPLIT:
        rf.pop("words", None)
