"""Monitors -- SPEC section 7: /healthz, /readyz, /metrics, and a slow client
that must not stall the event loop."""

from __future__ import annotations

import math
import socket
import time

import pytest
import requests

from conftest import (
    DEFAULT_MAX_BODY,
    WEBHOOK_PATH,
    Metrics,
    created,
    describe,
    json_bytes,
    new_webhook_secret,
    uid,
)

DURATION = "gatewayd_http_request_duration_seconds"


def test_healthz_unauthenticated(gw):
    r = requests.get(gw.url("/healthz"), timeout=5)
    assert r.status_code == 200, describe(r)


def test_readyz_ready(gw):
    r = requests.get(gw.url("/readyz"), timeout=5)
    assert r.status_code == 200, describe(r)
    assert r.headers.get("Content-Type", "").startswith("application/json")
    assert r.json() == {"ready": True}


def test_metrics_is_prometheus_text(gw):
    gw.accept(created(uid("ses"), uid("ath")))  # so the webhook counter has a sample
    r = requests.get(gw.url("/metrics"), timeout=5)
    assert r.status_code == 200, describe(r)
    assert r.headers.get("Content-Type", "").startswith("text/plain"), r.headers
    m = Metrics(r.text)
    assert m.families, "no metric families parsed"
    names = {f.name for f in m.families}
    assert any(n.startswith("gatewayd_webhooks") for n in names), names
    assert any(n.startswith(DURATION) for n in names), names


def test_webhook_outcome_counters_count_exactly(gw):
    before = gw.metrics()
    sent = {"accepted": 0, "duplicate": 0, "ignored": 0, "invalid_signature": 0, "malformed_json": 0,
            "body_too_large": 0, "missing_header": 0}

    ids = []
    for _ in range(4):
        ids.append(gw.accept(created(uid("ses"), uid("ath"))))
        sent["accepted"] += 1
    for mid in ids[:3]:
        r = gw.post_webhook(created(uid("ses"), uid("ath")), msg_id=mid)
        assert r.status_code == 200 and r.json() == {"duplicate": True}, describe(r)
        sent["duplicate"] += 1
    for _ in range(2):
        gw.accept({"type": "mystery.event", "timestamp": "2026-01-01T00:00:00Z", "data": {}})
        sent["ignored"] += 1
    for _ in range(2):
        r = gw.post_webhook(created(uid("ses"), uid("ath")), secret=new_webhook_secret())
        assert r.status_code == 401, describe(r)
        sent["invalid_signature"] += 1
    r = gw.post_webhook(b'{"type": "session.created", ')
    assert r.status_code == 400, describe(r)
    sent["malformed_json"] += 1
    big = b'{"x":"' + b"y" * DEFAULT_MAX_BODY + b'"}'
    r = gw.post_raw(big, gw.signed_headers(big))
    assert r.status_code == 413, describe(r)
    sent["body_too_large"] += 1
    body = json_bytes(created(uid("ses"), uid("ath")))
    h = gw.signed_headers(body)
    del h["webhook-signature"]
    r = gw.post_raw(body, h)
    assert r.status_code == 401, describe(r)
    sent["missing_header"] += 1

    after = gw.metrics()
    deltas = {k: after.webhooks(k) - before.webhooks(k) for k in sent}
    assert deltas == sent
    # No other outcome moved.
    total_before = sum(v for _, v in before.select("gatewayd_webhooks_total"))
    total_after = sum(v for _, v in after.select("gatewayd_webhooks_total"))
    assert total_after - total_before == sum(sent.values())


def test_request_duration_histogram_uses_route_templates(gw):
    sid, aid = uid("ses"), uid("ath")
    gw.accept(created(sid, aid))
    before = gw.metrics()
    n_health = 5
    for _ in range(n_health):
        assert gw.http.get(gw.url("/healthz"), timeout=5).status_code == 200
    for _ in range(3):
        assert gw.status(sid).status_code == 200
    missing = uid("ses_missing")
    assert gw.status(missing).status_code == 404
    gw.accept(created(uid("ses"), uid("ath")))
    after = gw.metrics()

    def count(**labels):
        return after.get(DURATION + "_count", **labels) - before.get(DURATION + "_count", **labels)

    assert count(method="GET", route="/healthz", status="200") == n_health
    assert count(method="GET", route="/v1/sessions/{id}", status="200") == 3
    assert count(method="GET", route="/v1/sessions/{id}", status="404") == 1
    assert count(method="POST", route="/v1/webhooks/plan", status="202") == 1
    # Raw ids never become label values (unbounded cardinality).
    assert sid not in after.text and missing not in after.text

    # Histogram consistency for every label set.
    for labels, cnt in after.select(DURATION + "_count"):
        buckets = sorted(
            ((float(lb["le"]), v) for lb, v in after.select(DURATION + "_bucket", **labels)),
            key=lambda x: x[0],
        )
        assert buckets, labels
        assert buckets[-1][0] == math.inf and buckets[-1][1] == cnt, (labels, buckets, cnt)
        assert all(a[1] <= b[1] for a, b in zip(buckets, buckets[1:])), buckets
        assert after.get(DURATION + "_sum", **labels) >= 0


def test_monitors_need_no_auth_and_ignore_bad_auth(gw):
    for path in ("/healthz", "/readyz", "/metrics"):
        r = requests.get(gw.url(path), headers={"Authorization": "Bearer nope"}, timeout=5)
        assert r.status_code == 200, describe(r)


# --------------------------------------------------------------------------
# Slow clients must not block the loop
# --------------------------------------------------------------------------


def _timed_health(gw, n=10):
    worst = 0.0
    for _ in range(n):
        t = time.monotonic()
        r = requests.get(gw.url("/healthz"), timeout=3)
        worst = max(worst, time.monotonic() - t)
        assert r.status_code == 200
    return worst


def test_stalled_clients_do_not_block_others(gw):
    socks = []
    try:
        # Half a request line + headers, then silence.
        for _ in range(10):
            s = socket.create_connection(("127.0.0.1", gw.port), timeout=5)
            s.sendall(b"POST " + WEBHOOK_PATH.encode() + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Ty")
            socks.append(s)
        # Complete headers, body promised but only partly sent.
        for _ in range(10):
            s = socket.create_connection(("127.0.0.1", gw.port), timeout=5)
            s.sendall(
                b"POST " + WEBHOOK_PATH.encode() + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                b"Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n{\"type\":"
            )
            socks.append(s)
        # Connected, nothing sent at all.
        for _ in range(10):
            socks.append(socket.create_connection(("127.0.0.1", gw.port), timeout=5))
        time.sleep(0.2)
        worst = _timed_health(gw)
        assert worst < 1.0, f"/healthz took {worst:.3f}s while slow clients stalled"
        # Real work still flows too.
        gw.accept(created(uid("ses"), uid("ath")))
    finally:
        for s in socks:
            s.close()
    assert _timed_health(gw, 3) < 1.0
