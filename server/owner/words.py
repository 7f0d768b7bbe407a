"""The owner pages' plain words for settings and states (shown where they are chosen).

Why in one place: the room page, the settings page and the live dashboard's script
must call a policy, an engine or a participant's state the same thing.
"""

from __future__ import annotations

POLICY_WORDS = {
    "off": "No liveness check: only the face is compared. A printed photo may get in.",
    "passive": "Watches the face for a few seconds for signs of a photo or a screen; "
    "the person only has to look at the camera.",
    "active": "Asks the person to do two or three things (turn the head, blink, smile) "
    "in a random order: a photo or a video cannot follow.",
    "active+passive": "Both: random head and face movements, and a watch for photos and "
    "screens. Recommended.",
    "light": "Flashes a few colours on the person's screen and checks that the face "
    "reflects them (a screen held up to the camera does not).",
    "light+passive": "Screen colours, and a watch for photos and screens.",
    "active+light": "Screen colours, then random head and face movements.",
    "active+light+passive": "The strictest: screen colours, random movements and a watch "
    "for photos and screens. Takes longest.",
}

ENGINE_WORDS = {
    "dlib": "dlib's face recognition network (the default).",
    "sface": "SFace, a second, independent network.",
    "both": "Both networks must recognise the person: fewer wrong admissions, a few "
    "more people asked to try again.",
    "fused": "One combined score from both networks: the best balance measured.",
}

MODE_WORDS = {
    "invite": "Each person enters with their own invite link; the check compares their "
    "face with their own photos.",
    "open": "One link for everyone; the check finds who it is among the people enrolled "
    "in this room.",
}

# A participant's gate state, as the live lobby says it.
STATE_WORDS = {
    "lobby": "waiting",
    "checking": "being checked",
    "challenge": "doing the liveness check",
    "failed": "not let in, may try again",
    "admitted": "in the room",
    "reverifying": "verifying again",
    "denied": "refused",
    "locked": "locked out",
    "left": "left",
}
