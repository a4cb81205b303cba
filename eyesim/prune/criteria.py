"""Filter importance for structured pruning: scores per output channel, and the order in which to remove them.

- ``nuclear_norms(feature_maps)``: Yeom, Shim, Hwang, "Toward Compact Deep Neural Networks via Energy-Aware
  Pruning" (2021): a filter matters as much as the nuclear norm (sum of singular values) of the N x (H*W) matrix
  of the feature maps it produces over N samples; a filter whose maps are all zero scores 0.
- ``l1_norms(weight)``: the baseline of Li, Kadav, Durdanovic, Samet, Graf, "Pruning Filters for Efficient
  ConvNets" (ICLR 2017): the sum of the absolute weights of each filter.
- ``ranking(scores, blocks)``: the removal order, least important first, keeping grouped convolutions' blocks
  equal (``ChannelGroup.blocks``).
"""

from __future__ import annotations

import numpy as np

from eyesim.errors import EyesimError
from eyesim.prune.layers import LinearLayer

_CHUNK_BYTES = 64 << 20  # float64 working set per batch of channels in nuclear_norms


def nuclear_norms(feature_maps: np.ndarray) -> np.ndarray:
    """Per channel m of ``feature_maps`` (N, M, *spatial), or (N, M) for a fully connected layer: the nuclear norm
    of ``feature_maps[:, m].reshape(N, -1)``, as ``np.linalg.norm(..., 'nuc')`` computes it.

    The singular values are the square roots of the eigenvalues of the smaller Gram matrix (N x N or P x P,
    P = H*W), computed for a batch of channels at a time in float64.
    """
    fmap = np.asarray(feature_maps)
    if fmap.ndim < 2 or fmap.shape[0] == 0:
        raise ValueError(f"feature maps must be (N, M, ...) with N >= 1 samples, got shape {fmap.shape}")
    n, m = fmap.shape[:2]
    p = int(np.prod(fmap.shape[2:], dtype=np.int64))
    flat = fmap.reshape(n, m, p)
    small = min(n, p)
    per_chunk = max(1, _CHUNK_BYTES // (8 * (n * p + small * small)))
    norms = np.empty(m)
    for lo in range(0, m, per_chunk):
        x = flat[:, lo:lo + per_chunk].transpose(1, 0, 2).astype(np.float64)  # channels, N, P
        gram = x @ x.transpose(0, 2, 1) if n <= p else x.transpose(0, 2, 1) @ x
        eig = np.linalg.eigvalsh(gram)
        # eigenvalues of a Gram matrix are >= 0; rounding can leave tiny negatives
        norms[lo:lo + per_chunk] = np.sqrt(np.clip(eig, 0.0, None)).sum(axis=-1)
    return norms


def l1_norms(weight: np.ndarray, layer: LinearLayer | None = None) -> np.ndarray:
    """Per output channel, the sum of |w| over its filter (Li et al. 2017).

    Without ``layer``, axis 0 of ``weight`` is the output channel: a Conv weight (M, C/G, R, S), a Gemm B with
    transB=1, or ``LinearLayer.matrices`` output (G, M/G, K) given as ``mats.reshape(-1, K)``. With ``layer``,
    ``weight`` is that layer's stored weight, read through ``layer.matrices`` (Gemm transB=0 and MatMul store
    it K x M); the channels come in the order of the layer's outputs either way.
    """
    w = np.abs(np.asarray(weight, dtype=np.float64))
    if layer is not None:
        mats = np.abs(layer.matrices(w))
        return mats.sum(axis=2).reshape(-1)
    return w.reshape(w.shape[0], -1).sum(axis=1)


def ranking(scores: np.ndarray, blocks: int = 1) -> np.ndarray:
    """Channel indices in the order to remove them: least important (lowest score) first.

    The channels form ``blocks`` equal, contiguous blocks (grouped convolutions); the order goes in rounds, each
    removing the least important remaining channel of every block (the round's channels by score), so any prefix
    whose length is a multiple of ``blocks`` removes the same number from each block, and others differ by one.
    Ties keep index order.
    """
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    if blocks < 1 or scores.size % blocks:
        raise EyesimError(f"{scores.size} channels cannot form {blocks} equal blocks")
    if np.isnan(scores).any():
        raise EyesimError("filter scores hold NaN; cannot rank the filters")
    per_block = scores.reshape(blocks, -1)
    order = np.argsort(per_block, axis=1, kind="stable") + np.arange(blocks)[:, None] * per_block.shape[1]
    rounds = order.T  # round r: the r-th least important channel of each block
    within = np.argsort(scores[rounds], axis=1, kind="stable")
    return np.take_along_axis(rounds, within, axis=1).reshape(-1)
