"""Active liveness: a random sequence of actions, judged against the person's baseline.

Pure and sans-IO: :class:`Challenge` is fed :class:`LivenessSample` objects with the
time passed in and answers with a :class:`StepOutcome`. The gate turns outcomes into
prompts and verdicts.

Why relative to a baseline: faces differ (resting mouth, eye shape, how the camera
looks down on them), so "smiling" means "wider than this person's neutral mouth",
and "turned left" means "yaw moved left from where this person started". The
baseline is the median of the frames that established identity, so one blink or
glance while the gate was matching does not skew it.

Expressions are read from the face landmarker's blendshape scores when the sample has
them (trained on eyelids and lips, where the mesh's geometry under-reads a blink as a
10-15 % EAR dip), still against the baseline: closure of the eyes above the person's
own open level, then back; smile and jaw-open scores above the neutral ones. Flat
photos tilted, rotated or zoomed in front of the camera move the blink score by at
most 0.19 (all shared photos and stills, docs/liveness.md), so a blink needs a rise of
0.25 on a steady face; they do move the smile and jaw scores (a photo turned about its vertical
axis reads as an open mouth), so smile and open mouth pass on the geometric rule as
before, or on the blendshape score with a looser geometric guard that a flat photo
keeps. Without blendshapes (``[face] landmarks = "mesh"``) the
geometric measures alone decide, as before.

Directions are the person's own: ``turn_left`` is the person turning to their left,
which in the (unmirrored) camera image moves the nose towards the image's right, so
the mesh yaw increases. The browser preview is mirrored, so the person sees their
head move to the left of the screen, as in a mirror.
"""

from __future__ import annotations

import enum
import random
import statistics
from dataclasses import dataclass, field

from .blink import EyeTrack
from .sample import LivenessSample, box_change


class ChallengeAction(enum.Enum):
    TURN_LEFT = "turn_left"
    TURN_RIGHT = "turn_right"
    LOOK_UP = "look_up"
    BLINK = "blink"
    SMILE = "smile"
    OPEN_MOUTH = "open_mouth"


PROMPTS: dict[ChallengeAction, str] = {
    ChallengeAction.TURN_LEFT: "Turn your head to your left",
    ChallengeAction.TURN_RIGHT: "Turn your head to your right",
    ChallengeAction.LOOK_UP: "Look up",
    ChallengeAction.BLINK: "Blink",
    ChallengeAction.SMILE: "Smile",
    ChallengeAction.OPEN_MOUTH: "Open your mouth",
}

POSE_ACTIONS = frozenset(
    {ChallengeAction.TURN_LEFT, ChallengeAction.TURN_RIGHT, ChallengeAction.LOOK_UP}
)
# Expressions are brief: a spontaneous blink closes the eyes for 100-150 ms, which falls
# between two frames at the gate's base rate (4 fps); these steps are sampled faster.
EXPRESSION_ACTIONS = frozenset(
    {ChallengeAction.BLINK, ChallengeAction.SMILE, ChallengeAction.OPEN_MOUTH}
)


@dataclass(frozen=True)
class ActiveConfig:
    """Thresholds measured on the shared clips (docs/liveness.md)."""

    min_steps: int = 2
    max_steps: int = 3
    step_time_s: float = 6.0  # time limit per prompt
    turn_deg: float = 15.0  # yaw change from baseline for a turn
    look_up_deg: float = 10.0  # pitch change (upwards) from baseline
    wrong_turn_deg: float = 15.0  # opposite turn during a turn step = wrong action
    blink_closed: float = 0.90  # EAR / baseline at or below = eyes closing (the mesh
    # under-reads eyelids: a full blink shows as a 10-15 % dip, noise is ~2 %)
    blink_open: float = 0.96  # EAR / baseline at or above after closing = blink done
    smile_ratio: float = 1.12  # mouth width / baseline
    mouth_open: float = 0.2  # inner-lip gap / width above baseline
    # Blendshape scores (0-1) above the person's own level (measured on the shared clips
    # and on every shared photo warped as a print attack: docs/liveness.md).
    blink_rise: float = 0.25  # eye closure above the open level = eyes closing
    # The open level: this percentile of the scores of the last blink_level_s seconds
    # (a low percentile, not the minimum: the minimum of a long, noisy track drifts down
    # and turns landmark noise on a moving print into a "rise").
    blink_level_pct: float = 30.0
    blink_level_s: float = 1.0
    blink_reopen: float = 0.10  # back within this of the open level, or half-way down
    # from the peak (eyes often settle a little narrower after a blink) = blink done
    # The closing frame must follow the previous one on a steady track: the face moved
    # less than this (face widths), changed size less than this ratio and turned less
    # than this (people blink while turning their heads: d12 turns ~200 deg/s and its
    # box shifts ~0.3 face widths between samples as it blinks; a waving phone's
    # detections jump in size and angle at once).
    blink_steady_jump: float = 0.5
    blink_steady_scale: float = 1.12
    blink_steady_deg: float = 25.0
    # A blink reopens within this (a print tilted away drifts "closed" and stays), and
    # is read on faces at least this wide (smaller faces give noisy landmarks).
    blink_max_closed_s: float = 0.8
    blink_min_face_px: float = 60.0
    # The open level a closing frame rises from is read on recent frames framed like
    # it: the same kind of crop, the face box within this size ratio and this many face
    # widths of place (server/liveness/blink.py: the crop moves the score).
    blink_level_scale: float = 1.10
    blink_level_shift: float = 0.15
    # Smile / open mouth with the landmarker, whose geometry jitters more than the mesh's
    # (a held still reaches a 1.14 smile ratio; a tilted print a 0.28 lip-gap rise with
    # jawOpen up to 0.7). Smile: ratio >= landmarker_smile_ratio, or the smile score
    # smile_rise above neutral with ratio >= smile_guard. Open mouth: lip gap rise >=
    # landmarker_mouth_open, or >= mouth_open with jawOpen jaw_talk above neutral, or
    # >= mouth_open_guard with jawOpen jaw_rise above neutral (docs/liveness.md).
    landmarker_smile_ratio: float = 1.15
    smile_rise: float = 0.40
    smile_guard: float = 1.06
    landmarker_mouth_open: float = 0.30
    jaw_talk: float = 0.10
    jaw_rise: float = 0.30
    mouth_open_guard: float = 0.12
    baseline_frames: int = 3
    # Frames analysed per second during an expression step (at least the base rate):
    # blink candidates of the shared clips found 41/77 at 4 fps, 56/77 at 8, 60/77 at
    # 15 as on every frame (bench/bench_blinks.py, docs/liveness.md "Blink candidates").
    expression_fps: float = 15.0
    # Continuity: largest jump of the face centre between two analysed frames (face
    # widths), largest size change (ratio), and longest time without the face.
    max_jump: float = 0.8
    max_scale_change: float = 1.5
    max_gap_s: float = 1.5
    # Start and end embeddings of the challenge must be this close (dlib distance).
    same_face_distance: float = 0.5


def draw_actions(rng: random.Random, config: ActiveConfig) -> tuple[ChallengeAction, ...]:
    """``min_steps``-``max_steps`` distinct actions in random order from ``rng``.

    Production passes ``secrets.SystemRandom()``; only tests pass a seeded Random.
    """
    count = rng.randint(config.min_steps, config.max_steps)
    return tuple(rng.sample(list(ChallengeAction), count))


class StepStatus(enum.Enum):
    WAITING = "waiting"  # nothing decided on this sample
    PASSED = "passed"  # the current step was done; the next one starts
    DONE = "done"  # the last step was done
    WRONG = "wrong"  # a different action was performed
    TIMED_OUT = "timed_out"
    LOST = "lost"  # the face track broke (jump, size change, gone too long)


@dataclass(frozen=True)
class StepOutcome:
    status: StepStatus
    step: int  # index of the step the outcome is about
    detail: str = ""


@dataclass(frozen=True)
class Baseline:
    yaw: float
    pitch: float
    ear: float
    smile: float
    mouth_open: float
    # Blendshape levels (None without blendshapes): eyes most open, most neutral mouth.
    blink: float | None = None
    smile_score: float | None = None
    jaw_open: float | None = None

    @classmethod
    def of(cls, samples: list[LivenessSample]) -> Baseline:
        """Pose: the median. Expressions: the most neutral value seen (mouth most
        closed, narrowest smile, eyes most open), so a baseline caught mid-word or
        mid-blink does not make the action unreachable."""
        med = statistics.median
        blink = [s.blink for s in samples if s.blink is not None]
        smile = [s.smile_score for s in samples if s.smile_score is not None]
        jaw = [s.jaw_open for s in samples if s.jaw_open is not None]
        return cls(
            yaw=med(s.measures.yaw for s in samples),
            pitch=med(s.measures.pitch for s in samples),
            ear=max(s.ear for s in samples),
            smile=min(s.measures.smile for s in samples),
            mouth_open=min(s.measures.mouth_open for s in samples),
            blink=min(blink) if blink else None,
            smile_score=min(smile) if smile else None,
            jaw_open=min(jaw) if jaw else None,
        )


def detect(action: ChallengeAction, s: LivenessSample, base: Baseline, cfg: ActiveConfig) -> bool:
    """Whether this one sample shows ``action`` (blink needs the sequence: see Challenge)."""
    m = s.measures
    if action is ChallengeAction.TURN_LEFT:
        return m.yaw - base.yaw >= cfg.turn_deg
    if action is ChallengeAction.TURN_RIGHT:
        return base.yaw - m.yaw >= cfg.turn_deg
    if action is ChallengeAction.LOOK_UP:
        return base.pitch - m.pitch >= cfg.look_up_deg
    if action is ChallengeAction.SMILE:
        # The geometric rule, or the trained score with a looser geometric guard.
        ratio = m.smile / max(base.smile, 1e-6)
        if s.smile_score is None or base.smile_score is None:
            return ratio >= cfg.smile_ratio
        if ratio >= cfg.landmarker_smile_ratio:
            return True
        return ratio >= cfg.smile_guard and s.smile_score - base.smile_score >= cfg.smile_rise
    if action is ChallengeAction.OPEN_MOUTH:
        gap = m.mouth_open - base.mouth_open
        if s.jaw_open is None or base.jaw_open is None:
            return gap >= cfg.mouth_open
        jaw = s.jaw_open - base.jaw_open
        if gap >= cfg.landmarker_mouth_open or (gap >= cfg.mouth_open and jaw >= cfg.jaw_talk):
            return True
        return gap >= cfg.mouth_open_guard and jaw >= cfg.jaw_rise
    if s.blink is not None and base.blink is not None:
        return s.blink - base.blink >= cfg.blink_rise
    return s.ear <= base.ear * cfg.blink_closed


def wrong_action(
    action: ChallengeAction, s: LivenessSample, base: Baseline, cfg: ActiveConfig
) -> ChallengeAction | None:
    """A clearly different head movement during a head-movement step.

    Only head pose is judged wrong: expressions co-occur (people blink while turning,
    a smile opens the mouth), so they would refuse honest people.
    """
    yaw = s.measures.yaw - base.yaw
    if action is ChallengeAction.TURN_LEFT and -yaw >= cfg.wrong_turn_deg:
        return ChallengeAction.TURN_RIGHT
    if action is ChallengeAction.TURN_RIGHT and yaw >= cfg.wrong_turn_deg:
        return ChallengeAction.TURN_LEFT
    if action is ChallengeAction.LOOK_UP and abs(yaw) >= 1.5 * cfg.wrong_turn_deg:
        return ChallengeAction.TURN_LEFT if yaw > 0 else ChallengeAction.TURN_RIGHT
    return None


@dataclass
class Challenge:
    """One challenge: ``start`` with the baseline samples, then ``feed`` every sample."""

    actions: tuple[ChallengeAction, ...]
    config: ActiveConfig = field(default_factory=ActiveConfig)
    step: int = 0
    deadline: float = 0.0
    baseline: Baseline | None = None
    _eyes: EyeTrack | None = None
    _armed: bool = False
    _last: LivenessSample | None = None
    _last_seen: float = 0.0

    @classmethod
    def draw(cls, rng: random.Random, config: ActiveConfig | None = None) -> Challenge:
        cfg = config or ActiveConfig()
        return cls(draw_actions(rng, cfg), cfg)

    @property
    def current(self) -> ChallengeAction:
        return self.actions[min(self.step, len(self.actions) - 1)]

    @property
    def expression_step(self) -> bool:
        """Whether the step running now is an expression (blink, smile, open mouth)."""
        return self.step < len(self.actions) and self.current in EXPRESSION_ACTIONS

    def sample_fps(self, base: float) -> float:
        """Frames a second the edge should analyse now, given its base rate: faster
        while the current step is an expression (``Gate.sample_fps`` asks this; the
        offline runs of ``server.rtc.sampler.SamplerClock`` too, so they see what the
        server sees)."""
        if self.expression_step:
            return max(base, self.config.expression_fps)
        return base

    def start(self, baseline: list[LivenessSample], now: float) -> None:
        if not baseline:
            raise ValueError("a challenge needs at least one baseline sample")
        self.baseline = Baseline.of(baseline)
        self.step = 0
        self.deadline = now + self.config.step_time_s
        self._eyes = EyeTrack(self.config, self.baseline.ear, self.baseline.blink)
        self._eyes.begin(baseline, now)
        self._armed = True  # the head starts at its baseline
        self._last = baseline[-1]
        self._last_seen = now

    def tick(self, now: float) -> StepOutcome:
        """Time passing without a usable frame: step deadline and face-gap checks."""
        if now >= self.deadline:
            return StepOutcome(StepStatus.TIMED_OUT, self.step, self.current.value)
        if now - self._last_seen > self.config.max_gap_s:
            return StepOutcome(StepStatus.LOST, self.step, "face left the frame")
        return StepOutcome(StepStatus.WAITING, self.step)

    def feed(self, s: LivenessSample, now: float) -> StepOutcome:
        cfg = self.config
        assert self.baseline is not None, "start() first"
        timed = self.tick(now)
        if timed.status is not StepStatus.WAITING:
            return timed
        prev = self._last
        if prev is not None:
            ratio, jump = box_change(s, prev)
            if jump > cfg.max_jump or not 1 / cfg.max_scale_change <= ratio <= cfg.max_scale_change:
                return StepOutcome(StepStatus.LOST, self.step, "face track broke")
        self._last, self._last_seen = s, now
        action = self.current
        # A wrong turn only counts once the head has come back near its baseline in this
        # step, so the end of the previous turn is not taken for a wrong one.
        if abs(s.measures.yaw - self.baseline.yaw) < cfg.wrong_turn_deg / 2:
            self._armed = True
        wrong = wrong_action(action, s, self.baseline, cfg) if self._armed else None
        if wrong is not None:
            return StepOutcome(StepStatus.WRONG, self.step, wrong.value)
        eyes = self._eyes
        assert eyes is not None
        if action is ChallengeAction.BLINK:
            if not eyes.feed(s, prev, now):
                return StepOutcome(StepStatus.WAITING, self.step)
        else:
            eyes.note(s, now)  # keeps the eyes' open level current for a blink step
            if not detect(action, s, self.baseline, cfg):
                return StepOutcome(StepStatus.WAITING, self.step)
        done = self.step
        self.step += 1
        eyes.next_step()
        self._armed = action not in POSE_ACTIONS
        if self.step >= len(self.actions):
            return StepOutcome(StepStatus.DONE, done)
        self.deadline = now + cfg.step_time_s
        return StepOutcome(StepStatus.PASSED, done)

    @property
    def eyes_closed(self) -> bool:
        """Whether the blink step has seen the eyes close and waits for them to reopen."""
        return self._eyes is not None and self._eyes.closed

    def open_level(self, now: float, like: LivenessSample | None = None) -> float | None:
        """The open level a blink score of a frame framed like ``like`` rises from now
        (``EyeTrack.level``; None with the mesh's EAR rule, or when no recent frame is
        framed alike); read by bench/bench_blinks.py to explain a miss."""
        if self._eyes is None or self._eyes.fallback is None:
            return None
        return self._eyes.level(now, like)
