"""The XML attack corpus through the portal upload: every hostile file is refused with a clear
answer, quickly, and nothing is sent or stored."""

from __future__ import annotations

import time
from contextlib import closing

from tests.helpers import count_messages
from tests.portal.conftest import Portal, upload
from tests.security.corpus import attacks


def test_every_hostile_xml_upload_is_refused_and_changes_nothing(portal: Portal) -> None:
    tried = []
    with closing(portal.login()) as c:
        for name, body in attacks(max_bytes=1_048_576):
            started = time.perf_counter()
            r = upload(c, body, filename="batch.xml")
            elapsed = time.perf_counter() - started
            assert r.status_code < 500, f"{name}: {r.status_code}"
            assert "1</span> verstuurd" not in r.text, name
            assert elapsed < 5, f"{name} took {elapsed:.2f} s"
            tried.append(name)
    assert len(tried) >= 20
    assert count_messages(portal.live.settings) == 0
