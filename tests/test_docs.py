"""The documents stay true to the code: every audit event the hub can write is catalogued."""

from __future__ import annotations

from hub.audit import EVENTS
from hub.settings import ROOT


def test_every_audit_event_is_in_the_catalogue() -> None:
    catalogue = (ROOT / "docs" / "audit-events.md").read_text(encoding="utf-8")
    missing = sorted(e for e in EVENTS if f"| `{e}` |" not in catalogue)
    assert missing == [], f"add these events to docs/audit-events.md: {missing}"


def test_the_readme_opens_with_the_two_commands() -> None:
    head = "\n".join((ROOT / "README.md").read_text(encoding="utf-8").splitlines()[:12])
    assert "make run" in head
    assert "make test" in head
