"""MQTT ingest: topic parsing, and end to end through a real Mosquitto broker to a fake hub."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from thermal_action.serve.config import ServeConfig
from thermal_action.serve.mqtt import MqttIngest, parse_mqtt_url, sensor_id_from_topic
from thermal_action.serve.protocol import FrameFormatError, encode_frames


def test_parse_mqtt_url():
    assert parse_mqtt_url("mqtt://127.0.0.1:1884") == ("127.0.0.1", 1884, "", "")
    assert parse_mqtt_url("tcp://u:p@broker") == ("broker", 1883, "u", "p")
    for bad in ("http://x:1", "mqtt://", "mqtt://h:notaport"):
        with pytest.raises(ValueError):
            parse_mqtt_url(bad)


def test_sensor_id_from_topic():
    assert sensor_id_from_topic("thermal/room-1/frames", "thermal/+/frames") == "room-1"
    assert sensor_id_from_topic("site/a/b.c_d/x/y", "site/a/+/#") == "b.c_d"
    for topic in ("thermal/room-1/other", "thermal/room-1", "thermal/bad id/frames", "thermal/a/frames/x"):
        with pytest.raises(FrameFormatError):
            sensor_id_from_topic(topic, "thermal/+/frames")
    with pytest.raises(ValueError):
        MqttIngest(None, ServeConfig(mqtt_url="mqtt://127.0.0.1:1", mqtt_topic="thermal/#"))


def _publisher(port: int):
    import paho.mqtt.client as mqtt

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"test-pub-{time.monotonic_ns()}")
    client.connect("127.0.0.1", port)
    client.loop_start()
    return client


def _publish(client, topic: str, payload: bytes | str) -> None:
    client.publish(topic, payload, qos=1).wait_for_publish(timeout=30)


def _frames(n: int, t0: int = 1_700_000_000_000) -> tuple[np.ndarray, list[int]]:
    rng = np.random.default_rng(0)
    return rng.uniform(15, 30, size=(n, 40, 60)).astype(np.float32), [t0 + 165 * i for i in range(n)]


def test_mqtt_ingest_end_to_end(mosquitto, fake_hub):
    cfg = ServeConfig(mqtt_url=mosquitto.url)
    frames, stamps = _frames(3)
    with MqttIngest(fake_hub, cfg) as ingest:
        assert ingest.wait_connected(30)
        pub = _publisher(mosquitto.port)
        try:
            _publish(pub, "thermal/bed-1/frames", encode_frames(frames[:2], stamps[:2]))  # binary, 2 frames
            _publish(pub, "thermal/bed-1/frames", json.dumps({"timestamp": stamps[2], "frame": frames[2].tolist()}))
            _publish(pub, "thermal/bed-2/frames", b"\x00garbage")  # neither format
            _publish(pub, "thermal/bad id/frames", encode_frames(frames[:1], stamps[:1]))  # invalid sensor id
            assert fake_hub.wait_for(lambda h: len(h.of("submit")) == 2 and len(h.of("reject")) == 2)
        finally:
            pub.loop_stop()
            pub.disconnect()
        submits = fake_hub.of("submit")
        assert [(c[1], c[3], len(c[2])) for c in submits] == [("bed-1", "mqtt", 2), ("bed-1", "mqtt", 1)]
        got = submits[0][2] + submits[1][2]
        np.testing.assert_array_equal(np.stack([f.frame for f in got]), frames)
        assert [f.timestamp for f in got] == stamps
        rejects = fake_hub.of("reject")
        assert rejects[0][1:3] == ("bed-2", "mqtt") and "JSON" in rejects[0][3]
        assert rejects[1][1:3] == (None, "mqtt") and "sensor id" in rejects[1][3]
        # Presence: once per sensor (its first message), not per message.
        assert fake_hub.of("connected") == [("connected", "bed-1", "mqtt"), ("connected", "bed-2", "mqtt")]
        stats = ingest.stats
        assert (stats.messages, stats.frames, stats.bad_messages, stats.callback_errors) == (4, 3, 2, 0)
    assert sorted(c[1] for c in fake_hub.of("disconnected")) == ["bed-1", "bed-2"]


def test_a_raising_hub_does_not_stop_the_ingest(mosquitto, fake_hub):
    class Exploding(type(fake_hub)):
        def submit(self, sensor_id, frames, transport):
            super().submit(sensor_id, frames, transport)
            if sensor_id == "boom":
                raise RuntimeError("hub bug")

    hub = Exploding()
    frames, stamps = _frames(1)
    with MqttIngest(hub, ServeConfig(mqtt_url=mosquitto.url)) as ingest:
        assert ingest.wait_connected(30)
        pub = _publisher(mosquitto.port)
        try:
            _publish(pub, "thermal/boom/frames", encode_frames(frames, stamps))
            _publish(pub, "thermal/fine/frames", encode_frames(frames, stamps))
            assert hub.wait_for(lambda h: len(h.of("submit")) == 2)
        finally:
            pub.loop_stop()
            pub.disconnect()
        assert ingest.stats.callback_errors == 1


def test_mqtt_ingest_reconnects_after_a_broker_restart(mosquitto, fake_hub):
    frames, stamps = _frames(2)
    with MqttIngest(fake_hub, ServeConfig(mqtt_url=mosquitto.url), reconnect_min_delay=0.1,
                    reconnect_max_delay=0.5) as ingest:
        assert ingest.wait_connected(30)
        pub = _publisher(mosquitto.port)
        _publish(pub, "thermal/s1/frames", encode_frames(frames[:1], stamps[:1]))
        assert fake_hub.wait_for(lambda h: len(h.of("submit")) == 1)
        pub.loop_stop()
        pub.disconnect()

        mosquitto.stop()
        assert fake_hub.wait_for(lambda h: len(h.of("disconnected")) == 1)  # the link's loss ends presence
        assert not ingest.is_connected
        mosquitto.start()
        assert ingest.wait_connected(30)

        pub = _publisher(mosquitto.port)
        try:
            _publish(pub, "thermal/s1/frames", encode_frames(frames[1:], stamps[1:]))
            assert fake_hub.wait_for(lambda h: len(h.of("submit")) == 2)
        finally:
            pub.loop_stop()
            pub.disconnect()
        assert ingest.stats.connects == 2 and ingest.stats.disconnects == 1
        assert [c[1] for c in fake_hub.of("connected")] == ["s1", "s1"]
