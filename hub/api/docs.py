"""GET /v1/docs: the API documentation (Swagger UI), served by the hub itself.

FastAPI's page loads Swagger UI from a CDN (cdn.jsdelivr.net). A hub of public bodies must
not run a third party's script on its own origin, and on a machine without internet (a
test network, an air-gapped deployment, `make run` on this project's CI machine) the page
stayed blank. The assets are Swagger UI 5 (it renders OpenAPI 3.1, which FastAPI writes) as
packaged by ``fastapi-offline``; the hub serves them under ``/v1/docs/assets/`` and the page's
Content-Security-Policy names no other origin (hub/api/middleware.py).
"""

from __future__ import annotations

import importlib.resources
from pathlib import Path

from fastapi import APIRouter, FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from starlette.staticfiles import StaticFiles
from starlette.types import Message, Receive, Scope, Send

DOCS = "/v1/docs"
ASSETS = f"{DOCS}/assets"
OPENAPI = "/v1/openapi.json"

router = APIRouter(include_in_schema=False)


def assets_dir() -> Path:
    """Swagger UI's files (swagger-ui-bundle.js, swagger-ui.css, favicon.png)."""
    return Path(str(importlib.resources.files("fastapi_offline") / "static"))


class _Assets(StaticFiles):
    """The assets, cacheable for a day (the middleware would mark them no-store like the API)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def cached(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (b"cache-control", b"public, max-age=86400")]
            await send(message)

        await super().__call__(scope, receive, cached)


def mount(app: FastAPI) -> None:
    """The page and its assets (before the portal's catch-all route)."""
    app.mount(ASSETS, _Assets(directory=assets_dir()), name="docs-assets")
    app.include_router(router)


@router.get(DOCS, response_class=HTMLResponse)
async def swagger_ui(request: Request) -> HTMLResponse:
    root = request.scope.get("root_path", "")
    return get_swagger_ui_html(
        openapi_url=f"{root}{OPENAPI}",
        title="Knooppunt - API-documentatie",
        swagger_js_url=f"{root}{ASSETS}/swagger-ui-bundle.js",
        swagger_css_url=f"{root}{ASSETS}/swagger-ui.css",
        swagger_favicon_url=f"{root}{ASSETS}/favicon.png",
        oauth2_redirect_url=None,
    )
