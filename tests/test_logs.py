"""National numbers never reach the logs."""

from __future__ import annotations

import io
import json
import sys

import pytest
import structlog

from hub import logs
from hub.logs import mask, mask_national_numbers


def test_insz_and_bsn_are_masked_wherever_they_sit() -> None:
    event = {
        "event": "x",
        "insz": "85073003328",
        "text": "persoon 85.07.30-033.28 en 111222333",
        "nested": {"list": ["111222333"]},
    }
    out = mask_national_numbers(None, "info", dict(event))
    flat = str(out)
    assert "85073003328" not in flat
    assert "85.07.30-033.28" not in flat
    assert "111222333" not in flat


def test_uuids_and_timestamps_are_left_alone() -> None:
    text = "message 3f1c2a9e-7b41-4c1e-9a53-0d2b8e6f4a10 at 2026-11-24T09:00:00"
    assert mask(text) == text


def test_logs_follow_the_stderr_of_the_moment(monkeypatch: pytest.MonkeyPatch) -> None:
    """A stream swapped in while the logs were configured (as CliRunner does around a command)
    keeps the logs while it is open, and once it is closed later log calls do not fail: they go
    to the stderr of the moment."""
    during, after = io.StringIO(), io.StringIO()
    before = structlog.get_config()
    try:
        monkeypatch.setattr(sys, "stderr", during)
        logs.configure(json=True, level="info")
        monkeypatch.setattr(sys, "stderr", io.StringIO())
        structlog.get_logger("test").info("while_open")
        assert json.loads(during.getvalue())["event"] == "while_open"  # the stream configure found
        during.close()
        monkeypatch.setattr(sys, "stderr", after)
        structlog.get_logger("test").info("afterwards", insz="85073003328")
    finally:
        structlog.configure(**before)
    line = json.loads(after.getvalue())
    assert line["event"] == "afterwards"
    assert line["insz"] != "85073003328"  # still masked
