"""The dashboard in a real headless Chromium against the service running in this process.

Two sensors send frames of two warm people; with ``fall_threshold=1e-6`` every person raises a fall
alert at once. The page must show both tiles (image, boxes), the alert (red tile, listed), an
acknowledgement typed in the page must reach SQLite, the timeline must fill, a dropped socket
must show the "disconnected" banner and reconnect, and a wrong token gets the 401 page.
Screenshots: ``tmp_path`` and ``$THERMAL_ACTION_SCREENSHOTS``.
"""

from __future__ import annotations

import time

import httpx
import pytest

from helpers.browser import require_browser, save_screenshot, start_chromium
from helpers.infer import make_frames, write_tiny_checkpoint

from thermal_action.serve.config import load_serve_config  # noqa: E402
from thermal_action.serve.protocol import encode_frames  # noqa: E402
from thermal_action.serve.service import ServiceThread  # noqa: E402

pytestmark = pytest.mark.slow

SENSORS = ("ward1-bed2", "ward1-bath")
WAIT_S = 25.0
OPERATOR = "Nurse Ada"


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    require_browser()  # skip before paying for the service's start
    tmp = tmp_path_factory.mktemp("serve")
    ckpt = write_tiny_checkpoint(tmp / "tiny.ckpt")
    cfg = load_serve_config(None, [f"data_dir={tmp}/data", "port=0", "workers=1", "fall_threshold=1e-6",
                                   "fall_alert_seconds=0", "store_every_seconds=1"])
    with ServiceThread(cfg, ckpt) as svc:
        yield svc


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    b = start_chromium(tmp_path_factory.mktemp("chromium-profile"))
    try:
        yield b
    finally:
        b.quit()


def wait_for(browser, script: str, what: str, timeout: float = WAIT_S):
    """Waits until the JavaScript expression ``script`` is truthy; returns its value."""
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        return WebDriverWait(browser, timeout, poll_frequency=0.1).until(lambda b: b.execute_script("return " + script))
    except TimeoutException:
        logs = browser.execute_script("return document.body ? document.body.innerText.slice(0, 1500) : ''")
        raise AssertionError(f"timed out after {timeout} s waiting for {what}; the page says:\n{logs}") from None


def open_dashboard(browser, svc) -> None:
    browser.get(f"{svc.url}/?token={svc.token}")
    wait_for(browser, "document.body.dataset.ready === 'true' && document.body.dataset.connection === 'connected'",
             "the dashboard to load and connect")


def send_frames(svc, sensor_id: str, seed: int, n: int = 48, chunks: int = 2) -> None:
    """``n`` frames at 6 fps ending now (the timeline shows the last hour by the wall clock)."""
    frames, _ = make_frames(n, seed=seed)
    now = int(time.time() * 1000)
    stamps = [now - (n - 1 - i) * 167 for i in range(n)]
    headers = {"Authorization": f"Bearer {svc.token}", "content-type": "application/octet-stream"}
    step = n // chunks
    for i in range(0, n, step):
        r = httpx.post(f"{svc.url}/api/sensors/{sensor_id}/frames", headers=headers,
                       content=encode_frames(frames[i:i + step], stamps[i:i + step]))
        assert r.status_code == 200 and r.json()["accepted"] == len(frames[i:i + step]), r.text


def tile(sensor_id: str) -> str:
    return f"document.querySelector('.tile[data-sensor-id=\"{sensor_id}\"]')"


def test_sensors_alert_acknowledge_timeline(service, browser, tmp_path):
    open_dashboard(browser, service)
    assert browser.find_element("id", "disconnected").is_displayed() is False
    for i, sensor in enumerate(SENSORS):
        send_frames(service, sensor, seed=i)

    # Both tiles, each with its thermal image and person boxes labelled with track and action.
    for sensor in SENSORS:
        wait_for(browser, f"{tile(sensor)} && {tile(sensor)}.querySelector('img.frame').src.startsWith("
                          f"'data:image/png;base64,') && {tile(sensor)}.querySelectorAll('.box').length > 0",
                 f"sensor {sensor}'s tile with its image and boxes")
        wait_for(browser, f"{tile(sensor)}.dataset.state === 'live'", f"sensor {sensor} shown live")
    labels = browser.execute_script("return Array.from(document.querySelectorAll('.box-label')).map(e => e.textContent)")
    assert all(label.startswith("#") for label in labels), labels
    rendered = browser.execute_script(f"const i = {tile(SENSORS[0])}.querySelector('img.frame');"
                                      "return [i.naturalWidth, i.naturalHeight, i.clientWidth, getComputedStyle(i).imageRendering]")
    assert rendered[:2] == [60, 40] and rendered[2] >= 240 and rendered[3] == "pixelated", rendered

    # The fall: a red tile with its label, red boxes, the alert listed (open) in the page.
    wait_for(browser, "document.querySelector('#alerts-body tr[data-state=\"open\"]')", "an open alert in the list")
    wait_for(browser, "document.querySelector('.tile.alarm')", "a red (fallen) tile")
    alarm = browser.find_element("css selector", ".tile.alarm")
    assert alarm.find_element("css selector", ".fall-label").text.startswith("FALL")
    assert alarm.find_elements("css selector", ".box.fallen")
    assert browser.execute_script("return getComputedStyle(arguments[0]).backgroundColor", alarm) == "rgb(74, 20, 19)"
    assert browser.title.startswith("(")  # "(n) FALL – thermal-action"
    save_screenshot(browser, tmp_path, "dashboard_fall_alert.png")

    # Acknowledge without a name: the page asks for it and sends nothing.
    row = browser.find_element("css selector", "#alerts-body tr[data-state='open']")
    alert_id = int(row.get_attribute("data-alert-id"))
    browser.execute_script("localStorage.removeItem('thermal-action.operator');"
                           "document.getElementById('operator-name').value = ''")
    row.find_element("css selector", "button[data-action='acknowledge']").click()
    wait_for(browser, "document.getElementById('operator-name').classList.contains('invalid')", "the name asked for")
    assert service.hub.store.alert(alert_id)["state"] == "open"

    # With a name: the row turns acknowledged in the page and in SQLite; the name is remembered.
    browser.find_element("id", "operator-name").send_keys(OPERATOR)
    ack = browser.find_element("css selector", f"#alerts-body tr[data-alert-id='{alert_id}'] button[data-action='acknowledge']")
    assert ack.get_attribute("aria-label").startswith(f"Acknowledge alert {alert_id}")
    ack.click()
    wait_for(browser, f"document.querySelector('#alerts-body tr[data-alert-id=\"{alert_id}\"]').dataset.state"
                      " === 'acknowledged'", "the alert shown acknowledged")
    row = service.hub.store.alert(alert_id)
    assert row["state"] == "acknowledged" and row["acknowledged_by"] == OPERATOR, row
    by = browser.find_element("css selector", f"#alerts-body tr[data-alert-id='{alert_id}'] [data-field='by']").text
    assert by == OPERATOR
    assert browser.execute_script("return localStorage.getItem('thermal-action.operator')") == OPERATOR

    # Resolve another alert (if the two sensors' four people raised more than one): it leaves the list.
    others = [int(r.get_attribute("data-alert-id"))
              for r in browser.find_elements("css selector", "#alerts-body tr[data-state='open']")]
    if others:
        browser.find_element("css selector", f"#alerts-body tr[data-alert-id='{others[-1]}'] "
                                             "button[data-action='resolve']").click()
        wait_for(browser, f"!document.querySelector('#alerts-body tr[data-alert-id=\"{others[-1]}\"]')",
                 "the resolved alert gone from the list")
        assert service.hub.store.alert(others[-1])["state"] == "resolved"

    # The timeline of each sensor fills from the stored predictions; the legend names every class.
    for sensor in SENSORS:
        wait_for(browser, f"Number(document.querySelector('canvas.strip[data-sensor-id=\"{sensor}\"]')"
                          ".dataset.items) > 0", f"sensor {sensor}'s timeline")
    legend = browser.execute_script("return Array.from(document.querySelectorAll('#legend .legend-item'))"
                                    ".map(e => e.dataset.action)")
    info = httpx.get(f"{service.url}/api/info", headers={"Authorization": f"Bearer {service.token}"}).json()
    assert legend == info["class_names"]
    # Status figures of a tile: frames counted, fps measured.
    frames = browser.find_element("css selector", f".tile[data-sensor-id='{SENSORS[0]}'] [data-field='frames']")
    assert int(frames.text) == 48
    save_screenshot(browser, tmp_path, "dashboard.png")


def test_reconnects_after_the_socket_drops(service, browser, tmp_path):
    open_dashboard(browser, service)
    # Closing the socket from the page's side is what a dropped network does to it.
    browser.execute_script("window.thermalDashboard.ws.close()")
    wait_for(browser, "!document.getElementById('disconnected').hidden", "the disconnected banner")
    assert "Disconnected" in browser.find_element("id", "disconnected").text
    save_screenshot(browser, tmp_path, "dashboard_disconnected.png")
    wait_for(browser, "document.getElementById('disconnected').hidden && document.body.dataset.connection === 'connected'",
             "the reconnection")


def test_wrong_token_gets_the_401_page(service, browser, tmp_path):
    browser.get(f"{service.url}/?token=not-the-token")
    heading = wait_for(browser, "document.querySelector('h1') && document.querySelector('h1').textContent", "a page")
    assert heading == "401"
    assert "?token=" in browser.find_element("tag name", "body").text
    assert httpx.get(f"{service.url}/?token=not-the-token").status_code == 401
    assert httpx.get(f"{service.url}/api/sensors").status_code == 401
    save_screenshot(browser, tmp_path, "dashboard_401.png")
