"""Conv, Gemm and MatMul nodes as Layers (DESIGN.md notation), and where each layer's tensors are."""

from __future__ import annotations

import math
from dataclasses import replace

from eyesim.errors import EyesimError
from eyesim.workload.layer import Layer, LayerIO, NotModelled, out_size
from eyesim.workload.onnx.fold import fold_batchnorms, fold_pads
from eyesim.workload.onnx.graph import Graph
from eyesim.workload.onnx.ops import ACTIVATIONS, MAC_OPS, TRANSPARENT_OPS
from eyesim.workload.onnx.products import product_layer
from eyesim.workload.onnx.transpose import conv_transpose_layer


def convert_layers(graph: Graph) -> tuple[list[Layer], list[NotModelled], dict[str, LayerIO]]:
    """The layers, the ops without MACs (folded or not), and where each layer's tensors are."""
    folded_pads = fold_pads(graph)
    batchnorms = fold_batchnorms(graph)
    folded = {pad: conv for conv, (pad, *_) in folded_pads.items()} | batchnorms
    layers, not_modelled, io = [], [], {}
    convs_bn = {conv: bn for bn, conv in batchnorms.items()}
    for index, node in enumerate(graph.nodes):
        name = graph.names[index]
        if node.op_type == "ConvTranspose" or _is_product(graph, node):
            layer, where = (conv_transpose_layer(graph, index) if node.op_type == "ConvTranspose"
                            else product_layer(graph, index, node.output[0]))
            layers.append(layer)
            io[name] = replace(where, ofmap=_written(graph, node.output[0]))
        elif node.op_type in MAC_OPS:
            if node.op_type == "Conv":
                layers.append(_conv_layer(graph, index, folded_pads.get(index)))
            elif node.op_type == "Gemm":
                layers.append(_gemm_layer(graph, index))
            else:
                layers.append(_matmul_layer(graph, index))
            io[name] = _layer_io(graph, index, folded_pads.get(index), convs_bn.get(index))
        elif index in folded:
            not_modelled.append(NotModelled(name, node.op_type, f"folded into {graph.names[folded[index]]}"))
        else:
            not_modelled.append(NotModelled(name, node.op_type, "no MACs"))
    return layers, not_modelled, io


def _is_product(graph: Graph, node) -> bool:
    """An Einsum, or a MatMul/Gemm whose second operand is an activation (products.py)."""
    if node.op_type == "Einsum":
        if len(node.input) != 2:
            raise EyesimError(f"Einsum node {node.name!r} has {len(node.input)} operands; eyesim models two")
        return True
    if node.op_type == "MatMul":
        return node.input[0] not in graph.const and node.input[1] not in graph.const
    return node.op_type == "Gemm" and node.input[1] not in graph.const


def _written(graph: Graph, ofmap: str) -> str:
    """The ofmap as written to DRAM: after a directly following activation, as on the chip."""
    use = graph.sole_consumer(ofmap)
    if use is not None and graph.nodes[use[0]].op_type in ACTIVATIONS:
        return graph.nodes[use[0]].output[0]
    return ofmap


def _layer_io(graph: Graph, index: int, pad_fold: tuple | None, batchnorm: int | None) -> LayerIO:
    """Where the layer's tensors are: for measuring densities and counting zeros from values."""
    node = graph.nodes[index]
    attrs = graph.attrs(index)
    x_pos, w_pos = (0, 1)
    if node.op_type == "MatMul" and node.input[1] not in graph.const:
        x_pos, w_pos = (1, 0)
    ifmap = pad_fold[1] if pad_fold else node.input[x_pos]
    ofmap = _written(graph, graph.nodes[batchnorm].output[0] if batchnorm is not None else node.output[0])
    begins, ends = [0, 0], [0, 0]
    if node.op_type == "Conv":
        dims = graph.shape(index, 1)
        spatial = [d + p for d, p in zip(graph.shape(index, 0, ifmap)[2:], pad_fold[2] if pad_fold else [0, 0],
                                         strict=False)]
        nd = len(spatial)
        totals, conv_begins = conv_pads(attrs, spatial, dims[2:], list(attrs.get("strides", [1] * nd)),
                                        list(attrs.get("dilations", [1] * nd)))
        lead = pad_fold[3] if pad_fold else [0] * nd
        begins = [b + extra for b, extra in zip(conv_begins, lead, strict=True)]
        fold = pad_fold[2] if pad_fold else [0] * nd
        ends = [t - b + f - extra for t, b, f, extra in zip(totals, conv_begins, fold, lead, strict=True)]
        begins, ends = ([0, *begins], [0, *ends]) if nd == 1 else (begins, ends)
    in_out = node.op_type == "MatMul" or (node.op_type == "Gemm" and not attrs.get("transB", 0))
    return LayerIO(ifmap=ifmap, weights=node.input[w_pos], ofmap=ofmap, weights_in_out=in_out,
                   pad_top=begins[0], pad_left=begins[1], pad_bottom=ends[0], pad_right=ends[1],
                   network_input=ifmap in graph.image)


def _conv_layer(graph: Graph, index: int, pad_fold: tuple[int, str, list[int], list[int]] | None) -> Layer:
    name = graph.names[index]
    x_dims = graph.shape(index, 0, pad_fold[1] if pad_fold else None)
    w_dims = graph.shape(index, 1)
    if len(x_dims) == 5:
        raise EyesimError(f"Conv node {name!r} is a 3-D convolution; eyesim models 1-D and 2-D convolutions")
    if len(x_dims) not in (3, 4) or len(w_dims) != len(x_dims):
        raise EyesimError(f"Conv node {name!r}: input {x_dims} and weight {w_dims} are not a 1-D or 2-D conv")
    attrs = graph.attrs(index)
    spatial = [d + p for d, p in zip(x_dims[2:], pad_fold[2] if pad_fold else [0, 0], strict=False)]
    nd = len(spatial)
    kernel = list(attrs.get("kernel_shape", w_dims[2:]))
    strides = list(attrs.get("strides", [1] * nd))
    dilations = list(attrs.get("dilations", [1] * nd))
    if kernel != w_dims[2:]:
        raise EyesimError(f"Conv node {name!r}: kernel_shape {kernel} does not match the weight {w_dims}")
    pads, _ = conv_pads(attrs, spatial, kernel, strides, dilations)
    group = attrs.get("group", 1)
    if w_dims[0] % group or (x_dims[1] != w_dims[1] * group):
        raise EyesimError(f"Conv node {name!r}: input {x_dims}, weight {w_dims} and group={group} do not agree")
    geometry = [spatial, kernel, strides, dilations, pads]
    if nd == 1:  # 1-D conv: a single row
        geometry = [[first, *values] for first, values in zip((1, 1, 1, 1, 0), geometry, strict=True)]
    (h, w), (R, S), (U, Uw), (Dh, Dw), (ph, pw) = geometry
    H, W = h + ph, w + pw
    return Layer(
        name=name, op="Conv", N=x_dims[0], G=group, C=w_dims[1], M=w_dims[0] // group, H=H, W=W, R=R, S=S,
        E=out_size(H, R, U, Dh), F=out_size(W, S, Uw, Dw), U=U, Uw=Uw, Dh=Dh, Dw=Dw,
    )


def conv_pads(attrs: dict, spatial: list[int], kernel: list[int], strides: list[int], dilations: list[int]
               ) -> tuple[list[int], list[int]]:
    """Total padding (begin + end) and leading padding (begin) per spatial dim, following ``auto_pad``."""
    auto_pad = attrs.get("auto_pad", b"NOTSET")
    auto_pad = auto_pad.decode() if isinstance(auto_pad, bytes) else auto_pad
    nd = len(spatial)
    if auto_pad == "VALID":
        return [0] * nd, [0] * nd
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        totals = [
            max((math.ceil(size / s) - 1) * s + (k - 1) * d + 1 - size, 0)
            for size, k, s, d in zip(spatial, kernel, strides, dilations, strict=False)
        ]
        upper = auto_pad == "SAME_UPPER"  # the extra odd pad goes at the end
        return totals, [total // 2 if upper else total - total // 2 for total in totals]
    if auto_pad not in ("NOTSET", ""):
        raise EyesimError(f"unknown auto_pad {auto_pad!r}")
    pads = list(attrs.get("pads", [0] * 2 * nd))
    return [pads[i] + pads[i + nd] for i in range(nd)], pads[:nd]


def _gemm_layer(graph: Graph, index: int) -> Layer:
    node, name = graph.nodes[index], graph.names[index]
    attrs = graph.attrs(index)
    a_dims, b_dims = graph.shape(index, 0), graph.shape(index, 1)
    if len(a_dims) != 2 or len(b_dims) != 2:
        raise EyesimError(f"Gemm node {name!r}: operands {a_dims} and {b_dims} are not 2-D")
    rows, k = reversed(a_dims) if attrs.get("transA", 0) else a_dims
    k_b, out = reversed(b_dims) if attrs.get("transB", 0) else b_dims
    if k != k_b:
        raise EyesimError(f"Gemm node {name!r}: operands {a_dims} and {b_dims} do not agree (transA/transB)")
    source = None if attrs.get("transA", 0) else node.input[0]
    return _fc_layer(graph, name, "Gemm", rows, k, out, source)


def _matmul_layer(graph: Graph, index: int) -> Layer:
    node, name = graph.nodes[index], graph.names[index]
    right = node.input[1] in graph.const  # the constant is the right operand (x @ W)
    w_pos, x_pos = (1, 0) if right else (0, 1)
    w_dims, x_dims = graph.shape(index, w_pos), graph.shape(index, x_pos)
    if len(w_dims) != 2:
        raise EyesimError(f"MatMul node {name!r}: the constant operand has shape {w_dims}; eyesim needs a 2-D matrix")
    k, out = w_dims if right else reversed(w_dims)
    if len(x_dims) == 1:
        free, k_x = [], x_dims[0]
    elif right:
        free, k_x = x_dims[:-1], x_dims[-1]
    else:
        free, k_x = [*x_dims[:-2], x_dims[-1]], x_dims[-2]
    if k != k_x:
        shapes = f"{graph.shape(index, 0)} and {graph.shape(index, 1)}"
        raise EyesimError(f"MatMul node {name!r}: operands {shapes} do not agree")
    if right and len(x_dims) == 2:
        return _fc_layer(graph, name, "MatMul", x_dims[0], k, out, node.input[0])
    return _rows_layer(name, free, k, out)


def _rows_layer(name: str, free: list[int], k: int, out: int) -> Layer:
    """MatMul as a 1x1 convolution over the data operand's free dims (the rule: eyesim.workload.onnx's docstring)."""
    n, e, f = (*free, 1, 1, 1)[:3] if len(free) <= 2 else (math.prod(free[:-2]), free[-2], free[-1])
    return Layer(name=name, op="MatMul", N=n, G=1, C=k, M=out, H=e, W=f, R=1, S=1, E=e, F=f)


def _fc_layer(graph: Graph, name: str, op: str, rows: int, k: int, out: int, source: str | None) -> Layer:
    """A fully connected layer; its filter covers a 4-D source tensor when one is found."""
    dims = _fc_source(graph, source) if source else None
    if dims is None or dims[0] != rows or math.prod(dims[1:]) != k:
        return Layer(name=name, op=op, N=rows, G=1, C=k, M=out, H=1, W=1, R=1, S=1, E=1, F=1)
    _, c, h, w = dims
    return Layer(name=name, op=op, N=rows, G=1, C=c, M=out, H=h, W=w, R=h, S=w, E=1, F=1)


def _fc_source(graph: Graph, tensor: str) -> list[int] | None:
    """The nearest 4-D tensor upstream of ``tensor`` through element-order preserving ops, if any."""
    while (producer := graph.producer.get(tensor)) is not None and graph.nodes[producer].op_type in TRANSPARENT_OPS:
        tensor = graph.nodes[producer].input[0]
        dims = graph.known_dims(tensor)
        if dims is not None and len(dims) == 4:
            return dims
    return None
