"""Screenshots of the dashboard on a realistic run, for the README and docs (``docs/img/``).

Starts the service in this process with a trained checkpoint, replays recordings as live
sensors in real time (the six real recordings by default; the real sample's one; or a
``thermal-action demo`` run's synthetic ones with ``--demo``), gives them the furniture of their
annotations (``rooms extract``) and made-up room names and residents, acknowledges one alert,
then opens headless Chromium (Debian ``chromium`` + ``chromium-driver``) and saves, with
``--prefix P`` (default ``dashboard``):

- ``P.png``: the operator view at 1400x900;
- ``P_alert.png``: the oldest open alert with a clip, opened;
- ``P_engineer.png``: the engineer view (timeline, figures);
- ``P_phone.png``: the phone layout at 390x844.

Usage::

    # the six real recordings (the checkpoint trained on them)
    python scripts/dashboard_screenshots.py --checkpoint runs/real/checkpoints/best.ckpt
    # the real sample
    python scripts/dashboard_screenshots.py --checkpoint runs/real/checkpoints/best.ckpt \
        --recordings shared/thermal_sample/frames --raw-annotations shared/thermal_sample/raw_annotations \
        --prefix dashboard_sample
    # the demo's synthetic rooms with the demo's model (thermal-action demo --out thermal_demo)
    python scripts/dashboard_screenshots.py --demo thermal_demo --sensors 6 --prefix dashboard_demo
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from pathlib import Path

import httpx

from thermal_action.data.room_files import extract_rooms
from thermal_action.serve.config import load_serve_config
from thermal_action.serve.replay.player import replay
from thermal_action.serve.service import ServiceThread

#: Made-up names for the sample's sensors (the recordings are two rooms filmed at four times).
ROOMS = {
    "SL14_R1": ("Room 12", "Mrs Smith"), "SL14_R2": ("Room 14", "Mr Okafor"),
    "SL14_R3": ("Room 15 — garden side", "Mrs Lindqvist"), "SL14_R4": ("Room 16", "Mr Haddad"),
    "SL18_R1": ("Room 3", "Mrs Novak"), "SL18_R2": ("Room 4", "Mr Brennan"),
}
#: Made-up residents for sensors without a name above (the demo's synthetic rooms).
RESIDENTS = ("Mrs Alvarez", "Mr Chen", "Mrs O'Neill", "Mr Kowalski", "Mrs Dubois", "Mr Mensah", "Mrs Tanaka",
             "Mr Rossi", "Mrs Johansson", "Mr Ibrahim", "Mrs Papadopoulos", "Mr Walsh")
DESKTOP, PHONE = (1400, 900), (390, 844)


def names_for(sensors: list[str]) -> dict[str, tuple[str, str]]:
    """Sensor id -> (room, resident): the sample's names, else "Room 21", "Room 22", ... in order."""
    out, n = {}, 0
    for sensor in sensors:
        if sensor in ROOMS:
            out[sensor] = ROOMS[sensor]
        else:
            out[sensor] = (f"Room {21 + n}", RESIDENTS[n % len(RESIDENTS)])
            n += 1
    return out


def start_chromium(profile: Path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--mute-audio",
                 "--disable-background-networking", "--no-first-run", "--lang=en-US", f"--user-data-dir={profile}"):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)


def viewport(browser, size: tuple[int, int], mobile: bool = False) -> None:
    browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                            {"width": size[0], "height": size[1], "deviceScaleFactor": 1, "mobile": mobile})


def wait(browser, script: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not browser.execute_script("return " + script):
        if time.monotonic() > deadline:
            raise TimeoutError(script)
        time.sleep(0.2)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", help="the model to serve (default with --demo: the demo's)")
    p.add_argument("--demo", help="a `thermal-action demo` output directory: its recordings, furniture and model")
    p.add_argument("--recordings", help="directory of .h5 recordings (default: shared/thermal_real/frames)")
    p.add_argument("--raw-annotations", help="their raw annotations (the furniture as zones)")
    p.add_argument("--sensors", type=int, default=0, help="replay only the first N recordings (0: all)")
    p.add_argument("--prefix", default="dashboard", help="file names: PREFIX.png, PREFIX_phone.png, ...")
    p.add_argument("--out", default="docs/img")
    p.add_argument("--seconds", type=float, default=75.0, help="replay this long before the screenshots")
    p.add_argument("--workers", type=int, default=1)
    args = p.parse_args()
    if args.demo:
        demo = Path(args.demo)
        args.recordings = args.recordings or str(demo / "dataset" / "frames")
        args.raw_annotations = args.raw_annotations or str(demo / "dataset" / "raw_annotations")
        args.checkpoint = args.checkpoint or str(demo / "run" / "checkpoints" / "best.ckpt")
    args.recordings = args.recordings or "/work/shared/thermal_real/frames"
    args.raw_annotations = args.raw_annotations or "/work/shared/thermal_real/raw_annotations"
    if not args.checkpoint:
        p.error("--checkpoint is needed (or --demo DIR)")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="dashboard-shots-"))
    rooms = tmp / "rooms.json"
    extract_rooms(sorted(Path(args.raw_annotations).glob("*.json")), out=rooms, key="sensor")
    cfg = load_serve_config(None, [f"data_dir={tmp}/data", "port=0", f"workers={args.workers}", f"rooms={rooms}"])
    recordings = sorted(Path(args.recordings).glob("*.h5"))
    if args.sensors:
        recordings = recordings[:args.sensors]
    names = names_for([r.stem for r in recordings])
    with ServiceThread(cfg, args.checkpoint) as svc:
        auth = {"Authorization": f"Bearer {svc.token}"}
        stop = threading.Event()
        sender = threading.Thread(target=replay, args=(recordings, svc.url.replace("http", "ws", 1)),
                                  kwargs={"token": svc.token, "stop": stop, "loop": True}, daemon=True)
        sender.start()
        time.sleep(3)
        for sensor, (room, resident) in names.items():
            httpx.put(f"{svc.url}/api/sensors/{sensor}/info", headers=auth,
                      json={"room": room, "resident": resident, "bed_label": "", "notes": ""})
        browser = start_chromium(tmp / "chromium")
        try:
            viewport(browser, DESKTOP)
            browser.get(f"{svc.url}/?token={svc.token}")
            wait(browser, "document.body.dataset.ready === 'true'")
            browser.execute_script("localStorage.setItem('thermal-action.operator', 'Nurse Ada')")
            time.sleep(args.seconds)
            # One alert acknowledged, as on a real shift (the operators' API takes "who").
            alerts = httpx.get(f"{svc.url}/api/alerts?limit=100", headers=auth).json()["alerts"]
            if alerts:
                httpx.post(f"{svc.url}/api/alerts/{alerts[0]['id']}/acknowledge", headers=auth,
                           json={"who": "Nurse Ada", "note": "on my way"})
            browser.refresh()
            wait(browser, "document.querySelectorAll('.tile img.frame:not([hidden])').length > 0")
            time.sleep(3)
            stats = httpx.get(f"{svc.url}/api/stats", headers=auth).json()
            print(f"alerts raised {stats['alerts_raised_total']}, latency p95 {stats['latency_s_p95']} s")
            browser.save_screenshot(str(out / f"{args.prefix}.png"))
            # The oldest open alert that has its clip, opened.
            with_clip = [a["id"] for a in httpx.get(f"{svc.url}/api/alerts?limit=100", headers=auth).json()["alerts"]
                         if a.get("has_clip") and a.get("status") == "open"]
            if with_clip:
                browser.execute_script(f"document.querySelector('.alert-row[data-alert-id=\"{with_clip[-1]}\"] .row-main')"
                                       ".click(); window.scrollTo(0, 0)")
                time.sleep(2.5)
                browser.save_screenshot(str(out / f"{args.prefix}_alert.png"))
                browser.find_element("css selector", "#detail .close").click()
            browser.execute_script("window.scrollTo(0, 0)")
            browser.execute_script("document.querySelector(\".view-switch button[data-view='engineer']\").click()")
            browser.execute_script("document.querySelector(\"#range button[data-seconds='300']\").click()")
            time.sleep(3)
            browser.execute_script("window.scrollTo(0, 0)")
            browser.save_screenshot(str(out / f"{args.prefix}_engineer.png"))
            browser.execute_script("document.querySelector(\".view-switch button[data-view='operator']\").click()")
            viewport(browser, PHONE, mobile=True)
            browser.refresh()
            wait(browser, "document.body.dataset.ready === 'true'")
            time.sleep(3)
            browser.save_screenshot(str(out / f"{args.prefix}_phone.png"))
        finally:
            browser.quit()
            stop.set()
            sender.join(timeout=10)
    print(f"screenshots in {out}")


if __name__ == "__main__":
    main()
