"""What a test needs from the machine. Under CI=true a missing prerequisite (a JDK, Maven,
Chromium, a service) is a failure, never a skip: a green CI run must have run every test. A
developer's machine without it skips, naming what to install."""

from __future__ import annotations

import os

import pytest


def missing(what: str) -> None:
    """Fail under CI=true, skip elsewhere; `what` names the prerequisite and how to get it."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"missing under CI: {what}", pytrace=False)
    pytest.skip(what)
