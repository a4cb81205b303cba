"""Hardware files: loading the bundled ones, round trips, overrides and every kind of bad input."""

from __future__ import annotations

import copy
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from eyesim.errors import EyesimError
from eyesim.hardware import (
    COSTS,
    NOT_GIVEN,
    hardware_from_dict,
    hardware_to_dict,
    load_hardware,
    with_overrides,
)

HWCONFIGS = Path(__file__).resolve().parents[1] / "hwconfigs"
CHIP = HWCONFIGS / "eyeriss.yaml"
ISCA = HWCONFIGS / "eyeriss-isca256.yaml"
DELETE = object()  # marks a field to remove in a variant


def chip_dict() -> dict[str, Any]:
    """The bundled chip file as a plain mapping, to derive bad variants from."""
    return yaml.safe_load(CHIP.read_text(encoding="utf-8"))


def variant(changes: dict[str, object]) -> dict[str, Any]:
    """The chip mapping with fields set (or deleted with DELETE) by dotted path."""
    data = copy.deepcopy(chip_dict())
    for path, value in changes.items():
        *parents, leaf = path.split(".")
        node = data
        for part in parents:
            node = node.setdefault(part, {})
        if value is DELETE:
            del node[leaf]
        else:
            node[leaf] = value
    return data


def write(tmp_path: Path, text: str | bytes, name: str = "bad.yaml") -> Path:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def load_error(path: Path) -> str:
    """Load ``path``, expect an EyesimError, check it is one line naming the file, return it."""
    with pytest.raises(EyesimError) as info:
        load_hardware(path)
    message = str(info.value)
    assert "\n" not in message
    assert str(path) in message
    return message


# --- the bundled files --------------------------------------------------------------------------


def test_chip_file_values() -> None:
    hw = load_hardware(CHIP)
    assert hw.source == str(CHIP)
    assert (hw.array.rows, hw.array.cols, hw.array.pes) == (12, 14, 168)
    assert not hw.rf.unified
    assert (hw.rf.filter_words, hw.rf.ifmap_words, hw.rf.psum_words) == (224, 12, 24)
    assert (hw.glb.size_kb, hw.glb.filter_kb, hw.glb.stages_filters) == (108, 8, True)
    assert hw.glb.fmap_bits == 100 * 1024 * 8
    assert (hw.dram.link_bits, hw.dram.link_mhz) == (64, 60)
    assert (hw.clock_mhz, hw.word_bits) == (200, 16)
    assert [getattr(hw.energy, cost) for cost in COSTS] == [200, 6, 2, 1, 1]


def test_isca_file_values() -> None:
    hw = load_hardware(str(ISCA))
    assert (hw.array.rows, hw.array.cols, hw.array.pes) == (16, 16, 256)
    assert hw.rf.unified
    assert hw.rf.words == 256
    assert (hw.glb.size_kb, hw.glb.filter_kb, hw.glb.stages_filters) == (128, 0, False)
    assert hw.glb.fmap_bits == 128 * 1024 * 8
    assert (hw.clock_mhz, hw.word_bits, hw.dram.link_bits, hw.dram.link_mhz) == (200, 16, 64, 60)
    assert [getattr(hw.energy, cost) for cost in COSTS] == [200, 6, 2, 1, 1]


@pytest.mark.parametrize("path", [CHIP, ISCA])
def test_bundled_files_give_provenance_for_every_figure(path: Path) -> None:
    energy = load_hardware(path).energy
    for cost in COSTS:
        assert "ISCA 2016" in energy.note(cost)
        assert energy.provenance[cost] == energy.note(cost)


def test_missing_provenance_reads_not_given() -> None:
    hw = hardware_from_dict(variant({"energy.provenance": DELETE}), "mem")
    assert all(hw.energy.note(cost) == NOT_GIVEN for cost in COSTS)
    assert hw.energy.provenance["dram"] == NOT_GIVEN


def test_filter_kb_defaults_to_zero() -> None:
    hw = hardware_from_dict(variant({"glb.filter_kb": DELETE}), "mem")
    assert hw.glb.filter_kb == 0
    assert not hw.glb.stages_filters


# --- round trips --------------------------------------------------------------------------------


@pytest.mark.parametrize("path", [CHIP, ISCA])
def test_round_trip(path: Path, tmp_path: Path) -> None:
    hw = load_hardware(path)
    data = hardware_to_dict(hw)
    assert json.loads(json.dumps(data)) == data  # plain values only
    assert hardware_from_dict(data, hw.source) == hw
    assert hardware_from_dict(data, hw.source).energy.provenance == hw.energy.provenance
    dumped = write(tmp_path, yaml.safe_dump(data, sort_keys=False), "dumped.yaml")
    assert replace(load_hardware(dumped), source=hw.source) == hw


def test_to_dict_gives_only_the_rf_layout_in_use() -> None:
    assert hardware_to_dict(load_hardware(ISCA))["rf"] == {"words": 256}
    assert set(hardware_to_dict(load_hardware(CHIP))["rf"]) == {"filter_words", "ifmap_words", "psum_words"}


@given(
    rows=st.integers(1, 64),
    cols=st.integers(1, 64),
    words=st.integers(1, 4096),
    size_kb=st.floats(0.5, 4096, allow_nan=False),
    ratio=st.floats(0, 0.99),
    word_bits=st.integers(1, 32),
    dram=st.floats(1e-3, 1e4),
)
def test_round_trip_any_valid(
    rows: int, cols: int, words: int, size_kb: float, ratio: float, word_bits: int, dram: float
) -> None:
    data = variant(
        {
            "array.rows": rows,
            "array.cols": cols,
            "rf": {"words": words},
            "glb.size_kb": size_kb,
            "glb.filter_kb": size_kb * ratio,
            "word_bits": word_bits,
            "energy.dram": dram,
        }
    )
    hw = hardware_from_dict(data, "mem")
    assert hardware_from_dict(hardware_to_dict(hw), "mem") == hw


# --- overrides ----------------------------------------------------------------------------------


def test_overrides_replace_values() -> None:
    hw = load_hardware(CHIP)
    new = with_overrides(hw, {"glb.size_kb": 64, "array.rows": 16, "energy.dram": 150})
    assert (new.glb.size_kb, new.array.rows, new.energy.dram) == (64, 16, 150)
    assert (new.array.cols, new.glb.filter_kb, new.energy.glb) == (14, 8, 6)
    assert new.source == hw.source
    assert hw.glb.size_kb == 108  # the original is untouched
    assert with_overrides(hw, {}) == hw


def test_override_provenance_and_name() -> None:
    new = with_overrides(load_hardware(CHIP), {"energy.provenance.dram": "my own measurement", "name": "mine"})
    assert new.energy.note("dram") == "my own measurement"
    assert new.name == "mine"


def test_override_switches_rf_layout() -> None:
    unified = with_overrides(load_hardware(CHIP), {"rf.words": 512})
    assert unified.rf.unified
    assert unified.rf.words == 512
    assert unified.rf.filter_words is None
    split = {"rf.filter_words": 100, "rf.ifmap_words": 10, "rf.psum_words": 20}
    assert not with_overrides(load_hardware(ISCA), split).rf.unified


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        ({"glb.sizekb": 64}, "unknown field glb.sizekb (did you mean glb.size_kb?)"),
        ({"array.depth": 3}, "unknown field array.depth"),
        ({"rows": 3}, "unknown field rows (did you mean array.rows?)"),
        ({"glb": 3}, "unknown field glb"),
    ],
)
def test_override_unknown_path(overrides: dict[str, object], needle: str) -> None:
    with pytest.raises(EyesimError, match="with overrides") as info:
        with_overrides(load_hardware(CHIP), overrides)
    assert needle in str(info.value)
    assert str(CHIP) in str(info.value)


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        ({"glb.size_kb": -4}, "glb.size_kb must be at least 0.001 and at most 1e+09, got -4"),
        ({"glb.size_kb": 8}, "glb.filter_kb must be < glb.size_kb (8), got 8"),
        ({"array.rows": 12.5}, "array.rows must be an integer, got 12.5"),
        ({"energy.dram": "150"}, "energy.dram must be a number, got '150'"),
        ({"rf.filter_words": 100}, "missing required field rf.ifmap_words"),
    ],
)
def test_override_invalid_value(overrides: dict[str, object], needle: str) -> None:
    with pytest.raises(EyesimError) as info:
        with_overrides(load_hardware(ISCA if "rf.filter_words" in overrides else CHIP), overrides)
    message = str(info.value)
    assert needle in message
    assert "(with overrides)" in message
    assert "\n" not in message


# --- bad files: each is one EyesimError line naming the file and the field ----------------------

BAD_VALUES: list[tuple[dict[str, object], str]] = [
    ({"glb.size_kb": -4}, "glb.size_kb must be at least 0.001 and at most 1e+09, got -4"),
    ({"glb.size_kb": 0}, "glb.size_kb must be at least 0.001 and at most 1e+09, got 0"),
    ({"clock_mhz": 0}, "clock_mhz must be at least 0.001 and at most 1e+06"),
    ({"clock_mhz": -200}, "clock_mhz must be at least 0.001 and at most 1e+06"),
    ({"clock_mhz": True}, "clock_mhz must be a number, got True"),
    ({"array.rows": 0}, "array.rows must be at least 1 and at most 65536"),
    ({"array.rows": 12.5}, "array.rows must be an integer"),
    ({"array.rows": 12.0}, "array.rows must be an integer"),
    ({"array.cols": True}, "array.cols must be an integer, got True"),
    ({"array.cols": "14"}, "array.cols must be an integer, got '14'"),
    ({"array.cols": None}, "array.cols must be an integer, got nothing"),
    ({"array.cols": [14]}, "array.cols must be an integer"),
    ({"rf.filter_words": 0}, "rf.filter_words must be at least 1"),
    ({"rf.psum_words": 2.5}, "rf.psum_words must be an integer"),
    ({"rf": {"words": -1}}, "rf.words must be at least 1 and at most 16777216"),
    ({"word_bits": 0}, "word_bits must be at least 1 and at most 32, got 0"),
    ({"word_bits": 33}, "word_bits must be at least 1 and at most 32, got 33"),
    ({"word_bits": 16.0}, "word_bits must be an integer"),
    ({"word_bits": False}, "word_bits must be an integer, got False"),
    ({"dram.link_bits": 0}, "dram.link_bits must be at least 1 and at most 65536"),
    ({"dram.link_bits": 64.5}, "dram.link_bits must be an integer"),
    ({"dram.link_mhz": -60}, "dram.link_mhz must be at least 0.001"),
    ({"energy.dram": 0}, "energy.dram must be at least 1e-06 and at most 1e+09, got 0"),
    ({"energy.glb": -6}, "energy.glb must be at least 1e-06"),
    ({"energy.array": "2"}, "energy.array must be a number, got '2' (given as text"),
    ({"energy.array": "two"}, "energy.array must be a number, got 'two'"),
    ({"energy.rf": True}, "energy.rf must be a number, got True"),
    ({"energy.mac": 0}, "energy.mac must be at least 1e-06"),
    ({"energy.dram": float("inf")}, "energy.dram must be a finite number"),
    ({"energy.dram": float("nan")}, "energy.dram must be a finite number"),
    ({"glb.size_kb": 10**400}, "glb.size_kb must be at least 0.001 and at most 1e+09, got an integer of 333 hex"),
    ({"energy.provenance.dram": 5}, "energy.provenance.dram must be a non-empty string"),
    ({"name": ""}, "name must be a non-empty string"),
    ({"name": 7}, "name must be a non-empty string, got 7"),
    ({"glb.filter_kb": -1}, "glb.filter_kb must be at least 0 and at most 1e+09, got -1"),
    ({"glb.filter_kb": 108}, "glb.filter_kb must be < glb.size_kb (108), got 108"),
    ({"glb.filter_kb": 200}, "glb.filter_kb must be < glb.size_kb (108), got 200"),
    # missing required fields
    ({"name": DELETE}, "missing required field name"),
    ({"clock_mhz": DELETE}, "missing required field clock_mhz"),
    ({"word_bits": DELETE}, "missing required field word_bits"),
    ({"array.rows": DELETE}, "missing required field array.rows"),
    ({"glb.size_kb": DELETE}, "missing required field glb.size_kb"),
    ({"dram": DELETE}, "missing required field dram.link_bits"),
    ({"dram.link_mhz": DELETE}, "missing required field dram.link_mhz"),
    ({"energy.glb": DELETE}, "missing required field energy.glb"),
    ({"energy": DELETE}, "missing required field energy.dram"),
    ({"array": None}, "missing required field array.rows"),
    # register file layout
    ({"rf": {}}, "missing required field rf.words"),
    ({"rf.psum_words": DELETE}, "missing required field rf.psum_words"),
    ({"rf.words": 256}, "rf must give either words (unified) or the three split fields, not both"),
    ({"rf": {"words": 256, "psum_words": 24}}, "got rf.words, rf.psum_words"),
    # unknown keys, at any depth, with a suggestion
    ({"colck_mhz": 200}, "unknown key colck_mhz (did you mean clock_mhz?)"),
    ({"glb.sizekb": 108}, "unknown key glb.sizekb (did you mean glb.size_kb?)"),
    ({"rf.filter_word": 224}, "unknown key rf.filter_word (did you mean rf.filter_words?)"),
    ({"energy.sram": 6}, "unknown key energy.sram"),
    ({"energy.prov": {}}, "unknown key energy.prov (did you mean energy.provenance?)"),
    ({"energy.provenance.dramm": "x"}, "unknown key energy.provenance.dramm (did you mean energy.provenance.dram?)"),
    ({"array.depth": 3}, "unknown key array.depth (known here: cols, rows)"),
    ({"rows": 12}, "unknown key rows (did you mean array.rows?)"),
    ({"source": "x"}, "unknown key source"),
    # sections that are not mappings
    ({"array": [12, 14]}, "array must be a mapping of fields, got [12, 14]"),
    ({"glb": 108}, "glb must be a mapping of fields, got 108"),
    ({"energy.provenance": "ISCA"}, "energy.provenance must be a mapping of fields"),
]


@pytest.mark.parametrize(("changes", "needle"), BAD_VALUES, ids=[needle for _, needle in BAD_VALUES])
def test_bad_value(tmp_path: Path, changes: dict[str, object], needle: str) -> None:
    path = write(tmp_path, yaml.safe_dump(variant(changes), sort_keys=False))
    message = load_error(path)
    assert message.startswith(f"{path}: ")
    assert needle in message


@pytest.mark.parametrize(("changes", "needle"), BAD_VALUES, ids=[needle for _, needle in BAD_VALUES])
def test_bad_value_from_dict(changes: dict[str, object], needle: str) -> None:
    with pytest.raises(EyesimError, match=r"^hw\.yaml: ") as info:
        hardware_from_dict(variant(changes), "hw.yaml")
    assert needle in str(info.value)


BAD_FILES: list[tuple[str | bytes, str]] = [
    ("array: [12, 14\nname: x\n", "not valid YAML at line 2"),
    ("name: x\n\tclock_mhz: 200\n", "not valid YAML at line 2"),
    ("name: a: b\n", "not valid YAML at line 1"),
    ("name: x\n---\nname: y\n", "not valid YAML at line 2, column 1: expected a single document"),
    ("name: x\nglb: {size_kb: 8}\nglb: {size_kb: 9}\n", "line 3, column 1: duplicate key 'glb'"),
    ("glb: {size_kb: 8, size_kb: 9}\n", "duplicate key 'size_kb'"),
    ("- 12\n- 14\n", "top level must be a mapping of hardware fields, got [12, 14]"),
    ("just some text\n", "top level must be a mapping of hardware fields, got 'just some text'"),
    ("", "top level must be a mapping of hardware fields, got nothing"),
    ("# only a comment\n", "top level must be a mapping of hardware fields, got nothing"),
    (b"\xff\xfe\x00name: x\x81\n", "not a text file"),
]


@pytest.mark.parametrize(("text", "needle"), BAD_FILES, ids=[needle for _, needle in BAD_FILES])
def test_bad_file(tmp_path: Path, text: str | bytes, needle: str) -> None:
    assert needle in load_error(write(tmp_path, text))


def test_missing_file(tmp_path: Path) -> None:
    assert "hardware file not found" in load_error(tmp_path / "nope.yaml")


def test_directory(tmp_path: Path) -> None:
    assert "is a directory" in load_error(tmp_path)


def test_yaml_exponent_without_dot_is_text(tmp_path: Path) -> None:
    chip = CHIP.read_text(encoding="utf-8")
    text = chip.replace("  dram: 200 ", "  dram: 2e2 ")
    assert text != chip
    assert "energy.dram must be a number, got '2e2' (given as text" in load_error(write(tmp_path, text))


def test_yaml_merge_keys_are_not_duplicates(tmp_path: Path) -> None:
    chip = CHIP.read_text(encoding="utf-8")
    text = chip.replace("array:\n  rows: 12\n  cols: 14\n", "array:\n  <<: {rows: 1, cols: 14}\n  rows: 12\n")
    assert text != chip
    assert load_hardware(write(tmp_path, text)).array.rows == 12


def test_direct_construction_is_validated() -> None:
    hw = load_hardware(CHIP)
    with pytest.raises(EyesimError, match=r"^hardware: array.rows must be at least 1 and at most 65536, got 0$"):
        replace(hw, source="", array=replace(hw.array, rows=0))
