"""Discimus simulator: MAGDA GeefHistoriekInschrijving 02.01 (plus RegistreerInschrijving /
RegistreerUitschrijving) at ``POST /api/Magda-02.00/soap/WebService``.

Generated persons carry enrolments (NT2 in adult education, a reception class for
newcomers); a source without data answers 30101 next to the others' data, as MAGDA
does. Control endpoints: :mod:`adapters._magda.sim`.
Run it: ``python -m adapters.discimus.simulator --port 8702``.
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
    """The Discimus simulator app; its state is ``app.state.sim``."""
    return create_simulator(
        served=("GeefHistoriekInschrijving", "RegistreerInschrijving", "RegistreerUitschrijving"),
        require_registration=(),
        seed=seed,
        latency=latency,
        timeout_seconds=timeout_seconds,
        huge_bytes=huge_bytes,
    )


def server(host: str = "127.0.0.1", port: int = 8702, **options: Any) -> uvicorn.Server:
    """A uvicorn server for this simulator, to run beside the hub in one event loop."""
    return make_server(create_app(**options), host, port)


def serve(host: str = "127.0.0.1", port: int = 8702) -> None:
    """Serve the simulator with uvicorn until interrupted."""
    serve_app(create_app(), host, port)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Discimus-simulator")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8702)
    args = parser.parse_args()
    serve(args.host, args.port)
