"""The ingest path's faster forms give what the general ones gave (hub.envelope, identifiers,
infomodel, routing, crypto, protocols)."""

from __future__ import annotations

import hmac
import re
import uuid

import pytest
from lxml import etree

from hub import envelope as env
from hub.crypto import SubjectHasher
from hub.errors import MalformedInput, NotAllowed, ValidationFailed
from hub.identifiers import _compact
from hub.infomodel import _find_steps
from hub.protocols import PartnerRef, Protocol, ProtocolBook, _matches, _Selectors
from hub.routing import Router, Rule, field_value

E = env.ENV_NS


def test_subject_hasher_is_the_hmac_sha256_of_type_and_id() -> None:
    key = b"k" * 32
    hasher = SubjectHasher(key)
    for kind, number in [("BSN", "291417772"), ("INSZ", "85073003328"), ("BSN", ""), ("INSZ", "ü")]:
        expected = hmac.digest(key, f"{kind}:{number}".encode(), "sha256").hex()
        assert hasher(kind, number) == expected
        assert hasher(kind, number) == expected  # the keyed state is copied, never used up


_SEPARATORS = re.compile(r"[\s.\-/]")


@pytest.mark.parametrize(
    "raw", ["291417772", " 291417772 ", "2914.177-72", "85.07.30-033.28", "١٢٣٤٥٦٧٨٩", "²³", "", "12 34", "abc"]
)
def test_compact_gives_what_the_regex_gave(raw: str) -> None:
    assert _compact(raw) == _SEPARATORS.sub("", raw.strip())


def _tree(xml: str) -> etree._Element:
    return etree.fromstring(xml)


@pytest.mark.parametrize(
    ("xml", "steps"),
    [
        ("<r><a><b>1</b></a></r>", ("a", "b")),
        ("<r><a/><a><b>2</b></a></r>", ("a", "b")),  # the first a has no b: find looks under the next
        ("<r><a><x/></a></r>", ("a", "b")),
        ("<r><b>3</b><a><b>4</b></a></r>", ("a", "b")),
        ("<r><a><b>5</b><b>6</b></a></r>", ("a",)),
        ('<r xmlns="urn:x"><a><b>7</b></a></r>', ("{urn:x}a", "{urn:x}b")),
    ],
)
def test_find_steps_is_element_find(xml: str, steps: tuple[str, ...]) -> None:
    root = _tree(xml)
    assert _find_steps(root, steps) is root.find("/".join(steps))


def _envelope(header: str, payload: str = '<P xmlns="urn:p"><x/></P>') -> etree._Element:
    return _tree(f'<Envelope xmlns="{E}">{header}<payload>{payload}</payload></Envelope>')


_HEADER = (
    "<header><messageId>{id}</messageId><type>inburgeringsplicht</type><version>1.0</version>"
    "<sender>duo</sender><receiver>gemeente-ede</receiver><receiver>BAD!</receiver>"
    '<subject type="BSN">291417772</subject><purpose>nl-inburgeringsplicht</purpose></header>'
)


def test_from_xml_names_every_wrong_receiver_by_its_index() -> None:
    root = _envelope(_HEADER.format(id=uuid.uuid4()))
    with pytest.raises(ValidationFailed) as info:
        env.from_xml(root)
    assert [(p.name, p.code) for p in info.value.invalid_params] == [("/Envelope/header/receiver/1", "format")]


def test_from_xml_reads_the_first_header_like_find() -> None:
    first, second = uuid.uuid4(), uuid.uuid4()
    good = _HEADER.replace("<receiver>BAD!</receiver>", "")
    root = _tree(
        f'<Envelope xmlns="{E}">{good.format(id=first)}<payload><P xmlns="urn:p"/></payload>'
        f"{good.format(id=second)}<payload><Q/></payload></Envelope>"
    )
    message = env.from_xml(root)
    assert message.envelope.message_id == first
    assert message.envelope.receivers == ("gemeente-ede",)
    assert message.payload is root.find(f"{{{E}}}payload")[0]


def test_from_xml_without_payload_is_malformed() -> None:
    root = _tree(f'<Envelope xmlns="{E}">{_HEADER.format(id=uuid.uuid4())}</Envelope>')
    with pytest.raises(MalformedInput):
        env.from_xml(root)


def test_router_resolves_receivers_and_followers_in_one_pass() -> None:
    router = Router(
        [
            Rule(type="a", sender="duo", to_by_field="code", to_followers=True),
            Rule(type="a", to=("x", "duo", "y")),
            Rule(type="b", when_field="code", when_in=("1",), to=("z",)),
            Rule(type="c", to_followers=True),
        ]
    )
    payload = _tree('<P xmlns="urn:p"><code>1</code></P>')
    owners = {"1": "gemeente-1"}.get
    expected = {
        # rule order, the code's owner, no duplicates, never the sender
        ("a", "duo"): (("gemeente-1", "x", "y"), True),
        ("a", "coa"): (("x", "duo", "y"), False),  # the first rule is DUO's only
        ("b", "duo"): (("z",), False),
        ("b", "coa"): (("z",), False),
        ("c", "duo"): ((), True),
        ("c", "coa"): ((), True),
        ("d", "duo"): ((), False),
        ("d", "coa"): ((), False),
    }
    for (mtype, sender), answer in expected.items():
        assert router.resolve(mtype, sender, payload, owners) == answer, (mtype, sender)


def test_authorize_receivers_is_the_tail_of_authorize() -> None:
    protocol = Protocol(
        id="p",
        title="",
        legal_basis="",
        purpose="",
        senders=("duo",),
        receivers=("role:gemeente",),
        message_types=("a",),
        fields=(),
        retention="P1Y",
    )
    book = ProtocolBook([protocol])
    duo = PartnerRef("duo", "uitvoerder")
    receivers = [PartnerRef("ede", "gemeente"), PartnerRef("coa", "uitvoerder"), PartnerRef("cbs", "statistiek")]
    with pytest.raises(NotAllowed) as whole:
        book.authorize(purpose="p", sender=duo, message_type="a", receivers=receivers)
    with pytest.raises(NotAllowed) as tail:
        book.authorize_receivers(book.authorize(purpose="p", sender=duo, message_type="a", receivers=()), receivers)
    assert str(tail.value) == str(whole.value)
    assert tail.value.invalid_params == whole.value.invalid_params


def test_protocol_selector_sets_match_as_the_selectors_do() -> None:
    lists = [(), ("*",), ("duo",), ("role:gemeente",), ("duo", "role:gemeente"), ("role:duo", "coa"), ("role:",)]
    partners = [PartnerRef("duo", "uitvoerder"), PartnerRef("ede", "gemeente"), PartnerRef("role:duo", "x")]
    partners += [PartnerRef("coa", "duo"), PartnerRef("x", "")]
    for selectors in lists:
        for partner in partners:
            expected = any(_matches(s, partner) for s in selectors)
            assert _Selectors.of(selectors).match(partner) is expected, (selectors, partner)


def _field_value_by_qname(payload: etree._Element, path: str) -> str | None:
    """hub.routing.field_value as it was written first (QName per child)."""
    node: etree._Element | None = payload
    for step in path.split("/"):
        if node is None:
            return None
        node = next((c for c in node if isinstance(c.tag, str) and etree.QName(c).localname == step), None)
    return (node.text or "").strip() if node is not None else None


@pytest.mark.parametrize(
    "path", ["code", "a/b", "a/c", "x", "a", "a/b/c", "ns", "ns/deep", "code/x", "other:code", "}code"]
)
def test_field_value_reads_local_names_as_qname_did(path: str) -> None:
    payload = _tree(
        '<P xmlns="urn:p" xmlns:o="urn:o"><!-- c --><o:code> 1 </o:code><code>2</code>'
        "<a><b/><b>3</b><c>4</c></a><ns><deep>5</deep></ns><?pi x?></P>"
    )
    assert field_value(payload, path) == _field_value_by_qname(payload, path)
