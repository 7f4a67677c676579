"""Parsing untrusted XML.

Every XML byte that enters the hub goes through :func:`parse`: the body size
is capped before parsing, any DOCTYPE or ENTITY declaration is refused (so no
external entity, billion laughs or quadratic blow-up can start), the parser
never touches the network or loads a DTD, and the element depth is bounded.
"""

from __future__ import annotations

import functools
import itertools
import re
from typing import Any

from lxml import etree

from hub.errors import MalformedInput, PayloadTooLarge

# A DTD can only come before the root element; '<!' followed by DOCTYPE or ENTITY
# anywhere is refused outright, whatever the case or the whitespace around it.
_DTD_MARKERS = re.compile(rb"<!\s*(DOCTYPE|ENTITY|ELEMENT|ATTLIST)", re.IGNORECASE)
_XINCLUDE_NS = b"http://www.w3.org/2001/XInclude"


def _make_parser() -> etree.XMLParser:
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
        collect_ids=False,
    )


_PARSER = _make_parser()


def parser() -> etree.XMLParser:
    """The hardened parser, for code that hands lxml a parser (schemas, zeep)."""
    return _PARSER


def check_size(body: bytes, max_bytes: int) -> None:
    """Refuse a body above the cap before any parser sees it."""
    if len(body) > max_bytes:
        raise PayloadTooLarge(f"het bericht is {len(body)} bytes, de grens is {max_bytes} bytes")


def parse(body: bytes, *, max_bytes: int, max_depth: int = 64) -> etree._Element:
    """Parse untrusted XML into an element, or raise a specific input error.

    Raises:
        PayloadTooLarge: the body is above ``max_bytes``.
        MalformedInput: not well-formed, a DOCTYPE/ENTITY, XInclude, or too deep.
    """
    check_size(body, max_bytes)
    if _DTD_MARKERS.search(body):
        raise MalformedInput("DOCTYPE- en ENTITY-declaraties zijn niet toegestaan")
    if _XINCLUDE_NS in body:
        raise MalformedInput("XInclude is niet toegestaan")
    try:
        root = etree.fromstring(body, parser=_PARSER)
    except etree.XMLSyntaxError as exc:
        raise MalformedInput(f"XML is niet welgevormd: {exc.msg}") from exc
    except ValueError as exc:  # e.g. an encoding declaration lxml refuses
        raise MalformedInput(f"XML kan niet gelezen worden: {exc}") from exc
    docinfo: Any = root.getroottree().docinfo
    if docinfo.doctype or docinfo.internalDTD is not None:
        raise MalformedInput("DOCTYPE-declaraties zijn niet toegestaan")
    _check_depth(root, max_depth)
    return root


def _check_depth(root: etree._Element, max_depth: int) -> None:
    # A tree of at most max_depth nodes cannot be deeper than that: counting them holds the GIL,
    # where the XPath hands the event loop to whichever thread wants it (lxml releases the GIL).
    if next(itertools.islice(root.iter(), max_depth, None), None) is None:
        return
    if _deeper_than(max_depth)(root):
        raise MalformedInput(f"XML is dieper genest dan {max_depth} niveaus")


@functools.cache
def _deeper_than(max_depth: int) -> etree.XPath:
    """True when some element lies deeper than ``max_depth`` (the root is level 1): one XPath,
    evaluated in libxml2 level by level, instead of a Python walk over every element."""
    return etree.XPath("boolean(/" + "/".join(["*"] * (max_depth + 1)) + ")")
