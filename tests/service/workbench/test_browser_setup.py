"""Without Chromium the browser tests skip on a developer's machine and fail in CI."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import REPO

ONE_BROWSER_TEST = "tests/browser/test_login.py::test_login_page_is_accessible"


@pytest.mark.parametrize(("ci", "outcome"), [("true", "1 error"), ("", "skipped")])
def test_a_missing_chromium_fails_only_in_ci(ci: str, outcome: str) -> None:
    env = {**os.environ, "CI": ci, "SWITCHBOARD_TEST_CHROMIUM": "/nonexistent/chromium"}
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", ONE_BROWSER_TEST],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert outcome in run.stdout, run.stdout
    if ci:
        assert "CI must run the browser tests" in run.stdout
        assert run.returncode != 0
    else:
        assert run.returncode == 0
