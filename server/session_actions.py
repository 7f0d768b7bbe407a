"""Carrying out the gate's actions for one participant (called from its own task only).

Kept apart from the task loop (``server/participant.py``) so each reads on its own:
the loop decides *when*, this module decides *what a decision means* -- messages
to the person, audit records, the room seat, the identity pinned at admission.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from . import gate as g
from .identity import AdmittedIdentity, pin_target
from .messages import (
    FlashMessage,
    FlashStep,
    ProgressMessage,
    PromptMessage,
    Reverify,
    StateMessage,
    Verdict,
)
from .roles import CloseReason
from .verify import FaceChecker

if TYPE_CHECKING:
    from .inputs import PresenceResult
    from .participant import Participant
    from .presence import PresenceEvent


async def apply_actions(p: Participant, actions: list[g.Action]) -> None:
    lock = next((a for a in actions if isinstance(a, g.LockedOut)), None)
    for action in actions:
        if p.closed:
            return  # a final refusal ended the session: nothing after ``bye``
        if isinstance(action, g.Admitted | g.Refused | g.LockedOut):
            # The one place every verdict passes: counted for /metrics (node_metrics.py).
            p.services.metrics.verdict(action, rejoin=p.resume is not None)
        if isinstance(action, g.StateChanged):
            p.send(StateMessage(action.state.value))
            p.runtime.notify_dashboard()
        elif isinstance(action, g.Prompt):
            p.send(
                PromptMessage(
                    action.text, action.action, action.step, action.steps, action.time_limit_s
                )
            )
        elif isinstance(action, g.Progress):
            p.send(progress_message(action))
        elif isinstance(action, g.Flash):
            # Screen-light challenge (docs/protocol.md `flash`): the page shows the
            # colours; the sampler analyses more frames until the gate decides
            # (``Gate.sample_fps``, read by the sampler).
            sequence = [FlashStep(s.css, s.ms) for s in action.steps]
            p.send(FlashMessage(sequence, round(action.lead_s * 1000)))
        elif isinstance(action, g.Admitted):
            await _admitted(p, action)
        elif isinstance(action, g.Refused):
            await _refused(p, action, lock)
        elif isinstance(action, g.LockedOut):
            await _locked(p, action)


def progress_message(action: g.Progress) -> ProgressMessage:
    message = g.MESSAGES[action.hold] if action.hold else ""
    if action.detail:
        message = f"{message} ({action.detail})"
    return ProgressMessage(
        action.frames,
        action.required,
        action.hold.value if action.hold else None,
        message or f"Checking… {action.frames} of {action.required}",
    )


def pin_identity(p: Participant, action: g.Admitted) -> AdmittedIdentity:
    """Who this session is from now on, with that person's templates (1:1 or 1:N)."""
    target = p.checker.target
    person = action.person_id
    pinned = target if person is None else pin_target(target, person)
    name = p.name
    if person is not None and p.claimed_person is None:
        name = p.services.person_name(person, p.name)
    return AdmittedIdentity(person, name, pinned, action.distance, time.time())


async def _admitted(p: Participant, action: g.Admitted) -> None:
    await p.media.stop_sampling()
    kind = "reverify" if action.reverify else "rejoin" if p.resume else "admission"
    if not action.reverify:
        p.identity = p.resume or pin_identity(p, action)
        p.name = p.identity.name
    p.services.audit(
        p,
        "reverify.passed" if action.reverify else "participant.admitted",
        {
            "distance": round(action.distance, 4),
            "reverify": action.reverify,
            "kind": kind,
            "liveness": "skipped" if kind == "rejoin" else p.gate.policy.liveness.value,
        },
        person_id=action.person_id,
    )
    p.reverifying = False
    p.ever_admitted = True
    # What the person is told is already in the audit log (written off the loop).
    await p.services.audit_settled()
    p.send(Verdict(True, None, f"Welcome, {p.name}.", p.gate.attempts_left, False))
    if not action.reverify:
        p.runtime.admit(p)
    else:
        if p.publisher is not None:
            p.publisher.resume_forwarding()
        p.runtime.resume_viewer(p)
        p.runtime.broadcast_peers()
    p.presence.start(time.monotonic())


def lock_message(lock: g.LockedOut) -> str:
    """What is locked, for how long, and what to do: true for the person reading it."""
    minutes = max(1, round((lock.until - time.monotonic()) / 60))
    if lock.scope == "invite":
        return (
            "This invite link is locked after too many failed attempts. "
            f"Try again in about {minutes} min, or ask the organiser for help."
        )
    if lock.scope == "ip":
        return (
            "Too many failed attempts from your network in this room. "
            f"Try again in about {minutes} min."
        )
    if lock.scope == "device":
        return f"Too many failed attempts from this browser. Try again in about {minutes} min."
    return f"{g.MESSAGES[g.Reason.LOCKED_OUT]} Locked for about {minutes} min."


async def _refused(p: Participant, action: g.Refused, lock: g.LockedOut | None) -> None:
    # The distance goes to the audit log only: a refusal never tells the person how
    # close they came or whom they resemble.
    if action.reason is not g.Reason.INTERNAL:  # counted: shared with a cluster's nodes
        await p.services.sync_lockout(p.gate.lockout_keys, failed=True)
    if p.reverifying:
        event = "reverify.failed"
    else:
        event = "participant.denied" if action.final else "attempt.failed"
    p.services.audit(
        p,
        event,
        {
            "reverify": p.reverifying,
            "reason": action.reason.value,
            "attempts_left": action.attempts_left,
            "distance": None if action.distance is None else round(action.distance, 4),
            # Which check failed (audit only; the person sees the reason).
            "detail": action.detail,
        },
        person_id=p.identity.person_id if p.identity else p.claimed_person,
    )
    await p.services.audit_settled()
    message = g.MESSAGES[action.reason]
    if action.reason is g.Reason.LOCKED_OUT and lock is not None:
        message = lock_message(lock)
    p.send(Verdict(False, action.reason.value, message, action.attempts_left, action.final))
    if action.final:
        await p.teardown(CloseReason.REFUSED, grace=False)
    else:
        await p.media.stop_sampling()
        p.arm_idle()


async def _locked(p: Participant, action: g.LockedOut) -> None:
    p.send(Verdict(False, g.Reason.LOCKED_OUT.value, lock_message(action), 0, True))
    await p.teardown(CloseReason.REFUSED, grace=False)


async def start_reverify(p: Participant) -> bool:
    """Decoding and sampling restart for one attempt, pinned to the admitted person:
    the check is 1:1 against the templates kept at admission, whatever the room's mode."""
    identity = p.identity
    publisher = p.media.publisher
    if p.closed or publisher is None or identity is None or not p.admitted:
        return False
    actions = p.gate.handle(g.ReverifyRequested(time.monotonic()))
    if not actions:
        return False
    p.reverifying = True
    await p.media.stop_probe()
    p.checker = FaceChecker(p.checker.engine, identity.target)
    p.services.audit(p, "reverify.requested", {})
    if p.services.settings.presence.pause_media_on_reverify:
        publisher.pause_forwarding()
    p.runtime.pause_viewer(p)  # someone being re-verified receives no room media
    p.send(Reverify(publisher.paused))
    p.media.start_sampling(p.checker_observe, p.wants_frame, p.gate.sample_fps)
    await apply_actions(p, actions)
    p.runtime.broadcast_peers()
    return True


def media_state(p: Participant, audio: bool, video: bool) -> None:
    """Mute / camera state from the page. Camera off is not absence: the presence
    monitor reports ``presence.camera_off`` instead of ``presence.lost``."""
    for event in p.presence.camera(video, time.monotonic()):
        if p.admitted:
            presence_event(p, event)
    p.audio_on, p.video_on = audio, video
    p.runtime.broadcast_peers()


def probe_presence(p: Participant) -> None:
    """A presence check is due: sample the next keyframe against the pinned identity."""
    identity = p.identity
    if identity is None or not identity.checkable:
        return
    p.media.probe_presence(p.services.engine, identity)


def on_presence(p: Participant, item: PresenceResult) -> None:
    if not p.admitted:
        return
    for event in p.presence.feed(item.check):
        presence_event(p, event)
    p.runtime.notify_dashboard()


def presence_event(p: Participant, event: PresenceEvent) -> None:
    """Audited, and the room told (a Janus room re-verifies on a mismatch)."""
    details: dict[str, object] = {
        "faces": event.faces,
        "checks": event.checks,
        "distance": None if event.distance is None else round(event.distance, 4),
    }
    if event.cleared:
        details["cleared"] = list(event.cleared)
    p.services.audit(p, event.kind, details)
    p.runtime.presence_event(p, event.kind)


def dashboard_row(p: Participant) -> dict[str, object]:
    """This participant on the owner's dashboard: state, score, presence."""
    distance, stats = p.gate.distance, p.presence.stats
    if distance is None:
        distance = p.gate.last_distance  # a refused attempt's, for the host deciding
    return {
        "id": p.id,
        "name": p.name,
        "state": p.gate.state.value,
        "distance": None if distance is None else round(distance, 3),
        "since": round(p.joined_at, 1),
        "presence": {
            "checks": stats.made,
            "passed": stats.passed,
            "ratio": None if stats.ratio is None else round(stats.ratio, 3),
            "flags": list(p.presence.flags),
        },
        "paused": p.publisher is not None and p.publisher.paused,
        "can_reverify": p.gate.state is g.State.ADMITTED,
        # the host decides (server/host.py)
        "can_admit": p.gate.state in g.HOST_ADMITTABLE and p.media.publisher is not None,
        "can_send_to_lobby": p.gate.state is g.State.ADMITTED,
        "attempts_left": p.gate.attempts_left,
        "failures": p.gate.failures,
        "camera_off": p.presence.camera_is_off,
    }
