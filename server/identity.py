"""Who a participant was admitted as, fixed at admission.

Why a separate immutable value: presence checks, host re-verification and the
attendance report must all speak of the *same* person. In an open (1:N) room the
attempt identifies someone among everyone enrolled; from then on the session is
that person's, checked against that person's templates only (a different
enrolled person passing a re-verification must not silently change who the
session is). Rejoins inside the grace window carry it over unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class AdmittedIdentity:
    person_id: str | None
    name: str
    templates: np.ndarray  # (n, 128) float32: this person's templates when admitted
    threshold: float
    distance: float
    admitted_at: float  # wall clock (time.time()), for the audit trail

    @property
    def checkable(self) -> bool:
        """Presence and re-verification need at least one template to compare with."""
        return self.person_id is not None and len(self.templates) > 0
