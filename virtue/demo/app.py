"""The HTTP side of the demo: the page, the eval images, uploads and answers. Bad input (a UserError from
the engine) is HTTP 400 with {"error": one line}, which the page shows; anything else is a 500 with a one-line
message, its traceback on the server's stderr only."""

from __future__ import annotations

import json
import logging
import mimetypes
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from ..errors import UserError
from .engine import Engine

STATIC = Path(__file__).parent / "static"
log = logging.getLogger("virtue.demo")


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused as soon as it passes `limit` bytes (declared or received)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise UserError(f"request: {declared} bytes, more than the {limit} allowed")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise UserError(f"request: more than the {limit} bytes allowed")
        chunks.append(chunk)
    return b"".join(chunks)


def create_app(engine: Engine) -> FastAPI:
    app = FastAPI(title="VIRTUE demo", docs_url=None, redoc_url=None, openapi_url=None)

    @app.exception_handler(UserError)
    async def bad_input(request: Request, e: UserError) -> JSONResponse:
        return JSONResponse({"error": str(e)}, status_code=400)

    @app.exception_handler(Exception)
    async def failure(request: Request, e: Exception) -> JSONResponse:
        log.error("%s %s failed", request.method, request.url.path, exc_info=e)
        first = (str(e).splitlines() or [""])[0][:200]
        return JSONResponse({"error": f"internal error: {type(e).__name__}: {first}"}, status_code=500)

    @app.get("/")
    def index() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    @app.get("/favicon.ico")
    def favicon() -> Response:
        return Response(status_code=204)

    @app.get("/static/{name}")
    def static(name: str) -> FileResponse:
        path = STATIC / name
        if "/" in name or name.startswith(".") or not path.is_file():
            raise UserError(f"static/{name[:40]}: no such file")
        return FileResponse(path, media_type=mimetypes.guess_type(name)[0] or "application/octet-stream")

    @app.get("/api/info")
    def info() -> dict:
        g = engine.gallery
        return {
            "variants": [{"label": m.label, "variant": m.variant} for m in engine.models],
            "gallery": {"captions": len(g.captions), "images": len(g.images), "source": g.source},
            "max_bytes": engine.limits.max_bytes,
            "max_pixels": engine.limits.max_pixels,
        }

    @app.get("/api/images")
    def images() -> list[dict]:
        return engine.images()

    @app.get("/api/image/{image_id}")
    def image(image_id: str) -> FileResponse:
        path, _, _ = engine.image_file(image_id)
        return FileResponse(path, media_type=mimetypes.guess_type(path.name)[0] or "application/octet-stream")

    @app.post("/api/upload")
    async def upload(request: Request) -> dict:
        data = await read_body(request, engine.limits.max_bytes)
        return await run_in_threadpool(engine.upload, data)

    @app.post("/api/query")
    async def query(request: Request) -> dict:
        body = await read_body(request, engine.limits.max_bytes)
        try:
            spec = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            raise UserError("request: not JSON") from None
        if not isinstance(spec, dict) or not isinstance(spec.get("image"), str):
            raise UserError('request: expected {"image": id, "prompt": {...}}')
        return await run_in_threadpool(engine.answer, spec["image"], spec.get("prompt"))

    return app
