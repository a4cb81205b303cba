"""Samples: run an ONNX model on sample inputs (onnxruntime) and count the zeros each layer sees."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx

from eyesim.cost.values import ValueCounts, merge_counts, value_counts
from eyesim.errors import EyesimError, first_line
from eyesim.workload.layer import Workload
from eyesim.workload.onnx.external import external_tensors
from eyesim.workload.onnx.proto import tensor_array
from eyesim.workload.onnx.run import Samples, check_samples, data_input, load_model, load_samples

CHUNK = 16  # sample images per onnxruntime run


def model_weights(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    """Constant tensors of the graph: initializers and Constant node values; for a quantized model's weights
    (DequantizeLinear of constants), the mask of their non-zero values.

    External data must have been read (``eyesim.workload.onnx.run.load_model`` does, bounded): weights whose
    values are missing are refused, never taken as dense.
    """
    unread = external_tensors(model)
    if unread:
        raise EyesimError(f"the values of tensor {unread[0].name!r} are in external data that was not read; pass "
                          "the model's path (eyesim reads its external data) instead of a model without them")
    weights = {init.name: _values(init) for init in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
            weights[node.output[0]] = _values(node.attribute[0].t)
        elif node.op_type == "QuantizeLinear" and (quantized := _quantize(node, weights)) is not None:
            weights[node.output[0]] = quantized  # fake quantization of float weights (Q then DQ)
        elif node.op_type == "DequantizeLinear" and (offsets := _dequantized(node, weights)) is not None:
            weights[node.output[0]] = offsets
    return weights


def _quantization(node: onnx.NodeProto, constants: dict[str, np.ndarray]) -> tuple | None:
    """(values, scale, zero point) of a QuantizeLinear/DequantizeLinear node, the 1-D scale and zero point shaped
    to broadcast along its ``axis``; None unless all are constants quantized per tensor or per axis (not per
    block, opset 21). A zero point or scale that does not match its axis is refused."""
    values, scale = constants.get(node.input[0]), constants.get(node.input[1]) if len(node.input) > 1 else None
    zero = constants.get(node.input[2]) if len(node.input) > 2 and node.input[2] else np.zeros((), np.uint8)
    attrs = {attr.name: attr.i for attr in node.attribute}
    if values is None or scale is None or zero is None or attrs.get("block_size", 0):
        return None
    if max(scale.ndim, zero.ndim) == 1 and values.ndim > 1:  # per axis: one (scale, zero point) per slice
        axis = attrs.get("axis", 1)
        if not -values.ndim <= axis < values.ndim or {scale.size, zero.size} - {1, values.shape[axis]}:
            raise EyesimError(f"{node.op_type} node {node.name or node.output[0]!r}: axis {axis} of a tensor of "
                              f"dims {list(values.shape)} does not match its {scale.size} scales and {zero.size} "
                              "zero points")
        shape = [-1 if dim == axis % values.ndim else 1 for dim in range(values.ndim)]
        scale, zero = scale.reshape(shape if scale.size > 1 else ()), zero.reshape(shape if zero.size > 1 else ())
    return values, scale, zero


def _is_integer(array: np.ndarray) -> bool:
    return array.dtype.kind in "iu" or array.dtype.name in ("int4", "uint4")  # int4: ml_dtypes' kind is 'V'


def _dequantized(node: onnx.NodeProto, constants: dict[str, np.ndarray]) -> np.ndarray | None:
    """A quantized model's weights (QDQ form: ``DequantizeLinear(q, scale, zero point)`` of constants), as the
    mask ``q != zero point``: a weight is zero exactly there (the scale keeps zeros), and only zeros matter here
    (a mask is a byte a weight, where their differences in int64 would be eight)."""
    found = _quantization(node, constants)
    if found is None or not _is_integer(found[0]) or not _is_integer(found[2]):
        return None
    values, _, zero = (a if a.dtype.kind in "iu" else a.astype(np.int8) for a in found)  # int4: ml_dtypes' own
    return values != zero


def _quantize(node: onnx.NodeProto, constants: dict[str, np.ndarray]) -> np.ndarray | None:
    """``QuantizeLinear`` of constant float weights, as ONNX defines it: round half to even, add the zero point,
    saturate to its integer type; None for other types (float 8) or a target type set apart from a zero point."""
    found = _quantization(node, constants)
    explicit = any(attr.name == "output_dtype" for attr in node.attribute)
    if found is None or found[0].dtype.kind != "f" or found[2].dtype.kind not in "iu" or (
            explicit and not (len(node.input) > 2 and node.input[2])):
        return None
    values, scale, zero = found
    info = np.iinfo(zero.dtype)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.clip(np.rint(values / scale) + zero, info.min, info.max).astype(zero.dtype)


def _values(tensor: onnx.TensorProto) -> np.ndarray:
    """A tensor's values; one-line EyesimError when its data does not fill its dims."""
    try:
        return tensor_array(tensor)  # not onnx.numpy_helper: it pulls ml_dtypes (~0.6 s)
    except (ValueError, TypeError, IndexError) as err:
        raise EyesimError(f"tensor {tensor.name!r}: its data does not match its dims {list(tensor.dims)} "
                          f"({first_line(err)})") from err


def measure(model: str | Path | onnx.ModelProto, workload: Workload, samples: np.ndarray | str | Path,
            bits: tuple[int, int], progress=None, label: str | None = None) -> dict[str, ValueCounts]:
    """Per-layer value counts over ``samples`` (images first, or a .npy/.npz path), run with onnxruntime."""
    import onnxruntime as ort

    label = label or (workload.model if isinstance(model, onnx.ModelProto) else str(model))
    model = model if isinstance(model, onnx.ModelProto) else load_model(model)
    found = Samples(samples, None, label) if isinstance(samples, np.ndarray) else load_samples(samples, False)
    weights = model_weights(model)
    missing = [vi.name for vi in model.graph.input if vi.name not in weights and vi.name not in workload.inputs]
    if missing:
        raise EyesimError(f"{label}: running samples needs a model with weights; {missing[0]!r} (and "
                          f"{len(missing) - 1} more) have no values (a shape-only model)")
    samples = check_samples(model, found)
    if samples.dtype.kind == "f" and not np.isfinite(samples).all():
        raise EyesimError(f"{found.source}: samples hold NaN or infinite values")
    input_name = data_input(model).name
    acts = {layer.name for layer in workload.layers if layer.act_operand}  # second operands that are activations
    wanted = sorted({t for name, io in workload.io.items() for t in (io.ifmap, io.ofmap, *(
        (io.weights,) if name in acts else ()))} - set(workload.inputs))
    try:
        session = ort.InferenceSession(_with_outputs(model, wanted).SerializeToString(),
                                       providers=["CPUExecutionProvider"])
    except Exception as err:  # onnxruntime raises its own exception types
        raise EyesimError(f"{label}: onnxruntime cannot load the model ({_last_line(err)})") from None
    fixed = _fixed_batch(model, input_name)  # the file's own batch, whatever --batch says
    counts: dict[str, ValueCounts | None] = dict.fromkeys(workload.io)
    step = fixed or CHUNK
    for start in range(0, len(samples) - len(samples) % step if fixed else len(samples), step):
        batch = samples[start:start + step]
        try:
            values = dict(zip([input_name, *wanted], [batch, *session.run(wanted, {input_name: batch})],
                              strict=True))
        except Exception as err:  # onnxruntime reports bad inputs as its own exception types
            raise EyesimError(f"{label}: onnxruntime could not run the samples ({_last_line(err)})") from None
        for layer in workload.layers:
            io = workload.io[layer.name]
            w = values[io.weights] if layer.name in acts else weights.get(io.weights)
            found = value_counts(values[io.ifmap], values[io.ofmap], w, layer, io, bits)
            counts[layer.name] = merge_counts(counts[layer.name], found)
        if progress is not None:
            progress(min(start + step, len(samples)))
    if any(c is None for c in counts.values()):
        raise EyesimError(f"{label}: need at least {step} samples (the ONNX file fixes its batch at {step})")
    return counts  # type: ignore[return-value]


def _last_line(err: BaseException) -> str:
    """onnxruntime puts the reason after the source location."""
    text = " ".join(str(err).split())
    return text.rsplit(" : ", 1)[-1][-300:]


def _fixed_batch(model: onnx.ModelProto, input_name: str) -> int | None:
    """The batch size the ONNX file fixes for its data input (onnxruntime runs it at that), or None."""
    for vi in model.graph.input:
        if vi.name == input_name:
            dim = vi.type.tensor_type.shape.dim
            return dim[0].dim_value if dim and dim[0].HasField("dim_value") and dim[0].dim_value > 0 else None
    return None


def _with_outputs(model: onnx.ModelProto, tensors: list[str]) -> onnx.ModelProto:
    """A copy of ``model`` that also outputs ``tensors`` (types from shape inference)."""
    inferred = onnx.shape_inference.infer_shapes(model)
    types = {vi.name: vi for vi in [*inferred.graph.value_info, *inferred.graph.output, *inferred.graph.input]}
    out = onnx.ModelProto()
    out.CopyFrom(model)
    present = {o.name for o in out.graph.output}
    for name in tensors:
        if name in present:
            continue
        if name not in types:
            raise EyesimError(f"cannot capture tensor {name!r}: shape inference gives it no type")
        out.graph.output.append(types[name])
    return out
