"""Typed settings: ``config/default.toml``, then an optional file, then env vars.

Environment variables win so that a Procfile or container can change one value
without shipping a file: ``VIDEOGATE_<SECTION>_<KEY>``, e.g. ``VIDEOGATE_SERVER_PORT``.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_FILE = REPO_ROOT / "config" / "default.toml"


class ConfigError(ValueError):
    """A setting has a value we cannot use; the message names the setting."""


@dataclass(frozen=True)
class ServerSettings:
    host: str = "127.0.0.1"
    port: int = 8080
    public_url: str = ""
    loopback: bool = False
    data_dir: str = "data"
    tls_cert: str = ""
    tls_key: str = ""


@dataclass(frozen=True)
class GateSettings:
    sample_fps: float = 4.0
    attempt_timeout_s: float = 20.0
    max_attempts: int = 3
    lockout_failures: int = 5
    lockout_window_s: float = 180.0
    lockout_duration_s: float = 1800.0
    frames_required: int = 3
    min_motion: float = 0.02
    rejoin_grace_s: float = 30.0
    threshold: float = 0.0


@dataclass(frozen=True)
class LivenessSettings:
    """[liveness]: which checks rooms require, and the few tunables (docs/liveness.md)."""

    # off | passive | active | active+passive (a per-room setting can override later)
    policy: str = "active+passive"
    # Seconds allowed for each prompted action.
    step_time_s: float = 6.0
    # Number of actions per challenge is drawn between these.
    min_steps: int = 2
    max_steps: int = 3
    # Combined passive score above which a face is refused (1.0 = calibrated).
    passive_threshold: float = 1.0
    # TEST ONLY: a non-negative value seeds the challenge draw so tests can predict it.
    # Production leaves it at -1: challenges come from secrets.SystemRandom().
    test_seed: int = -1


@dataclass(frozen=True)
class PresenceSettings:
    """[presence]: continuous presence checks and host re-verification (docs/presence.md)."""

    # Check each admitted participant's presence on one decoded keyframe this often;
    # a room's own ``presence_interval_s`` wins. 0 turns the checks off.
    interval_s: float = 10.0
    # Consecutive failed checks before an event: no face, someone else, extra faces.
    lost_checks: int = 2
    mismatch_checks: int = 2
    extra_checks: int = 2
    # Seconds to wait for the requested keyframe; a check without one is skipped.
    keyframe_timeout_s: float = 3.0
    # While a participant re-verifies, the others stop receiving their media.
    pause_media_on_reverify: bool = True


@dataclass(frozen=True)
class WebhookSettings:
    """[webhooks]: delivery of signed room events to owners' endpoints."""

    # Tries per delivery (the first included), waiting backoff_s * 2**n between tries.
    max_attempts: int = 5
    backoff_s: float = 2.0
    # Seconds allowed per HTTP request.
    timeout_s: float = 5.0
    # Deliveries waiting beyond this are dropped (logged as such): media never waits.
    queue_max: int = 1000


@dataclass(frozen=True)
class FaceSettings:
    """[face]: "onnx" runs dlib's ResNet ported to ONNX; "dlib" runs the reference.

    ``landmarks``: "landmarker" (MediaPipe Face Landmarker, 478 points + blendshapes, the
    liveness default) or "mesh" (the 468-point mesh alone; expressions from geometry)."""

    embedder: Literal["onnx", "dlib"] = "onnx"
    landmarks: Literal["landmarker", "mesh"] = "landmarker"


@dataclass(frozen=True)
class LimitSettings:
    """[limits]: what one client may cost the server (docs/security.md)."""

    max_message_bytes: int = 65536
    # Per-websocket message rate (token bucket): sustained messages per second and the
    # burst allowed on top. A socket over it gets one ``rate_limited`` error and is closed.
    messages_per_s: float = 20.0
    message_burst: int = 60
    # A participant whose media has not connected and delivered a frame this many
    # seconds after joining (ICE never completes, no offer, camera never starts) is
    # told ``media_timeout`` and freed: pc, tasks and lobby seat.
    media_timeout_s: float = 45.0


@dataclass(frozen=True)
class Settings:
    server: ServerSettings = field(default_factory=ServerSettings)
    gate: GateSettings = field(default_factory=GateSettings)
    liveness: LivenessSettings = field(default_factory=LivenessSettings)
    face: FaceSettings = field(default_factory=FaceSettings)
    limits: LimitSettings = field(default_factory=LimitSettings)
    presence: PresenceSettings = field(default_factory=PresenceSettings)
    webhooks: WebhookSettings = field(default_factory=WebhookSettings)

    @property
    def data_path(self) -> Path:
        path = Path(self.server.data_dir)
        return path if path.is_absolute() else REPO_ROOT / path

    @property
    def model_cache(self) -> Path:
        """Converted models (ONNX from the packaged tflite files) live beside the data."""
        return self.data_path / "models"

    @property
    def base_url(self) -> str:
        if self.server.public_url:
            return self.server.public_url.rstrip("/")
        scheme = "https" if self.server.tls_cert else "http"
        return f"{scheme}://{self.server.host}:{self.server.port}"


def _coerce(name: str, raw: Any, kind: type) -> Any:
    if kind is bool:
        if isinstance(raw, bool):
            return raw
        text = str(raw).strip().lower()
        if text in {"1", "true", "yes", "on"}:
            return True
        if text in {"0", "false", "no", "off"}:
            return False
        raise ConfigError(f"{name}: expected true/false, got {raw!r}")
    try:
        return kind(raw)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{name}: expected {kind.__name__}, got {raw!r}") from exc


def _section(cls: type, name: str, values: Mapping[str, Any], env: Mapping[str, str]) -> Any:
    kwargs: dict[str, Any] = {}
    known = {f.name: f for f in dataclasses.fields(cls)}
    for key in values:
        if key not in known:
            raise ConfigError(f"unknown setting [{name}] {key}")
    for fname, fdef in known.items():
        kind = type(fdef.default)
        env_key = f"VIDEOGATE_{name}_{fname}".upper()
        if env_key in env:
            kwargs[fname] = _coerce(env_key, env[env_key], kind)
        elif fname in values:
            kwargs[fname] = _coerce(f"[{name}] {fname}", values[fname], kind)
    return cls(**kwargs)


def load_settings(
    path: Path | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
) -> Settings:
    """Merge defaults, the given TOML file and the environment into one frozen object."""
    env = os.environ if env is None else env
    data: dict[str, dict[str, Any]] = {}
    files = [DEFAULT_FILE]
    extra = path or (Path(env["VIDEOGATE_CONFIG"]) if env.get("VIDEOGATE_CONFIG") else None)
    if extra is not None:
        files.append(extra)
    for file in files:
        try:
            loaded = tomllib.loads(file.read_text())
        except FileNotFoundError as exc:
            raise ConfigError(f"config file not found: {file}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{file}: {exc}") from exc
        for section, values in loaded.items():
            data.setdefault(section, {}).update(values)
    for section, values in (overrides or {}).items():
        data.setdefault(section, {}).update(values)
    sections = {
        "server": ServerSettings,
        "gate": GateSettings,
        "liveness": LivenessSettings,
        "face": FaceSettings,
        "limits": LimitSettings,
        "presence": PresenceSettings,
        "webhooks": WebhookSettings,
    }
    for section in data:
        if section not in sections:
            raise ConfigError(f"unknown config section [{section}]")
    built = {name: _section(cls, name, data.get(name, {}), env) for name, cls in sections.items()}
    settings = Settings(**built)
    _validate(settings)
    return settings


def _validate(settings: Settings) -> None:
    limits = settings.limits
    if limits.messages_per_s <= 0 or limits.message_burst < 1:
        raise ConfigError("[limits] messages_per_s must be > 0 and message_burst >= 1")
    if limits.media_timeout_s <= 0:
        raise ConfigError("[limits] media_timeout_s must be > 0")
    gate = settings.gate
    if gate.sample_fps <= 0 or gate.sample_fps > 30:
        raise ConfigError("[gate] sample_fps must be in (0, 30]")
    if gate.max_attempts < 1:
        raise ConfigError("[gate] max_attempts must be at least 1")
    if gate.frames_required < 1:
        raise ConfigError("[gate] frames_required must be at least 1")
    if gate.threshold < 0 or gate.threshold >= 2:
        raise ConfigError("[gate] threshold must be 0 (engine default) or in (0, 2)")
    if settings.face.embedder not in ("onnx", "dlib"):
        raise ConfigError("[face] embedder must be onnx or dlib")
    if settings.face.landmarks not in ("landmarker", "mesh"):
        raise ConfigError("[face] landmarks must be landmarker or mesh")
    live = settings.liveness
    if live.policy.strip().lower() not in {"off", "passive", "active", "active+passive"}:
        raise ConfigError("[liveness] policy must be off, passive, active or active+passive")
    if not 1 <= live.min_steps <= live.max_steps <= 6:
        raise ConfigError("[liveness] need 1 <= min_steps <= max_steps <= 6")
    if live.step_time_s <= 0:
        raise ConfigError("[liveness] step_time_s must be > 0")
    presence = settings.presence
    if (
        presence.interval_s < 0
        or min(presence.lost_checks, presence.mismatch_checks, presence.extra_checks) < 1
    ):
        raise ConfigError("[presence] interval_s must be >= 0 and the *_checks at least 1")
    hooks = settings.webhooks
    if hooks.max_attempts < 1 or hooks.backoff_s < 0 or hooks.timeout_s <= 0:
        raise ConfigError("[webhooks] need max_attempts >= 1, backoff_s >= 0, timeout_s > 0")
    if bool(settings.server.tls_cert) != bool(settings.server.tls_key):
        raise ConfigError("[server] tls_cert and tls_key must be set together")
