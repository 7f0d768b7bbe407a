"""Passive liveness through the real gate, on real photos and the shared clips.

Moving prints are rendered at test time from a shared photo of an enrolled person
(:mod:`server.liveness.attacks`, nothing written to disk) and played into a real
``Gate`` with ``FaceChecker`` observations, as the eval does; bona fide clips take
the same path.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from server.face.engine import FaceEngine
from server.face.imageio import decode_image
from server.face.matcher import DEFAULT_THRESHOLD
from server.gate import GatePolicy
from server.liveness import attacks
from server.liveness.gate_eval import (
    Case,
    CaseResult,
    Report,
    enrol_gallery,
    read_cases,
    run_case,
    run_gate,
    species_of,
)
from server.liveness.sample import LivenessPolicy
from server.verify import CheckTarget, FaceChecker

FPS = 4.0  # [gate] sample_fps
PASSIVE = GatePolicy(liveness=LivenessPolicy.PASSIVE)


@pytest.fixture(scope="module")
def obama_checker(engine: FaceEngine, faces_dir: Path) -> FaceChecker:
    case = Case("print", Path("-"), "print", "obama", faces_dir / "faces" / "obama")
    gallery, how = enrol_gallery(engine, case, [])
    assert gallery is not None and how.endswith("photos")
    return FaceChecker(engine, CheckTarget("obama", {"obama": gallery}, DEFAULT_THRESHOLD))


def test_generator_is_deterministic(faces_dir: Path) -> None:
    photo = decode_image((faces_dir / "faces/obama/1.jpg").read_bytes())
    spec_a, a = attacks.render_frames(photo, 7, duration_s=0.5, fps=8)
    spec_b, b = attacks.render_frames(photo, 7, duration_s=0.5, fps=8)
    spec_c, c = attacks.render_frames(photo, 8, duration_s=0.5, fps=8)
    assert spec_a == spec_b and spec_a != spec_c
    assert len(a) == 4 and a[0].shape == (attacks.HEIGHT, attacks.WIDTH, 3)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert not np.array_equal(a[1], c[1])


@pytest.mark.parametrize(
    ("motion", "seed"), [("turn", 0), ("turn", 1), ("tilt", 1), ("mix", 0), ("mix", 1), ("zoom", 0)]
)
def test_moving_print_of_an_enrolled_person_never_passes_passive(
    obama_checker: FaceChecker, faces_dir: Path, motion: str, seed: int
) -> None:
    # Held close, the print's border out of view: only its motion can give it away.
    # Before the parallax cue the gate admitted turn 0/1, tilt 1 and mix 0/1.
    photo = decode_image((faces_dir / "faces/obama/2.jpg").read_bytes())
    _, frames = attacks.render_frames(photo, seed, motion=motion, framing="close",
                                      face=attacks.find_face(photo), duration_s=6.0, fps=FPS)
    verdict, reason, detail, _, _ = run_gate(obama_checker, frames, PASSIVE, FPS)
    # The print is recognised as obama: only liveness stands between it and the room.
    assert (verdict, reason) == ("refused", "liveness"), detail
    assert detail.startswith("passive:")


@pytest.mark.parametrize(
    "clip", ["videos/sadtalker_aoc.mp4", "videos/liveportrait_d9.mp4", "videos/lestari_real.mp4"]
)
def test_bona_fide_clips_pass_passive_through_the_gate(
    engine: FaceEngine, faces_dir: Path, clip: str
) -> None:
    case = next(c for c in read_cases(faces_dir) if c.name == clip)
    result = run_case(engine, case, PASSIVE, FPS)
    assert result.verdict == "admitted", result


def test_eval_reports_the_gates_verdict_and_decision_time(
    engine: FaceEngine, faces_dir: Path
) -> None:
    case = next(c for c in read_cases(faces_dir) if c.name == "videos/lestari_replay.mp4")
    assert case.species == "replay_attack" and case.enrol is not None
    result = run_case(engine, case, PASSIVE, FPS)
    assert (result.verdict, result.reason) == ("refused", "liveness")
    assert result.detail == "passive:frame"  # the phone's bezel, around every frame
    # Decided within the first second: three frames with the bezel are enough.
    assert result.decision_s is not None and result.decision_s <= 1.0
    assert result.enrolment == "3 photos"


def test_every_label_but_bona_fide_is_an_attack_and_unknown_ones_are_listed() -> None:
    assert species_of("bona_fide (broadcast footage, multi-person)") == "bona_fide"
    assert species_of("replay_attack") == "replay_attack"
    assert species_of("Print") == "print"
    report = Report("passive", FPS, [
        CaseResult("a", "bona_fide", "admitted"),
        CaseResult("b", "bona_fide", "refused", "liveness"),
        CaseResult("c", "print", "refused", "liveness"),
        CaseResult("d", "photo_attack", "admitted"),
        CaseResult("e", "cardboard_cutout", "refused", "liveness"),
    ])
    summary = report.summary()
    assert summary["apcer"] == {"cardboard_cutout": 0.0, "photo_attack": 1.0, "print": 0.0}
    assert summary["bpcer"] == 0.5
    assert summary["unknown_labels"] == ["cardboard_cutout"]


def test_cases_nobody_could_enrol_are_left_out_of_the_rates_and_counted() -> None:
    """An attack never played against an enrolled person measured nothing: counting it
    as refused would lower APCER; a bona fide one would raise BPCER."""
    report = Report("passive", FPS, [
        CaseResult("a", "bona_fide", "admitted"),
        CaseResult("b", "bona_fide", "not_enrolled"),
        CaseResult("c", "print", "admitted"),
        CaseResult("d", "print", "not_enrolled"),
        CaseResult("e", "print", "not_enrolled"),
    ])
    summary = report.summary()
    assert summary["apcer"] == {"print": 1.0} and summary["attacks"] == {"print": 1}
    assert summary["bpcer"] == 0.0 and summary["bona_fide"] == 1
    assert summary["not_enrolled"] == {"bona_fide": 1, "print": 2}


def test_generated_cases_enrol_from_the_persons_photos(
    faces_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The set's video_cases.csv names each person's photo folder so that read_cases
    finds it from the csv's own folder, whatever the paths given to the generator (the
    documented command passes relative ones)."""
    data = tmp_path / "data"
    (data / "faces" / "obama").mkdir(parents=True)
    photo = (faces_dir / "faces/obama/1.jpg").read_bytes()  # read at test time, in tmp
    (data / "faces" / "obama" / "1.jpg").write_bytes(photo)
    monkeypatch.chdir(tmp_path)
    attacks.generate_set(Path("data"), Path("out"), per_photo=1, duration_s=0.25, fps=4.0,
                         log=False)
    (case,) = read_cases(Path("out"))
    assert case.enrol is not None and case.enrol.is_dir()
    assert case.enrol.resolve() == (data / "faces" / "obama").resolve()
    assert case.video.is_file()



def test_parallax_alone_refuses_a_print_cut_along_the_lips(
    faces_dir: Path, engine: FaceEngine
) -> None:
    # Found by the pixel-cues-off ablation: the lestari still ends just under the mouth;
    # rotated close to the camera, its cut edge over the still background dragged the
    # lip points, which read as talking until the mesh had to confirm the mouth moved.
    stills = faces_dir / "videos/stills/lestari15_subject"
    photo = decode_image((stills / "1.png").read_bytes())
    _, frames = attacks.render_frames(photo, 1362, motion="rotate", framing="close",
                                      face=attacks.find_face(photo), duration_s=5.0, fps=FPS)
    case = Case("print", Path("-"), "print", "lestari", stills)
    gallery, _ = enrol_gallery(engine, case, [])
    assert gallery is not None
    checker = FaceChecker(engine, CheckTarget("lestari", {"lestari": gallery}, DEFAULT_THRESHOLD))
    no_pixels = dataclasses.replace(
        PASSIVE.passive, enclosure=1e9, glare=1e9, moire=1e9, gamut=1e9
    )
    policy = dataclasses.replace(PASSIVE, passive=no_pixels)
    verdict, reason, detail, _, _ = run_gate(checker, frames, policy, FPS)
    assert (verdict, reason, detail) == ("refused", "liveness", "passive:static")
