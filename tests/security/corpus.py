"""The XML attack corpus, reusable by every XML entry point's tests.

``attacks()`` yields ``(name, body)``: the files in ``corpus/`` (XXE through a
file and through the network, billion laughs, external DTD, parameter
entities, XInclude, SOAP with a DTD, wrong and unknown encoding declarations)
plus documents too large to keep in git, generated here (quadratic blow-up,
deep nesting, huge text, huge attribute, many attributes, a DOCTYPE hidden in
UTF-16). Every one must be refused with a 4xx or a SOAP fault, quickly, with
memory steady and nothing stored.

Usage from another suite (portal upload, partner replies)::

    from tests.security.corpus import attacks
    for name, body in attacks(): ...
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

CORPUS = Path(__file__).parent / "corpus"
SOAP_NS = "http://schemas.xmlsoap.org/soap/envelope/"
ENV_NS = "urn:knooppunt:envelope:1"


def soap_wrap(inner: bytes) -> bytes:
    """Put a document (without its XML declaration) in a SOAP 1.1 Body."""
    if inner.startswith(b"<?xml") and b"?>" in inner:
        inner = inner.split(b"?>", 1)[1].lstrip()
    return (
        f'<?xml version="1.0" encoding="UTF-8"?><soap:Envelope xmlns:soap="{SOAP_NS}"><soap:Body>'.encode()
        + inner
        + b"</soap:Body></soap:Envelope>"
    )


def generated(max_bytes: int = 1_048_576) -> Iterator[tuple[str, bytes]]:
    """The attacks built at run time, sized against the hub's body cap."""
    # quadratic blow-up: one big entity referenced many times (no nesting to detect)
    big = "A" * 20_000
    refs = "&a;" * 2_000
    yield "quadratic-blowup", f'<?xml version="1.0"?><!DOCTYPE m [<!ENTITY a "{big}">]><m>{refs}</m>'.encode()
    yield "deep-nesting", b"<a>" * 50_000 + b"</a>" * 50_000
    yield "deep-nesting-under-limit-of-bytes", b"<a>" * 100 + b"</a>" * 100
    yield (
        "huge-text",
        f'<env:Envelope xmlns:env="{ENV_NS}"><env:type>'.encode()
        + b"x" * (max_bytes - 200)
        + (b"</env:type></env:Envelope>"),
    )
    yield "huge-text-over-cap", b"<a>" + b"x" * (max_bytes + 10) + b"</a>"
    yield "huge-attribute", f'<env:Envelope xmlns:env="{ENV_NS}" a="'.encode() + b"y" * (max_bytes - 200) + b'"/>'
    attributes = " ".join(f"a{i}='{i}'" for i in range(20_000))
    yield "many-attributes", f"<a {attributes}/>".encode()
    yield "long-element-name", b"<" + b"n" * 200_000 + b"/>"
    yield "many-namespaces", ("<a " + " ".join(f"xmlns:p{i}='urn:x:{i}'" for i in range(10_000)) + "/>").encode()
    # a DOCTYPE the byte-level check cannot see: the parser's own check must catch it
    utf16 = '<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE x [<!ENTITY y SYSTEM "file:///etc/passwd">]><x>&y;</x>'
    yield "doctype-in-utf16", utf16.encode("utf-16")
    yield "not-xml", b"\x00\x01\x02 binary"
    yield "empty", b""
    yield "unclosed", b"<env:Envelope xmlns:env='urn:knooppunt:envelope:1'>"
    yield "soap-xinclude", soap_wrap((CORPUS / "xinclude.xml").read_bytes())
    yield "soap-deep-nesting", soap_wrap(b"<a>" * 5_000 + b"</a>" * 5_000)


# The network attacks in the files point here; pass ``listener`` to aim them at a socket
# the test watches, so a parser that fetches anything is caught in the act.
PLACEHOLDER_URL = b"http://127.0.0.1:9"


def files(listener: str | None = None) -> Iterator[tuple[str, bytes]]:
    for path in sorted(CORPUS.glob("*.xml")):
        body = path.read_bytes()
        if listener:
            body = body.replace(PLACEHOLDER_URL, listener.encode())
        yield path.stem, body


def attacks(max_bytes: int = 1_048_576, listener: str | None = None) -> Iterator[tuple[str, bytes]]:
    """Every attack: the committed files, then the generated ones."""
    yield from files(listener)
    yield from generated(max_bytes)
