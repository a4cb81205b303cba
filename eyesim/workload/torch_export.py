"""PyTorch modules as ONNX models: ``estimate(module, hw, example_inputs=x)`` exports, then estimates the export.

torch is imported here only, and only when the model is a ``torch.nn.Module``: an object is one only if
torch is already imported (``sys.modules``), so ``import eyesim`` and an estimate of an ONNX file never load it.

Exporters (``exporter=``):

- ``"torchscript"`` (the default): traces the forward on ``example_inputs`` (opset 17 unless ``opset`` says
  otherwise). Chosen because it is the more robust of the two for CNNs and attention as they are written:
  tracing records whatever ran for those inputs (Python control flow, shape arithmetic, ``.item()`` calls,
  ``nn.MultiheadAttention`` and ``scaled_dot_product_attention`` as MatMul and Softmax, opset 14+), it takes
  well under a second where the dynamo exporter takes seconds, it needs nothing beyond torch, and it names
  every node by its module scope, also a Conv it folded a BatchNorm into.
- ``"dynamo"`` (``torch.export``; needs onnxscript): opset 18 or later natively (20 by default in torch 2.13;
  a lower ``opset`` is converted by the ONNX version converter); refuses data-dependent control flow.

Names: layers are named after the module that ran them (``features.0``, ``blocks.3.attn.qkv``): the scope
in the node name (TorchScript: ``/blocks/blocks.3/attn/qkv/MatMul``, each part a module's name after its
last non-numeric atom) or the ``pkg.torch.onnx.name_scopes`` metadata (dynamo; a Conv its optimizer fused
with a BatchNorm takes the scope of the fx node that fed the BatchNorm). A module whose forward ran one
MAC op (Conv, ConvTranspose, Gemm, MatMul, Einsum) gives that node its own path; any other node is
``<path>.<op>`` (``blocks.3.attn.MatMul``, then ``..._1`` for the next of the same op); a name already
taken gets ``_1``, ``_2``..., so layers stay distinct.
"""

from __future__ import annotations

import ast
import contextlib
import importlib.util
import io
import os
import re
import sys
import tempfile
import warnings
from collections import Counter
from collections.abc import Iterator

import numpy as np
import onnx

from eyesim.errors import EyesimError, first_line
from eyesim.workload.layer import Workload

EXPORTERS = ("torchscript", "dynamo")
TORCHSCRIPT_OPSET = 17  # LayerNormalization is one op from 17; scaled_dot_product_attention needs 14
DYNAMO_MIN_OPSET = 18  # the dynamo exporter's own lowest; below it, the ONNX version converter runs
OPSETS = range(7, 24)
INSTALL = 'pip install "eyesim[torch]"'
LAYER_OPS = frozenset({"Conv", "ConvTranspose", "Gemm", "MatMul", "Einsum"})
_SCOPES = "pkg.torch.onnx.name_scopes"


def is_module(model: object) -> bool:
    """Whether ``model`` is a ``torch.nn.Module``, without importing torch (unimported, nothing can be one)."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(model, torch.nn.Module)


def as_model(model, example_inputs=None, exporter: str | None = None, opset: int | None = None):
    """``model`` itself (an ONNX path, ModelProto or Workload), or the ONNX export of a torch module."""
    if is_module(model):
        return export_module(model, example_inputs, exporter, opset)
    given = [name for name, value in (("example_inputs", example_inputs), ("exporter", exporter), ("opset", opset))
             if value is not None]
    if given:
        hint = "" if importlib.util.find_spec("torch") else f"; torch is not installed: {INSTALL}"
        raise EyesimError(f"{' and '.join(given)}: only for a torch.nn.Module model, got {type(model).__name__}"
                          f"{hint}")
    if not isinstance(model, str | os.PathLike | onnx.ModelProto | Workload):
        raise EyesimError(f"model must be an ONNX file path, an onnx.ModelProto, a Workload or a torch.nn.Module "
                          f"(with example_inputs), got {type(model).__name__}")
    return model


def example_batch(example_inputs) -> int:
    """The batch a module is estimated at unless told: the first dim of its (first) example input, else 1."""
    first = example_inputs[0] if isinstance(example_inputs, tuple | list) and example_inputs else example_inputs
    shape = getattr(first, "shape", ())
    return int(shape[0]) if len(shape) and int(shape[0]) >= 1 else 1


def export_module(module, example_inputs, exporter: str | None = None, opset: int | None = None) -> onnx.ModelProto:
    """The ONNX model of ``module`` run on ``example_inputs``, its nodes named after the module's own names."""
    exporter = EXPORTERS[0] if exporter is None else exporter
    if not isinstance(exporter, str) or exporter not in EXPORTERS:
        raise EyesimError(f"exporter must be one of {', '.join(EXPORTERS)}, got {exporter!r}")
    if opset is not None and (isinstance(opset, bool) or not isinstance(opset, int) or opset not in OPSETS):
        raise EyesimError(f"opset must be a whole number from {OPSETS[0]} to {OPSETS[-1]}, got {opset!r}")
    if exporter == "dynamo" and importlib.util.find_spec("onnxscript") is None:
        raise EyesimError(f'the dynamo exporter needs onnxscript: {INSTALL} (or exporter="torchscript")')
    import torch

    label = type(module).__name__
    inputs = _inputs(module, example_inputs, torch)
    modes = {m: m.training for m in module.modules()}
    try:
        module.eval()
        with torch.no_grad():
            _check_forward(module, inputs, label)
        # with gradients on, as torch.onnx expects: without them nn.MultiheadAttention and the transformer
        # layers take their fused fast path, which the TorchScript exporter cannot export
        if exporter == "torchscript":
            proto = _torchscript(module, inputs, opset or TORCHSCRIPT_OPSET, label)
        else:
            proto = _dynamo(module, inputs, opset, label)
    finally:
        for m, training in modes.items():
            m.training = training
    proto.graph.name = label
    return proto


def _inputs(module, example_inputs, torch) -> tuple:
    """``example_inputs`` as a tuple of tensors (NumPy arrays converted; floats to the module's float type)."""
    if example_inputs is None:
        raise EyesimError(f"a torch.nn.Module ({type(module).__name__}) needs example_inputs: a tensor (or a tuple "
                          "of tensors) of the input's shape, e.g. example_inputs=torch.randn(1, 3, 224, 224)")
    items = tuple(example_inputs) if isinstance(example_inputs, tuple | list) else (example_inputs,)
    floats = [p.dtype for p in module.parameters() if p.is_floating_point()]
    converted = []
    for index, item in enumerate(items):
        if isinstance(item, np.ndarray) and item.dtype.kind in "biuf":
            item = torch.from_numpy(np.ascontiguousarray(item))
            if item.is_floating_point():
                item = item.to(floats[0] if floats else torch.float32)
        if not isinstance(item, torch.Tensor):
            raise EyesimError(f"example_inputs[{index}] must be a torch.Tensor or a numeric NumPy array, "
                              f"got {type(item).__name__}")
        if item.numel() == 0:
            raise EyesimError(f"example_inputs[{index}] is empty (shape {'x'.join(map(str, item.shape))}); "
                              "give an input of the shape the module takes, every dim at least 1")
        converted.append(item)
    return tuple(converted)


def _check_forward(module, inputs: tuple, label: str) -> None:
    """Run the forward once, so inputs that do not fit it fail with the module's own reason, not the exporter's."""
    try:
        with _quiet():
            module(*inputs)
    except Exception as err:  # noqa: BLE001 - any error of the user's forward
        shapes = ", ".join("x".join(map(str, t.shape)) or "scalar" for t in inputs)
        raise EyesimError(f"{label}'s forward fails on example_inputs of shape {shapes}: {first_line(err)}; "
                          "give inputs of the shape it takes") from err


def _torchscript(module, inputs: tuple, opset: int, label: str) -> onnx.ModelProto:
    """The TorchScript exporter's model, nodes renamed after the module's scopes."""
    import torch

    buffer = io.BytesIO()
    try:
        with _quiet():
            torch.onnx.export(module, inputs, buffer, dynamo=False, opset_version=opset, verbose=False)
        proto = onnx.load_from_string(buffer.getvalue())
    except Exception as err:  # noqa: BLE001 - the exporter raises many kinds
        raise _failed(label, "torchscript", err) from err
    short: dict[str, list[str]] = {}
    for path, _ in module.named_modules():
        if path:
            short.setdefault(_unqualified(path), []).append(path)
    rename(proto, [_torchscript_path(node.name, short) for node in proto.graph.node])
    return proto


def _dynamo(module, inputs: tuple, opset: int | None, label: str) -> onnx.ModelProto:
    """The dynamo exporter's model at its own opset (18+), renamed, then converted down if ``opset`` is lower."""
    import torch

    asked = None if opset is None else max(opset, DYNAMO_MIN_OPSET)
    try:
        with _quiet():
            program = torch.onnx.export(module, inputs, dynamo=True, opset_version=asked, verbose=False)
        proto = program.model_proto
    except Exception as err:  # noqa: BLE001 - torch.export and the translation raise many kinds
        raise _failed(label, "dynamo", err) from err
    fx_paths = _fx_paths(program)
    rename(proto, [_dynamo_path(node, fx_paths) for node in proto.graph.node])
    if opset is not None and opset < DYNAMO_MIN_OPSET:
        try:
            proto = onnx.version_converter.convert_version(proto, opset)
        except Exception as err:  # noqa: BLE001 - the converter's own errors
            raise EyesimError(f"{label}: the dynamo export (opset {DYNAMO_MIN_OPSET}) does not convert to opset "
                              f"{opset} ({first_line(err)}); use opset {DYNAMO_MIN_OPSET} or later, or "
                              'exporter="torchscript"') from err
    return proto


def _failed(label: str, exporter: str, err: BaseException) -> EyesimError:
    other = EXPORTERS[1 - EXPORTERS.index(exporter)]
    return EyesimError(f"torch.onnx could not export {label} with the {exporter} exporter: {_reason(err)}; "
                       f'try exporter="{other}" or another opset')


def _reason(err: BaseException) -> str:
    """The first line of the innermost cause (torch wraps the real reason in pages of advice), without colours."""
    seen = {id(err)}
    while err.__cause__ is not None and id(err.__cause__) not in seen:
        err = err.__cause__
        seen.add(id(err))
    return re.sub(r"\x1b\[[0-9;]*m", "", first_line(err))


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence the exporters' warnings and their prints to stdout/stderr (also from C++, by file descriptor)."""
    sys.stdout.flush()
    sys.stderr.flush()
    with tempfile.TemporaryFile() as sink, warnings.catch_warnings(), contextlib.ExitStack() as stack:
        warnings.simplefilter("ignore")
        stack.enter_context(contextlib.redirect_stdout(io.StringIO()))
        stack.enter_context(contextlib.redirect_stderr(io.StringIO()))
        for fd in (1, 2):
            stack.enter_context(_redirected(fd, sink.fileno()))
        yield


@contextlib.contextmanager
def _redirected(fd: int, target: int) -> Iterator[None]:
    """File descriptor ``fd`` pointed at ``target`` for the block (nothing done if ``fd`` is not open)."""
    try:
        saved = os.dup(fd)
    except OSError:
        yield
        return
    os.dup2(target, fd)
    try:
        yield
    finally:
        os.dup2(saved, fd)
        os.close(saved)


def _unqualified(path: str) -> str:
    """A module's name in TorchScript scopes: its path from the last non-numeric atom (``blocks.0``, ``attn``)."""
    atoms = path.split(".")
    for index in range(len(atoms) - 1, -1, -1):
        if not atoms[index].isnumeric():
            return ".".join(atoms[index:])
    return path


def _torchscript_path(node_name: str, short: dict[str, list[str]]) -> str:
    """The module path of a TorchScript node name ``/blocks/blocks.0/attn/qkv/MatMul`` (``""``: the root)."""
    path = ""
    for part in node_name.strip("/").split("/")[:-1]:
        # a module run again gets its scope with a suffix: /fc_1/ is the second call of fc
        candidates = short.get(part) or short.get(re.sub(r"_\d+$", "", part)) or []
        inside = [c for c in candidates if not path or c.startswith(path + ".")]
        if inside or candidates:
            path = min(inside or candidates, key=len)
    return path


def _fx_paths(program) -> dict[str, str]:
    """fx node name -> the path of the innermost module that ran it, from the exported program."""
    graph = getattr(getattr(program, "exported_program", None), "graph", None)
    paths = {}
    for node in getattr(graph, "nodes", ()):
        stack = node.meta.get("nn_module_stack")
        if stack:
            paths[node.name] = list(stack.values())[-1][0]
    return paths


def _dynamo_path(node: onnx.NodeProto, fx_paths: dict[str, str]) -> str:
    """The module path of a dynamo node from its metadata (``""``: the root or unknown)."""
    meta = {prop.key: prop.value for prop in node.metadata_props}
    try:
        scopes = ast.literal_eval(meta.get(_SCOPES, "[]"))
    except (ValueError, SyntaxError):
        scopes = []
    path = scopes[-2] if len(scopes) >= 2 and isinstance(scopes[-2], str) else ""
    if "FuseBatchNormIntoConv" in meta.get("pkg.onnxscript.rewriter.rule_name", ""):
        # the fused Conv carries the BatchNorm's scope; the conv is the BatchNorm's first argument
        fed_by = re.search(r"args = \(%(\w+)", meta.get("pkg.torch.onnx.fx_node", ""))
        path = fx_paths.get(fed_by.group(1), path) if fed_by else path
    return path


def rename(proto: onnx.ModelProto, paths: list[str]) -> None:
    """Name each node of ``proto`` (in place) after its module path (the rule: this module's docstring)."""
    nodes = proto.graph.node
    layers = Counter(path for node, path in zip(nodes, paths, strict=True) if node.op_type in LAYER_OPS)
    taken: set[str] = set()
    ops: Counter[str] = Counter()
    for node, path in zip(nodes, paths, strict=True):
        if path and node.op_type in LAYER_OPS and layers[path] == 1:
            name = path
        else:
            base = f"{path}.{node.op_type}" if path else node.op_type
            name = base if ops[base] == 0 else f"{base}_{ops[base]}"
            ops[base] += 1
        unique, extra = name, 0
        while unique in taken:
            extra += 1
            unique = f"{name}_{extra}"
        taken.add(unique)
        node.name = unique
