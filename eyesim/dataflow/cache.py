"""Where the kernels' compiled code is kept, and the notice while they compile on first use.

Numba caches a kernel next to its source by default, in the installed package's ``__pycache__``. Those files
are not in pip's record of the install, so ``pip uninstall`` leaves them, and the package-less ``eyesim/``
folder they keep in site-packages shadows a later editable install (``import eyesim`` finds an empty namespace
package). So eyesim's kernels, and only they, are cached in the user's cache folder: ``$EYESIM_CACHE_DIR/numba``,
else ``$XDG_CACHE_HOME/eyesim/numba``, else ``~/.cache/eyesim/numba``; an explicit ``NUMBA_CACHE_DIR`` wins (Numba
then places them itself). Numba picks a kernel's cache folder when the kernel is decorated, so ``install`` runs
before any kernel module is imported: ``eyesim.dataflow`` imports this module first, and every other module that
defines a kernel imports it. It imports nothing of eyesim but the error type.

Compiling takes about 20 s, once per install (again only when a kernel's source changes). Numba's compile event
fires only on a cache miss, so the first run says so on stderr when stderr is a terminal, as the progress line
does, and a cached run says nothing.
"""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

from numba import config
from numba.core import caching, event

from eyesim.errors import EyesimError

ENV = "EYESIM_CACHE_DIR"
PACKAGE = Path(__file__).resolve().parent.parent  # the eyesim package: whose files this locator takes
QUIET_SECONDS = 1.0  # compile bursts of one run are this close; the summary waits for the last one


def cache_root(environ=os.environ) -> tuple[Path, bool]:
    """eyesim's cache folder, and whether the user chose it (EYESIM_CACHE_DIR) rather than the default."""
    chosen = environ.get(ENV, "")
    if chosen:
        return Path(chosen).expanduser().absolute(), True
    base = environ.get("XDG_CACHE_HOME", "") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base).expanduser().absolute() / "eyesim", False


def unusable(folder: Path) -> str | None:
    """Why kernels cannot be cached in ``folder`` (made if missing), or None when a file can be written there."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=folder).close()
    except (OSError, ValueError) as err:  # ValueError: a NUL byte in the path
        return err.strerror or str(err) if isinstance(err, OSError) else str(err)
    return None


def kernel_folder(environ=os.environ) -> Path | None:
    """The folder eyesim's kernels are cached in; None when NUMBA_CACHE_DIR hands the choice to Numba.

    An unusable EYESIM_CACHE_DIR is the user's error; an unusable default (a read-only home) falls back to a
    private temporary folder for this process, with a warning, so eyesim still runs (compiling every time).
    """
    if environ.get("NUMBA_CACHE_DIR"):
        return None
    root, chosen = cache_root(environ)
    folder = root / "numba"
    reason = unusable(folder)
    if reason is None:
        return folder
    if chosen:
        shown = environ[ENV].replace("\n", "\\n")  # the message stays one line
        raise EyesimError(f"{ENV}={shown}: cannot keep compiled kernels in its numba/ folder: {reason}; "
                          "give a writable folder")
    private = Path(tempfile.mkdtemp(prefix="eyesim-kernels-"))
    atexit.register(shutil.rmtree, private, True)
    print(f"eyesim: warning: cannot keep compiled kernels in {folder} ({reason}); they are compiled again in every "
          f"run (set {ENV} to a writable folder)", file=sys.stderr)
    return private


def ours(py_file: str) -> bool:
    """Whether a source file belongs to the eyesim package."""
    try:
        return Path(os.path.realpath(py_file)).is_relative_to(PACKAGE)
    except (OSError, ValueError):
        return False


def locator_class(folder: Path) -> type:
    """Numba's user-folder cache locator, narrowed to eyesim's files and pointed at ``folder``."""
    base = getattr(caching, "UserProvidedCacheLocator", None) or caching._UserProvidedCacheLocator

    class EyesimCacheLocator(base):
        """Caches an eyesim kernel in eyesim's folder, under a name unique to the install's path."""

        def __init__(self, py_func, py_file):
            super().__init__(py_func, py_file)
            self._cache_path = str(folder / self.get_suitable_cache_subpath(py_file))

        @classmethod
        def from_function(cls, py_func, py_file):
            if config.CACHE_DIR or not ours(py_file):
                return None  # the user's NUMBA_CACHE_DIR, or not eyesim's code: Numba's own locators decide
            return super(base, cls).from_function(py_func, py_file)  # the source-file mixin: made and writable

    return EyesimCacheLocator


class CompileNotice(event.Listener):
    """Says on a terminal's stderr, once per process, that eyesim's kernels are compiling, then how long it took."""

    def __init__(self, folder: Path | None) -> None:
        self.folder = folder
        self.depth = 0  # nested compiles: a kernel compiles the kernels it calls
        self.started = 0.0
        self.total = 0.0
        self.pid = 0  # the process that announced (a forked worker announces its own)
        self.timer: threading.Timer | None = None
        self.lock = threading.Lock()

    def on_start(self, ev) -> None:
        """A cache miss: announce the first one; time the outermost compile."""
        if not self._eyesim(ev):
            return
        with self.lock:
            self.depth += 1
            if self.depth > 1:
                return
            self.started = time.perf_counter()
            if self.timer is not None:
                self.timer.cancel()
            if self.pid != os.getpid() and _terminal():
                self.pid, self.total = os.getpid(), 0.0
                self._say("compiling kernels for first use (once per install, ~20 s)...")

    def on_end(self, ev) -> None:
        """The outermost compile ended: the summary follows once no other compile starts soon."""
        if not self._eyesim(ev):
            return
        with self.lock:
            self.depth -= 1
            if self.depth > 0 or self.pid != os.getpid():
                return
            self.total += time.perf_counter() - self.started
            self.timer = threading.Timer(QUIET_SECONDS, self.summary)
            self.timer.daemon = True
            self.timer.start()

    def summary(self) -> None:
        """Print the compile time once (by the timer, or at exit if the process ends first)."""
        with self.lock:
            if self.pid != os.getpid() or self.depth > 0:
                return
            if self.timer is not None:
                self.timer.cancel()
            where = f"; cached in {self.folder}" if self.folder is not None else ""
            self._say(f"compiled in {self.total:.1f} s{where}")
            self.pid = -1  # announced and summarized: later compiles in this process stay quiet

    @staticmethod
    def _eyesim(ev) -> bool:
        dispatcher = (ev.data or {}).get("dispatcher")
        return getattr(getattr(dispatcher, "py_func", None), "__module__", "").startswith("eyesim.")

    @staticmethod
    def _say(text: str) -> None:
        # a terminal only: clear a progress line first, so the notice stands on its own line
        sys.stderr.write(f"\r\x1b[Keyesim: {text}\n")
        sys.stderr.flush()


def _terminal() -> bool:
    """Whether stderr is a terminal (not a pipe, a file, or missing)."""
    try:
        return sys.stderr is not None and sys.stderr.isatty()
    except (AttributeError, ValueError):  # a replaced or closed stream
        return False


def install() -> None:
    """Put eyesim's locator first among Numba's and listen for compiles; done once per process."""
    impl = getattr(caching, "CacheImpl", None) or caching._CacheImpl
    if any(cls.__name__ == "EyesimCacheLocator" for cls in impl._locator_classes):
        return
    folder = kernel_folder()
    if folder is not None:
        impl._locator_classes = [locator_class(folder), *impl._locator_classes]
    notice = CompileNotice(folder if folder is not None else Path(config.CACHE_DIR))
    event.register("numba:compile", notice)
    atexit.register(notice.summary)


install()
