"""Accessibility check of a page state with axe-core, plus a screenshot for review.

axe-core runs inside the page (the copy bundled by the PyPI package
``axe-playwright-python``, nothing fetched). A state passes with zero *serious* or
*critical* violations; the lesser ones are printed. Every call also writes
``<name>.png`` (full page) under ``VIDEOGATE_SCREENSHOTS`` (default
``var/screenshots`` in the repository, ignored by git) so a reviewer can look at each
state the tests reached.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from axe_playwright_python.async_playwright import Axe
from playwright.async_api import Page

REPO = Path(__file__).resolve().parents[2]
BLOCKING = ("serious", "critical")

_axe = Axe()


def screenshot_dir() -> Path:
    folder = Path(os.environ.get("VIDEOGATE_SCREENSHOTS") or REPO / "var" / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _describe(violation: dict[str, Any]) -> str:
    nodes = violation.get("nodes", [])
    targets = [" ".join(map(str, n.get("target", []))) for n in nodes[:5]]
    return f"{violation['id']} ({violation.get('impact')}): {violation.get('help')} at {targets}"


async def assert_accessible(page: Page, name: str) -> Path:
    """Screenshot ``page`` as ``name``, then fail on serious/critical axe violations."""
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-") or "page"
    shot = screenshot_dir() / f"{safe}.png"
    await page.screenshot(path=str(shot), full_page=True)
    results = await _axe.run(page)
    violations: list[dict[str, Any]] = results.response.get("violations", [])
    blocking = [v for v in violations if v.get("impact") in BLOCKING]
    for v in violations:
        if v not in blocking:
            print(f"[axe {name}] minor: {_describe(v)}")
    assert not blocking, f"axe on {name} ({shot}):\n" + "\n".join(map(_describe, blocking))
    return shot
