"""The search returns exactly the brute-force optimum (energy and tie-break) over the whole mapping space."""

from __future__ import annotations

import itertools

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from eyesim import dataflow as df
from eyesim.cost.counts import layer_vector
from eyesim.dataflow.search import mapping_energy, search_layer
from eyesim.workload import Layer, out_size
from tests.layers import small_hw_vectors, small_layers, tilings

COST = np.outer([200.0, 6.0, 2.0, 1.0], [1.0, 1.0, 1.0])
NO_EXTRA = np.zeros(0)  # no exact psum gating


def brute_force(lv, hw, rows, cols, cost, mac_cost, psum_extra=NO_EXTRA):
    """Scan every (m, n, e, p, q, r, t) in lexicographic order; keep the first strictly better legal one."""
    N, C, M, E = lv[df.L_N], lv[df.L_C], lv[df.L_M], lv[df.L_E]
    best, best_energy = None, np.inf
    ranges = (range(1, M + 1), range(1, N + 1), range(1, E + 1), range(1, M + 1), range(1, C + 1),
              range(1, C + 1), range(1, M + 1))
    for mp in itertools.product(*ranges):
        vec = np.array(mp, dtype=np.int64)
        if df.first_violation(lv, hw, vec) != df.OK:
            continue
        energy = mapping_energy(lv, hw, vec, rows, cols, cost, mac_cost, psum_extra)
        if energy < best_energy:
            best, best_energy = mp, energy
    return best, best_energy


def search(lv, hw, cost, mac_cost=1.0):
    return search_layer(lv, hw, df.strip_rows_table(lv), df.used_cols(lv), cost, mac_cost, NO_EXTRA)


costs = st.lists(st.floats(0.5, 300.0), min_size=4, max_size=4).map(
    lambda c: np.outer(c, [1.0, 1.0, 1.0]))


@settings(max_examples=60, deadline=None)
@given(layer=small_layers(max_batch=4, max_groups=1), hw=small_hw_vectors(), cost=st.one_of(st.just(COST), costs))
def test_search_equals_brute_force(layer, hw, cost):
    lv = layer_vector(layer)
    expected, expected_energy = brute_force(lv, hw, df.strip_rows_table(lv), df.used_cols(lv), cost, 1.0)
    best, energy, _ = search(lv, hw, cost)
    if expected is None:
        assert not np.isfinite(energy)
        assert df.first_violation(lv, hw, np.ones(7, dtype=np.int64)) != df.OK
    else:
        assert tuple(best) == expected
        assert energy == expected_energy


@settings(max_examples=80, deadline=None)
@given(data=st.data())
def test_no_sampled_legal_mapping_beats_the_search(data):
    layer = data.draw(small_layers(max_batch=4))
    hw = data.draw(small_hw_vectors())
    lv = layer_vector(layer)
    best, energy, _ = search(lv, hw, COST)
    rows, cols = df.strip_rows_table(lv), df.used_cols(lv)
    for _ in range(20):
        tiling = data.draw(tilings(layer))  # one whole tiling per vector (not one drawn per key)
        vec = np.array([tiling[k] for k in df.MAPPING_KEYS], dtype=np.int64)
        if df.first_violation(lv, hw, vec) == df.OK:
            assert mapping_energy(lv, hw, vec, rows, cols, COST, 1.0, NO_EXTRA) >= energy
            assert df.first_violation(lv, hw, best) == df.OK


@st.composite
def pointwise_layers(draw) -> Layer:
    """A random 1x1 convolution (ResNet's bottleneck layers): the search's pruning acts most on these."""
    U, Uw = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    H, W = draw(st.integers(1, 7)), draw(st.integers(1, 5))
    return Layer("pw", "Conv", N=draw(st.integers(1, 2)), G=1, C=draw(st.integers(1, 7)), M=draw(st.integers(1, 7)),
                 H=H, W=W, R=1, S=1, E=out_size(H, 1, U, 1), F=out_size(W, 1, Uw, 1), U=U, Uw=Uw, Dh=1, Dw=1)


@settings(max_examples=40, deadline=None)
@given(layer=pointwise_layers(), hw=small_hw_vectors(), cost=st.one_of(st.just(COST), costs), data=st.data())
def test_search_of_1x1_layers_equals_brute_force(layer, hw, cost, data):
    # the bounds (p, r and q breaks), the GLB cap on q*r and the strip order, with and without psum gating
    lv = layer_vector(layer)
    extra = data.draw(st.just(NO_EXTRA) | st.lists(st.floats(-40.0, 0.0), min_size=layer.C + 1, max_size=layer.C + 1)
                      .map(np.array))
    rows, cols = df.strip_rows_table(lv), df.used_cols(lv)
    expected, expected_energy = brute_force(lv, hw, rows, cols, cost, 1.0, extra)
    best, energy, _ = search_layer(lv, hw, rows, cols, cost, 1.0, extra)
    if expected is None:
        assert not np.isfinite(energy)
    else:
        assert (tuple(best), energy) == (expected, expected_energy)
