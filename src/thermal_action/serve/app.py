"""The service's web application (FastAPI): ingest over WebSocket and HTTP, the dashboard and
its read API, the sensors' details, acknowledging and resolving alerts, their clips and
feedback, ``/health`` and Prometheus ``/metrics``.

Every endpoint but ``/health`` needs the service's token: ``Authorization: Bearer <token>``,
``?token=<token>``, or the ``ta_token`` cookie that ``GET /?token=...`` sets for the dashboard
(HttpOnly, SameSite=Strict). Endpoints and message formats: docs/serve.md.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from functools import lru_cache
from importlib import resources
from typing import Any

from fastapi import FastAPI, HTTPException, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from fastapi.staticfiles import StaticFiles

from thermal_action.errors import AlertIsOngoing, RoomsError
from thermal_action.serve.clips import render_clip, render_strip
from thermal_action.serve.config import ingest_limits
from thermal_action.serve.hub import Hub
from thermal_action.serve.operators import (
    RequestError,
    check_alert_id,
    parse_alert_action,
    parse_feedback,
    parse_sensor_info,
)
from thermal_action.serve.protocol import (
    MAX_MESSAGE_BYTES,
    WS_BAD_SENSOR,
    WS_UNAUTHORIZED,
    FrameFormatError,
    check_sensor_id,
    decode_binary,
    decode_json,
    decode_message,
    parse_json,
)
from thermal_action.serve.store import ALERT_STATES, ALERT_STATUSES

logger = logging.getLogger(__name__)

COOKIE = "ta_token"
#: Bytes a zones request may carry (a layout of hundreds of polygons).
MAX_ZONES_BODY = 1024 * 1024
#: Bytes an operator's request (sensor details, acknowledge, feedback) may carry.
MAX_FORM_BODY = 64 * 1024
#: Upscaling of clip frames: the default and the range.
CLIP_SCALE, CLIP_SCALES = 6, (1, 16)


def _given_token(headers: Any, query: Any, cookies: Any) -> str:
    auth = headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    return query.get("token") or cookies.get(COOKIE) or ""


class TokenGuard:
    """The one token a page and its API take (``Authorization: Bearer``, ``?token=`` or the
    cookie), compared in constant time: the service's and the labelling page's."""

    def __init__(self, token: str):
        self.token = token

    def ok(self, given: str) -> bool:
        return bool(given) and secrets.compare_digest(given.encode(), self.token.encode())

    def given(self, request: Request) -> str:
        return _given_token(request.headers, request.query_params, request.cookies)

    def require(self, request: Request) -> None:
        """A FastAPI dependency: 401 unless the request carries the token."""
        if not self.ok(self.given(request)):
            raise HTTPException(401, "missing or wrong token (Authorization: Bearer <token>, or ?token=)")

    def page(self, request: Request, html: Any, command: str) -> Response:
        """The page ``html`` (a file) for a request with the token, which it then keeps in a
        cookie for the page's own calls; else a 401 page pointing at the address ``command``
        printed at start."""
        given = self.given(request)
        if not self.ok(given):
            return HTMLResponse(f"<!doctype html><title>thermal-action {command}</title><h1>401</h1><p>Open the "
                                f"address <code>{command}</code> printed at start (it carries <code>?token=</code>).</p>",
                                status_code=401)
        response = HTMLResponse(html.read_text())
        response.set_cookie(COOKIE, given, httponly=True, samesite="strict")
        return response


def static_dir() -> Any:
    return resources.files("thermal_action.serve") / "static"


def create_app(hub: Hub, token: str) -> FastAPI:
    """The application for ``hub``, guarded by ``token``."""
    app = FastAPI(title="thermal-action serve", docs_url=None, redoc_url=None, openapi_url=None)
    limits = ingest_limits(hub.cfg)

    guard = TokenGuard(token)
    ok, require = guard.ok, guard.require

    def known_sensor(sensor_id: str) -> None:
        try:
            check_sensor_id(sensor_id)
        except FrameFormatError as e:
            raise HTTPException(400, str(e)) from None

    async def form(request: Request) -> Any:
        """An operator's JSON body (None when empty)."""
        raw = await request.body()
        if len(raw) > MAX_FORM_BODY:
            raise HTTPException(413, f"a request may carry {MAX_FORM_BODY} bytes here")
        if not raw.strip():
            return None
        try:
            return parse_json(raw)
        except FrameFormatError as e:
            raise HTTPException(400, f"body: not JSON ({e})") from None

    def alert_id_ok(alert_id: int) -> None:
        if not check_alert_id(alert_id):  # SQLite's integers; another id cannot name an alert
            raise HTTPException(404, f"no alert {alert_id}")

    @lru_cache(maxsize=8)
    def rendered_clip(alert_id: int, name: str, scale: int) -> dict:  # a saved clip never changes
        clip = hub.clip(alert_id)
        if clip is None:
            raise HTTPException(404, f"alert {alert_id} has no clip")
        return render_clip(clip, scale)

    # -- dashboard and static files

    @app.get("/", response_class=HTMLResponse)
    def index(request: Request) -> Response:
        return guard.page(request, static_dir() / "index.html", "serve")

    if (static_dir() / "index.html").is_file():
        app.mount("/static", StaticFiles(directory=str(static_dir())), name="static")

    # -- ingest

    @app.websocket("/ws/sensors/{sensor_id}")
    async def ws_sensor(ws: WebSocket, sensor_id: str) -> None:
        await ws.accept()
        if not ok(_given_token(ws.headers, ws.query_params, ws.cookies)):
            await ws.close(code=WS_UNAUTHORIZED, reason="missing or wrong token")
            return
        try:
            check_sensor_id(sensor_id)
        except FrameFormatError as e:
            await ws.close(code=WS_BAD_SENSOR, reason=str(e)[:120])
            return
        hub.connected(sensor_id, "ws")
        try:
            while True:
                msg = await ws.receive()
                if msg["type"] == "websocket.disconnect":
                    break
                data = msg.get("bytes") if msg.get("bytes") is not None else msg.get("text")
                try:
                    frames = decode_message(data, limits)
                except FrameFormatError as e:
                    hub.reject(sensor_id, "ws", str(e))
                    await ws.send_json({"type": "error", "sensor_id": sensor_id, "error": str(e)})
                    continue
                result = hub.submit(sensor_id, frames, "ws")
                for err in result.errors:
                    await ws.send_json({"type": "error", "sensor_id": sensor_id, "error": err})
        except WebSocketDisconnect:
            pass
        finally:
            hub.disconnected(sensor_id, "ws")

    @app.post("/api/sensors/{sensor_id}/frames")
    async def post_frames(sensor_id: str, request: Request) -> JSONResponse:
        require(request)
        known_sensor(sensor_id)
        body = await request.body()
        if len(body) > MAX_MESSAGE_BYTES:
            raise HTTPException(413, f"a request may carry {MAX_MESSAGE_BYTES} bytes; send fewer frames at once")
        kind = request.headers.get("content-type", "")
        try:
            if kind.startswith("application/octet-stream"):
                frames = decode_binary(body, limits)
            elif kind.startswith("application/json"):
                frames = decode_json(body, limits)
            else:
                frames = decode_message(body, limits)
        except FrameFormatError as e:
            hub.reject(sensor_id, "http", str(e))
            return JSONResponse({"accepted": 0, "dropped": 0, "errors": [str(e)]}, status_code=e.status)
        result = hub.submit(sensor_id, frames, "http")
        status = 200
        if not result.accepted and result.dropped:
            status = 503
        elif not result.accepted and result.errors:
            status = 422
        return JSONResponse({"accepted": result.accepted, "dropped": result.dropped, "errors": result.errors},
                            status_code=status)

    # -- read API

    @app.get("/api/info")
    def info(request: Request) -> dict:
        require(request)
        from thermal_action.visualize import thermal_lut

        cfg, mi = hub.cfg, hub.info
        return {"class_names": list(mi.class_names), "fall_class": mi.alert_rule.fall_class,
                "fall_threshold": mi.alert_rule.threshold, "alert_rule": mi.alert_rule.to_dict(),
                "frame_size": list(mi.frame_size),
                "lag_seconds": mi.lag_frames / cfg.fps, "step": cfg.step, "fps": cfg.fps,
                "workers": hub.n_workers, "lut": thermal_lut().tolist()}

    @app.get("/api/sensors")
    def sensors(request: Request) -> dict:
        require(request)
        return {"sensors": hub.sensors_status()}

    @app.get("/api/sensors/{sensor_id}/live")
    def live(sensor_id: str, request: Request) -> dict:
        require(request)
        out = hub.live(sensor_id)
        if out is None:
            raise HTTPException(404, f"no sensor {sensor_id!r}")
        return out

    @app.get("/api/sensors/{sensor_id}/timeline")
    def timeline(sensor_id: str, request: Request, seconds: float = 3600.0) -> dict:
        require(request)
        known_sensor(sensor_id)
        since = int((time.time() - max(0.0, min(seconds, 7 * 86400.0))) * 1000)
        return {"sensor_id": sensor_id, "items": hub.store.timeline(sensor_id, since)}

    # -- sensor details (room, resident, bed)

    @app.get("/api/sensors/{sensor_id}/info")
    def get_sensor_info(sensor_id: str, request: Request) -> dict:
        require(request)
        known_sensor(sensor_id)
        return hub.sensor_info(sensor_id)

    @app.put("/api/sensors/{sensor_id}/info")
    async def put_sensor_info(sensor_id: str, request: Request) -> dict:
        require(request)
        known_sensor(sensor_id)
        try:
            info = parse_sensor_info(await form(request))
        except RequestError as e:
            raise HTTPException(400, str(e)) from None
        return hub.set_sensor_info(sensor_id, info)

    # -- room layouts (zones) per sensor

    @app.get("/api/sensors/{sensor_id}/zones")
    def get_zones(sensor_id: str, request: Request) -> dict:
        require(request)
        known_sensor(sensor_id)
        return hub.zones(sensor_id)

    @app.put("/api/sensors/{sensor_id}/zones")
    async def put_zones(sensor_id: str, request: Request) -> dict:
        require(request)
        known_sensor(sensor_id)
        body = await request.body()
        if len(body) > MAX_ZONES_BODY:
            raise HTTPException(413, f"a zones request may carry {MAX_ZONES_BODY} bytes")
        try:
            layout = parse_json(body)
        except FrameFormatError:
            raise HTTPException(400, 'the body must be a JSON layout like {"zones": [{"kind": "bed", "name": "bed", '
                                     '"box": [0.6, 0.3, 0.95, 0.6]}]} (normalized x1, y1, x2, y2)') from None
        try:
            return hub.set_zones(sensor_id, layout)
        except RoomsError as e:
            raise HTTPException(400, str(e)) from None

    @app.delete("/api/sensors/{sensor_id}/zones")
    def delete_zones(sensor_id: str, request: Request) -> dict:
        require(request)
        known_sensor(sensor_id)
        view = hub.delete_zones(sensor_id)
        if view is None:
            raise HTTPException(404, f"sensor {sensor_id!r} has no zones set through the API")
        return view

    @app.get("/api/alerts")
    def alerts(request: Request, status: str = "all", state: str = "all", limit: int = 100,
               sensor: str | None = None) -> dict:
        require(request)
        if status not in (*ALERT_STATUSES, "unresolved", "all"):
            raise HTTPException(400, f"status must be one of {', '.join(ALERT_STATUSES)}, unresolved or all")
        if state not in (*ALERT_STATES, "all"):
            raise HTTPException(400, f"state (the fall: is the person still down?) must be one of "
                                     f"{', '.join(ALERT_STATES)} or all; the people's side is ?status="
                                     f"{'|'.join(ALERT_STATUSES)}|unresolved")
        return {"alerts": hub.store.alerts(status, state, max(1, min(limit, 10_000)), sensor)}

    @app.get("/api/alerts/summary")
    def alerts_summary(request: Request) -> dict:
        require(request)
        rooms = hub.store.alerts_summary()
        return {"rooms": rooms, "open": sum(r["count"] for r in rooms),
                "unacknowledged": sum(r["unacknowledged"] for r in rooms),
                "ongoing": sum(r["ongoing"] for r in rooms)}

    @app.get("/api/alerts/{alert_id}")
    def alert(alert_id: int, request: Request) -> dict:
        require(request)
        alert_id_ok(alert_id)
        row = hub.store.alert(alert_id)
        if row is None:
            raise HTTPException(404, f"no alert {alert_id}")
        return {**row, "raises": hub.store.raises(alert_id=alert_id)}

    async def _set_status(alert_id: int, status: str, request: Request) -> dict:
        require(request)
        try:
            action = parse_alert_action(await form(request))
        except RequestError as e:
            raise HTTPException(400, str(e)) from None
        alert_id_ok(alert_id)
        try:
            row = hub.set_alert_status(alert_id, status, action)
        except AlertIsOngoing as e:
            raise HTTPException(409, str(e)) from None
        if row is None:
            raise HTTPException(404, f"no alert {alert_id}")
        return row

    @app.post("/api/alerts/{alert_id}/acknowledge")
    async def acknowledge(alert_id: int, request: Request) -> dict:
        return await _set_status(alert_id, "acknowledged", request)

    @app.post("/api/alerts/{alert_id}/resolve")
    async def resolve(alert_id: int, request: Request) -> dict:
        return await _set_status(alert_id, "resolved", request)

    @app.get("/api/alerts/{alert_id}/events")
    def alert_events(alert_id: int, request: Request) -> dict:
        require(request)
        alert_id_ok(alert_id)
        if hub.store.alert(alert_id) is None:
            raise HTTPException(404, f"no alert {alert_id}")
        return {"alert_id": alert_id, "events": hub.store.alert_events(alert_id)}

    @app.post("/api/alerts/{alert_id}/feedback")
    async def feedback(alert_id: int, request: Request) -> dict:
        require(request)
        try:
            answer = parse_feedback(await form(request))
        except RequestError as e:
            raise HTTPException(400, str(e)) from None
        alert_id_ok(alert_id)
        row = hub.add_feedback(alert_id, answer)
        if row is None:
            raise HTTPException(404, f"no alert {alert_id}")
        return row

    @app.get("/api/alerts/{alert_id}/clip")
    def clip(alert_id: int, request: Request, scale: int = CLIP_SCALE) -> dict:
        require(request)
        alert_id_ok(alert_id)
        if not CLIP_SCALES[0] <= scale <= CLIP_SCALES[1]:
            raise HTTPException(400, f"scale must be {CLIP_SCALES[0]}..{CLIP_SCALES[1]}")
        name = hub.store.clip_of(alert_id)
        if name is None:
            raise HTTPException(404, f"alert {alert_id} has no clip (none yet: its 'after' part is still "
                                     f"being recorded; or deleted after keep_clip_days; or no such alert)")
        return rendered_clip(alert_id, name, scale)

    @app.get("/api/alerts/{alert_id}/strip.png")
    def strip(alert_id: int, request: Request, scale: int = 4) -> Response:
        require(request)
        alert_id_ok(alert_id)
        if not CLIP_SCALES[0] <= scale <= CLIP_SCALES[1]:
            raise HTTPException(400, f"scale must be {CLIP_SCALES[0]}..{CLIP_SCALES[1]}")
        clip_ = hub.clip(alert_id)
        if clip_ is None or not len(clip_):
            raise HTTPException(404, f"alert {alert_id} has no clip")
        return Response(render_strip(clip_, scale), media_type="image/png",
                        headers={"Cache-Control": "private, max-age=3600"})

    @app.websocket("/ws/dashboard")
    async def ws_dashboard(ws: WebSocket) -> None:
        await ws.accept()
        if not ok(_given_token(ws.headers, ws.query_params, ws.cookies)):
            await ws.close(code=WS_UNAUTHORIZED, reason="missing or wrong token")
            return
        loop = asyncio.get_running_loop()
        events: asyncio.Queue = asyncio.Queue(maxsize=2000)

        def put(event: dict) -> None:
            if events.qsize() < events.maxsize:
                events.put_nowait(event)

        def listener(event: dict) -> None:  # called on the hub's threads
            loop.call_soon_threadsafe(put, event)

        hub.add_listener(listener)
        try:
            statuses = hub.sensors_status()
            await ws.send_json({"type": "sensors", "sensors": statuses})
            for st in statuses:
                live_now = hub.live(st["sensor_id"])
                if live_now is not None:
                    await ws.send_json(live_now)
            while True:
                event = await events.get()
                await ws.send_json(event)
        except (WebSocketDisconnect, RuntimeError):
            pass
        finally:
            hub.remove_listener(listener)

    # -- monitoring

    @app.get("/health")
    def health() -> JSONResponse:
        h = hub.health()
        return JSONResponse(h, status_code=200 if h["status"] == "ok" else 503)

    @app.get("/metrics", response_class=PlainTextResponse)
    def metrics(request: Request) -> PlainTextResponse:
        require(request)
        from prometheus_client import CONTENT_TYPE_LATEST

        return PlainTextResponse(hub.metrics_text(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/api/stats")
    def stats(request: Request) -> dict:
        require(request)
        return hub.stats()

    @app.get("/api/workers")
    def workers(request: Request) -> dict:
        require(request)
        slots = hub.pool.slots if hub.pool is not None else []
        return {"workers": [{"index": s.index, "pid": s.pid, "ready": s.ready, "pending": s.pending,
                             "restarts": s.restarts} for s in slots]}

    return app
