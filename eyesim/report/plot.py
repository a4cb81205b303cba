"""Pictures: per-layer energy bars of an estimate, and energy against the swept fields of a sweep.

matplotlib is an optional extra (``eyesim[plot]``); it is imported only when a picture is drawn, and
only its object-oriented API is used (no pyplot state, no backend switch). PNG or SVG by the output
file's suffix.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from eyesim.errors import EyesimError

SCALE = 1e6  # energies are shown in millions of normalized units, as in the table
TYPES = (("weights", "weights"), ("ifmap", "ifmaps"), ("ofmap", "ofmaps (incl. psums)"), ("comp", "computation"))
LEVELS = (("dram", "DRAM"), ("glb", "GLB"), ("array", "array"), ("rf", "RF"), ("mac", "MAC"))
PICTURE_SUFFIXES = (".png", ".svg")
TOTAL = "TOTAL"
ENERGY_LABEL = "energy per inference [10^6 MAC units]"
_MAX_LINES = 12  # lines drawn in the energy-vs-field panel; the rest are left out (said in the legend title)


# --- entry points ---------------------------------------------------------------------------------


def plot_file(source: str | os.PathLike[str], output: str | os.PathLike[str], x: str | None = None,
              by: str | None = None) -> None:
    """Draw ``source``: a sweep (.parquet/.csv with sweep columns), an estimate result (.json) or its CSV."""
    source = Path(source)
    suffix = source.suffix.lower()
    if suffix == ".json":
        plot_result(_read_json(source), output)
        return
    if suffix not in (".parquet", ".pq", ".csv"):
        raise EyesimError(f"{source}: expected a sweep (.parquet, .csv) or an estimate result (.json, .csv)")
    from eyesim.sweep.output import read_table

    frame = read_table(source).to_pandas()
    if "sweep_id" in frame.columns and "layer" in frame.columns:
        plot_sweep(frame, output, x=x, by=by)
    elif {"name", "energy_total"} <= set(frame.columns):
        plot_result(_result_from_frame(frame, source.stem), output)
    else:
        raise EyesimError(f"{source}: neither an eyesim sweep nor an estimate result (no sweep_id or energy columns)")


def plot_result(result: dict[str, Any], path: str | os.PathLike[str]) -> None:
    """Per-layer stacked bars of energy by data type and by level (an estimate result's dict, README schema)."""
    path = _picture_path(path)
    layers = result.get("layers") if isinstance(result, dict) else None
    if not layers:
        raise EyesimError("the result has no layers to draw")
    names = [layer["name"] for layer in layers]
    figure = _new_figure(width=max(8.0, 0.45 * len(names) + 3), height=8.0)
    top, bottom = figure.subplots(2, 1, sharex=True)
    _stacked_bars(top, names, [layer["energy"]["by_type"] for layer in layers], TYPES, "by data type")
    _stacked_bars(bottom, names, [layer["energy"]["by_level"] for layer in layers], LEVELS, "by level")
    bottom.set_xticks(range(len(names)), names, rotation=60 if len(names) > 8 else 0, ha="right", fontsize=8)
    hw = result.get("hardware", {})
    hw_name = hw.get("name", "") if isinstance(hw, dict) else ""
    figure.suptitle(f"{result.get('model', '')} on {hw_name}, batch {result.get('batch', '?')}: energy per layer")
    _save(figure, path)


def plot_sweep(frame: pd.DataFrame, path: str | os.PathLike[str], x: str | None = None,
               by: str | None = None) -> None:
    """Energy against a swept field (one line per value of another) and the energy-area Pareto front."""
    path = _picture_path(path)
    totals, fields = _valid_totals(frame)
    x_col, x_label = _x_axis(totals, fields, x)
    by_col = _by_field(totals, fields, x_col, by)
    figure = _new_figure(width=13.0, height=5.5)
    left, right = figure.subplots(1, 2)
    _energy_lines(left, totals, fields, x_col, x_label, by_col)
    _pareto_panel(right, totals, fields)
    figure.suptitle(f"sweep of {totals['model'].iloc[0]}: {len(totals)} valid configurations")
    _save(figure, path)


def pareto_mask(energy: np.ndarray, area: np.ndarray) -> np.ndarray:
    """True where no other point has energy and area both <= and one of them <, i.e. Pareto-optimal."""
    energy, area = np.asarray(energy, dtype=float), np.asarray(area, dtype=float)
    order = np.lexsort((energy, area))
    mask = np.zeros(len(energy), dtype=bool)
    best_e, best_a = np.inf, np.nan
    for i in order:
        if energy[i] < best_e or (energy[i] == best_e and area[i] == best_a):
            mask[i] = True
            best_e, best_a = energy[i], area[i]
    return mask


# --- sweep panels ---------------------------------------------------------------------------------


def _valid_totals(frame: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """The TOTAL rows of valid configurations, with energy per inference; and the configuration columns."""
    from eyesim.sweep.output import OK_STATUS, config_columns

    fields = config_columns(frame.columns)
    totals = frame[(frame["layer"] == TOTAL) & (frame["status"] == OK_STATUS)].copy()
    if totals.empty or "energy_total" not in totals.columns:
        raise EyesimError("the sweep has no valid configuration to draw")
    totals["energy_per_inference"] = totals["energy_total"] / totals["batch"] / SCALE
    return totals.reset_index(drop=True), fields


def _swept(totals: pd.DataFrame, fields: list[str]) -> list[str]:
    return [f for f in fields if totals[f].nunique() > 1]


def _x_axis(totals: pd.DataFrame, fields: list[str], x: str | None) -> tuple[str, str]:
    """The x column (``array`` is the PE count rows x cols) and its label."""
    swept = _swept(totals, fields)
    if x is None:
        x = swept[0] if swept else fields[0]
        if x in ("array.rows", "array.cols") and {"array.rows", "array.cols"} <= set(swept):
            x = "array"
    if x == "array" and {"array.rows", "array.cols"} <= set(fields):
        totals["array (PEs)"] = totals["array.rows"] * totals["array.cols"]
        return "array (PEs)", "PEs (array.rows x array.cols)"
    if x not in fields:
        raise EyesimError(f"--x {x}: not a swept field of this sweep (its fields: {', '.join(fields)})")
    return x, x


def _by_field(totals: pd.DataFrame, fields: list[str], x_col: str, by: str | None) -> str | None:
    """The field drawn as one line per value: ``by``, else the first other swept field."""
    linked = {"array.rows", "array.cols"} if x_col == "array (PEs)" else {x_col}
    if by is not None:
        if by not in fields or by in linked:
            raise EyesimError(f"--by {by}: not another swept field of this sweep (its fields: {', '.join(fields)})")
        return by
    others = [f for f in _swept(totals, fields) if f not in linked]
    return others[0] if others else None


def _energy_lines(ax: Any, totals: pd.DataFrame, fields: list[str], x_col: str, x_label: str,
                  by: str | None) -> None:
    """Least energy per inference over the fields not drawn, against x, one line per value of ``by``."""
    drawn = {x_col, by} | ({"array.rows", "array.cols"} if x_col == "array (PEs)" else set())
    rest = [f for f in _swept(totals, fields) if f not in drawn]
    groups = [(None, totals)] if by is None else list(totals.groupby(by, sort=True))
    for value, group in groups[:_MAX_LINES]:
        best = group.groupby(x_col, sort=True)["energy_per_inference"].min()
        ax.plot(best.index, best.values, marker="o", label=None if by is None else f"{value:g}")
    if by is not None:
        more = f" (first {_MAX_LINES} of {len(groups)})" if len(groups) > _MAX_LINES else ""
        ax.legend(title=f"{by}{more}", fontsize=8)
    ax.set_xlabel(x_label)
    ax.set_ylabel(ENERGY_LABEL)
    note = f"least over {', '.join(rest)}" if rest else "energy against the swept field"
    ax.set_title(note, fontsize=9)
    ax.grid(True, alpha=0.3)


def _pareto_panel(ax: Any, totals: pd.DataFrame, fields: list[str]) -> None:
    """Every configuration in the energy-area plane; the Pareto-optimal ones marked and joined."""
    energy, area = totals["energy_per_inference"].to_numpy(), totals["area_mm2"].to_numpy()
    mask = pareto_mask(energy, area)
    ax.scatter(area[~mask], energy[~mask], s=12, color="0.6", label="configuration")
    order = np.argsort(area[mask])
    ax.step(area[mask][order], energy[mask][order], where="post", color="C3", alpha=0.6)
    ax.scatter(area[mask], energy[mask], s=30, color="C3", label=f"Pareto-optimal ({int(mask.sum())})", zorder=3)
    swept = _swept(totals, fields)
    if 0 < mask.sum() <= 8 and swept:
        for i in np.flatnonzero(mask):
            text = ", ".join(f"{f.rsplit('.', 1)[-1]}={totals[f].iloc[i]:g}" for f in swept)
            ax.annotate(text, (area[i], energy[i]), fontsize=6, xytext=(4, 4), textcoords="offset points")
    ax.set_xlabel("area [mm²]")
    ax.set_ylabel(ENERGY_LABEL)
    ax.set_title("energy-area trade-off", fontsize=9)
    ax.legend(fontsize=8)
    ax.grid(True, alpha=0.3)


# --- estimate bars --------------------------------------------------------------------------------


def _stacked_bars(ax: Any, names: list[str], parts: list[dict[str, float]], keys: tuple, title: str) -> None:
    bottom = np.zeros(len(names))
    for key, label in keys:
        values = np.array([float(part.get(key) or 0.0) for part in parts]) / SCALE
        ax.bar(range(len(names)), values, bottom=bottom, label=label)
        bottom += values
    ax.set_ylabel("energy [10^6 MAC units]")
    ax.set_title(f"energy {title}", fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(True, axis="y", alpha=0.3)


def _result_from_frame(frame: pd.DataFrame, model: str) -> dict[str, Any]:
    """An estimate CSV (one row per layer, a TOTAL row) as the layers of a result dict."""
    rows = frame[frame["name"].astype(str) != TOTAL]
    missing = [f"energy_{k}" for k, _ in (*TYPES, *LEVELS) if f"energy_{k}" not in frame.columns]
    if missing:
        raise EyesimError(f"estimate CSV lacks the columns {', '.join(missing)}")
    layers = [{"name": str(row["name"]),
               "energy": {"by_type": {k: row[f"energy_{k}"] for k, _ in TYPES},
                          "by_level": {k: row[f"energy_{k}"] for k, _ in LEVELS}}} for _, row in rows.iterrows()]
    batch = int(rows["N"].iloc[0]) if "N" in rows.columns and len(rows) else "?"
    return {"model": model, "batch": batch, "layers": layers}


# --- matplotlib and files -------------------------------------------------------------------------


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise EyesimError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise EyesimError(f"{path}: not an estimate result JSON ({' '.join(str(err).split())})") from None
    if not isinstance(data, dict) or "layers" not in data:
        raise EyesimError(f"{path}: not an estimate result JSON (no layers)")
    return data


def _picture_path(path: str | os.PathLike[str]) -> Path:
    path = Path(path)
    if path.suffix.lower() not in PICTURE_SUFFIXES:
        raise EyesimError(f"{path}: the picture must end in .png or .svg")
    return path


def _new_figure(width: float, height: float) -> Any:
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise EyesimError("matplotlib is not installed; pip install 'eyesim[plot]' to draw pictures") from None
    return Figure(figsize=(width, height), layout="constrained")


def _save(figure: Any, path: Path) -> None:
    try:
        figure.savefig(path, dpi=120)
    except OSError as err:
        raise EyesimError(f"{path}: cannot write ({err.strerror or err})") from None
