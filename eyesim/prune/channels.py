"""Filter (structured) pruning's model edit: which output channels can be removed, and removing them.

Public API:

- ``channel_groups(model) -> (groups, notes)``: a ``ChannelGroup`` per layer (or per set of layers joined by
  residual Adds) whose output channels (conv filters, FC neurons) can be physically removed: what shrinks with
  them and the ``blocks`` constraint of grouped convs; ``notes`` has one line per layer that cannot be pruned,
  naming the node in the way (``"conv3: skipped, its output reaches Add node 'add1' whose other input ..."``),
  and per approximation (an LRN between). The rules: ``eyesim.prune.channel_walk``.
- ``remove_channels(model, keep) -> onnx.ModelProto``: a new, physically smaller model keeping, for each layer
  named in ``keep``, the sorted output channels ``keep[layer]``; the slicing: ``eyesim.prune.surgery``.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import onnx

from eyesim.errors import EyesimError
from eyesim.prune import surgery
from eyesim.prune.channel_walk import ChannelGroup, Use, channel_groups

__all__ = ["ChannelGroup", "Use", "channel_groups", "remove_channels"]


def remove_channels(model: onnx.ModelProto, keep: Mapping[str, np.ndarray | list[int]]) -> onnx.ModelProto:
    """A new, smaller model keeping only the output channels ``keep[layer]`` (sorted indices) of each named layer.

    Producers lose filters (and bias), consumers the matching input channels or rows, BatchNorms and
    per-channel constants their values, depthwise convs their filters and group count; value_info is cleared.
    EyesimError for a layer that cannot be pruned (its note) or a bad keep set.
    """
    groups, notes = channel_groups(model)
    by_layer = {member: group for group in groups for member in group.members}
    removals: dict[tuple[str, str], set[int]] = {}
    done: dict[str, str] = {}
    for layer, kept in keep.items():
        if layer not in by_layer:
            why = next((note for note in notes if note.startswith(f"{layer}: skipped")), None)
            raise EyesimError(f"cannot remove channels of {why}" if why else
                              f"no prunable layer named {layer!r}; the layers: {', '.join(by_layer) or 'none'}")
        group = by_layer[layer]
        if group.layer in done:
            raise EyesimError(f"keep names both {done[group.layer]!r} and {layer!r}, which are pruned together "
                              "(residual Add): give one of them")
        done[group.layer] = layer
        gone = group.removed(kept)
        # a depthwise conv loses filters ("out", with its own pruning if any) and groups ("dw")
        roles = (("out", tuple(Use(member, "") for member in group.members) + group.depthwise),
                 ("in", group.consumers), ("bn", group.batchnorms), ("dw", group.depthwise),
                 ("reshape", group.reshapes), ("const", group.constants))
        for role, uses in roles:
            for use in uses:
                removals.setdefault((role, use.node), set()).update(use.indices(gone).tolist())
    return surgery.shrink(model, {key: np.array(sorted(found), dtype=np.int64) for key, found in removals.items()
                                  if found})
