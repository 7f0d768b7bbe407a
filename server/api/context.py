"""Access to the shared hub from handlers of the owner and API sub-applications.

The keys live in the leaf module ``server/state.py``; this name stays for the
handlers that import it from here.
"""

from __future__ import annotations

from ..state import hub

__all__ = ["hub"]
