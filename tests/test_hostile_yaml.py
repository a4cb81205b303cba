"""Hostile YAML and hostile numbers: alias bombs, deep nesting and huge files in every YAML input (hardware,
pinned mapping, sweep spec, ``--set``); out-of-range hardware fields; wrong pinned mappings; sweep grids too
large to list and hostile range syntax. Each is one line, exit 2, in bounded time and memory (tests/hostile.py).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from eyesim.errors import EyesimError
from eyesim.estimator import estimate as estimate_in_process
from eyesim.hardware import load_hardware
from eyesim.hardware.schema import FIELDS
from eyesim.sweep.grid import MAX_CONFIGS, build_grid
from eyesim.yamlio import MAX_BYTES, MAX_DEPTH, MAX_NODES, parse_yaml
from tests.hostile import run_cli

ROOT = Path(__file__).resolve().parent.parent
CHIP = ROOT / "hwconfigs" / "eyeriss.yaml"
ALEXNET = str(ROOT / "models_onnx" / "alexnet.onnx")
PIN = "{m: 96, n: 1, e: 7, p: 16, q: 1, r: 1, t: 2}"  # conv1's mapping on the chip (JSSC 2017)


def laughs(levels: int = 9, width: int = 9) -> str:
    """A flow list defining ``levels`` anchors, each ``width`` aliases of the one before: width**levels values."""
    names = [f"l{i}" for i in range(levels)]
    items = [f"&{names[0]} [{', '.join(['lol'] * width)}]"]
    items += [f"&{name} [{', '.join([f'*{prev}'] * width)}]" for prev, name in zip(names[:-1], names[1:], strict=True)]
    return f"[{', '.join(items)}]"


# Hostile YAML values, each placed where a value belongs in every kind of file; all are small but the first.
BOMBS = {
    "billion laughs": laughs(),
    "laughs with scalars": "[&a lol, &b [*a, *a, *a, *a, *a, *a, *a, *a], &c [*b, *b, *b, *b, *b, *b, *b, *b], "
                           "&d [*c, *c, *c, *c, *c, *c, *c, *c], &e [*d, *d, *d, *d, *d, *d, *d, *d], "
                           "&f [*e, *e, *e, *e, *e, *e, *e, *e], &g [*f, *f, *f, *f, *f, *f, *f, *f]]",
    "mapping laughs": "[&a {x: 1, y: 2, z: 3, w: 4}, " + ", ".join(
        f"&{c} {{{', '.join(f'{k}: *{p}' for k in 'xyzwvuts')}}}"
        for p, c in zip("abcdefg", "bcdefgh", strict=True)) + "]",
    "merge-key laughs": "[&a {x: 1}, " + ", ".join(
        f"&{c} {{<<: [{', '.join([f'*{p}'] * 8)}], k{c}: [{', '.join([f'*{p}'] * 8)}]}}"
        for p, c in zip("abcdefgh", "bcdefghi", strict=True)) + "]",
    "flow nesting 100000 deep": "[" * 100_000 + "]" * 100_000,
    "mapping nesting 100000 deep": "{a: " * 100_000 + "}" * 100_000,
    "recursive alias": "&r [1, *r]",
    "200000 values": "[" + ",".join(["1"] * 200_000) + "]",
    "integer of 5000 digits": "9" * 5000,
    "impossible date": "2023-02-30",
    "python tag": "!!python/object/apply:os.system [echo hi]",
}
NEEDLES = {"billion laughs": "aliases", "laughs with scalars": "aliases", "mapping laughs": "aliases",
           "merge-key laughs": "aliases", "flow nesting 100000 deep": "nest", "mapping nesting 100000 deep": "nest",
           "recursive alias": "contains it", "200000 values": "100000", "integer of 5000 digits": "not valid YAML",
           "impossible date": "not valid YAML", "python tag": "not valid YAML"}


@pytest.fixture(scope="module", autouse=True)
def _compiled_kernels() -> None:
    """Compile the legality kernel once here, so a forked case measures its own work, not Numba's."""
    with pytest.raises(EyesimError, match="breaks the constraint"):
        estimate_in_process(ALEXNET, CHIP, mapping={"conv1": dict(m=96, n=1, e=7, p=16, q=4, r=1, t=2)})


def hw_with(tmp_path: Path, old: str, new: str, name: str = "hw.yaml") -> Path:
    text = CHIP.read_text(encoding="utf-8")
    assert old in text
    path = tmp_path / name
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    return path


def estimate(*args: str, watch: Path):
    return run_cli(["estimate", ALEXNET, *args], watch=watch)


def sweep(tmp_path: Path, *args: str):
    return run_cli(["sweep", ALEXNET, "--hw", str(CHIP), *args, "-o", str(tmp_path / "s.parquet"),
                    "--workers", "1", "--quiet"], watch=tmp_path)


# --- every YAML input is bounded before it is built ------------------------------------------------------------


@pytest.mark.parametrize("bomb", BOMBS)
def test_bomb_in_a_hardware_file(tmp_path: Path, bomb: str) -> None:
    path = hw_with(tmp_path, "clock_mhz: 200", f"clock_mhz: {BOMBS[bomb]}")
    estimate("--hw", str(path), watch=tmp_path).refused(str(path), NEEDLES[bomb])


@pytest.mark.parametrize("bomb", BOMBS)
def test_bomb_as_a_layers_mapping(tmp_path: Path, bomb: str) -> None:
    path = tmp_path / "map.yaml"
    path.write_text(f"conv2: {PIN}\nconv1: {BOMBS[bomb]}\n", encoding="utf-8")
    estimate("--hw", str(CHIP), "--mapping", str(path), watch=tmp_path).refused(str(path), NEEDLES[bomb])


@pytest.mark.parametrize("bomb", BOMBS)
def test_bomb_in_a_sweep_spec_vary_list(tmp_path: Path, bomb: str) -> None:
    path = tmp_path / "spec.yaml"
    path.write_text(f"vary:\n  glb.size_kb: {BOMBS[bomb]}\n", encoding="utf-8")
    sweep(tmp_path, "--spec", str(path)).refused(str(path), NEEDLES[bomb])


@pytest.mark.parametrize("bomb", [b for b in BOMBS if b != "200000 values"])
def test_bomb_as_a_set_value(tmp_path: Path, bomb: str) -> None:
    estimate("--hw", str(CHIP), "--set", f"clock_mhz={BOMBS[bomb]}", watch=tmp_path).refused(
        "--set clock_mhz", NEEDLES[bomb])


@pytest.mark.parametrize("what", ["hardware", "mapping", "spec"])
def test_files_over_the_size_limit(tmp_path: Path, what: str) -> None:
    path = tmp_path / "big.yaml"
    path.write_text("# padding\n" * (MAX_BYTES // 10 + 1) + "name: x\n", encoding="utf-8")
    size = str(path.stat().st_size)
    if what == "hardware":
        out = estimate("--hw", str(path), watch=tmp_path)
    elif what == "mapping":
        out = estimate("--hw", str(CHIP), "--mapping", str(path), watch=tmp_path)
    else:
        out = sweep(tmp_path, "--spec", str(path))
    out.refused(str(path), size, str(MAX_BYTES))


def test_endless_file_is_read_only_up_to_the_limit(tmp_path: Path) -> None:
    estimate("--hw", "/dev/zero", watch=tmp_path).refused("/dev/zero", "over the limit")


def test_aliases_and_merge_keys_within_the_limits_still_work(tmp_path: Path) -> None:
    text = CHIP.read_text(encoding="utf-8").replace("clock_mhz: 200", "clock_mhz: &clock 200")
    text = text.replace("  link_mhz: 60", "  link_mhz: *clock").replace("  rows: 12\n  cols: 14\n",
                                                                      "  <<: {rows: 12, cols: 14}\n")
    hw = load_hardware(_write(tmp_path / "hw.yaml", text))
    assert (hw.dram.link_mhz, hw.array.rows, hw.array.cols) == (200, 12, 14)
    data = parse_yaml("a: &a {x: [1, 2]}\nb: {<<: *a, y: *a}\nc: [*a, *a]\n", "mem")
    assert data["b"] == {"x": [1, 2], "y": {"x": [1, 2]}} and data["c"] == [{"x": [1, 2]}] * 2


def test_limits_are_exact() -> None:
    parse_yaml("[" * MAX_DEPTH + "]" * MAX_DEPTH, "mem")
    with pytest.raises(EyesimError, match=f"nested over {MAX_DEPTH} deep"):
        parse_yaml("[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1), "mem")
    parse_yaml("[" + ",".join(["1"] * (MAX_NODES - 1)) + "]", "mem")  # the list itself is a value too
    with pytest.raises(EyesimError, match=f"more than {MAX_NODES} YAML values"):
        parse_yaml("[" + ",".join(["1"] * MAX_NODES) + "]", "mem")
    assert parse_yaml("a: &x [1, 2, 3]\nb: *x\n", "mem") == {"a": [1, 2, 3], "b": [1, 2, 3]}


def test_yaml_is_read_only_in_yamlio() -> None:
    """Every YAML input goes through the bounded reader: no other module imports yaml."""
    for path in (ROOT / "eyesim").rglob("*.py"):
        if path.name != "yamlio.py":
            assert not re.search(r"^\s*(import yaml|from yaml)", path.read_text(encoding="utf-8"), re.M), path


# --- hardware numbers: every numeric field has a sane range ----------------------------------------------------

NUMERIC = [path for path, rule in FIELDS.items() if rule.kind in (int, float)]
BEYOND = {  # a value just outside each end of the range, as YAML text
    "low": lambda rule: "0" if rule.low > 0 else "-1",
    "high": lambda rule: str(int(rule.high) * 2) if rule.kind is int else "1.0e+300",
}


@pytest.mark.parametrize("path", NUMERIC)
@pytest.mark.parametrize("end", BEYOND)
def test_every_numeric_field_out_of_range(tmp_path: Path, path: str, end: str) -> None:
    rule = FIELDS[path]
    value = BEYOND[end](rule)
    estimate("--hw", str(CHIP), "--set", f"{path}={value}", watch=tmp_path).refused(
        f"{path} must be at least", "and at most", f"got {value.replace('1.0e+300', '1e+300')}")


@pytest.mark.parametrize(("old", "new", "needles"), [
    ("link_mhz: 60", "link_mhz: 1.0e-300", ("dram.link_mhz must be at least 0.001", "got 1e-300")),
    ("  dram: 200 ", "  dram: 1.0e+308 ", ("energy.dram must be at least", "at most 1e+09", "got 1e+308")),
    ("  dram: 200 ", "  dram: 1e308 ", ("energy.dram must be a number, got '1e308'", "given as text")),
    ("  dram: 200 ", "  dram: .inf ", ("energy.dram must be a finite number, got inf",)),
    ("  dram: 200 ", "  dram: .nan ", ("energy.dram must be a finite number, got nan",)),
    ("  mac: 1 ", "  mac: 5.0e-324 ", ("energy.mac must be at least 1e-06", "got 5e-324")),
    ("clock_mhz: 200", "clock_mhz: -.inf", ("clock_mhz must be a finite number",)),
    ("clock_mhz: 200", "clock_mhz: 1.0e-300", ("clock_mhz must be at least 0.001", "got 1e-300")),
    ("rows: 12", "rows: 99999999999999999999999999999999", ("array.rows must be at least 1 and at most 65536",)),
    ("rows: 12", "rows: -12", ("array.rows must be at least 1", "got -12")),
    ("rows: 12", "rows: true", ("array.rows must be an integer, got True",)),
    ("rows: 12", "rows: 12.0", ("array.rows must be an integer, got 12.0",)),
    ("rows: 12", "rows: '12'", ("array.rows must be an integer, got '12' (given as text",)),
    ("rows: 12", "rows: [12]", ("array.rows must be an integer, got [12]",)),
    ("rows: 12", "rows: {a: 1}", ("array.rows must be an integer, got {'a': 1}",)),
    ("rows: 12", "rows: ~", ("array.rows must be an integer, got nothing",)),
    ("rows: 12", "rows: 0x7fffffffffffffff", ("array.rows must be at least 1 and at most 65536",)),
    ("filter_words: 224", "filter_words: 9223372036854775807", ("rf.filter_words must be at least 1 and at most",)),
    ("size_kb: 108", "size_kb: 1.0e+16", ("glb.size_kb must be at least 0.001 and at most 1e+09",)),
    ("size_kb: 108", f"size_kb: [{', '.join(['1'] * 5000)}]", ("glb.size_kb must be a number, got [1, 1, 1",)),
    ("filter_kb: 8", "filter_kb: -0.5", ("glb.filter_kb must be at least 0 and at most 1e+09", "got -0.5")),
    ("link_bits: 64", "link_bits: 1.0e+3", ("dram.link_bits must be an integer",)),
    ("word_bits: 16", "word_bits: 64", ("word_bits must be at least 1 and at most 32, got 64",)),
    ("pj_per_unit: 1.2", "pj_per_unit: 0.0", ("energy.pj_per_unit must be at least 1e-06",)),
    ("name: Eyeriss chip (ISSCC 2016 / JSSC 2017)", "name: " + "x" * 500_000 + ": 1",
     ("not valid YAML",)),
    ("clock_mhz: 200", "clock_mhz: 200\n? " + "k" * 300_000 + "\n: 1",
     ("unknown key kkkkkkkkk", "...")),
])
def test_hardware_file_numbers(tmp_path: Path, old: str, new: str, needles: tuple[str, ...]) -> None:
    path = hw_with(tmp_path, old, new)
    out = estimate("--hw", str(path), watch=tmp_path)
    out.refused(str(path), *needles)
    assert len(out.stderr) < 1000


# --- pinned mapping files ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "needles"), [
    ("conv1: {m: '96', n: 1, e: 7, p: 16, q: 1, r: 1, t: 2}", ("conv1: mapping m must be a whole number", "'96'")),
    ("conv1: {m: 96.0, n: 1, e: 7, p: 16, q: 1, r: 1, t: 2}", ("mapping m must be a whole number", "96.0")),
    ("conv1: {m: true, n: 1, e: 7, p: 16, q: 1, r: 1, t: 2}", ("mapping m must be a whole number", "True")),
    ("conv1: {m: ~, n: 1, e: 7, p: 16, q: 1, r: 1, t: 2}", ("mapping m must be a whole number", "None")),
    ("conv1: {m: [96], n: 1, e: 7, p: 16, q: 1, r: 1, t: 2}", ("mapping m must be a whole number", "[96]")),
    ("conv1: {m: 96, n: 0, e: 7, p: 16, q: 1, r: 1, t: 2}", ("mapping n must be a whole number from 1 to",)),
    ("conv1: {m: 96, n: 1, e: -7, p: 16, q: 1, r: 1, t: 2}", ("mapping e must be a whole number", "-7")),
    ("conv1: {m: 96, n: 1, e: 7, p: 2147483648, q: 1, r: 1, t: 2}", ("mapping p must be", "2147483647")),
    ("conv1: {m: 96, n: 1, e: 7, p: 16, q: 1, r: 1, t: 99999999999999999999999999999}", ("mapping t must be",)),
    ("conv1: {m: 96, n: 1, e: 7, p: 16, q: 2147483647, r: 2147483647, t: 2}", ("breaks the constraint", "q*r")),
    ("conv1: {m: 96, n: 1, e: 7, p: 16, q: 1, r: 1, t: 2, u: 3}", ("unknown key u",)),
    ("conv1: {m: 96, n: 1}", ("missing e, p, q, r, t",)),
    ("conv1: [96, 1, 7, 16, 1, 1, 2]", ("conv1: expected {m, n, e, p, q, r, t}, got [96, 1, 7",)),
    ("conv1: 96", ("conv1: expected {m, n, e, p, q, r, t}, got 96",)),
    ("- conv1\n- conv2\n", ("expected a mapping of layer names",)),
    ("", ("expected a mapping of layer names", "got None")),
    ("? [a, b]\n: " + PIN, ("not valid YAML", "unhashable")),
    ("~: " + PIN, ("None is not a layer name",)),
    ('"conv1\\nconv2": ' + PIN, ("'conv1\\nconv2' is not a layer name",)),
    ('"\\e[31mred": ' + PIN, ("is not a layer name",)),
    ("nosuchlayer: " + PIN, ("names layer(s) nosuchlayer that model",)),
    ("".join(f"layer{i}_{'x' * 80}: {PIN}\n" for i in range(500)), ("names layer(s) layer0_", "and 495 more")),
    ("conv1: " + PIN + "\nconv1: " + PIN, ("duplicate key 'conv1'",)),
    ("conv1: {m: 96, n: 1, e: 7, p: 16, q: 1, r: 1, t: 2, " + ", ".join(f"k{i}: 1" for i in range(3000)) + "}",
     ("unknown key k0 ",)),
])
def test_pinned_mapping_files(tmp_path: Path, text: str, needles: tuple[str, ...]) -> None:
    path = tmp_path / "map.yaml"
    path.write_text(text, encoding="utf-8")
    out = estimate("--hw", str(CHIP), "--mapping", str(path), watch=tmp_path)
    out.refused(*needles)
    assert len(out.stderr) < 1000


# --- sweep grids: refused over the limit before anything is listed; hostile ranges ------------------------------


@pytest.mark.parametrize(("vary", "needles"), [
    (("glb.size_kb=1:1000", "rf.filter_words=1:1000", "clock_mhz=1:1000"),
     ("would be 1,000,000,000 configurations", "1,000 glb.size_kb x 1,000 rf.filter_words x 1,000 clock_mhz",
      "--max-configs")),
    (("clock_mhz=1:1000000",), ("would be 1,000,000 configurations",)),  # with --max-configs 999,999 below
    (("glb.size_kb=1:1000000000",), ("would be 1,000,000,000 configurations (1,000,000,000 glb.size_kb)",)),
    (("glb.size_kb=1:1000000000:1.0e-20",), ("configurations (99,999,999,900,000,000,000,000,000,001 glb.size_kb)",)),
    (("array=12x14,16x16", "rf.words=1:16777216", "energy.dram=1:1000000000"),
     ("configurations (2 array.rows/array.cols x 16,777,216 rf.words x 1,000,000,000 energy.dram)",)),
    (("glb.size_kb=1:1000:0",), ("has no values (step must be > 0)",)),
    (("glb.size_kb=1:1000:-1",), ("has no values (step must be > 0)",)),
    (("glb.size_kb=1000:1",), ("has no values (start is above stop)",)),
    (("rf.words=1:1000:0.5",), ("rf.words takes integers, got range 1:1000:0.5",)),
    (("rf.words=1.5:1000",), ("rf.words takes integers",)),
    (("rf.words=1:2:3:4",), ("must be start:stop or start:stop:step",)),
    (("glb.size_kb=1:nan",), ("nan is not a finite number",)),
    (("glb.size_kb=-inf:1",), ("is not a finite number",)),
    (("glb.size_kb=1e999999999",), ("too large or too precise",)),
    (("glb.size_kb=1:1000:1e-999999999",), ("too large or too precise",)),
    (("glb.size_kb=" + "9" * 100_000,), ("too large or too precise",)),
    (("glb.size_kb=0.000000000000000000000000000000000001:1",), ("too large or too precise",)),
    (("glb.size_kb=1e12",), ("glb.size_kb must be at least 0.001 and at most 1e+09",)),
    (("glb.size_kb=0:10",), ("glb.size_kb must be at least 0.001",)),
    (("clock_mhz=1.0e-300",), ("too large or too precise",)),
    (("energy.dram=1:1e300",), ("too large or too precise",)),
    (("energy.dram=2000000000",), ("energy.dram must be at least 1e-06 and at most 1e+09",)),
    (("array.rows=0:4",), ("array.rows must be at least 1",)),
    (("array=0x14",), ("array.rows must be at least 1",)),
    (("array=12x1e9",), ("array.cols must be at least 1 and at most 65536",)),
    (("array=12",), ("ROWSxCOLS",)),
    (("batch=0",), ("batch sizes must be at least 1",)),
    (("batch=1:10000000000",), ("batch sizes must be at least 1 and at most 2147483647",)),
    (("batch=true",), ("is not a number",)),
    (("name=1",), ("not a numeric field",)),
    (("x" * 100_000 + "=1",), ("unknown field xxxx", "...")),
])
def test_hostile_grids(tmp_path: Path, vary: tuple[str, ...], needles: tuple[str, ...]) -> None:
    args = [arg for text in vary for arg in ("--vary", text)]
    if vary == ("clock_mhz=1:1000000",):
        args += ["--max-configs", "999999"]
    out = sweep(tmp_path, *args)
    out.refused(*needles)
    assert len(out.stderr) < 1000


@pytest.mark.parametrize(("spec", "needles"), [
    ("vary:\n  glb.size_kb: {from: 1, to: 1000000000}\n  clock_mhz: [1, 2]\n", ("2,000,000,000 configurations",)),
    ("vary:\n  glb.size_kb: {from: 1, to: 1000, step: 0}\n", ("step must be > 0",)),
    ("vary:\n  glb.size_kb: {from: 1, to: .inf}\n", ("not a finite number",)),
    ("vary:\n  glb.size_kb: {from: [1], to: 3}\n", ("[1] is not a number",)),
    ("vary:\n  glb.size_kb: {from: 1, to: 3, by: 1}\n", ("a range mapping has keys from, to",)),
    ("vary:\n  glb.size_kb: [1, [2, [3, {from: 1, to: 1.0e+300}]]]\n", ("too large or too precise",)),
    ("vary:\n  glb.size_kb: [true]\n", ("expected numbers, ranges or lists, got True",)),
    ("vary:\n  glb.size_kb: ~\n", ("expected numbers, ranges or lists, got None",)),
    ("vary:\n  g:\n" + "".join(f"    - {{rf.ifmap_words: {i}, rf.psum_words: 24}}\n" for i in range(1, 1200))
     + "  clock_mhz: '1:1000'\n", ("1,199,000 configurations",)),
    ("vary:\n  g: [{rf.ifmap_words: 12}, {rf.psum_words: 24}]\n", ("every entry of a group must set the same fields",)),
    ("vary:\n  g: [{rf.ifmap_words: .nan}]\n", ("not a finite number",)),
    ("vary:\n  g: [{rf.ifmap_words: 99999999999}]\n", ("rf.ifmap_words must be at least 1 and at most 16777216",)),
    ("vary:\n  glb.size_kb: [32]\narea: {slope: 1.0e+308}\n", ("area.slope must be at least 0 and at most 1",)),
    ("vary:\n  glb.size_kb: [32]\narea: {ref_bytes: 0}\n", ("area.ref_bytes must be at least 0.001",)),
    ("vary:\n  glb.size_kb: [32]\narea: {compute_um2_per_pe: .inf}\n", ("area.compute_um2_per_pe must be a finite",)),
    ("vary:\n  glb.size_kb: [32]\narea: [1, 2]\n", ("area must be a mapping of constants",)),
    ("vary:\n  glb.size_kb: [32]\n? " + "z" * 200_000 + "\n: 1\n", ("unknown key", "...")),
    ("vary: [1, 2]\n", ("a sweep spec is a mapping with a non-empty 'vary:'",)),
    ('vary:\n  "glb.size_kb\\nrf.words": [1]\n', ("unknown field 'glb.size_kb\\nrf.words'",)),
    ('vary:\n  glb.size_kb: ["1\\n2"]\n', ("'1\\n2' is not a number",)),
])
def test_hostile_sweep_specs(tmp_path: Path, spec: str, needles: tuple[str, ...]) -> None:
    path = tmp_path / "spec.yaml"
    path.write_text(spec, encoding="utf-8")
    out = sweep(tmp_path, "--spec", str(path))
    out.refused(*needles)
    assert len(out.stderr) < 1000


def test_max_configs_raises_the_limit_without_listing_more_than_asked() -> None:
    vary = ("glb.size_kb=1:2000", "clock_mhz=1:1000")
    with pytest.raises(EyesimError, match="2,000,000 configurations"):
        build_grid(None, vary)
    grid, _ = build_grid(None, vary, max_configs=2 * MAX_CONFIGS)
    assert len(grid) == 2_000_000 and grid.key(1_999_999) == (2000.0, 1000.0, 1)
    repeated, _ = build_grid(None, ["glb.size_kb=" + ",".join(["1"] * 100_000)])  # counted once listed
    assert len(repeated) == 1


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path
