"""The command line's table, JSON and CSV stay byte for byte what they were (golden files in tests/golden/)."""

from __future__ import annotations

import difflib
import gzip

import pytest

from tests.golden.make_golden import GOLDEN, ROOT, VARIANTS, outputs


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_outputs_match_golden_files(name, monkeypatch):
    monkeypatch.chdir(ROOT)  # the outputs name the model and hardware files as given, relative to the root
    for suffix, data in outputs(VARIANTS[name]).items():
        golden = gzip.decompress((GOLDEN / f"{name}.{suffix}.gz").read_bytes())
        if data != golden:
            diff = difflib.unified_diff(golden.decode().splitlines(), data.decode().splitlines(), "golden", "now",
                                        lineterm="", n=0)
            pytest.fail(f"{name}.{suffix} differs from its golden file:\n" + "\n".join(list(diff)[:12]))
