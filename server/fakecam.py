"""Fake cameras for headless Chromium: y4m files made from videos, and the flags.

Testers (and our end-to-end tests and benchmarks) drive real browsers with a
video file as the camera. Chromium reads only y4m, loops it, and crops other
shapes to 640x480, so clips are scaled and padded to 4:3 first.

    python -m server.fakecam INPUT.mp4 OUTPUT.y4m [--seconds 8]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

CHROMIUM = os.environ.get("VIDEOGATE_CHROMIUM", "/usr/bin/chromium")

# Headless, no network chatter (this machine has no internet), fake media devices,
# and loopback ICE candidates allowed (the server offers 127.0.0.1 in loopback mode).
CHROMIUM_FLAGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--autoplay-policy=no-user-gesture-required",
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
    "--allow-loopback-in-peer-connection",
)

# The room page waits on its pre-join screen until the person presses "Start check";
# an automated participant (tests, benchmarks) starts at once. Give it to Playwright's
# ``page.add_init_script`` (or ``context.add_init_script``) before opening the link.
AUTOSTART_SCRIPT = "window.__vgAutostart = true;"

PAD_TO_VGA = (
    "scale=640:480:force_original_aspect_ratio=decrease,pad=640:480:(ow-iw)/2:(oh-ih)/2,fps=15"
)


def chromium_args(camera: Path) -> list[str]:
    """Flags for one browser process whose camera plays ``camera`` (one file per process)."""
    return [*CHROMIUM_FLAGS, f"--use-file-for-fake-video-capture={camera}"]


def ffmpeg_cached(source: Path, target: Path, seconds: float, *args: str) -> Path:
    """Run ffmpeg on the first ``seconds`` of ``source`` into ``target`` unless it exists.

    Writes to a partial file first, so an interrupted run never leaves a truncated
    file that a later run would take for finished.
    """
    if not target.exists():
        partial = target.with_name(f"{target.stem}.partial{target.suffix}")
        command = ["ffmpeg", "-loglevel", "error", "-y", "-i", str(source)]
        subprocess.run([*command, "-t", str(seconds), *args, str(partial)], check=True)
        partial.replace(target)
    return target


def make_y4m(source: Path, target: Path, seconds: float = 8.0) -> Path:
    """Write a 640x480, 15 fps y4m of the first ``seconds`` of ``source`` (cached)."""
    return ffmpeg_cached(source, target, seconds, "-vf", PAD_TO_VGA, "-pix_fmt", "yuv420p", "-an")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m server.fakecam", description=__doc__)
    parser.add_argument("source", type=Path)
    parser.add_argument("target", type=Path)
    parser.add_argument("--seconds", type=float, default=8.0)
    args = parser.parse_args(argv)
    make_y4m(args.source, args.target, args.seconds)
    print(f"Chromium flags: {' '.join(chromium_args(args.target.resolve()))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
