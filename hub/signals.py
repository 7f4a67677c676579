"""Signaalmelding: a municipality hears that a DUO signal about its inburgeraar arrived.

DUO establishes inburgeringsplicht and corrects earlier signals; today a
municipality learns of them by looking in DUO's Portaal inburgering. Through
the knooppunt the signal itself is routed (``config/routing.yaml``) to the
municipality of its ``gemeentecode`` and to the municipalities that follow the
person as ``woongemeente``: for them the delivery (push on plateau 2, the
portal inbox on plateau 1) is the notification. Two kinds of municipality
would still have to poll, and get a compact ``signaalmelding`` instead (the
person's identifier, which signal, its message id, when; nothing else):

- ``VOLGT_PERSOON``: it follows the person in the reference directory in a
  capacity that does not take the full signal (``meldingen`` under protocol
  ``nl-signaalmelding``: a municipality that keeps working in DUO's portal but
  wants to be told when to look);
- ``EERDER_SIGNAAL``: a correctiesignaal replaces a signal it received, and the
  correction itself goes elsewhere (e.g. DUO corrected the gemeentecode).

The notice is an ordinary message from the signal's sender under protocol
``nl-signaalmelding`` (channel ``notice``), stored, audited and delivered like
any other. Its id is derived from the signal's id and the receiver, and its
content from the stored signal, so a resend of the signal (or a crash between
the two) yields the same notice, stored once.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import orjson
import structlog
from lxml import etree
from sqlalchemy import bindparam, select

from hub import envelope as env
from hub.directory import FOLLOWERS as _FOLLOWERS
from hub.errors import HubError
from hub.routing import field_value
from hub.store.tables import deliveries

if TYPE_CHECKING:
    from hub.partners import Partner
    from hub.service import Accepted, Hub

log = structlog.get_logger(__name__)

SIGNAL_TYPES = frozenset({"inburgeringsplicht", "correctiesignaal"})
"""The DUO signals a municipality is told about."""
NOTICE_TYPE = "signaalmelding"
NOTICE_PURPOSE = "nl-signaalmelding"
NOTICE_CHANNEL = "notice"
MUNICIPALITY_ROLE = "gemeente"
_EARLIER_RECEIVERS = select(deliveries.c.receiver).where(deliveries.c.message_id == bindparam("message_id"))
_NAMESPACE = uuid.UUID("6f1d5f0e-2b8c-4b7e-9a41-0c3e5d7a9b21")


def notice_id(signal_id: str, receiver: str) -> uuid.UUID:
    """The notice's message id: the same for every resend of the signal."""
    return uuid.uuid5(_NAMESPACE, f"{NOTICE_TYPE}:{signal_id}:{receiver}")


class SignalNotices:
    """Works out who is told of a DUO signal, and sends them a signaalmelding."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        # a deployment without the notice's protocol or type simply sends none
        self.enabled = hub.protocols.get(NOTICE_PURPOSE) is not None and any(
            t.name == NOTICE_TYPE for t in hub.infomodel.types()
        )

    def recipients(
        self, sender: Partner, envelope: env.Envelope, payload: etree._Element, accepted: Accepted
    ) -> dict[str, str]:
        """Municipality -> reason, for those that do not receive the signal itself."""
        if not envelope.subject_type or not envelope.subject_id:
            return {}
        told: dict[str, str] = {}
        # on the ingest path of every signal: the directory's cheap reads, no pool checkout
        reads = self.hub.directory.reads
        planned = accepted.forwarding.follows if accepted.forwarding is not None else None
        follows: Sequence[tuple[Any, ...]]
        if planned is not None:
            follows = planned
        else:  # a replay, or a type routed without the directory: read it now
            id_hash = self.hub.hasher(envelope.subject_type, envelope.subject_id)
            follows = reads.rows(_FOLLOWERS, {"id_hash": id_hash, "at": datetime.now(UTC).date()})
        for partner_id, _capacity in follows:
            told.setdefault(str(partner_id), "VOLGT_PERSOON")
        replaces = field_value(payload, "vervangtBericht") if envelope.type == "correctiesignaal" else None
        if replaces:
            for (receiver,) in reads.rows(_EARLIER_RECEIVERS, {"message_id": replaces}):
                told.setdefault(str(receiver), "EERDER_SIGNAAL")
        out = {}
        for partner_id, reason in told.items():
            partner = self.hub.partners.get(partner_id)
            if (
                partner is None
                or not partner.active
                or partner.role != MUNICIPALITY_ROLE
                or partner_id == sender.id
                or partner_id in accepted.receivers
            ):
                continue
            out[partner_id] = reason
        return out

    async def after_signal(
        self, sender: Partner, envelope: env.Envelope, payload: etree._Element, accepted: Accepted
    ) -> list[str]:
        """Send the notices for an accepted (or replayed) signal; returns the notices' ids.

        A notice that cannot be stored is logged, never a reason to refuse the signal:
        the signal is already durable and delivered to its own receivers.
        """
        if envelope.type not in SIGNAL_TYPES or not self.enabled:
            return []
        sent = []
        for receiver, reason in sorted(self.recipients(sender, envelope, payload, accepted).items()):
            mid = notice_id(str(envelope.message_id), receiver)
            body: dict[str, object] = {
                "identificatie": {envelope.subject_type.lower(): envelope.subject_id} if envelope.subject_type else {},
                "signaal": envelope.type,
                "signaalBericht": str(envelope.message_id),
                "ontvangenOp": accepted.received_at.date().isoformat(),
                "reden": reason,
            }
            replaces = field_value(payload, "vervangtBericht")
            if envelope.type == "correctiesignaal" and replaces:
                body["vervangtBericht"] = replaces
            doc = {
                "messageId": str(mid),
                "type": NOTICE_TYPE,
                "version": "1.0",
                "subject": {"type": envelope.subject_type, "id": envelope.subject_id},
                "purpose": NOTICE_PURPOSE,
                "conversationId": str(envelope.conversation_id or envelope.message_id),
                "createdAt": accepted.received_at.isoformat(),
                "receivers": [receiver],
                "payload": body,
            }
            try:
                notice = self.hub.parse_json(orjson.dumps(doc))
                await self.hub.accept(sender, notice, channel=NOTICE_CHANNEL)
            except HubError as exc:
                log.warning(
                    "signal_notice_failed",
                    message_id=str(envelope.message_id),
                    partner=receiver,
                    error=exc.code,
                )
                continue
            log.info("signal_notice_sent", message_id=str(envelope.message_id), partner=receiver, reason=reason)
            sent.append(str(mid))
        return sent
