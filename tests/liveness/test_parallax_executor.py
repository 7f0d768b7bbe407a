"""The parallax pair is measured in the executor (``PairMaker``), not on the event loop.

The gate's track must come to the same motion as when it measured every pair itself,
and measure none itself when the executor's pairs are there (frames in order).
"""

from __future__ import annotations

from collections.abc import Callable

from server.liveness import PassiveCheck
from server.liveness.parallax import PairMaker
from server.liveness.sample import paired

from .conftest import Track


def test_executor_pairs_give_the_gate_the_same_motion_without_loop_work(
    clip_track: Callable[[str], Track],
) -> None:
    track = clip_track("liveportrait_d9.mp4")[:40]  # 5 s at 8 fps: a blinking face
    alone, helped = PassiveCheck(), PassiveCheck()
    maker = PairMaker()
    for t, sample in track:
        alone.add(sample, t)
        helped.add(paired(sample, maker, t), t)
    assert alone.motion() and alone.motion() == helped.motion()
    assert alone._track.measured_here >= 8
    assert helped._track.measured_here == 0


def test_a_pair_against_a_frame_the_gate_never_kept_is_measured_again(
    clip_track: Callable[[str], Track],
) -> None:
    """A frame the gate skipped (or a new track) changes its choice of partner: the
    executor's pair is then not used, and the gate's own measurement decides."""
    track = clip_track("liveportrait_d9.mp4")[:40:2]  # the gate's 4 fps
    alone, helped = PassiveCheck(), PassiveCheck()
    maker = PairMaker()
    for k, (t, sample) in enumerate(track):
        with_pair = paired(sample, maker, t)
        if k == 7:
            continue  # the gate never saw this frame (e.g. it arrived after a decision)
        alone.add(sample, t)
        helped.add(with_pair, t)
    assert alone.motion() == helped.motion()
    assert 0 < helped._track.measured_here < alone._track.measured_here
