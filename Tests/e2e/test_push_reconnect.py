"""Changes made while an athlete is disconnected reach the same account once it reconnects
(SPEC section 5: "never a second copy on the watch"; found by scripts/soak).

A push that runs while the athlete has no connected provider must not forget the workout
it already put at the provider: after a reconnect to the same account an update changes
that workout in place (Garmin has no lookup, so a forgotten workout would be created a
second time), and a deletion or a switch to STRENGTH removes it there.
"""

from __future__ import annotations

import pytest

from conftest import Daemon, created, deleted, future_date, uid, updated, wait_for
from test_connections import Sandbox, connect, wahoo_user
from test_push import WAHOO_WORKOUT, wait_status


@pytest.fixture(scope="module")
def rsandbox(gatewayd_bin, tmp_path_factory):
    s = Sandbox(gatewayd_bin, tmp_path_factory.mktemp("rsandbox"))
    yield s
    s.stop()


@pytest.fixture(scope="module")
def gwr(daemon_factory, rsandbox) -> Daemon:
    extra = rsandbox.provider_config()
    extra["push"] = {"backoff_base_ms": 100, "backoff_max_ms": 400, "max_attempts": 4}
    return daemon_factory("reconnect", extra=extra)


def disconnect(gw: Daemon, athlete: str, provider: str) -> None:
    r = gw.http.delete(gw.url(f"/v1/athletes/{athlete}/connections/{provider}"),
                       headers={"Authorization": f"Bearer {gw.api_keys[0]}"}, timeout=30)
    assert r.status_code == 204, r.text


@pytest.mark.parametrize("provider", ["garmin", "wahoo"])
def test_changes_while_disconnected_reach_the_same_account_after_reconnect(gwr, rsandbox, provider):
    athlete = uid("ath")
    user = uid("g") if provider == "garmin" else wahoo_user()
    connect(gwr, athlete, provider, user)
    kept, gone, strength = uid("ses"), uid("ses"), uid("ses")
    day = future_date(4)
    for sid in (kept, gone, strength):
        gwr.accept(created(sid, athlete, revision=1, day=day, title=f"{sid} one", workout=WAHOO_WORKOUT))
    first = {sid: wait_status(gwr, sid, "SENT", 1) for sid in (kept, gone, strength)}

    disconnect(gwr, athlete, provider)
    gwr.accept(updated(kept, athlete, revision=2, day=future_date(6), title=f"{kept} two", workout=WAHOO_WORKOUT))
    gwr.accept(deleted(gone, athlete, revision=2))
    gwr.accept(updated(strength, athlete, revision=2, day=day, session_type="STRENGTH", workout=None))
    for sid in (kept, gone, strength):
        wait_status(gwr, sid, "NOT_CONNECTED", 2)

    connect(gwr, athlete, provider, user)
    s = wait_status(gwr, kept, "SENT", 2)
    wait_status(gwr, gone, "SENT", 2)
    wait_status(gwr, strength, "SENT", 2)
    assert s["externalWorkoutId"] == first[kept]["externalWorkoutId"], "updated in place, not created again"

    state = rsandbox.user_state(provider, user)
    if provider == "garmin":
        assert list(state["workouts"]) == [s["externalWorkoutId"]], state["workouts"].keys()
        assert state["workouts"][s["externalWorkoutId"]]["workoutName"] == f"{kept} two"
        schedules = list(state["schedules"].values())
        assert len(schedules) == 1 and schedules[0]["date"] == future_date(6), schedules
    else:
        assert [w["workout_token"] for w in state["workouts"].values()] == [kept]
        assert [p["external_id"] for p in state["plans"].values()] == [kept]
        assert list(state["workouts"].values())[0]["name"] == f"{kept} two"


def test_removal_after_a_lost_wahoo_create_answer_deletes_what_was_created(gwr, rsandbox):
    """The plan create is done at Wahoo but its answer is lost, and the session is deleted
    before a retry has found the plan: the removal must still look it up by the session id."""
    athlete, user = uid("ath"), wahoo_user()
    connect(gwr, athlete, "wahoo", user)
    rsandbox.clear_faults()
    rsandbox.fault(method="POST", path="/wahoo/v1/plans", responses=[{"dropAfterHandling": True}])
    # The first attempt's lookup passes; every retry's lookup fails until the deletion has arrived.
    rsandbox.fault(method="GET", path="/wahoo/v1/plans", responses=[{}])
    rsandbox.fault(method="GET", path="/wahoo/v1/plans", responses=[{"status": 503}], repeat=True)
    sid = uid("ses")
    try:
        gwr.accept(created(sid, athlete, revision=1, day=future_date(3), workout=WAHOO_WORKOUT))
        wait_for(lambda: len(rsandbox.user_state("wahoo", user)["plans"]) == 1, timeout=10, what="the plan created")
        gwr.accept(deleted(sid, athlete, revision=2))
    finally:
        rsandbox.clear_faults()
    wait_status(gwr, sid, "SENT", 2)
    state = rsandbox.user_state("wahoo", user)
    assert state["plans"] == {} and state["workouts"] == {}, state
