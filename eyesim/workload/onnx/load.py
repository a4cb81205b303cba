"""Reading an ONNX file into a Workload: checks, then batch, shapes and conversion (the package doc has the rules)."""

from __future__ import annotations

import copy
import operator
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import onnx

from eyesim.errors import EyesimError, first_line
from eyesim.workload.layer import Workload
from eyesim.workload.limits import TooLarge, batch_refusal, check_workload
from eyesim.workload.onnx.batch import LazyRanks, find_data_inputs, set_shapes
from eyesim.workload.onnx.checks import check_inferred, check_wiring
from eyesim.workload.onnx.convert import convert_layers
from eyesim.workload.onnx.external import check_external, external_tensors
from eyesim.workload.onnx.graph import Graph, Node, node_names
from eyesim.workload.onnx.links import with_links
from eyesim.workload.onnx.ops import MAC_OPS, NO_MAC_OPS
from eyesim.workload.onnx.opsets import ai_onnx_opset, check_model, upgraded, weights_as_inputs
from eyesim.workload.onnx.proto import read_model
from eyesim.workload.onnx.shapes import infer_folding_shapes

_PROTOBUF_LIMIT = 2**31


@dataclass(frozen=True)
class OnnxFile:
    """An ONNX file read once, shape-only (external values unread): ``model`` is never changed (copied first)."""

    path: Path
    model: onnx.ModelProto
    external: bool  # some tensor's values are in external data (checked: eyesim.workload.onnx.external)


def load_workload(model: str | os.PathLike | onnx.ModelProto, batch: int = 1,
                  input_shapes: Mapping[str, Sequence[int]] | None = None) -> Workload:
    """Read an ONNX model (a path or a ModelProto) and return its layers at ``batch``.

    ``input_shapes`` (``{input name: dims}``) fixes whole input shapes; ``batch`` sets only the inputs'
    batch dims (the rule: eyesim.workload.onnx.batch). Raises EyesimError, on one line naming the file,
    for anything wrong with the model, ``batch`` or ``input_shapes``.
    """
    return _guarded(model, batch, input_shapes, keep=False)[0]


def load_with_file(model: str | os.PathLike, batch: int = 1, input_shapes: Mapping[str, Sequence[int]] | None = None
                   ) -> tuple[Workload, OnnxFile]:
    """``load_workload`` of a path, and the file as read: its weights are then read without reading it again."""
    workload, source = _guarded(model, batch, input_shapes, keep=True)
    assert source is not None  # a path is read
    return workload, source


def _guarded(model: str | os.PathLike | onnx.ModelProto, batch: int,
             input_shapes: Mapping[str, Sequence[int]] | None, keep: bool) -> tuple[Workload, OnnxFile | None]:
    """``load_workload``; with ``keep`` the file read is returned unchanged (the import changes a copy)."""
    label = _label(model)
    try:
        if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
            raise EyesimError(f"batch must be a positive integer, got {batch!r}")
        shapes = _input_shapes(input_shapes)
        source = None if isinstance(model, onnx.ModelProto) else _read(Path(model))
        try:
            return _load(model, source, keep, batch, shapes), source
        except TooLarge as err:
            if batch == 1:
                raise
            again = None if source is None else source if keep else _read(source.path)  # the first import changed it
            raise batch_refusal(batch, str(err), _load(model, again, keep, 1, shapes)) from err
    except EyesimError as err:
        raise EyesimError(f"{label}: {err}".replace("\n", " ")) from err


def _load(model: str | os.PathLike | onnx.ModelProto, source: OnnxFile | None, keep: bool, batch: int,
          shapes: dict[str, tuple[int, ...]]) -> Workload:
    """The import of ``source`` (or of ``model``, a ModelProto), on a copy unless the file is not kept."""
    if source is None:  # a ModelProto: the caller's, never changed
        proto = upgraded(model)
        proto = copy.deepcopy(model) if proto is model else proto
    else:  # a file: upgraded as it was read
        proto = copy.deepcopy(source.model) if keep else source.model
    return _import(proto, _model_name(model, proto), batch, shapes)


def _input_shapes(given: Mapping[str, Sequence[int]] | None) -> dict[str, tuple[int, ...]]:
    """``input_shapes`` as ``{name: dims}`` of whole numbers >= 1."""
    if given is not None and not isinstance(given, Mapping):
        raise EyesimError(f"input_shapes must map input names to dims, got {type(given).__name__}")
    shapes = {}
    for name, dims in (given or {}).items():
        try:
            items = [] if isinstance(dims, str) else list(dims)
            values = tuple(operator.index(d) for d in items if not isinstance(d, bool))
        except TypeError:
            items, values = [], ()
        if not values or len(values) != len(items) or any(d < 1 for d in values):
            raise EyesimError(f"input shape {name}={dims!r}: the dims must be whole numbers >= 1")
        shapes[str(name)] = values
    return shapes


def _label(model: object) -> str:
    if isinstance(model, onnx.ModelProto):
        return f"ONNX model {model.graph.name or '(unnamed)'!r}"
    return str(model)


def _model_name(model: object, proto: onnx.ModelProto) -> str:
    if isinstance(model, onnx.ModelProto):
        return proto.graph.name or "model"
    return Path(model).stem


def _read(path: Path) -> OnnxFile:
    if not path.is_file():
        raise EyesimError("no such file" if not path.exists() else "not a file")
    if (size := path.stat().st_size) >= _PROTOBUF_LIMIT:  # protobuf refuses it anyway, after reading it all
        raise EyesimError(f"{size:,} bytes: an ONNX file holds at most 2 GiB (protobuf's limit); larger models "
                          "keep their weights as external data")
    try:
        proto = read_model(path)  # shape-only: values are read when used
    except Exception as err:  # protobuf DecodeError and friends
        raise EyesimError(f"not an ONNX file, or truncated (protobuf parse error: {first_line(err)})") from err
    proto = upgraded(proto)  # so the workload, the weights and the samples' runs see one model
    tensors = external_tensors(proto)
    check_external(proto, path.parent, need_files=False, tensors=tensors)  # the files are needed when values are read
    return OnnxFile(path, proto, bool(tensors))


def _import(work: onnx.ModelProto, name: str, batch: int, shapes: dict[str, tuple[int, ...]]) -> Workload:
    """The workload of ``work`` (a private copy, changed in place)."""
    params = weights_as_inputs(work)
    nodes = [Node.of(node) for node in work.graph.node]  # read once for the checks (set_shapes may change them)
    names = _validate(work, nodes)
    data_inputs = find_data_inputs(work.graph, params, LazyRanks(work), nodes)  # the model is not changed meanwhile
    if not data_inputs:
        raise EyesimError("no data input: every graph input is a parameter (or unused)")
    added = len(work.graph.initializer)
    batch = set_shapes(work, data_inputs, batch, shapes)
    inferred, dims, types = infer_folding_shapes(work, nodes)
    # a node input is only ever rewritten to a new initializer (a rebatched Reshape shape, a folded shape input):
    # with none added, the records still hold (inference itself changes no node)
    same = len(work.graph.initializer) == added
    graph = Graph(inferred.graph, names, data_inputs, dims, nodes if same else None)  # lookups only: refuses nothing
    check_inferred(inferred.graph, names, dims, graph.attrs, graph.nodes, types)
    layers, not_modelled, io = convert_layers(graph)
    io = with_links(graph, io)
    if not layers:
        raise EyesimError("no layer with MACs (Conv, ConvTranspose, Gemm, MatMul or Einsum)")
    inputs = {vi.name: tuple(graph.known_dims(vi.name) or ()) for vi in data_inputs}
    workload = Workload(model=name, batch=batch, layers=tuple(layers), not_modelled=tuple(not_modelled), io=io,
                        inputs=inputs)
    check_workload(workload)
    return workload


def _validate(proto: onnx.ModelProto, nodes: list[Node] | None = None) -> list[str]:
    """Structural checks, then the ONNX checker; returns the layer names of the nodes. ``proto`` is a copy;
    ``nodes``: its nodes as ``graph.Node`` records, when the caller has them (cheaper to read)."""
    if not proto.HasField("graph") or proto.ir_version == 0:
        raise EyesimError("not an ONNX model (no graph or no IR version)")
    if not proto.graph.node:
        raise EyesimError("empty graph: no nodes")
    if ai_onnx_opset(proto) is None:  # an older opset than eyesim reads was upgraded as the file was read
        raise EyesimError("the model imports no ai.onnx opset")
    nodes = proto.graph.node if nodes is None else nodes
    names = node_names(nodes)
    for node, node_name in zip(nodes, names, strict=True):
        _check_known(node, node_name)
    check_wiring(proto.graph, names, nodes)
    check_model(proto)
    return names


# quantized ops in operator form (ai.onnx's, onnxruntime's com.microsoft ones), and QDQ's in com.microsoft form
_QOPERATOR_OPS = {"QLinearConv", "QLinearMatMul", "ConvInteger", "MatMulInteger", "DynamicQuantizeLinear"}
_MS_QOPERATOR_OPS = _QOPERATOR_OPS | {
    "QGemm", "QLinearAdd", "QLinearMul", "QLinearSigmoid", "QLinearLeakyRelu", "QLinearSoftmax", "QLinearConcat",
    "QLinearAveragePool", "QLinearGlobalAveragePool", "QLinearReduceMean", "QLinearWhere", "QAttention",
    "QEmbedLayerNormalization", "DynamicQuantizeMatMul", "MatMulIntegerToFloat", "MatMulNBits", "MatMulBnb4",
    "QOrderedMatMul", "QOrderedAttention", "QOrderedGelu", "QOrderedLayerNormalization", "QOrderedLongformerAttention"}
_QDQ_HINT = ("a quantized model in operator form: quantize it in QDQ form (onnxruntime.quantization with "
             "quant_format=QuantFormat.QDQ), whose Conv, Gemm and MatMul eyesim charges; --bits sets the widths")
_MS_QDQ_HINT = ("com.microsoft's QuantizeLinear/DequantizeLinear: quantize with ai.onnx's (onnxruntime.quantization "
                "without extra_options UseQDQContribOps, its default), which eyesim reads")


def _quantized_hint(node: onnx.NodeProto) -> str:
    """How to get a model eyesim reads, for a quantized op it does not; "" for any other op."""
    if node.domain == "com.microsoft" and node.op_type in ("QuantizeLinear", "DequantizeLinear"):
        return _MS_QDQ_HINT
    ops = _MS_QOPERATOR_OPS if node.domain == "com.microsoft" else _QOPERATOR_OPS
    return _QDQ_HINT if node.op_type in ops else ""


def _check_known(node: onnx.NodeProto, name: str) -> None:
    quantized = _quantized_hint(node)
    hint = f"; {quantized}" if quantized else ""
    if node.domain not in ("", "ai.onnx"):
        raise EyesimError(f"unsupported op {node.domain}.{node.op_type} (node {name!r}): not an ai.onnx op{hint}")
    if node.op_type not in MAC_OPS and node.op_type not in NO_MAC_OPS:
        raise EyesimError(f"unsupported op {node.op_type} (node {name!r}): " + (quantized or
                          "eyesim knows Conv, ConvTranspose, Gemm, MatMul, Einsum and the no-MAC ops listed in "
                          "eyesim/workload/onnx/ops.py"))
