"""``read_values`` (dims and element types read once, shared per type) says what the protobuf says, field by field."""

from __future__ import annotations

from pathlib import Path

import pytest

from eyesim.workload.onnx.proto import read_model
from eyesim.workload.onnx.shapes import infer, read_values

MODELS = sorted((Path(__file__).resolve().parent.parent / "models_onnx").glob("*.onnx"))


def _walked(graph) -> tuple[dict, dict]:
    """Every value's dims and element type, read off the protobuf one by one (what read_values shortcuts)."""
    dims, types = {}, {}
    for vi in (*graph.input, *graph.value_info, *graph.output):
        ttype = vi.type.tensor_type
        dims[vi.name] = [d.dim_value if d.HasField("dim_value") else d.dim_param if d.HasField("dim_param") else None
                         for d in ttype.shape.dim] if ttype.HasField("shape") else None
        types[vi.name] = ttype.elem_type
    for init in graph.initializer:
        dims[init.name], types[init.name] = list(init.dims), init.data_type
    return {name: d for name, d in dims.items() if d is not None}, types


@pytest.mark.parametrize("path", MODELS, ids=lambda p: p.stem)
def test_read_values_equal_the_protobuf(path: Path) -> None:
    graph = infer(read_model(path)).graph
    dims, types = read_values(graph)
    want_dims, want_types = _walked(graph)
    assert list(dims.items()) == list(want_dims.items())  # same order too: the first oversized tensor is named
    assert types == want_types
