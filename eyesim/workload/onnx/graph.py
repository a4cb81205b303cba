"""The inferred graph with the lookups the converters need: dims, constants, producers and consumers."""

from __future__ import annotations

from typing import NamedTuple

import onnx

from eyesim.errors import EyesimError
from eyesim.workload.onnx.ops import MAC_OPS, NO_MAC_OPS, node_attrs
from eyesim.workload.onnx.shapes import Constants, all_dims


class Node(NamedTuple):
    """What the converters read of a node, copied out of the protobuf once (every protobuf read costs)."""

    op_type: str
    input: tuple[str, ...]
    output: tuple[str, ...]
    name: str
    attribute: object  # the protobuf's attributes, for node_attrs
    domain: str

    @classmethod
    def of(cls, node: onnx.NodeProto) -> Node:
        return cls(node.op_type, tuple(node.input), tuple(node.output), node.name, node.attribute, node.domain)


class Graph:
    """An inferred graph with the lookups the converters need."""

    def __init__(self, graph: onnx.GraphProto, names: list[str], data_inputs: list[onnx.ValueInfoProto],
                 dims: dict | None = None, nodes: list[Node] | None = None) -> None:
        # dims and nodes (``Node`` records of the graph's nodes) are given when the caller has read them already
        self.nodes = [Node.of(node) for node in graph.node] if nodes is None else nodes
        self.names = names
        self.dims = all_dims(graph) if dims is None else dims
        self.values = Constants(graph, self.nodes)
        self.outputs = {out.name for out in graph.output}
        self.inputs = {vi.name for vi in data_inputs}
        self.producer: dict[str, int] = {}
        self.consumers: dict[str, list[tuple[int, int]]] = {}
        data = {vi.name for vi in data_inputs}
        self.const = {init.name for init in graph.initializer} | {vi.name for vi in graph.input if vi.name not in data}
        for index, node in enumerate(self.nodes):
            for pos, tensor in enumerate(node.input):
                self.consumers.setdefault(tensor, []).append((index, pos))
            for tensor in node.output:
                self.producer[tensor] = index
            if node.op_type == "ConstantOfShape" or (
                node.op_type in NO_MAC_OPS and all(t in self.const for t in node.input if t)
            ):
                self.const.update(t for t in node.output if t)
        self.image = self._image_tensors()
        self._attrs: dict[int, dict] = {}

    def attrs(self, index: int) -> dict:
        """``node_attrs`` of node ``index``, read once (checks and converters each ask; callers never change it)."""
        if index not in self._attrs:
            self._attrs[index] = node_attrs(self.nodes[index])
        return self._attrs[index]

    def _image_tensors(self) -> set[str]:
        """Tensors computed from the data inputs by no-MAC ops alone (the input image, normalized or not)."""
        image = set(self.inputs)
        for node in self.nodes:  # ONNX nodes are in topological order
            inputs = [t for t in node.input if t and t not in self.const]
            if node.op_type not in MAC_OPS and inputs and all(t in image for t in inputs):
                image.update(t for t in node.output if t)
        return image

    def shape(self, index: int, pos: int, tensor: str | None = None) -> list[int]:
        """Inferred dims of input ``pos`` of node ``index`` (or of ``tensor``), all known, else EyesimError."""
        node = self.nodes[index]
        tensor = tensor or node.input[pos]
        dims = self.dims.get(tensor)
        if dims is None or any(not isinstance(d, int) or d < 1 for d in dims):
            raise EyesimError(
                f"cannot infer the shape of tensor {tensor!r} (input {pos} of {node.op_type} node "
                f"{self.names[index]!r}); inferred {dims}{self._free_inputs()}"
            )
        return list(dims)

    def _free_inputs(self) -> str:
        """Which data inputs have dims that are not fixed, and how to fix them."""
        free = {name: dims for name in sorted(self.inputs) if (dims := self.dims.get(name)) is None
                or not all(isinstance(d, int) for d in dims)}
        if not free:
            return ""
        shown = "; ".join(f"input {name!r} is {'unshaped' if dims is None else dims}" for name, dims in free.items())
        name = next(iter(free))
        return f"; {shown}: give its shape with --input-shape {name}=d0,d1,..."

    def known_dims(self, tensor: str) -> list[int] | None:
        dims = self.dims.get(tensor)
        return list(dims) if dims and all(isinstance(d, int) and d > 0 for d in dims) else None

    def sole_consumer(self, tensor: str) -> tuple[int, int] | None:
        uses = self.consumers.get(tensor, [])
        return uses[0] if len(uses) == 1 and tensor not in self.outputs else None


def node_names(nodes: list[onnx.NodeProto]) -> list[str]:
    """Each node's layer name: its own, or ``{op}_{index}`` when it has none or repeats an earlier one."""
    taken = {node.name for node in nodes if node.name}
    seen: set[str] = set()
    names = []
    for index, node in enumerate(nodes):
        name = node.name
        if not name or name in seen:
            name = f"{node.op_type}_{index}"
            while name in taken or name in seen:
                name += "_"
        seen.add(name)
        names.append(name)
    return names
