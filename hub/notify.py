"""E-mail to a plateau-1 organisation that something waits in its portal inbox.

Off unless ``KNOOPPUNT_PORTAL__SMTP_HOST`` is set and the organisation has a
notification address (``knooppunt users notify``). The mail holds no personal
data and not even the message type: only that new messages wait, how many,
and where to log in. At most one mail per organisation per
``notify_interval_seconds``; sending happens in a thread, never in the
writer, and a failure is logged, never retried (the inbox is the delivery).
"""

from __future__ import annotations

import asyncio
import smtplib
import time
from email.message import EmailMessage

import structlog
from sqlalchemy import Engine, and_, func, select

from hub.settings import PortalSettings
from hub.store.tables import deliveries, partners, portal_organisations

log = structlog.get_logger(__name__)


class InboxNotifier:
    """Debounced, personal-data-free e-mail notifications per organisation."""

    def __init__(self, settings: PortalSettings, engine: Engine, public_url: str) -> None:
        self.settings = settings
        self.engine = engine
        self.public_url = public_url.rstrip("/")
        self._last: dict[str, float] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.sent = 0

    @property
    def enabled(self) -> bool:
        return bool(self.settings.smtp_host)

    def message_waiting(self, partner_id: str) -> None:
        """Called when a message landed in ``partner_id``'s inbox (in the event loop)."""
        if not self.enabled:
            return
        now = time.monotonic()
        last = self._last.get(partner_id)
        if last is not None and now - last < self.settings.notify_interval_seconds:
            return
        self._last[partner_id] = now
        task = asyncio.create_task(self._notify(partner_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _notify(self, partner_id: str) -> None:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(portal_organisations.c.notify_email, partners.c.name)
                .join(partners, partners.c.id == portal_organisations.c.partner_id)
                .where(portal_organisations.c.partner_id == partner_id)
            ).first()
            waiting = conn.execute(
                select(func.count())
                .select_from(deliveries)
                .where(and_(deliveries.c.receiver == partner_id, deliveries.c.status == "in_inbox"))
            ).scalar_one()
        if row is None or not row.notify_email:
            return
        mail = EmailMessage()
        mail["From"] = self.settings.smtp_from
        mail["To"] = row.notify_email
        mail["Subject"] = "Nieuwe berichten in uw Knooppunt-inbox"
        mail.set_content(
            f"Beste collega van {row.name},\n\n"
            f"Er {'staat' if waiting == 1 else 'staan'} {waiting} nieuw{'' if waiting == 1 else 'e'} "
            f"bericht{'' if waiting == 1 else 'en'} in de inbox van uw organisatie op het Knooppunt-portaal.\n"
            f"Log in om ze te lezen: {self.public_url}/portaal/inbox\n\n"
            "Deze e-mail bevat bewust geen persoonsgegevens.\n"
        )
        try:
            await asyncio.to_thread(self._send, mail)
        except (OSError, smtplib.SMTPException) as exc:
            log.warning("inbox_notification_failed", partner=partner_id, error=exc.__class__.__name__)
            return
        self.sent += 1
        log.info("inbox_notified", partner=partner_id, waiting=int(waiting))

    def _send(self, mail: EmailMessage) -> None:
        host = self.settings.smtp_host or ""
        with smtplib.SMTP(host, self.settings.smtp_port, timeout=10) as smtp:
            if self.settings.smtp_starttls:
                smtp.starttls()
            if self.settings.smtp_username and self.settings.smtp_password:
                smtp.login(self.settings.smtp_username, self.settings.smtp_password)
            smtp.send_message(mail)
