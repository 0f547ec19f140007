"""What a test does when a part it needs is not installed on this machine."""

from __future__ import annotations

import os
from typing import NoReturn

import pytest


def fail_in_ci_else_skip(message: str) -> NoReturn:
    """CI (`CI` set, as `.ci/run` exports it) installs every part, so there a missing one is a
    broken setup and fails the test; elsewhere the test is skipped with `message`."""
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)
