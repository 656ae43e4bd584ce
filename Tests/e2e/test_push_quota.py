"""Provider quotas (SPEC section 5, issue 5): with rate_limit_per_minute = 120 the gateway
never makes more than 120 provider calls (token calls included) in any 60 s window,
also right after a restart, yet drains at >= 90 % of the quota, earliest dates first.

The sandbox enforces the same limit and counts every 429 it answers: one would mean
the gateway overstepped. 100 Garmin sessions need 200 API calls (create + schedule):
120 in the first window, the rest after it, with a gateway restart in between.
"""

from __future__ import annotations

import time

import pytest
import requests

from conftest import created, future_date, uid, wait_for
from test_connections import Sandbox, connect

QUOTA = 120
SESSIONS = 100


@pytest.fixture(scope="module")
def qsandbox(gatewayd_bin, tmp_path_factory):
    s = Sandbox(gatewayd_bin, tmp_path_factory.mktemp("qsandbox"), args=["--rate-limit-per-minute", str(QUOTA)])
    yield s
    s.stop()


def test_quota_is_never_exceeded_and_nearly_used(fresh_daemon, qsandbox):
    extra = qsandbox.provider_config()
    extra["providers.garmin"]["rate_limit_per_minute"] = QUOTA
    # One call at a time: the send order then shows the scheduling order (with several
    # calls in flight, sessions finishing in the same millisecond say nothing about it).
    extra["providers.garmin"]["max_concurrency"] = 1
    gw = fresh_daemon("quota", extra=extra)
    athletes = [(uid("ath"), uid("g")) for _ in range(4)]
    for athlete, user in athletes:
        connect(gw, athlete, "garmin", user)  # 2 calls each, counted in the window too

    sessions = []
    for k in range(SESSIONS):
        athlete, _ = athletes[k % len(athletes)]
        sid = uid("ses")
        day = future_date(2 + (SESSIONS - k) % 50)  # dates arrive out of order
        sessions.append((sid, day))
        gw.accept(created(sid, athlete, day=day))
    started = time.monotonic()

    def sent() -> int:
        return gw.query("SELECT COUNT(*) FROM sessions WHERE export_status = 'SENT'")[0][0]

    # Mid-drain restart: the persisted window must keep the gateway out of a second burst.
    wait_for(lambda: sent() >= 20, timeout=30, what="first pushes")
    gw.stop()
    gw.start()
    wait_for(lambda: sent() == SESSIONS, timeout=200, interval=0.5, what="all sessions SENT")
    elapsed = time.monotonic() - started

    calls = requests.get(qsandbox.base + "/_sandbox/calls", timeout=5).json()
    assert calls.get("answered429", 0) == 0, f"the sandbox had to refuse calls: {calls}"
    api_calls = 2 * SESSIONS + 2 * len(athletes)
    # >= 90 % of the quota: beyond the first full window, calls went out at least at 0.9 x 120 / min.
    beyond_first_window = max(0, api_calls - QUOTA)
    assert elapsed <= 60 + 60 * beyond_first_window / (0.9 * QUOTA) + 10, f"drained in {elapsed:.1f}s"

    # Earliest dates first: once the window is full a backlog forms, and it drains in date
    # order: the first half of the backlog sent holds (nearly) its earliest half by date.
    rows = gw.query("SELECT id, date, exported_at_ms FROM sessions ORDER BY exported_at_ms")
    first_sent = rows[0][2]
    # Sessions sent after the first window: they waited in the queue together.
    backlog = [(sid, day) for sid, day, at in rows if at >= first_sent + 30_000]
    assert len(backlog) >= 20, f"no backlog formed ({len(backlog)} sessions after the first window)"
    half = len(backlog) // 2
    first_half = {sid for sid, _ in backlog[:half]}
    earliest = {sid for sid, _ in sorted(backlog, key=lambda s: (s[1], s[0]))[:half]}
    # Unloaded runs send the backlog in exact date order; on a loaded 2-core machine a few
    # sessions finish out of turn, so the bar is set well above chance (0.5), not at 1.
    assert len(first_half & earliest) >= 0.7 * half, "the backlog was not sent earliest dates first"
