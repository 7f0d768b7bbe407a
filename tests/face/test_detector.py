from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from server.face.detector import KP_LEFT_EYE, KP_RIGHT_EYE, weighted_nms

# Faces visible in each group photo. The manifest states 2 for two_people, kit_with_rose
# and longoria-cooper, and "obama and biden plus partially visible unlabeled people" for
# obama_and_biden (3: the girl in the lower right shows her face); the bbt_* cast photos
# say "several", counted by eye (every frontal or three-quarter face; backs of heads and
# the profile in the background of bbt2 are not counted).
GROUP_COUNTS = {
    "two_people.jpg": 2,
    "kit_with_rose.jpg": 2,
    "longoria-cooper.jpg": 2,
    "obama_and_biden.jpg": 3,
    "bbt1.jpg": 4,
    "bbt2.jpg": 3,
    "bbt3.jpg": 5,
    "bbt4.jpg": 6,
    "bbt5.jpg": 5,
}


@pytest.mark.parametrize("name", sorted(GROUP_COUNTS))
def test_every_face_in_group_photos(engine, load_photo, name: str) -> None:  # type: ignore[no-untyped-def]
    dets = engine.detector.detect(load_photo(f"group/{name}"))
    assert len(dets) == GROUP_COUNTS[name]
    boxes = np.array([d.box for d in dets])
    assert (boxes[:, 2] > boxes[:, 0]).all() and (boxes[:, 3] > boxes[:, 1]).all()


def test_one_face_in_every_portrait(engine, faces_dir: Path, load_photo) -> None:  # type: ignore[no-untyped-def]
    photos = sorted(p.relative_to(faces_dir).as_posix() for p in faces_dir.glob("faces/*/*"))
    assert len(photos) == 80
    counts = {rel: len(engine.detector.detect(load_photo(rel))) for rel in photos}
    assert all(n >= 1 for n in counts.values()), counts
    assert sum(n == 1 for n in counts.values()) == len(photos)


def test_tight_grey_crop_found_thanks_to_padding(engine, load_photo) -> None:  # type: ignore[no-untyped-def]
    img = load_photo("faces/bbt_amy/1.png")
    assert max(img.shape[:2]) < 200
    # crop even tighter so the face fills the whole image
    h, w = img.shape[:2]
    tight = img[h // 8 : h - h // 8, w // 8 : w - w // 8]
    dets = engine.detector.detect(tight)
    assert len(dets) == 1


def test_input_normalisation_gives_same_face(engine, load_photo) -> None:  # type: ignore[no-untyped-def]
    rgb = load_photo("faces/obama/2.jpg")
    ref = engine.detector.detect(rgb)[0]
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    rgba = np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)])
    u16 = rgb.astype(np.uint16) * 257
    flt = rgb.astype(np.float32) / 255.0
    for variant in (grey, grey[:, :, None], rgba, u16, flt):
        dets = engine.detector.detect(variant)
        assert len(dets) == 1
        assert np.allclose(dets[0].box, ref.box, atol=0.05 * ref.width)


def test_keypoints_and_640x480_frame(engine, load_photo) -> None:  # type: ignore[no-untyped-def]
    rgb = load_photo("faces/obama/2.jpg")
    frame = np.zeros((480, 640, 3), np.uint8)
    small = cv2.resize(rgb, (320, int(rgb.shape[0] * 320 / rgb.shape[1])))
    hh = min(small.shape[0], 480)
    frame[:hh, 160:480] = small[:hh]
    dets = engine.detector.detect(frame)
    assert len(dets) == 1
    d = dets[0]
    x0, y0, x1, y1 = d.box
    assert 160 <= x0 < x1 <= 480
    kp = d.keypoints
    assert kp.shape == (6, 2)
    # the person's right eye is on the image's left
    assert kp[KP_RIGHT_EYE, 0] < kp[KP_LEFT_EYE, 0]
    assert all(x0 <= x <= x1 and y0 <= y <= y1 for x, y in kp[:4])


def test_no_face_in_blank_or_noise(engine) -> None:  # type: ignore[no-untyped-def]
    assert engine.detector.detect(np.zeros((480, 640, 3), np.uint8)) == []
    noise = np.random.default_rng(0).integers(0, 255, (480, 640, 3), dtype=np.uint8)
    assert engine.detector.detect(noise) == []


def test_weighted_nms_merges_overlaps() -> None:
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60]], float)
    kps = np.zeros((3, 6, 2))
    kps[1] += 2
    scores = np.array([0.9, 0.6, 0.7])
    out = weighted_nms(boxes, kps, scores, 0.3)
    assert len(out) == 2
    box, kp, score = out[0]
    assert score == 0.9
    assert np.allclose(box, (boxes[0] * 0.9 + boxes[1] * 0.6) / 1.5)
    assert np.allclose(kp, 2 * 0.6 / 1.5)
