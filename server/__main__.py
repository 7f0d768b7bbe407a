"""Command line: ``python -m server [serve]``, ``enrol``, ``verify-report``,
``backfill-templates``, ``signup-link`` and ``rotate-keys``."""

from __future__ import annotations

import argparse
import ssl
import sys
from collections.abc import Sequence
from pathlib import Path

from .config import ConfigError, Settings, load_settings


def _settings(args: argparse.Namespace) -> Settings:
    overrides: dict[str, dict[str, object]] = {"server": {}}
    for key in ("host", "port", "data_dir"):
        value = getattr(args, key, None)
        if value is not None:
            overrides["server"][key] = value
    if getattr(args, "loopback", False):
        overrides["server"]["loopback"] = True
    return load_settings(args.config, overrides=overrides)


def serve(args: argparse.Namespace) -> int:
    from .logjson import setup_logging
    from .supervisor import Supervisor, WorkersRefused, worker_count

    settings = _settings(args)
    try:
        workers = worker_count(getattr(args, "workers", None), settings)
    except WorkersRefused as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    setup_logging(settings.server.log_format, node_id=settings.cluster.node_id)
    if workers > 1:
        return Supervisor.plan(settings, workers, _worker_argv(args)).run()
    # Imported only in a node: the supervisor stays small (no aiortc, no models).
    from aiohttp import web

    from .app import create_app

    context = None
    if settings.server.tls_cert:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(settings.server.tls_cert, settings.server.tls_key)
    app = create_app(settings)

    async def announce(_app: web.Application) -> None:
        print(f"videogate is listening on {settings.base_url}/", flush=True)

    app.on_startup.append(announce)
    web.run_app(
        app,
        host=settings.server.host,
        port=settings.server.port,
        ssl_context=context,
        print=None,
        access_log=None,
    )
    return 0


def _worker_argv(args: argparse.Namespace) -> list[str]:
    """The command line of one worker: this one's, as a single node (port from env)."""
    argv = ["--config", str(args.config)] if args.config else []
    argv += ["serve", "--workers", "1"]
    for flag, key in (("--host", "host"), ("--data-dir", "data_dir")):
        if getattr(args, key, None) is not None:
            argv += [flag, str(getattr(args, key))]
    if getattr(args, "loopback", False):
        argv.append("--loopback")
    return argv


def enrol(args: argparse.Namespace) -> int:
    import numpy as np

    from .face.engine import FaceEngine
    from .store import StoreError, open_store
    from .store.sqlite import slugify

    settings = _settings(args)
    engine = FaceEngine.load(
        settings.model_cache, embedder=settings.face.embedder, landmarks=settings.face.landmarks
    )
    embeddings: dict[str, list[np.ndarray]] = {e: [] for e in engine.engines}
    for photo in args.photos:
        path = Path(photo)
        try:
            data = path.read_bytes()
        except OSError as exc:
            print(f"  {photo}: cannot read ({exc.strerror})")
            continue
        result = engine.enrol_photo(data)
        if result.embedding is None:
            print(f"  {photo}: refused - {'; '.join(result.reasons)}")
        else:
            print(f"  {photo}: ok")
            for name, vectors in embeddings.items():
                vectors.append(result.embeddings[name])
    count = len(embeddings["dlib"])
    if not count:
        print("No usable photo: nothing was enrolled.", file=sys.stderr)
        return 2
    store = open_store(settings.data_path, settings.store.url)
    try:
        slug = slugify(args.room)
        try:
            room = store.room_by_slug(slug)
        except StoreError:
            room = store.create_room(
                args.room,
                mode=args.mode,
                slug=slug,
                settings={"liveness_policy": settings.liveness.policy},
            )
            print(f"Created room '{room.name}' ({room.mode} mode).")
        stacked = {name: np.stack(vectors) for name, vectors in embeddings.items()}
        person = store.enrol_person(room.id, args.name, stacked, "dlib")
        store.audit("person.enrolled", {"photos": count}, room_id=room.id, person_id=person.id)
        ttl = args.ttl_days * 86400 if args.ttl_days > 0 else None
        token = store.create_invite(room.id, person.id, ttl)
    except StoreError as err:
        print(f"error: {err.message}", file=sys.stderr)
        return 2
    finally:
        store.close()
    print(f"Enrolled {person.name} in '{room.name}' from {count} photo(s).")
    print(f"Invite link: {settings.base_url}/r/{room.link}?invite={token}")
    if room.mode == "open":
        print(f"Open room link: {settings.base_url}/r/{room.link}")
    return 0


def backfill(args: argparse.Namespace) -> int:
    from .backfill import backfill_templates
    from .face.engine import FaceEngine
    from .store import open_store

    settings = _settings(args)
    engine = FaceEngine.load(settings.model_cache, embedder=settings.face.embedder)
    store = open_store(settings.data_path, settings.store.url)
    try:
        report = backfill_templates(store, engine, args.engine, args.room)
    finally:
        store.close()
    print(f"{args.engine}: {report.added} template(s) added from kept photos, "
          f"{report.skipped} skipped, {len(report.failed)} photo(s) unusable")  # fmt: skip
    for person_id, face_id, reason in report.failed:
        print(f"  person {person_id} face {face_id}: {reason}")
    return 0


def signup_link(args: argparse.Namespace) -> int:
    from .owner.signup import make_signup_invite

    settings = _settings(args)
    token = make_signup_invite(settings, args.email, args.days * 86400)
    if settings.owner.signup != "invite":
        print(f"note: [owner] signup is {settings.owner.signup!r}, not 'invite'", file=sys.stderr)
    print(f"{settings.base_url}/owner/signup?invite={token}")
    return 0


def rotate_keys(args: argparse.Namespace) -> int:
    from .store.crypto import TemplateKeyError
    from .store.rotate import rotate_keys as rotate

    settings = _settings(args)
    try:
        done = rotate(settings.data_path, url=settings.store.url)
    except (TemplateKeyError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    counts = ", ".join(f"{n} {kind}" for kind, n in done.counts.items())
    print(f"Re-encrypted under key {done.new_key_id}: {counts}.")
    if done.env_mode:
        print("Now set VIDEOGATE_TEMPLATE_KEY to the value of VIDEOGATE_TEMPLATE_KEY_NEW.")
    print("Stop the server while rotating; old backups still need the old key.")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m server", description=__doc__)
    parser.add_argument("--config", type=Path, help="extra TOML file over config/default.toml")
    sub = parser.add_subparsers(dest="command")

    p_serve = sub.add_parser("serve", help="start the server (default)")
    p_serve.add_argument("--host")
    p_serve.add_argument("--port", type=int)
    p_serve.add_argument("--data-dir", dest="data_dir")
    p_serve.add_argument("--loopback", action="store_true", help="offer 127.0.0.1 ICE candidates")
    p_serve.add_argument(
        "--workers",
        type=int,
        help="node processes on ports port..port+N-1 (default 1; one per core with "
        "[cluster] redis_url; N > 1 needs it)",
    )

    p_enrol = sub.add_parser("enrol", help="enrol a person from photos and print an invite link")
    p_enrol.add_argument("room", help="room name (created if missing)")
    p_enrol.add_argument("name", help="the person's display name")
    p_enrol.add_argument("photos", nargs="+", help="one or more photos of the person")
    p_enrol.add_argument(
        "--mode",
        choices=("invite", "open"),
        default="invite",
        help="for a new room: per-person invites (1:1) or one open link (1:N)",
    )
    p_enrol.add_argument("--ttl-days", type=float, default=7.0, help="invite lifetime; 0 = none")
    p_enrol.add_argument("--data-dir", dest="data_dir")

    p_verify = sub.add_parser(
        "verify-report", help="check a signed attendance report offline (docs/presence.md)"
    )
    p_verify.add_argument("file", help="the report's JSON file")
    p_verify.add_argument("--key", help="pin this public key (PEM, base64 or well-known JSON)")
    p_verify.add_argument("--data-dir", dest="data_dir", help="pin the key of this data dir")

    p_fill = sub.add_parser(
        "backfill-templates",
        help="compute a face engine's templates from kept enrolment photos (docs/face.md)",
    )
    p_fill.add_argument("--engine", choices=("sface",), default="sface")
    p_fill.add_argument("--room", help="only this room id")
    p_fill.add_argument("--data-dir", dest="data_dir")
    p_link = sub.add_parser(
        "signup-link", help="print a sign-up link for one email ([owner] signup = invite)"
    )
    p_link.add_argument("email", help="the only email address the link signs up")
    p_link.add_argument("--days", type=float, default=7.0, help="how long the link works")
    p_link.add_argument("--data-dir", dest="data_dir")

    p_rotate = sub.add_parser(
        "rotate-keys", help="re-encrypt templates, photos and webhook secrets under a new key"
    )
    p_rotate.add_argument("--data-dir", dest="data_dir")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "enrol":
            return enrol(args)
        if args.command == "backfill-templates":
            return backfill(args)
        if args.command == "rotate-keys":
            return rotate_keys(args)
        if args.command == "signup-link":
            return signup_link(args)
        if args.command == "verify-report":
            from .report.cli import run

            return run(args.file, args.key, args.data_dir)
        return serve(args)
    except ConfigError as err:
        print(f"configuration error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
