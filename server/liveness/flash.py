"""Screen-light challenge: a random colour sequence on the participant's screen, and a
judge that checks the face's skin answered it in sync (like iProov's Flashmark or the
colour sequence of AWS Face Liveness).

Pure and sans-IO. The gate draws a :class:`FlashSequence` with a CSPRNG and sends it to
the page, which fills the screen with it after ``lead_s``; each analysed frame brings a
:class:`~server.liveness.lightmeter.LightSample` (face chroma against the background)
and its time; :class:`LightChallenge` decides once every latency it allows for has
been covered. A photo, a screen replay or a pre-recorded clip does not answer with
*this* session's colours and timing.

How the judge decides (:func:`judge`): each colour has an expected effect on skin
chroma, ``(r - g, b - g)`` of the screen colour (red light raises ``log R/G``, blue
raises ``log B/G``, green lowers both). For every camera/network latency in
``[min_lag_s, max_lag_s]`` the frames are assigned to the colour on screen when they
were taken; both series are detrended (slow auto-exposure / white-balance drift and
movement), outliers are clamped, and the per-channel correlations are averaged. The
best latency must reach ``min_corr`` (each channel ``min_channel_corr``) with a gain of
at least ``min_gain`` (the face's log-chroma change per unit of expected change), from
enough frames covering enough colours; and the background must answer less than
``max_background_ratio`` of the face, or the whole scene was lit alike (``flat``: paper
or glass around the face). Measured rates, and what this does not defeat, are in
docs/liveness.md; the reflection there is simulated.

Photosensitivity (WCAG 2.3.1, three flashes): every colour is held at least
``min_step_ms`` (400 ms), so no one-second window holds more than three changes of
colour, counting the first colour's onset and the return to the page;
:meth:`FlashSequence.max_changes_per_s` checks a sequence, and tests check every
draw. Rooms can turn flashing off (``rooms.no_flashing``).
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from .lightmeter import LightSample

# Screen colours: the six corners of the chroma hexagon, a little desaturated. What
# matters is the pair (r - g, b - g): consecutive flashes are drawn far apart in it.
PALETTE: dict[str, tuple[int, int, int]] = {
    "red": (255, 48, 48),
    "magenta": (255, 48, 255),
    "blue": (48, 48, 255),
    "cyan": (48, 255, 255),
    "green": (48, 255, 48),
    "yellow": (255, 255, 48),
}


def expected_chroma(colour: str) -> tuple[float, float]:
    """The direction a colour moves skin's ``(log R/G, log B/G)``, in screen units."""
    r, g, b = (c / 255.0 for c in PALETTE[colour])
    return (r - g, b - g)


@dataclass(frozen=True)
class FlashConfig:
    """Timing and decision thresholds (docs/liveness.md, "Screen-light challenge")."""

    # 7-8 flashes: fewer leave too much room for an earlier session's sequence to fit
    # this one by chance (docs/liveness.md has the measured rates).
    min_flashes: int = 7
    max_flashes: int = 8
    min_step_ms: int = 400  # >= 334 ms keeps every 1 s window at <= 3 changes (WCAG 2.3.1)
    max_step_ms: int = 650
    step_grain_ms: int = 50
    min_contrast: float = 1.1  # chroma distance between consecutive colours
    lead_s: float = 1.5  # message -> first colour: time to read / hear the announcement
    # Latency searched between the page's colour and the frame the gate sees: network
    # one way, page render, camera exposure and encode, network back, decode, analysis.
    min_lag_s: float = 0.0
    max_lag_s: float = 1.2
    lag_step_s: float = 0.04
    guard_s: float = 0.12  # frames this soon after a change may mix two colours
    min_corr: float = 0.75  # weighted mean of the two chroma channels' correlations
    min_channel_corr: float = 0.4  # each channel must answer too
    min_gain: float = 0.008  # log-chroma change per unit of expected change
    max_background_ratio: float = 0.6  # background gain / face gain above this = flat
    min_samples: int = 12
    min_colours: int = 3
    # Frames a second the edge should analyse during the window (the gate's usual 4 fps
    # leaves ~2 frames per colour; 8 doubles the evidence for ~5 s).
    sample_fps: float = 8.0

    def __post_init__(self) -> None:
        if not 1 <= self.min_flashes <= self.max_flashes:
            raise ValueError("need 1 <= min_flashes <= max_flashes")
        if self.min_step_ms < 334 or self.max_step_ms < self.min_step_ms:
            raise ValueError("flashes must last >= 334 ms each (WCAG 2.3.1: <= 3 a second)")


@dataclass(frozen=True)
class FlashStep:
    colour: str
    ms: int

    @property
    def css(self) -> str:
        return "#{:02x}{:02x}{:02x}".format(*PALETTE[self.colour])


@dataclass(frozen=True)
class FlashSequence:
    steps: tuple[FlashStep, ...]

    @property
    def duration_s(self) -> float:
        return sum(s.ms for s in self.steps) / 1000.0

    def onsets(self) -> list[float]:
        """Seconds from the first colour's onset to each step's onset."""
        out, t = [], 0.0
        for step in self.steps:
            out.append(t)
            t += step.ms / 1000.0
        return out

    def max_changes_per_s(self) -> int:
        """Most colour changes inside any one-second window, counting the first onset
        and the return to the page at the end (the photosensitivity measure)."""
        changes = [*self.onsets(), self.duration_s]
        return max(sum(1 for c in changes if t <= c < t + 1.0) for t in changes)


def draw_sequence(rng: random.Random, config: FlashConfig | None = None) -> FlashSequence:
    """A random sequence from ``rng`` (production: ``secrets.SystemRandom()``).

    Consecutive colours are far apart in chroma, and both chroma axes must vary so
    each carries evidence; a draw that misses is drawn again.
    """
    cfg = config or FlashConfig()
    names = list(PALETTE)
    grains = range(cfg.min_step_ms, cfg.max_step_ms + 1, cfg.step_grain_ms)
    while True:
        count = rng.randint(cfg.min_flashes, cfg.max_flashes)
        colours = [rng.choice(names)]
        while len(colours) < count:
            prev = expected_chroma(colours[-1])
            far = [n for n in names if math.dist(expected_chroma(n), prev) >= cfg.min_contrast]
            colours.append(rng.choice(far))
        axes = np.array([expected_chroma(c) for c in colours])
        varied = count < 3 or bool((axes.std(axis=0) > 0.2).all())
        if varied and len(set(colours)) >= min(cfg.min_colours, count):
            return FlashSequence(tuple(FlashStep(c, rng.choice(grains)) for c in colours))


@dataclass(frozen=True)
class LightVerdict:
    """The judge's decision and the figures behind it (for the audit log and tuning).

    ``detail`` names a failure: ``too_few_frames``, ``no_answer`` (the face's chroma
    does not follow the sequence), ``too_weak`` (it follows, but too faintly to tell
    from noise) or ``flat`` (the background answers as much as the face: paper or a
    screen around the face, lit evenly).
    """

    passed: bool
    detail: str
    corr: float
    weakest: float
    gain: float
    background_gain: float
    lag_s: float
    samples: int


def _clip_outliers(values: np.ndarray) -> np.ndarray:
    """Clamp each column to its median +- 4 robust standard deviations (a hand passing)."""
    med = np.median(values, axis=0)
    mad = np.median(np.abs(values - med), axis=0) * 1.4826 + 1e-6
    return np.asarray(np.clip(values, med - 4 * mad, med + 4 * mad))


@dataclass(frozen=True)
class _Fit:
    corr: float  # per-channel correlations, weighted by the expected series' spread
    weakest: float  # the weaker channel's correlation
    gain: float  # measured change per unit of expected change (log-chroma)
    lag: float
    used: np.ndarray  # indices of the samples inside the sequence at this lag
    step: np.ndarray  # their step index


def _weighted_residual(v: np.ndarray, w: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Per lag (rows of ``w``): ``v`` minus its weighted straight line in time.

    ``v`` is (L, N, 2), ``w`` (L, N) of 0/1, ``t`` (L, N) times centred per lag.
    """
    n = np.maximum(w.sum(axis=1), 1.0)[:, None, None]
    ww = w[..., None]
    vc = v - (ww * v).sum(axis=1, keepdims=True) / n
    tt = np.maximum((w * t * t).sum(axis=1), 1e-12)[:, None, None]
    beta = (ww * t[..., None] * vc).sum(axis=1, keepdims=True) / tt
    return np.asarray(vc - t[..., None] * beta)


def _fit_lags(
    expected: np.ndarray, measured: np.ndarray, w: np.ndarray, times: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per lag: (weighted correlation, weakest channel's correlation, weighted gain) of
    ``measured`` (N, 2) on ``expected`` (L, N, 2) over the samples of weight 1, both
    detrended (slow auto-exposure / white-balance drift, slow movement)."""
    n = np.maximum(w.sum(axis=1), 1.0)
    t = times[None, :] - ((w * times).sum(axis=1) / n)[:, None]
    x = _weighted_residual(expected, w, t)
    y = _weighted_residual(np.broadcast_to(measured, expected.shape), w, t)
    ww = w[..., None]
    sx = np.sqrt((ww * x * x).sum(axis=1) / n[:, None])
    sy = np.sqrt((ww * y * y).sum(axis=1) / n[:, None])
    cov = (ww * x * y).sum(axis=1) / n[:, None]
    ok = sx >= 1e-3
    r = np.where(ok & (sy > 1e-9), cov / np.maximum(sx * sy, 1e-12), 0.0)
    weight = np.where(ok, sx, 0.0)
    total = np.maximum(weight.sum(axis=1), 1e-12)
    corr = (weight * r).sum(axis=1) / total
    weakest = np.where(ok, r, np.inf).min(axis=1)
    gain = (weight * np.where(ok, cov / np.maximum(sx * sx, 1e-12), 0.0)).sum(axis=1) / total
    return corr, np.where(np.isfinite(weakest), weakest, 0.0), gain


def _best_fit(
    sequence: FlashSequence,
    start: float,
    times: np.ndarray,
    face: np.ndarray,
    cfg: FlashConfig,
) -> tuple[_Fit | None, int]:
    """The latency in the allowed range where the face follows ``sequence`` best, and
    the most frames any latency placed inside the sequence (all latencies at once)."""
    if len(times) == 0:
        return None, 0
    onsets = np.array(sequence.onsets())
    ends = onsets + np.array([s.ms / 1000.0 for s in sequence.steps])
    expected_by_step = np.array([expected_chroma(s.colour) for s in sequence.steps])
    names = sorted({s.colour for s in sequence.steps})
    colour = np.array([names.index(s.colour) for s in sequence.steps])
    lags = np.arange(cfg.min_lag_s, cfg.max_lag_s + 1e-9, cfg.lag_step_s)
    rel = times[None, :] - start - lags[:, None]
    step = np.clip(np.searchsorted(onsets, rel, side="right") - 1, 0, len(onsets) - 1)
    inside = (rel >= onsets[step] + cfg.guard_s) & (rel < ends[step])
    counts = inside.sum(axis=1)
    seen = np.stack([(inside & (colour[step] == k)).any(axis=1) for k in range(len(names))])
    valid = (counts >= cfg.min_samples) & (seen.sum(axis=0) >= min(cfg.min_colours, len(names)))
    most = int(counts.max())
    if not valid.any():
        return None, most
    corr, weakest, gain = _fit_lags(expected_by_step[step], face, inside.astype(float), times)
    best = int(np.argmax(np.where(valid, corr, -np.inf)))
    used = np.flatnonzero(inside[best])
    fit = _Fit(float(corr[best]), float(weakest[best]), float(gain[best]), float(lags[best]),
               used, step[best][used])  # fmt: skip
    return fit, most


def judge(
    sequence: FlashSequence,
    start: float,
    samples: Sequence[tuple[float, LightSample]],
    config: FlashConfig | None = None,
) -> LightVerdict:
    """Did the face's chroma answer ``sequence`` shown from ``start`` (gate time)?

    ``samples`` are (gate time, measurement) pairs; the latency in the allowed range
    with the best correlation decides. Pure: the same input gives the same verdict.
    """
    cfg = config or FlashConfig()
    times = np.array([t for t, _ in samples], dtype=np.float64)
    face = np.array([s.face for _, s in samples], dtype=np.float64).reshape(-1, 2)
    if len(face):
        face = _clip_outliers(face)
    best, most = _best_fit(sequence, start, times, face, cfg)
    if best is None:
        return LightVerdict(False, "too_few_frames", 0.0, 0.0, 0.0, 0.0, 0.0, most)
    expected = np.array([expected_chroma(s.colour) for s in sequence.steps])
    bg_gain = _background_gain(best, times, samples, expected, cfg)
    figures = (best.corr, best.weakest, best.gain, bg_gain, best.lag, len(best.used))
    if best.corr < cfg.min_corr or best.weakest < cfg.min_channel_corr:
        return LightVerdict(False, "no_answer", *figures)
    if best.gain < cfg.min_gain:
        return LightVerdict(False, "too_weak", *figures)
    if bg_gain > cfg.max_background_ratio * best.gain:
        return LightVerdict(False, "flat", *figures)
    return LightVerdict(True, "", *figures)


def _background_gain(
    best: _Fit,
    times: np.ndarray,
    samples: Sequence[tuple[float, LightSample]],
    expected_by_step: np.ndarray,
    cfg: FlashConfig,
) -> float:
    """How strongly the background answered at the face's latency (0 without one)."""
    keep = [k for k, i in enumerate(best.used) if samples[i][1].background is not None]
    if len(keep) < cfg.min_samples:
        return 0.0
    background = np.array([samples[best.used[k]][1].background for k in keep], dtype=np.float64)
    chosen = best.used[keep]
    expected = expected_by_step[best.step[keep]][None, ...]
    weights = np.ones((1, len(chosen)))
    return float(_fit_lags(expected, _clip_outliers(background), weights, times[chosen])[2][0])


@dataclass
class LightChallenge:
    """One session's light check: ``feed`` frames (with their time), ``tick`` on timers.

    ``start`` is the gate time the page is asked to show the first colour (the message
    time plus ``lead_s``); the verdict comes on the first frame or tick at or after
    ``decide_at``, when every allowed latency has been covered.
    """

    sequence: FlashSequence
    start: float
    config: FlashConfig = field(default_factory=FlashConfig)
    samples: list[tuple[float, LightSample]] = field(default_factory=list)
    verdict: LightVerdict | None = None

    @classmethod
    def draw(
        cls, rng: random.Random, now: float, config: FlashConfig | None = None
    ) -> LightChallenge:
        cfg = config or FlashConfig()
        return cls(draw_sequence(rng, cfg), now + cfg.lead_s, cfg)

    @property
    def decide_at(self) -> float:
        return self.start + self.sequence.duration_s + self.config.max_lag_s + self.config.guard_s

    def in_window(self, now: float) -> bool:
        """Whether frames at ``now`` may be lit by the sequence (passive pixel cues skip them)."""
        return self.start + self.config.min_lag_s <= now < self.decide_at

    def feed(self, light: LightSample | None, now: float) -> LightVerdict | None:
        if light is not None and self.verdict is None and self.in_window(now):
            self.samples.append((now, light))
        return self.tick(now)

    def tick(self, now: float) -> LightVerdict | None:
        if self.verdict is None and now >= self.decide_at:
            self.verdict = judge(self.sequence, self.start, self.samples, self.config)
        return self.verdict
