"""Names from a model or hardware file reach the terminal escaped: an escape sequence or a line break in a layer,
op, graph or hardware name is shown as text (``\\x1b``), never acted on, and the table keeps its shape."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest
import yaml
from onnx import TensorProto, helper

from tests.hostile import run_cli

ROOT = Path(__file__).resolve().parent.parent
CHIP = ROOT / "hwconfigs" / "eyeriss.yaml"
NAMES = {"colour": "\x1b[31mred\x1b[0m", "clear screen": "\x1b[2J\x1b[H", "newline": "two\nlines",
         "carriage return": "over\rwrite", "bell": "ring\a", "c1 control": "csi\x9b31m", "tab": "a\tb",
         "title": "\x1b]0;owned\x07", "delete": "rub\x7bout\x7f", "nul-free unicode": "Faltung\u2603"}


def model(path: Path, name: str) -> Path:
    """A Conv then a Relu, both named ``name`` (the second deduplicated by eyesim), in a graph named ``name``."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 16, 16])
    w = helper.make_tensor_value_info("w", TensorProto.FLOAT, [8, 3, 3, 3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name=name), helper.make_node("Relu", ["c"], ["y"], name=name)]
    graph = helper.make_graph(nodes, name, [x, w], [y])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))
    return path


def shown(text: str) -> bool:
    """No control character but the table's own line breaks."""
    return not any(not c.isprintable() and c != "\n" for c in text)


@pytest.mark.parametrize("kind", sorted(NAMES))
def test_layer_and_graph_names_are_escaped_in_the_table(tmp_path, kind):
    name = NAMES[kind]
    outcome = run_cli(["estimate", str(model(tmp_path / "m.onnx", name)), "--hw", str(CHIP)], watch=None)
    assert outcome.code == 0, outcome.stderr
    assert shown(outcome.stdout) and shown(outcome.stderr), repr(outcome.stdout)
    escaped = "".join(c if c.isprintable() else repr(c)[1:-1] for c in name)
    assert escaped in outcome.stdout
    lines = outcome.stdout.splitlines()
    rule = next(i for i, line in enumerate(lines) if set(line) == {"-"})
    assert lines[rule + 1].startswith(escaped) and len(lines[rule + 1]) <= len(lines[rule])


@pytest.mark.parametrize("kind", ["colour", "newline", "title"])
def test_hardware_names_are_escaped_in_the_summary(tmp_path, kind):
    data = yaml.safe_load(CHIP.read_text())
    data["name"] = NAMES[kind]
    hw = tmp_path / "hw.yaml"
    hw.write_text(yaml.safe_dump(data))
    outcome = run_cli(["estimate", str(ROOT / "models_onnx" / "alexnet.onnx"), "--hw", str(hw)], watch=None)
    assert outcome.code == 0, outcome.stderr
    assert shown(outcome.stdout) and repr(NAMES[kind])[1:-1] in outcome.stdout.splitlines()[0]
