"""A COA simulator: serves ``contract/openapi.yaml`` on loopback.

It checks the caller's ``X-OIN`` against the OINs it trusts and the
``X-Transaction-Id`` against the message id, eliminates duplicates on the
transaction id, refuses a confirmation for a klantprofiel it never sent
(422, code ``transaction_unknown``), and keeps a ledger for reconciliation.
It can also act as COA sending out: ``POST /control/send`` posts a
klantprofiel to the knooppunt's ``POST /v1/berichten``.

Routes::

    POST /v1/berichten            receive a message (e.g. a confirmation)
    GET  /v1/afstemming?periode=  counts and checksums
    GET  /v1/status               health
    GET  /v1/openapi.json         the contract
    POST /control/send            {"message": canonical JSON (messageId optional)} -> {"messageId", "httpStatus", ...}
    GET  /control/handovers       klantprofielen sent, and which are confirmed
    plus the control routes of :mod:`adapters._digikoppeling.simserver`
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

import httpx
import orjson
import uvicorn
import yaml
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from adapters._digikoppeling.reliability import DuplicateStore
from adapters._digikoppeling.simserver import (
    HUGE_BYTES,
    FaultInjection,
    Ledger,
    LedgerEntry,
    SimulatorServer,
    now,
    sha256_hex,
)
from adapters._digikoppeling.wss import utcnow
from adapters.coa.adapter import OIN_HEADER, TRANSACTION_HEADER
from hub import pki
from hub.envelope import from_json
from hub.errors import ConfigurationError, HubError, InputError
from hub.identifiers import IdentifierError, parse_oin
from hub.ports import JSON

COA_OIN = "00000001003214345001"
"""The simulator's default OIN (as in config/demo-partners.yaml)."""
KNOOPPUNT_OIN = "00000004000000002000"
API_VERSION = "1.0.0"
CONFIRMATION_TYPES = ("klantprofiel-ontvangst", "ontvangstbevestiging")
CONTRACT = Path(__file__).parent / "contract" / "openapi.yaml"
_MAX_BODY = 5_000_000


@lru_cache(maxsize=1)
def openapi() -> dict[str, Any]:
    """The contract as a JSON-able document."""
    doc = yaml.safe_load(CONTRACT.read_text(encoding="utf-8"))
    if not isinstance(doc, dict):
        raise ConfigurationError("contract/openapi.yaml is geen object")
    return doc


@dataclass(frozen=True, slots=True)
class CoaSimulatorConfig:
    """Who the simulator is and whom it trusts.

    Args:
        oin: COA's OIN (sent as X-OIN on what it sends).
        trusted_oins: OINs that may call COA (the knooppunt's).
        hub_url: the knooppunt's ``/v1/berichten`` for klantprofielen (``/control/send``).
        hub_token: bearer token for the knooppunt.
        hub_ca: CA bundle that the knooppunt's HTTPS certificate chains to (unset: the system's).
        confirmation_types: types that must confirm a klantprofiel COA sent (conversationId).
    """

    oin: str = COA_OIN
    trusted_oins: tuple[str, ...] = (KNOOPPUNT_OIN,)
    hub_url: str | None = None
    hub_token: str | None = None
    hub_ca: Path | None = None
    confirmation_types: tuple[str, ...] = CONFIRMATION_TYPES
    duplicate_retention: timedelta = timedelta(days=3, minutes=5)


@dataclass(slots=True)
class _Handovers:
    confirmed: dict[str, str] = field(default_factory=dict)


def _problem(status: int, code: str, detail: str, **headers: str) -> Response:
    body = {"type": f"urn:knooppunt:coa:fout:{code}", "title": code, "status": status, "detail": detail, "code": code}
    return Response(
        orjson.dumps(body),
        status_code=status,
        media_type="application/problem+json",
        headers={"API-Version": API_VERSION, **headers},
    )


def _hostile(kind: str) -> Response:
    """A hostile or broken answer (fault injection); the request is not processed."""
    ack = orjson.dumps({"transactionId": str(uuid.uuid4()), "status": "ontvangen", "referentie": "COA-X"})
    headers = {"API-Version": API_VERSION}
    if kind == "truncated":
        return Response(ack[: len(ack) // 2], status_code=201, media_type="application/json", headers=headers)
    if kind == "huge":
        filler = b'{"x": "' + b"y" * HUGE_BYTES + b'"}'
        return Response(filler, status_code=201, media_type="application/json", headers=headers)
    if kind == "wrong-shape":
        return Response(b"[1, 2, 3]", status_code=201, media_type="application/json", headers=headers)
    if kind == "xxe":
        body = b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><x>&e;</x>'
        return Response(body, status_code=201, media_type="application/xml", headers=headers)
    return Response(b"<html><body>Onderhoud</body></html>", status_code=200, media_type="text/html", headers=headers)


def _json(body: Any, status: int = 200) -> Response:
    return Response(
        orjson.dumps(body), status_code=status, media_type="application/json", headers={"API-Version": API_VERSION}
    )


class CoaSimulator:
    """The state and handlers behind the app (``app.state.simulator``)."""

    def __init__(self, config: CoaSimulatorConfig) -> None:
        try:
            self.trusted = frozenset(parse_oin(o) for o in config.trusted_oins)
            parse_oin(config.oin)
        except IdentifierError as exc:
            raise ConfigurationError(f"COA-simulator: {exc}") from exc
        self.config = config
        self.control = FaultInjection()
        self.ledger = Ledger(duplicates=DuplicateStore(config.duplicate_retention))
        self.handovers = _Handovers()
        self._references = 0

    def _gate(self, request: Request) -> Response | None:
        """Outage, injected fault and caller check, in that order."""
        down = self.control.is_down()
        if down:
            return _problem(503, "unavailable", "COA is in onderhoud", **{"Retry-After": self.control.retry_after()})
        injected = self.control.take_fault()
        if injected is not None:
            return _problem(503 if injected.transient else 422, injected.code, injected.message)
        caller = request.headers.get(OIN_HEADER, "")
        if caller not in self.trusted:
            return _problem(403, "oin_unknown", f"OIN {caller or '(geen)'} is niet bekend bij COA")
        return None

    async def berichten(self, request: Request) -> Response:
        await self.control.delay()
        refused = self._gate(request)
        if refused is not None:
            return refused
        hostile = self.control.take_hostile()
        if hostile is not None:
            return _hostile(hostile)
        transaction = request.headers.get(TRANSACTION_HEADER, "")
        body = await request.body()
        if len(body) > _MAX_BODY:
            return _problem(413, "payload_too_large", f"meer dan {_MAX_BODY} bytes")
        try:
            envelope, _payload = from_json(orjson.loads(body))
        except orjson.JSONDecodeError:
            return _problem(400, "malformed_input", "geen geldige JSON")
        except HubError as exc:
            return _problem(400, exc.code, exc.detail)
        if transaction != str(envelope.message_id):
            return _problem(400, "transaction_id_mismatch", f"{TRANSACTION_HEADER} is niet de messageId")
        first = self.ledger.seen(transaction)
        if first is not None:
            return _json(self._ack(first, "duplicaat"), 200)
        if envelope.type in self.config.confirmation_types:
            conversation = str(envelope.conversation_id) if envelope.conversation_id else ""
            sent = self.ledger.sent.get(conversation)
            if sent is None or sent.message_type != "klantprofiel":
                return _problem(
                    422, "transaction_unknown", f"COA verstuurde geen klantprofiel {conversation or '(geen)'}"
                )
            self.handovers.confirmed[conversation] = transaction
        self._references += 1
        entry = LedgerEntry(
            message_id=transaction,
            message_type=envelope.type,
            created_at=envelope.created_at,
            at=now(),
            payload_sha256=sha256_hex(body),
            counterpart_oin=request.headers.get(OIN_HEADER),
            answer=f"COA-{self._references:06d}".encode(),
        )
        # a dropped message is acknowledged, then lost: neither booked nor remembered
        first = entry if self.control.take_drop() else self.ledger.accept(entry)
        return _json(self._ack(first, "ontvangen" if first is entry else "duplicaat"), 201 if first is entry else 200)

    @staticmethod
    def _ack(entry: LedgerEntry, status: str) -> dict[str, Any]:
        return {
            "transactionId": entry.message_id,
            "status": status,
            "referentie": entry.answer.decode(),
            "ontvangenOp": entry.at.isoformat(),
        }

    async def afstemming(self, request: Request) -> Response:
        await self.control.delay()
        refused = self._gate(request)
        if refused is not None:
            return refused
        period = request.query_params.get("periode", "")
        try:
            received, sent = self.ledger.summaries(period)
        except InputError as exc:
            return _problem(400, exc.code, exc.detail)
        return _json({"periode": period, "ontvangen": received.to_json(), "verzonden": sent.to_json()})

    async def status(self, request: Request) -> Response:
        if self.control.is_down():
            return _problem(503, "unavailable", "COA is in onderhoud")
        return _json({"status": "up"})

    async def openapi_json(self, request: Request) -> Response:
        return _json(openapi())

    async def send(self, request: Request) -> Response:
        """``POST /control/send``: COA posts a klantprofiel (or any message) to the knooppunt."""
        if not self.config.hub_url:
            return JSONResponse({"detail": "hub_url is niet geconfigureerd"}, status_code=409)
        try:
            doc = await request.json()
            message = dict(doc["message"])
            message.setdefault("messageId", str(uuid.uuid4()))
            message.setdefault("createdAt", utcnow().isoformat())
            envelope, _ = from_json(message)
        except (ValueError, KeyError, TypeError) as exc:
            return JSONResponse({"detail": f"verwacht {{'message': {{...}}}}: {exc}"}, status_code=400)
        except HubError as exc:
            return JSONResponse({"detail": exc.detail}, status_code=400)
        headers = {OIN_HEADER: self.config.oin, TRANSACTION_HEADER: str(envelope.message_id)}
        if self.config.hub_token:
            headers["Authorization"] = f"Bearer {self.config.hub_token}"
        result: dict[str, Any] = {"messageId": str(envelope.message_id)}
        try:
            async with httpx.AsyncClient(verify=pki.trust(self.config.hub_ca)) as client:
                response = await client.post(self.config.hub_url, json=message, headers=headers, timeout=30)
        except httpx.HTTPError as exc:
            result.update(httpStatus=None, error=type(exc).__name__)
            return JSONResponse(result, status_code=502)
        result["httpStatus"] = response.status_code
        if response.status_code >= 300:
            result["answer"] = response.text[:2000]
            return JSONResponse(result, status_code=502 if response.status_code >= 500 else 422)
        self.ledger.record_sent(
            LedgerEntry(
                message_id=str(envelope.message_id),
                message_type=envelope.type,
                created_at=envelope.created_at,
                at=now(),
                payload_sha256=sha256_hex(orjson.dumps(message)),
                counterpart_oin=None,
            )
        )
        return JSONResponse(result)

    async def handover_status(self, request: Request) -> Response:
        with self.ledger.lock:
            sent = [e.message_id for e in self.ledger.sent.values() if e.message_type == "klantprofiel"]
        confirmed = {k: v for k, v in self.handovers.confirmed.items() if k in sent}
        return JSONResponse(
            {
                "sent": sent,
                "confirmed": confirmed,
                "unconfirmed": [m for m in sent if m not in confirmed],
            }
        )

    async def control_get(self, request: Request) -> Response:
        return JSONResponse(self.control.state())

    async def control_post(self, request: Request) -> Response:
        try:
            self.control.configure(await request.json())
        except (ValueError, InputError) as exc:
            return JSONResponse({"detail": str(exc)}, status_code=400)
        return JSONResponse(self.control.state())

    async def received(self, request: Request) -> Response:
        return JSONResponse(self.ledger.listing())

    async def forget(self, request: Request) -> Response:
        found = self.ledger.forget(str(request.path_params["message_id"]))
        return Response(status_code=204 if found else 404)

    async def reconcile(self, request: Request) -> Response:
        try:
            received, sent = self.ledger.summaries(request.query_params.get("period", ""))
        except InputError as exc:
            return JSONResponse({"detail": exc.detail}, status_code=400)
        return JSONResponse({"received": received.to_json(), "sent": sent.to_json()})


def create_app(config: CoaSimulatorConfig | None = None, server: SimulatorServer | None = None) -> Starlette:
    """The simulator as an ASGI app; ``app.state.simulator`` holds its state."""
    simulator = CoaSimulator(config or CoaSimulatorConfig())
    routes = [
        Route("/v1/berichten", simulator.berichten, methods=["POST"]),
        Route("/v1/afstemming", simulator.afstemming, methods=["GET"]),
        Route("/v1/status", simulator.status, methods=["GET"]),
        Route("/v1/openapi.json", simulator.openapi_json, methods=["GET"]),
        Route("/control", simulator.control_get, methods=["GET"]),
        Route("/control", simulator.control_post, methods=["POST"]),
        Route("/control/send", simulator.send, methods=["POST"]),
        Route("/control/handovers", simulator.handover_status, methods=["GET"]),
        Route("/control/received", simulator.received, methods=["GET"]),
        Route("/control/received/{message_id}", simulator.forget, methods=["DELETE"]),
        Route("/control/reconcile", simulator.reconcile, methods=["GET"]),
    ]
    app = Starlette(routes=routes)
    app.state.simulator = simulator
    if server is not None:
        simulator.control.refuse = server.refuse_for
    return app


def adapter_config(base_url: str, **extra: JSON) -> dict[str, JSON]:
    """The knooppunt's CoaAdapter configuration for a simulator at ``base_url`` (the demo's wiring)."""
    config: dict[str, JSON] = {"base_url": f"{base_url.rstrip('/')}/v1", "oin": KNOOPPUNT_OIN, "partner_oin": COA_OIN}
    config.update(extra)
    return config


def server(
    host: str = "127.0.0.1",
    port: int = 8202,
    *,
    config: CoaSimulatorConfig | None = None,
    hub_url: str | None = None,
    hub_token: str | None = None,
    hub_ca: Path | None = None,
) -> uvicorn.Server:
    """A uvicorn server for this simulator, to run beside the hub in one event loop."""
    if host not in ("127.0.0.1", "::1", "localhost"):
        raise ConfigurationError("de simulator luistert alleen op loopback")
    app = create_app(config or CoaSimulatorConfig(hub_url=hub_url, hub_token=hub_token, hub_ca=hub_ca))
    return uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="off"))


def serve(
    host: str = "127.0.0.1",
    port: int = 8202,
    *,
    config: CoaSimulatorConfig | None = None,
    hub_url: str | None = None,
    hub_token: str | None = None,
    trusted_oins: Sequence[str] = (KNOOPPUNT_OIN,),
    confirmation_types: Collection[str] = CONFIRMATION_TYPES,
    block: bool = True,
) -> SimulatorServer:
    """Run the simulator on ``host:port`` (loopback only); ``block=False`` returns the running server."""
    if host not in ("127.0.0.1", "::1", "localhost"):
        raise ConfigurationError("de simulator luistert alleen op loopback")
    config = config or CoaSimulatorConfig(
        trusted_oins=tuple(trusted_oins),
        hub_url=hub_url,
        hub_token=hub_token,
        confirmation_types=tuple(confirmation_types),
    )
    server = SimulatorServer(None, host, port)
    server.app = create_app(config, server)
    server.start()
    if block:
        try:
            server.wait()
        finally:
            server.stop()
    return server


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m adapters.coa.simulator [--port 8202] [--hub-url URL] [--hub-token T]``."""
    import argparse

    parser = argparse.ArgumentParser(description="COA-simulator (Digikoppeling REST) op loopback")
    parser.add_argument("--port", type=int, default=8202)
    parser.add_argument("--hub-url", default=None, help="POST /v1/berichten van het knooppunt voor /control/send")
    parser.add_argument("--hub-token", default=None)
    args = parser.parse_args(argv)
    serve(port=args.port, hub_url=args.hub_url, hub_token=args.hub_token)


if __name__ == "__main__":
    main()
