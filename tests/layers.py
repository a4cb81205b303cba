"""Hypothesis strategies shared by the tests: small random layers, legal tilings, small hardware."""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from eyesim import dataflow as df
from eyesim.workload import Layer, out_size


@st.composite
def small_layers(draw, max_batch: int = 3, max_groups: int = 2) -> Layer:
    R, S = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    U, Uw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    Dh, Dw = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    H = Dh * (R - 1) + 1 + draw(st.integers(0, 6))
    W = Dw * (S - 1) + 1 + draw(st.integers(0, 5))
    return Layer("l", "Conv", N=draw(st.integers(1, max_batch)), G=draw(st.integers(1, max_groups)),
                 C=draw(st.integers(1, 6)), M=draw(st.integers(1, 7)), H=H, W=W, R=R, S=S,
                 E=out_size(H, R, U, Dh), F=out_size(W, S, Uw, Dw), U=U, Uw=Uw, Dh=Dh, Dw=Dw)


@st.composite
def tilings(draw, layer: Layer) -> dict[str, int]:
    """A mapping that respects the tiling constraints (capacity ones are irrelevant to counting)."""
    p = draw(st.integers(1, layer.M))
    t = draw(st.integers(1, layer.M // p))
    m = draw(st.sampled_from([k for k in range(p * t, layer.M + 1) if k % (p * t) == 0 or k == layer.M]))
    q = draw(st.integers(1, layer.C))
    r = draw(st.integers(1, layer.C // q))
    return {"m": m, "n": draw(st.integers(1, layer.N)), "e": draw(st.integers(1, layer.E)),
            "p": p, "q": q, "r": r, "t": t}


@st.composite
def small_hw_vectors(draw) -> np.ndarray:
    """A small accelerator as the kernels' vector, split or unified RF, 16-bit words."""
    vec = np.zeros(df.HW_LEN, dtype=np.int64)
    vec[df.HW_ROWS], vec[df.HW_COLS] = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    vec[df.HW_RF_UNIFIED] = draw(st.booleans())
    vec[df.HW_RF_BITS] = 16 * draw(st.integers(2, 40))
    vec[df.HW_RF_FILTER] = 16 * draw(st.integers(1, 20))
    vec[df.HW_RF_IFMAP] = 16 * draw(st.integers(1, 8))
    vec[df.HW_RF_PSUM] = 16 * draw(st.integers(1, 6))
    vec[df.HW_GLB_BITS] = 16 * draw(st.integers(20, 3000))
    vec[df.HW_STAGE_FILTERS] = draw(st.booleans())
    vec[df.HW_BITS_W] = vec[df.HW_BITS_I] = vec[df.HW_BITS_P] = 16
    return vec
