"""E-mail that something waits in a plateau-1 inbox: off by default, no personal data, debounced."""

from __future__ import annotations

import random
import socketserver
import threading
import time
from collections.abc import Iterator

import pytest
from typer.testing import CliRunner

from hub import demo
from hub.cli.main import app
from hub.settings import PortalSettings, Settings
from tests.conftest import LiveHub, start_live_hub

rng = random.Random(5)


class _Smtp(socketserver.StreamRequestHandler):
    """Just enough SMTP for smtplib: greet, accept one or more mails, quit."""

    def handle(self) -> None:
        mails: list[bytes] = self.server.mails  # type: ignore[attr-defined]
        self.wfile.write(b"220 test ESMTP\r\n")
        while True:
            line = self.rfile.readline()
            if not line:
                return
            verb = line[:4].upper()
            if verb in (b"EHLO", b"HELO"):
                self.wfile.write(b"250 test\r\n")
            elif verb == b"DATA":
                self.wfile.write(b"354 go\r\n")
                body = b""
                while (chunk := self.rfile.readline()) not in (b".\r\n", b""):
                    body += chunk
                mails.append(body)
                self.wfile.write(b"250 ok\r\n")
            elif verb == b"QUIT":
                self.wfile.write(b"221 bye\r\n")
                return
            else:
                self.wfile.write(b"250 ok\r\n")


@pytest.fixture
def smtp() -> Iterator[tuple[int, list[bytes]]]:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Smtp)
    server.daemon_threads = True
    server.mails = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], server.mails  # type: ignore[attr-defined]
    finally:
        server.shutdown()
        server.server_close()


def _send_to_ede(live: LiveHub) -> str:
    doc = demo.inburgeringsplicht(rng, "0228")
    with live.client("duo") as c:
        assert c.post("/v1/berichten", json=doc).status_code == 202
    live.wait_status("duo", doc["messageId"], {"in_inbox"})
    return str(doc["payload"]["persoon"]["achternaam"])


def _wait(mails: list[bytes], count: int, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while len(mails) < count and time.monotonic() < deadline:
        time.sleep(0.05)


def test_an_organisation_with_an_address_gets_one_mail_without_personal_data(
    settings: Settings, smtp: tuple[int, list[bytes]]
) -> None:
    port, mails = smtp
    portal = PortalSettings(smtp_host="127.0.0.1", smtp_port=port, smtp_from="hub@knooppunt.test")
    live = start_live_hub(settings.model_copy(update={"portal": portal}))
    try:
        env = {"KNOOPPUNT_DATABASE_URL": settings.database_url, "KNOOPPUNT_LOG_LEVEL": "warning"}
        result = CliRunner().invoke(app, ["users", "notify", "gemeente-ede", "--email", "inburgering@ede.nl"], env=env)
        assert result.exit_code == 0, result.output
        name = _send_to_ede(live)
        _wait(mails, 1)
        assert len(mails) == 1
        text = mails[0].decode()
        assert "To: inburgering@ede.nl" in text
        assert "/portaal/inbox" in text
        assert name not in text
        assert "inburgeringsplicht" not in text.lower()
        # a second message within the interval: no second mail
        _send_to_ede(live)
        time.sleep(0.5)
        assert len(mails) == 1
    finally:
        live.thread.stop()


def test_no_mail_by_default(settings: Settings, smtp: tuple[int, list[bytes]]) -> None:
    _, mails = smtp
    live = start_live_hub(settings)
    try:
        env = {"KNOOPPUNT_DATABASE_URL": settings.database_url, "KNOOPPUNT_LOG_LEVEL": "warning"}
        CliRunner().invoke(app, ["users", "notify", "gemeente-ede", "--email", "inburgering@ede.nl"], env=env)
        _send_to_ede(live)
        time.sleep(0.5)
        assert mails == []
    finally:
        live.thread.stop()
