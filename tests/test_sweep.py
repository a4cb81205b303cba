"""Sweeps: grids and specs, rows and files, resume, reuse, parallel and Dask runs, area, bad input, properties."""

from __future__ import annotations

import math
import socket
import time
from pathlib import Path

import numpy as np
import onnx
import pandas as pd
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

import eyesim
from eyesim import dataflow as df
from eyesim.cli.sweep import sweep as sweep_command
from eyesim.cost.counts import layer_vector
from eyesim.dataflow.search import search_layer
from eyesim.errors import EyesimError
from eyesim.hardware import load_hardware, with_overrides
from eyesim.hardware.area import AREA_COLUMNS, AreaModel
from eyesim.sweep.grid import Grid, load_spec, parse_vary
from eyesim.sweep.job import _memo, make_job
from eyesim.sweep.output import config_columns, read_sweep
from eyesim.sweep.run import run_sweep
from tests.cli_support import assert_one_line_error
from tests.layers import small_hw_vectors, small_layers

ROOT = Path(__file__).resolve().parent.parent
ALEXNET = str(ROOT / "models_onnx" / "alexnet.onnx")
CHIP = str(ROOT / "hwconfigs" / "eyeriss.yaml")
ISCA = str(ROOT / "hwconfigs" / "eyeriss-isca256.yaml")
LAYERS = 8  # AlexNet's layers with MACs


def grid(*texts: str, batch: int = 1) -> Grid:
    return Grid(tuple(parse_vary(text) for text in texts), batch)


def sweep_to(path: Path, *texts: str, **options) -> pd.DataFrame:
    run_sweep(make_job(ALEXNET, CHIP, grid(*texts)), path, workers=options.pop("workers", 1), **options)
    return read_sweep(path)


def invoke(*args: str):
    return CliRunner().invoke(sweep_command, list(args), obj={"debug": False})




# --- grids and specs ------------------------------------------------------------------------------


def test_lists_ranges_and_the_array_shorthand():
    assert parse_vary("glb.size_kb=32,64").values == ((32.0,), (64.0,))
    assert parse_vary("rf.filter_words=64:512:64").values == tuple((v,) for v in range(64, 513, 64))
    assert parse_vary("rf.filter_words=64:500:64").values[-1] == (448,)  # 500 is off the grid
    assert parse_vary("glb.size_kb=0.5:1.5:0.5").values == ((0.5,), (1.0,), (1.5,))  # exact decimals
    assert parse_vary("array=12x14,16x16").paths == ("array.rows", "array.cols")
    assert parse_vary("array=12x14,16x16").values == ((12, 14), (16, 16))
    assert parse_vary("batch=1:3").values == ((1,), (2,), (3,))
    assert parse_vary("bits.weights=8,16,8").values == ((8,), (16,))  # duplicates dropped


def test_grid_order_columns_and_default_batch():
    g = grid("glb.size_kb=32,64", "array=12x14,16x16", batch=4)
    assert g.columns == ("glb.size_kb", "array.rows", "array.cols", "batch")
    assert len(g) == 4
    assert [g.key(i) for i in range(4)] == list(g.keys())
    assert g.key(1) == (32.0, 16, 16, 4)


@pytest.mark.parametrize(("text", "needle"), [
    ("glb.sizekb=1,2", "unknown field glb.sizekb (did you mean glb.size_kb?)"),
    ("glb.size_kb=64:32:8", "has no values"),
    ("glb.size_kb=1:5:0", "has no values"),
    ("name=1", "not a numeric field"),
    ("array.rows=12.5", "takes integers"),
    ("array=12", "ROWSxCOLS"),
    ("batch=0", "batch sizes must be at least 1"),
    ("glb.size_kb=", "PATH=VALUES"),
    ("glb.size_kb=1,,2", "empty value"),
])
def test_bad_grids_are_refused(text, needle):
    with pytest.raises(EyesimError) as err:
        parse_vary(text)
    assert needle in str(err.value)


def test_a_field_swept_twice_is_refused():
    with pytest.raises(EyesimError, match="swept twice"):
        grid("array.rows=12", "array=16x16")


def test_spec_file(tmp_path):
    spec = tmp_path / "study.yaml"
    spec.write_text(
        "vary:\n"
        "  glb.size_kb: [32, 64]\n"
        "  rf.filter_words: '64:128:64'\n"
        "  energy.dram: {from: 100, to: 200, step: 100}\n"
        "  array: [12x14]\n"
        "  rf: [{rf.ifmap_words: 12, rf.psum_words: 24}, {rf.ifmap_words: 24, rf.psum_words: 32}]\n"
        "area: {compute_um2_per_pe: 10000}\n")
    axes, area = load_spec(spec)
    g = Grid(tuple(axes))
    assert g.columns == ("glb.size_kb", "rf.filter_words", "energy.dram", "array.rows", "array.cols",
                         "rf.ifmap_words", "rf.psum_words", "batch")
    assert len(g) == 2 * 2 * 2 * 1 * 2
    assert area.compute_um2_per_pe == 10000
    spec.write_text("vary: {glb.size_kb: [32]}\nrange: 3\n")
    with pytest.raises(EyesimError, match="unknown key range"):
        load_spec(spec)


# --- rows and files -------------------------------------------------------------------------------


def test_rows_columns_and_invalid_configurations(tmp_path):
    frame = sweep_to(tmp_path / "s.parquet", "glb.size_kb=4,108", "glb.filter_kb=0,8", "array.rows=8,12")
    columns = list(frame.columns)
    assert columns[:9] == ["sweep_id", "model", "glb.size_kb", "glb.filter_kb", "array.rows", "batch", "layer",
                           "status", *AREA_COLUMNS[:1]]
    assert config_columns(columns) == ["glb.size_kb", "glb.filter_kb", "array.rows", "batch"]
    assert "name" not in columns and {"energy_total", "m", "dram_ifmap_reads"} <= set(columns)
    totals = frame[frame["layer"] == "TOTAL"]
    assert len(totals) == 8
    ok = totals[totals["status"] == "ok"]
    assert len(ok) == 6  # 108 kB staged or not, 4 kB unstaged; on 8 PE rows conv1's 11 rows run as slices
    assert len(frame) == 8 + 6 * LAYERS
    bad = totals.set_index(["glb.size_kb", "glb.filter_kb", "array.rows"])["status"]
    assert "glb.filter_kb must be < glb.size_kb" in bad[(4.0, 8.0, 12)] and "ok" not in set(bad[4.0, 8.0])
    conv1 = frame[(frame["layer"] == "conv1") & (frame["array.rows"] == 8)]
    assert len(conv1) == 3 and (conv1["slice_height"] < 11).all() and (conv1["macs"] == 105_415_200).all()
    assert frame[["glb.size_kb", "glb.filter_kb", "array.rows"]].equals(
        frame[["glb.size_kb", "glb.filter_kb", "array.rows"]].sort_values(
            ["glb.size_kb", "glb.filter_kb", "array.rows"], kind="stable"))


def test_a_configuration_equals_the_estimate(tmp_path):
    frame = sweep_to(tmp_path / "s.csv", "glb.size_kb=64", "array=16x16", "batch=2")
    hw = with_overrides(load_hardware(CHIP), {"glb.size_kb": 64.0, "array.rows": 16, "array.cols": 16})
    expected = eyesim.estimate(ALEXNET, hw, batch=2).to_frame().rename(columns={"name": "layer"})
    got = frame[list(expected.columns)]
    for column in expected.columns:
        want, have = expected[column], got[column]
        if pd.api.types.is_numeric_dtype(want):
            np.testing.assert_array_equal(have.to_numpy(float), want.to_numpy(float), err_msg=column)
        else:
            assert have.fillna("").astype(str).tolist() == want.fillna("").astype(str).tolist(), column
    area = AreaModel().of(hw)
    assert frame["area_mm2"].iloc[0] == pytest.approx(area["area_mm2"])


def test_a_model_with_weights_counts_their_zeros_as_the_estimate_does(tmp_path):
    weights = np.zeros((4, 2, 3, 3), dtype=np.float32)
    weights[:, :, 1, :] = 1.0  # a third of the weights are non-zero
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["y"], name="conv", pads=[1, 1, 1, 1])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 8, 8])],
        [numpy_helper.from_array(weights, "w")])
    model = tmp_path / "m.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), model)
    run_sweep(make_job(model, CHIP, grid("glb.size_kb=16,108")), tmp_path / "s.parquet", workers=1)
    frame = read_sweep(tmp_path / "s.parquet")
    expected = eyesim.estimate(model, with_overrides(load_hardware(CHIP), {"glb.size_kb": 16.0})).to_frame()
    got = frame[frame["glb.size_kb"] == 16.0]
    assert got["density_weights"].iloc[0] == pytest.approx(1 / 3)
    assert got["density_source"].iloc[0] == expected["density_source"].iloc[0]
    np.testing.assert_array_equal(got["energy_total"].to_numpy(), expected["energy_total"].to_numpy())


def test_reuse_changes_nothing_and_happens(tmp_path):
    texts = ("glb.size_kb=32,108,512", "array=12x14,16x16", "rf.filter_words=112,224", "clock_mhz=100,200")
    job = make_job(ALEXNET, CHIP, grid(*texts))
    run_sweep(job, tmp_path / "reuse.parquet", workers=1)
    assert _memo(job).hits > 0
    run_sweep(make_job(ALEXNET, CHIP, grid(*texts), reuse=False), tmp_path / "fresh.parquet", workers=1)
    pd.testing.assert_frame_equal(read_sweep(tmp_path / "reuse.parquet"), read_sweep(tmp_path / "fresh.parquet"))


def test_resume_skips_what_is_there_and_ends_like_a_fresh_run(tmp_path):
    out = tmp_path / "s.csv"
    job = make_job(ALEXNET, CHIP, grid("glb.size_kb=32,64,108,256", "batch=1,2"))

    def stop_after_first_chunk(_: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_sweep(job, out, workers=1, chunk_size=3, flush_seconds=0, on_chunk=stop_after_first_chunk)
    assert len(read_sweep(out)) == 3 * (LAYERS + 1)  # the finished chunk was written
    (tmp_path / ".s.csv.999.tmp").write_text("half a file")  # what a kill during a write leaves
    again = run_sweep(job, out, workers=1)
    assert (again.skipped, again.evaluated) == (3, 5)
    assert run_sweep(job, out, workers=1).evaluated == 0
    run_sweep(job, tmp_path / "fresh.csv", workers=1)
    assert out.read_text() == (tmp_path / "fresh.csv").read_text()


def test_a_grown_grid_adds_to_the_same_study(tmp_path):
    out = tmp_path / "s.parquet"
    sweep_to(out, "glb.size_kb=32,64")
    done = run_sweep(make_job(ALEXNET, CHIP, grid("glb.size_kb=32,64,128")), out, workers=1)
    assert (done.skipped, done.evaluated) == (2, 1)
    assert read_sweep(out)["glb.size_kb"].drop_duplicates().tolist() == [32.0, 64.0, 128.0]


def test_outputs_of_other_sweeps_and_other_files_are_refused(tmp_path):
    out = tmp_path / "s.parquet"
    sweep_to(out, "glb.size_kb=32")
    for other in (make_job(ALEXNET, CHIP, grid("glb.size_kb=32", "array=12x14")),  # other fields
                  make_job(ALEXNET, ISCA, grid("glb.size_kb=32"))):  # other base hardware
        with pytest.raises(EyesimError, match="holds another sweep"):
            run_sweep(other, out, workers=1)
    estimate_csv = tmp_path / "r.csv"
    eyesim.estimate(ALEXNET, CHIP).write(estimate_csv)
    with pytest.raises(EyesimError, match="not an eyesim sweep output"):
        run_sweep(make_job(ALEXNET, CHIP, grid("glb.size_kb=32")), estimate_csv, workers=1)


# --- parallel and distributed ---------------------------------------------------------------------

PARALLEL_GRID = ("glb.size_kb=32,108,512", "array=12x14,16x16", "batch=1,4")


@pytest.fixture(scope="module")
def dask_run(tmp_path_factory):
    """One sweep on a Dask local cluster of 2 workers (its start-up takes seconds), for the tests below."""
    pytest.importorskip("dask.distributed")
    out = tmp_path_factory.mktemp("dask") / "dask.parquet"
    done = run_sweep(make_job(ALEXNET, CHIP, grid(*PARALLEL_GRID)), out, dask_workers=2, chunk_size=2)
    return done, read_sweep(out)


def test_local_processes_and_a_dask_local_cluster_equal_the_serial_run(tmp_path, dask_run):
    serial = sweep_to(tmp_path / "serial.parquet", *PARALLEL_GRID)
    processes = sweep_to(tmp_path / "processes.parquet", *PARALLEL_GRID, workers=2, chunk_size=2)
    pd.testing.assert_frame_equal(serial, processes)
    done, frame = dask_run
    assert done.workers == 2 and done.evaluated == 12
    pd.testing.assert_frame_equal(serial, frame)


def test_an_unreachable_scheduler_is_a_quick_one_line_error(tmp_path):
    with socket.socket() as sock:  # a port nothing listens on once closed
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    began = time.monotonic()
    res = invoke(ALEXNET, "--hw", CHIP, "--vary", "glb.size_kb=64", "-o", str(tmp_path / "s.parquet"),
                 "--scheduler", f"tcp://127.0.0.1:{port}", "--scheduler-timeout", "1")
    assert time.monotonic() - began < 10
    assert_one_line_error(res, "cannot reach the Dask scheduler", f"127.0.0.1:{port}")


# --- command line ---------------------------------------------------------------------------------


def test_cli_sweep_writes_and_reports(tmp_path):
    out = tmp_path / "s.csv"
    res = invoke(ALEXNET, "--hw", CHIP, "--vary", "glb.size_kb=64,128", "--workers", "1", "-o", str(out))
    assert res.exit_code == 0, res.output
    assert "2 configurations: 2 evaluated" in res.stderr and f"wrote {out}" in res.stderr
    assert len(read_sweep(out)) == 2 * (LAYERS + 1)


@pytest.mark.parametrize(("args", "needle"), [
    (("--vary", "glb.sizekb=1"), "unknown field glb.sizekb"),
    (("--vary", "rf.filter_words=512:64:64"), "has no values"),
    ((), "nothing to sweep"),
])
def test_cli_bad_input(tmp_path, args, needle):
    assert_one_line_error(invoke(ALEXNET, "--hw", CHIP, *args, "-o", str(tmp_path / "s.parquet")), needle)


def test_cli_refuses_to_mix_sweeps(tmp_path):
    out = tmp_path / "s.parquet"
    sweep_to(out, "glb.size_kb=32")
    res = invoke(ALEXNET, "--hw", CHIP, "--vary", "rf.filter_words=64", "--workers", "1", "-o", str(out))
    assert_one_line_error(res, "holds another sweep", "refusing to mix")


# --- area -----------------------------------------------------------------------------------------


def test_area_model():
    model = AreaModel()
    isca = model.of(load_hardware(ISCA))
    assert isca["area_compute_mm2"] == pytest.approx(256 * 20_000 / 1e6)  # the ISCA comparison's compute per PE
    assert isca["area_rf_mm2"] == pytest.approx(256 * 512 * 32.0 / 1e6)  # 512 B RF at the reference rate
    assert isca["area_mm2"] == pytest.approx(sum(isca[c] for c in AREA_COLUMNS[1:]))
    sizes = [16, 512, 8192, 131072, 1 << 22]
    rates = [model.um2_per_byte(s) for s in sizes]
    assert rates == sorted(rates, reverse=True) and rates[-1] == model.floor_um2_per_byte
    assert model.store_um2(131072) == pytest.approx(131072 * 8.0)
    with pytest.raises(EyesimError, match="unknown area constant"):
        AreaModel.from_dict({"compute": 1}, "spec")


# --- properties (hypothesis) ----------------------------------------------------------------------

CAPACITIES = (df.HW_ROWS, df.HW_COLS, df.HW_RF_BITS, df.HW_RF_FILTER, df.HW_RF_IFMAP, df.HW_RF_PSUM, df.HW_GLB_BITS)


def optimum(layer, hw: np.ndarray, cost: np.ndarray, mac: float) -> float:
    lv = layer_vector(layer)
    return float(search_layer(lv, hw, df.strip_rows_table(lv), df.used_cols(lv), cost, mac, np.zeros(0))[1])


costs = st.lists(st.floats(0.1, 300.0), min_size=13, max_size=13).map(
    lambda v: (np.array(v[:12]).reshape(4, 3), v[12]))


@settings(max_examples=80, deadline=None)
@given(small_layers(), small_hw_vectors(), costs, st.sampled_from(CAPACITIES), st.integers(1, 400))
def test_optimal_energy_never_rises_when_a_buffer_or_the_array_grows(layer, hw, cost_mac, capacity, more):
    cost, mac = cost_mac
    bigger = hw.copy()
    bigger[capacity] += more if capacity in (df.HW_ROWS, df.HW_COLS) else 16 * more
    small, big = optimum(layer, hw, cost, mac), optimum(layer, bigger, cost, mac)
    assert big <= small or (math.isinf(big) and math.isinf(small))


@settings(max_examples=80, deadline=None)
@given(small_layers(), small_hw_vectors(), costs, st.integers(0, 4), st.floats(1.0, 10.0))
def test_total_energy_never_falls_when_a_per_access_cost_rises(layer, hw, cost_mac, level, factor):
    cost, mac = cost_mac
    dearer, dearer_mac = cost.copy(), mac
    if level < 4:
        dearer[level] *= factor
    else:
        dearer_mac *= factor
    cheap, dear = optimum(layer, hw, cost, mac), optimum(layer, hw, dearer, dearer_mac)
    assert dear >= cheap or (math.isinf(dear) and math.isinf(cheap))


def test_swept_totals_never_rise_with_the_glb(tmp_path):
    frame = sweep_to(tmp_path / "s.parquet", "glb.size_kb=16,32,64,128,256", "batch=1,4")
    totals = frame[frame["layer"] == "TOTAL"]
    for _, group in totals.groupby("batch"):
        energy = group["energy_total"].to_numpy()
        assert np.all(np.diff(energy) <= 1e-9 * energy[:-1])


# --- streamed output, kept layer results, Dask batching (issue 14) ----------------------------------------------


def test_kept_layer_results_change_nothing(tmp_path):
    """Whole layer results reused across pure-capacity changes; time fields, staging and batch still vary."""
    texts = ("glb.size_kb=64,108,256", "glb.filter_kb=0,16", "array=12x14,16x16", "clock_mhz=100,200",
             "dram.link_bits=32,64", "batch=1,2")
    job = make_job(ALEXNET, CHIP, grid(*texts))
    run_sweep(job, tmp_path / "reuse.parquet", workers=1)
    run_sweep(make_job(ALEXNET, CHIP, grid(*texts), reuse=False), tmp_path / "fresh.parquet", workers=1)
    pd.testing.assert_frame_equal(read_sweep(tmp_path / "reuse.parquet"), read_sweep(tmp_path / "fresh.parquet"))


def test_chunk_tables_equal_the_dataframe_rows():
    """The Arrow table a worker builds equals evaluate_chunk's DataFrame (invalid configurations included)."""
    from eyesim.sweep.job import evaluate_chunk, evaluate_rows
    from eyesim.sweep.output import import_pyarrow

    pa = import_pyarrow()
    job = make_job(ALEXNET, CHIP, grid("glb.size_kb=4,108", "glb.filter_kb=0,8", "array.rows=8,12"), reuse=False)
    indices = list(range(len(job.grid)))
    chunk = evaluate_rows(job, indices)
    expected = pa.Table.from_pandas(evaluate_chunk(job, indices), preserve_index=False)
    assert chunk.table.column_names == expected.column_names
    assert chunk.table.equals(expected.replace_schema_metadata(None))
    assert (chunk.configurations, chunk.layers) == (8, 6 * LAYERS)


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_streamed_output_equals_the_one_written_at_once(tmp_path, suffix):
    """Written a few rows at a time (small row groups, merged into the file each time) or all at the end:
    the same file contents, in configuration order, also when a first run left part of it."""
    from eyesim.sweep import sink

    texts = ("glb.size_kb=32,64,108,256", "array=12x14,16x16", "batch=1,4")
    once = tmp_path / f"once{suffix}"
    run_sweep(make_job(ALEXNET, CHIP, grid(*texts)), once, workers=1, flush_seconds=1e9)
    streamed = tmp_path / f"streamed{suffix}"
    job = make_job(ALEXNET, CHIP, grid(*texts[:2], "batch=4"))  # a first run: part of the grid
    run_sweep(job, streamed, workers=1, chunk_size=3, pending_rows=10)
    saved = sink._BATCH_ROWS
    sink._BATCH_ROWS = 7  # several row groups, each merged with new configurations
    try:
        done = run_sweep(make_job(ALEXNET, CHIP, grid(*texts)), streamed, workers=1, chunk_size=2, pending_rows=20)
    finally:
        sink._BATCH_ROWS = saved
    assert (done.skipped, done.evaluated) == (8, 8)
    pd.testing.assert_frame_equal(read_sweep(streamed), read_sweep(once))
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        assert pq.ParquetFile(streamed).num_row_groups > 1


MEMORY_SCRIPT = """
import sys, tracemalloc
import pyarrow as pa
from eyesim.sweep import Grid, make_job, parse_vary, run_sweep, sink
sink._BATCH_ROWS = 50
warm = make_job(sys.argv[1], sys.argv[2], Grid((parse_vary("glb.size_kb=100"),)))
run_sweep(warm, sys.argv[4] + "/warm.parquet", workers=1)  # imports and kernels before the count
job = make_job(sys.argv[1], sys.argv[2], Grid((parse_vary(f"glb.size_kb=100:{99 + int(sys.argv[3])}"),)))
tracemalloc.start()
run_sweep(job, sys.argv[4] + "/s.parquet", workers=1, pending_rows=50, chunk_size=5)
print(tracemalloc.get_traced_memory()[1], pa.default_memory_pool().max_memory())
"""


def test_a_streamed_sweeps_memory_does_not_grow_with_the_grid(tmp_path):
    """Peak Python and Arrow memory of a streamed Parquet sweep of 60 and of 240 configurations (a fresh process
    each): bounded by the rows written at once and one row group, not by the grid (the done set aside)."""
    import subprocess
    import sys

    model = str(ROOT / "models_onnx" / "lenet5-mnist.onnx")
    peaks = []
    for configs in (60, 240):
        folder = tmp_path / str(configs)
        folder.mkdir()
        out = subprocess.run([sys.executable, "-c", MEMORY_SCRIPT, model, CHIP, str(configs), str(folder)],
                             capture_output=True, text=True, check=True, cwd=ROOT)
        peaks.append([int(v) for v in out.stdout.split()])
        assert len(read_sweep(folder / "s.parquet")) == configs * len(read_sweep(folder / "warm.parquet"))
    (small_py, small_arrow), (big_py, big_arrow) = peaks
    # Python: only per-configuration bookkeeping (keys, and built hardware: a cache of at most 4,096) grows
    assert big_py - small_py < 180 * 5_000, peaks  # 4x the configurations
    assert big_arrow < 1.5 * small_arrow + 2**20, peaks


def test_a_dask_cluster_reports_its_start_up_apart(tmp_path, dask_run):
    done, frame = dask_run
    assert done.workers == 2 and 0 < done.startup_seconds < done.seconds
    pd.testing.assert_frame_equal(frame, sweep_to(tmp_path / "s.parquet", *PARALLEL_GRID))
