"""MAGDA simulator: GeefPersoon, RegistreerInschrijving, RegistreerUitschrijving and
GeefHistoriekInschrijving at one URL (``POST /api/Magda-02.00/soap/WebService``).

GeefPersoon answers 40003 until the consumer registered the person. Control
endpoints (latency, fault injection, state, reset): :mod:`adapters._magda.sim`.
Run it: ``python -m adapters.magda.simulator --port 8701``.
"""

from __future__ import annotations

import argparse
from typing import Any

import uvicorn
from starlette.applications import Starlette

from adapters._magda.sim import SOAP_PATH, create_simulator, make_server, serve_app

__all__ = ["SOAP_PATH", "create_app", "serve", "server"]


def create_app(
    *, seed: int = 20251124, latency: float = 0.0, timeout_seconds: float = 5.0, huge_bytes: int = 8 * 1024 * 1024
) -> Starlette:
    """The MAGDA simulator app; its state (persons, personas, faults) is ``app.state.sim``."""
    return create_simulator(
        served=("GeefPersoon", "RegistreerInschrijving", "RegistreerUitschrijving", "GeefHistoriekInschrijving"),
        require_registration=("GeefPersoon",),
        seed=seed,
        latency=latency,
        timeout_seconds=timeout_seconds,
        huge_bytes=huge_bytes,
    )


def server(host: str = "127.0.0.1", port: int = 8701, **options: Any) -> uvicorn.Server:
    """A uvicorn server for this simulator, to run beside the hub in one event loop."""
    return make_server(create_app(**options), host, port)


def serve(host: str = "127.0.0.1", port: int = 8701) -> None:
    """Serve the simulator with uvicorn until interrupted."""
    serve_app(create_app(), host, port)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="MAGDA-simulator")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8701)
    args = parser.parse_args()
    serve(args.host, args.port)
