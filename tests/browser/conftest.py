"""Fixtures for the browser tests: a real chat server process and headless
Chromium driven by Selenium 4 (Debian's chromium + chromedriver).

Missing Chromium or chromedriver is a test failure with a clear message, never
a skip: the project's bootstrap script installs them (apt: chromium,
chromium-driver).

Run:  python -m pytest tests/browser
Server under test: see server_process.py ($CHATWS_CHAT_SERVER_CMD,
$CHATWS_CHAT_SERVER, build/examples/c/chat_server, python -m chatws).
Screenshots go to $CHATWS_ARTIFACTS or tests/browser/artifacts/ (gitignored).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

# The helper modules sit next to this file; make them importable whatever
# pytest import mode or rootdir is in use.
sys.path.insert(0, str(Path(__file__).resolve().parent))

from chat_page import ChatPage  # noqa: E402
from server_process import (REPO_ROOT, ChatServerProcess, ServerUnavailable,  # noqa: E402
                            server_command_template)

CHROMIUM = os.environ.get("CHATWS_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("CHATWS_CHROMEDRIVER", "/usr/bin/chromedriver")

CHROME_ARGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
    "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
    "--window-size=1000,760",
    # The page honours reduced motion: the presence dot's colour is then
    # final the moment its state changes (no transition to catch mid-way).
    "--force-prefers-reduced-motion",
]


def pytest_report_header(config):
    try:
        template, description = server_command_template()
        return f"chatws chat server: {description}: {template}"
    except ServerUnavailable as e:
        return f"chatws chat server: none ({e})"


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    path = Path(os.environ.get("CHATWS_ARTIFACTS") or REPO_ROOT / "tests" / "browser" / "artifacts")
    path.mkdir(parents=True, exist_ok=True)
    return path


def _require_executable(path: str, what: str) -> None:
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        pytest.fail(f"{what} not found at {path}: install Debian's chromium and chromium-driver "
                    f"(scripts/bootstrap does) or point $CHATWS_CHROMIUM / $CHATWS_CHROMEDRIVER "
                    f"at them", pytrace=False)


class _Browsers:
    """Headless Chromium instances, started on first use, each with its own
    fresh profile (so two of them are two independent users)."""

    def __init__(self, extra_args: list[str] | None = None):
        self._drivers = []
        self._profiles = []
        self._extra_args = list(extra_args or [])

    def get(self, index: int):
        while len(self._drivers) <= index:
            self._drivers.append(self._launch())
        return self._drivers[index]

    def _launch(self):
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        _require_executable(CHROMIUM, "Chromium")
        _require_executable(CHROMEDRIVER, "chromedriver")
        profile = tempfile.mkdtemp(prefix="chatws-chrome-")
        self._profiles.append(profile)
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for arg in CHROME_ARGS + self._extra_args:
            options.add_argument(arg)
        options.add_argument(f"--user-data-dir={profile}")
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
        driver.set_page_load_timeout(15)
        return driver

    def used(self):
        return list(self._drivers)

    def close(self):
        for driver in self._drivers:
            try:
                driver.quit()
            except Exception:  # a crashed browser must not hide the test result
                pass
        for profile in self._profiles:
            shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture(scope="session")
def browsers():
    pool = _Browsers()
    yield pool
    pool.close()


@pytest.fixture
def chat_server(tmp_path):
    """A running chat server on a free port with a history file in tmp_path."""
    try:
        server = ChatServerProcess(tmp_path)
        server.start()
    except ServerUnavailable as e:
        pytest.fail(str(e), pytrace=False)
    yield server
    server.stop()


@pytest.fixture
def open_page(browsers, chat_server):
    """open_page(browser_index=0, room=None, proto=None) -> ChatPage, connected.

    Each browser index is a separate Chromium (separate user). At teardown the
    pages leave the server (about:blank) so the next test starts clean."""
    used = set()

    def _open(browser_index: int = 0, **kwargs) -> ChatPage:
        driver = browsers.get(browser_index)
        used.add(browser_index)
        driver.get_log("browser")  # drop console output of earlier tests
        return ChatPage(driver, chat_server.base_url).open(**kwargs)

    yield _open
    for index in used:
        driver = browsers.get(index)
        try:
            driver.switch_to.alert.dismiss()
        except Exception:
            pass
        driver.get("about:blank")

