"""The application factory: ``create_app(settings)`` builds everything; nothing at import time."""

from __future__ import annotations

import asyncio
import gc
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import structlog
from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.utils import get_openapi
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Route
from starlette.types import ASGIApp

from hub import logs
from hub.api import audit as audit_api
from hub.api import (
    citizen,
    directory,
    docs,
    health,
    lookups,
    messages,
    oauth,
    ops,
    repertorium,
    reporting,
    schemas,
    soap,
    wus,
)
from hub.api.deps import refuse_repeated_query
from hub.api.hotpath import Endpoint, HotRoutes
from hub.api.middleware import API_VERSION, HeadersMiddleware
from hub.api.problems import from_error, problem
from hub.audit.checkpoint import CheckpointSigner, checkpoint_periodically
from hub.auth import Authenticator, RateLimiter
from hub.dispatch import Dispatcher
from hub.doorbell import DoorbellListener
from hub.errors import HubError, InvalidParam
from hub.limits import FileRateLimiter
from hub.portal.dpo import router as dpo_portal_router
from hub.portal.routes import router as portal_router
from hub.service import Hub
from hub.settings import Settings
from hub.store.buckets import SharedRateLimiter
from hub.transport import open_transport

log = structlog.get_logger(__name__)


def _limiter(settings: Settings, hub: Hub) -> RateLimiter:
    """Partner budgets shared by every API process: on PostgreSQL (hub/store/buckets.py), or by the
    processes of `knooppunt run --processes N` (hub/limits.py); else this process's own."""
    if settings.limits.shared and hub.engine.dialect.name == "postgresql":
        return SharedRateLimiter(hub.engine)
    if settings.limits.shared and settings.limits.bucket_file is not None:
        return FileRateLimiter(settings.limits.bucket_file)
    return RateLimiter()


def create_app(settings: Settings | None = None, *, api_only: bool = False) -> FastAPI:
    """Build the hub's ASGI app; the store, transport and workers start in the lifespan.

    ``api_only``: one of the extra API processes of `knooppunt run --processes N`. It serves
    every route but runs no transport, dispatcher, relay or periodic job: what it accepts waits
    in the outbox (published_at NULL) for the relay of the process that runs the dispatcher.
    """
    settings = settings or Settings()
    if api_only:
        settings = settings.model_copy(update={"run_workers": False})
    logs.configure(json=True, level=settings.log_level)
    # The group-commit writer is a thread that can hold the GIL for a whole switch interval
    # while the event loop waits; KNOOPPUNT_STORE__SWITCH_INTERVAL_MS trades latency for
    # throughput (CPython's default, 5 ms, unless set).
    sys.setswitchinterval(settings.store.switch_interval_ms / 1000)
    hub = Hub(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        loop = asyncio.get_running_loop()
        # RabbitMQ: connected, declared and a publish confirmed before the first request is taken
        await hub.start(None if api_only else await open_transport(settings, loop))
        dispatcher = Dispatcher(hub)
        app.state.dispatcher = dispatcher
        doorbell = None
        if settings.run_workers:
            await dispatcher.start(recover_all=settings.is_sqlite)
            if settings.delivery.relay_socket is not None and not api_only:
                # `knooppunt run --processes N`: the API processes ring when they committed messages
                doorbell = DoorbellListener(settings.delivery.relay_socket, dispatcher.ring)
                doorbell.start(loop)
        periodic: list[asyncio.Task[None]] = []
        if not api_only:  # one process signs checkpoints
            signer = CheckpointSigner.from_settings(settings)
            periodic.append(
                asyncio.create_task(checkpoint_periodically(hub.writer, signer, settings.audit_checkpoint_seconds))
            )
        # Everything built so far (schemas and their compiled forms, protocols, routes, the app)
        # lives as long as the process: move it out of the collector's sight, so the collections
        # that request garbage triggers do not walk hundreds of thousands of permanent objects.
        gc.collect()
        gc.freeze()
        log.info(
            "hub_started",
            database=hub.engine.dialect.name,
            transport=None if api_only else settings.transport,
            api_only=api_only,
        )
        try:
            yield
        finally:
            for task in periodic:
                task.cancel()
            await asyncio.gather(*periodic, return_exceptions=True)
            if doorbell is not None:
                doorbell.stop()
            await dispatcher.stop()
            await hub.stop()
            limiter.close()
            log.info("hub_stopped", batches=hub.writer.batches, units=hub.writer.units)

    app = FastAPI(
        title="Knooppunt",
        version=API_VERSION,
        summary="Gegevensknooppunt van de inburgeringsketen (Vlaanderen en Nederland)",
        openapi_url="/v1/openapi.json",
        docs_url=None,  # hub/api/docs.py: Swagger UI served from here, not from a CDN
        redoc_url=None,
        lifespan=lifespan,
        dependencies=[Depends(refuse_repeated_query)],
        telemetry=None
        if settings.opentelemetry
        else {"tracing": False, "metrics": False, "logs": False, "operation_spans": False},
    )
    app.state.hub = hub
    app.state.api_only = api_only
    app.state.authenticator = Authenticator(settings, hub.partners, hub.reload_partners)
    limiter = _limiter(settings, hub)
    app.state.limiter = limiter
    if settings.cors_origins:  # CORS only for the origins that are published, none by default
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type", "X-Correlation-Id"],
            expose_headers=["API-Version", "Location", "Retry-After", "X-Correlation-Id"],
        )
    app.add_middleware(HeadersMiddleware)
    app.include_router(messages.router)
    app.include_router(oauth.router)
    app.include_router(lookups.router)
    app.include_router(audit_api.router)
    app.include_router(schemas.router)
    app.include_router(soap.router)
    app.include_router(wus.router)
    app.include_router(health.router)
    app.include_router(ops.router)
    app.include_router(directory.router)
    app.include_router(repertorium.router)
    app.include_router(citizen.router)
    app.include_router(reporting.router)
    docs.mount(app)  # before the portal's catch-all
    app.include_router(dpo_portal_router)  # before the portal's catch-all
    app.include_router(portal_router)
    # the send operation's hot path and the synchronous lookups (latency the caller waits for):
    # plain endpoints, matched first (the FastAPI routes above document them), and answered past
    # the general middleware stack unless CORS is configured (see hub/api/hotpath.py)
    hot: dict[tuple[str, str], Endpoint] = {
        ("POST", "/v1/berichten"): messages.send_message_direct,
        ("POST", "/v1/personen/_zoek"): lookups.zoek_persoon_direct,
        ("POST", "/v1/inschrijvingen/_zoek"): lookups.zoek_inschrijvingen_direct,
    }
    app.router.routes[0:0] = [Route(path, endpoint, methods=[method]) for (method, path), endpoint in hot.items()]
    if not settings.cors_origins:
        build_stack = app.build_middleware_stack

        def build_with_hot_routes() -> ASGIApp:
            return HotRoutes(build_stack(), hot, app.exception_handlers)

        app.build_middleware_stack = build_with_hot_routes  # type: ignore[method-assign]

    @app.exception_handler(HubError)
    async def hub_error(request: Request, exc: HubError) -> Response:
        if exc.status >= 500:
            log.error("request_failed", code=exc.code, detail=exc.detail)
        return from_error(exc, instance=request.url.path)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> Response:
        params = [
            InvalidParam(
                ".".join(str(p) for p in e.get("loc", ()) if p not in ("query", "path")),
                e.get("msg", ""),
                e.get("type", "invalid"),
            )
            for e in exc.errors()
        ]
        return problem(
            status=400,
            title="Ongeldige parameters",
            detail="een of meer parameters zijn ongeldig",
            code="invalid_parameters",
            instance=request.url.path,
            invalid_params=params,
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        return problem(
            status=exc.status_code,
            title=str(exc.detail),
            detail=str(exc.detail),
            code=f"http_{exc.status_code}",
            instance=request.url.path,
        )

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Response:
        log.error("request_crashed", error=exc.__class__.__name__, path=request.url.path)
        return problem(
            status=500,
            title="Interne fout",
            detail="er ging iets mis in de hub; het is gelogd",
            code="internal_error",
            instance=request.url.path,
        )

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(
            title=app.title,
            version=app.version,
            summary=app.summary,
            routes=app.routes,
            contact=CONTACT,
            license_info={"name": "EUPL-1.2"},
        )
        app.openapi_schema = nlgov_openapi(schema, settings.public_url)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


CONTACT = {"name": "Knooppunt", "url": "https://github.com/knooppunt/knooppunt", "email": "knooppunt@example.org"}


def nlgov_openapi(schema: dict[str, Any], public_url: str) -> dict[str, Any]:
    """Shape FastAPI's document to the NLGov API Design Rules.

    The major version sits in the server URL; every response names the
    API-Version header; every error is problem+json (FastAPI's 422 becomes our 400).
    """
    schema["servers"] = [{"url": public_url.rstrip("/") + "/v1"}]
    schema["paths"] = {path.removeprefix("/v1"): item for path, item in schema["paths"].items()}
    components = schema.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    schemas["Problem"] = PROBLEM_SCHEMA
    for model in (
        messages.MessageIn,
        lookups.PersoonZoek,
        lookups.InschrijvingenZoek,
        audit_api.AuditZoek,
        audit_api.PersoonsRapportVraag,
    ):
        definition = model.model_json_schema(ref_template="#/components/schemas/{model}")
        for name, nested in definition.pop("$defs", {}).items():
            schemas.setdefault(name, nested)
        schemas.setdefault(model.__name__, definition)
    components["headers"] = {
        "API-Version": {
            "description": "De volledige versie van de API",
            "schema": {"type": "string", "example": API_VERSION},
        }
    }
    components["securitySchemes"] = {
        "bearer": {"type": "http", "scheme": "bearer", "description": "API-sleutel (alleen ontwikkeling en test)"},
        "oauth2": {
            "type": "oauth2",
            "description": "Client credentials; met een partnercertificaat gebonden aan dat certificaat (RFC 8705)",
            "flows": {"clientCredentials": {"tokenUrl": public_url.rstrip("/") + "/v1/oauth/token", "scopes": {}}},
        },
        "mutualTLS": {"type": "mutualTLS", "description": "Partnercertificaat met OIN of KBO-nummer"},
        "clientSecretBasic": {"type": "http", "scheme": "basic", "description": "partner-id en API-sleutel"},
    }
    schema["security"] = [{"oauth2": []}, {"mutualTLS": []}, {"bearer": []}]
    problem = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
    for item in schema["paths"].values():
        for operation in item.values():
            responses = operation.setdefault("responses", {})
            responses.pop("422", None)
            responses.setdefault("400", {"description": "Ongeldige invoer", "content": problem})
            responses.setdefault("429", {"description": "Te veel verzoeken; zie Retry-After", "content": problem})
            for code, response in responses.items():
                response.setdefault("description", code)
                response.setdefault("headers", {})["API-Version"] = {"$ref": "#/components/headers/API-Version"}
                if code.startswith(("4", "5")):
                    response["content"] = problem
    return schema


PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "RFC 9457 problem details",
    "required": ["type", "title", "status", "detail", "code"],
    "properties": {
        "type": {"type": "string", "format": "uri"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
        "code": {"type": "string"},
        "invalidParams": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["name", "reason"],
                "properties": {"name": {"type": "string"}, "reason": {"type": "string"}, "code": {"type": "string"}},
            },
        },
    },
}
