"""Shared check for command-line tests: bad input gives one line on stderr and exit code 2."""

from __future__ import annotations


def assert_one_line_error(res, *needles: str) -> None:
    """``res`` (a click CliRunner result) failed with exit 2 and one stderr line holding every needle."""
    assert res.exit_code == 2, res.output
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert "Traceback" not in res.output
    for needle in needles:
        assert needle in lines[0], lines[0]
