"""[media]: which plane forwards an admitted room's media (docs/janus.md).

Kept out of ``server/config.py`` (a shared core file near its size limit); it is a
leaf module, so the Janus package and the config loader can both import it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

BACKENDS = ("builtin", "janus")


log = logging.getLogger(__name__)


class MediaSettingsError(ValueError):
    pass


@dataclass(frozen=True)
class MediaSettings:
    """Lists are comma-separated strings so one environment variable can carry them."""

    # Default for rooms whose own media_backend is empty: builtin (our SFU) or janus.
    backend: str = "builtin"
    # Janus HTTP API base URLs the server talks to (loopback or a private network),
    # e.g. "http://127.0.0.1:8088/janus". A room goes to one of them by a stable hash.
    janus_urls: str = ""
    # What the browser is told to use, index for index (default: janus_urls). Set
    # when Janus sits behind a proxy or another host name.
    janus_public_urls: str = ""
    # The VideoRoom plugin's admin_key: needed to create rooms; room secrets are
    # derived from it per room (HMAC), never sent to a browser.
    janus_admin_key: str = ""
    # A participant's pass (token) must be used within this many seconds; it is
    # removed from the room's allowed list as soon as its publisher is seen.
    janus_token_ttl_s: float = 20.0
    # Seconds between sweeps (listparticipants): anyone without a current pass is kicked.
    janus_sweep_s: float = 5.0
    # Janus HTTP request timeout.
    janus_timeout_s: float = 5.0

    @property
    def urls(self) -> list[str]:
        return split_urls(self.janus_urls)

    @property
    def public_urls(self) -> list[str]:
        return split_urls(self.janus_public_urls) or self.urls


def split_urls(text: str) -> list[str]:
    return [u.strip().rstrip("/") for u in text.split(",") if u.strip()]


def validate_media_settings(media: MediaSettings) -> None:
    if media.backend not in BACKENDS:
        raise MediaSettingsError(f"[media] backend must be one of {', '.join(BACKENDS)}")
    for url in media.urls + split_urls(media.janus_public_urls):
        if not url.startswith(("http://", "https://")):
            raise MediaSettingsError(f"[media] janus URL must be http(s): {url!r}")
    if media.janus_public_urls and len(media.public_urls) != len(media.urls):
        raise MediaSettingsError("[media] janus_public_urls needs one URL per janus_urls entry")
    if media.backend == "janus" and not media.urls:
        raise MediaSettingsError("[media] backend = janus needs janus_urls")
    if media.urls and len(media.janus_admin_key) < 16:
        # It gates room creation on Janus and keys every room's secret (HMAC).
        raise MediaSettingsError("[media] janus_urls needs janus_admin_key (16+ characters)")
    if media.janus_token_ttl_s <= 0 or media.janus_sweep_s <= 0 or media.janus_timeout_s <= 0:
        raise MediaSettingsError("[media] janus_token_ttl_s, _sweep_s and _timeout_s must be > 0")


def connect_origins(media: MediaSettings) -> str:
    """Origins the page may fetch besides its own (CSP connect-src): the Janus URLs
    browsers are told to use, when any are configured."""
    origins = []
    for url in media.public_urls:
        scheme, _, rest = url.partition("://")
        origin = f"{scheme}://{rest.split('/', 1)[0]}"
        if origin not in origins:
            origins.append(origin)
    return " ".join(origins)


def room_backend(choice: str | None, media: MediaSettings, janus: object | None) -> str:
    """The room's own choice, else ``[media] backend``; Janus only when one is configured
    (``janus`` is the server's Janus plane, None without ``janus_urls``)."""
    backend = choice or media.backend
    if backend == "janus" and janus is None:
        log.warning("a room wants janus but [media] janus_urls is empty: builtin")
        return "builtin"
    return backend
