"""Which layers share an fmap tensor: a density belongs to a tensor, not to one side of a layer.

The ofmap a layer writes is the ifmap the next layer reads when only value-preserving ops lie between
(DESIGN.md, "Zeros and bit widths"); across ops that change values the nearest downstream
ifmap is only an estimate of it.
"""

from __future__ import annotations

from eyesim.workload.layer import LayerIO
from eyesim.workload.onnx.graph import Graph
from eyesim.workload.onnx.ops import MAC_OPS

# Ops whose output holds the same values (hence the same zeros) as their input 0.
# Relu and Clip count as such downstream of an ofmap, which is taken after its activation (as the chip stores it).
SAME_VALUES = frozenset({"Reshape", "Flatten", "Dropout", "Identity", "Squeeze", "Unsqueeze"})
VALUE_PRESERVING = SAME_VALUES | {"Relu", "Clip"}


def with_links(graph: Graph, io: dict[str, LayerIO]) -> dict[str, LayerIO]:
    """``io`` (by layer name) with each layer's tensor names, readers and downstream layers filled in."""
    readers_of: dict[str, list[str]] = {}
    for name, where in io.items():
        readers_of.setdefault(where.ifmap, []).append(name)
    links = {}
    for name, where in io.items():
        same = _same_downstream(graph, where.ofmap)
        readers = tuple(r for tensor in same for r in readers_of.get(tensor, ()))
        act = where.weights not in graph.const  # an activation second operand is an fmap too
        # ``replace`` without its per-field walk (LayerIO holds only its fields)
        links[name] = LayerIO(**{**where.__dict__, "ifmap_tensors": _same_upstream(graph, where.ifmap),
                                 "ofmap_tensors": same,
                                 "weights_tensors": _same_upstream(graph, where.weights) if act else (),
                                 "readers": readers, "downstream": _downstream(graph, same, readers_of, set(readers))})
    return links


def _same_downstream(graph: Graph, tensor: str) -> tuple[str, ...]:
    """``tensor`` and every tensor computed from it by value-preserving ops alone."""
    same, frontier = [tensor], [tensor]
    while frontier:
        for index, pos in graph.consumers.get(frontier.pop(), ()):
            node = graph.nodes[index]
            if pos == 0 and node.op_type in VALUE_PRESERVING and node.output and node.output[0] not in same:
                same.append(node.output[0])
                frontier.append(node.output[0])
    return tuple(same)


def _same_upstream(graph: Graph, tensor: str) -> tuple[str, ...]:
    """``tensor`` and the tensors it was computed from by ops that keep every value."""
    same = [tensor]
    while (index := graph.producer.get(same[-1])) is not None:
        node = graph.nodes[index]
        if node.op_type not in SAME_VALUES or not node.input or node.input[0] in same:
            break
        same.append(node.input[0])
    return tuple(same)


def _downstream(graph: Graph, start: tuple[str, ...], readers_of: dict[str, list[str]],
                skip: set[str]) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """Layers reading tensors computed from ``start`` by ops without MACs, nearest first, with the ops crossed."""
    found: list[tuple[str, tuple[str, ...]]] = []
    seen = set(start)
    frontier = [(tensor, ()) for tensor in start]
    while frontier:
        nxt: list[tuple[str, tuple[str, ...]]] = []
        for tensor, crossed in frontier:
            for index, _ in graph.consumers.get(tensor, ()):
                node = graph.nodes[index]
                if node.op_type in MAC_OPS:
                    continue
                ops = crossed if node.op_type in VALUE_PRESERVING else (*crossed, node.op_type)
                for out in (t for t in node.output if t and t not in seen):
                    seen.add(out)
                    found.extend((r, ops) for r in readers_of.get(out, ()) if r not in skip)
                    nxt.append((out, ops))
        frontier = nxt
    nearest: dict[str, tuple[str, ...]] = {}
    for layer, ops in found:
        nearest.setdefault(layer, ops)
    return tuple(nearest.items())
