"""Estimate: for each layer of a workload, search (or take the pinned) mapping and weigh its accesses."""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from eyesim import dataflow as df
from eyesim.errors import EyesimError
from eyesim.hardware import Bits, Hardware, load_hardware
from eyesim.mapping import Mapping, load_mapping_file, violation
from eyesim.model import (
    Breakdown,
    access_costs,
    breakdown,
    hw_vector,
    layer_counts,
    layer_vector,
    mac_cost,
)
from eyesim.onnx_import import load_workload
from eyesim.result import LayerResult, Result
from eyesim.search import search_layer
from eyesim.workload import Layer, Workload

SMALLEST = Mapping(1, 1, 1, 1, 1, 1, 1)


@dataclass(frozen=True)
class Target:
    """Hardware with its bit widths, as the kernels see them."""

    hw: Hardware
    bits: Bits
    vec: np.ndarray
    cost: np.ndarray
    mac_cost: float

    @classmethod
    def of(cls, hw: Hardware, bits: Bits | None = None) -> Target:
        bits = bits or hw.widths
        return cls(hw, bits, hw_vector(hw, bits), access_costs(hw, bits), mac_cost(hw, bits))


def estimate(model, hw, batch: int = 1, mapping=None, progress=None) -> Result:
    """Estimate the energy of ``model`` (ONNX path, ModelProto or Workload) on ``hw`` (path or Hardware).

    ``mapping`` pins layers' mappings: a YAML path or ``{layer name: Mapping or dict}``; the other
    layers are searched. ``progress`` is an optional callable taking each finished layer's name.
    """
    workload = _workload(model, batch)
    target = Target.of(hw if isinstance(hw, Hardware) else load_hardware(hw))
    pinned = _pinned(mapping, workload)
    cache: dict[bytes, tuple[Mapping, int]] = {}
    results = []
    for layer in workload.layers:
        results.append(estimate_layer(layer, target, pinned.get(layer.name), cache))
        if progress is not None:
            progress(layer.name)
    return Result(model=workload.model, hardware=target.hw, batch=workload.batch, bits=target.bits,
                  layers=tuple(results), not_modelled=workload.not_modelled)


def estimate_layer(layer: Layer, target: Target, pinned: Mapping | None = None,
                   cache: dict[bytes, tuple[Mapping, int]] | None = None) -> LayerResult:
    """One layer's result: the pinned mapping (checked) or the searched optimum, and its energy."""
    if pinned is not None:
        check_mapping(layer, target, pinned)
        chosen, evaluated = pinned, 0
    else:
        chosen, evaluated = best_mapping(layer, target, cache)
    counts, macs = layer_counts(layer, target.vec, chosen.vector())
    energy: Breakdown = breakdown(counts, macs, target.hw, target.bits)
    return LayerResult(layer=layer, mapping=chosen, pinned=pinned is not None,
                       active_pes=layer.R * chosen.e * chosen.r * chosen.t, energy=energy, evaluated=evaluated)


def best_mapping(layer: Layer, target: Target, cache: dict[bytes, tuple[Mapping, int]] | None = None
                 ) -> tuple[Mapping, int]:
    """The minimum-energy mapping of one group of ``layer`` and the number of mappings evaluated."""
    lv = layer_vector(layer)
    key = lv.tobytes()
    if cache is not None and key in cache:
        return cache[key]
    best, energy, evaluated = search_layer(lv, target.vec, df.strip_rows_table(lv), df.used_cols(lv),
                                           target.cost, target.mac_cost)
    if not np.isfinite(energy):
        binding = violation(df.first_violation(lv, target.vec, SMALLEST.vector()))
        raise EyesimError(f"layer {layer.name!r} ({_shape_text(layer)}): no mapping fits {target.hw.name!r}; "
                          f"even m=n=e=p=q=r=t=1 breaks the constraint '{binding}'")
    found = (Mapping.from_vector(best), int(evaluated))
    if cache is not None:
        cache[key] = found
    return found


def check_mapping(layer: Layer, target: Target, mapping: Mapping) -> None:
    """Refuse a mapping that breaks a constraint, naming it."""
    code = df.first_violation(layer_vector(layer), target.vec, mapping.vector())
    if code != df.OK:
        shown = " ".join(f"{k}={v}" for k, v in mapping.as_dict().items())
        raise EyesimError(f"layer {layer.name!r}: pinned mapping {shown} breaks the constraint '{violation(code)}' "
                          f"({_shape_text(layer)})")


def _shape_text(layer: Layer) -> str:
    return " ".join(f"{k}={v}" for k, v in layer.shape.items())


def _workload(model, batch: int) -> Workload:
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise EyesimError(f"batch must be a positive integer, got {batch!r}")
    if isinstance(model, Workload):
        return Workload(model.model, batch, tuple(layer.with_batch(batch) for layer in model.layers),
                        model.not_modelled)
    return load_workload(model, batch=batch)


def _pinned(mapping, workload: Workload) -> dict[str, Mapping]:
    if mapping is None:
        return {}
    if isinstance(mapping, str | os.PathLike):
        mapping = load_mapping_file(mapping)
    pinned = {name: m if isinstance(m, Mapping) else Mapping(**m) for name, m in mapping.items()}
    names = {layer.name for layer in workload.layers}
    unknown = sorted(set(pinned) - names)
    if unknown:
        raise EyesimError(f"pinned mapping names layer(s) {', '.join(unknown)} that model {workload.model!r} does "
                          f"not have (its layers: {', '.join(sorted(names))})")
    return pinned
