"""Pictures: estimate bars, sweep panels, the Pareto front, and matplotlib only when drawing."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import eyesim
from eyesim.cli.plot import plot as plot_command
from eyesim.errors import EyesimError
from eyesim.report.plot import pareto_mask, plot_file, plot_result
from eyesim.sweep import Grid, make_job, parse_vary, run_sweep

ROOT = Path(__file__).resolve().parent.parent
ALEXNET = str(ROOT / "models_onnx" / "alexnet.onnx")
CHIP = str(ROOT / "hwconfigs" / "eyeriss.yaml")
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def result():
    return eyesim.estimate(ALEXNET, CHIP)


@pytest.fixture(scope="module")
def sweep_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("sweep") / "s.parquet"
    axes = tuple(parse_vary(t) for t in ("glb.size_kb=32,108", "array=12x14,16x16", "rf.filter_words=112,224"))
    run_sweep(make_job(ALEXNET, CHIP, Grid(axes)), path, workers=1)
    return path


def invoke(*args: str):
    return CliRunner().invoke(plot_command, list(args), obj={"debug": False})


def test_pareto_mask():
    energy = np.array([5.0, 4.0, 4.0, 6.0, 3.0, 3.0])
    area = np.array([1.0, 2.0, 3.0, 0.5, 4.0, 4.0])
    assert pareto_mask(energy, area).tolist() == [True, True, False, True, True, True]


def test_result_bars_png_and_svg(tmp_path, result):
    plot_result(result.to_dict(), tmp_path / "r.png")
    assert (tmp_path / "r.png").read_bytes().startswith(PNG)
    plot_result(result.to_dict(), tmp_path / "r.svg")
    assert b"<svg" in (tmp_path / "r.svg").read_bytes()[:400]


def test_plot_accepts_a_result_json_and_csv(tmp_path, result):
    result.write(tmp_path / "r.json")
    result.write(tmp_path / "r.csv")
    for name in ("r.json", "r.csv"):
        res = invoke(str(tmp_path / name), "-o", str(tmp_path / f"{name}.png"))
        assert res.exit_code == 0, res.output
        assert (tmp_path / f"{name}.png").read_bytes().startswith(PNG)


def test_sweep_picture(tmp_path, sweep_file):
    res = invoke(str(sweep_file), "-o", str(tmp_path / "s.png"))
    assert res.exit_code == 0, res.output
    assert (tmp_path / "s.png").read_bytes().startswith(PNG)
    plot_file(sweep_file, tmp_path / "s.svg", x="array", by="rf.filter_words")
    assert (tmp_path / "s.svg").exists()


@pytest.mark.parametrize(("args", "needle"), [
    (("missing.json",), "file not found"),
    (("{sweep}", "-o", "x.pdf"), "must end in .png or .svg"),
    (("{sweep}", "--x", "energy.dram"), "not a swept field"),
    (("{json}",), "not an estimate result JSON"),
])
def test_bad_input_is_one_line(tmp_path, sweep_file, args, needle):
    (tmp_path / "bad.json").write_text(json.dumps({"model": "x"}))
    args = [a.format(sweep=sweep_file, json=tmp_path / "bad.json") for a in args]
    res = invoke(*args)
    assert res.exit_code == 2, res.output
    assert len(res.stderr.strip().splitlines()) == 1 and needle in res.stderr


def test_missing_matplotlib_is_a_clear_error(tmp_path, result, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(EyesimError, match=r"pip install 'eyesim\[plot\]'"):
        plot_result(result.to_dict(), tmp_path / "r.png")


def test_matplotlib_is_not_imported_at_start_up():
    code = ("import sys, eyesim.cli, eyesim.cli.sweep, eyesim.report.plot, eyesim.sweep; "
            "print('matplotlib' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
