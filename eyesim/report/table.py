"""The result of an estimate as a terminal table, with a summary header (energies in MAC units, scaled to the model)."""

from __future__ import annotations

import math

from eyesim.cost.breakdown import ENERGY_LEVELS, ENERGY_TYPES
from eyesim.result import LayerResult, Result

LEVEL_HEAD = ("DRAM", "GLB", "array", "RF", "MAC")
TYPE_HEAD = ("weights", "ifmap", "ofmap", "comp")
SI_PREFIX = {0: "", 3: " [k]", 6: " [M]", 9: " [G]", 12: " [T]", 15: " [P]"}


def _shape(lr: LayerResult) -> str:
    s = lr.layer
    text = f"{s.C}x{s.H}x{s.W}>{s.M}x{s.E}x{s.F} k{s.R}x{s.S}"
    if s.U > 1 or s.Uw > 1:
        text += f"/{s.U}" if s.Uw == s.U else f"/{s.U}x{s.Uw}"
    return text + (f" g{s.G}" if s.G > 1 else "")


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
    head = ["layer", "op", "shape C*H*W>M*E*F kRxS/U gG", "MACs [M]", "m n e p q r t", "PEs",
            *LEVEL_HEAD, *TYPE_HEAD, "total", "run MACs [M]", "d_w", "d_i", "d_o", "ms", "bound"]
    exponent = _scale_exponent(max((lr.energy.total for lr in result.layers), default=1.0), 6)
    mac_exp = _scale_exponent(max((lr.energy.macs for lr in result.layers), default=1), 4)
    head[3], head[-5] = f"MACs{SI_PREFIX[mac_exp]}", f"run MACs{SI_PREFIX[mac_exp]}"

    def macs(value: int) -> str:
        return f"{value / 10**mac_exp:,.1f}"

    rows = []
    for lr in result.layers:
        e = lr.energy
        rows.append([lr.layer.name, lr.layer.op, _shape(lr), macs(e.macs), _mapping(lr), str(lr.active_pes),
                     *_energy_cells(e.by_level, e.by_type, e.total, exponent), macs(e.macs_executed),
                     *_densities(lr), f"{lr.timing.latency_s * 1e3:.3f}",
                     lr.timing.bound])
    tot = result.total()
    rows.append(["TOTAL", "", "", macs(tot["macs"]), "", "",
                 *_energy_cells(tot["energy"]["by_level"], tot["energy"]["by_type"], tot["energy"]["total"], exponent),
                 macs(tot["macs_executed"]), "", "", "", f"{tot['latency_s'] * 1e3:.3f}", ""])
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    numeric = set(range(3, len(head) - 1)) - {4}

    def line(cells: list[str]) -> str:
        pairs = enumerate(zip(cells, widths, strict=True))
        padded = (c.rjust(w) if i in numeric else c.ljust(w) for i, (c, w) in pairs)
        return "  ".join(padded)

    group = " " * (sum(widths[:6]) + 12)
    level_w = sum(widths[6:11]) + 8
    type_w = sum(widths[11:15]) + 6
    unit = f"[10^{exponent} MAC units]" if exponent else "[MAC units]"
    title = f"{group}{f'energy by level {unit}'.center(level_w)}  {f'energy by data type {unit}'.center(type_w)}"
    rule = "-" * len(line(head))
    out = [title.rstrip(), line(head), rule, *(line(r) for r in rows[:-1]), rule, line(rows[-1])]
    return "\n".join(out)


def summary(result: Result) -> str:
    """Header lines: model, hardware, batch, bit widths, units and the ops listed but not charged."""
    hw = result.hardware
    lines = [
        f"model {result.model}  |  hardware {hw.name} ({hw.source or 'in memory'})  |  batch {result.batch}  |  "
        f"bits w/i/p {result.bits.weights}/{result.bits.ifmap}/{result.bits.psum}",
        "energy unit: one 16-bit MAC = 1 (costs per access: "
        + ", ".join(f"{k} {getattr(hw.energy, k):g}" for k in ENERGY_LEVELS) + "); * = pinned mapping; "
        "densities d_w/d_i/d_o: g given, l linked (the same tensor given), e estimated, m measured",
    ]
    tot = result.total()
    joules = "" if tot["energy_j"] is None else (f"  |  {tot['energy_j'] * 1e3:.3f} mJ, {tot['power_w'] * 1e3:.1f} mW "
                                                 f"(energy.pj_per_unit {hw.energy.pj_per_unit:g})")
    lines.append(f"latency {tot['latency_s'] * 1e3:.3f} ms for the batch, {tot['fps']:.1f} frames/s at "
                 f"{hw.clock_mhz:g} MHz{joules}; zero gating {'on' if hw.sparsity.zero_gating else 'off'}, "
                 f"DRAM fmaps {hw.sparsity.dram_compression}")
    if result.not_modelled:
        ops: dict[str, int] = {}
        for nm in result.not_modelled:
            ops[nm.op] = ops.get(nm.op, 0) + 1
        listed = ", ".join(f"{op} x{n}" for op, n in sorted(ops.items()))
        lines.append(f"not modelled (no MACs, or folded into a conv): {listed}")
    return "\n".join(lines)
