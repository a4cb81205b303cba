"""ConvTranspose nodes as the convolution over the stride-expanded input (DESIGN.md, "Layers").

A ConvTranspose of stride s, dilation d, kernel k, pads (b, e) and output_padding o over n input values
equals the convolution (stride 1, dilation d, the filter flipped, channels transposed) over the input with
s − 1 zeros inserted between values, padded by d·(k−1) − b before and d·(k−1) − e + o after (a negative
padding crops). Its real MACs are the products of an input value and a tap that land inside the output.
"""

from __future__ import annotations

from eyesim.errors import EyesimError
from eyesim.workload.layer import Layer, LayerIO, Transposed, out_size
from eyesim.workload.onnx.graph import Graph


def _auto_pad(attrs: dict) -> str:
    value = attrs.get("auto_pad", b"NOTSET")
    return value.decode() if isinstance(value, bytes) else value


def transpose_geometry(name: str, attrs: dict, sizes: list[int], kernel: list[int]
                       ) -> tuple[list[int], list[int], list[int], list[int], list[int]]:
    """(strides, dilations, pads before, pads after, output sizes) per spatial dim, by the ONNX rules."""
    nd = len(sizes)
    strides = list(attrs.get("strides", [1] * nd))
    dilations = list(attrs.get("dilations", [1] * nd))
    extra = list(attrs.get("output_padding", [0] * nd))
    auto = _auto_pad(attrs)
    if auto not in ("NOTSET", "", "VALID", "SAME_UPPER", "SAME_LOWER"):
        raise EyesimError(f"ConvTranspose node {name!r}: unknown auto_pad {auto!r}")
    if not all(len(v) == nd for v in (strides, dilations, extra)) or min(*strides, *dilations) < 1:
        raise EyesimError(f"ConvTranspose node {name!r}: strides {strides}, dilations {dilations} or output_padding "
                          f"{extra} do not fit its {nd}-D input, or are below 1")
    if any(o < 0 or o >= max(s, d) for o, s, d in zip(extra, strides, dilations, strict=True)):
        raise EyesimError(f"ConvTranspose node {name!r}: output_padding {extra} must be >= 0 and below the stride "
                          f"{strides} (or the dilation {dilations})")
    full = [s * (n - 1) + o + (k - 1) * d + 1 for n, s, o, k, d in zip(sizes, strides, extra, kernel, dilations,
                                                                        strict=True)]
    if "output_shape" in attrs or auto in ("SAME_UPPER", "SAME_LOWER"):
        wanted = list(attrs["output_shape"])[-nd:] if "output_shape" in attrs else [n * s for n, s in
                                                                                    zip(sizes, strides, strict=True)]
        totals = [max(f - w, 0) for f, w in zip(full, wanted, strict=True)]  # never below 0, as onnxruntime runs it
        if len(wanted) != nd:
            raise EyesimError(f"ConvTranspose node {name!r}: output_shape {wanted} does not fit its {nd}-D input")
        # the ONNX spec's rule
        begins = [t - t // 2 if auto == "SAME_LOWER" else t // 2 for t in totals]
        ends = [t - b for t, b in zip(totals, begins, strict=True)]
    elif auto == "VALID":
        begins, ends = [0] * nd, [0] * nd
    else:
        pads = list(attrs.get("pads", [0] * 2 * nd))
        if len(pads) != 2 * nd or min(pads) < 0:
            raise EyesimError(f"ConvTranspose node {name!r}: pads {pads} are not {2 * nd} values >= 0")
        begins, ends = pads[:nd], pads[nd:]
    outs = [f - b - e for f, b, e in zip(full, begins, ends, strict=True)]
    if min(outs) < 1:
        raise EyesimError(f"ConvTranspose node {name!r}: its pads {begins + ends} crop the whole output")
    return strides, dilations, begins, ends, outs


def landed(size: int, taps: int, stride: int, dilation: int, begin: int, out: int) -> int:
    """Products of an input row's values with a filter row's taps that land in the output: 0 <= i·s + k·d − b < out."""
    total = 0
    for k in range(taps):
        low = begin - k * dilation  # i·s >= low and i·s < low + out
        first = max(0, -(-low // stride))
        last = min(size - 1, (low + out - 1) // stride)
        total += max(0, last - first + 1)
    return total


def conv_transpose_layer(graph: Graph, index: int) -> tuple[Layer, LayerIO]:
    """The layer and its tensors' places for ConvTranspose node ``index``."""
    node, name = graph.nodes[index], graph.names[index]
    x_dims, w_dims = graph.shape(index, 0), graph.shape(index, 1)
    if len(x_dims) not in (3, 4) or len(w_dims) != len(x_dims):
        raise EyesimError(f"ConvTranspose node {name!r}: input {x_dims} and weight {w_dims} are not a 1-D or 2-D "
                          "transposed convolution; eyesim models those only")
    attrs = graph.attrs(index)
    group = attrs.get("group", 1)
    kernel = list(attrs.get("kernel_shape", w_dims[2:]))
    if kernel != w_dims[2:] or group < 1 or x_dims[1] != w_dims[0] or w_dims[0] % group:
        raise EyesimError(f"ConvTranspose node {name!r}: input {x_dims}, weight {w_dims} (C x M/G x k...), "
                          f"kernel_shape {kernel} and group={group} do not agree")
    sizes = x_dims[2:]
    strides, dilations, begins, ends, outs = transpose_geometry(name, attrs, sizes, kernel)
    before = [d * (k - 1) - b for d, k, b in zip(dilations, kernel, begins, strict=True)]
    padded = [s * (n - 1) + 1 + a + (d * (k - 1) - e + o) for s, n, a, d, k, e, o in zip(
        strides, sizes, before, dilations, kernel, ends, attrs.get("output_padding", [0] * len(sizes)), strict=True)]
    real = 1
    for n, k, s, d, b, o in zip(sizes, kernel, strides, dilations, begins, outs, strict=True):
        real *= landed(n, k, s, d, b, o)
    c, m = x_dims[1] // group, w_dims[1]
    geometry = [sizes, kernel, strides, dilations, before, padded]
    if len(sizes) == 1:  # 1-D: a single row
        geometry = [[first, *values] for first, values in zip((1, 1, 1, 1, 0, 1), geometry, strict=True)]
    (h, w), (R, S), (sh, sw), (Dh, Dw), (bh, bw), (H, W) = geometry
    shape = Transposed(strides=(sh, sw), before=(bh, bw), size=(h, w), real_macs=x_dims[0] * group * c * m * real)
    layer = Layer(name=name, op="ConvTranspose", N=x_dims[0], G=group, C=c, M=m, H=H, W=W, R=R, S=S,
                  E=out_size(H, R, 1, Dh), F=out_size(W, S, 1, Dw), Dh=Dh, Dw=Dw, transposed=shape)
    if ((1, *outs) if len(outs) == 1 else tuple(outs)) != (layer.E, layer.F):
        raise EyesimError(f"ConvTranspose node {name!r}: the equivalent convolution gives {layer.E}x{layer.F}, "
                          f"not the output {outs}")  # never: the geometry above is the ONNX rule
    return layer, LayerIO(ifmap=node.input[0], weights=node.input[1], ofmap=node.output[0],
                          network_input=node.input[0] in graph.image)
