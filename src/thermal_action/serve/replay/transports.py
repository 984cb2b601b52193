"""The replay's clients, one per target: WebSocket, HTTP and MQTT (one shared paho client).

Each transport has ``connect()``, ``send(payload, n) -> (server errors, frames dropped)`` and
``close(linger) -> server errors``; a connection problem raises :class:`ConnectionError` (or
``OSError``/``TimeoutError``), a refused token :class:`~thermal_action.errors.ReplayAuthError`.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import threading
import uuid
from typing import Any
from urllib.parse import quote, urlsplit

from thermal_action.errors import ReplayAuthError
from thermal_action.serve.protocol import WS_UNAUTHORIZED, dropped_in

#: First and largest wait before reconnecting, seconds.
BACKOFF = (0.2, 5.0)


class WsTransport:
    """One WebSocket connection to ``/ws/sensors/{id}``."""

    def __init__(self, base: str, sensor_id: str, token: str, timeout: float):
        self.url = f"{base.rstrip('/')}/ws/sensors/{quote(sensor_id)}"
        if token:
            self.url += f"?token={quote(token)}"
        self.timeout = timeout
        self.ws = None
        self.stack = contextlib.ExitStack()

    def connect(self) -> None:
        from websockets.exceptions import InvalidStatus
        from websockets.sync.client import connect

        try:
            # Entered like a context manager (what websockets >= 17.1 asks for); close() exits it.
            stack = contextlib.ExitStack()
            self.ws = stack.enter_context(connect(self.url, open_timeout=self.timeout, close_timeout=1,
                                                  max_size=None, compression=None))
            self.stack = stack
        except InvalidStatus as e:
            status = e.response.status_code
            if status in (401, 403):
                raise ReplayAuthError(f"the server refused the token (HTTP {status})") from None
            raise ConnectionError(f"WebSocket handshake answered HTTP {status}") from None

    def send(self, payload: bytes, n: int) -> tuple[list[str], int]:
        from websockets.exceptions import ConnectionClosed

        try:
            self.ws.send(payload)
            errors = self._drain(0)
            return errors, dropped_in(errors)
        except ConnectionClosed as e:
            code = e.rcvd.code if e.rcvd is not None else None
            if code == WS_UNAUTHORIZED:
                raise ReplayAuthError(f"the server refused the token (WebSocket close {WS_UNAUTHORIZED})") from None
            raise ConnectionError(f"WebSocket closed ({code})") from None

    def _drain(self, timeout: float, until_quiet: bool = False) -> list[str]:
        """The server's messages waiting now (``timeout`` for the first); with ``until_quiet``
        every message waits up to ``timeout`` for the next: notices about the last frames can
        arrive one by one, and a drain that stopped at the first gap undercounted the drops."""
        errors = []
        while True:
            try:
                msg = self.ws.recv(timeout=timeout)
            except TimeoutError:
                return errors
            if not until_quiet:
                timeout = 0
            try:
                obj = json.loads(msg)
                if isinstance(obj, dict) and obj.get("type") == "error":
                    errors.append(str(obj.get("error")))
            except (TypeError, ValueError):
                errors.append(f"unexpected message from the server: {str(msg)[:100]}")

    def close(self, linger: float = 0.0) -> list[str]:
        """Closes the connection; first waits up to ``linger`` s for errors about the last frames."""
        errors: list[str] = []
        if self.ws is None:
            return errors
        try:
            if linger > 0:
                errors = self._drain(linger, until_quiet=True)
        except Exception:  # noqa: BLE001 - the connection is going anyway
            pass
        try:
            self.stack.close()
        except Exception:  # noqa: BLE001
            pass
        self.ws = None
        return errors


class HttpTransport:
    """A kept-alive HTTP connection POSTing to ``/api/sensors/{id}/frames``."""

    def __init__(self, base: str, sensor_id: str, token: str, timeout: float):
        parts = urlsplit(base)
        self.https = parts.scheme == "https"
        self.host, self.port = parts.hostname, parts.port
        self.path = f"{parts.path.rstrip('/')}/api/sensors/{quote(sensor_id)}/frames"
        self.headers = {"Content-Type": "application/octet-stream"}
        if token:
            self.headers["Authorization"] = f"Bearer {token}"
        self.timeout = timeout
        self.conn: http.client.HTTPConnection | None = None

    def connect(self) -> None:
        cls = http.client.HTTPSConnection if self.https else http.client.HTTPConnection
        self.conn = cls(self.host, self.port, timeout=self.timeout)
        self.conn.connect()

    def send(self, payload: bytes, n: int) -> tuple[list[str], int]:
        try:
            self.conn.request("POST", self.path, body=payload, headers=self.headers)
            resp = self.conn.getresponse()
            body = resp.read()
        except (OSError, http.client.HTTPException) as e:
            raise ConnectionError(f"HTTP: {e or type(e).__name__}") from None
        if resp.status == 401:
            raise ReplayAuthError("the server refused the token (HTTP 401)")
        try:
            answer = json.loads(body)
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            if resp.status >= 400:
                return [f"HTTP {resp.status}: {body[:200].decode('utf-8', 'replace')}"], 0
            return [], 0
        errors = [str(e) for e in answer.get("errors") or []]
        if resp.status >= 400 and not errors:
            errors = [f"HTTP {resp.status}: {answer.get('detail', answer)}"]
        return errors, int(answer.get("dropped") or 0)

    def close(self, linger: float = 0.0) -> list[str]:
        if self.conn is not None:
            self.conn.close()
            self.conn = None
        return []


class MqttLink:
    """One paho client shared by every replayed sensor (publishing is thread-safe)."""

    def __init__(self, url: str, qos: int, timeout: float):
        import paho.mqtt.client as mqtt

        parts = urlsplit(url)
        self.qos = qos
        self.timeout = timeout
        self.up = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2,
                                  client_id=f"thermal-action-replay-{uuid.uuid4().hex[:12]}")
        if parts.username:
            self.client.username_pw_set(parts.username, parts.password)
        self.client.reconnect_delay_set(*BACKOFF)
        self.client.on_connect = lambda c, u, f, rc, p: rc.is_failure or self.up.set()
        self.client.on_disconnect = lambda c, u, f, rc, p: self.up.clear()
        self.client.connect_async(parts.hostname, parts.port or 1883, keepalive=30)
        self.client.loop_start()

    def publish(self, topic: str, payload: bytes) -> Any:
        import paho.mqtt.client as mqtt

        if not self.up.is_set():
            raise ConnectionError("not connected to the MQTT broker")
        info = self.client.publish(topic, payload, qos=self.qos)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            raise ConnectionError(f"MQTT publish failed: {mqtt.error_string(info.rc)}")
        return info

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class MqttTransport:
    """A sensor's view of the shared :class:`MqttLink`: its own topic."""

    def __init__(self, link: MqttLink, topic: str):
        self.link, self.topic, self.last = link, topic, None

    def connect(self) -> None:
        if not self.link.up.wait(self.link.timeout):
            raise ConnectionError("no connection to the MQTT broker")

    def send(self, payload: bytes, n: int) -> tuple[list[str], int]:
        self.last = self.link.publish(self.topic, payload)
        return [], 0

    def close(self, linger: float = 0.0) -> list[str]:
        if self.last is not None and linger > 0:
            try:
                self.last.wait_for_publish(timeout=linger)  # the tail leaves before the client stops
            except (RuntimeError, ValueError):
                pass
        return []
