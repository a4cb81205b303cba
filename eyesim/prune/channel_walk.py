"""The graph walk of channel pruning: from each prunable layer's output, what shrinks with its output channels.

Public API (re-exported by ``eyesim.prune.channels``): ``channel_groups(model) -> (groups, notes)``, ``ChannelGroup``
(one layer, or several joined by residual Adds, whose channels can go) and ``Use`` (a node the channels reach).

Rules of the walk (producer channel c lands on axis 1 of each tensor reached as the indices
``start + c * width ... start + (c + 1) * width - 1``):

- Followed through: element-wise activations, Dropout, Identity, Max/Average/global pools, BatchNormalization
  (its parameters shrink), Add/Sub/Mul/Div/PRelu with a constant (per-channel values shrink; a scalar stays),
  Concat on axis 1 (``start`` moves by the channels of the inputs before it), Flatten (axis 1) and Reshape to
  ``(N, -1)`` (``start`` and ``width`` are multiplied by H*W: a Gemm/MatMul after it loses the rows
  ``c*H*W ... (c+1)*H*W - 1``; an explicit row count in the Reshape's constant shape is rewritten).
- LRN is followed too, as an approximation: it normalises each channel by its neighbours, so removing channels
  changes the kept channels' values a little; the least-squares refit of the consumers compensates. A note says so.
- Consumers (the walk ends): Conv (input channels, per group for a grouped conv), Gemm (rows of B), MatMul x @ W
  on a 2-D input (rows of W). A depthwise conv (group == its input channels) is not an end: the filters of the
  removed channels go too (its group shrinks) and the walk goes on from its output (chains of depthwise convs).
- Residual connections: an Add of the channels and another tensor made one to one from other prunable layers
  (back through the ops above, depthwise convs and other Adds) joins those layers into the group: the same
  channels are removed from all of them (``members``), and the walk goes on from the Add and from each of them.
- ``blocks``: a grouped conv (1 < group < channels), as a producer or as a consumer, needs the same number of
  channels removed from each of its groups; ``blocks`` is the least common multiple of those group counts.
- Skipped, with a note naming the node: an Add whose other input is not made of prunable layers' channels
  (the graph input, a Concat...), a Mul/... of two tensors, a Reshape that mixes channels, a graph output (the
  network's final layer: a classifier's outputs are never pruned), a grouped conv reading other layers' channels
  too, a depthwise conv as the producer (its filters go with its input's channels), a shared parameter, any
  other op (Transpose, Softmax, Resize, Pad...).
"""


from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import onnx

from eyesim.errors import EyesimError
from eyesim.prune.layers import LinearLayer, prunable_layers
from eyesim.workload.onnx.graph import node_names
from eyesim.workload.onnx.ops import node_attrs
from eyesim.workload.onnx.shapes import Constants, all_dims, infer

# Ops whose output channel c is computed from their input channel c alone (element-wise, or per channel).
PASS_OPS = frozenset({"Relu", "LeakyRelu", "Clip", "Sigmoid", "Tanh", "Elu", "Selu", "HardSigmoid",
                      "HardSwish", "Softplus", "Gelu", "Mish", "Dropout", "Identity", "MaxPool", "AveragePool",
                      "GlobalAveragePool", "GlobalMaxPool", "LRN"})
_BINARY_OPS = frozenset({"Add", "Sub", "Mul", "Div", "Sum", "Max", "Min", "Mean", "PRelu"})
_CONSTANT_OPS = frozenset({"Add", "Sub", "Mul", "Div", "PRelu"})  # with a constant operand: per-channel values
_MIXING_OPS = frozenset({"Softmax", "LogSoftmax", "Hardmax", "ArgMax", "ArgMin", "TopK"})


@dataclass(frozen=True)
class Use:
    """A node reached by the producer's channels: channel c is its input's axis-1 indices
    ``start + c * width ... start + (c + 1) * width - 1`` (width > 1 after a Flatten: one row per position)."""

    node: str
    op: str
    start: int = 0
    width: int = 1

    def indices(self, channels: np.ndarray) -> np.ndarray:
        """The input indices of the producer's ``channels``, in the same order."""
        channels = np.asarray(channels, dtype=np.int64).reshape(-1, 1)
        return (self.start + channels * self.width + np.arange(self.width)).ravel()


@dataclass(frozen=True)
class ChannelGroup:
    """A layer whose output channels can be removed, and everything that shrinks with them."""

    layer: str  # the producer (a prunable layer's name); the first of ``members`` in graph order
    op: str
    channels: int  # M: all its output channels (over all groups)
    blocks: int  # removal keeps the same count in each of ``blocks`` equal, contiguous blocks of channels
    consumers: tuple[Use, ...]  # Conv / Gemm / MatMul nodes that lose input channels (rows)
    batchnorms: tuple[Use, ...] = ()  # BatchNormalization nodes that lose parameters
    depthwise: tuple[Use, ...] = ()  # depthwise convs; ``indices`` are their filters that go (their group shrinks)
    reshapes: tuple[Use, ...] = ()  # Reshapes acting as Flatten; ``indices`` are their output rows that go
    constants: tuple[Use, ...] = ()  # Add/Mul/... nodes whose constant operand has values per channel
    through: tuple[str, ...] = ()  # the channel-preserving nodes in between
    caveats: tuple[str, ...] = ()  # approximations (an LRN in between)
    members: tuple[str, ...] = ()  # all producers pruned together (residual Adds join them), ``layer`` first

    def removed(self, keep: np.ndarray | list[int]) -> np.ndarray:
        """The channels not in ``keep``; EyesimError unless ``keep`` is non-empty, sorted, in range, by blocks."""
        kept = np.asarray(keep)
        label = f"layer {self.layer!r} ({self.channels} channels)"
        if kept.ndim != 1 or kept.size == 0:
            raise EyesimError(f"{label}: keep must be a non-empty list of channel indices, got shape {kept.shape}")
        if kept.dtype.kind not in "iu":
            raise EyesimError(f"{label}: keep must hold integer channel indices, got {kept.dtype}")
        if kept.min() < 0 or kept.max() >= self.channels:
            raise EyesimError(f"{label}: keep holds channel {kept.max() if kept.max() >= 0 else kept.min()}, "
                              f"out of range 0..{self.channels - 1}")
        if np.any(np.diff(kept) <= 0):
            raise EyesimError(f"{label}: keep must be sorted, without repeats")
        counts = np.bincount(kept // (self.channels // self.blocks), minlength=self.blocks)
        if np.any(counts != counts[0]):
            raise EyesimError(f"{label}: grouped convolutions need the same number kept in each of its {self.blocks} "
                              f"blocks of {self.channels // self.blocks} channels; keep has {counts.tolist()}")
        return np.setdiff1d(np.arange(self.channels), kept)


def channel_groups(model: onnx.ModelProto) -> tuple[list[ChannelGroup], list[str]]:
    """The prunable layers whose output channels can be removed, and notes (see the module docstring).

    A note is ``"<layer>: skipped, <why, naming the node in the way>"`` for a layer that cannot be pruned, or
    ``"<layer>: prunable, but ..."`` (an approximation) / ``"<layer>: prunable together with ..."`` (a residual
    group). EyesimError (one line) for a model without weights, as ``prunable_layers``.
    """
    layers = {lay.name: lay for lay in prunable_layers(model)}
    graph = _Graph(model)
    groups, notes, grouped = [], [], set()
    for lay in layers.values():
        if lay.name in grouped:
            continue
        try:
            group = _trace(graph, lay, layers)
        except _Blocked as why:
            notes.append(f"{lay.name}: skipped, {why}")
            continue
        groups.append(group)
        grouped.update(group.members)
        notes += [f"{group.layer}: prunable, but {caveat}" for caveat in group.caveats]
        if len(group.members) > 1:
            notes.append(f"{group.layer}: prunable together with {', '.join(group.members[1:])} (joined by "
                         f"residual Add nodes): keep[{group.layer!r}] removes the same channels from all of them")
    return groups, notes


# ---------------------------------------------------------------- the walk from a layer's output


class _Blocked(Exception):
    """Why a layer's channels cannot be removed (the note's text after "skipped, ")."""


@dataclass
class _Walk:
    """What one walk has found so far."""

    channels: int
    blocks: int
    layers: dict[str, LinearLayer]  # all prunable layers by name
    members: list[str] = field(default_factory=list)
    consumers: list[Use] = field(default_factory=list)
    batchnorms: list[Use] = field(default_factory=list)
    depthwise: list[Use] = field(default_factory=list)
    reshapes: list[Use] = field(default_factory=list)
    constants: list[Use] = field(default_factory=list)
    through: list[str] = field(default_factory=list)
    caveats: list[str] = field(default_factory=list)


class _Graph:
    """The model's nodes with names, tensor uses, inferred dims and constants."""

    def __init__(self, model: onnx.ModelProto) -> None:
        graph = model.graph
        self.nodes = list(graph.node)
        self.names = node_names(graph.node)
        self.index = {name: i for i, name in enumerate(self.names)}
        self.inits = {init.name for init in graph.initializer}
        self.consts = Constants(graph)
        self.outputs = {out.name for out in graph.output}
        self.uses: dict[str, list[tuple[int, int]]] = {}
        self.producer = {tensor: index for index, node in enumerate(self.nodes) for tensor in node.output}
        for index, node in enumerate(self.nodes):
            for pos, tensor in enumerate(node.input):
                if tensor:
                    self.uses.setdefault(tensor, []).append((index, pos))
        self.dims = all_dims(infer(model).graph)

    def known(self, tensor: str, what: str) -> list[int]:
        """All dims of ``tensor``, or _Blocked."""
        dims = self.dims.get(tensor)
        if dims is None or not all(isinstance(d, int) and d > 0 for d in dims[1:]):
            raise _Blocked(f"the shape of {what} ({tensor!r}) cannot be inferred")
        return list(dims)

    def constant(self, tensor: str) -> bool:
        """An initializer or a Constant node's output."""
        return tensor in self.inits or tensor in self.consts.nodes

    def own(self, index: int, params: list[str]) -> None:
        """_Blocked unless every parameter is an initializer that only node ``index`` uses (it is edited in place)."""
        node, name = self.nodes[index], self.names[index]
        for tensor in params:
            if tensor and not self.constant(tensor):
                raise _Blocked(f"{node.op_type} node {name!r} has a parameter {tensor!r} that is not an initializer")
            if tensor and len(self.uses.get(tensor, [])) > 1:
                raise _Blocked(f"{node.op_type} node {name!r} shares its parameter {tensor!r} with another node")


def _trace(graph: _Graph, lay: LinearLayer, layers: dict[str, LinearLayer]) -> ChannelGroup:
    """The layer's ChannelGroup (with the producers residual Adds join to it), or _Blocked."""
    channels = lay.groups * lay.out_channels
    walk = _Walk(channels, 1, layers)
    _producer(graph, walk, lay)
    todo, seen = [(lay.y, 0, 1)], set()
    while todo:
        state = todo.pop()
        if state in seen:
            continue
        seen.add(state)
        tensor, start, width = state
        if tensor in graph.outputs:
            which = "its output is" if tensor == lay.y else "its output reaches"
            raise _Blocked(f"{which} the graph output {tensor!r} (the network's final layer: never pruned)")
        for use_index, pos in graph.uses.get(tensor, []):
            node = graph.nodes[use_index]
            todo += _step(graph, walk, use_index, pos, Use(graph.names[use_index], node.op_type, start, width))
    if channels % walk.blocks or walk.blocks == channels:
        raise _Blocked(f"grouped convolutions leave no channel removable ({channels} channels in {walk.blocks} "
                       "blocks that must lose the same number)")
    unique = [tuple(dict.fromkeys(found)) for found in (walk.consumers, walk.batchnorms, walk.depthwise,
                                                        walk.reshapes, walk.constants, walk.through, walk.caveats)]
    members = tuple(sorted(walk.members, key=graph.index.__getitem__))
    return ChannelGroup(members[0], layers[members[0]].op, channels, walk.blocks, *unique, members=members)


def _producer(graph: _Graph, walk: _Walk, lay: LinearLayer) -> None:
    """Add ``lay`` to the producers of the walk, or _Blocked."""
    channels = lay.groups * lay.out_channels
    if lay.groups > 1 and lay.groups == channels:
        raise _Blocked(f"{_who(walk, lay)} is a depthwise conv: its filters are removed with the channels of its "
                       "input")
    if lay.op == "MatMul" and len(graph.known(lay.y, f"{lay.name!r}'s output")) != 2:
        raise _Blocked(f"{_who(walk, lay)} has a MatMul output that is not 2-D (channels on the last axis)")
    if channels != walk.channels:
        raise _Blocked(f"{_who(walk, lay)} has {channels} channels, not {walk.channels}")
    graph.own(graph.index[lay.name], [lay.weight, lay.bias or ""])
    walk.blocks = math.lcm(walk.blocks, lay.groups)
    walk.members.append(lay.name)


def _who(walk: _Walk, lay: LinearLayer) -> str:
    """How a note names a producer: "it" for the layer noted, else the one a residual Add joined to it."""
    return "it" if not walk.members else f"{lay.name!r} (joined to it by a residual Add)"


def _residual(graph: _Graph, walk: _Walk, index: int, pos: int, use: Use) -> list[tuple[str, int, int]]:
    """An Add of the producer's channels and another tensor: the producers of the other input join the walk."""
    node, name = graph.nodes[index], use.node
    other = [tensor for p, tensor in enumerate(node.input) if p != pos and tensor]
    why = f"its output reaches Add node {name!r} whose other input does not lose the same channels"
    if use.start != 0 or use.width != 1 or len(other) != 1:
        raise _Blocked(why)
    found = _sources(graph, other[0], walk.layers, why)
    for lay in found:
        if lay.name not in walk.members:
            _producer(graph, walk, lay)
    walk.through.append(name)
    return [(node.output[0], 0, 1), *((lay.y, 0, 1) for lay in found)]


def _sources(graph: _Graph, tensor: str, layers: dict[str, LinearLayer], why: str) -> list[LinearLayer]:
    """The prunable layers whose channels make up ``tensor`` one to one (back through channel-preserving ops,
    depthwise convs and Adds), or _Blocked with ``why`` and the node in the way."""
    index = graph.producer.get(tensor)
    if index is None:
        raise _Blocked(f"{why} (it is the graph input or a constant {tensor!r})")
    node, name = graph.nodes[index], graph.names[index]
    depthwise = False  # output channel c is computed from input channel c alone
    if node.op_type == "Conv" and (group := int(node_attrs(node).get("group", 1))) > 1:
        w_dims = graph.known(node.input[1], f"{name!r}'s weights")
        depthwise = w_dims[0] == group and w_dims[1] == 1
    if name in layers and not depthwise:
        return [layers[name]]
    if node.op_type == "Add":
        return [lay for t in node.input if t for lay in _sources(graph, t, layers, why)]
    if node.op_type in PASS_OPS or node.op_type == "BatchNormalization" or depthwise:
        return _sources(graph, node.input[0], layers, why)
    raise _Blocked(f"{why} (it comes from {node.op_type} node {name!r})")


def _step(graph: _Graph, walk: _Walk, index: int, pos: int, use: Use) -> list[tuple[str, int, int]]:
    """Record the node ``use`` reached at input ``pos``; the (tensor, start, width) states to walk on from it."""
    node, op, name = graph.nodes[index], use.op, use.node
    if op in ("Conv", "Gemm", "MatMul") and pos == 0:
        return _consumer(graph, walk, index, use)
    if op == "Concat":
        walk.through.append(name)
        return [(node.output[0], use.start + _concat_offset(graph, index, pos), use.width)]
    if op in _MIXING_OPS:
        raise _Blocked(f"its output reaches {op} node {name!r}, which mixes all channels (a final layer)")
    data = [t for t in node.input if t and not graph.constant(t)]
    if op in _CONSTANT_OPS and len(data) == 1 and len(node.input) == 2:
        return _constant_operand(graph, walk, index, use)
    if op == "Add" and len(data) > 1:
        return _residual(graph, walk, index, pos, use)
    if op in _BINARY_OPS and len(data) > 1:
        raise _Blocked(f"its output reaches {op} node {name!r} whose other input does not lose the same channels")
    if pos != 0 or op not in PASS_OPS | {"BatchNormalization", "Flatten", "Reshape"}:
        raise _Blocked(f"its output reaches {op} node {name!r} (input {pos}), which channel pruning cannot shrink")
    for extra in node.output[1:]:
        if extra and (extra in graph.uses or extra in graph.outputs):
            raise _Blocked(f"{op} node {name!r} has its second output {extra!r} used")
    walk.through.append(name)
    if op == "LRN":
        walk.caveats.append(f"LRN node {name!r} normalises across neighbouring channels: removing channels changes "
                            "the kept ones a little (the consumers' refit compensates)")
    elif op == "BatchNormalization":
        graph.own(index, list(node.input[1:5]))
        walk.batchnorms.append(use)
    elif op in ("Flatten", "Reshape"):
        factor = _flatten_factor(graph, index)
        if op == "Reshape":
            walk.reshapes.append(Use(name, op, use.start * factor, use.width * factor))
        return [(node.output[0], use.start * factor, use.width * factor)]
    return [(node.output[0], use.start, use.width)]


def _constant_operand(graph: _Graph, walk: _Walk, index: int, use: Use) -> list[tuple[str, int, int]]:
    """An element-wise op with a constant: values per channel shrink with the channels (a scalar stays)."""
    node, name = graph.nodes[index], use.node
    (const,) = [t for t in node.input if graph.constant(t)]
    (data,) = [t for t in node.input if t != const]
    rank = len(graph.known(data, f"{name!r}'s input"))
    shape = graph.known(const, f"{name!r}'s constant")
    axis = len(shape) - rank + 1  # the constant's axis that broadcasts along the channels
    if len(shape) > rank or (axis >= 0 and shape[axis] != 1 and any(d != 1 for d in shape[:axis])):
        raise _Blocked(f"{node.op_type} node {name!r} has a constant that broadcasts over other axes too")
    if axis >= 0 and shape[axis] != 1:
        graph.own(index, [const])
        walk.constants.append(use)
    walk.through.append(name)
    return [(node.output[0], use.start, use.width)]


def _consumer(graph: _Graph, walk: _Walk, index: int, use: Use) -> list[tuple[str, int, int]]:
    """Record a Conv/Gemm/MatMul reading the channels; a depthwise conv passes them on to its output."""
    node = graph.nodes[index]
    graph.own(index, list(node.input[1:]))
    if node.op_type == "MatMul" and len(graph.known(node.input[0], f"{use.node!r}'s input")) != 2:
        raise _Blocked(f"MatMul node {use.node!r} multiplies its input's last axis, not its channels")
    if node.op_type != "Conv":
        walk.consumers.append(use)
        return []
    group = int(node_attrs(node).get("group", 1))
    w_dims = graph.known(node.input[1], f"{use.node!r}'s weights")
    inputs = w_dims[1] * group
    if group == 1:
        walk.consumers.append(use)
        return []
    if group == inputs:  # depthwise: each input channel has its own filters (a multiplier k per channel)
        k = w_dims[0] // group
        walk.depthwise.append(Use(use.node, "Conv", use.start * k, use.width * k))
        return [(node.output[0], use.start * k, use.width * k)]
    per_group = inputs // group
    if use.start != 0 or inputs != walk.channels * use.width or per_group % use.width:
        raise _Blocked(f"grouped Conv node {use.node!r} (group={group}) reads channels of other layers too")
    walk.blocks = math.lcm(walk.blocks, group)
    walk.consumers.append(use)
    return []


def _concat_offset(graph: _Graph, index: int, pos: int) -> int:
    """Axis-1 size of a Concat's inputs before ``pos``; _Blocked unless it concatenates on axis 1."""
    node, name = graph.nodes[index], graph.names[index]
    rank = len(graph.known(node.output[0], f"Concat {name!r}'s output"))
    if int(node_attrs(node).get("axis", 1)) % rank != 1:
        raise _Blocked(f"its output reaches Concat node {name!r}, which joins on an axis other than the channels")
    return sum(graph.known(tensor, f"Concat {name!r}'s input")[1] for tensor in node.input[:pos])


def _flatten_factor(graph: _Graph, index: int) -> int:
    """H*W of a Flatten (axis 1) or Reshape to (N, -1); _Blocked for one that mixes channels with other axes."""
    node, name = graph.nodes[index], graph.names[index]
    dims = graph.known(node.input[0], f"{node.op_type} {name!r}'s input")
    if node.op_type == "Flatten":
        if int(node_attrs(node).get("axis", 1)) % max(len(dims), 1) != 1:
            raise _Blocked(f"Flatten node {name!r} does not flatten from axis 1: it mixes channels with the batch")
        return math.prod(dims[2:])
    shape = graph.consts.array(node.input[1])
    if shape is None:
        raise _Blocked(f"Reshape node {name!r} has a computed shape (not a constant)")
    graph.own(index, [node.input[1]])
    shape = [int(s) for s in shape.ravel()]
    batch = (0, dims[0]) if shape[-1:] == [-1] else (0, -1, dims[0])
    if len(shape) != 2 or shape[0] not in batch or shape[1] not in (-1, math.prod(dims[1:])):
        raise _Blocked(f"Reshape node {name!r} mixes channels (shape {shape} of an input {dims})")
    return math.prod(dims[2:])
