"""``result.json_text`` writes exactly what ``json.dumps(data, indent=2)`` writes, for any data a result could hold
and for what it leaves to json.dumps (other key types, other values), errors included."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eyesim.result import json_text

SCALARS = (st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.text(max_size=8)
           | st.floats(allow_nan=True, allow_infinity=True) | st.just(-0.0))
DATA = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4) | st.tuples(inner, inner)
                    | st.dictionaries(st.text(max_size=6), inner, max_size=4), max_leaves=30)


@settings(max_examples=300, deadline=None)
@given(DATA)
def test_the_same_text_as_json_dumps(data):
    assert json_text(data) == json.dumps(data, indent=2)


@pytest.mark.parametrize("data", [
    {1: "a", "b": 2}, {None: 1}, {True: [1]}, {2.5: {}},  # keys json.dumps turns into text
    [np.float64(0.1), np.float64(math.inf)], {"x": np.float32(1.5).item()},  # subclasses of float
    {"s": type("Name", (str,), {})("sub")}, [type("Count", (int,), {})(7)],
    [[[[[]]]]], {"": {"": []}}, "\u2603\x00\n\"\\",
], ids=repr)
def test_odd_but_encodable_values_as_json_dumps(data):
    assert json_text(data) == json.dumps(data, indent=2)


@pytest.mark.parametrize("data", [{"a": np.int64(3)}, [object()], {"k": {1, 2}}, {(1, 2): 3}], ids=repr)
def test_what_json_dumps_refuses_is_refused_the_same_way(data):
    with pytest.raises(TypeError) as expected:
        json.dumps(data, indent=2)
    with pytest.raises(TypeError) as found:
        json_text(data)
    assert str(found.value) == str(expected.value)


def test_a_cycle_is_refused_as_json_dumps_refuses_it():
    loop: list = []
    loop.append(loop)
    with pytest.raises(ValueError, match="Circular reference"):
        json.dumps(loop, indent=2)
    with pytest.raises(ValueError, match="Circular reference"):
        json_text(loop)
