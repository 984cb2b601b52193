"""The labelling page and its API (FastAPI, as the service), guarded by a token as ``serve`` is.

Every endpoint needs the token: ``Authorization: Bearer <token>``, ``?token=<token>``, or the
``ta_token`` cookie that ``GET /?token=...`` sets for the page. The token is ``--token``, else
``$THERMAL_ACTION_TOKEN``, else the one kept in ``OUT/token`` from an earlier start, else new.

- ``GET /api/session``: class names, recordings, the annotator, the colour map.
- ``GET /api/recordings/{id}``: one recording's labels (:meth:`LabelSession.view`).
- ``GET /api/recordings/{id}/pixels``: its keyframe images (uint8, base64).
- ``POST /api/edits``: one edit ``{"op", "recording", "args", "id", "annotator"}``; the answer
  (the recording's new view) comes only after the edit is on disk.
- ``GET /api/queue?n=20&strategy=queue``: what to label next.
"""

from __future__ import annotations

import base64
import os
import secrets
import socket
from importlib import resources
from pathlib import Path
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool

from thermal_action.label.model import LabelError
from thermal_action.label.session import LabelSession
from thermal_action.serve.app import MAX_FORM_BODY, TokenGuard
from thermal_action.serve.service import TOKEN_ENV, write_token

TOKEN_FILE = "token"
#: Strategies the queue offers (``thermal_action.active.rank_keyframes``).
STRATEGIES = ("queue", "random", "rarest")


def static_dir() -> Any:
    return resources.files("thermal_action.label") / "static"


def resolve_token(given: str | None, out_dir: Path) -> str:
    """``given``, else ``$THERMAL_ACTION_TOKEN``, else the token kept in ``out_dir``, else a new one."""
    if given:
        return given
    if os.environ.get(TOKEN_ENV):
        return os.environ[TOKEN_ENV]
    try:
        kept = (out_dir / TOKEN_FILE).read_text().strip()
    except FileNotFoundError:
        kept = ""
    return kept or secrets.token_urlsafe(18)


def create_label_app(session: LabelSession, token: str) -> FastAPI:
    """The labelling page for ``session``, guarded by ``token``."""
    from thermal_action.visualize import thermal_lut

    app = FastAPI(title="thermal-action label", docs_url=None, redoc_url=None, openapi_url=None)

    guard = TokenGuard(token)
    require = guard.require

    def known(sensor_id: str) -> None:
        if sensor_id not in session.recordings:
            raise HTTPException(404, f"no recording {sensor_id!r}")

    @app.get("/", response_class=HTMLResponse)
    def index(request: Request) -> Response:
        return guard.page(request, static_dir() / "label.html", "label")

    app.mount("/static", StaticFiles(directory=str(static_dir())), name="static")

    @app.get("/api/session")
    def info(request: Request) -> dict:
        require(request)
        return {"class_names": session.class_names, "recordings": session.summary(), "annotator": session.annotator,
                "every": session.every, "checkpoint": str(session.checkpoint) if session.checkpoint else None,
                "out_dir": str(session.out_dir), "export": session.last_export, "lut": thermal_lut().tolist()}

    @app.get("/api/recordings/{sensor_id}")
    def recording(sensor_id: str, request: Request) -> dict:
        require(request)
        known(sensor_id)
        return session.view(sensor_id)

    @app.get("/api/recordings/{sensor_id}/pixels")
    def pixels(sensor_id: str, request: Request) -> dict:
        require(request)
        known(sensor_id)
        px = session.keyframe_pixels(sensor_id)
        return {**px, "pixels": base64.b64encode(px["pixels"]).decode("ascii")}

    @app.post("/api/edits")
    async def edit(request: Request) -> JSONResponse:
        require(request)
        raw = await request.body()
        if len(raw) > MAX_FORM_BODY:
            raise HTTPException(413, f"an edit may carry {MAX_FORM_BODY} bytes")
        import json

        try:
            data = json.loads(raw)
        except ValueError:
            raise HTTPException(400, "the body must be a JSON edit {\"op\", \"recording\", \"args\"}") from None
        if not isinstance(data, dict):
            raise HTTPException(400, "the body must be a JSON object")
        try:
            view = await run_in_threadpool(session.submit, data)  # returns once the edit is fsynced and exported
        except LabelError as e:
            raise HTTPException(400, str(e)) from None
        except KeyError as e:
            raise HTTPException(404, str(e.args[0])) from None
        return JSONResponse({"saved": True, "export": session.last_export, "view": view})

    @app.get("/api/queue")
    def queue(request: Request, n: int = 20, strategy: str = "queue") -> dict:
        require(request)
        if strategy not in STRATEGIES:
            raise HTTPException(400, f"strategy must be one of {', '.join(STRATEGIES)}")
        return session.queue(max(1, min(n, 500)), strategy)

    return app


def run_label(session: LabelSession, host: str = "127.0.0.1", port: int = 8766, token: str | None = None) -> None:
    """``thermal-action label``: serves the page until interrupted (Ctrl-C or SIGTERM); every
    acknowledged edit is already on disk when it stops."""
    import uvicorn

    token = resolve_token(token, session.out_dir)
    write_token(session.out_dir / TOKEN_FILE, token)
    app = create_label_app(session, token)
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    shown = f"[{shown}]" if ":" in shown else shown
    print(f"labelling on http://{shown}:{sock.getsockname()[1]}/?token={token}", flush=True)
    print(f"(labels in {session.out_dir}: raw_annotations/, annotations/, rooms.json; journal.jsonl)", flush=True)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:
        pass
    print("stopped", flush=True)
