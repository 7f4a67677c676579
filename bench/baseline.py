"""The baseline of bench/ingest: a bare uvicorn endpoint that only parses and validates the same
XML (envelope and payload XSD, the same hardened parser) and inserts one row per message in
SQLite with group commit (WAL, synchronous=FULL) — no auth, protocols, routing, encryption or audit.

Run as ``python -m bench.baseline PORT DBPATH``.
"""

from __future__ import annotations

import asyncio
import queue
import sqlite3
import sys
import threading
from concurrent.futures import Future
from pathlib import Path

import uvicorn
from lxml import etree
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from hub import xmlsafe
from hub.infomodel import InfoModel
from hub.settings import ROOT


def make_app(db_path: Path) -> Starlette:
    model = InfoModel(ROOT / "schemas")
    jobs: queue.SimpleQueue[tuple[tuple[str, bytes], Future[None]]] = queue.SimpleQueue()

    def writer() -> None:
        conn = sqlite3.connect(db_path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("CREATE TABLE IF NOT EXISTS messages (id TEXT PRIMARY KEY, body BLOB)")
        while True:
            batch = [jobs.get()]
            while len(batch) < 256:
                try:
                    batch.append(jobs.get_nowait())
                except queue.Empty:
                    break
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany("INSERT OR IGNORE INTO messages VALUES (?, ?)", [row for row, _ in batch])
            conn.execute("COMMIT")
            for _, future in batch:
                future.set_result(None)

    threading.Thread(target=writer, daemon=True).start()

    async def receive(request: Request) -> Response:
        body = await request.body()
        root = xmlsafe.parse(body, max_bytes=1_048_576)
        model.validate_envelope(root)
        header, payload = root[0], root[1][0]
        mtype = model.get(header[1].text or "", header[2].text or "")
        model.validate_payload(mtype, payload)
        future: Future[None] = Future()
        jobs.put(((header[0].text or "", etree.tostring(payload)), future))
        await asyncio.wrap_future(future)
        return Response(b'{"status":"accepted"}', status_code=202, media_type="application/json")

    return Starlette(routes=[Route("/v1/berichten", receive, methods=["POST"])])


if __name__ == "__main__":
    port, db = int(sys.argv[1]), Path(sys.argv[2])
    uvicorn.run(make_app(db), host="127.0.0.1", port=port, log_level="error", access_log=False)
