"""The labelling page in a real headless Chromium against ``thermal-action label`` in a child
process: pre-annotated boxes appear; number keys set an action that holds along the track
until changed; a drag moves a box and is saved; a reload, and a restart after SIGKILL, show
every label the page had acknowledged."""

from __future__ import annotations

import json
import signal

import httpx
import pytest
from helpers.browser import (
    DESKTOP,
    require_browser,
    save_screenshot,
    set_viewport,
    start_chromium,
    wait_for_script,
)
from helpers.label import start_label_cli, write_dataset

pytestmark = pytest.mark.slow
TOKEN = "test-token"
WAIT_S = 30.0


def wait_for(browser, script: str, what: str, timeout: float = WAIT_S):
    return wait_for_script(browser, script, what, timeout, poll=0.05)


def open_page(browser, url: str) -> None:
    browser.get(url)
    wait_for(browser, "document.body.dataset.ready === 'true'", "the page to load")


def wait_saved(browser) -> None:
    wait_for(browser, "document.getElementById('status').dataset.state === 'saved'", "'saved'")


def press(browser, *keys: str) -> None:
    from selenium.webdriver.common.action_chains import ActionChains

    for k in keys:
        ActionChains(browser).send_keys(k).perform()


def cells(browser) -> dict[str, str]:
    """What the timeline shows: "track/frame" -> action ("" unlabelled) for every box."""
    return browser.execute_script(
        "const o = {}; for (const c of document.querySelectorAll('.cell[data-action]')) "
        "o[c.dataset.track + '/' + c.dataset.frame] = c.dataset.action; return o;")


def view(url: str) -> dict:
    base = url.split("/?")[0]
    return httpx.get(f"{base}/api/recordings/S1", headers={"Authorization": f"Bearer {TOKEN}"}).json()


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    require_browser()
    b = start_chromium(tmp_path_factory.mktemp("chromium-profile"))
    try:
        set_viewport(b, DESKTOP)
        yield b
    finally:
        b.quit()


@pytest.fixture(scope="module")
def page(tmp_path_factory, browser):
    root = write_dataset(tmp_path_factory.mktemp("label-page") / "data")
    proc, url = start_label_cli(root, token=TOKEN)
    try:
        open_page(browser, url)
        yield url, root
    finally:
        proc.terminate()
        proc.wait(30)


def test_preannotated_boxes_appear(browser, page, tmp_path):
    url, _root = page
    v = view(url)
    first = str(v["keyframes"][0])
    shown = browser.execute_script("return [...document.querySelectorAll('#boxes-layer .box')].map(b => b.dataset.track)")
    assert sorted(shown) == sorted(v["boxes"][first]) and len(shown) == 2
    save_screenshot(browser, tmp_path, "label_desktop.png")


def test_number_keys_set_an_action_that_holds_along_the_track_until_changed(browser, page):
    _url, root = page
    track = browser.execute_script("return document.querySelector('#people li.selected').dataset.track")
    press(browser, "1")
    wait_saved(browser)
    mine = {k: a for k, a in cells(browser).items() if k.startswith(track + "/")}
    assert set(mine.values()) == {"1"} and len(mine) >= 8  # one key press labels the whole track
    press(browser, "\ue014", "\ue014", "\ue014", "0")  # three keyframes on (→), then sitting
    wait_saved(browser)
    changed = int(browser.execute_script("return document.body.dataset.keyframe"))
    mine = {int(k.split("/")[1]): a for k, a in cells(browser).items() if k.startswith(track + "/")}
    assert {f: a for f, a in mine.items() if f < changed} and all(a == "1" for f, a in mine.items() if f < changed)
    assert all(a == "0" for f, a in mine.items() if f >= changed)
    others = {k: a for k, a in cells(browser).items() if not k.startswith(track + "/")}
    assert set(others.values()) == {""}  # the other person is untouched
    raw = [json.loads(line) for line in (root / "labels" / "raw_annotations" / "S1_annotation.json").read_text().splitlines()] \
        if (root / "labels" / "raw_annotations" / "S1_annotation.json").exists() else []
    assert raw == []  # no keyframe is complete while the other person is unlabelled
    press(browser, "\ue004", "2")  # Tab to the other person, walking
    wait_saved(browser)
    raw = (root / "labels" / "raw_annotations" / "S1_annotation.json").read_text().splitlines()
    assert len(raw) >= 1 and "walking" in raw[-1] and "sitting" in raw[-1]


def test_a_drag_moves_a_box_and_is_saved(browser, page):
    from selenium.webdriver.common.action_chains import ActionChains

    url, _root = page
    f = browser.execute_script("return document.body.dataset.keyframe")
    box = browser.find_element("css selector", "#boxes-layer .box.selected")
    track = box.get_attribute("data-track")
    before = view(url)["boxes"][f][track]
    width = browser.execute_script("return document.getElementById('stage').getBoundingClientRect().width")
    ActionChains(browser).move_to_element_with_offset(box, 0, 2).click_and_hold().move_by_offset(20, 10) \
        .move_by_offset(20, 10).release().perform()
    wait_saved(browser)
    after = view(url)["boxes"][f][track]
    dx = 40 / width * 60
    assert after[0] - before[0] == pytest.approx(dx, abs=0.6) and after[2] - before[2] == pytest.approx(dx, abs=0.6)
    assert after[1] > before[1]


def test_a_reload_and_a_restart_after_sigkill_show_every_acknowledged_label(browser, tmp_path):
    root = write_dataset(tmp_path / "data")
    proc, url = start_label_cli(root, token=TOKEN)
    try:
        open_page(browser, url)
        press(browser, "3", "\ue014", "\ue014", "4", "\ue004", "1", "\ue014", "\ue014", "2")
        wait_saved(browser)
        shown = cells(browser)
        assert len(set(shown.values()) - {""}) == 4
        browser.refresh()
        wait_for(browser, "document.body.dataset.ready === 'true'", "the page to reload")
        assert cells(browser) == shown
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    proc, url = start_label_cli(root, token=TOKEN)
    try:
        open_page(browser, url)
        assert cells(browser) == shown
    finally:
        proc.terminate()
        proc.wait(30)
