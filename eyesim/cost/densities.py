"""Each layer's weight, ifmap and ofmap densities, with where each came from (DESIGN.md, "Zeros and bit widths").

A density belongs to a tensor: a value given for ``conv4.ifmap`` (or the tensor's graph name) is the
ofmap density of the layer writing that tensor when only value-preserving ops lie between; across ops
that change values the nearest given downstream ifmap is an estimate of it.
"""

from __future__ import annotations

from dataclasses import dataclass

from eyesim.cost.values import ValueCounts
from eyesim.cost.zeros import DENSITY_TYPES, Density
from eyesim.errors import EyesimError
from eyesim.workload.layer import Workload


@dataclass(frozen=True)
class Given:
    """The user's densities: global ones by data type, and per (layer, data type) with how it was named."""

    global_: dict[str, float]
    layers: dict[tuple[str, str], tuple[float, str]]  # (layer, dtype) -> (value, the key as given)


def parse_given(densities: dict | None, workload: Workload) -> Given:
    """``{"ifmap": 0.4, "conv3.ifmap": 0.3, "relu2_out": 0.5}``: global, per layer, and per tensor name."""
    tensors = _tensor_sides(workload)
    layer_names = {layer.name for layer in workload.layers}
    global_: dict[str, float] = {}
    layers: dict[tuple[str, str], tuple[float, str]] = {}
    for key, value in (densities or {}).items():
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= value <= 1.0:
            raise EyesimError(f"density {key}={value!r} must be a number from 0 to 1")
        layer, _, dtype = str(key).rpartition(".")
        if key in DENSITY_TYPES:
            global_[key] = float(value)
        elif layer in layer_names and dtype in DENSITY_TYPES:
            layers[(layer, dtype)] = (float(value), key)
        elif key in tensors:
            layers.update({side: (float(value), key) for side in tensors[key]})
        else:
            raise EyesimError(_unknown(key, workload))
    return Given(global_, layers)


def _tensor_sides(workload: Workload) -> dict[str, list[tuple[str, str]]]:
    """Every fmap tensor name of the graph and the (layer, ifmap/ofmap) sides it is."""
    sides: dict[str, list[tuple[str, str]]] = {}
    for name, io in workload.io.items():
        for tensor in io.ifmap_tensors:
            sides.setdefault(tensor, []).append((name, "ifmap"))
        for tensor in io.ofmap_tensors:
            sides.setdefault(tensor, []).append((name, "ofmap"))
        for tensor in io.weights_tensors:  # an activation second operand
            sides.setdefault(tensor, []).append((name, "weights"))
    return sides


def _unknown(key: str, workload: Workload) -> str:
    names = [layer.name for layer in workload.layers]
    shown = ", ".join(names[:12]) + (", ..." if len(names) > 12 else "")
    return (f"density {key!r}: not a data type ({', '.join(DENSITY_TYPES)}), LAYER.TYPE of a layer of model "
            f"{workload.model!r} (its layers: {shown}), or the name of an fmap tensor of its graph")


def layer_densities(workload: Workload, given: Given, weights: dict, counts: dict[str, ValueCounts]
                    ) -> dict[str, Density]:
    """Each layer's densities, by the priority of DESIGN.md ("Zeros and bit widths")."""
    writers = {reader: name for name, io in workload.io.items() for reader in io.readers}
    out = {}
    for layer in workload.layers:
        name = layer.name
        measured = counts.get(name)
        if layer.act_operand:  # an activation: densities as an fmap's
            w = _first(_mine(given, name, "weights"), _linked_operand(workload, given, name),
                       (given.global_.get("ifmap"), "given", "user (ifmap)"),
                       (measured.weights_density if measured else None, "measured", "samples"))
        else:
            w = _first(_mine(given, name, "weights"), (given.global_.get("weights"), "given", "user"),
                       (weights[name][0] if name in weights else None, "measured", "onnx"))
        i = _first(_mine(given, name, "ifmap"), _linked_ifmap(given, writers.get(name)),
                   (given.global_.get("ifmap"), "given", "user"),
                   (measured.ifmap_density if measured else None, "measured", "samples"))
        o = _first(_mine(given, name, "ofmap"), *_linked_ofmap(workload, given, name),
                   (given.global_.get("ofmap"), "given", "user"),
                   (measured.ofmap_density if measured else None, "measured", "samples"),
                   _estimated_ofmap(workload, given, name), (given.global_.get("ifmap"), "given", "user (ifmap)"))
        picks = dict(zip(DENSITY_TYPES, (w, i, o), strict=True))
        out[name] = Density(**{d: p[0] for d, p in picks.items()},
                            source=", ".join(f"{d}: {p[2]}" for d, p in picks.items()),
                            kinds=tuple(p[1] for p in picks.values()))
    return out


Choice = tuple[float | None, str, str]  # (value or None, kind, source text)


def _first(*choices: Choice) -> tuple[float, str, str]:
    for value, kind, source in choices:
        if value is not None:
            return value, kind, source
    return 1.0, "dense", "dense"


def _mine(given: Given, layer: str, dtype: str) -> Choice:
    value, key = given.layers.get((layer, dtype), (None, ""))
    return value, "given", f"user ({key})"


def _linked_ifmap(given: Given, writer: str | None) -> Choice:
    """The writer's given ofmap density: the same tensor."""
    value, key = given.layers.get((writer, "ofmap"), (None, "")) if writer else (None, "")
    return value, "linked", f"linked to {key}"


def _linked_operand(workload: Workload, given: Given, name: str) -> Choice:
    """An activation second operand: the given ofmap density of the layer writing it, values unchanged."""
    operand = set(workload.io[name].weights_tensors) if name in workload.io else set()
    for writer, io in workload.io.items():
        value, key = given.layers.get((writer, "ofmap"), (None, ""))
        if value is not None and operand & set(io.ofmap_tensors):
            return value, "linked", f"linked to {key}"
    return None, "", ""


def _linked_ofmap(workload: Workload, given: Given, name: str) -> list[Choice]:
    """The given ifmap densities of the layers reading this ofmap unchanged: the same tensor."""
    io = workload.io.get(name)
    return [(value, "linked", f"linked to {key}") for reader in (io.readers if io else ())
            for value, key in [given.layers.get((reader, "ifmap"), (None, ""))]]


def _estimated_ofmap(workload: Workload, given: Given, name: str) -> Choice:
    """The nearest given ifmap downstream, across ops that change values: an estimate, said so."""
    io = workload.io.get(name)
    for reader, ops in io.downstream if io else ():
        value, key = given.layers.get((reader, "ifmap"), (None, ""))
        if value is not None:
            return value, "estimated", f"estimated from {key} across {', '.join(dict.fromkeys(ops))}"
    return None, "", ""
