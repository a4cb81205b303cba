"""End-to-end estimates through the Python API: pinned chip mappings, schema, breakdown sums."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import eyesim
from eyesim import dataflow as df
from eyesim.cost.counts import layer_vector
from eyesim.dataflow.search import mapping_energy
from eyesim.errors import EyesimError
from eyesim.estimator import Target, best_mapping
from eyesim.hardware import load_hardware, with_overrides
from eyesim.mapping import Mapping, load_mapping_file
from eyesim.workload import Layer, Workload

ROOT = Path(__file__).resolve().parent.parent
ALEXNET = ROOT / "models_onnx" / "alexnet.onnx"
CHIP = ROOT / "hwconfigs" / "eyeriss.yaml"
ISCA = ROOT / "hwconfigs" / "eyeriss-isca256.yaml"
JSSC_MAPPINGS = ROOT / "hwconfigs" / "mappings" / "alexnet-jssc2017.yaml"


@pytest.fixture(scope="module")
def chip_batch4():
    return eyesim.estimate(ALEXNET, CHIP, batch=4, mapping=JSSC_MAPPINGS)


def test_chip_alexnet_mappings_are_legal_with_published_active_pes(chip_batch4):
    convs = [lr for lr in chip_batch4.layers if lr.layer.name.startswith("conv")]
    assert [lr.active_pes for lr in convs] == [154, 135, 156, 156, 156]
    assert all(lr.pinned for lr in convs)
    pinned = load_mapping_file(JSSC_MAPPINGS)
    assert [lr.mapping for lr in convs] == [pinned[f"conv{i}"] for i in range(1, 6)]


def test_searched_mapping_never_costs_more_than_the_chips(chip_batch4):
    searched = eyesim.estimate(ALEXNET, CHIP, batch=4)
    for pinned_lr, searched_lr in zip(chip_batch4.layers, searched.layers, strict=True):
        assert searched_lr.energy.total <= pinned_lr.energy.total * (1 + 1e-12)


def test_breakdowns_sum_to_the_same_total(chip_batch4):
    for lr in chip_batch4.layers:
        e = lr.energy
        assert sum(e.by_level.values()) == pytest.approx(sum(e.by_type.values()), rel=1e-12)
        assert e.by_type["comp"] == e.by_level["mac"] == e.macs  # 16-bit MAC = 1
    total = chip_batch4.total()
    assert total["energy"]["total"] == pytest.approx(sum(lr.energy.total for lr in chip_batch4.layers))
    assert total["macs"] == 4 * 724_406_816


def test_json_schema(chip_batch4, tmp_path):
    out = tmp_path / "r.json"
    chip_batch4.write(out)
    data = json.loads(out.read_text())
    assert set(data) >= {"model", "hardware", "batch", "units", "layers", "not_modelled", "total"}
    layer = data["layers"][0]
    assert set(layer["shape"]) >= set("NGCMHWRSEFU")
    assert set(layer["mapping"]) == set("mnepqrt")
    assert set(layer["accesses"]) == {"dram", "glb", "array", "rf"}
    assert set(layer["accesses"]["glb"]) == {"weights", "ifmap", "psum"}
    assert set(layer["accesses"]["glb"]["psum"]) == {"reads", "writes"}
    assert set(layer["energy"]["by_level"]) == {"dram", "glb", "array", "rf", "mac"}
    assert set(layer["energy"]["by_type"]) == {"weights", "ifmap", "ofmap", "comp"}
    assert data["hardware"]["provenance"]["dram"].startswith("Chen")
    assert {"op": "MaxPool", "reason": "no MACs"}.items() <= data["not_modelled"][2].items()


def test_csv_is_the_flattened_json(chip_batch4, tmp_path):
    out = tmp_path / "r.csv"
    chip_batch4.write(out)
    import pandas as pd

    frame = pd.read_csv(out)
    assert list(frame["name"]) == [lr.layer.name for lr in chip_batch4.layers] + ["TOTAL"]
    for col in ("energy_dram", "energy_glb", "energy_array", "energy_rf", "energy_mac", "energy_weights",
                "energy_ifmap", "energy_ofmap", "energy_comp", "energy_total", "macs", "active_pes",
                "dram_weights_reads", "glb_psum_writes", "rf_ifmap_reads"):
        assert col in frame.columns
    total = frame[frame["name"] == "TOTAL"].iloc[0]
    assert total["energy_total"] == pytest.approx(chip_batch4.total()["energy"]["total"])
    assert total["dram_ifmap_reads"] == frame["dram_ifmap_reads"][:-1].sum()
    for col in ("compute_cycles", "setup_cycles", "dram_cycles"):
        assert total[col] == frame[col][:-1].sum() > 0
    layers = frame[:-1]
    array = layers["compute_cycles"] + layers["setup_cycles"]
    assert (layers["cycles"] == array.where(array >= layers["dram_cycles"], layers["dram_cycles"])).all()


def test_to_frame_matches_layers(chip_batch4):
    frame = chip_batch4.to_frame()
    assert len(frame) == len(chip_batch4.layers) + 1


def test_pinned_mapping_that_breaks_a_constraint_is_refused_naming_it():
    with pytest.raises(EyesimError, match="psum scratchpad"):
        eyesim.estimate(ALEXNET, CHIP, mapping={"conv3": Mapping(m=50, n=1, e=13, p=25, q=1, r=1, t=1)})
    with pytest.raises(EyesimError, match="array"):
        eyesim.estimate(ALEXNET, CHIP, mapping={"conv1": {"m": 96, "n": 1, "e": 14, "p": 16, "q": 1, "r": 1, "t": 2}})


def test_pinned_mapping_for_an_unknown_layer_is_refused():
    with pytest.raises(EyesimError, match="conv9"):
        eyesim.estimate(ALEXNET, CHIP, mapping={"conv9": Mapping(1, 1, 1, 1, 1, 1, 1)})


def test_layer_that_no_mapping_fits_names_the_binding_constraint():
    # conv1's 11-row filter cannot be placed on 8 rows, and no slice of it fits a GLB of 0.2 kB beside the filters
    small = with_overrides(load_hardware(CHIP), {"array.rows": 8, "glb.size_kb": 8.2})
    with pytest.raises(EyesimError, match="conv1.*array.*nor as slices of any rows dividing R=11"):
        eyesim.estimate(ALEXNET, small)


def test_search_cache_gives_the_same_answer_as_a_fresh_search():
    workload = eyesim.estimate(ALEXNET, ISCA, batch=2)
    target = Target.of(load_hardware(ISCA))
    for lr in workload.layers:
        mapping, _ = best_mapping(lr.layer, target)
        assert mapping == lr.mapping


def test_reported_energy_equals_the_search_objective():
    result = eyesim.estimate(ALEXNET, ISCA, batch=3)
    target = Target.of(load_hardware(ISCA))
    for lr in result.layers:
        lv = layer_vector(lr.layer)
        objective = mapping_energy(lv, target.vec, lr.mapping.vector(), df.strip_rows_table(lv), df.used_cols(lv),
                                   target.cost, target.mac_cost, np.zeros(0))
        assert lr.energy.total == pytest.approx(objective * lr.layer.G, rel=1e-12)
        assert np.all(lr.energy.counts >= 0)


def test_batch_must_be_positive():
    with pytest.raises(EyesimError, match="batch"):
        eyesim.estimate(ALEXNET, CHIP, batch=0)


def test_fully_connected_layer_taller_than_the_array_runs_flattened():
    fc = Layer("fc", "Gemm", N=1, G=1, C=16, M=10, H=6, W=6, R=6, S=6, E=1, F=1)
    small = with_overrides(load_hardware(CHIP), {"array.rows": 5})  # the 6x6 filter needs 6 rows
    (result,) = eyesim.estimate(Workload("fc", 1, (fc,)), small).layers
    assert (result.layer.C, result.layer.R, result.layer.S) == (16 * 36, 1, 1)
    assert result.energy.macs == fc.macs
    conv = Layer("conv", "Conv", N=1, G=1, C=16, M=10, H=8, W=8, R=6, S=6, E=3, F=3)  # not flattened: sliced
    (result,) = eyesim.estimate(Workload("conv", 1, (conv,)), small).layers
    assert result.slices.height <= 5 and result.energy.macs == conv.macs


def test_weights_in_a_missing_external_file_are_refused(tmp_path):
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.zeros((8, 3, 3, 3), dtype=np.float32), "w")
    graph = helper.make_graph([helper.make_node("Conv", ["x", "w"], ["y"], name="conv")], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [w])
    path = tmp_path / "m.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path,
              save_as_external_data=True, all_tensors_to_one_file=True, location="w.bin", size_threshold=0)
    (layer,) = eyesim.estimate(path, CHIP).layers
    assert layer.density.weights == 0.0 and "weights: onnx" in layer.density.source  # all-zero weights, read
    (tmp_path / "w.bin").unlink()  # never silently dense: the values are missing, and said so
    with pytest.raises(EyesimError, match="external data file 'w.bin' does not exist"):
        eyesim.estimate(path, CHIP)


def test_a_patch_embedding_taller_than_the_array_runs_as_a_1x1_conv_over_its_patches():
    """ViT-style: 16 x 16 filters at stride 16 on the chip's 12 PE rows; the same MACs as the 1 x 1 form."""
    patch = Layer("embed", "Conv", N=2, G=1, C=3, M=8, H=34, W=32, R=16, S=16, E=2, F=2, U=16, Uw=16)
    hw = load_hardware(CHIP)
    (lr,) = eyesim.estimate(Workload("vit", 2, (patch,)), hw, batch=2).layers
    ones = Layer("embed", "Conv", N=2, G=1, C=3 * 16 * 16, M=8, H=2, W=2, R=1, S=1, E=2, F=2)
    (direct,) = eyesim.estimate(Workload("vit", 2, (ones,)), hw, batch=2).layers
    assert lr.layer == ones and lr.energy.macs == patch.macs == ones.macs
    assert lr.energy.total == direct.energy.total and lr.mapping == direct.mapping
    assert "filter height 16 > 12" in " ".join(lr.outside_native)
    dilated = Layer("d", "Conv", N=1, G=1, C=3, M=8, H=46, W=46, R=16, S=16, E=1, F=1, U=16, Uw=16, Dh=2, Dw=2)
    (sliced,) = eyesim.estimate(Workload("vit", 1, (dilated,)), hw).layers  # dilated: no patches, but slices
    assert sliced.slices.height <= 12 and sliced.energy.macs == dilated.macs
