"""The envelope's copies keep every field they do not change."""

import dataclasses
import uuid
from datetime import UTC, datetime

from hub.envelope import Envelope
from hub.identifiers import parse_bsn


def _full() -> Envelope:
    return Envelope(
        message_id=uuid.uuid4(),
        type="inburgeringsplicht",
        version="1.0",
        sender="duo",
        subject=parse_bsn("111222333"),
        purpose="nl-inburgeringsplicht",
        receivers=("gemeente-ede",),
        conversation_id=uuid.uuid4(),
        traceparent="00-" + "a" * 32 + "-" + "b" * 16 + "-01",
        created_at=datetime(2026, 11, 24, 7, 0, tzinfo=UTC),
    )


def test_evolve_changes_only_what_it_is_given() -> None:
    original = _full()
    # every field is set to something other than its default, so a field evolve forgot would show
    defaults = {f.name: f.default for f in dataclasses.fields(Envelope) if f.default is not dataclasses.MISSING}
    assert all(getattr(original, name) != value for name, value in defaults.items())
    assert original.evolve() == original
    changed = original.evolve(
        sender="coa", receivers=("gemeente-utrecht",), traceparent="00-" + "c" * 32 + "-" + "d" * 16 + "-01"
    )
    assert (
        dataclasses.replace(
            original,
            sender="coa",
            receivers=("gemeente-utrecht",),
            traceparent="00-" + "c" * 32 + "-" + "d" * 16 + "-01",
        )
        == changed
    )
    assert original.evolve(sender="coa") == dataclasses.replace(original, sender="coa")
    assert original.evolve(receivers=()) == dataclasses.replace(original, receivers=())
