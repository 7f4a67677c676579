"""Data-sharing agreements: who may send what about whom to whom, and why.

One YAML file per protocol in ``protocols/``::

    id: nl-inburgeringsplicht
    title: Inburgeringsplicht van DUO aan de gemeente
    legalBasis: Wet inburgering 2021, art. 2 en 7
    purpose: Vaststellen en uitvoeren van de inburgeringsplicht
    from: [duo]                      # partner ids, or role:<role>
    to: [role:gemeente]
    messageTypes: [inburgeringsplicht]
    fields: [persoon/identificatie, persoon/achternaam, ...]   # payload paths
    receiverFields: {role:cbs: [...]}  # narrower sets per receiver (optional)
    retention: P7Y                   # ISO 8601 duration
    lookups: [persoon]               # synchronous questions it allows (optional)
    capacities:                      # reference directory (optional): capacities a
      woongemeente: ["role:gemeente"]  # follower may hold under it, and who may hold them

``authorize`` refuses an exchange that no protocol allows, naming why;
``minimize`` strips a payload down to the fields a receiver may see.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from copy import deepcopy
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any

import yaml
from lxml import etree

from hub.errors import ConfigurationError, InvalidParam, NotAllowed

_DURATION = re.compile(r"^P(?:(\d+)Y)?(?:(\d+)M)?(?:(\d+)D)?$")


@dataclass(frozen=True, slots=True)
class PartnerRef:
    """Who a protocol rule names: a partner id or a role."""

    id: str
    role: str
    plateau: int = 2


def _matches(selector: str, partner: PartnerRef) -> bool:
    if selector == "*":
        return True
    if selector.startswith("role:"):
        return partner.role == selector[5:]
    return partner.id == selector


@dataclass(frozen=True, slots=True)
class _Selectors:
    """A list of selectors as sets: matches a partner exactly when one of them does (see _matches)."""

    anyone: bool
    ids: frozenset[str]
    roles: frozenset[str]

    @classmethod
    def of(cls, selectors: Iterable[str]) -> _Selectors:
        selectors = tuple(selectors)
        return cls(
            "*" in selectors,
            frozenset(s for s in selectors if s != "*" and not s.startswith("role:")),
            frozenset(s[5:] for s in selectors if s.startswith("role:")),
        )

    def match(self, partner: PartnerRef) -> bool:
        return self.anyone or partner.id in self.ids or partner.role in self.roles


def retention_days(duration: str) -> int:
    """Approximate days of an ISO 8601 period (Y=365, M=30), for purge thresholds."""
    m = _DURATION.match(duration)
    if not m or not any(m.groups()):
        raise ConfigurationError(f"retention {duration!r} is not an ISO 8601 period like P7Y")
    years, months, days = (int(g or 0) for g in m.groups())
    return years * 365 + months * 30 + days


@dataclass(frozen=True)
class Protocol:
    """One data-sharing agreement."""

    id: str
    title: str
    legal_basis: str
    purpose: str
    senders: tuple[str, ...]
    receivers: tuple[str, ...]
    message_types: tuple[str, ...]
    fields: tuple[str, ...]
    retention: str
    receiver_fields: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    lookups: tuple[str, ...] = ()
    source: str = ""
    capacities: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def retention_days(self) -> int:
        return retention_days(self.retention)

    # senders and receivers as sets, made once: every message asks about its sender and receivers
    @cached_property
    def _senders(self) -> _Selectors:
        return _Selectors.of(self.senders)

    @cached_property
    def _receivers(self) -> _Selectors:
        return _Selectors.of(self.receivers)

    def allows_sender(self, partner: PartnerRef) -> bool:
        return self._senders.match(partner)

    def allows_receiver(self, partner: PartnerRef) -> bool:
        return self._receivers.match(partner)

    def allows_capacity(self, capacity: str, partner: PartnerRef) -> bool:
        """May ``partner`` follow a person in ``capacity`` under this protocol (reference directory)?"""
        if capacity not in self.capacities or not self.allows_receiver(partner):
            return False
        holders = self.capacities[capacity]
        return not holders or any(_matches(s, partner) for s in holders)

    def fields_for(self, receiver: PartnerRef) -> tuple[str, ...]:
        for selector, narrowed in self.receiver_fields.items():
            if _matches(selector, receiver):
                return narrowed
        return self.fields


class ProtocolBook:
    """All protocols the hub enforces."""

    def __init__(self, protocols: Iterable[Protocol]) -> None:
        self._by_id: dict[str, Protocol] = {}
        for p in protocols:
            if p.id in self._by_id:
                raise ConfigurationError(f"protocol {p.id} defined twice")
            self._by_id[p.id] = p

    @classmethod
    def load(cls, directory: Path) -> ProtocolBook:
        items = []
        for path in sorted(directory.glob("*.yaml")):
            items.append(_parse(path, yaml.safe_load(path.read_text(encoding="utf-8"))))
        if not items:
            raise ConfigurationError(f"no protocols found in {directory}")
        return cls(items)

    def all(self) -> list[Protocol]:
        return list(self._by_id.values())

    def get(self, protocol_id: str) -> Protocol | None:
        return self._by_id.get(protocol_id)

    def authorize(
        self,
        *,
        purpose: str,
        sender: PartnerRef,
        message_type: str,
        receivers: Iterable[PartnerRef],
    ) -> Protocol:
        """The protocol that allows this exchange.

        Raises:
            NotAllowed: naming the first rule the exchange breaks.
        """
        protocol = self._by_id.get(purpose)
        if protocol is None:
            raise NotAllowed(
                f"er bestaat geen protocol {purpose!r}; het doel (purpose) moet een protocol-id zijn",
                invalid_params=[InvalidParam("purpose", "onbekend protocol", "protocol")],
            )
        if message_type not in protocol.message_types:
            raise NotAllowed(
                f"protocol {protocol.id} staat berichttype {message_type!r} niet toe",
                invalid_params=[InvalidParam("type", f"toegestaan: {', '.join(protocol.message_types)}", "protocol")],
            )
        if not protocol.allows_sender(sender):
            raise NotAllowed(
                f"protocol {protocol.id} staat {sender.id} niet toe als afzender",
                invalid_params=[InvalidParam("sender", "geen afzender onder dit protocol", "protocol")],
            )
        self.authorize_receivers(protocol, receivers)
        return protocol

    @staticmethod
    def authorize_receivers(protocol: Protocol, receivers: Iterable[PartnerRef]) -> None:
        """The last step of :meth:`authorize`, for a protocol it returned before the receivers were known.

        Raises:
            NotAllowed: naming every receiver the protocol does not allow.
        """
        refused = [r.id for r in receivers if not protocol.allows_receiver(r)]
        if refused:
            raise NotAllowed(
                f"protocol {protocol.id} staat {', '.join(refused)} niet toe als ontvanger",
                invalid_params=[InvalidParam("receivers", f"{r} niet toegestaan", "protocol") for r in refused],
            )

    def authorize_lookup(self, *, purpose: str, requester: PartnerRef, kind: str) -> Protocol:
        """The protocol that allows a synchronous question, or NotAllowed."""
        protocol = self._by_id.get(purpose)
        if protocol is None or kind not in protocol.lookups:
            raise NotAllowed(f"geen protocol {purpose!r} dat opvraging {kind!r} toestaat")
        if not protocol.allows_sender(requester):
            raise NotAllowed(f"protocol {protocol.id} staat {requester.id} niet toe deze opvraging te doen")
        return protocol


def _parse(path: Path, spec: Any) -> Protocol:
    if not isinstance(spec, dict):
        raise ConfigurationError(f"{path}: a protocol is a mapping")
    required = ("id", "title", "legalBasis", "purpose", "from", "to", "messageTypes", "fields", "retention")
    missing = [k for k in required if k not in spec]
    if missing:
        raise ConfigurationError(f"{path}: missing {', '.join(missing)}")
    retention_days(str(spec["retention"]))
    return Protocol(
        id=str(spec["id"]),
        title=str(spec["title"]),
        legal_basis=str(spec["legalBasis"]),
        purpose=str(spec["purpose"]),
        senders=tuple(spec["from"]),
        receivers=tuple(spec["to"]),
        message_types=tuple(spec["messageTypes"]),
        fields=tuple(spec["fields"]),
        retention=str(spec["retention"]),
        receiver_fields={k: tuple(v) for k, v in (spec.get("receiverFields") or {}).items()},
        lookups=tuple(spec.get("lookups") or ()),
        source=str(path.name),
        capacities=_capacities(path, spec.get("capacities")),
    )


def _capacities(path: Path, spec: Any) -> dict[str, tuple[str, ...]]:
    """``capacities`` as a list (any receiver may hold them) or a mapping capacity -> selectors."""
    if spec is None:
        return {}
    if isinstance(spec, list):
        return {str(c): () for c in spec}
    if isinstance(spec, dict):
        return {str(c): tuple(v or ()) for c, v in spec.items()}
    raise ConfigurationError(f"{path}: capacities is a list or a mapping")


# -- field paths --------------------------------------------------------------


def _paths(element: etree._Element, prefix: str = "") -> Iterable[tuple[str, etree._Element]]:
    for child in element:
        if not isinstance(child.tag, str):
            continue
        path = f"{prefix}{etree.QName(child).localname}"
        yield path, child
        yield from _paths(child, path + "/")


@lru_cache(maxsize=256)
def _index(fields: tuple[str, ...]) -> tuple[frozenset[str], frozenset[str]]:
    """The listed fields, and every path on the way to one of them."""
    on_the_way = {f[:i] for f in fields for i, ch in enumerate(f) if ch == "/"}
    return frozenset(fields), frozenset(on_the_way)


def _allowed(path: str, fields: tuple[str, ...]) -> bool:
    """A path is allowed if it is a listed field, inside one, or on the way to one."""
    exact, on_the_way = _index(fields)
    if path in exact or path in on_the_way:
        return True
    cut = path.rfind("/")
    while cut > 0:
        if path[:cut] in exact:
            return True
        cut = path.rfind("/", 0, cut)
    return False


def _cut_off(payload: etree._Element, fields: tuple[str, ...]) -> list[tuple[etree._Element, str]]:
    """The elements (with their paths) that no listed field allows, highest first.

    Walks only the paths on the way to a listed field: a listed field's subtree is allowed
    as a whole and not walked, and below a cut-off element everything is outside anyway.
    """
    exact, on_the_way = _index(fields)
    out: list[tuple[etree._Element, str]] = []
    stack: list[tuple[etree._Element, str]] = [(payload, "")]
    while stack:
        element, prefix = stack.pop()
        for child in element:
            tag = child.tag
            if not isinstance(tag, str):
                continue
            path = prefix + tag.rpartition("}")[2]
            if path in exact:
                continue
            if path in on_the_way:
                stack.append((child, path + "/"))
            else:
                out.append((child, path))
    return out


def fields_outside(payload: etree._Element, fields: tuple[str, ...]) -> list[str]:
    """Payload paths that carry data the protocol does not list (runs for every accepted message)."""
    outside: set[str] = set()
    for element, path in _cut_off(payload, fields):
        outside.add(path)
        outside.update(p for p, _ in _paths(element, path + "/"))
    return sorted(outside)


def minimize(payload: etree._Element, fields: tuple[str, ...]) -> etree._Element:
    """A copy of the payload with only the allowed fields (data minimisation; runs for every
    delivery): what :func:`_cut_off` names is removed with everything below it."""
    copy = deepcopy(payload)  # lxml copies in C, with the namespaces in scope
    copy.tail = None
    for element, _ in _cut_off(copy, fields):
        parent = element.getparent()
        if parent is not None:
            parent.remove(element)
    return copy


def minimize_json(data: Mapping[str, Any], fields: tuple[str, ...], prefix: str = "") -> dict[str, Any]:
    """A lookup answer with only the allowed fields (slash paths over object keys)."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        path = f"{prefix}{key}"
        if not _allowed(path, fields):
            continue
        exact, _ = _index(fields)
        inside = path in exact or any(path.startswith(f + "/") for f in exact)
        if isinstance(value, Mapping) and not inside:
            out[key] = minimize_json(value, fields, path + "/")
        else:
            out[key] = value
    return out
