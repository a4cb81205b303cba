"""The samples a pruning run chooses with: checked before any work, split into a fitting and a validation part.

- ``split(data, fraction, seed)``: a stratified split (by label; random without labels) into the part the
  least squares fits on and the part the kept counts and ridges are chosen on.
- ``check_labels(samples, classes)``: refuses labels the model cannot predict, a single class or fewer classes
  than the model predicts; ``mix_warnings`` names classes whose share is far from uniform or from ``--eval``'s.
- ``check_finite(samples)``: refuses NaN and infinite inputs.
"""

from __future__ import annotations

import numpy as np

from eyesim.errors import EyesimError
from eyesim.workload.onnx.run import Samples

FAR = 2.0  # a class share more than FAR times off the expected one is "far" from it


def split(data: Samples, fraction: float, seed: int = 0) -> tuple[Samples, Samples]:
    """(fitting part, validation part): ``fraction`` of each label's samples, rounded down (at least one), go to
    validation, so the fitting part never has fewer samples than asked."""
    rng = np.random.default_rng(seed)
    if data.y is None:
        order = rng.permutation(len(data))
        val = order[: max(1, int(fraction * len(data)))]
    else:
        val = np.concatenate([rng.permutation(idx)[: max(1, int(fraction * len(idx)))]
                              for idx in (np.flatnonzero(data.y == c) for c in np.unique(data.y))])
    is_val = np.zeros(len(data), dtype=bool)
    is_val[val] = True
    if is_val.all():
        raise EyesimError(f"{data.source}: {len(data)} samples leave none to fit on after the validation part; "
                          "give more samples")
    return _subset(data, ~is_val, "fitting part"), _subset(data, is_val, "validation part")


def _subset(data: Samples, mask: np.ndarray, part: str) -> Samples:
    return Samples(data.x[mask], None if data.y is None else data.y[mask], f"{data.source} ({part})")


def check_finite(samples: Samples) -> None:
    """EyesimError when an input is NaN or infinite."""
    if samples.x.dtype.kind == "f" and not np.isfinite(samples.x).all():
        bad = int((~np.isfinite(samples.x)).reshape(len(samples), -1).any(axis=1).sum())
        raise EyesimError(f"{samples.source}: {bad} sample(s) hold NaN or infinite values")


def check_labels(samples: Samples, classes: int) -> None:
    """EyesimError for labels outside [0, classes), a single class, or fewer classes than the model predicts."""
    y = samples.y
    if y is None:
        return
    outside = (y < 0) | (y >= classes)
    if outside.any():
        shown = ", ".join(str(v) for v in np.unique(y[outside])[:5])
        raise EyesimError(f"{samples.source}: {int(outside.sum())} label(s) outside the model's {classes} classes "
                          f"0..{classes - 1} (e.g. {shown})")
    present = np.unique(y)
    if len(present) < classes:
        missing = sorted(set(range(classes)) - set(present.tolist()))
        shown = ", ".join(str(c) for c in missing[:10]) + (", ..." if len(missing) > 10 else "")
        raise EyesimError(f"{samples.source}: holds {len(present)} of the model's {classes} classes (missing "
                          f"{shown}); accuracy on it cannot stand for the model's")


def mix_warnings(samples: Samples, classes: int, reference: Samples | None = None) -> list[str]:
    """One line per comparison whose class shares are more than FAR times off (uniform, then ``reference``)."""
    if samples.y is None:
        return []
    share = np.bincount(samples.y, minlength=classes) / len(samples)
    lines = []
    far = _far(share, np.full(classes, 1.0 / classes))
    if far:
        lines.append(f"{samples.source}: class mix far from uniform (classes {far})")
    if reference is not None and reference.y is not None:
        far = _far(share, np.bincount(reference.y, minlength=classes) / len(reference))
        if far:
            lines.append(f"{samples.source}: class mix far from {reference.source}'s (classes {far})")
    return lines


def _far(share: np.ndarray, expected: np.ndarray) -> str:
    """The classes whose share is more than FAR times above or below the expected one, with both shares."""
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = share / expected
    bad = np.flatnonzero((expected > 0) & ((ratio > FAR) | (ratio < 1 / FAR)))
    return ", ".join(f"{c}: {100 * share[c]:.0f}% vs {100 * expected[c]:.0f}%" for c in bad[:10])
