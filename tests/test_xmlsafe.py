"""The hardened parser refuses what could hurt, with a specific error."""

from __future__ import annotations

import pytest

from hub import xmlsafe
from hub.errors import MalformedInput, PayloadTooLarge

CASES = {
    "xxe-file": b'<!DOCTYPE a [<!ENTITY x SYSTEM "file:///etc/passwd">]><a>&x;</a>',
    "xxe-network": b'<!DOCTYPE a [<!ENTITY x SYSTEM "http://127.0.0.1:1/x">]><a>&x;</a>',
    "parameter-entity": b'<!DOCTYPE a [<!ENTITY % p SYSTEM "file:///etc/passwd"> %p;]><a/>',
    "external-dtd": b'<!DOCTYPE a SYSTEM "http://127.0.0.1:1/a.dtd"><a/>',
    "lowercase-doctype": b"<!doctype a><a/>",
    "xinclude": b'<a xmlns:xi="http://www.w3.org/2001/XInclude"><xi:include href="/etc/passwd"/></a>',
    "not-well-formed": b"<a><b></a>",
    "truncated": b"<a><b>text",
}


@pytest.mark.parametrize("body", CASES.values(), ids=CASES.keys())
def test_hostile_or_broken_xml_is_refused(body: bytes) -> None:
    with pytest.raises(MalformedInput):
        xmlsafe.parse(body, max_bytes=10_000)


def test_size_is_checked_before_parsing() -> None:
    with pytest.raises(PayloadTooLarge):
        xmlsafe.parse(b"<a>" + b"x" * 2000 + b"</a>", max_bytes=1000)


def test_deep_nesting_is_refused() -> None:
    body = b"<a>" * 100 + b"</a>" * 100
    with pytest.raises(MalformedInput, match="dieper"):
        xmlsafe.parse(body, max_bytes=100_000, max_depth=64)


@pytest.mark.parametrize("depth", [63, 64])
def test_nesting_up_to_the_limit_parses_and_one_deeper_is_refused(depth: int) -> None:
    siblings = b"<s/>" * 5  # siblings do not count as levels
    body = b"<a>" * (depth - 1) + siblings + b"<b/>" + b"</a>" * (depth - 1)
    assert xmlsafe.parse(body, max_bytes=100_000, max_depth=depth) is not None  # b sits at the limit
    with pytest.raises(MalformedInput, match="dieper"):
        xmlsafe.parse(body.replace(b"<b/>", b"<b><c/></b>"), max_bytes=100_000, max_depth=depth)


def test_ordinary_xml_parses_without_comments() -> None:
    root = xmlsafe.parse(b"<a><!-- c --><b>1</b></a>", max_bytes=1000)
    assert [c.tag for c in root] == ["b"]


@pytest.mark.parametrize("max_depth", [8, 64])
def test_a_chain_of_exactly_max_depth_nodes_passes_and_one_more_is_refused(max_depth: int) -> None:
    # the boundary of the shortcut: a tree of at most max_depth nodes is not counted level by level
    body = b"<a>" * max_depth + b"</a>" * max_depth
    assert xmlsafe.parse(body, max_bytes=100_000, max_depth=max_depth) is not None
    with pytest.raises(MalformedInput, match="dieper"):
        xmlsafe.parse(b"<a>" + body + b"</a>", max_bytes=100_000, max_depth=max_depth)


def test_a_wide_shallow_tree_with_more_nodes_than_levels_parses() -> None:
    body = b"<a>" + b"<b><c/></b>" * 100 + b"</a>"
    assert xmlsafe.parse(body, max_bytes=100_000, max_depth=8) is not None
