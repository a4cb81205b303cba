"""Which graph inputs carry data, which of their dims is the batch, and setting their shapes.

The batch rule (DESIGN.md, "Batch and input shapes"): dim 0 of a data input is its batch when the input
is 4-D (N x C x H x W, the layout of ONNX's Conv input), or when dim 0 is symbolic with a batch-like name
(``N``, ``B``, ``bs``, or a name holding ``batch``: ``batch_size``, ``nbatch``, ...). ``--batch`` sets only
such dims; a first dim that is fixed on another rank, unnamed or named otherwise (``T``, ``seq``) is not
the batch, and ``--input-shape NAME=d0,d1,...`` gives an input's whole shape instead. Constant Reshape
shapes that hard-code a fixed batch are rewritten to follow it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
import onnx

from eyesim.errors import EyesimError
from eyesim.workload.limits import MAX_WORDS, TooLarge, check_dims
from eyesim.workload.onnx.ops import NO_MAC_OPS, PARAM_INPUTS, node_attrs
from eyesim.workload.onnx.shapes import Constants, add_initializer, all_dims, infer

_BATCH_PROBE = "__eyesim_batch__"


def tensor_ranks(model: onnx.ModelProto) -> dict[str, int]:
    """Tensor ranks as given (before the batch is set), from inference where it succeeds."""
    try:
        graph = infer(model).graph
    except EyesimError:
        graph = model.graph
    return {name: len(dims) for name, dims in all_dims(graph).items()}


class LazyRanks:
    """``tensor_ranks(model)``, inferred on the first lookup: only a MatMul's operand asks (a whole inference)."""

    def __init__(self, model: onnx.ModelProto) -> None:
        self.model = model
        self.ranks: dict[str, int] | None = None

    def get(self, name: str, default: int) -> int:
        if self.ranks is None:
            self.ranks = tensor_ranks(self.model)
        return self.ranks.get(name, default)


def find_data_inputs(graph: onnx.GraphProto, params: set[str], ranks: dict[str, int] | LazyRanks,
                     nodes: Sequence | None = None) -> list[onnx.ValueInfoProto]:
    """Graph inputs that carry data (the rule: eyesim.workload.onnx's docstring); ``params``: initializer names.

    ``nodes``: the graph's nodes as ``graph.Node`` records, when the caller has them (cheaper to read)."""
    uses: dict[str, list[tuple[onnx.NodeProto, int]]] = {}
    for node in graph.node if nodes is None else nodes:
        for pos, tensor in enumerate(node.input):
            uses.setdefault(tensor, []).append((node, pos))
    outputs = {out.name for out in graph.output}
    memo: dict[str, bool] = {}

    def param_only(tensor: str) -> bool:
        if tensor not in memo:
            memo[tensor] = tensor not in outputs and all(param_use(node, pos) for node, pos in uses.get(tensor, ()))
        return memo[tensor]

    def param_use(node: onnx.NodeProto, pos: int) -> bool:
        if pos in PARAM_INPUTS.get(node.op_type, ()):
            return node.op_type != "MatMul" or ranks.get(node.input[pos], 2) == 2
        return node.op_type in NO_MAC_OPS and node.op_type != "Shape" and all(param_only(o) for o in node.output if o)

    return [vi for vi in graph.input if vi.name not in params and not param_only(vi.name)]


_BATCH_NAMES = frozenset({"n", "b", "bs", "nb"})  # besides any name holding "batch"
Dims = list[int | str | None]
RULE = "a 4-D N x C x H x W input, or a first dim named like N, B or batch"


def parse_input_shapes(items: tuple[str, ...] | list[str]) -> dict[str, tuple[int, ...]]:
    """``NAME=d0,d1,...`` texts (``--input-shape``, repeatable) as ``{name: dims}``."""
    shapes: dict[str, tuple[int, ...]] = {}
    for text in items:
        name, sep, dims = text.rpartition("=")
        name = name.strip()
        try:
            values = tuple(int(part) for part in dims.split(",")) if sep and name else ()
        except ValueError:
            values = ()
        if not values or any(d < 1 for d in values):
            raise EyesimError(f"--input-shape {text!r}: expected NAME=d0,d1,... with whole numbers >= 1, "
                              "e.g. input=1,3,224,224")
        if name in shapes:
            raise EyesimError(f"--input-shape: input {name!r} is given twice")
        shapes[name] = values
    return shapes


def declared_dims(vi: onnx.ValueInfoProto) -> Dims | None:
    """The dims a graph input declares (int, symbol name, or None when free and unnamed); None if it has no shape."""
    ttype = vi.type.tensor_type
    if not ttype.HasField("shape"):
        return None
    return [d.dim_value if d.HasField("dim_value") else d.dim_param or None for d in ttype.shape.dim]


def is_batch_dim(vi: onnx.ValueInfoProto) -> bool:
    """True if dim 0 of the input is its batch (the rule in this module's docstring)."""
    dims = declared_dims(vi)
    if not dims:
        return False
    if len(dims) == 4:
        return True
    name = re.sub(r"[^a-z0-9]", "", dims[0].lower()) if isinstance(dims[0], str) else ""
    return name in _BATCH_NAMES or "batch" in name


def set_shapes(model: onnx.ModelProto, data_inputs: list[onnx.ValueInfoProto], batch: int,
               given: dict[str, tuple[int, ...]]) -> int:
    """Give the data inputs (of ``model``, in place) the ``given`` shapes and ``batch`` in their batch dims.

    Returns the batch the workload reports. Refuses a ``batch`` (other than 1 or the dim 0 the inputs already
    have) that no input has a batch dim for, and given shapes that do not fit an input's rank.
    """
    data = {d.name for d in data_inputs}
    by_name = {vi.name: vi for vi in model.graph.input if vi.name in data}
    plan = _given_plan(by_name, given)
    batched = [vi for vi in by_name.values() if vi.name not in given and is_batch_dim(vi)]
    if not batched and batch != 1:
        _refuse_batch(by_name, plan, batch)
    if batched and batch > MAX_WORDS:
        raise TooLarge(f"the batch alone is above 2^56 = {MAX_WORDS:.3g}")
    for vi in batched:
        plan[vi.name] = [batch, *declared_dims(vi)[1:]]
    for name, vi in by_name.items():
        dims = plan.get(name) or declared_dims(vi) or []
        if any(isinstance(d, int) and d < 1 for d in dims):
            raise EyesimError(f"input {name!r} has the dims {_shown(dims)}: each must be >= 1; give its shape "
                              f"with --input-shape {name}=d0,d1,...")
    _write(model, by_name, plan)
    if batched or batch != 1:
        return batch
    firsts = [dims[0] for name, dims in plan.items() if is_batch_dim(by_name[name])]
    return firsts[0] if firsts else 1


def _given_plan(by_name: dict[str, onnx.ValueInfoProto], given: dict[str, tuple[int, ...]]) -> dict[str, Dims]:
    """The given shapes, checked against the inputs' declared ranks and the size limit."""
    plan: dict[str, Dims] = {}
    for name, dims in given.items():
        if name not in by_name:
            raise EyesimError(f"--input-shape {name}: the model has no data input {name!r} (its data inputs: "
                              f"{', '.join(by_name) or 'none'})")
        declared = declared_dims(by_name[name])
        if declared is not None and len(declared) != len(dims):
            raise EyesimError(f"--input-shape {name}: {len(dims)} dims given, but input {name!r} has "
                              f"{len(declared)} ({_shown(declared)})")
        check_dims(dims, f"--input-shape {name}")
        plan[name] = list(dims)
    return plan


def _refuse_batch(by_name: dict[str, onnx.ValueInfoProto], plan: dict[str, Dims], batch: int) -> None:
    """Refuse a batch that no input has a batch dim for, unless every input's dim 0 already is that batch."""
    for name, vi in by_name.items():
        dims = plan.get(name) or declared_dims(vi)
        if not dims or dims[0] != batch:
            how = "its shape is given by --input-shape" if name in plan else \
                f"its first dim is not clearly the batch ({RULE})"
            raise EyesimError(f"--batch {batch} cannot apply to input {name!r} ({_shown(dims)}): {how}; "
                              f"give its whole shape with --input-shape {name}=d0,d1,...")


def _shown(dims: Dims | None) -> str:
    return "no shape" if dims is None else "[" + ", ".join("?" if d is None else str(d) for d in dims) + "]"


def _write(model: onnx.ModelProto, by_name: dict[str, onnx.ValueInfoProto], plan: dict[str, Dims]) -> None:
    """Write the planned dims; constant Reshape shapes that hard-code a changed fixed dim 0 follow it."""
    before = {name: declared_dims(by_name[name]) for name in plan}
    changed = [name for name, dims in plan.items() if dims != before[name]]
    if not changed:
        return
    del model.graph.value_info[:]  # stale shapes would conflict with the new ones
    for out in model.graph.output:
        out.type.tensor_type.ClearField("shape")
    for name in changed:
        shape = by_name[name].type.tensor_type.shape
        shape.ClearField("dim")
        for value in plan[name]:
            shape.dim.add().dim_value = value
    moved = [name for name in changed if before[name] and before[name][0] != plan[name][0]]
    old = {before[name][0] for name in moved}
    if moved and len(old) == 1 and isinstance(next(iter(old)), int):  # one fixed batch, written into Reshapes
        firsts = [by_name[name].type.tensor_type.shape.dim[0] for name in moved]
        for dim in firsts:
            dim.dim_param = _BATCH_PROBE
        _rebatch_reshapes(model, old.pop(), plan[moved[0]][0])
        for dim, name in zip(firsts, moved, strict=True):
            dim.dim_value = plan[name][0]


def _rebatch_reshapes(model: onnx.ModelProto, old: int, batch: int) -> None:
    """Constant Reshape shapes ``[old, ...]`` applied to a batch-led tensor get the batch instead of ``old``.

    The data inputs' dim 0 is the symbol ``_BATCH_PROBE``; a Reshape is batch-led when inference gives its
    input that symbol in dim 0. Its shape's first entry becomes 0 (copy the input's dim; ``batch`` when the
    Reshape has allowzero=1), which passes the symbol on, so chained Reshapes are found in later rounds.
    """
    consts = Constants(model.graph)
    todo = {}
    for index, node in enumerate(model.graph.node):
        shape = consts.array(node.input[1]) if node.op_type == "Reshape" and len(node.input) > 1 else None
        if shape is not None and shape.ndim == 1 and shape.size and shape[0] == old:
            todo[index] = shape
    while todo:
        dims = all_dims(infer(model).graph)
        ready = [i for i in todo if (dims.get(model.graph.node[i].input[0]) or [None])[0] == _BATCH_PROBE]
        if not ready:
            return
        for index in ready:
            _set_reshape_shape(model, index, todo.pop(index), batch)


def _set_reshape_shape(model: onnx.ModelProto, index: int, shape: np.ndarray, batch: int) -> None:
    node = model.graph.node[index]
    new = np.array(shape, dtype=np.int64)
    new[0] = batch if node_attrs(node).get("allowzero", 0) else 0
    node.input[1] = add_initializer(model, f"{node.input[1]}__eyesim_batch_{index}", new)
