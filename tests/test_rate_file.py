"""Rate buckets shared through a file by the processes of one machine (`knooppunt run --processes N`)."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
import structlog.testing

from hub import limits
from hub.auth import RateLimiter
from hub.limits import FileRateLimiter


def test_two_limiters_on_one_file_share_each_partners_bucket(tmp_path: Path) -> None:
    path = tmp_path / "rate-buckets"
    a, b = FileRateLimiter(path), FileRateLimiter(path)
    try:
        waits = [limiter.take("partner:duo", 0.5, 6) for limiter in [a, b] * 5]
        assert waits[:6] == [0.0] * 6
        assert all(1.5 < w <= 2.0 for w in waits[6:]), waits  # one token every 2 s, for both
        assert a.take("partner:coa", 0.5, 6) == 0.0  # a bucket per partner
        # failed authentications per client address stay in each process
        assert [a.take("anonymous:10.0.0.1", 0.5, 1), b.take("anonymous:10.0.0.1", 0.5, 1)] == [0.0, 0.0]
    finally:
        a.close()
        b.close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    # a process started later finds the buckets as they are
    c = FileRateLimiter(path)
    try:
        assert c.take("partner:duo", 0.5, 6) > 0.0
    finally:
        c.close()
    # what a bucket per process would have given: the burst once per process
    local = [RateLimiter(), RateLimiter()]
    assert sum(limiter.take("partner:duo", 0.5, 6) == 0.0 for limiter in local * 5) == 10


def test_refill_follows_the_shared_clock(tmp_path: Path) -> None:
    now = [1000.0]
    a = FileRateLimiter(tmp_path / "b", clock=lambda: now[0])
    b = FileRateLimiter(tmp_path / "b", clock=lambda: now[0])
    try:
        assert [a.take("partner:x", 1.0, 2), b.take("partner:x", 1.0, 2)] == [0.0, 0.0]
        assert a.take("partner:x", 1.0, 2) == pytest.approx(1.0)
        now[0] += 1.5
        assert b.take("partner:x", 1.0, 2) == 0.0
        assert a.take("partner:x", 1.0, 2) == pytest.approx(0.5)
    finally:
        a.close()
        b.close()


def test_a_full_table_decides_new_partners_in_the_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(limits, "SLOTS", 2)
    limiter = FileRateLimiter(tmp_path / "b")
    try:
        with structlog.testing.capture_logs() as logged:
            assert limiter.take("partner:a", 1.0, 1) == 0.0
            assert limiter.take("partner:b", 1.0, 1) == 0.0
            assert limiter.take("partner:c", 1.0, 1) == 0.0  # no slot left: its own bucket
            assert limiter.take("partner:c", 1.0, 1) > 0.0  # ...which still limits it
        assert limiter.overflows == 2
        assert [e["key"] for e in logged if e["event"] == "rate_bucket_table_full"] == ["partner:c"]  # once
    finally:
        limiter.close()
