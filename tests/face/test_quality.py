from __future__ import annotations

import cv2
import numpy as np

from server.face import quality as q


def _codes(result) -> set[str]:  # type: ignore[no-untyped-def]
    return {i.code for i in result.issues}


def _jpeg(rgb: np.ndarray) -> bytes:
    ok, enc = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    assert ok
    return enc.tobytes()


def test_good_photo_enrols(engine, load_photo) -> None:  # type: ignore[no-untyped-def]
    r = engine.enrol_frame(load_photo("faces/obama/2.jpg"))
    assert r.ok and r.embedding is not None and r.embedding.shape == (128,)
    assert r.issues == () and r.error is None


def test_blurred(engine, load_photo) -> None:  # type: ignore[no-untyped-def]
    rgb = load_photo("faces/obama/2.jpg")
    r = engine.enrol_photo(_jpeg(cv2.GaussianBlur(rgb, (0, 0), 6)))
    assert not r.ok and q.BLURRED in _codes(r)
    assert all(i.message for i in r.issues)


def test_too_dark_and_too_bright(engine, load_photo) -> None:  # type: ignore[no-untyped-def]
    rgb = load_photo("faces/obama/2.jpg")
    dark = (rgb.astype(np.float32) * 0.06).astype(np.uint8)
    assert _codes(engine.enrol_frame(dark)) == {q.TOO_DARK}
    bright = np.clip(rgb.astype(np.float32) * 0.3 + 200, 0, 255).astype(np.uint8)
    r = engine.enrol_frame(bright)
    assert not r.ok and q.TOO_BRIGHT in _codes(r)


def test_tiny_face(engine, load_photo) -> None:  # type: ignore[no-untyped-def]
    rgb = load_photo("faces/obama/2.jpg")
    canvas = np.full((480, 640, 3), 128, np.uint8)
    small = cv2.resize(
        rgb, (60, int(rgb.shape[0] * 60 / rgb.shape[1])), interpolation=cv2.INTER_AREA
    )
    canvas[200 : 200 + small.shape[0], 300:360] = small
    r = engine.enrol_frame(canvas)
    assert not r.ok
    assert _codes(r) & {q.FACE_TOO_SMALL, q.NO_FACE}
    if q.FACE_TOO_SMALL in _codes(r):
        assert "closer" in r.issues[0].message


def test_no_face_and_several_faces(engine, load_photo) -> None:  # type: ignore[no-untyped-def]
    assert _codes(engine.enrol_frame(np.full((300, 300, 3), 90, np.uint8))) == {q.NO_FACE}
    r = engine.enrol_frame(load_photo("group/two_people.jpg"))
    assert _codes(r) == {q.MULTIPLE_FACES} and "2 faces" in r.issues[0].message


def test_head_turned(engine, load_photo) -> None:  # type: ignore[no-untyped-def]
    face = engine.analyse(load_photo("faces/bbt_stuart/5.png"), embed=False).faces[0]
    assert face.measures is not None
    strict = q.QualityThresholds(max_yaw=20.0)
    stats = q.face_stats(load_photo("faces/bbt_stuart/5.png"), _det(face))
    assert q.HEAD_TURNED in {i.code for i in q.face_issues(stats, face.measures, strict)}
    lenient = q.QualityThresholds(max_yaw=45.0)
    assert q.HEAD_TURNED not in {i.code for i in q.face_issues(stats, face.measures, lenient)}
    assert "look straight" in q.face_issues(stats, face.measures, strict)[-1].message
    frontal = engine.analyse(load_photo("faces/obama/2.jpg"), embed=False).faces[0]
    assert frontal.quality == ()


def test_bad_bytes_reported_as_image_error(engine) -> None:  # type: ignore[no-untyped-def]
    r = engine.enrol_photo(b"")
    assert not r.ok and r.error is not None and r.error.code == "empty"
    assert r.reasons == [r.error.message]


def _det(face):  # type: ignore[no-untyped-def]
    from server.face.detector import Detection

    return Detection(face.box, face.keypoints, face.score)
