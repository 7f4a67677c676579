"""The hub's hot routes, answered past the general middleware stack.

Sending a message (and the synchronous lookups) is what partners do all day. A
request to them went through seven layers before it reached its endpoint
(server errors, FastAPI's telemetry and body-limit wrappers, the headers,
exception handling, the exit stack, the router) and back through three wrappers
of ``send`` for each response message. For these few routes, :class:`HotRoutes`
keeps what those layers do for them and drops the rest:

- the API-Version, security and correlation-id headers (:class:`HeadersMiddleware`);
- the app's exception handlers: a ``HubError`` becomes its problem+json, any
  other exception the app's 500 problem and is then raised on to the server,
  as Starlette's ServerErrorMiddleware does.

Every other request takes the normal stack. With CORS configured, the hot routes
take it too (preflight and CORS headers are that middleware's work).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from hub.api.middleware import HeadersMiddleware

Endpoint = Callable[[Request], Awaitable[Response]]
Handler = Callable[[Request, Exception], Awaitable[Response]]


def _route_path(scope: Scope) -> str:
    """The path the router matches: without the root path a proxy mounted the hub under."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    if root and path.startswith(root + "/"):
        return path[len(root) :]
    return path


class HotRoutes:
    """ASGI: (method, path) of a hot route -> its endpoint; everything else -> ``stack``."""

    def __init__(self, stack: ASGIApp, routes: Mapping[tuple[str, str], Endpoint], handlers: Mapping[Any, Any]) -> None:
        self.stack = stack
        self.routes = dict(routes)
        # the app's handlers by exception class; Exception (or 500) is the server-error handler
        self.handlers: dict[type[BaseException], Handler] = {
            k: v for k, v in handlers.items() if isinstance(k, type) and k is not Exception
        }
        self.server_error: Handler | None = handlers.get(Exception) or handlers.get(500)
        self.hot = HeadersMiddleware(self._answer)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        endpoint = self.routes.get((scope["method"], _route_path(scope))) if scope["type"] == "http" else None
        if endpoint is None:
            await self.stack(scope, receive, send)
            return
        scope["endpoint"] = endpoint  # as Starlette's router does
        await self.hot(scope, receive, send)

    async def _answer(self, scope: Scope, receive: Receive, send: Send) -> None:
        endpoint: Endpoint = scope["endpoint"]
        request = Request(scope, receive, send)
        try:
            response = await endpoint(request)
        except Exception as exc:
            handler = self._handler(exc)
            if handler is not None:
                response = await handler(request, exc)
            elif self.server_error is not None:
                await (await self.server_error(request, exc))(scope, receive, send)
                raise  # as ServerErrorMiddleware: answered, and raised on so the server logs it
            else:
                raise
        await response(scope, receive, send)

    def _handler(self, exc: Exception) -> Handler | None:
        for cls in type(exc).__mro__:
            handler = self.handlers.get(cls)
            if handler is not None:
                return handler
        return None
