"""eyesim prune's rules and guards: the fitting/validation split, data that cannot support the rule, the held-out
check, the label-free mode, outputs that would overwrite inputs, and ``--set``."""

from __future__ import annotations

import numpy as np
import onnx
import pandas as pd
import pytest
from click.testing import CliRunner

from eyesim.cli.estimate import estimate as estimate_command
from eyesim.cli.prune import prune as prune_command
from eyesim.errors import EyesimError
from eyesim.prune import change
from eyesim.prune.data import check_labels, mix_warnings, split
from eyesim.workload.onnx.run import Samples
from tests.cli_support import assert_one_line_error
from tests.conftest import arrays

from .test_cli import CHIP, ROOT

LENET = ROOT / "models_onnx" / "lenet5-mnist.onnx"


def run_prune(*args: str):
    return CliRunner().invoke(prune_command, [str(a) for a in args])


def save(path, x, y=None):
    if y is None:
        np.savez(path, x=x)
    else:
        np.savez(path, x=x, y=y)
    return path


def test_split_is_stratified_disjoint_and_keeps_the_fitting_part_whole():
    y = np.repeat(np.arange(4), [50, 30, 12, 8])
    data = Samples(np.arange(len(y), dtype=np.float32)[:, None], y, "d")
    fit, val = split(data, 0.2)
    assert np.bincount(val.y).tolist() == [10, 6, 2, 1]  # 20 % of each label, rounded down, at least one
    assert sorted(np.concatenate([fit.x, val.x]).ravel().tolist()) == list(range(len(y)))
    assert "validation part" in val.source and "fitting part" in fit.source
    again = split(data, 0.2)[1]
    assert np.array_equal(again.x, val.x)  # deterministic


@pytest.mark.parametrize(("labels", "needle"), [
    (np.arange(1000, 1020), "outside the model's 10 classes"),
    (np.full(20, 8), "holds 1 of the model's 10 classes"),
    (np.repeat([8, 9], 10), "missing 0, 1, 2"),
    (np.array([-1] + list(range(10)) * 2), "outside"),
])
def test_labels_the_model_cannot_stand_for_are_refused(labels, needle):
    with pytest.raises(EyesimError, match=needle):
        check_labels(Samples(np.zeros((len(labels), 1)), labels, "d"), 10)


def test_class_mix_far_from_uniform_or_from_eval_is_named():
    skewed = Samples(np.zeros((100, 1)), np.repeat(np.arange(10), [40] + [60 // 9] * 8 + [60 - 8 * (60 // 9)]), "d")
    even = Samples(np.zeros((100, 1)), np.repeat(np.arange(10), 10), "e")
    lines = mix_warnings(skewed, 10, even)
    assert len(lines) == 2 and "0: 40% vs 10%" in lines[0] and "e's" in lines[1]
    assert mix_warnings(even, 10, even) == []


def test_change_says_less_or_more():
    assert change(4.31, 1.0) == "4.31x less"
    assert change(1.0, 1.04) == "+4.0% more"
    assert change(3, 3) == "no change"


def digits_args(digits, *more):
    return [digits / "cnn.onnx", "--hw", CHIP, "--data", digits / "data.npz", *more]


@pytest.mark.parametrize("make", [
    lambda x, y: (x, y + 1000, "outside the model's 10 classes"),
    lambda x, y: (x[y == 8], y[y == 8], "holds 1 of the model's 10 classes"),
    lambda x, y: (np.where(np.arange(len(x))[:, None, None, None] == 3, np.nan, x), y, "NaN or infinite"),
])
def test_data_that_cannot_support_the_rule_is_refused_before_any_work(digits, tmp_path, make):
    d = arrays(digits / "data.npz")
    x, y, needle = make(d["x"], d["y"])
    bad = save(tmp_path / "bad.npz", x, y)
    out = tmp_path / "p.onnx"
    res = run_prune(digits / "cnn.onnx", "--hw", CHIP, "--data", bad, "-o", out)
    assert_one_line_error(res, needle)
    assert not out.exists()


def test_too_few_fitting_samples_for_a_determined_least_squares_are_refused(digits):
    res = run_prune(*digits_args(digits, "--validation-fraction", "0.95"))
    assert_one_line_error(res, "layer fc", "fitting samples", "--validation-fraction")


def test_held_out_labels_outside_the_classes_are_refused(digits, tmp_path):
    d = arrays(digits / "eval.npz")
    bad = save(tmp_path / "bad.npz", d["x"], d["y"] + 10)
    assert_one_line_error(run_prune(*digits_args(digits, "--eval", bad)), "bad.npz", "outside")


@pytest.mark.parametrize("which", ["model", "data", "missing folder", "report is output"])
def test_outputs_that_would_overwrite_an_input_or_cannot_be_written_are_refused_first(digits, tmp_path, which):
    model = tmp_path / "m.onnx"
    model.write_bytes((digits / "cnn.onnx").read_bytes())
    data = tmp_path / "d.csv"
    data.write_bytes(b"")  # never read: the refusal comes first
    out, report = {"model": (model, None), "data": (tmp_path / "p.onnx", data),
                   "missing folder": (tmp_path / "no" / "p.onnx", None),
                   "report is output": (tmp_path / "p.onnx", tmp_path / "p.onnx")}[which]
    args = [model, "--hw", CHIP, "--data", data if which == "data" else digits / "data.npz", "-o", out]
    if report is not None:
        args += ["--report", report]
    res = run_prune(*args)
    assert res.exit_code == 2 and len(res.stderr.strip().splitlines()) == 1, res.output
    assert model.read_bytes() == (digits / "cnn.onnx").read_bytes()


@pytest.mark.parametrize(("option", "value", "needle"), [
    ("--max-output-error", "0", "between 0 and 1"), ("--max-output-error", "1.5", "between 0 and 1"),
    ("--validation-fraction", "1", "between 0 and 1"), ("--max-accuracy-drop", "-1", "0 or more"),
    ("--set", "glb.nope=3", "unknown field"), ("--set", "sparsity.weight_compression", "PATH=VALUE"),
])
def test_bad_option_values_are_one_line(digits, option, value, needle):
    assert_one_line_error(run_prune(*digits_args(digits, option, value)), needle)


def test_held_out_collapse_fails_the_run_and_keeps_the_model_unwritten(digits, tmp_path):
    out = tmp_path / "p.onnx"
    args = digits_args(digits, "--eval", digits / "eval.npz", "--max-output-error", "0.9", "--max-accuracy-drop", "0",
                       "--method", "magnitude", "--passes", "1", "-o", out, "--quiet")
    res = run_prune(*args)
    assert res.exit_code == 1, res.output
    assert "held-out accuracy fell" in res.stderr and "not written" in res.stderr
    assert not out.exists()
    res = run_prune(*args, "--force")
    assert res.exit_code == 1 and out.exists() and "written anyway" in res.stderr


def test_label_free_mode_needs_no_labels_and_bounds_each_layer_error(digits, tmp_path):
    d = arrays(digits / "data.npz")
    unlabeled = save(tmp_path / "x.npz", d["x"])
    csv = tmp_path / "r.csv"
    res = run_prune(digits / "cnn.onnx", "--hw", CHIP, "--data", unlabeled, "--max-output-error", "0.05",
                    "--passes", "1", "--report", csv)
    assert res.exit_code == 0, res.output
    steps = pd.read_csv(csv).query("layer != 'TOTAL'")
    assert (steps.val_error <= 0.05 + 1e-12).all()
    assert (steps.nonzero_after < steps.nonzero_before).any()
    assert "layer output error <= 5%" in res.stdout


def test_validation_file_is_used_instead_of_a_part(digits, tmp_path):
    e = arrays(digits / "eval.npz")
    val = save(tmp_path / "val.npz", e["x"][:400], e["y"][:400])
    csv = tmp_path / "r.csv"
    res = run_prune(*digits_args(digits, "--validation", val, "--method", "magnitude", "--passes", "1",
                                 "--report", csv, "--quiet"))
    assert res.exit_code == 0, res.output
    total = pd.read_csv(csv).query("layer == 'TOTAL'").iloc[0]
    assert total.accuracy_val >= total.accuracy_val_before - 1.0


def test_set_changes_the_hardware_of_estimate_and_prune(tmp_path):
    def energy(*more):
        out = tmp_path / "e.csv"
        res = CliRunner().invoke(estimate_command, [str(LENET), "--hw", CHIP, "-o", str(out), "--quiet", *more])
        assert res.exit_code == 0, res.output
        return pd.read_csv(out).query("name == 'TOTAL'")["energy_total"].iloc[0]

    assert energy("--set", "glb.size_kb=16") != energy()
    res = CliRunner().invoke(estimate_command, [str(LENET), "--hw", CHIP, "--set", "glb.size_kb=abc"])
    assert_one_line_error(res, "glb.size_kb")


def test_saved_model_is_the_reported_one(digits, tmp_path):
    out, csv = tmp_path / "p.onnx", tmp_path / "r.csv"
    res = run_prune(*digits_args(digits, "--eval", digits / "eval.npz", "--passes", "1", "-o", out, "--report", csv,
                                 "--max-accuracy-drop", "2"))
    assert res.exit_code == 0, res.output
    onnx.checker.check_model(onnx.load(str(out)), full_check=True)
    total = pd.read_csv(csv).query("layer == 'TOTAL'").iloc[0]
    import onnxruntime as ort

    e = arrays(digits / "eval.npz")
    (logits,) = ort.InferenceSession(str(out)).run(None, {"x": e["x"]})
    assert 100 * np.mean(logits.argmax(1) == e["y"]) == pytest.approx(total.accuracy_eval)


def test_choosing_samples_easier_than_the_held_out_ones_are_warned_about():
    from eyesim.prune.method import easier_than_held_out
    from eyesim.prune.result import Totals

    def totals(val, held_out):
        return Totals(1.0, 1, 1, 1, 1, None, val, held_out)

    assert "look easier" in easier_than_held_out(totals(100.0, 96.5), 96, 1000)
    assert easier_than_held_out(totals(97.0, 96.5), 96, 1000) is None  # within the noise
    assert easier_than_held_out(totals(100.0, 96.5), 96, None) is None
