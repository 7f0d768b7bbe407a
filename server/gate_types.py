"""The gate's vocabulary: states, reasons, the events it takes and the actions it returns.

Kept apart from the machine (``server/gate.py``) so the edges -- the participant
session, the eval, the protocol encoder -- can speak it without the machine's
internals, and so each module stays small.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from .liveness.flash import FlashStep
from .liveness.sample import LivenessSample


class State(enum.Enum):
    LOBBY = "lobby"
    CHECKING = "checking"
    CHALLENGE = "challenge"
    FAILED = "failed"
    ADMITTED = "admitted"
    REVERIFYING = "reverifying"
    DENIED = "denied"
    LOCKED = "locked"
    LEFT = "left"


class Reason(enum.Enum):
    """Why a frame is held or an attempt refused; each maps to advice a person can act on."""

    NO_FACE = "no_face"
    MULTIPLE_FACES = "multiple_faces"
    POOR_QUALITY = "poor_quality"
    NOT_RECOGNISED = "not_recognised"
    AMBIGUOUS = "ambiguous"
    NO_MOVEMENT = "no_movement"
    LIVENESS = "liveness"
    TIMED_OUT = "timed_out"
    LOCKED_OUT = "locked_out"
    NOT_ENROLLED = "not_enrolled"
    # Our failure, not the person's: never counts toward attempts or lockout.
    INTERNAL = "internal"


MESSAGES: dict[Reason, str] = {
    Reason.NO_FACE: "No face found. Face the camera in good light.",
    Reason.MULTIPLE_FACES: "More than one face in view. Only the person joining may be in frame.",
    Reason.POOR_QUALITY: "The picture is not good enough. Move closer and add light.",
    Reason.NOT_RECOGNISED: "Not recognised as an enrolled person for this room.",
    Reason.AMBIGUOUS: "Could not tell enrolled people apart. Ask the owner to check enrolment.",
    Reason.NO_MOVEMENT: "No movement seen. Move your head slightly; a still picture is refused.",
    Reason.LIVENESS: "Liveness check failed. A live person must be in front of the camera.",
    Reason.TIMED_OUT: "Timed out before a decision. Check your camera and try again.",
    Reason.LOCKED_OUT: "Too many failed attempts. Try again later.",
    Reason.NOT_ENROLLED: "Nobody is enrolled for this invite yet. Ask the room owner.",
    Reason.INTERNAL: "Something went wrong on our side; this try does not count. Try again.",
}


@dataclass(frozen=True)
class Match:
    """Result of comparing one frame's face with the templates the gate is checking against."""

    person_id: str | None
    distance: float
    accepted: bool
    ambiguous: bool = False


@dataclass(frozen=True)
class Observation:
    """What the face pipeline saw in one sampled frame.

    ``center`` and ``width`` are fractions of the frame so motion is resolution-free.
    ``quality`` holds human-readable problems (empty = good enough to judge).
    ``liveness`` is the single face's sample for the liveness checks (when the mesh ran).
    ``taken_at`` is when the frame reached the server (gate clock), if the edge knows:
    the light challenge times the skin's answer by it rather than by the end of analysis.
    """

    faces: int
    match: Match | None = None
    center: tuple[float, float] = (0.5, 0.5)
    width: float = 0.0
    quality: tuple[str, ...] = ()
    liveness: LivenessSample | None = None
    taken_at: float | None = None


@dataclass(frozen=True)
class FrameNeeds:
    """What the next analysed frame must carry, as the gate's state asks: an embedding
    (identity frames, the confirming frame; ~7 ms) and the skin's chroma (only while the
    screen-light challenge collects it). Work nobody reads is not done.

    ``detect``: the face must be found by the detector on this frame, not tracked from
    the last one ([face] track_landmarks): during expression steps, whose blendshape
    scores are judged against a baseline taken on detector frames. The landmarks' region
    moves those scores (zubair_real's eye closure by up to 0.19 between a tracked and a
    detected region), so a step that mixed both could miss a blink or see one."""

    embed: bool = True
    light: bool = False
    detect: bool = False


# ---- events -----------------------------------------------------------------


@dataclass(frozen=True)
class Start:
    """Media is flowing and the participant is ready for an attempt."""

    now: float


@dataclass(frozen=True)
class FrameAnalysed:
    now: float
    observation: Observation


@dataclass(frozen=True)
class Tick:
    """Time passed: the edge sends it when ``Gate.next_deadline()`` is reached."""

    now: float


@dataclass(frozen=True)
class AnalysisFailed:
    """Our frame analysis raised: the attempt ends as ``internal``, not the person's fault."""

    now: float
    detail: str = ""


@dataclass(frozen=True)
class ReverifyRequested:
    now: float


@dataclass(frozen=True)
class Leave:
    now: float


Event = Start | FrameAnalysed | Tick | AnalysisFailed | ReverifyRequested | Leave


# ---- actions ----------------------------------------------------------------


@dataclass(frozen=True)
class StateChanged:
    state: State


@dataclass(frozen=True)
class Progress:
    frames: int
    required: int
    hold: Reason | None = None
    detail: str = ""


@dataclass(frozen=True)
class Admitted:
    person_id: str | None
    distance: float
    reverify: bool = False


@dataclass(frozen=True)
class Refused:
    """One attempt failed; ``final`` means no further attempt is allowed.

    ``detail`` says which liveness check failed (for the audit log, not the person).
    """

    reason: Reason
    attempts_left: int
    final: bool
    distance: float | None = None
    detail: str = ""


@dataclass(frozen=True)
class Prompt:
    """Show one challenge instruction; ``text`` empty clears it.

    ``time_limit_s`` is relative (the client's clock is not ours); ``deadline`` is the
    gate's own time for the step, for the edge's bookkeeping.
    """

    text: str
    action: str | None
    step: int
    steps: int
    time_limit_s: float
    deadline: float


@dataclass(frozen=True)
class LockedOut:
    """Locked until ``until``; ``scope`` is the kind of key locked (``invite``, ``ip``,
    ``device``, ...) so the person is told what is true for them."""

    until: float
    scope: str = ""


@dataclass(frozen=True)
class Flash:
    """Fill the participant's screen with ``steps`` from ``lead_s`` after this action.

    The light check decides at gate time ``deadline`` (for the edge's timers); until
    then the edge should analyse ``sample_fps`` frames a second (what
    ``Gate.sample_fps`` answers meanwhile: the sampler reads that).
    """

    steps: tuple[FlashStep, ...]
    lead_s: float
    deadline: float
    sample_fps: float


Action = StateChanged | Progress | Admitted | Refused | LockedOut | Prompt | Flash
