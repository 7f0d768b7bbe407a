from __future__ import annotations

import numpy as np


def test_mesh_and_measures_on_frontal_face(engine, load_photo) -> None:  # type: ignore[no-untyped-def]
    rgb = load_photo("faces/obama/1.jpg")
    face = engine.analyse(rgb, mesh=True, embed=False).faces[0]
    assert face.mesh is not None and face.mesh.shape == (478, 3)  # the landmarker (default)
    x0, y0, x1, y1 = face.box
    inside = (
        (face.mesh[:, 0] > x0 - 0.2 * (x1 - x0))
        & (face.mesh[:, 0] < x1 + 0.2 * (x1 - x0))
        & (face.mesh[:, 1] > y0 - 0.3 * (y1 - y0))
        & (face.mesh[:, 1] < y1 + 0.2 * (y1 - y0))
    )
    assert inside.mean() > 0.98
    m = face.measures
    assert m is not None
    assert 0.15 < m.ear_left < 0.45 and 0.15 < m.ear_right < 0.45
    assert abs(m.yaw) < 15 and abs(m.pitch) < 20 and abs(m.roll) < 10


def test_yaw_sign_flips_with_mirror_and_roll_follows_rotation(engine, load_photo) -> None:  # type: ignore[no-untyped-def]
    rgb = load_photo("faces/bbt_amy/1.png")  # head turned (yaw about -20)
    a = engine.analyse(rgb, embed=False).faces[0].measures
    b = engine.analyse(np.ascontiguousarray(rgb[:, ::-1]), embed=False).faces[0].measures
    assert a is not None and b is not None
    assert abs(a.yaw) > 10
    assert np.sign(a.yaw) == -np.sign(b.yaw)
    assert abs(a.yaw + b.yaw) < 8


def test_closed_eyes_have_lower_ear(engine, load_photo) -> None:  # type: ignore[no-untyped-def]
    # obama/1.jpg: eyes open; EAR of open eyes is well above the closed-eye range
    m = engine.analyse(load_photo("faces/obama/2.jpg"), embed=False).faces[0].measures
    assert m is not None and min(m.ear_left, m.ear_right) > 0.18
