"""Alert notifications: a webhook on a local HTTP server (down at first, then up: retried with
backoff; never up: dead letters), a full queue, and the alert topic on a real Mosquitto broker."""

from __future__ import annotations

import json
import threading
import time

import pytest

from helpers.serve import Webhook, wait_for
from thermal_action.errors import ConfigError
from thermal_action.serve.config import ServeConfig, check_serve_config
from thermal_action.serve.notify import MqttSink, Notifier, Outbox, WebhookSink, alert_message

ALERT = {"id": 7, "sensor_id": "bed-3", "room": "Room 12", "state": "ongoing", "status": "open"}


@pytest.fixture
def webhook():
    hook = Webhook(fail_first=2)
    yield hook
    hook.close()


def test_webhook_gets_every_event_in_order_after_retries(webhook):
    box = Outbox(WebhookSink(webhook.url, timeout=5), retries=3, backoff=0.05)
    notifier = Notifier([box])
    notifier.start()
    t0 = time.monotonic()
    try:
        for event in ("raised", "acknowledged", "resolved", "ended"):
            notifier.notify(event, ALERT, who="nurse Ada" if event in ("acknowledged", "resolved") else "system")
        wait_for(lambda: len(webhook.received) == 4, timeout=20, what="4 webhook deliveries")
    finally:
        notifier.stop()
    assert [m["event"] for m in webhook.received] == ["raised", "acknowledged", "resolved", "ended"]
    assert webhook.received[1]["who"] == "nurse Ada" and webhook.received[0]["alert"] == ALERT
    assert webhook.received[0]["content_type"] == "application/json"
    assert time.monotonic() - t0 >= 0.05 + 0.1  # two failures: waited 0.05 s, then 0.1 s
    s = notifier.stats()
    assert (s["sent"], s["dead_letters"], s["queued"], s["sinks"]["webhook"]["failures"]) == (4, 0, 0, 2)


def test_a_webhook_that_never_answers_gives_dead_letters_without_blocking():
    box = Outbox(WebhookSink("http://127.0.0.1:9/nothing-listens", timeout=0.5), max_queue=2, retries=1,
                 backoff=0.05)
    notifier = Notifier([box])
    notifier.start()
    try:
        t = time.monotonic()
        for _ in range(6):
            notifier.notify("raised", ALERT)
        assert time.monotonic() - t < 0.5  # queued or dropped, never waited for
        wait_for(lambda: notifier.stats()["dead_letters"] >= 3, timeout=10, what="dead letters")
    finally:
        notifier.stop()
    s = notifier.stats()["sinks"]["webhook"]
    assert s["sent"] == 0 and s["dead_letters"] == 6 and "URLError" in s["last_error"] and s["queued"] == 0


def test_alerts_go_to_the_mqtt_topic_with_qos_1_not_retained(mosquitto):
    import paho.mqtt.client as mqtt

    got: list = []
    sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="test-alert-sub")
    sub.on_message = lambda c, u, m: got.append(m)
    subscribed = threading.Event()
    sub.on_subscribe = lambda *a: subscribed.set()
    sub.connect("127.0.0.1", mosquitto.port)
    sub.loop_start()
    sub.subscribe("care/+/alerts", qos=1)
    assert subscribed.wait(10)
    notifier = Notifier([Outbox(MqttSink(mosquitto.url, "care/{sensor_id}/alerts"), backoff=0.05, retries=50)])
    notifier.start()
    try:
        notifier.notify("raised", ALERT)  # while the sink still connects: retried, not lost
        notifier.notify("acknowledged", ALERT, who="nurse Ada")
        wait_for(lambda: len(got) == 2, timeout=20, what="two alert messages on the broker")
    finally:
        notifier.stop()
        sub.loop_stop()
        sub.disconnect()
    assert [m.topic for m in got] == ["care/bed-3/alerts"] * 2
    assert [json.loads(m.payload)["event"] for m in got] == ["raised", "acknowledged"]
    assert all(m.qos == 1 and not m.retain for m in got)
    assert notifier.stats()["sinks"]["mqtt"]["sent"] == 2


def test_notification_keys_are_checked():
    assert alert_message("repeat", ALERT)["event"] == "repeat"
    with pytest.raises(ValueError):
        alert_message("feedback", ALERT)
    for bad, key in (({"alert_webhook_url": "ftp://x"}, "alert_webhook_url"),
                     ({"mqtt_alert_topic": "care/alerts"}, "mqtt_alert_topic"),
                     ({"mqtt_alert_topic": "care/#", "mqtt_alert_url": "mqtt://h:1"}, "mqtt_alert_topic"),
                     ({"mqtt_alert_url": "http://h"}, "mqtt_alert_url")):
        with pytest.raises(ConfigError, match=key):
            check_serve_config(ServeConfig(**bad))
    cfg = check_serve_config(ServeConfig(mqtt_url="mqtt://h:1", mqtt_alert_topic="care/alerts",
                                         alert_webhook_url="http://h/x"))
    assert [o.sink.name for o in Notifier.from_config(cfg).outboxes] == ["webhook", "mqtt"]
    assert Notifier.from_config(ServeConfig()).outboxes == []


def test_signed_webhook_verifies_and_refuses_tampering_replays_and_other_secrets():
    import hashlib
    import hmac

    from thermal_action.serve.notify import SignatureError, verify_webhook

    secret = "s3cret-of-the-care-home"
    hook = Webhook(fail_first=1)
    notifier = Notifier([Outbox(WebhookSink(hook.url, timeout=5, secret=secret), retries=3, backoff=0.05)])
    notifier.start()
    try:
        notifier.notify("raised", ALERT)
        notifier.notify("acknowledged", ALERT, who="nurse Ada")
        wait_for(lambda: len(hook.received) == 2, timeout=20, what="2 signed webhook deliveries")
    finally:
        notifier.stop()
        hook.close()
    assert len(hook.requests) == 3  # the first try failed (503) and was retried
    for headers, body in hook.requests:
        h = {k.lower(): v for k, v in headers.items()}
        ts = h["x-thermal-action-timestamp"]
        assert abs(int(ts) - time.time()) < 60
        # What a receiver computes, with nothing but the standard library.
        mac = hmac.new(secret.encode(), ts.encode() + b"." + body, hashlib.sha256).hexdigest()
        assert h["x-thermal-action-signature"] == "sha256=" + mac
        assert verify_webhook(secret, body, headers) == json.loads(body)
    first_try, retry, second = (json.loads(b) for _, b in hook.requests)
    assert first_try == retry and first_try["id"] != second["id"]  # a retry is the same message: dedupe by id
    assert [m["event"] for m in hook.received] == ["raised", "acknowledged"]

    headers, body = hook.requests[-1]
    ts = int({k.lower(): v for k, v in headers.items()}["x-thermal-action-timestamp"])
    with pytest.raises(SignatureError, match="does not match"):
        verify_webhook(secret, body.replace(b"nurse Ada", b"nurse Bob"), headers)
    with pytest.raises(SignatureError, match="does not match"):
        verify_webhook("another secret", body, headers)
    with pytest.raises(SignatureError, match="replay"):  # the same request, recorded and sent 10 min later
        verify_webhook(secret, body, headers, now=ts + 600)
    assert verify_webhook(secret, body, headers, now=ts + 299)["event"] == "acknowledged"
    with pytest.raises(SignatureError, match="unsigned"):
        verify_webhook(secret, body, {"Content-Type": "application/json"})


def test_webhook_secret_from_config_or_environment_and_unsigned_without(monkeypatch):
    from thermal_action.serve.notify import WEBHOOK_SECRET_ENV

    monkeypatch.delenv(WEBHOOK_SECRET_ENV, raising=False)
    assert Notifier.from_config(ServeConfig(alert_webhook_url="http://h/x")).outboxes[0].sink.secret == ""
    monkeypatch.setenv(WEBHOOK_SECRET_ENV, "from-env")
    assert Notifier.from_config(ServeConfig(alert_webhook_url="http://h/x")).outboxes[0].sink.secret == "from-env"
    cfg = ServeConfig(alert_webhook_url="http://h/x", alert_webhook_secret="from-config")
    assert Notifier.from_config(cfg).outboxes[0].sink.secret == "from-config"
    hook = Webhook()
    try:
        WebhookSink(hook.url).send(alert_message("raised", ALERT))
    finally:
        hook.close()
    (headers, _), = hook.requests
    assert not any(k.lower().startswith("x-thermal-action") for k in headers)
