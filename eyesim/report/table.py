"""The result of an estimate as a terminal table, with a summary header (energies in MAC units, scaled to the model)."""

from __future__ import annotations

import math

from eyesim.cost.breakdown import ENERGY_LEVELS, ENERGY_TYPES
from eyesim.errors import printable
from eyesim.result import LayerResult, Result

LEVEL_HEAD = ("DRAM", "GLB", "array", "RF", "MAC")
TYPE_HEAD = ("weights", "ifmap", "ofmap", "comp")
CYCLE_HEAD = ("compute", "set-up", "DRAM")  # core cycles: the busiest PEs' MACs, the rest of the passes, the link
SI_PREFIX = {0: "", 3: " [k]", 6: " [M]", 9: " [G]", 12: " [T]", 15: " [P]"}


def _shape(lr: LayerResult) -> str:
    s = lr.slices.layer if lr.slices else lr.layer  # a sliced layer is shown as given, with its slices
    text = f"{s.C}x{s.H}x{s.W}>{s.M}x{s.E}x{s.F} k{s.R}x{s.S}"
    if s.U > 1 or s.Uw > 1:
        text += f"/{s.U}" if s.Uw == s.U else f"/{s.U}x{s.Uw}"
    text += f" g{s.G}" if s.G > 1 else ""
    if s.transposed is not None:  # the run convolution over the input with s − 1 zeros inserted: "x2" zeros
        sh, sw = s.transposed.strides
        text += f" up{sh}" if sh == sw else f" up{sh}x{sw}"
    return text + (f" slices {lr.slices.short}" if lr.slices else "")


def native_lines(result: Result) -> list[str]:
    """One line per layer outside the hardware's native shapes (its ``native`` section), under the table."""
    outside = [lr for lr in result.layers if lr.outside_native]
    if not outside:
        return []
    lines = ["outside the hardware's native layer shapes (its native section):"]
    for lr in outside:
        run = f" (run as {lr.slices.text})" if lr.slices else ""
        lines.append(f"  {printable(lr.layer.name)}: {', '.join(lr.outside_native)}{run}")
    return lines


def _mapping(lr: LayerResult) -> str:
    return " ".join(str(v) for v in lr.mapping.as_dict().values()) + ("*" if lr.pinned else "")


MARKS = {"given": "g", "linked": "l", "estimated": "e", "measured": "m", "dense": " "}


def _densities(lr: LayerResult) -> list[str]:
    """Weight, ifmap and ofmap densities, each marked with where it came from (MARKS)."""
    d = lr.density
    return [f"{value:.2f}{MARKS.get(kind, '?')}" for value, kind in zip((d.weights, d.ifmap, d.ofmap), d.kinds,
                                                                         strict=True)]


def _scale_exponent(largest: float, digits: int) -> int:
    """Power of ten (a multiple of 3) that leaves ``largest`` with at most ``digits`` digits before the point."""
    return 3 * max(0, -(-(int(math.log10(max(largest, 1.0))) + 1 - digits) // 3))


def _unit(exponent: int, what: str) -> str:
    return f"[10^{exponent} {what}]" if exponent else f"[{what}]"


def _energy_cells(by_level: dict, by_type: dict, total: float, exponent: int) -> list[str]:
    values = [by_level[k] for k in ENERGY_LEVELS] + [by_type[k] for k in ENERGY_TYPES] + [total]
    return [f"{v / 10**exponent:,.1f}" for v in values]


def table(result: Result) -> str:
    """A fixed-width table, one row per layer and a TOTAL row, units in the header."""
    exponent = _scale_exponent(max((lr.energy.total for lr in result.layers), default=1.0), 6)
    mac_exp = _scale_exponent(max((lr.energy.macs for lr in result.layers), default=1), 4)
    cyc_exp = _scale_exponent(max((lr.timing.cycles for lr in result.layers), default=1), 6)
    head = ["layer", "op", "shape C*H*W>M*E*F kRxS/U gG", f"MACs{SI_PREFIX[mac_exp]}", "m n e p q r t", "PEs",
            *LEVEL_HEAD, *TYPE_HEAD, "total", f"run MACs{SI_PREFIX[mac_exp]}", "d_w", "d_i", "d_o", *CYCLE_HEAD,
            "ms", "bound"]

    def macs(value: int) -> str:
        return f"{value / 10**mac_exp:,.1f}"

    def cycles(*values: int) -> list[str]:
        return [f"{v / 10**cyc_exp:,.1f}" for v in values]

    rows = []
    for lr in result.layers:
        e = lr.energy
        rows.append([lr.layer.name, lr.layer.op, _shape(lr), macs(e.macs), _mapping(lr), str(lr.active_pes),
                     *_energy_cells(e.by_level, e.by_type, e.total, exponent), macs(e.macs_executed),
                     *_densities(lr), *cycles(*_cycles(lr.timing)), f"{lr.timing.latency_s * 1e3:.3f}",
                     lr.timing.bound])
    tot = result.total()
    rows.append(["TOTAL", "", "", macs(tot["macs"]), "", "",
                 *_energy_cells(tot["energy"]["by_level"], tot["energy"]["by_type"], tot["energy"]["total"], exponent),
                 macs(tot["macs_executed"]), "", "", "",
                 *cycles(*(sum(c) for c in zip(*(_cycles(lr.timing) for lr in result.layers), strict=True))),
                 f"{tot['latency_s'] * 1e3:.3f}", ""])
    rows = [[printable(cell) for cell in row] for row in rows]  # names come from the model file
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    numeric = set(range(3, len(head) - 1)) - {4}

    def line(cells: list[str]) -> str:
        pairs = enumerate(zip(cells, widths, strict=True))
        padded = (c.rjust(w) if i in numeric else c.ljust(w) for i, (c, w) in pairs)
        return "  ".join(padded)

    unit = f"[10^{exponent} MAC units]" if exponent else "[MAC units]"
    first_cycle = head.index(CYCLE_HEAD[0])
    title = _titles(widths, [(6, 11, f"energy by level {unit}"), (11, 15, f"energy by data type {unit}"),
                             (first_cycle, first_cycle + 3, f"cycles{SI_PREFIX[cyc_exp]}")])
    rule = "-" * len(line(head))
    out = [title.rstrip(), line(head), rule, *(line(r) for r in rows[:-1]), rule, line(rows[-1]),
           *native_lines(result)]
    return "\n".join(out)


def _gating(sparsity) -> str:
    if not sparsity.zero_gating:
        return "off"
    return "on (psum accesses too)" if sparsity.gate_psums else "on"


def _cycles(timing) -> tuple[int, int, int]:
    return timing.compute_cycles, timing.setup_cycles, timing.dram_cycles


def _titles(widths: list[int], groups: list[tuple[int, int, str]]) -> str:
    """A line of group titles, each centred over its columns [start, stop) of a table whose columns are
    ``widths`` wide and two spaces apart."""
    out = ""
    for start, stop, text in groups:
        out = out.ljust(sum(widths[:start]) + 2 * start)
        out += text.center(sum(widths[start:stop]) + 2 * (stop - start - 1))
    return out


def summary(result: Result) -> str:
    """Header lines: model, hardware, batch, bit widths, units and the ops listed but not charged."""
    hw = result.hardware
    lines = [
        f"model {printable(result.model)}  |  hardware {printable(hw.name)} ({printable(hw.source or 'in memory')})  "
        f"|  batch {result.batch}  |  "
        f"bits w/i/p {result.bits.weights}/{result.bits.ifmap}/{result.bits.psum}",
        "energy unit: one 16-bit MAC = 1 (costs per access: "
        + ", ".join(f"{k} {getattr(hw.energy, k):g}" for k in ENERGY_LEVELS) + "); * = pinned mapping; "
        "densities d_w/d_i/d_o: g given, l linked (the same tensor given), e estimated, m measured",
    ]
    tot = result.total()
    joules = "" if tot["energy_j"] is None else (f"  |  {tot['energy_j'] * 1e3:.3f} mJ, {tot['power_w'] * 1e3:.1f} mW "
                                                 f"(energy.pj_per_unit {hw.energy.pj_per_unit:g})")
    lines.append(f"latency {tot['latency_s'] * 1e3:.3f} ms for the batch, {tot['fps']:.1f} frames/s at "
                 f"{hw.clock_mhz:g} MHz{joules}; zero gating {_gating(hw.sparsity)}, "
                 f"DRAM fmaps {hw.sparsity.dram_compression}")
    if result.not_modelled:
        ops: dict[str, int] = {}
        for nm in result.not_modelled:
            ops[nm.op] = ops.get(nm.op, 0) + 1
        listed = ", ".join(f"{printable(op)} x{n}" for op, n in sorted(ops.items()))
        lines.append(f"not modelled (no MACs, or folded into a conv): {listed}")
    lines += [f"note: {printable(note)}" for note in result.notes]
    return "\n".join(lines)
