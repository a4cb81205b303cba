"""Estimate: for each layer of a workload, search (or take the pinned) mapping and weigh its accesses."""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass, fields, replace

import numpy as np
import onnx

from eyesim import dataflow as df
from eyesim.cost.breakdown import breakdown
from eyesim.cost.compression import Planes, dram_ratio, measured_ratio, rlc_words
from eyesim.cost.counts import hw_vector, layer_counts, layer_vector
from eyesim.cost.densities import layer_densities, parse_given
from eyesim.cost.energy import access_costs, layer_costs, mac_cost, psum_extra
from eyesim.cost.samples import measure, model_weights
from eyesim.cost.timing import layer_timing
from eyesim.cost.values import ValueCounts
from eyesim.cost.zeros import Density, ZeroEffects, psum_skips, zero_effects
from eyesim.errors import EyesimError
from eyesim.hardware.load import load_hardware
from eyesim.hardware.spec import Bits, Hardware
from eyesim.mapping import Mapping, load_mapping_file, violation
from eyesim.result import LayerResult, Result
from eyesim.workload.layer import Layer, Workload
from eyesim.workload.limits import TooLarge, check_layer, rebatched
from eyesim.workload.onnx.load import OnnxFile, load_with_file, load_workload
from eyesim.workload.onnx.opsets import upgraded
from eyesim.workload.onnx.quantized import width_notes
from eyesim.workload.onnx.run import with_weights
from eyesim.workload.slices import slice_shapes, sliced
from eyesim.workload.torch_export import as_model, example_batch

SMALLEST = Mapping(1, 1, 1, 1, 1, 1, 1)
# the counts that are at their least at m = p = M, n = N, e = E, q = r = t = 1 (_energy_floor)
_LEAST = ((df.DRAM, df.IFMAP, df.READ), (df.DRAM, df.WEIGHTS, df.READ), (df.DRAM, df.PSUM, df.WRITE),
          (df.GLB, df.IFMAP, df.READ), (df.GLB, df.WEIGHTS, df.READ), (df.ARRAY, df.IFMAP, df.READ),
          (df.ARRAY, df.WEIGHTS, df.READ), (df.RF, df.IFMAP, df.READ), (df.RF, df.WEIGHTS, df.READ),
          (df.RF, df.PSUM, df.READ), (df.RF, df.PSUM, df.WRITE))
_FLOOR = np.zeros((4, 3, 2), dtype=np.int64)
_FLOOR[tuple(np.array(_LEAST).T)] = 1
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
        return _target(hw, bits or hw.widths)


@functools.lru_cache(maxsize=16)
def _target(hw: Hardware, bits: Bits) -> Target:
    """``Target.of``, built once per (hardware, widths): both are frozen, and its arrays are only read (the kernels
    take them writeable: a read-only array would be another signature)."""
    return Target(hw, bits, hw_vector(hw, bits), access_costs(hw, bits), mac_cost(hw, bits))


def estimate(model, hw, batch: int | None = None, mapping=None, progress=None, bits=None, densities=None,
             samples=None, input_shapes=None, example_inputs=None, exporter=None, opset=None) -> Result:
    """Estimate the energy of ``model`` (ONNX path, ModelProto, Workload, torch module) on ``hw`` (path or Hardware).

    ``mapping`` pins layers' mappings: a YAML path or ``{layer name: Mapping or dict}``; the other
    layers are searched. ``bits`` overrides the widths (``{"weights": 8, ...}`` or a Bits);
    ``densities`` sets non-zero fractions (``{"ifmap": 0.4, "conv3.ifmap": 0.3}``; types weights,
    ifmap, ofmap); ``samples`` (an array or a .npy/.npz path) are run through the model to measure
    them. ``progress`` is an optional callable taking a short status text after each step (running a
    chunk of samples, searching a layer). ``input_shapes`` (``{input name: (d0, d1, ...)}``) fixes whole
    input shapes; ``batch`` sets only inputs' batch dims (eyesim.workload.onnx.batch). A ``torch.nn.Module``
    is exported with torch.onnx on ``example_inputs`` first (``exporter``, ``opset``: eyesim.workload.torch_export);
    ``batch`` is then, unless given, the inputs' first dim (else it defaults to 1).
    """
    model = as_model(model, example_inputs, exporter, opset)
    batch = example_batch(example_inputs) if batch is None else batch
    workload, source = _workload(model, batch, input_shapes)
    target = Target.of(*_hardware(hw, bits))
    pinned = _pinned(mapping, workload)
    given = parse_given(densities, workload)
    proto = _with_weights(model, source)  # for the weights and for running samples
    weights = weight_stats(proto, workload, target.bits.weights) if proto is not None else {}
    counts = _sample_counts(proto, _label(model), workload, samples, target.bits, progress)
    found = layer_densities(workload, given, weights, counts)
    cache: SearchCache = {}
    memo: dict[tuple, list] = {}  # layer shape -> (inputs, result) of the layers estimated
    results = []
    for layer in workload.layers:
        density = found[layer.name]
        exact = None if density.user_set else counts.get(layer.name)
        effects = zero_effects(layer, density, exact, workload.io.get(layer.name), target.hw.sparsity,
                               (target.bits.ifmap, target.bits.ifmap),
                               _weight_ratio(layer, density, weights, target, workload.io))
        results.append(_reused(layer, target, pinned.get(layer.name), cache, density, effects, memo))
        if progress is not None:
            progress(f"searched {layer.name}")
    notes = () if proto is None else width_notes(proto, workload.io, target.bits.weights, target.bits.ifmap)
    return Result(model=workload.model, hardware=target.hw, batch=workload.batch, bits=target.bits,
                  layers=tuple(results), not_modelled=workload.not_modelled, notes=notes)


_SHAPE_FIELDS = tuple(f.name for f in fields(Layer) if f.name != "name")  # what a layer is, but for its name


def _reused(layer: Layer, target: Target, pinned: Mapping | None, cache: SearchCache, density: Density,
            effects: ZeroEffects, memo: dict[tuple, list]) -> LayerResult:
    """``estimate_layer``, or the result of an earlier layer of the same shape, zeros and pinned mapping, renamed.

    Such a layer's result is a function of exactly these (one target per estimate): ResNet-50's 54 layers
    have 24 shapes. Exact psum gating's per-channel arrays are not in ``ZeroEffects``' equality: not reused.
    """
    if effects.first_taps.size or effects.first_taps_flat.size:
        return estimate_layer(layer, target, pinned, cache, density, effects)
    earlier = memo.setdefault(tuple(getattr(layer, f) for f in _SHAPE_FIELDS), [])
    given = (pinned, density, effects)
    exact = _exact(given)
    for specs, texts, first, found in earlier:
        if specs == given and texts == exact:
            slices = found.slices and replace(found.slices, layer=_renamed(found.slices.layer, first, layer))
            return replace(found, layer=_renamed(found.layer, first, layer), slices=slices)
    found = estimate_layer(layer, target, pinned, cache, density, effects)
    earlier.append((given, exact, layer, found))
    return found


def _renamed(run: Layer, first: Layer, layer: Layer) -> Layer:
    """``run`` (``first`` as it ran) for ``layer``: ``layer`` itself when ``first`` ran unchanged (equal but for
    the name), else ``run`` with ``layer``'s name."""
    return layer if run is first else replace(run, name=layer.name)


def _exact(specs: tuple) -> tuple:
    """The specs' float fields as text, which tells 0.0 from -0.0 (float equality does not; the results would)."""
    return tuple(value.hex() for spec in specs if spec is not None for value in vars(spec).values()
                 if isinstance(value, float))


def estimate_layer(layer: Layer, target: Target, pinned: Mapping | None = None, cache: SearchCache | None = None,
                   density: Density | None = None, effects: ZeroEffects | None = None) -> LayerResult:
    """One layer's result: the pinned mapping (checked) or the searched optimum, and its energy and time."""
    effects = effects or ZeroEffects()
    target = operand_target(layer, target)
    cost, mac = layer_costs(target.cost, target.mac_cost, effects)
    outside = target.hw.native.outside(layer.shape)  # of the layer as given: reported, never enforced
    if pinned is not None:
        check_mapping(layer, target, pinned)
        chosen, evaluated = pinned, 0
    else:
        try:
            chosen, evaluated = best_mapping(layer, target, cache, cost, mac, psum_skips(layer, effects))
        except EyesimError as err:
            if layer.covers_input:  # a filter taller than the array: run the same MACs over the flattened input
                layer, effects = layer.flattened(), effects.flattened()
                chosen, evaluated = best_mapping(layer, target, cache, cost, mac, psum_skips(layer, effects))
            elif layer.patches and not effects.first_taps.size:  # e.g. a ViT's 16 x 16 patches on 12 PE rows
                layer = layer.as_patches()
                chosen, evaluated = best_mapping(layer, target, cache, cost, mac, psum_skips(layer, effects))
            elif layer.R > 1 or layer.S > 1:  # too wide for the scratchpads or too tall for the array: slices
                return replace(_best_slices(layer, target, cache, (cost, mac), density, effects, err),
                               outside_native=outside)
            else:
                raise
    return _layer_result(layer, chosen, pinned is not None, evaluated, target, (cost, mac), density, effects, outside)


def _layer_result(layer: Layer, chosen: Mapping, pinned: bool, evaluated: int, target: Target,
                  costs: tuple[np.ndarray, float], density: Density | None, effects: ZeroEffects,
                  outside: tuple[str, ...] = ()) -> LayerResult:
    """The counts, energy and time of ``layer`` (as run) under the mapping ``chosen``; ``outside``: how the layer
    as given falls outside the hardware's native shapes."""
    cost, mac = costs
    counts, macs = layer_counts(layer, target.vec, chosen.vector())
    skips = psum_skips(layer, effects)
    skipped = 0.0 if skips is None else float(skips[chosen.q]) * layer.macs
    energy = breakdown(counts, macs, cost, mac, effects, skipped)
    if layer.transposed is not None:  # charged with its real MACs; the run convolution's are executed or gated
        energy = replace(energy, macs=layer.charged_macs)
    return LayerResult(layer=layer, mapping=chosen, pinned=pinned,
                       active_pes=layer.R * chosen.e * chosen.r * chosen.t,
                       energy=energy, evaluated=evaluated,
                       density=density or Density(), effects=effects,
                       timing=layer_timing(layer, chosen, counts, target.hw, target.bits, effects),
                       outside_native=outside)


def _best_slices(layer: Layer, target: Target, cache: SearchCache | None, costs: tuple[np.ndarray, float],
                 density: Density | None, effects: ZeroEffects, err: EyesimError) -> LayerResult:
    """``layer`` run as slices: of every slice shape (rows x taps) that fits, the one whose estimate has the least
    energy.

    Each shape's sliced layer is searched as any layer is, the most promising first (least lower bound);
    a shape whose lower bound is above the best energy found cannot win and is not searched. A tie keeps
    the fewest slices, then the widest. ``evaluated`` counts the mappings of every shape searched.
    """
    if effects.first_taps.size:  # exact psum gating would need each slice's first-tap zeros
        raise EyesimError(f"{err}; it would run as slices, but exact psum gating from samples is not modelled "
                          "for slices: give densities (--density) or set sparsity.gate_psums: false")
    # the smallest mapping uses the least of every resource: a shape whose smallest mapping breaks one fits none
    checked = [(run, slices, _too_large(run)) for run, slices in
               (sliced(layer, width, height) for height, width in slice_shapes(layer.R, layer.S))]
    too_large = [reason for _, _, reason in checked if reason]
    fits = [(run, slices) for run, slices, reason in checked if not reason
            and df.first_violation(layer_vector(run), target.vec, SMALLEST.vector()) == df.OK]
    floors = [_energy_floor(run, target, costs, effects) for run, _ in fits]
    best, evaluated = None, 0
    for floor, (run, slices) in sorted(zip(floors, fits, strict=True), key=lambda pair: pair[0]):
        if best is not None and floor > best.energy.total:
            break  # neither this shape nor any later one can win
        chosen, count = best_mapping(run, target, cache, *costs)
        evaluated += count
        found = replace(_layer_result(run, chosen, False, 0, target, costs, density, effects), slices=slices)
        if best is None or _slice_rank(found) < _slice_rank(best):
            best = found
    if best is None:
        limits = f" ({len(too_large)} of them above the search's limits: {too_large[0]})" if too_large else ""
        raise EyesimError(f"{err}; nor as slices of any rows dividing R={layer.R} and taps dividing S={layer.S}"
                          + limits)
    return replace(best, evaluated=evaluated)


def _too_large(run: Layer) -> str:
    """Why a sliced layer is above the search's limits (cut rows no longer step by the stride: a strip's rows
    are scanned one by one, E^2 h), or ""."""
    try:
        check_layer(run)
    except TooLarge as err:
        return str(err).split("): ", 1)[-1]
    return ""


def _slice_rank(found: LayerResult) -> tuple[float, int, int]:
    """Least energy first; a tie keeps the fewest slices, then the widest (whole filter rows before cut ones)."""
    return found.energy.total, found.slices.count, -found.slices.width


def operand_target(layer: Layer, target: Target) -> Target:
    """The target a layer runs on: an activation second operand moves at the fmap width, not the weights'."""
    if not layer.act_operand or target.bits.weights == target.bits.ifmap:
        return target
    return _act_target(target.hw, target.bits)


def _act_target(hw: Hardware, bits: Bits) -> Target:
    return _target(hw, replace(bits, weights=bits.ifmap))


def _energy_floor(layer: Layer, target: Target, costs: tuple[np.ndarray, float], effects: ZeroEffects) -> float:
    """A lower bound of ``layer``'s energy under any mapping (DESIGN.md, "Filters wider than a scratchpad or
    taller than the array").

    The counts at m = p = M, n = N, e = E, q = r = t = 1 (legal or not) that no mapping goes below: one
    m-chunk, n-chunk and strip (DRAM ifmap: all needed rows once; DRAM, GLB and array weights), one filter
    chunk and PE set per strip and channel (GLB and array ifmap reads), one channel per PE (the most psum
    starts: the fewest RF psum accesses), and those no mapping changes (RF ifmap and weight reads, ofmap
    writes, MACs). The other counts are left at zero: energy is a sum of
    counts times non-negative costs and floating-point addition is monotone, so this never exceeds a real
    mapping's energy.
    """
    counts, macs = layer_counts(layer, target.vec, Mapping(layer.M, layer.N, layer.E, layer.M, 1, 1, 1).vector())
    return breakdown(counts * _FLOOR, macs, *costs, effects).total


def best_mapping(layer: Layer, target: Target, cache: SearchCache | None = None, cost: np.ndarray | None = None,
                 mac: float | None = None, skips: np.ndarray | None = None) -> tuple[Mapping, int]:
    """The minimum-energy mapping of one group of ``layer`` and the number of mappings evaluated.

    ``skips``: exact psum gating's skipped read-write pairs per q (``zeros.psum_skips``), or None.
    """
    cost = target.cost if cost is None else cost
    mac = target.mac_cost if mac is None else mac
    lv = layer_vector(layer)
    extra = psum_extra(layer, cost, skips)
    key = lv.tobytes() + cost.tobytes() + np.float64(mac).tobytes() + extra.tobytes()
    if cache is not None and key in cache:
        return cache[key]
    best, energy, evaluated = df.search_layer(lv, target.vec, df.strip_rows_table(lv), df.used_cols(lv), cost, mac,
                                           extra)
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


def _workload(model, batch: int, input_shapes=None) -> tuple[Workload, OnnxFile | None]:
    """The workload, and the ONNX file read for it (None unless ``model`` is a path): read once per estimate."""
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise EyesimError(f"batch must be a positive integer, got {batch!r}")
    if isinstance(model, Workload):
        if input_shapes:
            raise EyesimError("input_shapes need the ONNX model (a path or a ModelProto), not a Workload")
        return rebatched(model, batch), None
    if isinstance(model, onnx.ModelProto):
        return load_workload(model, batch=batch, input_shapes=input_shapes), None
    return load_with_file(model, batch=batch, input_shapes=input_shapes)


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
        more = f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""  # a file may name thousands
        names_text = ", ".join(name[:60] for name in unknown[:5]) + more
        raise EyesimError(f"{what} names layer(s) {names_text} that model {workload.model!r} does not have "
                          f"(its layers: {shown})")


def weight_stats(proto: onnx.ModelProto, workload: Workload, bits: int) -> dict[str, tuple[float, int, int]]:
    """(non-zero fraction, run-length coded 64-bit words, values) of each layer's weights in the ONNX model."""
    weights = model_weights(proto)
    return {name: (np.count_nonzero(w) / w.size, rlc_words(w, bits), w.size)
            for name, io in workload.io.items() if (w := weights.get(io.weights)) is not None}


def _with_weights(model, source: OnnxFile | None) -> onnx.ModelProto | None:
    """The ONNX model with its weights (None for a Workload); ``source``: the file ``_workload`` read."""
    if isinstance(model, Workload | onnx.ModelProto):
        return upgraded(model) if isinstance(model, onnx.ModelProto) else None  # the model load_workload read
    return with_weights(source)  # external data checked before it is read; missing data is refused, never dense


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


def _weight_ratio(layer: Layer, density: Density, weights: dict, target: Target, workload_io: dict) -> float:
    """Stored / raw bits of the layer's weights in DRAM (one stream): counted from the values when known."""
    if layer.act_operand:  # an activation: coded as an fmap, at the fmap width; the input image never
        io = workload_io.get(layer.name)
        if io is not None and io.weights_input:
            return 1.0
        return dram_ratio(target.hw.sparsity.dram_compression, density.weights, target.bits.ifmap,
                          Planes(layer.G, layer.C, layer.M))
    scheme, bits = target.hw.sparsity.weight_compression, target.bits.weights
    if layer.name in weights and density.kinds[0] == "measured":
        nonzero, words, values = weights[layer.name]
        return measured_ratio(scheme, bits, words, values, round(nonzero * values))
    return dram_ratio(scheme, density.weights, bits, Planes(1, 1, layer.G * layer.M * layer.C * layer.R * layer.S))
