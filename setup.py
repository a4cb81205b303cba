"""Build hook: compile eyesim's kernels ahead of time at install (eyesim/dataflow/aot_build.py).

Optional: where it cannot be built (no C compiler, or a Numba without pycc), the install goes on with a warning
and eyesim compiles its kernels with Numba's JIT on first use instead; ``EYESIM_BUILD_KERNELS=0`` skips it on
purpose. Metadata: setup.cfg.
"""

import os
import sys
import tempfile
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

ROOT = Path(__file__).resolve().parent


class BuildKernels(build_ext):
    """Builds the one extension, ``eyesim.dataflow._aot``, with Numba's pycc instead of from C sources."""

    def build_extension(self, ext: Extension) -> None:
        target = Path(self.get_ext_fullpath(ext.name))
        if os.environ.get("EYESIM_BUILD_KERNELS", "1") == "0":
            print("eyesim: EYESIM_BUILD_KERNELS=0: kernels not compiled ahead of time", file=sys.stderr)
            return
        sys.path.insert(0, str(ROOT))  # this checkout's eyesim, whatever is installed
        scratch = tempfile.TemporaryDirectory(prefix="eyesim-build-")
        os.environ["EYESIM_CACHE_DIR"] = scratch.name  # the JIT compiles the callees: not into the user's cache
        try:
            from eyesim.dataflow.aot_build import build

            print(f"eyesim: compiling the kernels ahead of time (~20 s) into {target.name}", file=sys.stderr)
            build(target)
        except Exception as err:  # noqa: BLE001 - any failure leaves the JIT kernels, which always work
            print(f"eyesim: warning: kernels not compiled ahead of time ({type(err).__name__}: {err}); "
                  "eyesim compiles them on first use instead", file=sys.stderr)
        finally:
            sys.path.remove(str(ROOT))
            scratch.cleanup()


setup(ext_modules=[Extension("eyesim.dataflow._aot", sources=[], optional=True)],
      cmdclass={"build_ext": BuildKernels})
