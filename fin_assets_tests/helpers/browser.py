"""Chromium as the UI tests drive it through Playwright: Debian's browser and its flags, the
first-visit "Join the Dagster community" dialog a user would skip, waiting for an element to be
fully opaque before a screenshot, and the numbered screenshots of a test's steps. The
fixtures that use them (`ui_browser`, `ui_page`, `shots`) are in fixtures/ui.py.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
VIEWPORT = {"width": 1400, "height": 900}


COMMUNITY_DIALOG = re.compile("Join the Dagster community", re.I)
SKIP = re.compile(r"^\s*skip\s*$", re.I)


def community_dialog(page):
    return page.get_by_role("dialog").filter(has_text=COMMUNITY_DIALOG)


def skip_community_dialog(page, wait_ms: float) -> bool:
    """Click "Skip" on the first-visit dialog if it shows within `wait_ms`, as a user would.

    Dagster remembers the choice on the instance (not in the browser): after the first "Skip"
    of the session, later pages never show it.
    """
    dialog = community_dialog(page)
    try:
        dialog.wait_for(state="visible", timeout=wait_ms)
    except Exception:  # playwright TimeoutError: no dialog this time
        return False
    dialog.get_by_role("button", name=SKIP).click()
    dialog.wait_for(state="hidden")
    return True


FULLY_OPAQUE = """element => {
    for (let e = element; e; e = e.parentElement)
        if (getComputedStyle(e).opacity !== "1") return false;
    return true;
}"""


def wait_until_opaque(locator, timeout_ms: float = 10_000) -> None:
    """Until `locator` and its ancestors are fully opaque: a dialog that is still fading in
    would be screenshotted half transparent."""
    locator.page.wait_for_function(FULLY_OPAQUE, arg=locator.element_handle(), timeout=timeout_ms)


class Shots:
    """Numbered screenshots of one test's steps under test-artifacts/ui/<test>/."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.count = 0
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)

    def __call__(self, page, step: str, full_page: bool = False) -> Path:
        self.count += 1
        path = self.folder / f"{self.count:02d}-{step}.png"
        page.screenshot(path=str(path), full_page=full_page)
        return path
