"""The terminal report of a pruning run: one line per layer in the order pruned, then the totals."""

from __future__ import annotations

from pathlib import Path


def report_text(result, model: Path, hw_file: Path) -> str:
    """The terminal report: one line per layer in the order pruned, then the totals."""
    b, a = result.before, result.after
    lines = [f"model {model.name}  |  hardware {hw_file}  |  method {result.method}  |  choose on "
             f"{result.data_source}" + (f"  |  report on {result.eval_source}" if result.eval_source else ""),
             f"accuracy threshold on the choosing samples: {result.threshold:.2f}% "
             f"(unpruned {b.accuracy:.2f}%)"]
    head = ["pass", "layer", "op", "energy share", "weights kept", "output error", "support", "accuracy"]
    if result.eval_source:
        head.append("accuracy (eval)")
    rows = [head]
    for s in result.steps:
        row = [str(s.pass_no), s.layer, s.op, f"{100 * s.energy_share:.1f}%",
               f"{s.nonzero_after:,}/{s.weights:,} ({100 * s.nonzero_after / s.weights:.1f}%)",
               f"{100 * s.output_error:.1f}%", s.support, f"{s.accuracy:.2f}%"]
        if result.eval_source:
            row.append(f"{s.accuracy_eval:.2f}%")
        rows.append(row)
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines += ["  ".join(c.ljust(w) if i < 3 or i == 6 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths,
                                                                                                    strict=True)))
              for r in rows]
    lines.append("-" * len(lines[-1]))
    report_on = result.eval_source or result.data_source
    acc_b, acc_a = (b.accuracy_eval, a.accuracy_eval) if result.eval_source else (b.accuracy, a.accuracy)
    lines += [
        f"energy [10^6 MAC units]   {b.energy / 1e6:,.3f} -> {a.energy / 1e6:,.3f}  ({result.ratio('energy'):.2f}x)",
        f"non-zero weights          {b.nonzero:,} -> {a.nonzero:,}  ({result.ratio('nonzero'):.2f}x)",
        f"executed MACs             {b.macs_executed:,} -> {a.macs_executed:,}  ({result.ratio('macs_executed'):.2f}x)",
        f"accuracy ({report_on})  {acc_b:.2f}% -> {acc_a:.2f}%",
    ]
    return "\n".join(lines)
