"""The few ONNX helpers the estimate needs, on the protobuf classes alone (``onnx.helper`` pulls ml_dtypes, ~0.6 s).

``eyesim/__init__.py`` makes ``import onnx`` lazy: the message classes, ``onnx.checker`` and
``onnx.shape_inference`` (C++) load on their own, and anything else (``onnx.load``, ``onnx.helper``,
``onnx.numpy_helper``) runs onnx's full ``__init__`` on first use. These functions keep the estimate path off it.
"""

from __future__ import annotations

import sys
from pathlib import Path

import onnx

# onnx.load's text formats (by file extension, as onnx matches it); any other file is parsed as protobuf
_TEXT_SUFFIXES = frozenset({".txtpb", ".textproto", ".prototxt", ".pbtxt", ".json", ".onnxjson", ".onnxtxt",
                            ".onnxtext"})


def read_model(path: Path) -> onnx.ModelProto:
    """``onnx.load(path, load_external_data=False)``, parsing a protobuf file without loading onnx's helpers."""
    if path.suffix in _TEXT_SUFFIXES:
        return onnx.load(str(path), load_external_data=False)
    data = path.read_bytes()
    model = onnx.ModelProto()
    decoded = model.ParseFromString(data)
    if decoded is not None and decoded != len(data):  # as onnx's own reader checks
        raise ValueError(f"Protobuf decoding consumed too few bytes: {decoded} out of {len(data)}")
    return model


def attribute_value(attr: onnx.AttributeProto) -> object:
    """``onnx.helper.get_attribute_value``: the Python value of a node attribute."""
    if attr.ref_attr_name:
        raise ValueError(f"Cannot get value of reference attribute: {attr}")
    kind = onnx.AttributeProto
    if attr.type == kind.UNDEFINED:
        return None
    field = _FIELDS.get(attr.type)
    if field is None:
        raise ValueError(f"Unsupported ONNX attribute: {attr}")
    value = getattr(attr, field)
    return value if attr.type in _SINGLE else list(value)


_FIELDS = {onnx.AttributeProto.FLOAT: "f", onnx.AttributeProto.INT: "i", onnx.AttributeProto.STRING: "s",
           onnx.AttributeProto.TENSOR: "t", onnx.AttributeProto.SPARSE_TENSOR: "sparse_tensor",
           onnx.AttributeProto.GRAPH: "g", onnx.AttributeProto.TYPE_PROTO: "tp",
           onnx.AttributeProto.FLOATS: "floats", onnx.AttributeProto.INTS: "ints",
           onnx.AttributeProto.STRINGS: "strings", onnx.AttributeProto.TENSORS: "tensors",
           onnx.AttributeProto.SPARSE_TENSORS: "sparse_tensors", onnx.AttributeProto.GRAPHS: "graphs",
           onnx.AttributeProto.TYPE_PROTOS: "type_protos"}
_SINGLE = frozenset({onnx.AttributeProto.FLOAT, onnx.AttributeProto.INT, onnx.AttributeProto.STRING,
                     onnx.AttributeProto.TENSOR, onnx.AttributeProto.SPARSE_TENSOR, onnx.AttributeProto.GRAPH,
                     onnx.AttributeProto.TYPE_PROTO})


def tensor_type(elem_type: int, dims: list[int]) -> onnx.TypeProto:
    """``onnx.helper.make_tensor_type_proto(elem_type, dims)`` for known integer dims."""
    type_proto = onnx.TypeProto()
    tensor = type_proto.tensor_type
    tensor.elem_type = elem_type
    tensor.shape.SetInParent()  # an empty shape (a scalar) is a shape, not a missing one
    for size in dims:
        tensor.shape.dim.add().dim_value = size
    return type_proto


def tensor_array(tensor: onnx.TensorProto):
    """``onnx.numpy_helper.to_array``: raw little-endian numbers directly, any other tensor by onnx's helper."""
    import numpy as np

    raw = tensor.HasField("raw_data")
    dtype = _RAW_DTYPES.get(tensor.data_type) if raw else _TYPED.get(tensor.data_type, (None, None))[1]
    if (dtype is None or sys.byteorder != "little" or tensor.HasField("segment")
            or tensor.data_location == onnx.TensorProto.EXTERNAL):
        from onnx import numpy_helper  # pulls ml_dtypes: only for the tensors it alone reads

        return numpy_helper.to_array(tensor)
    if raw:
        return np.frombuffer(tensor.raw_data, dtype=dtype).reshape(tensor.dims)
    return np.asarray(getattr(tensor, _TYPED[tensor.data_type][0]), dtype=dtype).reshape(tensor.dims)


_RAW_DTYPES = {onnx.TensorProto.FLOAT: "<f4", onnx.TensorProto.DOUBLE: "<f8", onnx.TensorProto.FLOAT16: "<f2",
               onnx.TensorProto.INT8: "i1", onnx.TensorProto.INT16: "<i2", onnx.TensorProto.INT32: "<i4",
               onnx.TensorProto.INT64: "<i8", onnx.TensorProto.UINT8: "u1", onnx.TensorProto.UINT16: "<u2",
               onnx.TensorProto.UINT32: "<u4", onnx.TensorProto.UINT64: "<u8", onnx.TensorProto.BOOL: "?"}
_TYPED = {onnx.TensorProto.FLOAT: ("float_data", "<f4"), onnx.TensorProto.DOUBLE: ("double_data", "<f8"),
          onnx.TensorProto.INT32: ("int32_data", "<i4"), onnx.TensorProto.INT64: ("int64_data", "<i8")}
