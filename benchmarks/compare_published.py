"""Print eyesim's figures beside published Eyeriss facts (nothing here is tuned to them).

- JSSC 2017 Table III: the chip's AlexNet CONV mappings at batch 4 and their active PEs.
- JSSC 2017 Table V: the chip's measured processing latency of AlexNet CONV1-5 at batch 4 (200 MHz),
  with its measured ifmap densities; eyesim's compute, per-pass set-up and DRAM cycles beside it.
- ISCA 2016: the RS dataflow's energy per MAC on AlexNet, by level, on 256 PEs at batch 16.
Run: python benchmarks/compare_published.py
"""

from __future__ import annotations

from pathlib import Path

import eyesim

ROOT = Path(__file__).resolve().parent.parent
ALEXNET = ROOT / "models_onnx" / "alexnet.onnx"
CHIP = ROOT / "hwconfigs" / "eyeriss.yaml"
ISCA = ROOT / "hwconfigs" / "eyeriss-isca256.yaml"
JSSC = ROOT / "hwconfigs" / "mappings" / "alexnet-jssc2017.yaml"
PUBLISHED_PES = (154, 135, 156, 156, 156)
# JSSC 2017 Table V: measured processing latency (ms) of CONV1-5 at batch 4, and the ifmap densities it lists
PUBLISHED_MS = (16.5, 39.2, 21.8, 16.0, 10.0)
PUBLISHED_DRAM_MB = 15.4  # JSSC 2017 Table V: DRAM traffic of CONV1-5 at batch 4
IFMAP_DENSITY = {"conv2.ifmap": 0.613, "conv3.ifmap": 0.388, "conv4.ifmap": 0.29, "conv5.ifmap": 0.224}


def chip() -> None:
    for label, mapping in (("chip's mappings (JSSC Table III)", JSSC), ("searched mappings", None)):
        result = eyesim.estimate(ALEXNET, CHIP, batch=4, mapping=mapping, densities=IFMAP_DENSITY)
        convs = [lr for lr in result.layers if lr.layer.op == "Conv"]
        latency = sum(lr.timing.latency_s for lr in convs)
        energy = sum(lr.energy.total for lr in convs)
        hw = result.hardware
        link_bytes = hw.dram.link_bits * hw.dram.link_mhz / hw.clock_mhz / 8  # per core cycle
        dram_mb = sum(lr.timing.dram_cycles for lr in convs) * link_bytes / 1e6
        print(f"{label}: active PEs {[lr.active_pes for lr in convs]} (published {list(PUBLISHED_PES)}); "
              f"CONV1-5 {latency * 1e3:.1f} ms per batch of 4 (chip measured {sum(PUBLISHED_MS):.1f}); "
              f"DRAM traffic {dram_mb:.1f} MB (chip measured {PUBLISHED_DRAM_MB}); "
              f"energy {energy / 1e9:.2f}e9 MAC units")
        for lr, chip_ms in zip(convs, PUBLISHED_MS, strict=True):
            t = lr.timing
            print(f"  {lr.layer.name}: {t.latency_s * 1e3:5.1f} ms (chip {chip_ms:4.1f} ms, ratio "
                  f"{t.latency_s * 1e3 / chip_ms:.2f}); cycles compute {t.compute_cycles:,}, set-up "
                  f"{t.setup_cycles:,}, DRAM {t.dram_cycles:,}; bound {t.bound}")


def isca() -> None:
    result = eyesim.estimate(ALEXNET, ISCA, batch=16)
    for op in ("Conv", "Gemm"):
        layers = [lr for lr in result.layers if lr.layer.op == op]
        macs = sum(lr.energy.macs for lr in layers)
        levels = {k: sum(lr.energy.by_level[k] for lr in layers) / macs for k in ("dram", "glb", "array", "rf", "mac")}
        shown = ", ".join(f"{k} {v:.2f}" for k, v in levels.items())
        print(f"ISCA setup, batch 16, AlexNet {op} layers: {sum(levels.values()):.2f} units per MAC ({shown})")


if __name__ == "__main__":
    chip()
    isca()
