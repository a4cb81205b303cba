"""The widths a quantized (QDQ) model gives its layers' weights and input fmaps, read off its DequantizeLinear nodes."""

from __future__ import annotations

from collections.abc import Mapping

import onnx

from eyesim.workload.layer import LayerIO

_T = onnx.TensorProto
BITS = {_T.INT4: 4, _T.UINT4: 4, _T.INT8: 8, _T.UINT8: 8, _T.INT16: 16, _T.UINT16: 16, _T.INT32: 32,
        _T.FLOAT8E4M3FN: 8, _T.FLOAT8E4M3FNUZ: 8, _T.FLOAT8E5M2: 8, _T.FLOAT8E5M2FNUZ: 8}


def quantized_widths(model: onnx.ModelProto, io: Mapping[str, LayerIO]) -> dict[str, tuple[int | None, int | None]]:
    """Each layer's (weight bits, ifmap bits) where its weights or ifmap come out of a DequantizeLinear, else None.

    The quantized type is that of DequantizeLinear's input: an initializer's, or the output type of the
    QuantizeLinear that makes it (its zero point's type, its ``output_dtype``, else uint8, as ONNX defines it).
    """
    graph = model.graph
    producers = {out: node for node in graph.node for out in node.output}
    types = {tensor.name: tensor.data_type for tensor in graph.initializer}

    def bits(tensor: str) -> int | None:
        node = producers.get(tensor)
        if node is None or node.op_type != "DequantizeLinear" or node.domain not in ("", "ai.onnx"):
            return None
        source = node.input[0]
        if source in types:
            return BITS.get(types[source])
        quantize = producers.get(source)
        if quantize is None or quantize.op_type != "QuantizeLinear":
            return None
        if len(quantize.input) > 2 and quantize.input[2] in types:
            return BITS.get(types[quantize.input[2]])
        given = next((attr.i for attr in quantize.attribute if attr.name == "output_dtype"), 0)
        return BITS.get(given or _T.UINT8)

    return {name: (bits(where.weights), bits(where.ifmap)) for name, where in io.items()}


def width_notes(model: onnx.ModelProto, io: Mapping[str, LayerIO], weights: int, ifmap: int) -> tuple[str, ...]:
    """A note when the model's quantized widths are narrower than the widths the estimate moves; else none."""
    widths = quantized_widths(model, io)
    found = [max((w[i] for w in widths.values() if w[i] is not None), default=None) for i in (0, 1)]
    narrower = [(kind, bits, used) for kind, bits, used in zip(("weights", "ifmap"), found, (weights, ifmap),
                                                                 strict=True) if bits is not None and bits < used]
    if not narrower:
        return ()
    text = " and ".join(f"{kind} to {bits} bits" for kind, bits, _ in narrower)
    used = "/".join(f"{used}" for _, _, used in narrower)
    flag = ",".join(f"{kind}={bits}" for kind, bits, _ in narrower)
    return (f"the model quantizes {text} (DequantizeLinear), but this estimate moves them at {used} bits: "
            f"--bits {flag} (bits= in the API) estimates them at the model's widths",)
