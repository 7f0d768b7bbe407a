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

from .clientaddr import HEADERS, parse_trusted
from .config_scale import ClusterSettings, StoreSettings, scale_problem
from .iceservers import IceSettings, IceSettingsError, validate_ice_settings
from .media_settings import MediaSettings, MediaSettingsError, validate_media_settings
from .store.records import LIVENESS_POLICIES

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
    # Bearer token for /metrics (counts, threshold, queues); empty: /metrics is off.
    metrics_token: str = ""
    # Reverse proxies (comma-separated addresses / CIDRs) whose forwarding header is
    # believed; empty: none, the TCP peer is the client (server/clientaddr.py).
    trusted_proxies: str = ""
    # The header those proxies set: x-forwarded-for or forwarded (RFC 7239).
    forwarded_header: str = "x-forwarded-for"
    # Log lines as plain text, or one JSON object per line (server/logjson.py).
    log_format: str = "text"


@dataclass(frozen=True)
class GateSettings:
    sample_fps: float = 4.0
    attempt_timeout_s: float = 20.0
    max_attempts: int = 3
    lockout_failures: int = 5
    lockout_window_s: float = 180.0
    lockout_duration_s: float = 1800.0
    # Failures from one client address in one room before that address is locked there
    # (an address is shared by a school or an office: far above lockout_failures).
    address_failures: int = 20
    frames_required: int = 3
    min_motion: float = 0.02
    rejoin_grace_s: float = 30.0
    threshold: float = 0.0


@dataclass(frozen=True)
class LivenessSettings:
    """[liveness]: which checks rooms require, and the few tunables (docs/liveness.md)."""

    # off | passive | active | active+passive | light | light+passive | active+light |
    # active+light+passive (new rooms start from it; each room has its own)
    policy: str = "active+passive"
    # Seconds allowed for each prompted action.
    step_time_s: float = 6.0
    # Number of actions per challenge is drawn between these.
    min_steps: int = 2
    max_steps: int = 3
    # Frames analysed per second during blink / smile / open-mouth steps (a blink is
    # 100-150 ms: at [gate] sample_fps it falls between frames). Only for those steps.
    expression_fps: float = 15.0
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
    # Seconds to wait for the requested keyframe (and again for the run after it); a
    # check without them is skipped, and unverifiable_checks skipped in a row raise
    # presence.unverifiable.
    keyframe_timeout_s: float = 3.0
    unverifiable_checks: int = 2
    # Each check decodes from the keyframe to a random frame 1..run_frames-1 after it
    # and judges that one (never a keyframe): faces shown in keyframes only are caught.
    run_frames: int = 10
    # Checks come every interval_s +- this fraction of it, at random.
    check_jitter: float = 0.3
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
    # Fairness between tenants: tries in flight server-wide and per owner, and the
    # deliveries one owner may have waiting (docs/security.md, "Webhooks").
    concurrency: int = 4
    owner_concurrency: int = 2
    owner_queue_max: int = 200
    # Networks (CIDRs, comma-separated) that webhooks may reach although they are not
    # public, e.g. "10.20.0.0/16" for an on-premises receiver. Empty: public only.
    allow_networks: str = ""


@dataclass(frozen=True)
class FaceSettings:
    """[face]: "onnx" runs dlib's ResNet ported to ONNX; "dlib" runs the reference.

    ``landmarks``: "landmarker" (MediaPipe Face Landmarker, 478 points + blendshapes, the
    liveness default) or "mesh" (the 468-point mesh alone; expressions from geometry).
    ``track_landmarks``: landmark tracking between detector frames (landmarker only)."""

    embedder: Literal["onnx", "dlib"] = "onnx"
    landmarks: Literal["landmarker", "mesh"] = "landmarker"
    # Skip BlazeFace between detector frames (at least every 0.5 s), taking the face
    # region from the previous frame's landmarks as MediaPipe does (face/tracking.py);
    # expression steps, identity and light frames keep the detector (FrameNeeds).
    track_landmarks: bool = True


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
    # Lobby sessions (not yet admitted) at once: one client address in one room, and
    # one room in all. Over either, a join is refused with "busy". An invite holds one
    # lobby session: opening it again replaces the older one.
    lobby_per_address: int = 20
    lobby_per_room: int = 200
    # Lobby sessions one invite may hold at once; a newer one replaces the oldest
    # (load tests that reuse one invite raise it).
    lobby_per_invite: int = 1
    # After a refusal that allows another attempt, the session waits this long for the
    # person to press "try again"; then it is closed (an idle lobby holds a pc).
    idle_timeout_s: float = 300.0
    # A socket write that takes longer than this (the client stopped reading) ends
    # the session, so one slow client never stalls anyone else.
    send_timeout_s: float = 5.0

    # Largest picture an incoming video header may claim, in either orientation. Read
    # from the VP8 keyframe / H.264 SPS before decoding; over it: fatal ``bad_media``.
    max_video_width: int = 1920
    max_video_height: int = 1080
    # Remote ICE candidates accepted per connection (offer + trickle); more are dropped.
    max_ice_candidates: int = 40
    # Accept loopback / private / link-local candidate addresses from clients (on-premises
    # deployments where browsers and server share a LAN). Loopback mode implies it.
    allow_private_candidates: bool = False


@dataclass(frozen=True)
class WorkerSettings:
    """[workers]: the CPU pool (server/workpool.py). The gate always keeps
    ``gate_reserved`` threads; API verify/search and photo uploads share the rest and
    wait in bounded queues (over them: 503 ``busy`` with Retry-After)."""

    count: int = 2
    gate_reserved: int = 1
    api_queue: int = 4
    upload_queue: int = 4


@dataclass(frozen=True)
class ApiSettings:
    """[api]: the REST API. Requests per API key: a token bucket (429 ``rate_limited``)."""

    requests_per_s: float = 10.0
    burst: int = 60


@dataclass(frozen=True)
class OwnerSettings:
    """[owner]: owner accounts (docs/security.md, "Owner accounts")."""

    # open: anyone may create an account; invite: only with a sign-up link from
    # ``python -m server signup-link EMAIL``; closed: no new accounts.
    signup: str = "open"
    # Sign-up attempts per client address per hour.
    signups_per_hour: int = 10
    # Password hashes computed at once (argon2id costs ~64 MiB each); more wait briefly,
    # then get "busy" before any hashing is done.
    hash_concurrency: int = 2


@dataclass(frozen=True)
class Settings:
    server: ServerSettings = field(default_factory=ServerSettings)
    gate: GateSettings = field(default_factory=GateSettings)
    liveness: LivenessSettings = field(default_factory=LivenessSettings)
    face: FaceSettings = field(default_factory=FaceSettings)
    limits: LimitSettings = field(default_factory=LimitSettings)
    presence: PresenceSettings = field(default_factory=PresenceSettings)
    webhooks: WebhookSettings = field(default_factory=WebhookSettings)
    workers: WorkerSettings = field(default_factory=WorkerSettings)
    api: ApiSettings = field(default_factory=ApiSettings)
    owner: OwnerSettings = field(default_factory=OwnerSettings)
    ice: IceSettings = field(default_factory=IceSettings)
    store: StoreSettings = field(default_factory=StoreSettings)
    cluster: ClusterSettings = field(default_factory=ClusterSettings)
    media: MediaSettings = field(default_factory=MediaSettings)

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
        "workers": WorkerSettings,
        "api": ApiSettings,
        "owner": OwnerSettings,
        "ice": IceSettings,
        "store": StoreSettings,
        "cluster": ClusterSettings,
        "media": MediaSettings,
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
    if min(limits.lobby_per_address, limits.lobby_per_room, limits.lobby_per_invite) < 1:
        raise ConfigError("[limits] lobby_per_address, _per_room and _per_invite must be >= 1")
    if limits.idle_timeout_s <= 0 or limits.send_timeout_s <= 0:
        raise ConfigError("[limits] idle_timeout_s and send_timeout_s must be > 0")
    if not (16 <= limits.max_video_width <= 16384 and 16 <= limits.max_video_height <= 16384):
        raise ConfigError("[limits] max_video_width/height must be in [16, 16384]")
    if not 1 <= limits.max_ice_candidates <= 1000:
        raise ConfigError("[limits] max_ice_candidates must be in [1, 1000]")
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
    if live.policy.strip().lower() not in LIVENESS_POLICIES:
        raise ConfigError(f"[liveness] policy must be one of {', '.join(LIVENESS_POLICIES)}")
    if not 1 <= live.min_steps <= live.max_steps <= 6:
        raise ConfigError("[liveness] need 1 <= min_steps <= max_steps <= 6")
    if live.step_time_s <= 0:
        raise ConfigError("[liveness] step_time_s must be > 0")
    if not 0 < live.expression_fps <= 30:
        raise ConfigError("[liveness] expression_fps must be in (0, 30]")
    presence = settings.presence
    if (
        presence.interval_s < 0
        or min(presence.lost_checks, presence.mismatch_checks, presence.extra_checks) < 1
    ):
        raise ConfigError("[presence] interval_s must be >= 0 and the *_checks at least 1")
    if presence.unverifiable_checks < 1 or not 2 <= presence.run_frames <= 300:
        raise ConfigError("[presence] need unverifiable_checks >= 1 and run_frames in [2, 300]")
    if not 0 <= presence.check_jitter <= 0.9:
        raise ConfigError("[presence] check_jitter must be in [0, 0.9]")
    hooks = settings.webhooks
    if hooks.max_attempts < 1 or hooks.backoff_s < 0 or hooks.timeout_s <= 0:
        raise ConfigError("[webhooks] need max_attempts >= 1, backoff_s >= 0, timeout_s > 0")
    if min(hooks.concurrency, hooks.owner_concurrency, hooks.owner_queue_max, hooks.queue_max) < 1:
        raise ConfigError("[webhooks] concurrency, owner_* and queue_max must be >= 1")
    from .webhooks.guard import parse_networks

    try:
        parse_networks(hooks.allow_networks)
    except ValueError as exc:
        raise ConfigError(f"[webhooks] allow_networks: {exc}") from exc
    workers = settings.workers
    if workers.count < 1 or not 0 <= workers.gate_reserved < workers.count:
        raise ConfigError("[workers] need count >= 1 and 0 <= gate_reserved < count")
    if min(workers.api_queue, workers.upload_queue) < 1:
        raise ConfigError("[workers] api_queue and upload_queue must be >= 1")
    if settings.api.requests_per_s <= 0 or settings.api.burst < 1:
        raise ConfigError("[api] requests_per_s must be > 0 and burst >= 1")
    owner = settings.owner
    if owner.signup not in ("open", "invite", "closed"):
        raise ConfigError("[owner] signup must be open, invite or closed")
    if owner.signups_per_hour < 1 or owner.hash_concurrency < 1:
        raise ConfigError("[owner] signups_per_hour and hash_concurrency must be >= 1")
    try:
        parse_trusted(settings.server.trusted_proxies)
    except ValueError as exc:
        raise ConfigError(f"[server] trusted_proxies: {exc}") from exc
    if settings.server.forwarded_header not in HEADERS:
        raise ConfigError("[server] forwarded_header must be x-forwarded-for or forwarded")
    if settings.server.log_format not in ("text", "json"):
        raise ConfigError("[server] log_format must be text or json")
    if bool(settings.server.tls_cert) != bool(settings.server.tls_key):
        raise ConfigError("[server] tls_cert and tls_key must be set together")
    problem = scale_problem(settings.store, settings.cluster)
    if problem:
        raise ConfigError(problem)
    try:
        validate_ice_settings(settings.ice)
    except IceSettingsError as exc:
        raise ConfigError(str(exc)) from exc
    try:
        validate_media_settings(settings.media)
    except MediaSettingsError as exc:
        raise ConfigError(str(exc)) from exc
