"""The reader of dlib's serialised DNN format (server.face.dlib_dat)."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from server.face.dlib_convert import face_resnet_topology, match_topology
from server.face.dlib_dat import (
    Affine,
    Conv,
    DatFormatError,
    FullyConnected,
    Pool,
    Wrapper,
    _Reader,
    parse_dat,
)


def test_primitives() -> None:
    # integers: control byte (size | sign) then little-endian magnitude; zero has one byte
    r = _Reader(b"\x01\x00" + b"\x81\x1c" + b"\x02\x80\x12" + b"\x01\x96")
    assert [r.varint() for _ in range(4)] == [0, -28, 4736, 150]
    # floats: mantissa then exponent (0.04 = 10737418 * 2**-28)
    r = _Reader(b"\x03\x0a\xd7\xa3\x81\x1c" + b"\x01\x01\x01\x00")
    assert r.real() == pytest.approx(0.04, rel=1e-7)
    assert r.real() == 1.0
    r = _Reader(b"\x01\x05con_4" + b"10")
    assert (r.text(), r.flag(), r.flag()) == ("con_4", True, False)
    # tensor version 2: raw float32 after the 4 sizes
    raw = np.arange(6, dtype="<f4").tobytes()
    r = _Reader(b"\x01\x02" + b"\x01\x01\x01\x02\x01\x03\x01\x01" + raw)
    t = r.tensor()
    assert t.shape == (1, 2, 3, 1) and t.dtype == np.float32
    assert t.reshape(-1).tolist() == [0, 1, 2, 3, 4, 5]


def test_bad_integer_control_byte() -> None:
    with pytest.raises(DatFormatError, match="control byte"):
        _Reader(b"\x31").varint()


def test_face_resnet_layers(dat_bytes: bytes) -> None:
    net = parse_dat(dat_bytes)
    assert net.loss.margin == pytest.approx(0.04)
    assert net.loss.distance_threshold == pytest.approx(0.6)
    assert net.input.avg_rgb == pytest.approx((122.782, 117.001, 104.298), abs=1e-4)
    assert (net.input.rows, net.input.cols) == (150, 150)
    assert len(net.layers) == 130
    assert Counter(net.kinds) == {
        "con": 29,
        "affine": 29,
        "relu": 29,
        "tag_or_skip": 22,
        "add_prev": 14,
        "avg_pool": 5,
        "max_pool": 1,
        "fc": 1,
    }
    first = net.layers[0]
    assert isinstance(first, Conv)
    assert first.weights.shape == (32, 3, 7, 7) and first.bias.shape == (32,)
    assert first.stride == (2, 2) and first.padding == (0, 0)
    convs = [layer for layer in net.layers if isinstance(layer, Conv)]
    assert [c.weights.shape[0] for c in convs] == [32] * 7 + [64] * 8 + [128] * 6 + [256] * 8
    strided = [c for c in convs if c.stride == (2, 2)]
    assert len(strided) == 5 and all(c.padding == (0, 0) for c in strided)
    assert all(c.padding == (1, 1) for c in convs if c.stride == (1, 1))
    affines = [layer for layer in net.layers if isinstance(layer, Affine)]
    assert all(a.conv_mode and a.gamma.shape == a.beta.shape for a in affines)
    pools = [layer for layer in net.layers if isinstance(layer, Pool)]
    assert pools[0].op == "max" and pools[0].window == (3, 3) and pools[0].stride == (2, 2)
    assert pools[-1].op == "avg" and pools[-1].window == (0, 0)  # avg_pool_everything
    fc = net.layers[-1]
    assert isinstance(fc, FullyConnected)
    assert fc.weights.shape == (256, 128) and fc.bias is None  # fc_no_bias
    assert all(np.isfinite(c.weights).all() for c in convs)


def test_topology_matches_the_cpp_type(dat_bytes: bytes) -> None:
    net = parse_dat(dat_bytes)
    ops = face_resnet_topology()
    pairs = match_topology(net, ops)
    assert len(pairs) == 130
    assert [isinstance(layer, Wrapper) for _, layer in pairs] == [
        op.kind in ("tag", "skip") for op in ops
    ]
    # one layer missing, or a different type in its place, is refused
    with pytest.raises(DatFormatError, match="layers"):
        match_topology(net, ops[:-1])
    swapped = list(ops)
    swapped[1], swapped[2] = swapped[2], swapped[1]
    with pytest.raises(DatFormatError, match="layer 1"):
        match_topology(net, swapped)


def test_truncated_or_padded_file_refused(dat_bytes: bytes) -> None:
    with pytest.raises(DatFormatError, match="end of file"):
        parse_dat(dat_bytes[: len(dat_bytes) // 2])
    with pytest.raises(DatFormatError, match="trailing"):
        parse_dat(dat_bytes + b"\x00")
    with pytest.raises(DatFormatError):
        parse_dat(b"\x01\x01\x01\x05hello")
