"""A real headless Chromium for the dashboard's tests (Debian ``chromium`` + ``chromium-driver``,
driven by selenium without Selenium Manager: nothing is downloaded).

Without Chromium, its driver or selenium the browser tests are skipped, with the reason; with
``THERMAL_ACTION_REQUIRE_SERVICES=1`` (CI) they fail instead, telling how to install them.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest

REQUIRE_ENV = "THERMAL_ACTION_REQUIRE_SERVICES"
SCREENSHOTS_ENV = "THERMAL_ACTION_SCREENSHOTS"
INSTALL_HINT = "apt-get install chromium chromium-driver (and pip install selenium)"

#: Flags that keep Chromium headless, quiet and off the network (it tries Google hosts otherwise).
CHROMIUM_FLAGS = (
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
    "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run",
    "--disable-default-apps", "--disable-extensions", "--mute-audio", "--lang=en-US",
    "--force-device-scale-factor=1", "--window-size=1440,1000",
)


def _find(names: tuple[str, ...], fallback: str) -> str | None:
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    return fallback if Path(fallback).is_file() else None


def require_browser() -> tuple[str, str]:
    """``(chromium, chromedriver)`` paths, else skips (or fails under ``THERMAL_ACTION_REQUIRE_SERVICES=1``)."""
    chromium = _find(("chromium", "chromium-browser"), "/usr/bin/chromium")
    driver = _find(("chromedriver",), "/usr/bin/chromedriver")
    missing = [name for name, path in (("chromium", chromium), ("chromedriver", driver)) if path is None]
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("selenium")
    if missing:
        msg = f"the dashboard's browser test needs {', '.join(missing)}: {INSTALL_HINT}"
        if os.environ.get(REQUIRE_ENV) == "1":
            pytest.fail(f"{msg} ({REQUIRE_ENV}=1 forbids skipping)")
        pytest.skip(msg)
    return chromium, driver  # type: ignore[return-value]


def start_chromium(profile_dir: Path) -> Any:
    """A headless Chromium (selenium ``WebDriver``) with a fresh profile in ``profile_dir``."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium, driver = require_browser()
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile_dir}")
    browser = webdriver.Chrome(service=Service(driver), options=options)
    browser.set_page_load_timeout(30)
    return browser


#: The viewports the dashboard is checked at: a desktop and a phone (an iPhone 12-15's CSS pixels).
DESKTOP = (1400, 900)
PHONE = (390, 844)


def set_viewport(browser: Any, size: tuple[int, int], mobile: bool = False) -> None:
    """Makes the page's viewport exactly ``size`` CSS pixels (``mobile``: a touch phone's
    viewport rules); screenshots then have that size."""
    width, height = size
    browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile})
    browser.execute_cdp_cmd("Emulation.setTouchEmulationEnabled", {"enabled": mobile})


def save_screenshot(browser: Any, tmp_dir: Path, name: str) -> Path:
    """Saves a screenshot as ``tmp_dir/name`` and, when ``$THERMAL_ACTION_SCREENSHOTS`` is set, there too."""
    path = tmp_dir / name
    assert browser.save_screenshot(str(path)), f"could not save {path}"
    extra = os.environ.get(SCREENSHOTS_ENV)
    if extra:
        Path(extra).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, Path(extra) / name)
    return path


def wait_for_script(browser: Any, script: str, what: str, timeout: float = 30.0, poll: float = 0.1) -> Any:
    """Waits until the JavaScript expression ``script`` is truthy in ``browser``; returns its
    value. On a timeout, fails naming ``what`` and quoting the start of the page's text."""
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        return WebDriverWait(browser, timeout, poll_frequency=poll).until(lambda b: b.execute_script("return " + script))
    except TimeoutException:
        text = browser.execute_script("return document.body ? document.body.innerText.slice(0, 1500) : ''")
        raise AssertionError(f"timed out after {timeout} s waiting for {what}; the page says:\n{text}") from None
