"""Print-attack generator: a flat photo moved in front of a simulated webcam.

``python -m server.liveness.attacks PHOTO OUT.mp4 [--seed N] [--motion M] ...`` renders
one clip; ``python -m server.liveness.attacks FACES_DIR OUT_DIR`` renders
``--per-photo`` clips for every photo under ``FACES_DIR/faces`` (and the video stills)
and writes ``OUT_DIR/video_cases.csv`` in the shared data's format, so the gate eval
reads generated and shared clips alike. Clips go to a cache outside git (``var/``).

Why a simulation: the attack the gate must refuse is a printed photo of an enrolled
person held to the camera and tilted, turned, panned and zoomed by hand, and the
shared data has one still of it. Rendering the print as a plane in 3-D seen by a
pinhole camera gives exactly the geometry a real print has (every point moves by one
homography), with the nuisances a person adds: paper border or none, lighting that
changes over the paper, a plain or cluttered background, hand tremor, sensor noise and
codec loss. Trajectories are periodic in the clip's duration, so a looping fake camera
has no seam. Everything is drawn from ``numpy.random.default_rng(seed)``: the same
photo and seed give the same frames.
"""

from __future__ import annotations

import argparse
import csv
import functools
import math
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np

from ..face.imageio import decode_image

WIDTH, HEIGHT = 640, 480
FOCAL_PX = 560.0  # ~60 degrees horizontal field of view, a typical webcam
MOTIONS = ("tilt", "turn", "rotate", "pan", "zoom", "mix")
# "close" is the hard case: the print's border is out of view, so only the motion of
# what is printed can give it away (the frame cue needs straight edges all round).
FRAMINGS = ("whole", "close")
PHOTO_EXTS = {".jpg", ".jpeg", ".png"}
PAPER_MAX_PX = 480  # the print's long side is resampled to at most this
NOISE_FIELDS = 5  # sensor-noise fields cycled over the frames


@dataclass(frozen=True)
class AttackSpec:
    """Everything one clip is drawn from (all angles in degrees)."""

    motion: str
    border: float  # paper margin around the photo, fraction of the photo's long side
    textured: bool
    tilt_deg: float  # about the horizontal axis (top towards / away from the camera)
    turn_deg: float  # about the vertical axis
    roll_deg: float  # in-plane rotation
    zoom: float  # relative change of distance
    pan_px: tuple[float, float]
    light: float  # relative brightness swing
    framing: str  # "whole": the print's edges in view; "close": held close, edges cut off
    face_px: float  # apparent width at rest: of the photo ("whole"), of the face ("close")
    phases: tuple[float, ...]


def draw_spec(
    rng: np.random.Generator, motion: str | None = None, framing: str | None = None
) -> AttackSpec:
    motion = motion or str(rng.choice(MOTIONS))
    framing = framing or str(rng.choice(FRAMINGS))
    if framing not in FRAMINGS:
        raise ValueError(f"framing must be one of {', '.join(FRAMINGS)}, got {framing!r}")
    if motion not in MOTIONS:
        raise ValueError(f"motion must be one of {', '.join(MOTIONS)}, got {motion!r}")

    def amp(lo: float, hi: float, on: bool) -> float:
        return float(rng.uniform(lo, hi)) if on else float(rng.uniform(0.0, lo / 4))

    mix = motion == "mix"
    return AttackSpec(
        motion=motion,
        border=float(rng.choice([0.0, rng.uniform(0.03, 0.12)])),
        textured=bool(rng.random() < 0.5),
        tilt_deg=amp(12.0, 35.0, motion == "tilt" or mix),
        turn_deg=amp(12.0, 35.0, motion == "turn" or mix),
        roll_deg=amp(8.0, 25.0, motion == "rotate" or mix),
        zoom=amp(0.1, 0.3, motion == "zoom" or mix),
        pan_px=(amp(25.0, 90.0, motion == "pan" or mix), amp(15.0, 60.0, motion == "pan" or mix)),
        light=float(rng.uniform(0.0, 0.35)),
        framing=framing,
        face_px=float(rng.uniform(*((200.0, 340.0) if framing == "whole" else (170.0, 280.0)))),
        phases=tuple(float(p) for p in rng.uniform(0, 2 * math.pi, 12)),
    )


def _background(rng: np.random.Generator, textured: bool) -> np.ndarray:
    base = rng.uniform(40, 220, 3)
    bg = np.empty((HEIGHT, WIDTH, 3), np.float32)
    bg[:] = base
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)
    vignette = 1.0 - 0.25 * (((xx - WIDTH / 2) / WIDTH) ** 2 + ((yy - HEIGHT / 2) / HEIGHT) ** 2)
    bg *= vignette[..., None]
    if textured:
        noise = rng.normal(0, 40, (HEIGHT // 8, WIDTH // 8, 3)).astype(np.float32)
        bg += cv2.resize(noise, (WIDTH, HEIGHT), interpolation=cv2.INTER_CUBIC)
        for _ in range(int(rng.integers(4, 12))):  # shelves, frames, door edges
            x0, y0 = int(rng.integers(0, WIDTH)), int(rng.integers(0, HEIGHT))
            x1, y1 = x0 + int(rng.integers(20, 200)), y0 + int(rng.integers(20, 200))
            colour = tuple(float(c) for c in rng.uniform(20, 235, 3))
            cv2.rectangle(bg, (x0, y0), (x1, y1), colour, int(rng.choice([-1, 2, 4])))
    return np.clip(bg, 0, 255)


def _paper(photo: np.ndarray, spec: AttackSpec, rng: np.random.Generator) -> np.ndarray:
    """The printed sheet: the photo with slightly lower contrast and a white margin."""
    scale = PAPER_MAX_PX / max(photo.shape[:2])
    if scale < 1:  # never rendered larger than this: keeps the cost per frame flat
        photo = cv2.resize(photo, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    ink = photo.astype(np.float32) * float(rng.uniform(0.85, 0.97)) + float(rng.uniform(5, 20))
    margin = round(spec.border * max(photo.shape[:2]))
    if margin == 0:
        return ink
    white = float(rng.uniform(215, 250))
    return cv2.copyMakeBorder(ink, margin, margin, margin, margin, cv2.BORDER_CONSTANT,
                              value=(white, white, white))


def _rotation(tilt: float, turn: float, roll: float) -> np.ndarray:
    a, b, c = (math.radians(v) for v in (tilt, turn, roll))
    rx = np.array([[1, 0, 0], [0, math.cos(a), -math.sin(a)], [0, math.sin(a), math.cos(a)]])
    ry = np.array([[math.cos(b), 0, math.sin(b)], [0, 1, 0], [-math.sin(b), 0, math.cos(b)]])
    rz = np.array([[math.cos(c), -math.sin(c), 0], [math.sin(c), math.cos(c), 0], [0, 0, 1]])
    return np.asarray(rz @ ry @ rx)


def _wave(phase: float, u: float, harmonic: int = 1) -> float:
    return math.sin(2 * math.pi * harmonic * u + phase)


def render_frames(
    photo: np.ndarray, seed: int, *, motion: str | None = None, framing: str | None = None,
    face: tuple[float, float, float] | None = None, duration_s: float = 6.0, fps: float = 30.0,
) -> tuple[AttackSpec, list[np.ndarray]]:
    """The clip's RGB frames (640x480); deterministic in all the arguments.

    ``face`` (centre x, centre y, width in photo pixels) centres the print on the face
    and sizes a "close" print by its face; without it the photo's centre is used and
    the face is taken to span 60 % of the photo's width.
    """
    rng = np.random.default_rng(seed)
    spec = draw_spec(rng, motion, framing)
    h0, w0 = photo.shape[:2]
    fx, fy, fw = face if face is not None else (w0 / 2, h0 / 2, 0.6 * w0)
    paper = _paper(photo, spec, rng)
    background = _background(rng, spec.textured)
    ph, pw = paper.shape[:2]
    inner = pw / (1 + 2 * spec.border) if spec.border else pw
    k = inner / w0  # photo pixels -> paper pixels
    margin = (pw - inner) / 2
    cx, cy = margin + fx * k - pw / 2, margin + fy * k - ph / 2  # face centre on the paper
    corners = np.array([[-pw / 2 - cx, -ph / 2 - cy, 0], [pw / 2 - cx, -ph / 2 - cy, 0],
                        [pw / 2 - cx, ph / 2 - cy, 0], [-pw / 2 - cx, ph / 2 - cy, 0]])
    src = np.array([[0, 0], [pw, 0], [pw, ph], [0, ph]], np.float32)
    z0 = FOCAL_PX * (inner if spec.framing == "whole" else fw * k) / spec.face_px
    yy, xx = np.mgrid[0:ph, 0:pw].astype(np.float32)
    light_dir = rng.normal(size=2)
    light_dir /= max(float(np.linalg.norm(light_dir)), 1e-6)
    gradient = (light_dir[0] * (xx / pw - 0.5) + light_dir[1] * (yy / ph - 0.5))[..., None]
    noise_rng = np.random.default_rng(seed + 1)
    noise = [noise_rng.normal(0, 2.0, (HEIGHT, WIDTH, 3)).astype(np.float32)
             for _ in range(NOISE_FIELDS)]
    n = max(1, round(duration_s * fps))
    p = spec.phases
    frames: list[np.ndarray] = []
    for i in range(n):
        u = i / n  # periodic: the last frame leads smoothly into the first
        tremor = 0.6 * _wave(p[8], u, 7) + 0.4 * _wave(p[9], u, 11)
        rot = _rotation(
            spec.tilt_deg * _wave(p[0], u) + 1.5 * tremor,
            spec.turn_deg * _wave(p[1], u) + 1.5 * _wave(p[10], u, 9),
            spec.roll_deg * _wave(p[2], u) + tremor,
        )
        z = z0 * (1 + spec.zoom * _wave(p[3], u))
        shift = np.array([spec.pan_px[0] * _wave(p[4], u) + 3 * tremor,
                          spec.pan_px[1] * _wave(p[5], u, 2) + 3 * _wave(p[11], u, 13), 0.0])
        world = corners @ rot.T + np.array([0.0, 0.0, z]) + shift * z / FOCAL_PX
        dst = np.stack([FOCAL_PX * world[:, 0] / world[:, 2] + WIDTH / 2,
                        FOCAL_PX * world[:, 1] / world[:, 2] + HEIGHT / 2], axis=1)
        hom = cv2.getPerspectiveTransform(src, dst.astype(np.float32))
        gain = 1 + spec.light * _wave(p[6], u)
        shade = paper * (gain * (1 + 0.35 * spec.light * _wave(p[7], u) * 2 * gradient))
        warped = cv2.warpPerspective(np.clip(shade, 0, 255), hom, (WIDTH, HEIGHT),
                                     flags=cv2.INTER_LINEAR)
        mask = cv2.warpPerspective(np.ones((ph, pw), np.float32), hom, (WIDTH, HEIGHT),
                                   flags=cv2.INTER_LINEAR)[..., None]
        frame = warped * mask + background * gain * (1 - mask)
        frame = np.asarray(cv2.GaussianBlur(frame, (3, 3), 0.6), np.float32)
        frame += noise[i % NOISE_FIELDS]
        frames.append(np.clip(frame, 0, 255).astype(np.uint8))
    return spec, frames


def write_clip(frames: list[np.ndarray], out: Path, fps: float = 30.0) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(out), "w") as container:
        stream = container.add_stream("libx264", rate=round(fps))
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        stream.options = {"crf": "23", "preset": "veryfast", "threads": "1"}
        for rgb in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def find_face(photo: np.ndarray) -> tuple[float, float, float] | None:
    """(centre x, centre y, width) of the photo's largest face, by the server's detector."""
    faces = _engine().analyse(photo, mesh=False, embed=False).faces
    if not faces:
        return None
    x0, y0, x1, y1 = max(faces, key=lambda f: f.area).box
    return (x0 + x1) / 2, (y0 + y1) / 2, x1 - x0


@functools.cache
def _engine() -> Any:
    from ..face.engine import FaceEngine  # only here: rendering itself needs no models

    return FaceEngine.load()


def generate(
    photo_path: Path, out: Path, seed: int, *, motion: str | None = None,
    framing: str | None = None, duration_s: float = 6.0, fps: float = 30.0,
) -> AttackSpec:
    photo = decode_image(photo_path.read_bytes())
    spec, frames = render_frames(photo, seed, motion=motion, framing=framing,
                                 face=find_face(photo), duration_s=duration_s, fps=fps)
    write_clip(frames, out, fps)
    return spec


def shared_photos(data: Path) -> list[tuple[str, Path, str]]:
    """(identity, photo, enrolment folder relative to ``data``) for every shared photo."""
    found: list[tuple[str, Path, str]] = []
    for root in (data / "faces", data / "videos" / "stills"):
        for person in sorted(p for p in root.glob("*") if p.is_dir()):
            for photo in sorted(person.iterdir()):
                if photo.suffix.lower() in PHOTO_EXTS:
                    found.append((person.name, photo, f"{person.relative_to(data)}/"))
    return found


def generate_set(
    data: Path, out_dir: Path, *, per_photo: int = 3, seed: int = 0, duration_s: float = 6.0,
    fps: float = 15.0, log: bool = True, shard: tuple[int, int] = (0, 1),
) -> Path:
    """Clips for every shared photo plus ``video_cases.csv``; existing clips are kept.

    ``shard=(i, n)`` renders only every n-th photo from the i-th (parallel processes)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    for n, (identity, photo, enrol) in enumerate(shared_photos(data)):
        for k in range(per_photo):
            motion = MOTIONS[(n * per_photo + k) % len(MOTIONS)]
            framing = FRAMINGS[0] if k % 3 == 0 else FRAMINGS[1]
            clip_seed = seed * 100_003 + n * 17 + k
            name = f"{identity}_{photo.stem}_{motion}_{framing}_{clip_seed}.mp4"
            target = out_dir / name
            if not target.exists() and n % shard[1] == shard[0]:
                tmp = target.with_suffix(".tmp.mp4")
                generate(photo, tmp, clip_seed, motion=motion, framing=framing,
                         duration_s=duration_s, fps=fps)
                tmp.rename(target)
                if log:
                    print(f"wrote {target}", file=sys.stderr)
            # Relative to the csv's folder, where read_cases resolves them.
            rows.append({"video": name, "identity": identity, "presentation": "print",
                         "enroll_with": os.path.relpath(data / enrol, out_dir),
                         "duration_s": f"{duration_s:.2f}", "motion": motion,
                         "framing": framing, "photo": os.path.relpath(photo, out_dir)})
    cases = out_dir / "video_cases.csv"
    with cases.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return cases


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m server.liveness.attacks",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("photo", type=Path, help="a photo, or a shared data folder (faces/)")
    parser.add_argument("out", type=Path, help="OUT.mp4, or a folder for a whole set")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--motion", choices=MOTIONS, default=None, help="default: drawn")
    parser.add_argument("--framing", choices=FRAMINGS, default=None, help="default: drawn")
    parser.add_argument("--duration", type=float, default=6.0, help="seconds (loops seamlessly)")
    parser.add_argument("--fps", type=float, default=None, help="default 30 (15 for a set)")
    parser.add_argument("--per-photo", type=int, default=3, help="clips per photo (folder mode)")
    parser.add_argument("--shard", default="0/1", help="i/n: render every n-th photo (folder mode)")
    args = parser.parse_args(argv)
    if args.photo.is_dir():
        cases = generate_set(args.photo, args.out, per_photo=args.per_photo, seed=args.seed,
                             duration_s=args.duration, fps=args.fps or 15.0,
                             shard=(int(args.shard.split("/")[0]), int(args.shard.split("/")[1])))
        print(f"wrote {cases}")
        return 0
    spec = generate(args.photo, args.out, args.seed, motion=args.motion, framing=args.framing,
                    duration_s=args.duration, fps=args.fps or 30.0)
    print(f"wrote {args.out}: {spec}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
