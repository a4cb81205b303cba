"""Hostile outputs and concurrent use: outputs that are inputs, outputs that cannot be written, two sweeps on one
file, a sweep killed with its workers, and CSV cells that a spreadsheet would run as formulas.
"""

from __future__ import annotations

import csv
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from eyesim.errors import EyesimError
from eyesim.result import safe_cell, unsafe_cell
from eyesim.sweep.output import read_sweep
from eyesim.sweep.sink import output_lock
from tests.hostile import fork_holding, run_cli, start_cli

ROOT = Path(__file__).resolve().parent.parent
CHIP = ROOT / "hwconfigs" / "eyeriss.yaml"
ALEXNET = ROOT / "models_onnx" / "alexnet.onnx"
INT_COLUMNS = ("N", "C", "M", "H", "R", "E", "m", "n", "e", "p", "q", "r", "t", "macs", "active_pes", "cycles",
               "dram_weights_reads", "rf_psum_writes")
FORMULAS = ('=HYPERLINK("http://evil.example","click")', "+cmd|' /C calc'!A0", "-2+3", "@SUM(1+1)*cmd|' /C calc'!A0",
            "=1+1", "'=already quoted", "-", "+")


def tiny_model(path: Path, names: tuple[str, str, str] = ("conv1", "conv2", "fc"), graph: str = "tiny") -> Path:
    """Two convolutions and a classifier with random weights: a model every command accepts, in milliseconds."""
    rng = np.random.default_rng(0)
    inits = {"w1": rng.normal(size=(4, 1, 3, 3)), "w2": rng.normal(size=(4, 4, 3, 3)), "w3": rng.normal(size=(10, 64))}
    nodes = [helper.make_node("Conv", ["x", "w1"], ["c1"], name=names[0], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c1"], ["r1"]),
             helper.make_node("Conv", ["r1", "w2"], ["c2"], name=names[1], pads=[1, 1, 1, 1], strides=[2, 2]),
             helper.make_node("Relu", ["c2"], ["r2"]),
             helper.make_node("Flatten", ["r2"], ["flat"]),
             helper.make_node("Gemm", ["flat", "w3"], ["y"], name=names[2], transB=1)]
    g = helper.make_graph(nodes, graph, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 8, 8])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])],
                          [numpy_helper.from_array(v.astype(np.float32), k) for k, v in inits.items()])
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)], ir_version=8), str(path))
    return path


# --- every output of every command against every input of it ---------------------------------------------------

# command -> (inputs: option -> file suffix, outputs: option -> suffix); the base arguments come from _args
COMMANDS = {
    "estimate": ({"MODEL": ".onnx", "--hw": ".yaml", "--mapping": ".yaml", "--samples": ".npy"},
                 {"-o": ".csv", "--plot": ".png"}),
    "sweep": ({"MODEL": ".onnx", "--hw": ".yaml", "--spec": ".yaml"}, {"-o": ".parquet"}),
    "prune": ({"MODEL": ".onnx", "--hw": ".yaml", "--data": ".npz", "--validation": ".npz", "--eval": ".npz"},
              {"-o": ".onnx", "--report": ".csv"}),
    "plot": ({"SOURCE": ".csv"}, {"-o": ".png"}),
}
PAIRS = [(cmd, i, o) for cmd, (ins, outs) in COMMANDS.items() for i in ins for o in outs]
EXTRA_OUTPUT_SUFFIX = {("estimate", "-o"): ".json", ("sweep", "-o"): ".csv", ("plot", "-o"): ".svg"}
PAIRS += [(cmd, i, o + "=" + EXTRA_OUTPUT_SUFFIX[cmd, o]) for cmd, i, o in PAIRS if (cmd, o) in EXTRA_OUTPUT_SUFFIX]
LINKS = ("same path", "dotted path", "symlink", "hard link", "symlinked folder")


def _inputs(tmp: Path, command: str) -> dict[str, Path]:
    """A plausible file for every input option of ``command``."""
    made = {}
    for option, suffix in COMMANDS[command][0].items():
        path = tmp / f"in_{option.strip('-').lower()}{suffix}"
        if option in ("MODEL",):
            tiny_model(path)
        elif option == "--hw":
            shutil.copy(CHIP, path)
        elif suffix == ".npy":
            np.save(path, np.zeros((1, 1, 8, 8), np.float32))
        elif suffix == ".npz":
            np.savez(path, x=np.zeros((4, 1, 8, 8), np.float32), y=np.zeros(4, np.int64))
        elif option == "--spec":
            path.write_text("vary:\n  glb.size_kb: [64, 128]\n")
        else:
            path.write_text("{}\n" if option == "--mapping" else "name,energy_total\nconv1,1\n")
        made[option] = path
    return made


def _args(command: str, files: dict[str, Path], outputs: dict[str, Path]) -> list[str]:
    """The command line: positional input first, then options."""
    args = [command, str(files.pop("MODEL", None) or files.pop("SOURCE"))]
    for option, path in [*files.items(), *outputs.items()]:
        args += [option, str(path)]
    if command == "sweep" and "--spec" not in files:
        args += ["--vary", "glb.size_kb=64"]
    return args


def _alias(tmp: Path, target: Path, suffix: str, kind: str) -> Path:
    """An output path naming the file ``target`` by ``kind``; for the first two, ``target`` takes the suffix."""
    if kind in ("same path", "dotted path"):
        renamed = target.with_suffix(suffix)
        target.rename(renamed)
        (tmp / "sub").mkdir(exist_ok=True)
        return renamed if kind == "same path" else tmp / "sub" / ".." / renamed.name
    if kind == "symlink":
        (tmp / f"link{suffix}").symlink_to(target)
        return tmp / f"link{suffix}"
    if kind == "hard link":
        os.link(target, tmp / f"hard{suffix}")
        return tmp / f"hard{suffix}"
    (tmp / "alias").symlink_to(tmp, target_is_directory=True)
    renamed = target.with_suffix(suffix)
    target.rename(renamed)
    return tmp / "alias" / renamed.name


@pytest.mark.parametrize("kind", LINKS)
@pytest.mark.parametrize(("command", "inp", "out"), PAIRS, ids=[" ".join(p) for p in PAIRS])
def test_an_output_that_is_one_of_the_inputs_is_refused(tmp_path, command, inp, out, kind):
    option, _, suffix = out.partition("=")
    suffix = suffix or COMMANDS[command][1][option]
    files = _inputs(tmp_path, command)
    alias = _alias(tmp_path, files[inp], suffix, kind)
    if kind in ("same path", "dotted path", "symlinked folder"):
        files[inp] = files[inp].with_suffix(suffix)
    run_cli(_args(command, files, {option: alias}), watch=tmp_path).refused(
        f"{option} ", f"is the same file as {inp}", "refusing to overwrite it")


@pytest.mark.parametrize("second", ["same", "dotted", "hard link", "symlink"])
@pytest.mark.parametrize("suffix", [".csv", ".json"])
def test_two_outputs_that_are_one_file_are_refused(tmp_path, suffix, second):
    files = _inputs(tmp_path, "estimate")
    first = tmp_path / f"out{suffix}"
    first.write_text("kept\n")
    (tmp_path / "sub").mkdir()
    other = {"same": first, "dotted": tmp_path / "sub" / ".." / first.name,
             "hard link": tmp_path / f"hard{suffix}", "symlink": tmp_path / f"link{suffix}"}[second]
    if second == "hard link":
        os.link(first, other)
    elif second == "symlink":
        other.symlink_to(first)
    args = ["estimate", str(files["MODEL"]), "--hw", str(files["--hw"]), "-o", str(first), "-o", str(other)]
    run_cli(args, watch=tmp_path).refused("-o ", "is the same file as -o")


# --- outputs that cannot be written are refused before any work ----------------------------------------------------

OUTPUT_OPTIONS = [(cmd, option, suffix) for cmd, (_, outs) in COMMANDS.items() for option, suffix in outs.items()]
UNWRITABLE = {
    "missing folder": (lambda tmp, s: tmp / "no" / "such" / f"out{s}", "does not exist"),
    "folder is a file": (lambda tmp, s: _a_file(tmp) / f"out{s}", "is not a folder"),
    "fifo": (lambda tmp, s: _fifo(tmp / f"fifo{s}"), "not a regular file"),
    "name too long": (lambda tmp, s: tmp / ("x" * 300 + s), "file name too long"),
    "wrong suffix": (lambda tmp, s: tmp / "out.txt", "must end in"),
    "a folder": (lambda tmp, s: _folder(tmp / f"dir{s}"), "is a directory"),
}


def _a_file(tmp: Path) -> Path:
    return next(p for p in sorted(tmp.iterdir()) if p.is_file())


def _fifo(path: Path) -> Path:
    os.mkfifo(path)
    return path


def _folder(path: Path) -> Path:
    path.mkdir()
    return path


@pytest.mark.parametrize("kind", UNWRITABLE)
@pytest.mark.parametrize(("command", "option", "suffix"), OUTPUT_OPTIONS,
                         ids=[f"{c} {o}" for c, o, _ in OUTPUT_OPTIONS])
def test_an_output_that_cannot_be_written_is_refused_before_any_work(tmp_path, command, option, suffix, kind):
    files = _inputs(tmp_path, command)
    make, needle = UNWRITABLE[kind]
    run_cli(_args(command, files, {option: make(tmp_path, suffix)}), watch=tmp_path).refused(needle)


def test_an_error_naming_a_file_stays_on_one_line(tmp_path):
    files = _inputs(tmp_path, "estimate")
    out = tmp_path / "two\nlines" / "out.csv"
    run_cli(_args("estimate", files, {"-o": out}), watch=tmp_path).refused("two\\nlines")


# --- one writer per sweep output ----------------------------------------------------------------------------------

@dataclass
class Holder:
    """A forked process holding the lock of an output until killed."""

    pid: int
    waited: bool = False

    def kill(self) -> None:
        if not self.waited:
            os.kill(self.pid, signal.SIGKILL)

    def wait(self) -> None:
        if not self.waited:
            os.waitpid(self.pid, 0)
            self.waited = True


@pytest.fixture
def holder():
    """Start a process holding the lock of an output (forked: it starts in milliseconds); yields the starter."""
    started = []

    def start(output: Path) -> Holder:
        started.append(Holder(fork_holding(output_lock, output)))
        return started[-1]

    yield start
    for proc in started:
        proc.kill()
        proc.wait()


@pytest.mark.parametrize(("suffix", "spelling"), [(".parquet", "same"), (".csv", "dotted"), (".parquet", "symlink")])
def test_a_second_writer_of_a_sweep_output_is_refused_naming_the_first(tmp_path, holder, suffix, spelling):
    files = _inputs(tmp_path, "sweep")
    output = tmp_path / f"s{suffix}"
    proc = holder(output)
    (tmp_path / "sub").mkdir()
    if spelling == "symlink":
        (tmp_path / f"link{suffix}").symlink_to(output)
    named = {"same": output, "dotted": tmp_path / "sub" / ".." / output.name, "symlink": tmp_path / f"link{suffix}"}
    outcome = run_cli(_args("sweep", files, {"-o": named[spelling]}), watch=tmp_path)
    outcome.refused("another sweep is writing it", f"pid {proc.pid}", "started ", "choose another output file")


def test_a_lock_left_by_a_killed_sweep_does_not_block_the_next(tmp_path, holder):
    files = _inputs(tmp_path, "sweep")
    output = tmp_path / "s.parquet"
    proc = holder(output)
    proc.kill()
    proc.wait()
    assert (tmp_path / "s.parquet.lock").exists()  # the file stays; the kernel dropped the lock itself
    (tmp_path / ".s.parquet.12345.tmp").write_bytes(b"half a file")  # and a killed writer's temporary file
    outcome = run_cli(_args("sweep", files, {"-o": output}))
    assert outcome.code == 0, outcome.stderr
    assert len(read_sweep(output)) == 2 * 4  # the spec's 2 configurations: 3 layers and TOTAL each
    assert not (tmp_path / "s.parquet.lock").exists() and not (tmp_path / ".s.parquet.12345.tmp").exists()


@pytest.mark.parametrize("kind", ["symlink to an input", "folder", "fifo"])
def test_a_hostile_lock_file_is_refused(tmp_path, kind):
    files = _inputs(tmp_path, "sweep")
    lock = tmp_path / "s.parquet.lock"
    {"symlink to an input": lambda: lock.symlink_to(files["--hw"]), "folder": lock.mkdir,
     "fifo": lambda: os.mkfifo(lock)}[kind]()
    run_cli(_args("sweep", files, {"-o": tmp_path / "s.parquet"}), watch=tmp_path).refused("lock")


def test_the_lock_file_cannot_be_an_input(tmp_path):
    files = _inputs(tmp_path, "sweep")
    files["--hw"] = files["--hw"].rename(tmp_path / "s.parquet.lock")
    run_cli(_args("sweep", files, {"-o": tmp_path / "s.parquet"}), watch=tmp_path).refused("lock file", "--hw")


def test_two_threads_of_one_process_cannot_write_one_output(tmp_path):
    output, errors = tmp_path / "s.parquet", []

    def second() -> None:
        try:
            with output_lock(output):
                pass
        except EyesimError as err:
            errors.append(str(err))

    with output_lock(output), output_lock(output):  # the same thread may nest (the CLI, then run_sweep)
        thread = threading.Thread(target=second)
        thread.start()
        thread.join()
    assert errors and "another sweep in this process" in errors[0]
    with output_lock(output):  # released
        pass


def test_concurrent_sweeps_of_different_grids_never_lose_configurations(tmp_path):
    model = tiny_model(tmp_path / "m.onnx")
    output = tmp_path / "s.parquet"
    grids = ["glb.size_kb=16:256:16", "glb.size_kb=272:512:16", "glb.size_kb=528:768:16"]
    started = [start_cli(["sweep", str(model), "--hw", str(CHIP), "--vary", g, "--vary", "rf.filter_words=64:256:64",
                          "-o", str(output), "--workers", "1", "--quiet"], timeout=300) for g in grids]  # 3 processes
    ran = []
    for child, g in zip(started, grids, strict=True):
        outcome = child.outcome()
        err = outcome.stderr
        if outcome.code == 2:
            assert "another sweep is writing it (pid " in err and len(err.strip().splitlines()) == 1, err
        else:
            assert outcome.code == 0, err
            ran.append(g)
    assert ran  # the first to lock always runs
    totals = read_sweep(output).query("layer == 'TOTAL'")
    assert len(totals) == 16 * 4 * len(ran)  # every configuration of every sweep that said it ran, none lost


# --- a killed sweep leaves no workers and no broken file ----------------------------------------------------------


def _children(pid: int) -> list[int]:
    """Live (not zombie) processes whose parent is ``pid``, from /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            state, ppid = stat.rsplit(")", 1)[1].split()[:2]
            if int(ppid) == pid and state != "Z":
                found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(sys.platform != "linux", reason="reads the process table in /proc")
@pytest.mark.parametrize("runner", [["--workers", "2"], ["--dask-workers", "2"]], ids=["processes", "dask"])
def test_a_killed_sweep_leaves_no_workers_and_a_readable_file(tmp_path, runner):
    if runner[0] == "--dask-workers":
        pytest.importorskip("dask.distributed")
    output = tmp_path / "s.parquet"
    proc = subprocess.Popen([sys.executable, "-m", "eyesim", "sweep", str(ALEXNET), "--hw", str(CHIP), "--vary",
                             "glb.size_kb=32:512:32", "--vary", "rf.filter_words=64:4096:64", "--vary", "batch=1:16",
                             "--no-reuse", "-o",
                             str(output), *runner, "--quiet"], stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not (output.exists() and len(_children(proc.pid)) >= 2):
            time.sleep(0.2)  # until the workers run and the first chunks are written
        workers = _children(proc.pid)
        assert len(workers) >= 2 and proc.poll() is None, "the sweep ended before it could be killed"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(_alive(w) for w in workers):
        time.sleep(0.1)
    assert not [w for w in workers if _alive(w)], "workers outlived the killed sweep"
    frame = read_sweep(output)  # written by rename only: never half a file
    rows = frame.groupby(["glb.size_kb", "rf.filter_words", "batch"])["status"].agg(["size", "first"])
    assert len(rows) > 0  # complete configurations only: 8 layers and TOTAL, or an invalid one's TOTAL alone
    assert all(n == 9 or (n == 1 and status != "ok") for n, status in rows.itertuples(index=False))


@pytest.mark.skipif(sys.platform != "linux", reason="reads the process table in /proc")
@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_stopped_sweep_writes_every_finished_chunk_first(tmp_path, stop):
    """``kill`` (SIGTERM, also a batch scheduler's stop) ends a sweep as Ctrl-C does: the rows finished since the
    last write (every 5 s) are written, the workers end, and it says so; before, SIGTERM lost those rows."""
    output = tmp_path / "s.parquet"
    proc = subprocess.Popen([sys.executable, "-m", "eyesim", "sweep", str(ALEXNET), "--hw", str(CHIP), "--vary",
                             "glb.size_kb=32:512:32", "--vary", "rf.filter_words=64:4096:64", "--vary", "batch=1:16",
                             "--no-reuse", "--chunk-size", "4", "--workers", "2", "-o", str(output), "--quiet"],
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(_children(proc.pid)) < 2:
        time.sleep(0.1)
    workers = _children(proc.pid)
    time.sleep(2.0)  # chunks of 4 configurations finish in tens of ms; the first write is due at 5 s
    assert proc.poll() is None, "the sweep ended before it could be stopped"
    proc.send_signal(stop)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 1 and err.strip().splitlines()[-1] == "eyesim: aborted", err
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(_alive(w) for w in workers):
        time.sleep(0.1)
    assert not [w for w in workers if _alive(w)], "workers outlived the stopped sweep"
    rows = read_sweep(output).groupby(["glb.size_kb", "rf.filter_words", "batch"])["status"].agg(["size", "first"])
    assert len(rows) >= 4  # at least one finished chunk, written at the stop
    assert all(n == 9 or (n == 1 and status != "ok") for n, status in rows.itertuples(index=False))


# --- CSV: integers stay integers; text never runs as a formula ------------------------------------------------------


@pytest.mark.parametrize("text", [*FORMULAS, "\t=1", "\r=1", "''=1", "conv1", "", "a=b", "1", "-1.5"])
def test_safe_cell_quotes_formulas_and_reads_back_exactly(text):
    written = safe_cell(text)
    assert not re.match(r"[=+\-@\t\r]", written)
    assert written == (("'" + text) if re.match(r"'*[=+\-@\t\r]", text) else text)
    assert unsafe_cell(written) == text
    assert safe_cell(-2) == -2 and safe_cell(1.5) == 1.5 and safe_cell(None) is None  # numbers stay numbers


def _cells(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _assert_safe_and_integer(rows: list[dict[str, str]], int_columns=INT_COLUMNS) -> None:
    for row in rows:
        for column, cell in row.items():
            if re.match(r"[=+@\t\r]", cell) or (cell.startswith("-") and not re.fullmatch(r"-[\d.e+-]+", cell)):
                raise AssertionError(f"{column}: {cell!r} would run as a formula")
        for column in int_columns:
            if row.get(column):
                assert re.fullmatch(r"-?\d+", row[column]), f"{column}: {row[column]!r} is not an integer"


@pytest.mark.parametrize("name", FORMULAS)
def test_an_estimate_csv_quotes_formula_names_and_keeps_integers(tmp_path, name):
    model = tiny_model(tmp_path / "m.onnx", (name, "b" + name, "fc"), graph=name)
    out = tmp_path / "r.csv"
    outcome = run_cli(["estimate", str(model), "--hw", str(CHIP), "-o", str(out), "--quiet"])
    assert outcome.code == 0, outcome.stderr
    rows = _cells(out)
    _assert_safe_and_integer(rows)
    assert rows[0]["name"] == safe_cell(name) and rows[1]["name"] == "b" + name
    assert rows[-1]["name"] == "TOTAL" and rows[-1]["C"] == ""  # a gap, not 0 and not NaN


@pytest.mark.parametrize("name", FORMULAS)
def test_a_sweep_csv_quotes_formula_names_reads_them_back_and_resumes(tmp_path, name):
    model = tiny_model(tmp_path / "=m.onnx", (name, "conv2", "fc"))  # the model column is the file's stem
    out = tmp_path / "s.csv"
    base = ["sweep", str(model), "--hw", str(CHIP), "-o", str(out), "--workers", "1", "--quiet"]
    assert run_cli([*base, "--vary", "glb.size_kb=64,128", "--vary", "glb.filter_kb=0,100"]).code == 0
    assert run_cli([*base, "--vary", "glb.size_kb=64,128,256", "--vary", "glb.filter_kb=0,100"]).code == 0  # resumed
    rows = _cells(out)
    _assert_safe_and_integer(rows)
    frame = read_sweep(out)
    assert set(frame["layer"]) == {name, "conv2", "fc", "TOTAL"} and set(frame["model"]) == {"=m"}
    invalid = frame[frame["status"] != "ok"]
    assert len(invalid) == 1 and str(frame["C"].dtype) == "Int64"  # 64 kB with 100 kB for filters: invalid


def test_a_prune_report_quotes_formula_names_and_keeps_integers(tmp_path, digits):
    model = onnx.load(str(digits / "cnn.onnx"))
    names = {node.name: hostile for node, hostile in
             zip([n for n in model.graph.node if n.name], FORMULAS, strict=False)}
    for node in model.graph.node:
        node.name = names.get(node.name, node.name)
    onnx.save(model, str(tmp_path / "m.onnx"))
    report = tmp_path / "r.csv"
    outcome = run_cli(["prune", str(tmp_path / "m.onnx"), "--hw", str(CHIP), "--data", str(digits / "data.npz"),
                       "--report", str(report), "--quiet"], timeout=120)
    assert outcome.code == 0, outcome.stderr
    rows = _cells(report)
    _assert_safe_and_integer(rows, ("weights", "nonzero_before", "nonzero_after", "trials", "pass"))
    assert {row["layer"] for row in rows[:-1]} <= {safe_cell(n) for n in names.values()}
