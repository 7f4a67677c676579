"""National numbers never reach the logs."""

from __future__ import annotations

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
