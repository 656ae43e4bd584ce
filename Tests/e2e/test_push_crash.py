"""Crash safety of pushes (SPEC section 5, issue 5): 500 sessions for connected athletes
while the sandbox is slow, `kill -9` twice during the run, restart; every session ends
SENT and the providers hold exactly one copy of each.

Wahoo reconciles unknown outcomes by external_id / workout_token, so it must hold exactly
one plan and one workout per session. Garmin has no lookup of unscheduled workouts: SPEC
section 4 allows an orphan in its library after a crash between the create and its
checkpoint, never on the calendar — so Garmin must hold exactly one schedule per
session, for the workout the gateway reports.
"""

from __future__ import annotations

import concurrent.futures
import time

import pytest

from conftest import created, future_date, uid, wait_for
from test_connections import Sandbox, connect, wahoo_user
from test_push import WAHOO_WORKOUT

ATHLETES_PER_PROVIDER = 5
SESSIONS_PER_ATHLETE = 50


@pytest.fixture(scope="module")
def csandbox(gatewayd_bin, tmp_path_factory):
    s = Sandbox(gatewayd_bin, tmp_path_factory.mktemp("csandbox"))
    yield s
    s.stop()


def test_kill9_twice_during_pushes_loses_nothing_and_doubles_nothing(fresh_daemon, csandbox):
    extra = csandbox.provider_config()
    extra["push"] = {"backoff_base_ms": 100, "backoff_max_ms": 500, "max_attempts": 10}
    gw = fresh_daemon("crash", extra=extra)

    garmin = [(uid("ath"), uid("g")) for _ in range(ATHLETES_PER_PROVIDER)]
    wahoo = [(uid("ath"), wahoo_user()) for _ in range(ATHLETES_PER_PROVIDER)]
    for athlete, user in garmin:
        connect(gw, athlete, "garmin", user)
    for athlete, user in wahoo:
        connect(gw, athlete, "wahoo", user)

    # A slow provider: every API call takes 40 ms more (OAuth calls are not slowed).
    for path in ("/garmin/workoutportal/*", "/garmin/training-api/*", "/wahoo/v1/plans*", "/wahoo/v1/workouts*"):
        csandbox.fault(path=path, responses=[{"delayMs": 40}], repeat=True)

    sessions: dict[str, tuple[str, str, str]] = {}  # sid -> (provider, athlete, user)
    events = []
    for provider, pairs in (("garmin", garmin), ("wahoo", wahoo)):
        for athlete, user in pairs:
            for k in range(SESSIONS_PER_ATHLETE):
                sid = uid("ses")
                sessions[sid] = (provider, athlete, user)
                events.append(created(sid, athlete, day=future_date(2 + k % 20), workout=WAHOO_WORKOUT))
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        list(pool.map(gw.accept, events))

    def sent() -> int:
        return gw.query("SELECT COUNT(*) FROM sessions WHERE export_status = 'SENT'")[0][0]

    for _ in range(2):
        time.sleep(1.5)
        progress = sent()
        gw.kill9()
        gw.start()
        assert progress < len(sessions), "the run finished before the crash: slow the sandbox down"

    wait_for(lambda: sent() == len(sessions), timeout=240, interval=0.5, what="all 500 sessions SENT")
    csandbox.clear_faults()

    rows = {sid: (status, provider, external) for sid, status, provider, external in gw.query(
        "SELECT id, export_status, export_provider, external_workout_id FROM sessions")}
    assert all(r[0] == "SENT" for r in rows.values())

    for athlete, user in wahoo:
        state = csandbox.user_state("wahoo", user)
        mine = [sid for sid, (p, a, _) in sessions.items() if a == athlete]
        tokens = sorted(w["workout_token"] for w in state["workouts"].values())
        assert tokens == sorted(mine), f"wahoo {user}: workouts {len(tokens)} for {len(mine)} sessions"
        externals = sorted(p["external_id"] for p in state["plans"].values())
        assert externals == sorted(mine), f"wahoo {user}: plans {len(externals)} for {len(mine)} sessions"
        for sid in mine:
            assert rows[sid][2] in {str(w["id"]) for w in state["workouts"].values()}

    for athlete, user in garmin:
        state = csandbox.user_state("garmin", user)
        mine = [sid for sid, (p, a, _) in sessions.items() if a == athlete]
        scheduled = sorted(str(s["workoutId"]) for s in state["schedules"].values())
        expected = sorted(rows[sid][2] for sid in mine)
        assert scheduled == expected, f"garmin {user}: {len(scheduled)} schedules for {len(mine)} sessions"
        assert len(state["workouts"]) >= len(mine)
