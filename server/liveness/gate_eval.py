"""Presentation-attack evaluation that runs the gate's own decision (``eval --policy P``).

Why the gate and not the cues: the gate decides on the frames it has when it has them
(a passive verdict after ``static_window_s``, a challenge after identity), so scoring
a whole clip measures something the server never does. Here each clip is played as a
looping fake camera would play it: sampled on the clip's own clock at the rate the
server's sampler would use (``[gate] sample_fps``, raised when the gate asks:
``Gate.sample_fps``, frames picked by ``server.rtc.sampler.SamplerClock``), every sample
analysed by the server's :class:`~server.verify.FaceChecker` (with
a gallery enrolled from the person's photos, or from the clip's first good frame when
the data names none) and fed to a real :class:`~server.gate.Gate` with ``Tick`` and
``FrameAnalysed`` events, until the gate admits or refuses the first attempt. The
verdict, reason and decision time are the gate's.

Labels (ISO/IEC 30107-3 vocabulary): ``bona_fide`` (optionally followed by a comment)
is a bona fide presentation; every other label is an attack of that species
(``replay_attack``, ``print``, ...); labels outside :data:`KNOWN_SPECIES` are counted as
attacks and listed so a typo cannot turn an attack into a bona fide case. APCER per
species is attacks admitted / attacks of that species; BPCER is bona fide
presentations not admitted. Stills (``spoof/``) are one frame: the gate never admits
a still (no movement), so they are judged by the passive pixel cues alone.
"""

from __future__ import annotations

import csv
import dataclasses
import random
import re
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av
import numpy as np

from ..config import Settings
from ..face.engine import FaceEngine
from ..face.imageio import decode_image
from ..face.matcher import DEFAULT_THRESHOLD
from ..gate import (
    Admitted,
    FrameAnalysed,
    Gate,
    GatePolicy,
    LockoutTracker,
    Observation,
    Refused,
    Start,
    Tick,
)
from ..rtc.sampler import SamplerClock
from ..verify import CheckTarget, FaceChecker
from .attacks import PHOTO_EXTS
from .challenge import ActiveConfig
from .parallax import PairMaker
from .passive import PassiveCheck, PassiveConfig
from .sample import LivenessPolicy, paired, sample_from_face

BONA_FIDE = "bona_fide"
KNOWN_SPECIES = frozenset(
    {"replay_attack", "photo_attack", "print", "screen", "print_still", "screen_still",
     "mask", "video_injection"}
)
STILL_SPECIES = {"print": "print_still", "screen": "screen_still", "live": BONA_FIDE}


def species_of(label: str) -> str:
    """``bona_fide`` or the attack species named by a presentation label."""
    word = re.split(r"[\s(;,]", label.strip().lower(), maxsplit=1)[0]
    return word or "unlabelled"


def gate_policy(settings: Settings, liveness: LivenessPolicy) -> GatePolicy:
    """The policy the server's hub builds for a room with this liveness setting."""
    gate, live = settings.gate, settings.liveness
    return GatePolicy(
        attempt_timeout_s=gate.attempt_timeout_s,
        max_attempts=gate.max_attempts,
        frames_required=gate.frames_required,
        min_motion=gate.min_motion,
        liveness=liveness,
        active=dataclasses.replace(ActiveConfig(), step_time_s=live.step_time_s,
                                   min_steps=live.min_steps, max_steps=live.max_steps,
                                   expression_fps=live.expression_fps),
        passive=dataclasses.replace(PassiveConfig(), threshold=live.passive_threshold),
    )


@dataclass(frozen=True)
class Case:
    name: str
    video: Path
    label: str
    identity: str
    enrol: Path | None  # folder of the person's photos; None = enrol from the clip

    @property
    def species(self) -> str:
        return species_of(self.label)


@dataclass
class CaseResult:
    case: str
    species: str
    verdict: str  # admitted | refused | undecided | not_enrolled
    reason: str | None = None
    detail: str = ""
    decision_s: float | None = None
    frames: int = 0
    enrolment: str = ""
    score: float | None = None  # passive score (stills)

    @property
    def attack(self) -> bool:
        return self.species != BONA_FIDE

    @property
    def accepted(self) -> bool:
        return self.verdict == "admitted"


def read_cases(data: Path) -> list[Case]:
    """Cases of ``data/video_cases.csv``; ``enroll_with`` may be relative to ``data``."""
    cases = []
    with (data / "video_cases.csv").open() as fh:
        for row in csv.DictReader(fh):
            enrol = row.get("enroll_with") or ""
            cases.append(Case(row["video"], data / row["video"], row["presentation"],
                              row.get("identity", ""), (data / enrol) if enrol else None))
    return cases


class LoopedClip:
    """A clip as a looping fake camera plays it, decoded on demand.

    Holding every frame of a 30 fps 720p clip would take ~1 GB, so frames are decoded
    in order and only the one asked for is kept; asking for an earlier one reopens the
    file. ``times`` (one decoding pass, no pixels) and ``period`` feed a
    :class:`SamplerClock`.
    """

    def __init__(self, path: Path, max_s: float) -> None:
        self.path = path
        with av.open(str(path)) as container:
            times = [float(f.time or 0.0) for f in container.decode(video=0)]
        self.times = [t for t in times if t <= max_s] or times[:1]
        steps = np.diff(times) if len(times) > 1 else np.array([1 / 30])
        self.period: float | None = (times[-1] if times else 0.0) + float(np.median(steps))
        if len(self.times) < len(times):
            self.period = None  # longer than any attempt: played once
        self._container: Any = None
        self._frames: Any = None
        self._index = -1
        self._rgb: np.ndarray | None = None
        self._held: list[np.ndarray] | None = None

    @classmethod
    def of_frames(cls, frames: list[np.ndarray], fps: float) -> LoopedClip:
        """Frames rendered in memory (tests), one every ``1 / fps`` s, looped."""
        clip = cls.__new__(cls)
        clip.path = Path("-")
        clip.times = [k / fps for k in range(len(frames))]
        clip.period = len(frames) / fps
        clip._container = clip._frames = clip._rgb = None
        clip._index = -1
        clip._held = frames
        return clip

    def __len__(self) -> int:
        return len(self.times)

    def rgb(self, index: int) -> np.ndarray:
        """Frame ``index`` of the clip (0-based), as RGB."""
        if self._held is not None:
            return self._held[index]
        if index < self._index or self._container is None:
            self.close()
            self._container = av.open(str(self.path))
            self._frames = self._container.decode(video=0)
            self._index = -1
        while self._index < index:
            frame = next(self._frames)
            self._index += 1
            if self._index == index:
                self._rgb = frame.to_ndarray(format="rgb24")
        assert self._rgb is not None
        return self._rgb

    def close(self) -> None:
        if self._container is not None:
            self._container.close()
        self._container = self._frames = None
        self._rgb = None

    def clock(self) -> SamplerClock:
        return SamplerClock(self.times, self.period)

    def first_frames(self, fps: float, seconds: float) -> Iterator[np.ndarray]:
        """The frames a sampler at ``fps`` takes in the first ``seconds`` (enrolment)."""
        clock, wake = self.clock(), 0.0
        while (got := clock.take(wake)) is not None and got[1] <= seconds:
            yield self.rgb(got[0] % len(self))
            wake = got[1] + 1.0 / fps


def enrol_gallery(
    engine: FaceEngine, case: Case, frames: Iterable[np.ndarray]
) -> tuple[np.ndarray | None, str]:
    """Templates for the case's person: their photos, else the clip's first good face."""
    if case.enrol is not None and case.enrol.is_dir():
        embeddings = []
        for photo in sorted(case.enrol.iterdir()):
            if photo.suffix.lower() in PHOTO_EXTS:
                result = engine.enrol_photo(photo.read_bytes())
                if result.embedding is not None:
                    embeddings.append(result.embedding)
        if embeddings:
            return np.stack(embeddings), f"{len(embeddings)} photos"
    for i, rgb in enumerate(frames):
        result = engine.enrol_frame(rgb)
        if result.embedding is not None:
            return result.embedding[None, :], f"clip frame {i}"
    return None, "none"


Cache = dict[tuple[int, bool, bool], Observation]


def run_gate(
    checker: FaceChecker, clip: LoopedClip | list[np.ndarray], policy: GatePolicy, fps: float,
    seed: int = 0, cache: Cache | None = None,
) -> tuple[str, str | None, str, float | None, int]:
    """Play ``clip`` into a fresh gate until its first attempt ends.

    The gate's clock is the clip's (looped); after each analysed frame the next is the
    one the server's sampler would take at the rate the gate then asks for
    (``Gate.sample_fps`` over the base ``fps``). Returns (verdict, reason, detail,
    decision time in s from Start, frames fed). Observations are cached per (frame,
    what the gate asked of it: ``Gate.frame_needs``): the checker is stateless (unless it
    tracks landmarks, ``[face] track_landmarks``: then every frame is analysed) and the
    engine deterministic, so a looped frame is analysed once, and runs of the same clip
    under several policies share ``cache``.
    A list of frames is a clip rendered at ``fps``.
    """
    if isinstance(clip, list):
        clip = LoopedClip.of_frames(clip, fps)
    gate = Gate(policy, LockoutTracker(), rng=random.Random(seed))
    gate.handle(Start(0.0))
    cache = {} if cache is None else cache
    horizon = policy.attempt_timeout_s + policy.active.step_time_s * (policy.active.max_steps + 2)
    clock, wake, k = clip.clock(), 0.0, 0
    pairs = PairMaker()  # the participant's executor-side parallax pairs
    if checker.tracker is not None:
        checker.tracker.reset()  # a new participant's track
    while (got := clock.take(wake)) is not None:
        n, now = got
        if now > horizon:
            break
        actions = list(gate.handle(Tick(now)))
        if not any(isinstance(a, Admitted | Refused) for a in actions):
            needs = gate.frame_needs  # what the server's sampler asks the executor for
            key = (n % len(clip), needs.embed, needs.light)
            if checker.tracker is not None:  # a track has state: every frame is analysed
                obs = checker.observe_needs(clip.rgb(key[0]), needs, now)
            else:
                if key not in cache:
                    cache[key] = checker.observe(clip.rgb(key[0]), embed=needs.embed,
                                                 light=needs.light)
                obs = cache[key]
            obs = dataclasses.replace(obs, liveness=paired(obs.liveness, pairs, now))
            actions += gate.handle(FrameAnalysed(now, obs))
        k += 1
        wake = now + 1.0 / gate.sample_fps(now, fps)
        for action in actions:
            if isinstance(action, Admitted):
                return "admitted", None, "", now, k
            if isinstance(action, Refused):
                return "refused", action.reason.value, action.detail, now, k
    return "undecided", None, "", None, k


def run_case(
    engine: FaceEngine, case: Case, policy: GatePolicy, fps: float, seed: int = 0
) -> CaseResult:
    return run_case_policies(engine, case, [policy], fps, seed)[0]


def run_case_policies(
    engine: FaceEngine, case: Case, policies: list[GatePolicy], fps: float, seed: int = 0,
    galleries: dict[Path, tuple[np.ndarray | None, str]] | None = None,
) -> list[CaseResult]:
    """The case under each policy; the clip is decoded, enrolled and analysed once.

    ``galleries`` caches enrolments by photo folder across cases (many generated
    prints share one person)."""
    longest = max(
        p.attempt_timeout_s + p.active.step_time_s * (p.active.max_steps + 2) for p in policies
    )
    clip = LoopedClip(case.video, longest + 1.0)
    try:
        return _run_clip(engine, case, clip, policies, fps, seed, galleries)
    finally:
        clip.close()


def _run_clip(
    engine: FaceEngine, case: Case, clip: LoopedClip, policies: list[GatePolicy], fps: float,
    seed: int, galleries: dict[Path, tuple[np.ndarray | None, str]] | None,
) -> list[CaseResult]:
    if galleries is not None and case.enrol is not None and case.enrol in galleries:
        gallery, how = galleries[case.enrol]
    else:
        first = clip.first_frames(fps, max(p.attempt_timeout_s for p in policies))
        gallery, how = enrol_gallery(engine, case, first)
        if galleries is not None and case.enrol is not None and how.endswith("photos"):
            galleries[case.enrol] = (gallery, how)
    if gallery is None:
        return [CaseResult(case.name, case.species, "not_enrolled", enrolment=how)
                for _ in policies]
    person = case.identity or "person"
    checker = FaceChecker(engine, CheckTarget(person, {person: gallery}, DEFAULT_THRESHOLD))
    cache: Cache = {}
    results = []
    for policy in policies:
        verdict, reason, detail, when, fed = run_gate(checker, clip, policy, fps, seed, cache)
        results.append(CaseResult(case.name, case.species, verdict, reason, detail,
                                  None if when is None else round(when, 2), fed, how))
    return results


def run_still(engine: FaceEngine, path: Path, config: PassiveConfig) -> CaseResult:
    """A still is one frame: the passive pixel cues judge it (the gate never admits it)."""
    species = next((s for key, s in STILL_SPECIES.items() if key in path.stem), "still")
    rgb = decode_image(path.read_bytes())
    faces = engine.analyse(rgb, mesh=True, embed=False).faces
    name = f"spoof/{path.name}"
    if len(faces) != 1:
        return CaseResult(name, species, "undecided", "no_face", frames=1)
    sample = sample_from_face(rgb, faces[0])
    assert sample is not None
    check = PassiveCheck(dataclasses.replace(config, min_frames=1, temporal=False))
    check.add(sample, 0.0)
    verdict = check.verdict()
    if verdict.live:
        return CaseResult(name, species, "admitted", frames=1, score=round(verdict.score, 3))
    return CaseResult(name, species, "refused", "liveness", f"passive:{verdict.cue}",
                      frames=1, score=round(verdict.score, 3))


@dataclass
class Report:
    policy: str
    fps: float
    cases: list[CaseResult] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """Rates over the cases the gate judged; a case with nobody enrolled (no photo
        and no clip frame gave a template) measured nothing and is only counted."""
        attacks: dict[str, list[CaseResult]] = defaultdict(list)
        unenrolled: dict[str, int] = defaultdict(int)
        for case in self.cases:
            if case.verdict == "not_enrolled":
                unenrolled[case.species] += 1
            elif case.attack:
                attacks[case.species].append(case)
        bona = [c for c in self.cases if not c.attack and c.verdict != "not_enrolled"]
        apcer = {k: sum(c.accepted for c in v) / len(v) for k, v in sorted(attacks.items())}
        return {
            "policy": self.policy,
            "sample_fps": self.fps,
            "apcer": apcer,
            "attacks": {k: len(v) for k, v in sorted(attacks.items())},
            "apcer_max": max(apcer.values(), default=0.0),
            "bpcer": sum(not c.accepted for c in bona) / len(bona) if bona else 0.0,
            "bona_fide": len(bona),
            "not_enrolled": dict(sorted(unenrolled.items())),
            "unknown_labels": sorted(k for k in attacks if k not in KNOWN_SPECIES),
            "per_case": [dataclasses.asdict(c) for c in self.cases],
        }


def print_report(summary: dict[str, Any], *, all_cases: bool = True) -> None:
    print(f"policy {summary['policy']}, sampled at {summary['sample_fps']} fps")
    print(f"{'case':58s} {'species':14s} {'verdict':10s} {'reason':12s} {'at s':>6s}  detail")
    for c in summary["per_case"]:
        if not all_cases and c["species"] == "print" and c["verdict"] == "refused":
            continue
        at = "-" if c["decision_s"] is None else f"{c['decision_s']:.2f}"
        detail = c["detail"] + (f" score {c['score']}" if c["score"] is not None else "")
        print(f"{c['case'][-58:]:58s} {c['species']:14s} {c['verdict']:10s} "
              f"{str(c['reason'] or '-'):12s} {at:>6s}  {detail}")
    print()
    for species, value in summary["apcer"].items():
        n = summary["attacks"][species]
        print(f"APCER {species:14s} {value:.3f}  ({round(value * n)}/{n} admitted)")
    bona = summary["bona_fide"]
    print(f"BPCER {'bona_fide':14s} {summary['bpcer']:.3f}  "
          f"({round(summary['bpcer'] * bona)}/{bona} not admitted)")
    if summary.get("not_enrolled"):
        left = ", ".join(f"{k} {n}" for k, n in summary["not_enrolled"].items())
        print(f"not enrolled, left out of the rates (no template from photos or clip): {left}")
    if summary["unknown_labels"]:
        print(f"unknown labels (counted as attacks): {', '.join(summary['unknown_labels'])}")
