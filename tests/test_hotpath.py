"""The hot routes keep what the middleware stack did for them: headers, the app's exception
handlers, and a crash answered with the 500 problem and raised on to the server."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from hub.api.hotpath import HotRoutes
from hub.errors import HubError, NotFound


async def _stack(scope: Any, receive: Any, send: Any) -> None:
    await Response(b"stack", status_code=299)(scope, receive, send)


async def _hub_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HubError)
    return JSONResponse({"code": exc.code}, status_code=exc.status)


async def _server_error(request: Request, exc: Exception) -> Response:
    return JSONResponse({"code": "internal_error"}, status_code=500)


async def _crash(request: Request) -> Response:
    raise RuntimeError("stuk")


async def _missing(request: Request) -> Response:
    raise NotFound("bestaat niet")


async def _ok(request: Request) -> Response:
    return Response(b"ok", status_code=202)


def _call(
    app: HotRoutes, method: str, path: str, root_path: str = ""
) -> tuple[list[dict[str, Any]], BaseException | None]:
    sent: list[dict[str, Any]] = []
    scope = {
        "type": "http",
        "method": method,
        "path": root_path + path,
        "root_path": root_path,
        "headers": [],
        "query_string": b"",
    }

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    try:
        asyncio.run(app(scope, receive, send))
    except Exception as exc:  # what the server would see
        return sent, exc
    return sent, None


@pytest.fixture
def app() -> HotRoutes:
    routes = {("POST", "/ok"): _ok, ("POST", "/crash"): _crash, ("POST", "/missing"): _missing}
    return HotRoutes(_stack, routes, {HubError: _hub_error, Exception: _server_error})


def _status_and_headers(sent: list[dict[str, Any]]) -> tuple[int, dict[bytes, bytes]]:
    start = sent[0]
    return start["status"], dict(start["headers"])


def test_a_hot_route_is_answered_with_the_hub_headers(app: HotRoutes) -> None:
    sent, raised = _call(app, "POST", "/ok")
    status, headers = _status_and_headers(sent)
    assert (status, raised) == (202, None)
    assert headers[b"api-version"]
    assert headers[b"x-correlation-id"]
    assert headers[b"cache-control"] == b"no-store"


def test_other_methods_and_paths_take_the_stack(app: HotRoutes) -> None:
    assert _status_and_headers(_call(app, "GET", "/ok")[0])[0] == 299
    assert _status_and_headers(_call(app, "POST", "/elders")[0])[0] == 299


def test_a_hub_error_gets_the_apps_handler(app: HotRoutes) -> None:
    sent, raised = _call(app, "POST", "/missing")
    status, headers = _status_and_headers(sent)
    assert (status, raised) == (404, None)
    assert sent[1]["body"] == b'{"code":"not_found"}'
    assert headers[b"api-version"]


def test_a_crash_is_answered_500_and_raised_on_to_the_server(app: HotRoutes) -> None:
    sent, raised = _call(app, "POST", "/crash")
    status, headers = _status_and_headers(sent)
    assert status == 500
    assert headers[b"api-version"]
    assert isinstance(raised, RuntimeError)


def test_a_hot_route_under_a_root_path_is_still_hot(app: HotRoutes) -> None:
    sent, _ = _call(app, "POST", "/ok", root_path="/knooppunt")
    assert _status_and_headers(sent)[0] == 202
