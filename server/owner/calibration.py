"""The calibrated default threshold and its error rates, as shown next to the setting.

The face engineer's calibration lives in docs/face.md. It may carry a machine-readable
line ``<!-- calibration: {"threshold": 0.55, "far": 0.001, "frr": 0.02, "set": "LFW"} -->``;
when it does, the owner sees those FAR/FRR figures, otherwise "not published yet".
Read once per process: the document changes only with a release.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass

import numpy as np

from ..config import REPO_ROOT
from ..face.matcher import DEFAULT_THRESHOLD

MARKER = re.compile(r"<!--\s*calibration:\s*(\{.*?\})\s*-->", re.S)


@dataclass(frozen=True)
class Calibration:
    threshold: float
    far: float | None
    frr: float | None
    dataset: str

    @property
    def summary(self) -> str:
        if self.far is None or self.frr is None:
            return f"calibrated default {self.threshold:g} (FAR/FRR: see docs/face.md)"
        return (
            f"calibrated default {self.threshold:g}: false accepts {self.far:.2%}, "
            f"false rejects {self.frr:.2%} on {self.dataset}"
        )


@functools.cache
def calibration() -> Calibration:
    try:
        text = (REPO_ROOT / "docs" / "face.md").read_text()
    except OSError:
        text = ""
    match = MARKER.search(text)
    if match:
        try:
            data = json.loads(match.group(1))
            return Calibration(
                float(data.get("threshold", DEFAULT_THRESHOLD)),
                float(data["far"]),
                float(data["frr"]),
                str(data.get("set", "LFW")),
            )
        except (ValueError, KeyError, TypeError):
            pass
    return Calibration(DEFAULT_THRESHOLD, None, None, "LFW")


# -- per engine (docs/face.md "calibration-engines" line) ----------------------------------

ENGINE_MARKER = re.compile(r"<!--\s*calibration-engines:\s*(\{.*?\})\s*-->", re.S)
ENGINE_LABELS = {
    "dlib": "dlib ResNet",
    "sface": "SFace",
    "both": "both must accept",
    "fused": "fused (one calibrated score)",
}


@dataclass(frozen=True)
class EngineCalibration:
    """FAR / FRR of one room engine setting at one threshold (dlib's distance unit),
    interpolated on the LFW curve the eval CLI measured; None outside the measured range."""

    engine: str
    threshold: float
    far: float | None
    frr: float | None
    dataset: str

    @property
    def summary(self) -> str:
        label = ENGINE_LABELS.get(self.engine, self.engine)
        if self.far is None or self.frr is None:
            return f"{label} at {self.threshold:g}: not measured (see docs/face.md)"
        return (
            f"{label} at {self.threshold:g}: false accepts {self.far:.2%}, "
            f"false rejects {self.frr:.2%} on {self.dataset}"
        )

    def as_json(self) -> dict[str, object]:
        return {
            "engine": self.engine,
            "threshold": self.threshold,
            "far": self.far,
            "frr": self.frr,
            "set": self.dataset,
        }


@functools.cache
def _engine_curves() -> tuple[str, dict[str, list[tuple[float, float, float]]], dict[str, object]]:
    try:
        text = (REPO_ROOT / "docs" / "face.md").read_text()
    except OSError:
        text = ""
    match = ENGINE_MARKER.search(text)
    if not match:
        return "LFW", {}, {}
    try:
        data = json.loads(match.group(1))
        curves = {
            str(engine): sorted((float(t), float(far), float(frr)) for t, far, frr in rows)
            for engine, rows in data["curves"].items()
        }
        return str(data.get("set", "LFW")), curves, dict(data.get("params", {}))
    except (ValueError, KeyError, TypeError):
        return "LFW", {}, {}


def engine_calibration(engine: str, threshold: float) -> EngineCalibration:
    dataset, curves, _ = _engine_curves()
    rows = curves.get(engine, [])
    if not rows or not rows[0][0] - 1e-9 <= threshold <= rows[-1][0] + 1e-9:
        return EngineCalibration(engine, threshold, None, None, dataset)
    ts = [r[0] for r in rows]
    far = float(np.interp(threshold, ts, [r[1] for r in rows]))
    frr = float(np.interp(threshold, ts, [r[2] for r in rows]))
    return EngineCalibration(engine, threshold, far, frr, dataset)


def engine_calibrations(threshold: float) -> dict[str, EngineCalibration]:
    """Every room engine setting's FAR / FRR at ``threshold``, for the owner to compare."""
    from ..face.scoring import ROOM_ENGINES

    return {engine: engine_calibration(engine, threshold) for engine in ROOM_ENGINES}


def calibration_params() -> dict[str, object]:
    """SFace threshold and fusion parameters published with the curves."""
    return _engine_curves()[2]
