"""`gatewayd sandbox`: fake Garmin and Wahoo per SPEC section 4, faults, inspection, notifications.

Drives the real binary (GATEWAYD_BIN) over HTTP only; see docs/SANDBOX.md.
"""

from __future__ import annotations

import base64
import json
import signal
import threading
import time
from datetime import date, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from sandbox_fixture import (  # noqa: F401  (fixtures are used by name)
    GARMIN_CLIENT,
    REDIRECT_URI,
    SandboxProcess,
    pkce_pair,
    sandbox,
    sandbox_server,
)

GARMIN_CREATE = "/workoutportal/workout/v2"


def garmin_workout(name: str = "Threshold 5x5", steps: int = 3, sport: str = "CYCLING") -> dict:
    items = []
    for i in range(steps):
        items.append(
            {
                "type": "WorkoutStep",
                "stepOrder": i + 1,
                "intensity": "INTERVAL" if i % 2 else "ACTIVE",
                "durationType": "TIME",
                "durationValue": 300,
                "targetType": "POWER",
                "targetValueLow": 250,
                "targetValueHigh": 270,
            }
        )
    return {
        "workoutName": name,
        "description": "sandbox test",
        "sport": sport,
        "workoutProvider": "Workout Gateway",
        "workoutSourceId": "gatewayd",
        "segments": [{"segmentOrder": 1, "sport": sport, "steps": items}],
    }


def wahoo_plan_form(external_id: str, description: str = "Threshold 5x5") -> dict:
    plan = {
        "header": {"name": "Threshold", "version": "1.0.0", "description": description, "workout_type_family": 0, "workout_type_location": 0},
        "intervals": [{"name": "Work", "exit_trigger_type": "time", "exit_trigger_value": 300, "intensity_type": "active", "targets": [{"type": "watts", "low": 250, "high": 270}]}],
    }
    return {
        "plan[file]": "data:application/json;base64," + base64.b64encode(json.dumps(plan).encode()).decode(),
        "plan[filename]": "plan.json",
        "plan[external_id]": external_id,
        "plan[provider_updated_at]": "2026-11-25T09:00:00Z",
    }, plan


def wahoo_workout_form(token: str, plan_id: int, starts: str = "2026-12-01T05:30:00Z") -> dict:
    return {
        "workout[name]": "Threshold 5x5",
        "workout[workout_token]": token,
        "workout[workout_type_id]": "0",
        "workout[starts]": starts,
        "workout[minutes]": "55",
        "workout[plan_id]": str(plan_id),
    }


def location_query(r: requests.Response) -> dict[str, list[str]]:
    assert r.status_code == 302, r.text
    loc = r.headers["Location"]
    assert loc.startswith(REDIRECT_URI + "?"), loc
    return parse_qs(urlsplit(loc).query)


# --------------------------------------------------------------------------
# OAuth
# --------------------------------------------------------------------------


def test_garmin_code_flow_with_pkce(sandbox):
    verifier, challenge = pkce_pair()
    r = sandbox.authorize("garmin", "garmin-user-1", state="s-123", code_challenge=challenge, code_challenge_method="S256")
    q = location_query(r)
    assert q["state"] == ["s-123"]
    code = q["code"][0]
    assert len(code) >= 32
    t = sandbox.token("garmin", {"grant_type": "authorization_code", "code": code, "code_verifier": verifier, "redirect_uri": REDIRECT_URI})
    assert t.status_code == 200, t.text
    body = t.json()
    assert set(body) == {"access_token", "token_type", "expires_in", "refresh_token", "refresh_token_expires_in", "scope"}
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 86400
    assert body["refresh_token_expires_in"] == 7776000
    assert "WORKOUT_IMPORT" in body["scope"].split()
    who = sandbox.api("garmin", "GET", "/wellness-api/rest/user/id", body["access_token"])
    assert who.status_code == 200
    assert who.json() == {"userId": "garmin-user-1"}
    # The code is single use.
    again = sandbox.token("garmin", {"grant_type": "authorization_code", "code": code, "code_verifier": verifier, "redirect_uri": REDIRECT_URI})
    assert again.status_code == 400
    assert again.json()["error"] == "invalid_grant"
    assert sandbox.state("garmin", "garmin-user-1")["liveTokens"] == 1


def test_garmin_pkce_verifier_and_redirect_checked(sandbox):
    verifier, challenge = pkce_pair()
    code = location_query(sandbox.authorize("garmin", "u", code_challenge=challenge, code_challenge_method="S256"))["code"][0]
    other_verifier, _ = pkce_pair()
    bad = sandbox.token("garmin", {"grant_type": "authorization_code", "code": code, "code_verifier": other_verifier, "redirect_uri": REDIRECT_URI})
    assert bad.status_code == 400 and bad.json()["error"] == "invalid_grant"
    # A failed exchange used the code up as well.
    good_after = sandbox.token("garmin", {"grant_type": "authorization_code", "code": code, "code_verifier": verifier, "redirect_uri": REDIRECT_URI})
    assert good_after.status_code == 400 and good_after.json()["error"] == "invalid_grant"
    code2 = location_query(sandbox.authorize("garmin", "u", code_challenge=challenge, code_challenge_method="S256"))["code"][0]
    wrong_redirect = sandbox.token("garmin", {"grant_type": "authorization_code", "code": code2, "code_verifier": verifier, "redirect_uri": "http://elsewhere/cb"})
    assert wrong_redirect.status_code == 400 and wrong_redirect.json()["error"] == "invalid_grant"
    # Garmin requires PKCE S256 at authorize time.
    q = location_query(sandbox.authorize("garmin", "u", state="s-9"))
    assert q["error"] == ["invalid_request"] and q["state"] == ["s-9"] and "code" not in q
    q = location_query(sandbox.authorize("garmin", "u", state="s-9", code_challenge=challenge, code_challenge_method="plain"))
    assert q["error"] == ["invalid_request"]
    assert sandbox.calls()["invalidGrant"] == 3


def test_authorize_deny_and_bad_client(sandbox):
    _, challenge = pkce_pair()
    q = location_query(sandbox.authorize("garmin", "u", deny=True, state="s-d", code_challenge=challenge, code_challenge_method="S256"))
    assert q == {"error": ["access_denied"], "state": ["s-d"]}
    q = location_query(sandbox.authorize("wahoo", "42", deny=True, state="s-w"))
    assert q == {"error": ["access_denied"], "state": ["s-w"]}
    r = sandbox.authorize("wahoo", "42", client_id="someone-else")
    assert r.status_code == 400 and "Location" not in r.headers


def test_wrong_client_secret_is_invalid_client(sandbox):
    verifier, challenge = pkce_pair()
    code = location_query(sandbox.authorize("garmin", "u", code_challenge=challenge, code_challenge_method="S256"))["code"][0]
    t = sandbox.token(
        "garmin",
        {"grant_type": "authorization_code", "code": code, "code_verifier": verifier, "redirect_uri": REDIRECT_URI},
        client=(GARMIN_CLIENT[0], "wrong-secret"),
    )
    assert t.status_code == 401
    assert t.json()["error"] == "invalid_client"


def test_wahoo_code_flow(sandbox):
    tokens = sandbox.connect("wahoo", "12345")
    assert tokens["userId"] == "12345"
    assert tokens["expires_in"] == 7200
    assert tokens["token_type"] == "Bearer"
    user = sandbox.api("wahoo", "GET", "/v1/user", tokens["access_token"])
    assert user.status_code == 200 and user.json()["id"] == 12345
    # Wahoo without PKCE works as well (client secret authenticates).
    q = location_query(sandbox.authorize("wahoo", "12345"))
    t = sandbox.token("wahoo", {"grant_type": "authorization_code", "code": q["code"][0], "redirect_uri": REDIRECT_URI})
    assert t.status_code == 200, t.text
    assert sandbox.state("wahoo", "12345")["liveTokens"] == 2


def test_garmin_refresh_rotation(sandbox):
    first = sandbox.connect("garmin", "g-rot")
    r = sandbox.refresh("garmin", first["refresh_token"])
    assert r.status_code == 200, r.text
    second = r.json()
    assert second["refresh_token"] != first["refresh_token"]
    assert second["access_token"] != first["access_token"]
    # The old refresh token stops working; the new one works once.
    old = sandbox.refresh("garmin", first["refresh_token"])
    assert old.status_code == 400 and old.json()["error"] == "invalid_grant"
    assert sandbox.api("garmin", "GET", "/wellness-api/rest/user/id", second["access_token"]).status_code == 200
    third = sandbox.refresh("garmin", second["refresh_token"])
    assert third.status_code == 200
    assert sandbox.refresh("garmin", second["refresh_token"]).json()["error"] == "invalid_grant"
    calls = sandbox.calls()["calls"]
    assert calls["POST /garmin/di-oauth2-service/oauth/token#authorization_code"] == 1
    assert calls["POST /garmin/di-oauth2-service/oauth/token#refresh_token"] == 4


def test_wahoo_refresh_kills_old_pair(sandbox):
    first = sandbox.connect("wahoo", "777")
    r = sandbox.refresh("wahoo", first["refresh_token"])
    assert r.status_code == 200
    second = r.json()
    assert second["expires_in"] == 7200
    assert sandbox.api("wahoo", "GET", "/v1/user", first["access_token"]).status_code == 401
    assert sandbox.api("wahoo", "GET", "/v1/user", second["access_token"]).status_code == 200
    assert sandbox.refresh("wahoo", first["refresh_token"]).json()["error"] == "invalid_grant"
    assert sandbox.state("wahoo", "777")["liveTokens"] == 1


def test_wahoo_ten_token_cap(sandbox):
    pairs = [sandbox.connect("wahoo", "1010") for _ in range(10)]
    verifier, challenge = pkce_pair()
    code = location_query(sandbox.authorize("wahoo", "1010", code_challenge=challenge, code_challenge_method="S256"))["code"][0]
    t = sandbox.token("wahoo", {"grant_type": "authorization_code", "code": code, "code_verifier": verifier, "redirect_uri": REDIRECT_URI})
    assert t.status_code == 400
    assert t.json()["error"] == "too_many_tokens"
    assert sandbox.calls()["tooManyTokens"] == 1
    assert sandbox.state("wahoo", "1010")["liveTokens"] == 10
    # A refresh replaces a pair, so it still works at the cap.
    assert sandbox.refresh("wahoo", pairs[0]["refresh_token"]).status_code == 200
    # DELETE /v1/permissions revokes every token of the user.
    d = sandbox.api("wahoo", "DELETE", "/v1/permissions", pairs[1]["access_token"])
    assert d.status_code == 204
    assert sandbox.state("wahoo", "1010")["liveTokens"] == 0
    assert sandbox.api("wahoo", "GET", "/v1/user", pairs[2]["access_token"]).status_code == 401
    assert sandbox.connect("wahoo", "1010")["userId"] == "1010"


def test_expired_access_token_then_refresh(sandbox):
    tokens = sandbox.connect("garmin", "g-exp")
    r = sandbox.admin("POST", "/tokens/expire", {"provider": "garmin", "userId": "g-exp"})
    assert r.status_code == 200 and r.json() == {"expired": 1}
    assert sandbox.api("garmin", "GET", "/wellness-api/rest/user/id", tokens["access_token"]).status_code == 401
    fresh = sandbox.refresh("garmin", tokens["refresh_token"]).json()
    assert sandbox.api("garmin", "GET", "/wellness-api/rest/user/id", fresh["access_token"]).status_code == 200


def test_scripted_invalid_grant(sandbox):
    tokens = sandbox.connect("wahoo", "555")
    assert sandbox.admin("POST", "/tokens/invalid-grant", {"provider": "wahoo", "userId": "555"}).status_code == 200
    r = sandbox.refresh("wahoo", tokens["refresh_token"])
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"
    # The refresh token is dead from then on, and so is its access token.
    assert sandbox.refresh("wahoo", tokens["refresh_token"]).status_code == 400
    assert sandbox.api("wahoo", "GET", "/v1/user", tokens["access_token"]).status_code == 401
    assert sandbox.admin("POST", "/tokens/invalid-grant", {"provider": "wahoo", "userId": "nobody"}).status_code == 404


def test_garmin_deregistration_revokes(sandbox):
    tokens = sandbox.connect("garmin", "g-dereg")
    r = sandbox.api("garmin", "DELETE", "/wellness-api/rest/user/registration", tokens["access_token"])
    assert r.status_code == 204
    assert sandbox.api("garmin", "GET", "/wellness-api/rest/user/id", tokens["access_token"]).status_code == 401
    assert sandbox.refresh("garmin", tokens["refresh_token"]).json()["error"] == "invalid_grant"
    st = sandbox.state("garmin", "g-dereg")
    assert st["registered"] is False and st["liveTokens"] == 0


# --------------------------------------------------------------------------
# Garmin API
# --------------------------------------------------------------------------


def test_garmin_workout_and_schedule_lifecycle(sandbox):
    tok = sandbox.connect("garmin", "g-work")["access_token"]
    body = garmin_workout()
    c = sandbox.api("garmin", "POST", GARMIN_CREATE, tok, json=body)
    assert c.status_code == 200, c.text
    wid = c.json()["workoutId"]
    assert isinstance(wid, int)
    st = sandbox.state("garmin", "g-work")
    assert st["workouts"] == {str(wid): body}

    updated = garmin_workout(name="Threshold 4x6", steps=4)
    u = sandbox.api("garmin", "PUT", f"/training-api/workout/v2/{wid}", tok, json=updated)
    assert u.status_code == 204, u.text
    assert sandbox.state("garmin", "g-work")["workouts"] == {str(wid): updated}

    day = (date.today() + timedelta(days=10)).isoformat()
    s = sandbox.api("garmin", "POST", "/training-api/schedule/", tok, json={"workoutId": wid, "date": day})
    assert s.status_code == 200, s.text
    sid = s.json()
    assert isinstance(sid, int) and s.text.strip() == str(sid)
    assert sandbox.api("garmin", "GET", f"/training-api/schedule/{sid}", tok).json() == {"scheduleId": sid, "workoutId": wid, "date": day}

    rng = {"startDate": (date.today() + timedelta(days=9)).isoformat(), "endDate": day}
    lst = sandbox.api("garmin", "GET", "/training-api/schedule", tok, params=rng)
    assert lst.status_code == 200
    assert lst.json() == [{"scheduleId": sid, "workoutId": wid, "date": day}]
    before = {"startDate": rng["startDate"], "endDate": rng["startDate"]}
    assert sandbox.api("garmin", "GET", "/training-api/schedule", tok, params=before).json() == []

    moved = (date.today() + timedelta(days=12)).isoformat()
    m = sandbox.api("garmin", "PUT", f"/training-api/schedule/{sid}", tok, json={"scheduleId": sid, "workoutId": wid, "date": moved})
    assert m.status_code == 204
    assert sandbox.state("garmin", "g-work")["schedules"] == {str(sid): {"workoutId": wid, "date": moved}}

    assert sandbox.api("garmin", "DELETE", f"/training-api/schedule/{sid}", tok).status_code == 204
    assert sandbox.api("garmin", "GET", f"/training-api/schedule/{sid}", tok).status_code == 404
    assert sandbox.api("garmin", "DELETE", f"/training-api/workout/v2/{wid}", tok).status_code == 204
    assert sandbox.api("garmin", "DELETE", f"/training-api/workout/v2/{wid}", tok).status_code == 404
    st = sandbox.state("garmin", "g-work")
    assert st["workouts"] == {} and st["schedules"] == {}


def test_garmin_ownership_and_validation(sandbox):
    a = sandbox.connect("garmin", "g-a")["access_token"]
    b = sandbox.connect("garmin", "g-b")["access_token"]
    wid = sandbox.api("garmin", "POST", GARMIN_CREATE, a, json=garmin_workout()).json()["workoutId"]
    assert sandbox.api("garmin", "PUT", f"/training-api/workout/v2/{wid}", b, json=garmin_workout()).status_code == 403
    assert sandbox.api("garmin", "DELETE", f"/training-api/workout/v2/{wid}", b).status_code == 403
    assert sandbox.api("garmin", "POST", "/training-api/schedule/", b, json={"workoutId": wid, "date": "2030-01-01"}).status_code == 403

    def create(body):
        return sandbox.api("garmin", "POST", GARMIN_CREATE, a, json=body)

    assert create(garmin_workout(steps=100)).status_code == 200
    too_many = create(garmin_workout(steps=101))
    assert too_many.status_code == 400 and "100" in too_many.json()["message"]
    assert create(garmin_workout(sport="SWIMMING")).status_code == 400
    nameless = garmin_workout()
    del nameless["workoutName"]
    assert create(nameless).status_code == 400
    # A repeat counts itself and its children toward the 100 steps (flat stepOrder).
    rep = garmin_workout(steps=0)
    rep["segments"][0]["steps"] = [
        {"type": "WorkoutRepeatStep", "stepOrder": 1, "repeatType": "REPEAT_UNTIL_STEPS_CMPLT", "repeatValue": 60,
         "steps": [{"type": "WorkoutStep", "stepOrder": 2, "intensity": "INTERVAL", "durationType": "TIME", "durationValue": 30, "targetType": "OPEN"},
                   {"type": "WorkoutStep", "stepOrder": 3, "intensity": "RECOVERY", "durationType": "TIME", "durationValue": 30, "targetType": "OPEN"}]}
    ]
    assert create(rep).status_code == 200
    bad_schedule = sandbox.api("garmin", "POST", "/training-api/schedule/", a, json={"workoutId": wid, "date": "2030-02-30"})
    assert bad_schedule.status_code == 400
    assert sandbox.api("garmin", "GET", "/training-api/schedule", a, params={"startDate": "2030-01-01"}).status_code == 400
    assert len(sandbox.state("garmin", "g-a")["workouts"]) == 3


# --------------------------------------------------------------------------
# Wahoo API
# --------------------------------------------------------------------------


def test_wahoo_plans_and_workouts(sandbox):
    tok = sandbox.connect("wahoo", "2222")["access_token"]
    form, plan = wahoo_plan_form("ses_1")
    p = sandbox.api("wahoo", "POST", "/v1/plans", tok, data=form)
    assert p.status_code == 200, p.text
    pj = p.json()
    assert pj["external_id"] == "ses_1" and pj["description"] == "Threshold 5x5" and pj["filename"] == "plan.json"
    plan_id = pj["id"]
    st = sandbox.state("wahoo", "2222")
    assert st["plans"] == {str(plan_id): {"external_id": "ses_1", "filename": "plan.json", "provider_updated_at": "2026-11-25T09:00:00Z", "plan": plan}}

    found = sandbox.api("wahoo", "GET", "/v1/plans", tok, params={"external_id": "ses_1"})
    assert found.status_code == 200 and [x["id"] for x in found.json()] == [plan_id]
    assert sandbox.api("wahoo", "GET", "/v1/plans", tok, params={"external_id": "ses_other"}).json() == []
    # Not idempotent: a second POST makes a second plan.
    p2 = sandbox.api("wahoo", "POST", "/v1/plans", tok, data=form).json()["id"]
    assert [x["id"] for x in sandbox.api("wahoo", "GET", "/v1/plans", tok, params={"external_id": "ses_1"}).json()] == [plan_id, p2]
    assert sandbox.api("wahoo", "DELETE", f"/v1/plans/{p2}", tok).status_code == 204

    form2, plan2 = wahoo_plan_form("ses_1", description="Threshold 4x6")
    up = sandbox.api("wahoo", "PUT", f"/v1/plans/{plan_id}", tok, data=form2)
    assert up.status_code == 200 and up.json()["description"] == "Threshold 4x6"
    assert sandbox.state("wahoo", "2222")["plans"][str(plan_id)]["plan"] == plan2

    w = sandbox.api("wahoo", "POST", "/v1/workouts", tok, data=wahoo_workout_form("ses_1", plan_id))
    assert w.status_code == 200, w.text
    wj = w.json()
    assert {k: wj[k] for k in ("workout_token", "plan_id", "starts", "name", "minutes", "workout_type_id")} == {
        "workout_token": "ses_1", "plan_id": plan_id, "starts": "2026-12-01T05:30:00Z", "name": "Threshold 5x5",
        "minutes": 55, "workout_type_id": 0}
    wid = wj["id"]
    for i in range(3):
        sandbox.api("wahoo", "POST", "/v1/workouts", tok, data=wahoo_workout_form(f"other_{i}", plan_id, starts=f"2026-11-0{i + 1}T06:00:00Z"))
    page1 = sandbox.api("wahoo", "GET", "/v1/workouts", tok, params={"page": 1, "per_page": 2}).json()
    page2 = sandbox.api("wahoo", "GET", "/v1/workouts", tok, params={"page": 2, "per_page": 2}).json()
    assert page1["total"] == 4 and page1["page"] == 1 and page1["per_page"] == 2 and len(page1["workouts"]) == 2
    tokens = [x["workout_token"] for x in page1["workouts"] + page2["workouts"]]
    assert sorted(tokens) == ["other_0", "other_1", "other_2", "ses_1"]
    assert tokens[0] == "ses_1"  # newest `starts` first

    moved = sandbox.api("wahoo", "PUT", f"/v1/workouts/{wid}", tok, data={"workout[starts]": "2026-12-02T05:30:00Z"})
    assert moved.status_code == 200 and moved.json()["starts"] == "2026-12-02T05:30:00Z" and moved.json()["name"] == "Threshold 5x5"
    assert sandbox.api("wahoo", "GET", f"/v1/workouts/{wid}", tok).json()["starts"] == "2026-12-02T05:30:00Z"
    assert sandbox.api("wahoo", "DELETE", f"/v1/workouts/{wid}", tok).status_code == 204
    assert sandbox.api("wahoo", "GET", f"/v1/workouts/{wid}", tok).status_code == 404
    assert len(sandbox.state("wahoo", "2222")["workouts"]) == 3


def test_wahoo_validation(sandbox):
    tok = sandbox.connect("wahoo", "3333")["access_token"]
    form, _ = wahoo_plan_form("ses_v")
    # A '+' that was not percent-encoded arrives as a space: the base64 is broken.
    raw = "&".join(f"{k}={v}" for k, v in form.items() if k != "plan[file]")
    raw += "&plan[file]=data:application/json;base64,ab+cd"
    bad = sandbox.api("wahoo", "POST", "/v1/plans", tok, data=raw, headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert bad.status_code == 400
    no_desc = dict(form)
    plan = {"header": {"name": "x", "workout_type_family": 0}, "intervals": [{}]}
    no_desc["plan[file]"] = "data:application/json;base64," + base64.b64encode(json.dumps(plan).encode()).decode()
    r = sandbox.api("wahoo", "POST", "/v1/plans", tok, data=no_desc)
    assert r.status_code == 400 and "description" in r.json()["message"]
    assert sandbox.api("wahoo", "POST", "/v1/plans", tok, json={"plan": {}}).status_code == 415
    missing = wahoo_workout_form("ses_v", 1)
    del missing["workout[starts]"]
    del missing["workout[plan_id]"]
    assert sandbox.api("wahoo", "POST", "/v1/workouts", tok, data=missing).status_code == 400
    assert sandbox.api("wahoo", "POST", "/v1/workouts", tok, data=wahoo_workout_form("ses_v", 999999)).status_code == 400
    st = sandbox.state("wahoo", "3333")
    assert st["plans"] == {} and st["workouts"] == {}


# --------------------------------------------------------------------------
# Faults and counting
# --------------------------------------------------------------------------


def test_fault_500_500_then_success(sandbox):
    tok = sandbox.connect("garmin", "g-f1")["access_token"]
    sandbox.fault("/garmin" + GARMIN_CREATE, [{"status": 500}, {"status": 500}], method="POST")
    statuses = [sandbox.api("garmin", "POST", GARMIN_CREATE, tok, json=garmin_workout()).status_code for _ in range(3)]
    assert statuses == [500, 500, 200]
    assert len(sandbox.state("garmin", "g-f1")["workouts"]) == 1
    calls = sandbox.calls()
    assert calls["calls"]["POST /garmin/workoutportal/workout/v2"] == 3
    assert calls["statuses"]["500"] == 2
    assert sandbox.admin("GET", "/faults").json() == []


def test_fault_429_retry_after(sandbox):
    tok = sandbox.connect("wahoo", "4444")["access_token"]
    sandbox.fault("/wahoo/v1/plans", [{"status": 429, "retryAfter": 2}], method="POST")
    form, _ = wahoo_plan_form("ses_429")
    r = sandbox.api("wahoo", "POST", "/v1/plans", tok, data=form)
    assert r.status_code == 429
    assert r.headers["Retry-After"] == "2"
    assert sandbox.state("wahoo", "4444")["plans"] == {}
    assert sandbox.api("wahoo", "POST", "/v1/plans", tok, data=form).status_code == 200
    assert sandbox.calls()["answered429"] == 1


def test_fault_drop_before_handling(sandbox):
    tok = sandbox.connect("garmin", "g-drop")["access_token"]
    sandbox.fault("/garmin" + GARMIN_CREATE, [{"drop": True}])
    with pytest.raises(requests.ConnectionError):
        sandbox.api("garmin", "POST", GARMIN_CREATE, tok, json=garmin_workout())
    assert sandbox.state("garmin", "g-drop")["workouts"] == {}
    assert sandbox.api("garmin", "POST", GARMIN_CREATE, tok, json=garmin_workout()).status_code == 200
    assert sandbox.calls()["dropped"] == 1


def test_fault_drop_after_handling_outcome_unknown(sandbox):
    tok = sandbox.connect("wahoo", "5555")["access_token"]
    form, _ = wahoo_plan_form("ses_unknown")
    plan_id = sandbox.api("wahoo", "POST", "/v1/plans", tok, data=form).json()["id"]
    sandbox.fault("/wahoo/v1/workouts", [{"dropAfterHandling": True}], method="POST")
    with pytest.raises(requests.ConnectionError):
        sandbox.api("wahoo", "POST", "/v1/workouts", tok, data=wahoo_workout_form("ses_unknown", plan_id))
    # The workout exists although no answer came: reconcile by workout_token.
    workouts = sandbox.state("wahoo", "5555")["workouts"]
    assert [w["workout_token"] for w in workouts.values()] == ["ses_unknown"]
    listed = sandbox.api("wahoo", "GET", "/v1/workouts", tok, params={"page": 1, "per_page": 30}).json()
    assert [w["workout_token"] for w in listed["workouts"]] == ["ses_unknown"]


def test_fault_delay_prefix_method_repeat(sandbox):
    tok = sandbox.connect("wahoo", "6666")["access_token"]
    sandbox.fault("/wahoo/v1/user", [{"delayMs": 700}])
    t0 = time.monotonic()
    assert sandbox.api("wahoo", "GET", "/v1/user", tok).status_code == 200
    assert time.monotonic() - t0 >= 0.7
    sandbox.fault("/wahoo/v1/*", [{"status": 503}], method="GET", repeat=True)
    assert [sandbox.api("wahoo", "GET", "/v1/user", tok).status_code for _ in range(3)] == [503, 503, 503]
    form, _ = wahoo_plan_form("ses_r")
    assert sandbox.api("wahoo", "POST", "/v1/plans", tok, data=form).status_code == 200
    assert sandbox.admin("DELETE", "/faults").status_code == 204
    assert sandbox.api("wahoo", "GET", "/v1/user", tok).status_code == 200
    bad = sandbox.admin("POST", "/faults", {"path": "no-slash", "responses": [{"status": 500}]})
    assert bad.status_code == 400


def test_scripted_401_and_invalid_grant_body(sandbox):
    tokens = sandbox.connect("garmin", "g-401")
    sandbox.fault("/garmin/wellness-api/rest/user/id", [{"status": 401}])
    assert sandbox.api("garmin", "GET", "/wellness-api/rest/user/id", tokens["access_token"]).status_code == 401
    assert sandbox.api("garmin", "GET", "/wellness-api/rest/user/id", tokens["access_token"]).status_code == 200
    sandbox.fault("/garmin/di-oauth2-service/oauth/token", [{"status": 400, "body": {"error": "invalid_grant"}}])
    r = sandbox.refresh("garmin", tokens["refresh_token"])
    assert r.status_code == 400 and r.json() == {"error": "invalid_grant"}


def test_call_counting_by_template(sandbox):
    tok = sandbox.connect("garmin", "g-count")["access_token"]
    wid = sandbox.api("garmin", "POST", GARMIN_CREATE, tok, json=garmin_workout()).json()["workoutId"]
    for _ in range(2):
        sandbox.api("garmin", "PUT", f"/training-api/workout/v2/{wid}", tok, json=garmin_workout())
    sandbox.api("garmin", "GET", "/training-api/schedule", tok, params={"startDate": "2030-01-01", "endDate": "2030-01-31"})
    c = sandbox.calls()
    assert c["calls"] == {
        "GET /garmin/oauth2Confirm": 1,
        "POST /garmin/di-oauth2-service/oauth/token#authorization_code": 1,
        "GET /garmin/wellness-api/rest/user/id": 1,
        "POST /garmin/workoutportal/workout/v2": 1,
        "PUT /garmin/training-api/workout/v2/{id}": 2,
        "GET /garmin/training-api/schedule": 1,
    }
    assert c["total"] == 7
    assert sandbox.admin("DELETE", "/calls").status_code == 204
    assert sandbox.calls()["calls"] == {}


def test_rate_limit(gatewayd_bin, tmp_path):
    sb = SandboxProcess(gatewayd_bin, tmp_path, ["--rate-limit-per-minute", "3"]).start()
    try:
        tokens = sb.connect("garmin", "g-rl")  # token + user id: 2 calls (authorize is not counted)
        assert sb.api("garmin", "GET", "/wellness-api/rest/user/id", tokens["access_token"]).status_code == 200
        r = sb.api("garmin", "GET", "/wellness-api/rest/user/id", tokens["access_token"])
        assert r.status_code == 429
        assert 1 <= int(r.headers["Retry-After"]) <= 60
        # Per provider: Wahoo still has its own window.
        assert sb.connect("wahoo", "88")["userId"] == "88"
        assert sb.calls()["answered429"] == 1
    finally:
        assert sb.stop() == 0


# --------------------------------------------------------------------------
# Notifications and process
# --------------------------------------------------------------------------


class _Receiver(BaseHTTPRequestHandler):
    got: list = []

    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        _Receiver.got.append((self.path, self.headers.get("Content-Type"), json.loads(self.rfile.read(length))))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args):
        pass


def test_notify_garmin_notifications(sandbox):
    tokens = sandbox.connect("garmin", "g-note")
    _Receiver.got = []
    server = HTTPServer(("127.0.0.1", 0), _Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        base = f"http://127.0.0.1:{server.server_port}"
        r = sandbox.admin("POST", "/notify", {"provider": "garmin", "kind": "permissions", "userId": "g-note",
                                              "permissions": ["ACTIVITY_EXPORT"], "target": base + "/v1/providers/garmin/permissions"})
        assert r.status_code == 200, r.text
        assert r.json()["status"] == 200
        r = sandbox.admin("POST", "/notify", {"provider": "garmin", "kind": "deregistration", "userId": "g-note",
                                              "target": base + "/v1/providers/garmin/deregistrations"})
        assert r.status_code == 200 and r.json()["status"] == 200
        assert _Receiver.got == [
            ("/v1/providers/garmin/permissions", "application/json",
             {"userPermissionsChange": [{"userId": "g-note", "permissions": ["ACTIVITY_EXPORT"]}]}),
            ("/v1/providers/garmin/deregistrations", "application/json", {"deregistrations": [{"userId": "g-note"}]}),
        ]
    finally:
        server.shutdown()
        server.server_close()
    # A deregistered user's tokens no longer work.
    assert sandbox.api("garmin", "GET", "/wellness-api/rest/user/id", tokens["access_token"]).status_code == 401
    dead = sandbox.admin("POST", "/notify", {"provider": "garmin", "kind": "deregistration", "userId": "x",
                                             "target": f"http://127.0.0.1:{server.server_port}/gone"})
    assert dead.status_code == 502


def test_sigterm_exits_zero(gatewayd_bin, tmp_path):
    sb = SandboxProcess(gatewayd_bin, tmp_path).start()
    sb.proc.send_signal(signal.SIGTERM)
    assert sb.proc.wait(timeout=10) == 0
    assert "sandbox up" in sb.log_path.read_text()
    sb.stop()
