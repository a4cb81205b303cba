"""A first user's path: the README's installs in either order, the kernels' cache folder, the first run, --debug.

Numba used to cache the kernels in the installed package's ``__pycache__``; ``pip uninstall`` left those files, and
the package-less ``site-packages/eyesim/`` they kept shadowed a later editable install. The kernels now cache in the
user's folder (``eyesim/dataflow/cache.py``); these tests run real processes, installs and terminals.
"""

from __future__ import annotations

import os
import pty
import shutil
import subprocess
import sys
import sysconfig
import threading
from pathlib import Path

import pytest

from eyesim.dataflow.cache import ENV, cache_root, kernel_folder
from eyesim.dataflow.kernels import ENV as KERNELS_ENV
from eyesim.errors import EyesimError
from tests.hostile import Outcome, run_cli, run_fresh

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "eyesim"
BIN = Path(sys.executable).parent
ALEXNET, CHIP = str(ROOT / "models_onnx" / "alexnet.onnx"), str(ROOT / "hwconfigs" / "eyeriss.yaml")
LENET = str(ROOT / "models_onnx" / "lenet5-mnist.onnx")
NOTICE, DONE = "eyesim: compiling kernels for first use", "eyesim: compiled in "
TINY = "from eyesim.dataflow.geometry import ceil_div; print(ceil_div(7, 2))"  # one small kernel: a 1 s compile


def environ(**changes: str | None) -> dict[str, str]:
    """This environment with the eyesim and Numba cache variables cleared, then ``changes`` applied.

    The JIT kernels are chosen (``EYESIM_KERNELS=jit``): their cache is what these tests are about; the kernels
    built at install (tests/test_kernels.py) use no cache folder.
    """
    env = {k: v for k, v in os.environ.items() if k not in (ENV, "NUMBA_CACHE_DIR")}
    env[KERNELS_ENV] = "jit"
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    for key, value in changes.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def in_terminal(args: list[str], env: dict[str, str], cwd: Path = ROOT) -> tuple[int, str, str]:
    """Run with stderr on a pseudo-terminal, as in a user's shell (stdout piped): exit code, stdout, stderr."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=slave, stdin=subprocess.DEVNULL, env=env, cwd=cwd)
    os.close(slave)
    chunks: list[bytes] = []

    def drain() -> None:
        while True:
            try:
                data = os.read(master, 4096)
            except OSError:  # EIO: every holder of the terminal has closed it
                return
            if not data:
                return
            chunks.append(data)

    reader = threading.Thread(target=drain)
    reader.start()
    out, _ = proc.communicate(timeout=600)
    reader.join(timeout=60)
    os.close(master)
    err = b"".join(chunks).decode(errors="replace").replace("\r", "").replace("\x1b[K", "")
    return proc.returncode, out.decode(), err


def cache_files(folder: Path) -> dict[str, float]:
    """Numba's index and data files under ``folder``, with their modification times."""
    return {str(p): p.stat().st_mtime for p in folder.rglob("*") if p.suffix in (".nbi", ".nbc")}


# --- where the kernels are cached ---------------------------------------------------------------------------------

def test_the_first_estimate_compiles_into_the_cache_folder_says_so_once_and_the_next_run_is_quiet(tmp_path):
    """A cold EYESIM_CACHE_DIR: notice and time on the terminal, files there and none in the package; then silence."""
    before = cache_files(PACKAGE)
    env = environ(**{ENV: str(tmp_path / "cache")})
    args = [str(BIN / "eyesim"), "estimate", ALEXNET, "--hw", CHIP, "-o", str(tmp_path / "r.json")]
    code, out, err = in_terminal(args, env)
    assert code == 0, err
    lines = err.strip().splitlines()
    assert [line for line in lines if line.startswith(NOTICE)] == [lines[0]]
    assert sum(line.startswith(DONE) for line in lines) == 1 and str(tmp_path / "cache" / "numba") in err
    assert out.splitlines()[0].startswith("model alexnet") and "TOTAL" in out  # stdout is the table alone
    assert '"layers"' in (tmp_path / "r.json").read_text()
    made = cache_files(tmp_path / "cache" / "numba")
    assert any("search_layer" in name for name in made) and len(made) >= 10
    assert cache_files(PACKAGE) == before, "a kernel was cached inside the package"
    code, out_again, err_again = in_terminal(args, env)
    assert code == 0 and out_again == out
    assert NOTICE not in err_again and DONE not in err_again, err_again


def test_the_notice_is_for_terminals_only(tmp_path):
    """Piped stderr (scripts, CI, tests) stays clean even on a cache miss; a terminal hears about it."""
    env = environ(**{ENV: str(tmp_path)})
    proc = subprocess.run([sys.executable, "-c", TINY], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0 and proc.stdout == "4\n" and proc.stderr == "", proc.stderr
    code, out, err = in_terminal([sys.executable, "-c", TINY], environ(**{ENV: str(tmp_path / "other")}))
    assert code == 0 and out == "4\n" and NOTICE in err and DONE in err, err


def kernel_modules() -> list[str]:
    """Every eyesim module that defines a Numba kernel (read from the source)."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if "@njit" in path.read_text() or "@jit" in path.read_text():
            found.append(".".join(path.relative_to(ROOT).with_suffix("").parts))
    return found


CHECK = """
import importlib, sys
from numba.core.dispatcher import Dispatcher
module = importlib.import_module(sys.argv[1])
for name, obj in vars(module).items():
    if isinstance(obj, Dispatcher) and obj.py_func.__module__ == module.__name__:
        print(obj._cache.cache_path)
"""


@pytest.mark.parametrize("module", kernel_modules())
def test_every_kernel_module_imported_first_caches_in_the_folder(tmp_path, module):
    """Imported on its own, before anything else of eyesim: Numba picks the folder at decoration time."""
    proc = subprocess.run([sys.executable, "-c", CHECK, module], capture_output=True, text=True, timeout=300,
                          env=environ(**{ENV: str(tmp_path)}), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    paths = proc.stdout.split()
    assert paths and all(Path(p).is_relative_to(tmp_path / "numba") for p in paths), paths


def test_an_explicit_numba_cache_dir_wins(tmp_path):
    env = environ(**{ENV: str(tmp_path / "eyesim"), "NUMBA_CACHE_DIR": str(tmp_path / "numba")})
    proc = subprocess.run([sys.executable, "-c", CHECK, "eyesim.dataflow.search"], capture_output=True, text=True,
                          env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert all(Path(p).is_relative_to(tmp_path / "numba") for p in proc.stdout.split()), proc.stdout


def test_the_default_folder_follows_xdg_then_home(tmp_path):
    assert cache_root({"XDG_CACHE_HOME": str(tmp_path / "xdg")}) == (tmp_path / "xdg" / "eyesim", False)
    home = cache_root({"HOME": str(tmp_path), "XDG_CACHE_HOME": ""})
    assert home[0].name == "eyesim" and home[0].parent.name == ".cache" and not home[1]
    assert cache_root({ENV: str(tmp_path / "mine"), "XDG_CACHE_HOME": "x"}) == (tmp_path / "mine", True)
    assert cache_root({ENV: "rel"})[0] == Path.cwd() / "rel"
    assert kernel_folder({ENV: str(tmp_path / "k")}) == tmp_path / "k" / "numba" and (tmp_path / "k").is_dir()
    assert kernel_folder({"NUMBA_CACHE_DIR": str(tmp_path)}) is None
    with pytest.raises(EyesimError, match=f"{ENV}=.*give a writable folder"):
        kernel_folder({ENV: "/dev/null"})


def test_an_unwritable_default_folder_warns_and_still_runs(tmp_path):
    """A read-only home: one warning line, the kernels compiled in a private folder, nothing in the package."""
    before = cache_files(PACKAGE)
    env = environ(HOME="/proc/no-home", XDG_CACHE_HOME=None)
    proc = subprocess.run([sys.executable, "-c", TINY], capture_output=True, text=True, env=env, timeout=300,
                          cwd=tmp_path)
    assert proc.returncode == 0 and proc.stdout == "4\n", proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("eyesim: warning: cannot keep compiled kernels in /proc/no-home")
    assert cache_files(PACKAGE) == before


# --- an unusable EYESIM_CACHE_DIR is the user's error: one line, exit 2 ---------------------------------------------

def bad_folders(tmp: Path) -> dict[str, str]:
    """Values of EYESIM_CACHE_DIR no kernel can be kept under, by what is wrong with them."""
    (tmp / "file").write_text("x")
    (tmp / "has-numba-file").mkdir()
    (tmp / "has-numba-file" / "numba").write_text("x")
    (tmp / "loop").symlink_to(tmp / "loop")
    (tmp / "new\nline").write_text("x")
    return {"a file": str(tmp / "file"), "below a file": str(tmp / "file" / "sub"), "a device": "/dev/null",
            "under /proc": "/proc/eyesim-cache", "numba is a file": str(tmp / "has-numba-file"),
            "a symlink loop": str(tmp / "loop"), "a name too long": str(tmp / ("n" * 300)),
            "a path too long": str(tmp / "/".join(["d" * 200] * 25)), "under /sys": "/sys/eyesim-cache",
            "a file with a newline": str(tmp / "new\nline")}


BAD = ["a file", "below a file", "a device", "under /proc", "numba is a file", "a symlink loop", "a name too long",
       "a path too long", "under /sys", "a file with a newline"]
COMMANDS = {"estimate": ["estimate", ALEXNET, "--hw", CHIP],
            "sweep": ["sweep", ALEXNET, "--hw", CHIP, "--vary", "batch=1", "-o", "{tmp}/s.parquet"],
            "prune": ["prune", LENET, "--hw", CHIP, "--data", "{tmp}/d.npz", "--eval",
                      "{tmp}/d.npz", "-o", "{tmp}/p.onnx"]}


def run_real(args: list[str], env: dict[str, str], watch: Path) -> Outcome:
    """``eyesim ARGS`` as a new process (the cache folder is chosen at import); its memory is the whole process's
    peak (a fresh interpreter with Numba, not growth over a parent)."""
    return run_fresh([str(BIN / "eyesim"), *args], env, ROOT, watch)


# every value on estimate; one on each other command that compiles kernels (plot needs none), to keep it short
@pytest.mark.parametrize(("command", "bad"), [("estimate", bad) for bad in BAD] +
                         [("prune", BAD[0]), ("sweep", BAD[2])])
def test_an_unusable_eyesim_cache_dir_is_refused_in_one_line(tmp_path, command, bad):
    value = bad_folders(tmp_path)[bad]
    watch = tmp_path / "watch"
    watch.mkdir()
    args = [a.replace("{tmp}", str(watch)) for a in COMMANDS[command]]
    outcome = run_real(args, environ(**{ENV: value}), watch)
    # a fresh interpreter importing Numba, onnx and pandas: seconds on a loaded 2-core machine, not a hang
    outcome.refused(f"{ENV}=", "give a writable folder", seconds=60)


# --- --debug before or after the command's name ------------------------------------------------------------------

CASES = {  # (command, arguments with a user error, the error's words)
    "estimate missing model": (["estimate", "{tmp}/nope.onnx", "--hw", CHIP], "no such file"),
    "estimate missing hardware": (["estimate", ALEXNET, "--hw", "{tmp}/nope.yaml"], "hardware file not found"),
    "sweep unknown field": (["sweep", ALEXNET, "--hw", CHIP, "--vary", "glb.sizekb=1", "-o", "{tmp}/s.parquet"],
                            "unknown field glb.sizekb"),
    "sweep missing model": (["sweep", "{tmp}/nope.onnx", "--hw", CHIP, "--vary", "batch=1", "-o", "{tmp}/s.parquet"],
                            "no such file"),
    "plot missing file": (["plot", "{tmp}/nope.json"], "file not found"),
    "plot not a result": (["plot", "{tmp}/empty.txt"], "expected a sweep"),
    "prune missing model": (["prune", "{tmp}/nope.onnx", "--hw", CHIP, "--data", "{tmp}/d.npz", "--eval",
                             "{tmp}/d.npz", "-o", "{tmp}/p.onnx"], "no such file"),
    "prune missing data": (["prune", LENET, "--hw", CHIP, "--data", "{tmp}/d.npz",
                            "--eval", "{tmp}/e.npz", "-o", "{tmp}/p.onnx"], "no such file"),
}
WHERE = {"before the command": lambda a: ["--debug", *a],
         "after the command's name": lambda a: [a[0], "--debug", *a[1:]], "at the end": lambda a: [*a, "--debug"],
         "twice": lambda a: ["--debug", *a, "--debug"]}


def case_args(name: str, tmp: Path) -> tuple[list[str], str]:
    (tmp / "empty.txt").write_text("")
    args, needle = CASES[name]
    return [a.replace("{tmp}", str(tmp)) for a in args], needle


@pytest.mark.parametrize("name", sorted(CASES))
def test_without_debug_an_error_is_one_line(tmp_path, name):
    args, needle = case_args(name, tmp_path)
    run_cli(args, watch=tmp_path).refused(needle)


@pytest.mark.parametrize("where", sorted(WHERE))
@pytest.mark.parametrize("name", sorted(CASES))
def test_debug_anywhere_shows_the_traceback_then_the_one_line(tmp_path, name, where):
    args, needle = case_args(name, tmp_path)
    outcome = run_cli(WHERE[where](args), watch=tmp_path)
    lines = outcome.stderr.strip().splitlines()
    assert outcome.code == 2, outcome.stderr
    assert "Traceback (most recent call last)" in outcome.stderr and "EyesimError" in outcome.stderr
    assert lines[-1].startswith("eyesim: error: ") and needle in lines[-1]
    assert not outcome.changed and outcome.seconds < 5


@pytest.mark.parametrize("args", [["estimate", ALEXNET, "--hw", CHIP, "--debug=yes"], ["--no-debug", "plot", "x"],
                                  ["plot", "x", "--debug", "--debug=1"], ["estimate", "--debugg", ALEXNET]])
def test_a_misspelt_debug_is_a_usage_error(tmp_path, args):
    run_cli(args, watch=tmp_path).refused("debug")


def test_debug_after_the_command_is_in_its_help():
    for command in COMMANDS | {"plot": []}:
        outcome = run_cli([command, "--help"])
        assert outcome.code == 0 and "after the command's name" in " ".join(outcome.stdout.split())


# --- the README's two installs, in either order, in one environment -----------------------------------------------

def repository_copy(dest: Path) -> Path:
    """The repository's files as a fresh clone has them (tracked and new, not ignored), without build leftovers."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)
    return dest


def venv_with_dependencies(folder: Path) -> Path:
    """A new environment whose own site-packages is empty, seeing this one's packages but not its eyesim."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder)], check=True)
    python = folder / "bin" / "python"
    own = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                              capture_output=True, text=True, check=True).stdout.strip())
    view = folder / "deps"
    view.mkdir()
    for source in {Path(sysconfig.get_paths()["purelib"]), Path(sysconfig.get_paths()["platlib"])}:
        for entry in source.iterdir():
            hidden = entry.name.lower().startswith(("eyesim", "__editable__.eyesim", "__editable___eyesim"))
            if not hidden and not (view / entry.name).exists():
                (view / entry.name).symlink_to(entry)
    (own / "zz_test_dependencies.pth").write_text(f"{view}\n")
    return python


def test_readme_install_commands_in_either_order(tmp_path):
    """``pip install .``, an estimate, then ``pip install -e .`` and back, in one environment (no network:
    --no-deps and --no-build-isolation, the dependencies seen from this environment).

    The first install compiles the kernels ahead of time: its estimate imports no Numba and caches nothing. The
    later ones skip that (EYESIM_BUILD_KERNELS=0, which keeps this test short), so the editable install's
    estimate compiles with the JIT, into the user's cache folder and not into the package.
    """
    repo = repository_copy(tmp_path / "repo")
    python = venv_with_dependencies(tmp_path / "venv")
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    env = environ(HOME=str(tmp_path / "home"), XDG_CACHE_HOME=str(tmp_path / "xdg"),
                  PATH=f"{python.parent}{os.pathsep}{os.environ.get('PATH', '')}", **{KERNELS_ENV: None})
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    where = "import eyesim; eyesim.estimate; print(eyesim.__file__)"
    kernels = "import sys, eyesim.dataflow.kernels as k; print(k.SOURCE, '|', 'numba' in sys.modules)"
    estimate = [str(python.parent / "eyesim"), "estimate", ALEXNET, "--hw", CHIP]

    def run(*args: str, cwd: Path = repo) -> str:
        proc = subprocess.run(list(args), capture_output=True, text=True, env=env, cwd=cwd, timeout=900)
        assert proc.returncode == 0, f"{args}: {proc.stdout}{proc.stderr}"
        return proc.stdout

    install = [str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation"]
    run(*install, ".")
    assert list((site / "eyesim" / "dataflow").glob("_aot*")), "the kernels were not built at install"
    assert run(str(python), "-c", kernels, cwd=outside).strip() == "ahead-of-time build | False"
    assert "TOTAL" in run(*estimate)
    assert not cache_files(tmp_path / "xdg") and not cache_files(site / "eyesim"), "a kernel compiled at first use"
    env["EYESIM_BUILD_KERNELS"] = "0"
    run(*install, "-e", ".")
    assert not (site / "eyesim").exists(), sorted(str(p) for p in (site / "eyesim").rglob("*"))
    assert run(str(python), "-c", where, cwd=outside).strip() == str(repo / "eyesim" / "__init__.py")
    assert "TOTAL" in run(*estimate)
    assert cache_files(tmp_path / "xdg" / "eyesim" / "numba") and not cache_files(repo / "eyesim")
    run(*install, ".")  # and back: the regular install over the editable one
    assert run(str(python), "-c", where, cwd=outside).strip() == str(site / "eyesim" / "__init__.py")
    run(str(python), "-m", "pip", "uninstall", "-q", "-y", "eyesim")
    assert not (site / "eyesim").exists()


def test_debug_shows_the_traceback_of_an_error_raised_while_the_kernels_load(tmp_path):
    """The cache folder is checked when the kernels are imported, outside a command's guard: --debug still works."""
    (tmp_path / "file").write_text("x")
    outcome = run_real(["estimate", ALEXNET, "--hw", CHIP, "--debug"], environ(**{ENV: str(tmp_path / "file")}),
                       tmp_path)
    lines = outcome.stderr.strip().splitlines()
    assert outcome.code == 2 and "Traceback (most recent call last)" in outcome.stderr
    assert lines[-1].startswith(f"eyesim: error: {ENV}=") and not outcome.changed
