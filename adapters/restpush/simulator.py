"""A partner that receives REST pushes: records what arrived, deduplicates on message id,
and can be told to be slow, down or refusing (``POST /_control``).

    GET  /health               200 while up
    POST /berichten            receive one message (JSON or XML)
    GET  /berichten            what arrived: ids, counts, duplicates
    POST /_control             {"mode": "up"|"down"|"reject", "delayMs": 0}
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route


@dataclass
class Received:
    """What the simulated partner got."""

    messages: dict[str, dict[str, Any]] = field(default_factory=dict)
    order: list[str] = field(default_factory=list)
    duplicates: int = 0
    mode: str = "up"
    delay_ms: int = 0


def create_app(name: str = "partner") -> Starlette:
    state = Received()

    async def health(_: Request) -> Response:
        if state.mode == "down":
            return JSONResponse({"status": "down"}, status_code=503)
        return JSONResponse({"status": "up", "partner": name})

    async def receive(request: Request) -> Response:
        if state.delay_ms:
            await asyncio.sleep(state.delay_ms / 1000)
        if state.mode == "down":
            return JSONResponse({"error": "tijdelijk niet beschikbaar"}, status_code=503)
        if state.mode == "reject":
            return JSONResponse({"error": "geweigerd"}, status_code=422)
        body = await request.body()
        message_id = request.headers.get("X-Message-Id", "")
        if not message_id:
            return JSONResponse({"error": "X-Message-Id ontbreekt"}, status_code=400)
        if message_id in state.messages:
            state.duplicates += 1
            state.messages[message_id]["times"] += 1
            return JSONResponse({"status": "duplicate"}, status_code=200, headers={"X-Reference": message_id})
        content_type = request.headers.get("content-type", "")
        doc = orjson.loads(body) if "json" in content_type else {"xml": body.decode("utf-8", "replace")}
        state.messages[message_id] = {"times": 1, "contentType": content_type, "message": doc}
        state.order.append(message_id)
        return JSONResponse({"status": "received"}, status_code=201, headers={"X-Reference": message_id})

    async def listing(_: Request) -> Response:
        return JSONResponse(
            {
                "partner": name,
                "count": len(state.order),
                "duplicates": state.duplicates,
                "messages": [{"messageId": m, **state.messages[m]} for m in state.order],
            }
        )

    async def control(request: Request) -> Response:
        doc = await request.json()
        state.mode = str(doc.get("mode", state.mode))
        state.delay_ms = int(doc.get("delayMs", state.delay_ms))
        return JSONResponse({"mode": state.mode, "delayMs": state.delay_ms})

    app = Starlette(
        routes=[
            Route("/health", health),
            Route("/berichten", receive, methods=["POST"]),
            Route("/berichten", listing, methods=["GET"]),
            Route("/_control", control, methods=["POST"]),
        ]
    )
    app.state.received = state
    return app


def server(name: str, host: str, port: int) -> uvicorn.Server:
    """A uvicorn server for the simulator, to run beside the hub in one event loop."""
    return uvicorn.Server(uvicorn.Config(create_app(name), host=host, port=port, log_level="warning", lifespan="off"))


def serve(name: str = "partner", host: str = "127.0.0.1", port: int = 9001) -> None:
    asyncio.run(server(name, host, port).serve())
