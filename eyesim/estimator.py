"""Estimate: for each layer of a workload, search (or take the pinned) mapping and weigh its accesses."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace

import numpy as np
import onnx

from eyesim import dataflow as df
from eyesim.cost.breakdown import breakdown
from eyesim.cost.compression import dram_ratio, rlc_words
from eyesim.cost.counts import hw_vector, layer_counts, layer_vector
from eyesim.cost.densities import layer_densities, parse_given
from eyesim.cost.energy import access_costs, layer_costs, mac_cost
from eyesim.cost.samples import measure, model_weights
from eyesim.cost.timing import layer_timing
from eyesim.cost.values import ValueCounts
from eyesim.cost.zeros import Density, ZeroEffects, zero_effects
from eyesim.dataflow.search import search_layer
from eyesim.errors import EyesimError
from eyesim.hardware.load import load_hardware
from eyesim.hardware.spec import Bits, Hardware
from eyesim.mapping import Mapping, load_mapping_file, violation
from eyesim.result import LayerResult, Result
from eyesim.workload.layer import Layer, Workload
from eyesim.workload.onnx.load import load_workload

SMALLEST = Mapping(1, 1, 1, 1, 1, 1, 1)
SearchCache = dict[bytes, tuple[Mapping, int]]


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


def estimate(model, hw, batch: int = 1, mapping=None, progress=None, bits=None, densities=None,
             samples=None) -> Result:
    """Estimate the energy of ``model`` (ONNX path, ModelProto or Workload) on ``hw`` (path or Hardware).

    ``mapping`` pins layers' mappings: a YAML path or ``{layer name: Mapping or dict}``; the other
    layers are searched. ``bits`` overrides the widths (``{"weights": 8, ...}`` or a Bits);
    ``densities`` sets non-zero fractions (``{"ifmap": 0.4, "conv3.ifmap": 0.3}``; types weights,
    ifmap, ofmap); ``samples`` (an array or a .npy/.npz path) are run through the model to measure
    them. ``progress`` is an optional callable taking a short status text after each step (running a
    chunk of samples, searching a layer).
    """
    workload = _workload(model, batch)
    target = Target.of(*_hardware(hw, bits))
    pinned = _pinned(mapping, workload)
    given = parse_given(densities, workload)
    proto = _with_weights(model)  # read once, for the weights and for running samples
    weights = weight_stats(proto, workload, target.bits.weights) if proto is not None else {}
    counts = _sample_counts(proto, _label(model), workload, samples, target.bits, progress)
    found = layer_densities(workload, given, weights, counts)
    cache: SearchCache = {}
    results = []
    for layer in workload.layers:
        density = found[layer.name]
        exact = None if density.user_set else counts.get(layer.name)
        effects = zero_effects(density, exact, workload.io.get(layer.name), target.hw.sparsity.zero_gating,
                               target.hw.sparsity.dram_compression, (target.bits.ifmap, target.bits.ifmap))
        effects = replace(effects, weights_dram=_weight_ratio(layer.name, density, weights, target))
        results.append(estimate_layer(layer, target, pinned.get(layer.name), cache, density, effects))
        if progress is not None:
            progress(f"searched {layer.name}")
    return Result(model=workload.model, hardware=target.hw, batch=workload.batch, bits=target.bits,
                  layers=tuple(results), not_modelled=workload.not_modelled)


def estimate_layer(layer: Layer, target: Target, pinned: Mapping | None = None, cache: SearchCache | None = None,
                   density: Density | None = None, effects: ZeroEffects | None = None) -> LayerResult:
    """One layer's result: the pinned mapping (checked) or the searched optimum, and its energy and time."""
    effects = effects or ZeroEffects()
    cost, mac = layer_costs(target.cost, target.mac_cost, effects)
    if pinned is not None:
        check_mapping(layer, target, pinned)
        chosen, evaluated = pinned, 0
    else:
        try:
            chosen, evaluated = best_mapping(layer, target, cache, cost, mac)
        except EyesimError:
            if not layer.covers_input:
                raise
            # a filter taller than the array: run the same MACs over the flattened input
            layer = layer.flattened()
            chosen, evaluated = best_mapping(layer, target, cache, cost, mac)
    counts, macs = layer_counts(layer, target.vec, chosen.vector())
    return LayerResult(layer=layer, mapping=chosen, pinned=pinned is not None,
                       active_pes=layer.R * chosen.e * chosen.r * chosen.t,
                       energy=breakdown(counts, macs, cost, mac, effects), evaluated=evaluated,
                       density=density or Density(), effects=effects,
                       timing=layer_timing(layer, chosen, counts, target.hw, target.bits, effects))


def best_mapping(layer: Layer, target: Target, cache: SearchCache | None = None, cost: np.ndarray | None = None,
                 mac: float | None = None) -> tuple[Mapping, int]:
    """The minimum-energy mapping of one group of ``layer`` and the number of mappings evaluated."""
    cost = target.cost if cost is None else cost
    mac = target.mac_cost if mac is None else mac
    lv = layer_vector(layer)
    key = lv.tobytes() + cost.tobytes() + np.float64(mac).tobytes()
    if cache is not None and key in cache:
        return cache[key]
    best, energy, evaluated = search_layer(lv, target.vec, df.strip_rows_table(lv), df.used_cols(lv), cost, mac)
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


def _hardware(hw, bits) -> tuple[Hardware, Bits]:
    hardware = hw if isinstance(hw, Hardware) else load_hardware(hw)
    if bits is None:
        return hardware, hardware.widths
    given = bits if isinstance(bits, dict) else bits.__dict__
    for dtype, value in given.items():
        if dtype not in ("weights", "ifmap", "psum"):
            raise EyesimError(f"bits: unknown data type {dtype!r} (use weights, ifmap, psum)")
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 32:
            raise EyesimError(f"bits: {dtype} must be a whole number of bits from 1 to 32, got {value!r}")
    return hardware, replace(hardware.widths, **given)


def _workload(model, batch: int) -> Workload:
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise EyesimError(f"batch must be a positive integer, got {batch!r}")
    if isinstance(model, Workload):
        return Workload(model.model, batch, tuple(layer.with_batch(batch) for layer in model.layers),
                        model.not_modelled, model.io, model.inputs)
    return load_workload(model, batch=batch)


def _pinned(mapping, workload: Workload) -> dict[str, Mapping]:
    if mapping is None:
        return {}
    if isinstance(mapping, str | os.PathLike):
        mapping = load_mapping_file(mapping)
    pinned = {name: m if isinstance(m, Mapping) else Mapping(**m) for name, m in mapping.items()}
    _known_layers(pinned, workload, "pinned mapping")
    return pinned


def _known_layers(names, workload: Workload, what: str) -> None:
    layers = {layer.name for layer in workload.layers}
    unknown = sorted(set(names) - layers)
    if unknown:
        shown = ", ".join(sorted(layers)[:12]) + (", ..." if len(layers) > 12 else "")
        raise EyesimError(f"{what} names layer(s) {', '.join(unknown)} that model {workload.model!r} does not have "
                          f"(its layers: {shown})")


def weight_stats(proto: onnx.ModelProto, workload: Workload, bits: int) -> dict[str, tuple[float, int, int]]:
    """(non-zero fraction, run-length coded 64-bit words, values) of each layer's weights in the ONNX model."""
    weights = model_weights(proto)
    return {name: (np.count_nonzero(w) / w.size, rlc_words(w, bits), w.size)
            for name, io in workload.io.items() if (w := weights.get(io.weights)) is not None}


def _with_weights(model) -> onnx.ModelProto | None:
    """The ONNX model with its weights (None for a Workload); without external ones whose file cannot be read."""
    if isinstance(model, Workload | onnx.ModelProto):
        return model if isinstance(model, onnx.ModelProto) else None
    path = model
    try:
        return onnx.load(str(path))
    except Exception:  # noqa: BLE001 - a missing or broken external data file: use what the file itself holds
        return onnx.load(str(path), load_external_data=False)


def _label(model) -> str:
    return model.graph.name or "model" if isinstance(model, onnx.ModelProto) else str(model)


def _sample_counts(proto: onnx.ModelProto | None, label: str, workload: Workload, samples, bits: Bits,
                   progress=None) -> dict[str, ValueCounts]:
    if samples is None:
        return {}
    if proto is None:
        raise EyesimError("samples need the ONNX model (a path or a ModelProto), not a Workload")
    def ran(done: int) -> None:
        if progress is not None:
            progress(f"ran {done} samples")

    fmap_bits = (bits.ifmap, bits.ifmap)  # fmaps are stored at the ifmap width
    return measure(proto, workload, samples, fmap_bits, ran, label=label)


def _weight_ratio(name: str, density: Density, weights: dict, target: Target) -> float:
    """Stored / raw bits of the layer's weights in DRAM: run-length words counted from the values when known."""
    measured = weights[name][1:] if name in weights and density.kinds[0] == "measured" else ()
    return dram_ratio(target.hw.sparsity.weight_compression, density.weights, target.bits.weights, *measured)
