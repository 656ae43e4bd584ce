"""POST /v1/webhooks/plan -- SPEC section 2 (signature, tolerance, durability,
duplicates, envelope validation, revision semantics) against the real binary."""

from __future__ import annotations

import base64
import json

import pytest
import requests

from conftest import (
    DEFAULT_MAX_BODY,
    SPEC_VECTOR,
    WEBHOOK_PATH,
    assert_error,
    athlete_deleted,
    created,
    deleted,
    describe,
    future_date,
    iso_now,
    json_bytes,
    new_webhook_secret,
    now_s,
    session_obj,
    sign,
    sign_manual,
    uid,
    updated,
    wait_for,
)


# --------------------------------------------------------------------------
# Signing helper (no daemon needed)
# --------------------------------------------------------------------------


def test_signing_helper_reproduces_spec_vector():
    v = SPEC_VECTOR
    assert sign(v["secret"], v["id"], v["timestamp"], v["body"]) == v["signature"]
    assert sign_manual(v["secret"], v["id"], v["timestamp"], v["body"]) == v["signature"]


def test_manual_signer_matches_standardwebhooks_on_random_input():
    secret = new_webhook_secret()
    body = json_bytes({"x": "é ü ✓", "n": 1})
    assert sign(secret, "msg_1", 1700000000, body) == sign_manual(secret, "msg_1", 1700000000, body)


# --------------------------------------------------------------------------
# SPEC public test vector against the gateway
# --------------------------------------------------------------------------


def test_spec_vector_signature_is_accepted_by_gateway(fresh_daemon):
    """Vector secret + huge tolerance so the 2021 timestamp is in range. The body is
    not an envelope, so a passing signature shows up as 400 invalid_event (not 401)."""
    v = SPEC_VECTOR
    d = fresh_daemon("vector", webhook_secrets=[new_webhook_secret(), v["secret"]], timestamp_tolerance_s=2000000000)
    headers = {
        "webhook-id": v["id"],
        "webhook-timestamp": str(v["timestamp"]),
        "webhook-signature": v["signature"],
        "Content-Type": "application/json",
    }
    r = d.post_raw(v["body"], headers)
    assert_error(r, 400, "invalid_event")
    # A rejected request is not stored, so the same id is not a duplicate.
    r = d.post_raw(v["body"], headers)
    assert_error(r, 400, "invalid_event")
    assert d.event_row(v["id"]) is None
    # One flipped bit in the signature -> 401.
    raw = bytearray(base64.b64decode(v["signature"][3:]))
    raw[0] ^= 1
    bad = dict(headers, **{"webhook-signature": "v1," + base64.b64encode(bytes(raw)).decode()})
    assert_error(d.post_raw(v["body"], bad), 401, "invalid_signature")


# --------------------------------------------------------------------------
# Accepted events
# --------------------------------------------------------------------------


def test_created_is_committed_before_202(gw):
    sid, aid = uid("ses"), uid("ath")
    msg = gw.accept(created(sid, aid, revision=3))
    # No polling: the row must already be durable when the 202 arrives.
    row = gw.event_row(msg)
    assert row is not None, "202 sent but webhook_events has no row"
    assert row[2] == "session.created"
    assert row[3] == "applied"
    assert isinstance(row[1], int) and row[1] > 0
    s = gw.session_row(sid)
    assert s is not None
    assert (s["athlete_id"], s["revision"], s["session_type"], s["deleted"]) == (aid, 3, "ENDURANCE", 0)
    assert s["event_id"] == msg
    assert gw.jobs_for(sid, "session.push"), "no session.push job for a created ENDURANCE session"


def test_charset_parameter_in_content_type_is_accepted(gw):
    gw.accept(created(uid("ses"), uid("ath")), content_type="application/json; charset=utf-8")


def test_optional_fields_may_be_absent(gw):
    sid, aid = uid("ses"), uid("ath")
    ev = created(sid, aid)
    s = ev["data"]["session"]
    for k in ("title", "description", "startTime", "athlete"):
        s.pop(k, None)
    gw.accept(ev)
    s2 = session_obj(uid("ses"), aid, startTime=f"{future_date()}T06:30:00+01:00", description="d",
                     athlete={"ftpWatts": 260, "maxHr": 188, "thresholdHr": 170})
    gw.accept({"type": "session.created", "timestamp": iso_now(), "data": {"session": s2}})


def test_timestamp_within_tolerance_is_accepted(gw):
    gw.accept(created(uid("ses"), uid("ath")), ts=now_s() - 240)
    gw.accept(created(uid("ses"), uid("ath")), ts=now_s() + 240)


def test_any_configured_secret_verifies(gw):
    assert len(gw.secrets) >= 2
    for secret in gw.secrets:
        gw.accept(created(uid("ses"), uid("ath")), secret=secret)


def test_signature_header_with_several_entries(gw):
    body = json_bytes(created(uid("ses"), uid("ath")))
    msg, ts = uid("msg"), now_s()
    good = sign(gw.secrets[0], msg, ts, body)
    wrong = sign(new_webhook_secret(), msg, ts, body)
    sig = f"v2,{good[3:]} {wrong} v1a,xyz {good}"
    r = gw.post_raw(body, {"webhook-id": msg, "webhook-timestamp": str(ts), "webhook-signature": sig,
                           "Content-Type": "application/json"})
    assert r.status_code == 202, describe(r)


def test_invalid_workout_is_still_accepted(gw):
    """Workout contents are validated at push time, not at ingest (SPEC section 2)."""
    sid, aid = uid("ses"), uid("ath")
    bad_workout = {"sport": "BIKE", "steps": []}
    gw.accept(created(sid, aid, workout=bad_workout))
    r = gw.status(sid)
    assert r.status_code == 200, describe(r)
    assert r.json()["exportStatus"] in ("NOT_CONNECTED", "FAILED", "PENDING")


def test_unknown_event_type_is_accepted_and_ignored(gw):
    msg = gw.accept({"type": "coach.renamed", "timestamp": iso_now(), "data": {"coach": {"id": "c1"}}})
    row = gw.event_row(msg)
    assert row is not None and row[3] == "ignored" and row[2] == "coach.renamed"


# --------------------------------------------------------------------------
# Duplicates
# --------------------------------------------------------------------------


def test_duplicate_webhook_id_has_no_side_effect(gw):
    sid, aid = uid("ses"), uid("ath")
    msg = gw.accept(created(sid, aid, revision=1))
    first = gw.event_row(msg)
    r = gw.post_webhook(created(sid, aid, revision=1), msg_id=msg)
    assert r.status_code == 200, describe(r)
    assert r.json() == {"duplicate": True}
    # Same id, different (even newer) body, valid signature: still a duplicate, nothing applied.
    r = gw.post_webhook(updated(sid, aid, revision=9), msg_id=msg)
    assert r.status_code == 200, describe(r)
    assert r.json() == {"duplicate": True}
    # Same id with a body that is not even a valid envelope: duplicate check comes first.
    r = gw.post_webhook(b'{"type": 1}', msg_id=msg)
    assert r.status_code == 200, describe(r)
    assert r.json() == {"duplicate": True}
    r = gw.post_webhook(b'{not json at all', msg_id=msg)
    assert r.status_code == 200, describe(r)
    assert r.json() == {"duplicate": True}
    assert gw.event_row(msg) == first
    assert gw.session_row(sid)["revision"] == 1
    assert gw.query("SELECT COUNT(*) FROM webhook_events WHERE webhook_id = ?", (msg,))[0][0] == 1


def test_duplicate_with_bad_signature_is_401_not_duplicate(gw):
    sid, aid = uid("ses"), uid("ath")
    msg = gw.accept(created(sid, aid))
    r = gw.post_webhook(created(sid, aid), msg_id=msg, secret=new_webhook_secret())
    assert_error(r, 401, "invalid_signature")


def test_rejected_request_does_not_reserve_its_id(gw):
    sid, aid = uid("ses"), uid("ath")
    msg = uid("msg")
    bad = created(sid, aid)
    bad["data"]["session"]["revision"] = "three"
    assert_error(gw.post_webhook(bad, msg_id=msg), 400, "invalid_event")
    assert gw.event_row(msg) is None
    gw.accept(created(sid, aid), msg_id=msg)


# --------------------------------------------------------------------------
# Revision semantics
# --------------------------------------------------------------------------


def test_newer_revision_replaces_older_or_equal_changes_nothing(gw):
    sid, aid = uid("ses"), uid("ath")
    d3, d5, d4 = future_date(20), future_date(21), future_date(22)
    m1 = gw.accept(created(sid, aid, revision=3, day=d3))
    m2 = gw.accept(updated(sid, aid, revision=5, day=d5))
    assert gw.session_row(sid)["revision"] == 5 and gw.session_row(sid)["date"] == d5
    m3 = gw.accept(updated(sid, aid, revision=4, day=d4))  # older: 202, no change
    m4 = gw.accept(updated(sid, aid, revision=5, day=d4))  # equal: 202, no change
    m5 = gw.accept(created(sid, aid, revision=1, day=d4))  # late create: no change
    s = gw.session_row(sid)
    assert (s["revision"], s["date"], s["event_id"]) == (5, d5, m2)
    outcomes = {m: gw.event_row(m)[3] for m in (m1, m2, m3, m4, m5)}
    assert outcomes == {m1: "applied", m2: "applied", m3: "stale", m4: "stale", m5: "stale"}
    r = gw.status(sid)
    assert r.status_code == 200 and r.json()["revision"] == 5, describe(r)


def test_update_before_create_out_of_order(gw):
    sid, aid = uid("ses"), uid("ath")
    gw.accept(updated(sid, aid, revision=2))
    m = gw.accept(created(sid, aid, revision=1))
    assert gw.event_row(m)[3] == "stale"
    assert gw.session_row(sid)["revision"] == 2


def test_revision_zero_is_valid(gw):
    sid, aid = uid("ses"), uid("ath")
    gw.accept(created(sid, aid, revision=0))
    assert gw.session_row(sid)["revision"] == 0
    gw.accept(updated(sid, aid, revision=1))
    assert gw.session_row(sid)["revision"] == 1


def test_session_deleted_marks_deleted_and_queues_push(gw):
    sid, aid = uid("ses"), uid("ath")
    gw.accept(created(sid, aid, revision=1))
    m = gw.accept(deleted(sid, aid, revision=2))
    assert gw.event_row(m)[3] == "applied"
    s = gw.session_row(sid)
    assert s["deleted"] == 1 and s["revision"] == 2
    assert any(j[2] == 2 for j in gw.jobs_for(sid, "session.push")), gw.jobs_for(sid)
    r = gw.status(sid)
    assert r.status_code == 200, describe(r)
    assert r.json()["deleted"] is True and r.json()["revision"] == 2


def test_stale_session_deleted_changes_nothing(gw):
    sid, aid = uid("ses"), uid("ath")
    gw.accept(created(sid, aid, revision=5))
    m = gw.accept(deleted(sid, aid, revision=4))
    assert gw.event_row(m)[3] == "stale"
    s = gw.session_row(sid)
    assert s["deleted"] == 0 and s["revision"] == 5


def test_non_endurance_session_is_stored_without_export_status(gw):
    sid, aid = uid("ses"), uid("ath")
    gw.accept(created(sid, aid, session_type="STRENGTH"))  # no workout needed
    s = gw.session_row(sid)
    assert s["session_type"] == "STRENGTH" and s["export_status"] is None
    r = gw.status(sid)
    assert r.status_code == 200 and r.json()["exportStatus"] is None, describe(r)


def test_session_that_stops_being_endurance_is_queued_for_removal(gw):
    sid, aid = uid("ses"), uid("ath")
    gw.accept(created(sid, aid, revision=1))
    gw.accept(updated(sid, aid, revision=2, session_type="STRENGTH"))
    assert gw.session_row(sid)["session_type"] == "STRENGTH"
    jobs = gw.jobs_for(sid, "session.push")
    assert any(j[2] == 2 for j in jobs), jobs


def test_athlete_deleted_removes_sessions(gw):
    aid = uid("ath")
    sids = [uid("ses") for _ in range(3)]
    for s in sids:
        gw.accept(created(s, aid))
    other = uid("ses")
    gw.accept(created(other, uid("ath")))
    m = gw.accept(athlete_deleted(aid))
    assert gw.event_row(m)[2] == "athlete.deleted"
    assert gw.jobs_for(aid, "athlete.delete"), "no athlete.delete job"
    for s in sids:
        wait_for(lambda: gw.status(s).status_code == 404, timeout=15, what=f"{s} gone after athlete.deleted")
        assert_error(gw.status(s), 404, "not_found")
    r = gw.get("/v1/sessions", params={"athleteId": aid})
    assert r.status_code == 200 and r.json()["sessions"] == [], describe(r)
    assert gw.status(other).status_code == 200


# --------------------------------------------------------------------------
# Routing
# --------------------------------------------------------------------------


def test_wrong_method_and_unknown_route(gw):
    assert_error(gw.http.get(gw.url(WEBHOOK_PATH), timeout=10), 405, "method_not_allowed")
    assert_error(gw.http.put(gw.url(WEBHOOK_PATH), data=b"{}", timeout=10), 405, "method_not_allowed")
    body = json_bytes(created(uid("ses"), uid("ath")))
    r = gw.post_raw(body, gw.signed_headers(body), path="/v1/webhooks/nope")
    assert_error(r, 404, "not_found")
    assert_error(gw.http.get(gw.url("/definitely/not/here"), timeout=10), 404, "not_found")


# --------------------------------------------------------------------------
# Table of bad inputs: exact status + error code (+ field path for invalid_event)
# --------------------------------------------------------------------------


def _env(**session_changes):
    """A valid session.created envelope, with data.session fields replaced (or removed with _DROP)."""
    ev = created(uid("ses"), uid("ath"))
    for k, v in session_changes.items():
        if v is _DROP:
            ev["data"]["session"].pop(k, None)
        else:
            ev["data"]["session"][k] = v
    return ev


_DROP = object()


def _case_tampered(gw):
    body = json_bytes(_env())
    h = gw.signed_headers(body)
    return body.replace(b'"revision":1', b'"revision":2'), h


def _case_wrong_secret(gw):
    body = json_bytes(_env())
    return body, gw.signed_headers(body, secret=new_webhook_secret())


def _case_ts(delta):
    def f(gw):
        body = json_bytes(_env())
        return body, gw.signed_headers(body, ts=now_s() + delta)
    return f


def _case_missing(header):
    def f(gw):
        body = json_bytes(_env())
        h = gw.signed_headers(body)
        del h[header]
        return body, h
    return f


def _case_empty(header):
    def f(gw):
        body = json_bytes(_env())
        h = gw.signed_headers(body)
        h[header] = ""
        return body, h
    return f


def _case_bad_ts(value):
    def f(gw):
        body = json_bytes(_env())
        h = gw.signed_headers(body)
        h["webhook-timestamp"] = value
        return body, h
    return f


def _case_sig_header(value_fn):
    def f(gw):
        body = json_bytes(_env())
        h = gw.signed_headers(body)
        h["webhook-signature"] = value_fn(h["webhook-signature"])
        return body, h
    return f


def _case_size(n):
    def f(gw):
        ev = _env(description="x")
        base = json_bytes(ev)
        pad = n - len(base)
        ev["data"]["session"]["description"] = "x" * (pad + 1)
        body = json_bytes(ev)
        assert len(body) == n
        return body, gw.signed_headers(body)
    return f


def _case_content_type(ct):
    def f(gw):
        body = json_bytes(_env())
        return body, gw.signed_headers(body, content_type=ct)
    return f


def _case_body(raw):
    def f(gw):
        body = raw() if callable(raw) else raw
        return body, gw.signed_headers(body)
    return f


def _case_event(make):
    def f(gw):
        body = json_bytes(make())
        return body, gw.signed_headers(body)
    return f


def _truncated():
    return json_bytes(_env())[:-7]


def _invalid_utf8():
    return json_bytes(_env(title="TITLE")).replace(b"TITLE", b"T\xff\xfeLE")


def _without(key):
    def make():
        ev = _env()
        ev.pop(key)
        return ev
    return make


BAD_INPUTS = [
    # id, case builder, status, code, message check (("contains"|"prefix"), text) or None
    ("tampered_body", _case_tampered, 401, "invalid_signature", None),
    ("wrong_secret", _case_wrong_secret, 401, "invalid_signature", None),
    ("stale_timestamp", _case_ts(-3600), 401, "timestamp_out_of_tolerance", None),
    ("stale_timestamp_just_outside", _case_ts(-330), 401, "timestamp_out_of_tolerance", None),
    ("future_timestamp", _case_ts(+3600), 401, "timestamp_out_of_tolerance", None),
    ("future_timestamp_just_outside", _case_ts(+330), 401, "timestamp_out_of_tolerance", None),
    ("missing_webhook_id", _case_missing("webhook-id"), 401, "missing_header", ("contains", "webhook-id")),
    ("missing_webhook_timestamp", _case_missing("webhook-timestamp"), 401, "missing_header", ("contains", "webhook-timestamp")),
    ("missing_webhook_signature", _case_missing("webhook-signature"), 401, "missing_header", ("contains", "webhook-signature")),
    ("empty_webhook_id", _case_empty("webhook-id"), 401, "missing_header", ("contains", "webhook-id")),
    ("empty_webhook_signature", _case_empty("webhook-signature"), 401, "missing_header", ("contains", "webhook-signature")),
    ("non_numeric_timestamp", _case_bad_ts("yesterday"), 401, "invalid_timestamp", None),
    ("fractional_timestamp", _case_bad_ts("1700000000.5"), 401, "invalid_timestamp", None),
    ("unknown_signature_version_only", _case_sig_header(lambda s: "v2," + s[3:]), 401, "invalid_signature", None),
    ("signature_not_versioned", _case_sig_header(lambda s: "garbage"), 401, "invalid_signature", None),
    ("signature_not_base64", _case_sig_header(lambda s: "v1,@@@not-base64@@@"), 401, "invalid_signature", None),
    ("body_max_plus_one", _case_size(DEFAULT_MAX_BODY + 1), 413, "body_too_large", None),
    ("body_2MiB", _case_size(2 * 1024 * 1024), 413, "body_too_large", None),
    ("content_type_text_plain", _case_content_type("text/plain"), 415, "unsupported_media_type", None),
    ("content_type_form", _case_content_type("application/x-www-form-urlencoded"), 415, "unsupported_media_type", None),
    ("content_type_absent", _case_content_type(None), 415, "unsupported_media_type", None),
    ("truncated_json", _case_body(_truncated), 400, "malformed_json", None),
    ("invalid_utf8", _case_body(_invalid_utf8), 400, "malformed_json", None),
    ("not_json", _case_body(b"hello, gateway"), 400, "malformed_json", None),
    ("empty_body", _case_body(b""), 400, "malformed_json", None),
    ("revision_as_string", _case_event(lambda: _env(revision="3")), 400, "invalid_event", ("prefix", "data.session.revision")),
    ("revision_negative", _case_event(lambda: _env(revision=-1)), 400, "invalid_event", ("prefix", "data.session.revision")),
    ("revision_fractional", _case_event(lambda: _env(revision=1.5)), 400, "invalid_event", ("prefix", "data.session.revision")),
    ("date_impossible", _case_event(lambda: _env(date="2026-13-45")), 400, "invalid_event", ("prefix", "data.session.date")),
    ("date_feb_30", _case_event(lambda: _env(date="2027-02-30")), 400, "invalid_event", ("prefix", "data.session.date")),
    ("date_wrong_format", _case_event(lambda: _env(date="01/12/2026")), 400, "invalid_event", ("prefix", "data.session.date")),
    ("id_empty", _case_event(lambda: _env(id="")), 400, "invalid_event", ("prefix", "data.session.id")),
    ("id_missing", _case_event(lambda: _env(id=_DROP)), 400, "invalid_event", ("prefix", "data.session.id")),
    ("athlete_id_missing", _case_event(lambda: _env(athleteId=_DROP)), 400, "invalid_event", ("prefix", "data.session.athleteId")),
    ("session_type_number", _case_event(lambda: _env(sessionType=7)), 400, "invalid_event", ("prefix", "data.session.sessionType")),
    ("endurance_without_workout", _case_event(lambda: _env(workout=_DROP)), 400, "invalid_event", ("prefix", "data.session.workout")),
    ("endurance_workout_not_object", _case_event(lambda: _env(workout="5x5")), 400, "invalid_event", ("prefix", "data.session.workout")),
    ("data_not_object", _case_event(lambda: {"type": "session.created", "timestamp": iso_now(), "data": "x"}), 400, "invalid_event", ("prefix", "data")),
    ("session_not_object", _case_event(lambda: {"type": "session.created", "timestamp": iso_now(), "data": {"session": [1]}}), 400, "invalid_event", ("prefix", "data.session")),
    ("type_missing", _case_event(_without("type")), 400, "invalid_event", ("prefix", "type")),
    ("type_not_string", _case_event(lambda: dict(_env(), type=5)), 400, "invalid_event", ("prefix", "type")),
    ("timestamp_missing", _case_event(_without("timestamp")), 400, "invalid_event", ("prefix", "timestamp")),
    ("data_missing", _case_event(_without("data")), 400, "invalid_event", ("prefix", "data")),
    ("envelope_is_array", _case_body(b"[1,2,3]"), 400, "invalid_event", None),
    ("deleted_without_revision", _case_event(lambda: {"type": "session.deleted", "timestamp": iso_now(),
                                                      "data": {"session": {"id": uid("ses"), "athleteId": uid("ath")}}}),
     400, "invalid_event", ("prefix", "data.session.revision")),
    ("athlete_deleted_without_id", _case_event(lambda: {"type": "athlete.deleted", "timestamp": iso_now(),
                                                        "data": {"athlete": {}}}),
     400, "invalid_event", ("prefix", "data.athlete.id")),
    # Order of checks
    ("order_size_before_signature", lambda gw: (b"{" * (DEFAULT_MAX_BODY + 10), {"Content-Type": "application/json"}),
     413, "body_too_large", None),
    ("order_content_type_before_signature", lambda gw: (b"{}", {"Content-Type": "text/plain"}),
     415, "unsupported_media_type", None),
    ("order_signature_before_json", lambda gw: (b"{not json", gw.signed_headers(b"{not json", secret=new_webhook_secret())),
     401, "invalid_signature", None),
    ("order_timestamp_before_json", lambda gw: (b"{not json", gw.signed_headers(b"{not json", ts=now_s() - 7200)),
     401, "timestamp_out_of_tolerance", None),
]


@pytest.mark.parametrize(
    "builder,status,code,msg",
    [pytest.param(b, s, c, m, id=i) for (i, b, s, c, m) in BAD_INPUTS],
)
def test_bad_input(gw, builder, status, code, msg):
    body, headers = builder(gw)
    before = gw.metrics()
    r = gw.post_raw(body, headers)
    kw = {}
    if msg:
        kw = {"message_contains": msg[1]} if msg[0] == "contains" else {"message_prefix": msg[1]}
    assert_error(r, status, code, **kw)
    # Rejected requests are not stored, and are counted under their error code.
    mid = headers.get("webhook-id")
    if mid:
        assert gw.event_row(mid) is None, f"rejected webhook {mid} was stored"
    after = gw.metrics()
    assert after.webhooks(code) - before.webhooks(code) == 1, f"gatewayd_webhooks_total{{outcome={code!r}}}"
    assert after.webhooks("accepted") == before.webhooks("accepted")
    assert gw.alive()


def test_body_over_4x_limit_is_rejected(gw):
    body = b'{"pad":"' + b"x" * (5 * DEFAULT_MAX_BODY) + b'"}'
    try:
        r = requests.post(gw.url(WEBHOOK_PATH), data=body, headers=gw.signed_headers(body), timeout=30)
    except requests.ConnectionError:
        pass  # libevent may answer 413 and close while we are still sending
    else:
        assert r.status_code == 413, describe(r)
    assert gw.http.get(gw.url("/healthz"), timeout=5).status_code == 200


# --------------------------------------------------------------------------
# Logs never carry secrets or signatures (SPEC section 7). Runs last in this module.
# --------------------------------------------------------------------------


def test_zz_log_has_no_secrets_or_signatures(gw):
    log = gw.log_text()
    assert log.strip(), "expected some log output on stderr"
    for secret in gw.secrets:
        assert secret not in log
        assert secret[len("whsec_"):] not in log
    for key in gw.api_keys:
        assert key not in log
    assert gw.token_key.split(":", 1)[1] not in log
    leaked = [s for s in gw.sent_signatures if len(s) > 20 and s[3:] in log]
    assert not leaked, f"{len(leaked)} webhook signatures appear in the log, e.g. {leaked[0]}"
