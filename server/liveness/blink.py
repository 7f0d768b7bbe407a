"""The blink step's eye track: closure scores over time, judged against the open level.

Why its own object: a blink is a sequence (the eyes close, then reopen within a
blink's length), judged against the eyes' recent open level rather than one baseline,
so it keeps state across samples; :class:`~.challenge.Challenge` feeds it every sample
(during other steps too, so the level is current when a blink step begins).

Why the level is read on *comparable* frames only: the landmarker's closure score
follows its crop, and the crop follows the face box. On a still of a face that fills
the frame, Chromium's VP8 frames moved BlazeFace's box between two places (width 0.69
and 0.82 of the frame, centre 0.06 face widths apart) as the encoder's quality rose at
the start of the stream; the score followed, 0.12 on the small box and 0.42 on the
large one, and a small-box level with a large-box frame read as eyes closing: the
still "blinked" (the e2e test of 2026-12-02's CI run, reproduced in
tests/liveness/test_blink_framing.py). A tracking frame's crop (server/face/tracking.py)
moves the score too (up to 0.19 on zubair_real). So the level a frame is compared with
comes from recent frames with nearly the same box and the same kind of crop; a frame
with none is not judged (a real blink lasts several frames at 15 fps, and the person
can blink again within the step).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from .sample import LivenessSample, box_change

if TYPE_CHECKING:
    from .challenge import ActiveConfig


def framed_alike(a: LivenessSample, b: LivenessSample, cfg: ActiveConfig) -> bool:
    """Whether the landmarker saw ``a`` and ``b`` through nearly the same crop: the same
    kind (detector or tracked) and a face box of nearly the same size and place."""
    if a.tracked != b.tracked:
        return False
    scale, shift = box_change(a, b)
    return 1 / cfg.blink_level_scale <= scale <= cfg.blink_level_scale and (
        shift <= cfg.blink_level_shift
    )


def steady(s: LivenessSample, prev: LivenessSample | None, cfg: ActiveConfig) -> bool:
    """The face moved, grew and turned little since the previous frame, and is big
    enough to read eyelids on (see ``ActiveConfig.blink_steady_*``)."""
    if 0 < s.width_px < cfg.blink_min_face_px:
        return False
    if prev is None:
        return True
    scale, jump = box_change(s, prev)
    turn = max(abs(s.measures.yaw - prev.measures.yaw), abs(s.measures.pitch - prev.measures.pitch))
    return (
        jump < cfg.blink_steady_jump
        and 1 / cfg.blink_steady_scale < scale < cfg.blink_steady_scale
        and turn < cfg.blink_steady_deg
    )


@dataclass
class EyeTrack:
    """Closure scores of the last ``blink_level_s`` seconds, and a blink in progress."""

    config: ActiveConfig
    baseline_ear: float
    fallback: float | None  # the baseline's open level (None: the mesh's EAR rule)
    _recent: list[tuple[float, float, LivenessSample]] = field(default_factory=list)
    _closed: bool = False
    _open_level: float = 0.0  # the level the closing frame rose from
    _peak: float = 0.0  # the highest closure score since the eyes closed
    _closed_at: float = 0.0

    def begin(self, samples: list[LivenessSample], now: float) -> None:
        """A new challenge: the level starts from ``samples`` (the baseline's frames)."""
        self._closed = False
        self._recent = [(now, s.blink, s) for s in samples if s.blink is not None]

    def next_step(self) -> None:
        """A step passed: no blink in progress; the level's frames are kept."""
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    def note(self, s: LivenessSample, now: float) -> None:
        """Remember this frame's score (other steps: the level stays current)."""
        if s.blink is None:
            return
        keep = self.config.blink_level_s
        self._recent = [r for r in self._recent if now - r[0] <= keep]
        self._recent.append((now, s.blink, s))

    def level(self, now: float, like: LivenessSample | None = None) -> float | None:
        """The open level a score of a frame framed like ``like`` is measured from: a
        low percentile of the recent scores of frames framed alike. ``None``: no recent
        frame framed alike, nothing to compare with. Without ``like`` (a bench's
        question): all recent frames, or the baseline's level when none are recent."""
        cfg = self.config
        recent = [
            v for t, v, s in self._recent
            if now - t <= cfg.blink_level_s and (like is None or framed_alike(like, s, cfg))
        ]
        if recent:
            return float(np.percentile(recent, cfg.blink_level_pct))
        return self.fallback if like is None else None

    def feed(self, s: LivenessSample, prev: LivenessSample | None, now: float) -> bool:
        """One sample of the blink step; True once the eyes closed and reopened.

        With blendshapes: closing is a rise of ``blink_rise`` over the level of frames
        framed alike, on a steady face (a photo waved about, or a detection jumping
        between faces, changes scores without any eyelid moving); reopening is a fall
        back towards that level (on any frame: the box of a closing eye moves, and
        asking the reopening frame to be framed like the closing one missed 5 of the
        shared clips' 48 blinks at the gate's rate, bench/bench_blinks.py). Eyes that stay
        "closed" longer than a blink (a print tilted away and held) do not count: the
        track restarts from that frame.
        """
        cfg = self.config
        score = s.blink
        if score is None or self.fallback is None:  # mesh only: the eye aspect ratio
            if s.ear <= self.baseline_ear * cfg.blink_closed:
                self._closed = True
                return False
            return self._closed and s.ear >= self.baseline_ear * cfg.blink_open
        if self._closed:
            if now - self._closed_at > cfg.blink_max_closed_s:
                self._closed, self._recent = False, [(now, score, s)]
                return False
            self._peak = max(self._peak, score)
            was = self._open_level
            return score <= max(was + cfg.blink_reopen, (was + self._peak) / 2)
        level = self.level(now, s)
        self.note(s, now)
        if level is not None and score - level >= cfg.blink_rise and steady(s, prev, cfg):
            self._closed, self._closed_at = True, now
            self._peak, self._open_level = score, level
        return False
