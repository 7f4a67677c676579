"""Data minimisation on the ingest path: ``fields_outside`` prunes its walk, and must name
exactly the paths the plain definition names (every payload path no listed field allows)."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

from lxml import etree

from hub.infomodel import InfoModel
from hub.protocols import _allowed, _paths, fields_outside, minimize
from hub.settings import ROOT


def _by_definition(payload: etree._Element, fields: tuple[str, ...]) -> list[str]:
    return sorted({p for p, _ in _paths(payload) if not _allowed(p, fields)})


def _cases(seed: int) -> Iterator[tuple[Path, etree._Element, tuple[str, ...]]]:
    """Every XML example with field lists: none, all, and 30 random picks of parents and leaves."""
    rnd = random.Random(seed)
    for example in InfoModel(ROOT / "schemas").examples():
        if example.path.suffix != ".xml":
            continue
        payload = etree.parse(str(example.path)).getroot()
        paths = [p for p, _ in _paths(payload)]
        choices = [(), tuple(paths)] + [tuple(rnd.sample(paths, min(len(paths), rnd.randint(1, 5)))) for _ in range(30)]
        for fields in choices:
            yield example.path, payload, fields


def test_fields_outside_names_what_the_definition_names_for_every_example() -> None:
    checked = 0
    for path, payload, fields in _cases(20261124):
        assert fields_outside(payload, fields) == _by_definition(payload, fields), (path, fields)
        checked += 1
    assert checked > 500


def _minimized_by_definition(payload: etree._Element, fields: tuple[str, ...]) -> bytes:
    copy = etree.fromstring(etree.tostring(payload))
    for _, element in [(p, el) for p, el in _paths(copy) if not _allowed(p, fields)]:
        parent = element.getparent()
        if parent is not None:
            parent.remove(element)
    return etree.tostring(copy)


def test_minimize_keeps_what_the_definition_keeps_for_every_example() -> None:
    """The pruned walk of ``minimize`` (run for every delivery) against the plain definition:
    every path no listed field allows is removed, the rest kept byte for byte; the original is
    never touched."""
    checked = 0
    for path, payload, fields in _cases(20261125):
        before = etree.tostring(payload)
        assert etree.tostring(minimize(payload, fields)) == _minimized_by_definition(payload, fields), (path, fields)
        assert etree.tostring(payload) == before
        checked += 1
    assert checked > 500
    # a payload inside a larger document: the copy stands alone, without the tail that followed it
    doc = etree.fromstring(b'<env xmlns:x="urn:x"><x:p><a>1</a><b>2</b></x:p>\n  </env>')
    assert etree.tostring(minimize(doc[0], ("a",))) == b'<x:p xmlns:x="urn:x"><a>1</a></x:p>'


def test_a_field_outside_the_protocol_is_named_with_everything_below_it() -> None:
    payload = etree.fromstring(b"<p><a><b>1</b><c><d>2</d></c></a><e>3</e></p>")
    assert fields_outside(payload, ("e",)) == ["a", "a/b", "a/c", "a/c/d"]
    assert fields_outside(payload, ("a/c/d", "e")) == ["a/b"]
    assert fields_outside(payload, ("a", "e")) == []
