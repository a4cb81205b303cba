"""What the warm estimate reuses stays correct: a hardware file read again when it changes, one validation."""

from __future__ import annotations

from pathlib import Path

import pytest

from eyesim.errors import EyesimError
from eyesim.hardware import spec
from eyesim.hardware.load import load_hardware, with_overrides

CHIP = Path(__file__).resolve().parent.parent / "hwconfigs" / "eyeriss.yaml"


def test_changed_hardware_file_is_read_again(tmp_path: Path) -> None:
    """A file rewritten at once with the same size (mtime may not move) gives the new Hardware."""
    path = tmp_path / "hw.yaml"
    text = CHIP.read_text()
    assert "size_kb: 108" in text
    path.write_text(text)
    first = load_hardware(path)
    assert load_hardware(path) is first  # the same text: the same (frozen) Hardware
    path.write_text(text.replace("size_kb: 108", "size_kb: 109"))
    assert load_hardware(path).glb.size_kb == 109
    path.write_text(text.replace("size_kb: 108", "size_kb: 1e99"))
    with pytest.raises(EyesimError, match="glb.size_kb"):
        load_hardware(path)
    with pytest.raises(EyesimError, match="glb.size_kb"):  # a refusal is never cached
        load_hardware(path)
    path.write_text(text)
    assert load_hardware(path) == first


def test_same_text_other_path_names_its_own_source(tmp_path: Path) -> None:
    other = tmp_path / "copy.yaml"
    other.write_text(CHIP.read_text())
    assert load_hardware(other).source == str(other)
    assert load_hardware(CHIP).source == str(CHIP)


def test_loaded_hardware_validated_once(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Loading validates the file's fields once (not again in Hardware.__post_init__); a direct build still does."""
    calls = []
    real = spec.validate
    monkeypatch.setattr(spec, "validate", lambda *args: calls.append(args) or real(*args))
    path = tmp_path / "hw.yaml"
    path.write_text(CHIP.read_text() + "\n")  # a text not loaded before
    hw = load_hardware(path)
    with_overrides(hw, {"glb.size_kb": 64})
    assert calls == []
    with pytest.raises(EyesimError, match="clock_mhz"):
        spec.Hardware(**{**vars(hw), "clock_mhz": -1.0})
    assert len(calls) == 1
