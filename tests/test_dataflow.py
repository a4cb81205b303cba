"""The fast access counters equal the MAC-by-MAC trace walk, and the closed forms (DESIGN.md, "Counting")."""

from __future__ import annotations

import itertools

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from eyesim import dataflow as df
from eyesim.cost.counts import layer_counts, layer_vector
from eyesim.dataflow.search import mapping_energy, search_layer
from eyesim.mapping import Mapping
from eyesim.workload import Layer
from tests.layers import small_hw_vectors, small_layers, tilings
from tests.reference_trace import trace_counts


def hw_with_staging(stage: bool) -> np.ndarray:
    vec = np.zeros(df.HW_LEN, dtype=np.int64)
    vec[df.HW_STAGE_FILTERS] = stage
    return vec


@settings(max_examples=300, deadline=None)
@given(data=st.data(), stage=st.booleans())
def test_counts_equal_trace_walk(data, stage):
    layer = data.draw(small_layers())
    tiling = data.draw(tilings(layer))
    counts, macs = layer_counts(layer, hw_with_staging(stage), Mapping(**tiling).vector())
    ref_counts, ref_macs, _, _ = trace_counts(layer.shape, tiling, stage_filters=stage)
    assert macs == ref_macs == layer.macs
    np.testing.assert_array_equal(counts, ref_counts)


def closed_forms(layer: Layer, mp: dict) -> np.ndarray:
    """DESIGN.md's "Counting" table for evenly dividing tiles, U = 1, every ifmap row and column used."""
    N, C, M, H, W, R, S, E, F = (layer.shape[k] for k in "NCMHWRSEF")
    m, n, e, p, q, r, t = (mp[k] for k in "mnepqrt")
    I, Wt, O, macs = N * C * H * W, M * C * R * S, N * M * E * F, layer.macs
    halo = (E // e) * (e + R - 1) / H  # ifmap rows read over all strips / H
    halo_array = E / H  # each PE gets the one row it needs: R*E rows delivered per R*H
    out = np.zeros((4, 3, 2))
    out[df.DRAM, df.IFMAP, df.READ] = I * (M // m) * halo
    out[df.GLB, df.IFMAP, df.READ] = I * (M // (p * t)) * halo
    out[df.ARRAY, df.IFMAP, df.READ] = I * (M // p) * R * halo_array
    out[df.RF, df.IFMAP, df.READ] = macs
    out[df.DRAM, df.WEIGHTS, df.READ] = Wt * (N // n) * (E // e)
    out[df.ARRAY, df.WEIGHTS, df.READ] = Wt * (N // n) * E
    out[df.RF, df.WEIGHTS, df.READ] = macs
    out[df.DRAM, df.PSUM, df.WRITE] = O
    out[df.GLB, df.PSUM, df.READ] = out[df.GLB, df.PSUM, df.WRITE] = O * (C // (q * r) - 1)
    out[df.ARRAY, df.PSUM, df.READ] = O * ((C // q) * R - C // (q * r))
    out[df.RF, df.PSUM, df.READ] = out[df.RF, df.PSUM, df.WRITE] = O * (C * R * S - (C // q) * R)
    return out


@st.composite
def divisible_cases(draw):
    R = draw(st.integers(1, 3))
    S = draw(st.integers(1, 3))
    e, strips = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    E, F = e * strips, draw(st.integers(1, 4))
    n, q, r, p, t = (draw(st.integers(1, 2)) for _ in range(5))
    N, C = n * draw(st.integers(1, 2)), q * r * draw(st.integers(1, 2))
    m = p * t * draw(st.integers(1, 2))
    M = m * draw(st.integers(1, 2))
    layer = Layer("l", "Conv", N=N, G=1, C=C, M=M, H=E + R - 1, W=F + S - 1, R=R, S=S, E=E, F=F)
    return layer, {"m": m, "n": n, "e": e, "p": p, "q": q, "r": r, "t": t}


@settings(max_examples=200, deadline=None)
@given(case=divisible_cases())
def test_counts_equal_design_closed_forms_when_tiles_divide(case):
    layer, tiling = case
    counts, _ = layer_counts(layer, hw_with_staging(False), Mapping(**tiling).vector())
    np.testing.assert_allclose(counts, closed_forms(layer, tiling), rtol=1e-12)
    ref_counts, *_ = trace_counts(layer.shape, tiling)
    np.testing.assert_array_equal(counts, ref_counts)


def test_filters_staged_through_glb_are_read_once_per_dram_read():
    layer = Layer("l", "Conv", N=2, G=1, C=3, M=4, H=5, W=5, R=3, S=3, E=3, F=3)
    mp = Mapping(m=4, n=1, e=2, p=2, q=1, r=2, t=1).vector()
    staged, _ = layer_counts(layer, hw_with_staging(True), mp)
    bypass, _ = layer_counts(layer, hw_with_staging(False), mp)
    assert staged[df.GLB, df.WEIGHTS, df.READ] == staged[df.DRAM, df.WEIGHTS, df.READ] > 0
    assert bypass[df.GLB, df.WEIGHTS].sum() == 0


def test_strided_1x1_layer_reads_only_the_rows_and_columns_it_uses():
    # ResNet's 1x1 stride-2 downsampling: a quarter of the ifmap is ever read.
    layer = Layer("l", "Conv", N=1, G=1, C=2, M=2, H=8, W=8, R=1, S=1, E=4, F=4, U=2, Uw=2)
    mp = Mapping(m=2, n=1, e=4, p=1, q=1, r=1, t=1).vector()
    counts, _ = layer_counts(layer, hw_with_staging(False), mp)
    assert counts[df.DRAM, df.IFMAP, df.READ] == 2 * 4 * 4


COST = np.outer([200.0, 6.0, 2.0, 1.0], [1.0, 1.0, 1.0])


@settings(max_examples=60, deadline=None)
@given(layer=small_layers(max_batch=3, max_groups=1), hw=small_hw_vectors(), data=st.data())
def test_search_with_psum_gating_equals_brute_force(layer, hw, data):
    # exact psum gating adds channel-level energy that depends on q itself, not only on the chunk counts
    lv = layer_vector(layer)
    rows, cols = df.strip_rows_table(lv), df.used_cols(lv)
    extra = np.array(data.draw(st.lists(st.floats(-40.0, 0.0), min_size=layer.C + 1, max_size=layer.C + 1)))
    best, energy, _ = search_layer(lv, hw, rows, cols, COST, 1.0, extra)
    expected, expected_energy = None, np.inf
    ranges = (range(1, layer.M + 1), range(1, layer.N + 1), range(1, layer.E + 1), range(1, layer.M + 1),
              range(1, layer.C + 1), range(1, layer.C + 1), range(1, layer.M + 1))
    for mp in itertools.product(*ranges):
        vec = np.array(mp, dtype=np.int64)
        if df.first_violation(lv, hw, vec) == df.OK:
            found = mapping_energy(lv, hw, vec, rows, cols, COST, 1.0, extra)
            if found < expected_energy:
                expected, expected_energy = mp, found
    if expected is None:
        assert not np.isfinite(energy)
    else:
        assert (tuple(best), energy) == (expected, expected_energy)
