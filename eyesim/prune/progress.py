"""What a pruning run tells while it works: warnings before any work, each layer, each kept count tried."""

from __future__ import annotations

from typing import Protocol


class Progress(Protocol):
    """Receives a pruning run's events (the CLI draws them as bars; the API default is silent)."""

    def warn(self, line: str) -> None:
        """A warning about the data, before any work."""

    def note(self, line: str) -> None:
        """A fact worth a line, e.g. a layer that cannot be pruned and why."""

    def layer(self, name: str, pass_no: int, index: int, count: int) -> None:
        """Layer ``index`` of ``count`` in pass ``pass_no`` starts."""

    def trial(self, kept: int, of: int) -> None:
        """A kept count is tried on the current layer."""

    def done(self, step) -> None:
        """The current layer is finished (an ``eyesim.prune.result.Step``)."""


class Silent:
    """A Progress that says nothing."""

    def warn(self, line: str) -> None:
        pass

    def note(self, line: str) -> None:
        pass

    def layer(self, name: str, pass_no: int, index: int, count: int) -> None:
        pass

    def trial(self, kept: int, of: int) -> None:
        pass

    def done(self, step) -> None:
        pass
