"""The XML attack corpus against every XML entry point (REST, SOAP send, SOAP repertorium, WUS):
each refused with a 4xx or a SOAP fault, in under 100 ms, memory steady, nothing stored,
no file read and no network fetch."""

from __future__ import annotations

import gc
import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
from lxml import etree

from tests.conftest import LiveHub
from tests.helpers import count_messages
from tests.security.corpus import attacks

SOAP_FAULT = "{http://schemas.xmlsoap.org/soap/envelope/}Fault"
ENTRY_POINTS = [
    ("rest-xml", "/v1/berichten", "application/xml"),
    ("rest-text-xml", "/v1/berichten", "text/xml"),
    ("soap", "/soap/berichten", "text/xml; charset=utf-8"),
    ("soap-repertorium", "/soap/repertorium", "text/xml; charset=utf-8"),
    ("wus", "/wus/duo", "text/xml; charset=utf-8"),
]


class Listener:
    """A TCP socket that records every connection: no attack may make the hub call out."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.connections = 0
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}"

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self.thread.join()
        self.sock.close()


@pytest.fixture(scope="module")
def listener() -> Iterator[Listener]:
    watcher = Listener()
    yield watcher
    watcher.close()


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


def _refused(entry: str, response: httpx.Response) -> bool:
    if 400 <= response.status_code < 500:
        return True
    if entry.startswith(("soap", "wus")) and response.status_code == 500:
        root = etree.fromstring(response.content)
        fault = root.find(f".//{SOAP_FAULT}")
        return fault is not None and fault.findtext("faultcode") == "soap:Client"
    return False


@pytest.mark.parametrize(("entry", "path", "content_type"), ENTRY_POINTS)
def test_every_attack_is_refused_fast_and_leaves_nothing(
    shared_hub: LiveHub, listener: Listener, entry: str, path: str, content_type: str
) -> None:
    before_messages = count_messages(shared_hub.settings)
    corpus = list(attacks(shared_hub.settings.max_body_bytes, listener=listener.url))
    assert len(corpus) >= 25
    slow: dict[str, float] = {}
    with shared_hub.client("duo") as client:
        headers = {"Content-Type": content_type}
        for name, body in corpus:  # warm up once, then measure
            client.post(path, content=body, headers=headers)
        gc.collect()
        rss_before = _rss_bytes()
        for name, body in corpus:
            best = float("inf")
            for _ in range(3):  # best of three: the machine is shared, the hub's own cost is the minimum
                start = time.perf_counter()
                response = client.post(path, content=body, headers=headers)
                best = min(best, time.perf_counter() - start)
                assert _refused(entry, response), (name, response.status_code, response.text[:300])
                assert b"root:" not in response.content, name  # /etc/passwd never comes back
                assert response.headers["cache-control"] == "no-store"
            if best >= 0.1:
                slow[name] = best
        gc.collect()
        growth = _rss_bytes() - rss_before
    assert slow == {}, slow
    # three rounds of the whole corpus (tens of MB sent) leave the process within a few MB
    assert growth < 16 * 1024 * 1024, growth
    assert count_messages(shared_hub.settings) == before_messages
    assert listener.connections == 0


def test_rest_problems_name_the_refusal(shared_hub: LiveHub) -> None:
    expected = {
        "xxe-file": "malformed_input",
        "billion-laughs": "malformed_input",
        "xinclude": "malformed_input",
        "deep-nesting": "malformed_input",
        "huge-text-over-cap": "payload_too_large",
        "doctype-in-utf16": "malformed_input",
    }
    found = dict(attacks(shared_hub.settings.max_body_bytes))
    with shared_hub.client("duo") as client:
        for name, code in expected.items():
            response = client.post("/v1/berichten", content=found[name], headers={"Content-Type": "application/xml"})
            assert response.headers["content-type"] == "application/problem+json", name
            assert response.json()["code"] == code, (name, response.json())
