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
