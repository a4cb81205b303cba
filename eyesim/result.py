"""Result: the per-layer estimate as data, and its JSON and CSV forms (the schema in the README)."""

from __future__ import annotations

import contextlib
import json
import numbers
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from eyesim.cost.breakdown import DATA_TYPES, ENERGY_LEVELS, ENERGY_TYPES, Breakdown
from eyesim.cost.timing import Timing
from eyesim.cost.zeros import DENSITY_TYPES, Density, ZeroEffects
from eyesim.errors import EyesimError
from eyesim.hardware.schema import COSTS, LEVELS
from eyesim.hardware.spec import Bits, Hardware, hardware_to_dict
from eyesim.mapping import Mapping
from eyesim.workload.layer import Layer, NotModelled
from eyesim.workload.slices import Slices

if TYPE_CHECKING:  # pandas is imported where a frame is made: the estimate command does without it (~0.45 s)
    import pandas as pd

UNITS = {
    "energy": "normalized: one 16-bit MAC = 1 (costs per 16-bit access from the hardware file)",
    "accesses": "words of the data type's bit width",
    "macs": "multiply-accumulates",
    "active_pes": "PEs",
    "energy_j": "joules (normalized energy x energy.pj_per_unit of the hardware file)",
    "power_w": "watts (energy_j / latency_s)",
    "time": "cycles of the core clock (compute: the busiest PEs' MACs; setup: the rest of every pass; dram: the "
            "link's transfer time); latency in seconds",
}
RW = ("reads", "writes")


@dataclass(frozen=True)
class LayerResult:
    layer: Layer
    mapping: Mapping
    pinned: bool
    active_pes: int
    energy: Breakdown
    evaluated: int  # mappings the search evaluated (0 when pinned)
    density: Density
    effects: ZeroEffects
    timing: Timing
    slices: Slices | None = None  # the layer ran as slices (``layer`` is then the sliced form)
    outside_native: tuple[str, ...] = ()  # how the layer as given falls outside the hardware's native shapes

    def joules(self, hw: Hardware) -> float | None:
        return None if hw.energy.pj_per_unit is None else self.energy.total * hw.energy.pj_per_unit * 1e-12

    def to_dict(self, hw: Hardware) -> dict:
        counts = self.energy.counts.tolist()  # Python ints, read in one call rather than element by element
        accesses = {level: {dtype: dict(zip(RW, counts[i][j], strict=True)) for j, dtype in enumerate(DATA_TYPES)}
                    for i, level in enumerate(LEVELS)}
        return {
            "name": self.layer.name,
            "op": self.layer.op,
            "shape": self.layer.shape,
            "macs": self.energy.macs,
            "mapping": self.mapping.as_dict(),
            "mapping_source": "pinned" if self.pinned else "searched",
            "active_pes": self.active_pes,
            "accesses": accesses,
            "energy": {"by_level": self.energy.by_level, "by_type": self.energy.by_type, "total": self.energy.total},
            "density": {"weights": self.density.weights, "ifmap": self.density.ifmap, "ofmap": self.density.ofmap,
                        "source": self.density.source,
                        **{f"{t}_kind": k for t, k in zip(DENSITY_TYPES, self.density.kinds, strict=True)}},
            "macs_executed": self.energy.macs_executed,
            "zero_counts": "exact from sample values" if self.effects.exact else "from densities",
            "compression": {"ifmap": self.effects.ifmap_dram, "ofmap": self.effects.ofmap_dram,
                            "scheme": hw.sparsity.dram_compression, "weights": self.effects.weights_dram,
                            "weight_scheme": hw.sparsity.weight_compression},
            "time": {"compute_cycles": self.timing.compute_cycles, "setup_cycles": self.timing.setup_cycles,
                     "dram_cycles": self.timing.dram_cycles,
                     "cycles": self.timing.cycles, "latency_s": self.timing.latency_s, "bound": self.timing.bound},
            "energy_j": (joules := self.joules(hw)),
            "power_w": None if joules is None else joules / self.timing.latency_s,
            **({"slices": self.slices.as_dict()} if self.slices else {}),  # only where there is something to say
            **({"outside_native": list(self.outside_native)} if self.outside_native else {}),
        }


@dataclass(frozen=True)
class Result:
    model: str
    hardware: Hardware
    batch: int
    bits: Bits
    layers: tuple[LayerResult, ...]
    not_modelled: tuple[NotModelled, ...]
    notes: tuple[str, ...] = ()  # what the user should know to read the numbers (a quantized model's widths, ...)

    def total(self) -> dict:
        by_level = {k: sum(lr.energy.by_level[k] for lr in self.layers) for k in ENERGY_LEVELS}
        by_type = {k: sum(lr.energy.by_type[k] for lr in self.layers) for k in ENERGY_TYPES}
        latency = sum(lr.timing.latency_s for lr in self.layers)
        pj = self.hardware.energy.pj_per_unit
        joules = None if pj is None else sum(by_level.values()) * pj * 1e-12
        return {"macs": sum(lr.energy.macs for lr in self.layers),
                "macs_executed": sum(lr.energy.macs_executed for lr in self.layers),
                "energy": {"by_level": by_level, "by_type": by_type, "total": sum(by_level.values())},
                "latency_s": latency, "fps": self.batch / latency,
                "energy_j": joules, "power_w": None if joules is None else joules / latency}

    def to_dict(self) -> dict:
        hw = hardware_to_dict(self.hardware)
        hw["provenance"] = {cost: self.hardware.energy.note(cost) for cost in COSTS}
        hw["file"] = self.hardware.source
        return {
            "model": self.model,
            "hardware": hw,
            "batch": self.batch,
            "bits": {"weights": self.bits.weights, "ifmap": self.bits.ifmap, "psum": self.bits.psum},
            "units": UNITS,
            "layers": [lr.to_dict(self.hardware) for lr in self.layers],
            "not_modelled": [{"name": nm.name, "op": nm.op, "reason": nm.reason} for nm in self.not_modelled],
            "total": self.total(),
            **({"notes": list(self.notes)} if self.notes else {}),  # only where there is something to say
        }

    def to_frame(self) -> pd.DataFrame:
        """One row per layer plus a ``TOTAL`` row; the CSV form of the result."""
        return frame_of_rows(self.rows())

    def rows(self, layer_rows: Sequence[dict] | None = None) -> list[dict]:
        """The rows of ``to_frame`` as plain dicts (cheaper when many results are put in one table);
        ``layer_rows``: the layers' ``layer_row``s when the caller kept them (a sweep does)."""
        rows = [layer_row(lr, self.hardware) for lr in self.layers] if layer_rows is None else list(layer_rows)
        tot = self.total()
        total = {"name": "TOTAL", "op": "", **_energy_columns(tot["energy"]), "macs": tot["macs"],
                 "active_pes": max((lr.active_pes for lr in self.layers), default=0),
                 "macs_executed": tot["macs_executed"], "latency_s": tot["latency_s"], "fps": tot["fps"],
                 "energy_j": tot["energy_j"], "power_w": tot["power_w"]}
        for key in rows[0] if rows else ():
            if key.startswith(LEVELS) or key in ("compute_cycles", "setup_cycles", "dram_cycles", "cycles"):
                total[key] = sum(row[key] for row in rows)
        return [*rows, total]

    def write(self, path: str | Path) -> None:
        """Write JSON or CSV, chosen by the file's suffix."""
        path = Path(path)
        suffix = path.suffix.lower()
        if suffix not in (".json", ".csv"):
            raise EyesimError(f"{path}: output must end in .json or .csv")
        try:
            if suffix == ".json":
                path.write_text(json_text(self.to_dict()) + "\n")
            else:
                csv_safe(self.to_frame()).to_csv(path, index=False)
        except OSError as err:
            raise EyesimError(f"{path}: cannot write ({err.strerror or err})") from None


def json_text(data: object) -> str:
    """``json.dumps(data, indent=2)``, character for character, at a fraction of its cost.

    With ``indent`` the standard library encodes in Python, one generator per container; this builds each
    container's text in one join. Anything beyond the plain types a result holds (a non-text key, another
    type, a cycle) goes to ``json.dumps`` itself, which encodes it or raises as it always did.
    """
    try:
        return _text(data, "\n")
    except (_Unplain, RecursionError):
        return json.dumps(data, indent=2)


class _Unplain(Exception):
    """A value ``_text`` leaves to ``json.dumps``."""


_quote = json.encoder.encode_basestring_ascii  # what json.dumps uses (ensure_ascii), in C when available
_SPECIAL = {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}  # json.dumps' allow_nan spellings


def _float(value: float) -> str:
    text = float.__repr__(value)
    return _SPECIAL.get(text, text)


# by exact type (a lookup, not a chain of isinstance); subclasses take _text's slower path
_SCALARS = {str: _quote, int: int.__repr__, float: _float, bool: lambda v: "true" if v else "false",
            type(None): lambda _: "null"}


def _text(value: object, newline: str) -> str:
    """``value`` as json.dumps(indent=2) writes it, nested at ``newline`` (a newline and the current indent)."""
    scalar = _SCALARS.get(type(value))
    if scalar is not None:
        return scalar(value)
    inner = newline + "  "
    if isinstance(value, dict):
        if not value:
            return "{}"
        items = [_key(key) + ": " + (scalar(item) if (scalar := _SCALARS.get(type(item))) else _text(item, inner))
                 for key, item in value.items()]
        return "{" + inner + ("," + inner).join(items) + newline + "}"
    if isinstance(value, list | tuple):
        if not value:
            return "[]"
        items = [scalar(item) if (scalar := _SCALARS.get(type(item))) else _text(item, inner) for item in value]
        return "[" + inner + ("," + inner).join(items) + newline + "]"
    for kind in (str, int, float):  # subclasses (numpy's float64 is a float), encoded as json.dumps does
        if isinstance(value, kind):
            return _SCALARS[kind](value)
    raise _Unplain


def _key(key: object) -> str:
    if type(key) is not str:  # json.dumps turns numbers, booleans and None into text keys: left to it
        raise _Unplain
    return _quote(key)


def _energy_columns(energy: dict) -> dict:
    cols = {f"energy_{k}": v for k, v in energy["by_level"].items()}
    cols |= {f"energy_{k}": v for k, v in energy["by_type"].items()}
    cols["energy_total"] = energy["total"]
    return cols


def layer_row(lr: LayerResult, hw: Hardware) -> dict:
    """One layer's row of ``Result.rows``."""
    return _flat(lr.to_dict(hw))


def _flat(layer: dict) -> dict:
    row = {"name": layer["name"], "op": layer["op"], **layer["shape"], **layer["mapping"],
           "mapping_source": layer["mapping_source"], **_energy_columns(layer["energy"]),
           "macs": layer["macs"], "active_pes": layer["active_pes"], "macs_executed": layer["macs_executed"],
           **{f"density_{k}": v for k, v in layer["density"].items()},
           "compression_ifmap": layer["compression"]["ifmap"], "compression_ofmap": layer["compression"]["ofmap"],
           "compression_weights": layer["compression"]["weights"],
           **layer["time"], "energy_j": layer["energy_j"], "power_w": layer["power_w"]}
    for level, types in layer["accesses"].items():
        for dtype, rws in types.items():
            for rw, value in rws.items():
                row[f"{level}_{dtype}_{rw}"] = value
    if "slices" in layer:  # columns only where there is something to say (other rows leave them empty)
        row |= {"slices": layer["slices"]["count"], "slice_width": layer["slices"]["width"],
                "slice_height": layer["slices"]["height"]}
    if "outside_native" in layer:
        row["outside_native"] = "; ".join(layer["outside_native"])
    return row


# --- CSV cells: integers stay integers, text never runs as a spreadsheet formula ------------------------------------

# A text cell a spreadsheet would run as a formula (OWASP "CSV injection"), or one that already starts with the
# quote this adds (so that reading back can strip exactly one quote and get the text written).
_FORMULA = re.compile(r"'*[=+\-@\t\r]")


def safe_cell(value: object) -> object:
    """A CSV cell as written: text that would start a formula gets a leading single quote; numbers are unchanged."""
    return "'" + value if isinstance(value, str) and _FORMULA.match(value) else value


def unsafe_cell(value: object) -> object:
    """Inverse of ``safe_cell`` (for reading a CSV eyesim wrote back)."""
    return value[1:] if isinstance(value, str) and value.startswith("'") and _FORMULA.match(value, 1) else value


def csv_safe(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with ``safe_cell`` applied to every text cell (the form every CSV eyesim writes takes)."""
    import pandas as pd

    text = [c for c in frame.columns if frame[c].dtype == object or pd.api.types.is_string_dtype(frame[c])]
    return frame.assign(**{c: frame[c].map(safe_cell) for c in text}) if text else frame


def frame_of_rows(rows: Sequence[dict]) -> pd.DataFrame:
    """A frame of dict rows in which a column of Python ints stays integer (nullable Int64 where rows lack it)."""
    import pandas as pd

    frame = pd.DataFrame(rows)
    for column in frame.columns:
        values = [row.get(column) for row in rows]
        present = [v for v in values if v is not None]
        if present and all(_integer(v) for v in present) and frame[column].dtype != "int64":
            with contextlib.suppress(OverflowError, TypeError, ValueError):  # beyond 64 bits: as pandas made it
                frame[column] = pd.array(values, dtype="Int64")
    return frame


def _integer(value: object) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)
