"""REST status API for the plan app -- SPEC section 6 (GET /v1/sessions[/{id}])."""

from __future__ import annotations

import pytest

from conftest import (
    STATUS_KEYS,
    assert_error,
    created,
    deleted,
    describe,
    new_api_key,
    uid,
    wait_for,
)


def _status_json(gw, sid):
    r = gw.status(sid)
    assert r.status_code == 200, describe(r)
    assert r.headers.get("Content-Type", "").startswith("application/json"), describe(r)
    return r.json()


def _list_all(gw, **params):
    """Follow nextCursor to the end; returns the concatenated sessions and the page sizes."""
    out, pages, cursor = [], [], None
    for _ in range(1000):
        p = dict(params)
        if cursor is not None:
            p["cursor"] = cursor
        r = gw.get("/v1/sessions", params=p)
        assert r.status_code == 200, describe(r)
        body = r.json()
        assert set(body) == {"sessions", "nextCursor"}, describe(r)
        assert body["nextCursor"] is None or isinstance(body["nextCursor"], str), describe(r)
        out.extend(body["sessions"])
        pages.append(len(body["sessions"]))
        cursor = body["nextCursor"]
        if cursor is None:
            return out, pages
    pytest.fail("paging never ended")


@pytest.fixture(scope="module")
def athlete_a(gw):
    """7 ENDURANCE sessions + 1 STRENGTH session for one athlete, 3 ENDURANCE for another."""
    aid, other = uid("ath"), uid("ath")
    endurance = sorted(f"ses_{aid[-8:]}_{i:02d}" for i in range(7))
    strength = f"ses_{aid[-8:]}_str"
    for sid in reversed(endurance):  # inserted out of order on purpose
        gw.accept(created(sid, aid))
    gw.accept(created(strength, aid, session_type="STRENGTH"))
    for i in range(3):
        gw.accept(created(f"ses_{other[-8:]}_{i}", other))
    return {"id": aid, "endurance": endurance, "strength": strength, "other": other}


# --------------------------------------------------------------------------
# Authentication
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "auth",
    [
        pytest.param(None, id="no_header"),
        pytest.param("Bearer ", id="empty_bearer"),
        pytest.param("Bearer wrong-key", id="wrong_key"),
        pytest.param("__near_miss__", id="key_plus_one_char"),
        pytest.param("__basic__", id="basic_scheme"),
        pytest.param("__raw__", id="key_without_scheme"),
    ],
)
@pytest.mark.parametrize("path", ["/v1/sessions/ses_whatever", "/v1/sessions"])
def test_unauthorized(gw, auth, path):
    key = gw.api_keys[0]
    if auth == "__near_miss__":
        auth = f"Bearer {key}x"
    elif auth == "__basic__":
        auth = f"Basic {key}"
    elif auth == "__raw__":
        auth = key
    r = gw.get(path, auth=auth if auth is not None else False)
    assert_error(r, 401, "unauthorized")


def test_every_configured_api_key_works(gw, athlete_a):
    for key in gw.api_keys:
        r = gw.get(f"/v1/sessions/{athlete_a['endurance'][0]}", auth=f"Bearer {key}")
        assert r.status_code == 200, describe(r)
    r = gw.get(f"/v1/sessions/{athlete_a['endurance'][0]}", auth=f"Bearer {new_api_key()}")
    assert_error(r, 401, "unauthorized")


# --------------------------------------------------------------------------
# GET /v1/sessions/{id}
# --------------------------------------------------------------------------


def test_unknown_session_is_404(gw):
    assert_error(gw.status(uid("ses_nope")), 404, "not_found")


def test_status_object_shape_for_unconnected_endurance_session(gw):
    sid, aid = uid("ses"), uid("ath")
    gw.accept(created(sid, aid, revision=4))
    body = wait_for(
        lambda: (lambda b: b if b.get("exportStatus") == "NOT_CONNECTED" else None)(_status_json(gw, sid)),
        timeout=10,
        what="exportStatus NOT_CONNECTED",
    )
    assert set(body) == STATUS_KEYS, body
    assert body == {
        "sessionId": sid,
        "athleteId": aid,
        "revision": 4,
        "deleted": False,
        "exportStatus": "NOT_CONNECTED",
        "exportProvider": None,
        "exportedAt": None,
        "externalWorkoutId": None,
        "lastExportError": None,
        "attempts": 0,
        "nextAttemptAt": None,
    }
    assert type(body["attempts"]) is int and type(body["revision"]) is int


def test_non_endurance_session_has_null_export_status(gw, athlete_a):
    body = _status_json(gw, athlete_a["strength"])
    assert set(body) == STATUS_KEYS
    assert body["exportStatus"] is None and body["exportProvider"] is None
    assert body["deleted"] is False and body["athleteId"] == athlete_a["id"]


def test_deleted_session_stays_readable(gw):
    sid, aid = uid("ses"), uid("ath")
    gw.accept(created(sid, aid, revision=1))
    gw.accept(deleted(sid, aid, revision=2))
    body = _status_json(gw, sid)
    assert set(body) == STATUS_KEYS
    assert body["deleted"] is True and body["revision"] == 2 and body["sessionId"] == sid


def test_status_follows_newest_revision(gw):
    sid, aid = uid("ses"), uid("ath")
    gw.accept(created(sid, aid, revision=2))
    gw.accept(created(sid, aid, revision=7))
    gw.accept(created(sid, aid, revision=3))
    assert _status_json(gw, sid)["revision"] == 7


# --------------------------------------------------------------------------
# GET /v1/sessions (list, filters, paging)
# --------------------------------------------------------------------------


def test_list_by_athlete_sorted_by_id(gw, athlete_a):
    sessions, pages = _list_all(gw, athleteId=athlete_a["id"])
    ids = [s["sessionId"] for s in sessions]
    assert ids == sorted(athlete_a["endurance"] + [athlete_a["strength"]])
    for s in sessions:
        assert set(s) == STATUS_KEYS, s
        assert s["athleteId"] == athlete_a["id"]


@pytest.mark.parametrize("limit", [1, 2, 3, 7, 8, 500])
def test_paging_yields_each_session_exactly_once(gw, athlete_a, limit):
    sessions, pages = _list_all(gw, athleteId=athlete_a["id"], limit=limit)
    ids = [s["sessionId"] for s in sessions]
    expected = sorted(athlete_a["endurance"] + [athlete_a["strength"]])
    assert ids == expected, (pages, ids)
    assert all(p <= limit for p in pages), pages
    full_pages = pages if pages[-1] else pages[:-1]  # a final empty page is tolerated
    assert all(p == limit for p in full_pages[:-1]), pages


def test_default_limit_is_50(gw):
    aid = uid("ath")
    ids = sorted(f"ses_{aid[-8:]}_{i:03d}" for i in range(55))
    for sid in ids:
        gw.accept(created(sid, aid))
    r = gw.get("/v1/sessions", params={"athleteId": aid})
    assert r.status_code == 200, describe(r)
    first = r.json()
    assert [s["sessionId"] for s in first["sessions"]] == ids[:50]
    assert isinstance(first["nextCursor"], str) and first["nextCursor"]
    r = gw.get("/v1/sessions", params={"athleteId": aid, "cursor": first["nextCursor"]})
    assert r.status_code == 200, describe(r)
    assert [s["sessionId"] for s in r.json()["sessions"]] == ids[50:]
    assert r.json()["nextCursor"] is None


def test_unfiltered_list_is_sorted_and_pages(gw, athlete_a):
    sessions, pages = _list_all(gw, limit=5)
    ids = [s["sessionId"] for s in sessions]
    assert ids == sorted(ids) and len(ids) == len(set(ids))
    assert set(athlete_a["endurance"]) <= set(ids)


def test_status_filter(gw, athlete_a):
    aid = athlete_a["id"]

    def not_connected():
        s, _ = _list_all(gw, athleteId=aid, status="NOT_CONNECTED")
        return [x["sessionId"] for x in s]

    wait_for(lambda: not_connected() == athlete_a["endurance"], timeout=10, what="NOT_CONNECTED filter")
    for st in ("PENDING", "SENT", "FAILED"):
        s, _ = _list_all(gw, athleteId=aid, status=st)
        assert s == [], (st, s)
    s, _ = _list_all(gw, status="NOT_CONNECTED", limit=3)
    assert all(x["exportStatus"] == "NOT_CONNECTED" for x in s)
    assert set(athlete_a["endurance"]) <= {x["sessionId"] for x in s}


def test_unknown_athlete_gives_empty_list(gw):
    r = gw.get("/v1/sessions", params={"athleteId": uid("ath_nobody")})
    assert r.status_code == 200, describe(r)
    assert r.json() == {"sessions": [], "nextCursor": None}


@pytest.mark.parametrize(
    "params",
    [
        pytest.param({"limit": "0"}, id="limit_0"),
        pytest.param({"limit": "-1"}, id="limit_neg"),
        pytest.param({"limit": "501"}, id="limit_501"),
        pytest.param({"limit": "abc"}, id="limit_abc"),
        pytest.param({"limit": "1.5"}, id="limit_fraction"),
        pytest.param({"status": "DONE"}, id="status_unknown"),
    ],
)
def test_invalid_list_parameters(gw, params):
    assert_error(gw.get("/v1/sessions", params=params), 400, "invalid_parameter")


def test_zz_log_has_no_api_keys(gw):
    log = gw.log_text()
    for key in gw.api_keys:
        assert key not in log
