"""Pushes to the sandbox providers end to end (SPEC section 4, 5; issue 5).

A session published by the plan app reaches the athlete's (fake) Garmin or Wahoo
account: created, updated in place, moved, removed, with scripted faults.
"""

from __future__ import annotations

import pytest
import requests

from conftest import Daemon, created, deleted, describe, future_date, uid, updated, wait_for
from test_connections import Sandbox, connect, wahoo_user


@pytest.fixture(scope="module")
def psandbox(gatewayd_bin, tmp_path_factory):
    s = Sandbox(gatewayd_bin, tmp_path_factory.mktemp("psandbox"))
    yield s
    s.stop()


@pytest.fixture(scope="module")
def gwp(daemon_factory, psandbox) -> Daemon:
    extra = psandbox.provider_config()
    extra["push"] = {"backoff_base_ms": 100, "backoff_max_ms": 400, "max_attempts": 4}
    return daemon_factory("push", extra=extra)


@pytest.fixture(autouse=True)
def _clean_faults(psandbox):
    psandbox.clear_faults()
    yield
    psandbox.clear_faults()


def wait_status(gw: Daemon, sid: str, status: str, revision: int | None = None, timeout: float = 20) -> dict:
    seen: list[dict] = []

    def check():
        s = gw.status(sid).json()
        seen.append(s)
        if s["exportStatus"] == status and (revision is None or s["revision"] == revision):
            return s
        return None

    try:
        return wait_for(check, timeout=timeout, what=f"{sid} {status}")
    except BaseException:
        pytest.fail(f"{sid} never reached {status} (revision {revision}); last status: {seen[-1] if seen else None}")


# Wahoo has no lap-button steps: its sessions need a workout without OPEN durations.
WAHOO_WORKOUT = {
    "sport": "BIKE",
    "steps": [
        {"kind": "WARMUP", "duration": {"type": "TIME", "seconds": 600}},
        {"repeat": 3, "steps": [
            {"kind": "INTERVAL", "duration": {"type": "TIME", "seconds": 300},
             "target": {"type": "POWER", "minWatts": 250, "maxWatts": 270}},
            {"kind": "RECOVERY", "duration": {"type": "TIME", "seconds": 120}},
        ]},
        {"kind": "COOLDOWN", "duration": {"type": "TIME", "seconds": 300}},
    ],
}


def garmin_state(sb: Sandbox, user: str) -> dict:
    return sb.user_state("garmin", user)


def test_garmin_create_update_move_delete(gwp, psandbox):
    athlete, user = uid("ath"), uid("g")
    connect(gwp, athlete, "garmin", user)
    sid, day = uid("ses"), future_date(3)
    gwp.accept(created(sid, athlete, revision=1, day=day, title="First"))
    s = wait_status(gwp, sid, "SENT", 1)
    assert s["exportProvider"] == "GARMIN" and s["externalWorkoutId"] and s["exportedAt"]
    state = garmin_state(psandbox, user)
    assert list(state["workouts"]) == [s["externalWorkoutId"]]
    assert state["workouts"][s["externalWorkoutId"]]["workoutName"] == "First"
    schedules = list(state["schedules"].values())
    assert len(schedules) == 1 and schedules[0]["date"] == day
    assert str(schedules[0]["workoutId"]) == s["externalWorkoutId"]

    # Update: the same workout, changed in place.
    gwp.accept(updated(sid, athlete, revision=2, day=day, title="Second"))
    s2 = wait_status(gwp, sid, "SENT", 2)
    assert s2["externalWorkoutId"] == s["externalWorkoutId"]
    state = garmin_state(psandbox, user)
    assert list(state["workouts"]) == [s["externalWorkoutId"]]
    assert state["workouts"][s["externalWorkoutId"]]["workoutName"] == "Second"

    # Date change: the schedule moves, still one.
    new_day = future_date(5)
    gwp.accept(updated(sid, athlete, revision=3, day=new_day, title="Second"))
    wait_status(gwp, sid, "SENT", 3)
    schedules = list(garmin_state(psandbox, user)["schedules"].values())
    assert len(schedules) == 1 and schedules[0]["date"] == new_day

    # Delete: gone at the provider.
    gwp.accept(deleted(sid, athlete, revision=4))
    s4 = wait_status(gwp, sid, "SENT", 4)
    assert s4["deleted"] is True and s4["externalWorkoutId"] is None
    state = garmin_state(psandbox, user)
    assert state["workouts"] == {} and state["schedules"] == {}


def test_wahoo_create_update_delete(gwp, psandbox):
    athlete, user = uid("ath"), wahoo_user()
    connect(gwp, athlete, "wahoo", user)
    sid, day = uid("ses"), future_date(4)
    gwp.accept(created(sid, athlete, revision=1, day=day, title="Wahoo one", workout=WAHOO_WORKOUT))
    s = wait_status(gwp, sid, "SENT", 1)
    assert s["exportProvider"] == "WAHOO"
    state = psandbox.user_state("wahoo", user)
    assert len(state["plans"]) == 1 and len(state["workouts"]) == 1
    workout = list(state["workouts"].values())[0]
    assert str(workout["id"]) == s["externalWorkoutId"]
    assert workout["workout_token"] == sid and workout["starts"].startswith(day)

    gwp.accept(updated(sid, athlete, revision=2, day=day, title="Wahoo two", workout=WAHOO_WORKOUT))
    s2 = wait_status(gwp, sid, "SENT", 2)
    state = psandbox.user_state("wahoo", user)
    assert s2["externalWorkoutId"] == s["externalWorkoutId"]
    assert len(state["plans"]) == 1 and len(state["workouts"]) == 1
    assert list(state["workouts"].values())[0]["name"] == "Wahoo two"

    gwp.accept(deleted(sid, athlete, revision=3))
    wait_status(gwp, sid, "SENT", 3)
    state = psandbox.user_state("wahoo", user)
    assert state["plans"] == {} and state["workouts"] == {}


def test_type_change_away_from_endurance_removes_the_workout(gwp, psandbox):
    athlete, user = uid("ath"), uid("g")
    connect(gwp, athlete, "garmin", user)
    sid, day = uid("ses"), future_date(2)
    gwp.accept(created(sid, athlete, revision=1, day=day))
    wait_status(gwp, sid, "SENT", 1)
    gwp.accept(updated(sid, athlete, revision=2, day=day, session_type="STRENGTH", workout=None))
    wait_status(gwp, sid, "SENT", 2)
    state = garmin_state(psandbox, user)
    assert state["workouts"] == {} and state["schedules"] == {}


def test_server_errors_are_retried_then_sent(gwp, psandbox):
    athlete, user = uid("ath"), uid("g")
    connect(gwp, athlete, "garmin", user)
    psandbox.fault(method="POST", path="/garmin/workoutportal/workout/v2", responses=[{"status": 500}, {"status": 500}])
    sid = uid("ses")
    gwp.accept(created(sid, athlete, day=future_date(3)))
    s = wait_status(gwp, sid, "SENT", 1)
    assert s["attempts"] == 3
    state = garmin_state(psandbox, user)
    assert len(state["workouts"]) == 1 and len(state["schedules"]) == 1


def test_dropped_connection_after_create_leaves_one_schedule(gwp, psandbox):
    athlete, user = uid("ath"), uid("g")
    connect(gwp, athlete, "garmin", user)
    psandbox.fault(method="POST", path="/garmin/training-api/schedule/", responses=[{"dropAfterHandling": True}])
    sid = uid("ses")
    gwp.accept(created(sid, athlete, day=future_date(3)))
    s = wait_status(gwp, sid, "SENT", 1)
    state = garmin_state(psandbox, user)
    assert len(state["schedules"]) == 1, state
    assert str(list(state["schedules"].values())[0]["workoutId"]) == s["externalWorkoutId"]


def test_invalid_workout_fails_with_the_validation_message(gwp):
    athlete = uid("ath")
    connect(gwp, athlete, "garmin", uid("g"))
    sid = uid("ses")
    gwp.accept(created(sid, athlete, day=future_date(3), workout={"sport": "BIKE", "steps": []}))
    s = wait_status(gwp, sid, "FAILED", 1)
    assert s["lastExportError"].startswith("Validation failed: workout.steps")


def test_past_session_is_not_pushed(gwp):
    athlete = uid("ath")
    connect(gwp, athlete, "garmin", uid("g"))
    sid = uid("ses")
    gwp.accept(created(sid, athlete, day="2020-01-01"))
    s = wait_status(gwp, sid, "FAILED", 1)
    assert s["lastExportError"] == "session date has passed"


def test_retry_requeues_a_failed_session(gwp, psandbox):
    athlete, user = uid("ath"), uid("g")
    connect(gwp, athlete, "garmin", user)
    # 400 is permanent: FAILED at once.
    psandbox.fault(method="POST", path="/garmin/workoutportal/workout/v2", responses=[{"status": 400}])
    sid = uid("ses")
    gwp.accept(created(sid, athlete, day=future_date(3)))
    wait_status(gwp, sid, "FAILED", 1)
    r = gwp.http.post(gwp.url(f"/v1/sessions/{sid}/retry"), headers={"Authorization": f"Bearer {gwp.api_keys[0]}"})
    assert r.status_code == 202, describe(r)
    wait_status(gwp, sid, "SENT", 1)
    r = gwp.http.post(gwp.url(f"/v1/sessions/{sid}/retry"), headers={"Authorization": f"Bearer {gwp.api_keys[0]}"})
    assert r.status_code == 409, describe(r)


def test_waiting_session_is_pushed_when_the_athlete_connects(gwp, psandbox):
    athlete, user = uid("ath"), uid("g")
    sid = uid("ses")
    gwp.accept(created(sid, athlete, day=future_date(3)))
    assert gwp.status(sid).json()["exportStatus"] == "NOT_CONNECTED"
    connect(gwp, athlete, "garmin", user)
    wait_status(gwp, sid, "SENT", 1)
    assert len(garmin_state(psandbox, user)["workouts"]) == 1


def test_invalid_grant_makes_sessions_not_connected(gwp, psandbox):
    athlete, user = uid("ath"), uid("g")
    connect(gwp, athlete, "garmin", user)
    requests.post(psandbox.base + "/_sandbox/tokens/invalid-grant", json={"provider": "garmin", "userId": user})
    requests.post(psandbox.base + "/_sandbox/tokens/expire", json={"provider": "garmin", "userId": user})
    sid = uid("ses")
    gwp.accept(created(sid, athlete, day=future_date(3)))
    wait_status(gwp, sid, "NOT_CONNECTED", 1)


def test_changing_the_primary_moves_future_sessions(gwp, psandbox):
    athlete, guser, wuser = uid("ath"), uid("g"), wahoo_user()
    connect(gwp, athlete, "garmin", guser)
    connect(gwp, athlete, "wahoo", wuser)
    sid = uid("ses")
    gwp.accept(created(sid, athlete, day=future_date(6), workout=WAHOO_WORKOUT))
    assert wait_status(gwp, sid, "SENT", 1)["exportProvider"] == "GARMIN"
    r = gwp.http.put(
        gwp.url(f"/v1/athletes/{athlete}/primary-provider"), json={"provider": "WAHOO"},
        headers={"Authorization": f"Bearer {gwp.api_keys[0]}"})
    assert r.status_code == 200, describe(r)
    wait_for(lambda: gwp.status(sid).json()["exportProvider"] == "WAHOO" and gwp.status(sid).json()["exportStatus"] == "SENT",
             timeout=20, what="moved to Wahoo")
    garmin = garmin_state(psandbox, guser)
    assert garmin["workouts"] == {} and garmin["schedules"] == {}
    wahoo = psandbox.user_state("wahoo", wuser)
    assert len(wahoo["workouts"]) == 1 and len(wahoo["plans"]) == 1


def test_status_changes_are_sent_signed_to_the_plan_app(daemon_factory, psandbox):
    import http.server
    import json
    import threading

    from standardwebhooks.webhooks import Webhook

    received: list[tuple[dict, dict]] = []
    statuses: list[int] = [500]  # the first delivery fails: the gateway must retry

    class Receiver(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append((dict(self.headers), body))
            code = statuses.pop(0) if statuses else 200
            self.send_response(code)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        extra = psandbox.provider_config()
        extra["plan_app"] = {"callback_url": f"http://127.0.0.1:{server.server_address[1]}/callbacks"}
        extra["push"] = {"backoff_base_ms": 100, "backoff_max_ms": 400}
        gw = daemon_factory("callbacks", extra=extra)
        athlete = uid("ath")
        connect(gw, athlete, "garmin", uid("g"))
        sid = uid("ses")
        gw.accept(created(sid, athlete, day=future_date(3)))
        wait_status(gw, sid, "SENT", 1)
        wait_for(lambda: len(received) >= 2, timeout=20, what="callback delivered after a retry")
        verifier = Webhook(gw.secrets[0])
        for headers, body in received:
            lower = {k.lower(): v for k, v in headers.items()}
            event = verifier.verify(body, lower)  # raises if the signature does not verify
            assert event["type"] == "session.export_status_changed"
            assert event["data"]["session"]["sessionId"] == sid
            assert event["data"]["session"]["exportStatus"] == "SENT"
        # The retry carries the same webhook-id: the plan app can deduplicate.
        ids = {h.get("webhook-id") or h.get("Webhook-Id") for h, _ in received}
        assert len(ids) == 1
        # A wrong secret does not verify: the check above is not vacuous.
        other = Webhook("whsec_" + __import__("base64").b64encode(b"x" * 32).decode())
        with pytest.raises(Exception):
            other.verify(received[0][1], {k.lower(): v for k, v in received[0][0].items()})
    finally:
        server.shutdown()


def test_rate_limited_answer_waits_for_retry_after(gwp, psandbox):
    athlete, user = uid("ath"), uid("g")
    connect(gwp, athlete, "garmin", user)
    psandbox.fault(method="POST", path="/garmin/workoutportal/workout/v2", responses=[{"status": 429, "retryAfter": 2}])
    before = psandbox.count("POST /garmin/workoutportal/workout/v2")
    sid = uid("ses")
    gwp.accept(created(sid, athlete, day=future_date(3)))
    wait_for(lambda: psandbox.count("POST /garmin/workoutportal/workout/v2") == before + 1, timeout=10, what="first try")
    first = __import__("time").monotonic()
    s = wait_status(gwp, sid, "SENT", 1)
    waited = __import__("time").monotonic() - first
    assert psandbox.count("POST /garmin/workoutportal/workout/v2") == before + 2
    assert waited >= 1.9, f"retried after {waited:.2f}s, Retry-After was 2"
    assert s["attempts"] == 2


def test_lost_answer_of_a_wahoo_workout_create_leaves_one_workout(gwp, psandbox):
    athlete, user = uid("ath"), wahoo_user()
    connect(gwp, athlete, "wahoo", user)
    psandbox.fault(method="POST", path="/wahoo/v1/workouts", responses=[{"dropAfterHandling": True}])
    sid = uid("ses")
    gwp.accept(created(sid, athlete, day=future_date(3), workout=WAHOO_WORKOUT))
    s = wait_status(gwp, sid, "SENT", 1)
    state = psandbox.user_state("wahoo", user)
    assert len(state["workouts"]) == 1 and len(state["plans"]) == 1, state
    assert str(list(state["workouts"].values())[0]["id"]) == s["externalWorkoutId"]


def test_push_metrics_are_exported(gwp):
    from prometheus_client.parser import text_string_to_metric_families

    athlete = uid("ath")
    connect(gwp, athlete, "garmin", uid("g"))
    sid = uid("ses")
    gwp.accept(created(sid, athlete, day=future_date(3)))
    wait_status(gwp, sid, "SENT", 1)
    families = {f.name: f for f in text_string_to_metric_families(gwp.http.get(gwp.url("/metrics")).text)}
    pushes = {
        (s.labels.get("provider"), s.labels.get("outcome")): s.value
        for s in families["gatewayd_pushes"].samples if s.name == "gatewayd_pushes_total"
    }
    assert pushes.get(("GARMIN", "sent"), 0) >= 1
    latency = [s for s in families["gatewayd_push_latency_seconds"].samples if s.name.endswith("_count")]
    assert latency and latency[0].value >= 1
    assert "gatewayd_push_queue_depth" in families
    assert "gatewayd_push_oldest_due_age_seconds" in families
