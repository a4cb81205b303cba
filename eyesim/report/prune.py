"""The terminal report of a pruning run: one line per layer in the order pruned, then the totals side by side."""

from __future__ import annotations

from pathlib import Path

from eyesim.errors import printable
from eyesim.prune.result import PruneResult, change, report_frame
from eyesim.result import csv_safe

RIGHT = {"energy share", "weights kept", "error fit/val", "accuracy fit/val/eval", "energy"}


def report_text(result: PruneResult, model: Path) -> str:
    """The terminal report: one line per layer in the order pruned, then the totals."""
    fit, val, held_out = result.sources
    lines = [f"model {printable(model.name)}  |  hardware {printable(result.hardware)}  |  method {result.method}",
             f"fit on {fit}  |  choose on {val}" + (f"  |  held out {held_out}" if held_out else ""),
             f"rule: {result.rule.describe(result.threshold)}"]
    head = ["pass", "layer", "op", "energy share", "weights kept", "error fit/val", "support",
            "accuracy fit/val/eval", "energy"]
    rows = [head] + [[str(s.pass_no), s.layer, s.op, f"{100 * s.energy_share:.1f}%",
                      f"{s.nonzero_after:,}/{s.weights:,} ({100 * s.nonzero_after / s.weights:.1f}%)" + _filters(s),
                      f"{100 * s.fit_error:.1f}/{100 * s.val_error:.1f}%", s.support,
                      _accuracies(s.accuracy_fit, s.accuracy_val, s.accuracy_eval),
                      change(s.energy_before, s.energy_after)] for s in result.steps]
    rows = [[printable(cell) for cell in row] for row in rows]  # layer and op names come from the model file
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines += ["  ".join(c.rjust(w) if head[i] in RIGHT else c.ljust(w) for i, (c, w) in
                        enumerate(zip(r, widths, strict=True))).rstrip() for r in rows]
    lines.append("-" * max(len(line) for line in lines[3:]))
    b, a = result.before, result.after
    lines += [
        f"energy [MAC units]     {b.energy:,.0f} -> {a.energy:,.0f}  ({change(b.energy, a.energy)})",
        f"non-zero weights       {b.nonzero:,} -> {a.nonzero:,}  ({change(b.nonzero, a.nonzero)})",
        f"executed MACs          {b.macs_executed:,} -> {a.macs_executed:,}  "
        f"({change(b.macs_executed, a.macs_executed)})",
        f"accuracy fit/val/eval  {_accuracies(b.accuracy, b.accuracy_val, b.accuracy_eval)} -> "
        f"{_accuracies(a.accuracy, a.accuracy_val, a.accuracy_eval)}",
    ]
    return "\n".join(lines)


def write_report_csv(result: PruneResult, path: Path) -> None:
    """The report as CSV (``report_frame``), its text cells kept from running as spreadsheet formulas."""
    csv_safe(report_frame(result)).to_csv(path, index=False)


def _accuracies(*values: float | None) -> str:
    """"98.1/97.0/96.2%" with "-" for a part without labels (or not given)."""
    return "/".join("-" if v is None else f"{v:.1f}" for v in values) + "%"


def _filters(step) -> str:
    """", 12/16 filters" for a filter-pruning step, else ""."""
    return "" if step.channels_before is None else f", {step.channels_after}/{step.channels_before} filters"
