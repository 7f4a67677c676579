"""A DUO simulator: serves ``contract/duo-inburgering.wsdl`` (DuoPort) on loopback.

It verifies every request as DUO would (signature, certificate from the test
CA, OIN of the gemeente/knooppunt, Timestamp, addressing), eliminates
duplicates on wsa:MessageID, refuses a PIP change for an unknown PIP, answers
with a signed Ontvangstbevestiging, and keeps a ledger for reconciliation.
It can also act as DUO sending in: ``POST /control/send`` signs a Bericht
(e.g. an inburgeringsplicht) and posts it to the knooppunt's SOAP endpoint.

Routes::

    POST /wus/duo                 the DuoPort (Pip, PipWijziging, Handhaving, Afstemming)
    GET  /wus/duo?wsdl            the WSDL; /wus/duo-wus.xsd its schema
    POST /control/send            {"type", "payloadXml", "subject": {"type","id"}, "purpose",
                                   "version"?, "messageId"?, "replaces"?, "conversationId"?}
                                  ("replaces" defaults to the payload's vervangtBericht)
                                   -> {"messageId", "httpStatus", "status"? , "fault"?}
    plus the control routes of :mod:`adapters._digikoppeling.simserver`

Start it with :func:`serve` (generates a test PKI under ``var/testpki`` when
no key is given) or build the app with :func:`create_app`.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import httpx
import uvicorn
from lxml import etree
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from adapters._digikoppeling import soap
from adapters._digikoppeling.faults import CLIENT, SERVER, SOAP11_NS
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
from adapters._digikoppeling.testpki import ensure_test_pki
from adapters._digikoppeling.wss import SigningIdentity, WssVerifier, load_certificates, utcnow
from adapters.duo.link import WusLink, payload_replaces
from adapters.duo.messages import (
    AFSTEMMING,
    CONTRACT_DIR,
    Bericht,
    Ontvangstbevestiging,
    action_for,
    afstemming_antwoord,
    read_afstemming_vraag,
    type_of_action,
)
from hub import pki, xmlsafe
from hub.envelope import Envelope
from hub.errors import ConfigurationError, HubError, InputError, PayloadTooLarge
from hub.identifiers import IdentifierError, parse_subject
from hub.ports import JSON

DUO_OIN = "00000001003214345000"
"""The simulator's default OIN (fictitious)."""
KNOOPPUNT_OIN = "00000004000000002000"
"""The knooppunt's default OIN in the demo (fictitious)."""
ACCEPTED_TYPES = ("pip", "pip-wijziging", "handhaving")
_MAX_BODY = 5_000_000
_MAX_KEPT = 10_000


@dataclass(frozen=True, slots=True)
class DuoSimulatorConfig:
    """Who the simulator is and whom it trusts.

    Args:
        key_file, cert_file: DUO's signing key and certificate (OIN in subject serialNumber).
        ca_file: trust anchors for the senders' certificates.
        trusted_oins: OINs allowed to send to DUO (the knooppunt's).
        hub_url: the knooppunt's SOAP endpoint for what DUO sends in (``/control/send``).
        hub_oin: the knooppunt's OIN (wsa:To of what DUO sends).
        hub_ca: CA bundle that the knooppunt's HTTPS certificate chains to (unset: the system's).
        duplicate_retention: how long message ids are remembered.
        timestamp_ttl: lifetime of the Timestamps DUO writes.
        clock_skew: tolerance on the senders' Timestamps.
    """

    key_file: Path
    cert_file: Path
    ca_file: Path
    trusted_oins: tuple[str, ...]
    hub_url: str | None = None
    hub_oin: str | None = None
    hub_ca: Path | None = None
    accepted_types: tuple[str, ...] = ACCEPTED_TYPES
    duplicate_retention: timedelta = timedelta(days=3, minutes=5)
    timestamp_ttl: timedelta = timedelta(minutes=5)
    clock_skew: timedelta = timedelta(seconds=60)


class DuoSimulator:
    """The state and handlers behind the app (kept reachable as ``app.state.simulator``)."""

    def __init__(self, config: DuoSimulatorConfig) -> None:
        identity = SigningIdentity.from_pem_files(config.key_file, config.cert_file)
        verifier = WssVerifier(load_certificates(config.ca_file), config.trusted_oins, clock_skew=config.clock_skew)
        self.config = config
        self.link = WusLink(identity, verifier, own_oin=identity.oin, timestamp_ttl=config.timestamp_ttl)
        self.control = FaultInjection()
        self.ledger = Ledger(duplicates=DuplicateStore(config.duplicate_retention))
        # what arrived, for demos and tests to read back (bounded: oldest forgotten first)
        self.berichten: dict[str, dict[str, str | None]] = {}
        self._references = 0

    def _keep(
        self, message_id: str, message_type: str, payload: etree._Element, replaces: str | None, signer: str
    ) -> None:
        self.berichten[message_id] = {
            "messageId": message_id,
            "type": message_type,
            "replaces": replaces,
            "signerOin": signer,
            "payloadXml": etree.tostring(payload, encoding="unicode"),
        }
        while len(self.berichten) > _MAX_KEPT:
            del self.berichten[next(iter(self.berichten))]

    def _fault(self, error: HubError) -> Response:
        status = 503 if error.status == 503 else 500
        return Response(soap.fault_for(error), status_code=status, media_type=soap.CONTENT_TYPE)

    async def wus(self, request: Request) -> Response:
        """The DuoPort endpoint."""
        if "wsdl" in request.query_params:
            return Response((CONTRACT_DIR / "duo-inburgering.wsdl").read_bytes(), media_type="text/xml")
        down = self.control.is_down()
        if down:
            return Response("DUO is in onderhoud", status_code=503, headers={"Retry-After": self.control.retry_after()})
        await self.control.delay()
        injected = self.control.take_fault()
        if injected is not None:
            body = soap.build_fault(
                SERVER if injected.transient else CLIENT,
                injected.message,
                detail_code=injected.code,
                transient=injected.transient,
            )
            return Response(body, status_code=500, media_type=soap.CONTENT_TYPE)
        hostile = self.control.take_hostile()
        if hostile is not None:
            return self._hostile(hostile)
        try:
            raw = await _capped_body(request, _MAX_BODY)
        except ClientDisconnect:
            return Response(status_code=400)  # the sender gave up (e.g. its timeout); nobody reads this
        try:
            received = self.link.receive(raw)
            if type_of_action(received.addressing.action) == AFSTEMMING:
                period = read_afstemming_vraag(received.body)
                answer = afstemming_antwoord(period, *self.ledger.summaries(period))
                return self._xml(self.link.answer(received.addressing, received.sender.oin, answer))
            key = str(received.addressing.message_id)
            first = self.ledger.seen(key)
            if first is None:
                inbound = await self.link.read_bericht(
                    received,
                    accepted_types=self.config.accepted_types,
                    is_known=self.ledger.is_known,
                    sender_partner="knooppunt",
                )
                self._references += 1
                entry = LedgerEntry(
                    message_id=key,
                    message_type=inbound.bericht.message_type,
                    created_at=inbound.bericht.created_at,
                    at=now(),
                    payload_sha256=sha256_hex(etree.tostring(inbound.bericht.payload, method="c14n")),
                    counterpart_oin=received.sender.oin,
                    replaces=str(inbound.replaces) if inbound.replaces else None,
                    answer=f"DUO-{self._references:06d}".encode(),
                )
                # a dropped message is acknowledged, then lost: neither booked nor remembered
                dropped = self.control.take_drop()
                first = entry if dropped else self.ledger.accept(entry)
                status = "ONTVANGEN" if first is entry else "DUPLICAAT"
                if first is entry and not dropped:
                    self._keep(key, entry.message_type, inbound.bericht.payload, entry.replaces, received.sender.oin)
            else:
                status = "DUPLICAAT"
        except HubError as exc:
            return self._fault(exc)
        ack = Ontvangstbevestiging(
            message_id=received.addressing.message_id,
            status=status,
            received_at=first.at,
            reference=first.answer.decode(),
        )
        return self._xml(self.link.answer(received.addressing, received.sender.oin, ack.to_xml()))

    def _hostile(self, kind: str) -> Response:
        """A hostile or broken answer (fault injection); the request is not processed."""
        ack = Ontvangstbevestiging(message_id=uuid.uuid4(), status="ONTVANGEN", received_at=now(), reference="DUO-X")
        plain = soap.build_envelope(
            soap.Addressing(action="urn:x", message_id=uuid.uuid4(), to=soap.ANONYMOUS), ack.to_xml()
        )
        text = etree.tostring(plain)
        bodies = {
            "xxe": b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
            + text.replace(b"DUO-X", b"&e;"),
            "truncated": text[: len(text) // 2],
            "wrong-envelope": text.replace(SOAP11_NS.encode(), b"http://www.w3.org/2003/05/soap-envelope"),
            "huge": b"<x>" + b"<y>DUO</y>" * (HUGE_BYTES // 10) + b"</x>",
            "unsigned": text,
        }
        if kind in bodies:
            return Response(bodies[kind], media_type=soap.CONTENT_TYPE)
        if kind == "wrong-shape":
            return Response(b"<html><body>Onderhoud</body></html>", media_type="text/xml")
        return Response(b"<html><body>Onderhoud</body></html>", media_type="text/html")

    @staticmethod
    def _xml(body: bytes) -> Response:
        return Response(body, media_type=soap.CONTENT_TYPE)

    async def send(self, request: Request) -> Response:
        """``POST /control/send``: DUO sends a signed Bericht to the knooppunt."""
        try:
            doc = await request.json()
            bericht, message_id = self._bericht(doc)
        except (ValueError, HubError) as exc:
            return JSONResponse({"detail": str(exc)}, status_code=400)
        if not self.config.hub_url or not self.config.hub_oin:
            return JSONResponse({"detail": "hub_url en hub_oin zijn niet geconfigureerd"}, status_code=409)
        action = action_for(bericht.message_type)
        body = self.link.request(
            action=action,
            message_id=message_id,
            to_url=self.config.hub_url,
            to_oin=self.config.hub_oin,
            body=bericht.to_xml(),
        )
        result: dict[str, object] = {"messageId": str(message_id)}
        try:
            async with httpx.AsyncClient(verify=pki.trust(self.config.hub_ca)) as client:
                response = await client.post(
                    self.config.hub_url,
                    content=body,
                    headers={"Content-Type": soap.CONTENT_TYPE, "SOAPAction": f'"{action}"'},
                    timeout=30,
                )
        except httpx.HTTPError as exc:
            result.update(httpStatus=None, error=type(exc).__name__)
            return JSONResponse(result, status_code=502)
        result["httpStatus"] = response.status_code
        try:
            envelope = xmlsafe.parse(response.content, max_bytes=_MAX_BODY)
            fault = soap.read_fault(envelope)
            if fault is not None:
                result["fault"] = {"code": fault.code[1], "detailCode": fault.detail_code, "message": fault.string}
                return JSONResponse(result, status_code=502 if fault.transient else 422)
            received = self.link.receive(response.content)
            ack = Ontvangstbevestiging.from_xml(received.body)
            if received.addressing.relates_to != message_id:
                raise InputError("het antwoord hoort niet bij dit bericht")
        except HubError as exc:
            result["error"] = exc.detail
            return JSONResponse(result, status_code=502)
        self.ledger.record_sent(
            LedgerEntry(
                message_id=str(message_id),
                message_type=bericht.message_type,
                created_at=bericht.created_at,
                at=now(),
                payload_sha256=sha256_hex(etree.tostring(bericht.payload, method="c14n")),
                counterpart_oin=self.config.hub_oin,
                replaces=str(bericht.replaces) if bericht.replaces else None,
            )
        )
        # the receipt's signature was verified above (link.receive): say by whom it was signed
        result.update(status=ack.status, reference=ack.reference, receiptSignedBy=received.sender.oin)
        return JSONResponse(result)

    def _bericht(self, doc: object) -> tuple[Bericht, uuid.UUID]:
        if not isinstance(doc, dict):
            raise InputError("verwacht een JSON-object")
        message_type = str(doc.get("type", ""))
        subject_doc = doc.get("subject")
        if not isinstance(subject_doc, dict):
            raise InputError('subject is {"type": "BSN", "id": "..."}')
        try:
            subject = parse_subject(str(subject_doc.get("type")), str(subject_doc.get("id")))
        except IdentifierError as exc:
            raise InputError(f"subject: {exc}") from exc
        payload = xmlsafe.parse(str(doc.get("payloadXml", "")).encode(), max_bytes=_MAX_BODY)
        message_id = uuid.UUID(str(doc["messageId"])) if doc.get("messageId") else uuid.uuid4()
        envelope = Envelope(
            message_id=message_id,
            type=message_type,
            version=str(doc.get("version", "1.0")),
            sender="duo",
            subject=subject,
            purpose=str(doc.get("purpose", "inburgering-vestiging")),
            conversation_id=uuid.UUID(str(doc["conversationId"])) if doc.get("conversationId") else None,
            created_at=utcnow(),
        )
        replaces = uuid.UUID(str(doc["replaces"])) if doc.get("replaces") else None
        return Bericht.from_envelope(
            envelope, payload, replaces or payload_replaces(payload, "vervangtBericht")
        ), message_id

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

    async def berichten_received(self, request: Request) -> Response:
        """``GET /control/berichten``: what DUO received and kept (signature verified), payload as XML."""
        return JSONResponse({"count": len(self.berichten), "berichten": list(self.berichten.values())})

    async def forget(self, request: Request) -> Response:
        found = self.ledger.forget(str(request.path_params["message_id"]))
        return Response(status_code=204 if found else 404)

    async def reconcile(self, request: Request) -> Response:
        try:
            received, sent = self.ledger.summaries(request.query_params.get("period", ""))
        except InputError as exc:
            return JSONResponse({"detail": exc.detail}, status_code=400)
        return JSONResponse({"received": received.to_json(), "sent": sent.to_json()})

    async def xsd(self, request: Request) -> Response:
        return Response((CONTRACT_DIR / "duo-wus.xsd").read_bytes(), media_type="text/xml")


async def _capped_body(request: Request, limit: int) -> bytes:
    """Read the body, refusing more than ``limit`` bytes before holding it all."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"het bericht is groter dan {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def create_app(config: DuoSimulatorConfig, server: SimulatorServer | None = None) -> Starlette:
    """The simulator as an ASGI app; ``app.state.simulator`` holds its state."""
    simulator = DuoSimulator(config)
    routes = [
        Route("/wus/duo", simulator.wus, methods=["POST", "GET"]),
        Route("/wus/duo-wus.xsd", simulator.xsd, methods=["GET"]),
        Route("/control", simulator.control_get, methods=["GET"]),
        Route("/control", simulator.control_post, methods=["POST"]),
        Route("/control/send", simulator.send, methods=["POST"]),
        Route("/control/received", simulator.received, methods=["GET"]),
        Route("/control/berichten", simulator.berichten_received, methods=["GET"]),
        Route("/control/received/{message_id}", simulator.forget, methods=["DELETE"]),
        Route("/control/reconcile", simulator.reconcile, methods=["GET"]),
    ]
    app = Starlette(routes=routes)
    app.state.simulator = simulator
    if server is not None:
        simulator.control.refuse = server.refuse_for
    return app


def default_config(
    pki_dir: str | Path = "var/testpki",
    *,
    hub_url: str | None = None,
    hub_ca: Path | None = None,
    oin: str = DUO_OIN,
    hub_oin: str = KNOOPPUNT_OIN,
    trusted_oins: Sequence[str] | None = None,
    accepted_types: Collection[str] = ACCEPTED_TYPES,
) -> DuoSimulatorConfig:
    """A config on the shared test PKI (created when missing): party ``duo`` signs, ``knooppunt`` is trusted."""
    pki = ensure_test_pki(pki_dir, {"duo": oin, "knooppunt": hub_oin})
    party = pki.parties["duo"]
    return DuoSimulatorConfig(
        key_file=party.key_file,
        cert_file=party.cert_file,
        ca_file=pki.ca_file,
        trusted_oins=tuple(trusted_oins or (hub_oin,)),
        hub_url=hub_url,
        hub_oin=hub_oin,
        hub_ca=hub_ca,
        accepted_types=tuple(accepted_types),
    )


def adapter_config(base_url: str, pki_dir: str | Path = "var/testpki", **extra: JSON) -> dict[str, JSON]:
    """The knooppunt's DuoAdapter configuration for a simulator at ``base_url`` (the demo's wiring).

    Makes (or reuses) the test PKI in ``pki_dir`` with the parties ``duo`` and ``knooppunt``.
    """
    pki = ensure_test_pki(pki_dir, {"duo": DUO_OIN, "knooppunt": KNOOPPUNT_OIN})
    party = pki.parties["knooppunt"]
    config: dict[str, JSON] = {
        "endpoint_url": f"{base_url.rstrip('/')}/wus/duo",
        "oin": KNOOPPUNT_OIN,
        "partner_oin": DUO_OIN,
        "key_file": str(party.key_file),
        "cert_file": str(party.cert_file),
        "ca_file": str(pki.ca_file),
    }
    config.update(extra)
    return config


def server(
    host: str = "127.0.0.1",
    port: int = 8201,
    *,
    config: DuoSimulatorConfig | None = None,
    hub_url: str | None = None,
    hub_ca: Path | None = None,
    pki_dir: str | Path = "var/testpki",
) -> uvicorn.Server:
    """A uvicorn server for this simulator, to run beside the hub in one event loop.

    (``refuseForSeconds`` needs :func:`serve` or :class:`SimulatorServer`; ``down`` works here too.)
    """
    if host not in ("127.0.0.1", "::1", "localhost"):
        raise ConfigurationError("de simulator luistert alleen op loopback")
    app = create_app(config or default_config(pki_dir, hub_url=hub_url, hub_ca=hub_ca))
    return uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="off"))


def serve(
    host: str = "127.0.0.1",
    port: int = 8201,
    *,
    config: DuoSimulatorConfig | None = None,
    hub_url: str | None = None,
    pki_dir: str | Path = "var/testpki",
    block: bool = True,
) -> SimulatorServer:
    """Run the simulator on ``host:port`` (loopback by default).

    With ``block=False`` it runs in a background thread and the running
    :class:`SimulatorServer` is returned (``.stop()`` ends it).
    """
    if host not in ("127.0.0.1", "::1", "localhost"):
        raise ConfigurationError("de simulator luistert alleen op loopback")
    server = SimulatorServer(None, host, port)
    server.app = create_app(config or default_config(pki_dir, hub_url=hub_url), server)
    server.start()
    if block:
        try:
            server.wait()
        finally:
            server.stop()
    return server


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m adapters.duo.simulator [--port 8201] [--hub-url URL] [--pki-dir var/testpki] [--down]``."""
    import argparse

    parser = argparse.ArgumentParser(description="DUO-simulator (Digikoppeling WUS) op loopback")
    parser.add_argument("--port", type=int, default=8201)
    parser.add_argument("--hub-url", default=None, help="SOAP-endpoint van het knooppunt voor /control/send")
    parser.add_argument("--pki-dir", default="var/testpki")
    parser.add_argument("--down", action="store_true", help="start in maintenance (503) until POST /control")
    args = parser.parse_args(argv)
    server = SimulatorServer(None, "127.0.0.1", args.port)
    server.app = create_app(default_config(args.pki_dir, hub_url=args.hub_url), server)
    if args.down:
        # before the first request can arrive: a restart into maintenance, as after an outage
        server.app.state.simulator.control.configure({"down": True})
    server.start()
    try:
        server.wait()
    finally:
        server.stop()


if __name__ == "__main__":
    main()
