"""Accessibility and layout checks shared by the browser tests (issue 15).

``assert_accessible(page, name)`` saves a full-page screenshot of the state under the
screenshot folder (``VIDEOGATE_SCREENSHOTS``, else ``videogate-screenshots`` in the
temporary directory pytest uses) so a reviewer can look, then runs axe-core in the
page (bundled by the PyPI package ``axe-playwright-python``: nothing is downloaded)
and fails on any serious or critical violation, naming each with its elements.
"""

from __future__ import annotations

import getpass
import os
import re
import tempfile
from pathlib import Path
from typing import Any

from axe_playwright_python.async_playwright import Axe
from playwright.async_api import Page

BLOCKING = ("serious", "critical")
_AXE = Axe()


def screenshot_dir() -> Path:
    configured = os.environ.get("VIDEOGATE_SCREENSHOTS")
    if configured:
        path = Path(configured)
    else:
        base = Path(tempfile.gettempdir()) / f"pytest-of-{getpass.getuser()}"
        path = base / "videogate-screenshots"
    path.mkdir(parents=True, exist_ok=True)
    return path


async def screenshot(page: Page, name: str) -> Path:
    target = screenshot_dir() / f"{re.sub(r'[^A-Za-z0-9_.-]+', '-', name)}.png"
    await page.screenshot(path=str(target), full_page=True)
    return target


def describe(violations: list[dict[str, Any]]) -> str:
    lines = []
    for v in violations:
        targets = [", ".join(node.get("target", [])) for node in v.get("nodes", [])][:5]
        lines.append(f"{v['impact']}: {v['id']} ({v['help']}) at {targets}")
    return "\n".join(lines)


async def assert_accessible(page: Page, name: str) -> None:
    """Screenshot ``name``, then zero serious or critical axe-core violations."""
    await screenshot(page, name)
    results = await _AXE.run(page)
    violations = [v for v in results.response["violations"] if v["impact"] in BLOCKING]
    assert not violations, f"{name}: axe-core found\n{describe(violations)}"


async def horizontal_overflow(page: Page) -> int:
    """How many CSS pixels the page is wider than its viewport (0: no sideways scroll)."""
    width: int = await page.evaluate(
        "Math.max(document.documentElement.scrollWidth, document.body.scrollWidth)"
        " - document.documentElement.clientWidth"
    )
    return width
