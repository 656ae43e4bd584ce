"""Athlete connections over OAuth against the built-in sandbox (SPEC section 4, 6, 7; issue 4).

Real HTTP everywhere: the test plays the athlete's browser (following the redirects
by hand), the gateway talks to `gatewayd sandbox` over loopback.
"""

from __future__ import annotations

import random
import sqlite3
import subprocess
import time
import urllib.parse

import pytest
import requests

from conftest import Daemon, assert_error, created, describe, free_port, uid, wait_for

RETURN_TO = "https://plan.example/athletes/return"


def wahoo_user() -> str:
    """Wahoo's user ids are numbers."""
    return str(random.randint(100_000, 999_999_999))


class Sandbox:
    def __init__(self, binary: str, workdir, args: list[str] | None = None):
        self.port = free_port()
        self.log = open(workdir / "sandbox.log", "ab")
        self.proc = subprocess.Popen(
            [binary, "sandbox", "--listen", f"127.0.0.1:{self.port}", *(args or [])],
            stdout=self.log, stderr=self.log, stdin=subprocess.DEVNULL,
        )
        self.base = f"http://127.0.0.1:{self.port}"
        wait_for(lambda: self._up(), timeout=15, what="sandbox up")

    def _up(self) -> bool:
        try:
            return requests.get(self.base + "/_sandbox/state", timeout=1).status_code == 200
        except requests.RequestException:
            return False

    def calls(self) -> dict:
        return requests.get(self.base + "/_sandbox/calls", timeout=5).json()

    def count(self, key: str) -> int:
        calls = self.calls()
        table = calls.get("calls", calls)
        return int(table.get(key, 0))

    def fault(self, **spec) -> None:
        r = requests.post(self.base + "/_sandbox/faults", json=spec, timeout=5)
        assert r.status_code in (200, 201, 204), describe(r)

    def clear_faults(self) -> None:
        requests.delete(self.base + "/_sandbox/faults", timeout=5)

    def user_state(self, provider: str, user: str) -> dict:
        r = requests.get(f"{self.base}/_sandbox/state/{provider}/{user}", timeout=5)
        assert r.status_code == 200, describe(r)
        return r.json()

    def provider_config(self) -> dict:
        b = self.base
        return {
            "providers.garmin": {
                "enabled": True,
                "client_id": "sandbox-garmin-client",
                "client_secret": "sandbox-garmin-secret",
                "authorize_url": f"{b}/garmin/oauth2Confirm",
                "token_url": f"{b}/garmin/di-oauth2-service/oauth/token",
                "api_base_url": f"{b}/garmin",
            },
            "providers.wahoo": {
                "enabled": True,
                "client_id": "sandbox-wahoo-client",
                "client_secret": "sandbox-wahoo-secret",
                "authorize_url": f"{b}/wahoo/oauth/authorize",
                "token_url": f"{b}/wahoo/oauth/token",
                "api_base_url": f"{b}/wahoo",
            },
        }

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


@pytest.fixture(scope="module")
def sandbox(gatewayd_bin, tmp_path_factory):
    s = Sandbox(gatewayd_bin, tmp_path_factory.mktemp("sandbox"))
    yield s
    s.stop()


@pytest.fixture(scope="module")
def gwc(daemon_factory, sandbox) -> Daemon:
    """A gateway with both providers pointed at the sandbox."""
    return daemon_factory("connected", extra=sandbox.provider_config())


@pytest.fixture(autouse=True)
def _no_faults(sandbox):
    sandbox.clear_faults()
    yield
    sandbox.clear_faults()


def authorize(gw: Daemon, athlete: str, provider: str, return_to: str = RETURN_TO) -> str:
    r = gw.http.post(
        gw.url(f"/v1/athletes/{athlete}/connections/{provider}/authorize"),
        json={"returnTo": return_to},
        headers={"Authorization": f"Bearer {gw.api_keys[0]}"},
        timeout=10,
    )
    assert r.status_code == 200, describe(r)
    return r.json()["authorizeUrl"]


def browser_to_callback(authorize_url: str, **sandbox_params) -> str:
    """The athlete approves at the provider: returns the gateway callback URL it redirects to."""
    extra = urllib.parse.urlencode(sandbox_params)
    r = requests.get(authorize_url + ("&" + extra if extra else ""), allow_redirects=False, timeout=10)
    assert r.status_code == 302, describe(r)
    return r.headers["Location"]


def follow_callback(callback_url: str) -> requests.Response:
    return requests.get(callback_url, allow_redirects=False, timeout=30)


def connect(gw: Daemon, athlete: str, provider: str, user: str) -> str:
    location = follow_callback(browser_to_callback(authorize(gw, athlete, provider), sandbox_user=user))
    assert location.status_code == 302, describe(location)
    assert location.headers["Location"] == f"{RETURN_TO}?connected={provider}", location.headers["Location"]
    return location.headers["Location"]


def connections(gw: Daemon, athlete: str) -> list[dict]:
    r = gw.get(f"/v1/athletes/{athlete}/connections")
    assert r.status_code == 200, describe(r)
    return r.json()["connections"]


def by_provider(gw: Daemon, athlete: str) -> dict[str, dict]:
    return {c["provider"]: c for c in connections(gw, athlete)}


def test_authorize_url_carries_the_oauth_parameters(gwc, sandbox):
    url = authorize(gwc, uid("ath"), "garmin")
    parts = urllib.parse.urlsplit(url)
    q = dict(urllib.parse.parse_qsl(parts.query))
    assert url.startswith(sandbox.base + "/garmin/oauth2Confirm?")
    assert q["response_type"] == "code" and q["client_id"] == "sandbox-garmin-client"
    assert q["code_challenge_method"] == "S256" and len(q["code_challenge"]) == 43
    assert q["redirect_uri"] == f"{gwc.base_url}/v1/oauth/garmin/callback"
    assert len(q["state"]) >= 43  # 256 bits, base64url
    w = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(authorize(gwc, uid("ath"), "wahoo")).query))
    assert w["scope"] == "user_read workouts_read workouts_write plans_read plans_write offline_data"
    assert w["state"] != q["state"]


@pytest.mark.parametrize("provider", ["garmin", "wahoo"])
def test_full_oauth_dance_connects_and_queues_waiting_sessions(gwc, sandbox, provider):
    athlete, user = uid("ath"), (wahoo_user() if provider == "wahoo" else uid("garmin-user"))
    waiting = uid("ses")
    # A workout both providers accept (Wahoo has no lap-button steps).
    workout = {"sport": "RUN", "steps": [{"kind": "ACTIVE", "duration": {"type": "TIME", "seconds": 1800}}]}
    gwc.accept(created(waiting, athlete, workout=workout))
    assert gwc.status(waiting).json()["exportStatus"] == "NOT_CONNECTED"
    connect(gwc, athlete, provider, user)
    c = by_provider(gwc, athlete)[provider.upper()]
    assert c["status"] == "CONNECTED" and c["primary"] is True
    assert c["providerUserId"] == user
    assert "access" not in str(c).lower() and "token" not in str(c).lower()
    # The session that waited for a connection is queued and pushed.
    assert gwc.status(waiting).json()["exportStatus"] in ("PENDING", "SENT")
    wait_for(lambda: gwc.status(waiting).json()["exportStatus"] == "SENT", timeout=20, what="pushed after connect")
    # The exchange and the user lookup reached the sandbox.
    assert sandbox.count(f"GET /{provider}/" + ("wellness-api/rest/user/id" if provider == "garmin" else "v1/user")) >= 1


def test_second_provider_is_not_primary_and_primary_can_move(gwc):
    athlete = uid("ath")
    connect(gwc, athlete, "garmin", uid("g"))
    connect(gwc, athlete, "wahoo", wahoo_user())
    c = by_provider(gwc, athlete)
    assert c["GARMIN"]["primary"] is True and c["WAHOO"]["primary"] is False
    r = gwc.http.put(
        gwc.url(f"/v1/athletes/{athlete}/primary-provider"), json={"provider": "WAHOO"},
        headers={"Authorization": f"Bearer {gwc.api_keys[0]}"}, timeout=10)
    assert r.status_code == 200, describe(r)
    c = by_provider(gwc, athlete)
    assert c["GARMIN"]["primary"] is False and c["WAHOO"]["primary"] is True
    r = gwc.http.put(
        gwc.url(f"/v1/athletes/{uid('nobody')}/primary-provider"), json={"provider": "WAHOO"},
        headers={"Authorization": f"Bearer {gwc.api_keys[0]}"}, timeout=10)
    assert_error(r, 409, "not_connected")


def test_access_denied_redirects_with_error_and_stores_nothing(gwc):
    athlete = uid("ath")
    r = follow_callback(browser_to_callback(authorize(gwc, athlete, "garmin"), sandbox_deny=1))
    assert r.status_code == 302
    assert r.headers["Location"] == f"{RETURN_TO}?error=access_denied"
    assert connections(gwc, athlete) == []


def test_reused_state_is_refused(gwc):
    athlete = uid("ath")
    callback = browser_to_callback(authorize(gwc, athlete, "garmin"), sandbox_user=uid("g"))
    assert follow_callback(callback).headers["Location"].endswith("?connected=garmin")
    again = follow_callback(callback)
    assert again.status_code == 302 and again.headers["Location"] == f"{RETURN_TO}?error=state_reused"


def test_forged_state_gets_an_html_error_page(gwc):
    r = follow_callback(gwc.url("/v1/oauth/garmin/callback?code=abc&state=forged-state-value"))
    assert r.status_code == 400
    assert r.headers["Content-Type"].startswith("text/html")
    assert "not valid" in r.text
    r = follow_callback(gwc.url("/v1/oauth/garmin/callback?code=abc"))
    assert r.status_code == 400


def test_expired_state_is_refused(gwc):
    athlete = uid("ath")
    callback = browser_to_callback(authorize(gwc, athlete, "wahoo"), sandbox_user=wahoo_user())
    state = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(callback).query))["state"]
    db = sqlite3.connect(gwc.db_path, timeout=10)
    with db:
        db.execute("UPDATE oauth_states SET expires_at_ms = 1 WHERE state = ?", (state,))
    db.close()
    r = follow_callback(callback)
    assert r.headers["Location"] == f"{RETURN_TO}?error=state_expired"
    assert connections(gwc, athlete) == []


def test_state_is_bound_to_its_provider(gwc):
    callback = browser_to_callback(authorize(gwc, uid("ath"), "wahoo"), sandbox_user=wahoo_user())
    forged = callback.replace("/v1/oauth/wahoo/callback", "/v1/oauth/garmin/callback")
    assert follow_callback(forged).headers["Location"] == f"{RETURN_TO}?error=invalid_state"


def test_missing_code_is_refused(gwc):
    callback = browser_to_callback(authorize(gwc, uid("ath"), "garmin"), sandbox_user=uid("g"))
    q = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(callback).query))
    r = follow_callback(gwc.url(f"/v1/oauth/garmin/callback?state={q['state']}"))
    assert r.headers["Location"] == f"{RETURN_TO}?error=missing_code"


def test_failing_token_endpoint_stores_nothing(gwc, sandbox):
    athlete = uid("ath")
    callback = browser_to_callback(authorize(gwc, athlete, "garmin"), sandbox_user=uid("g"))
    sandbox.fault(method="POST", path="/garmin/di-oauth2-service/oauth/token", responses=[{"status": 500}])
    r = follow_callback(callback)
    assert r.headers["Location"] == f"{RETURN_TO}?error=token_exchange_failed"
    assert connections(gwc, athlete) == []


def test_authorize_input_errors(gwc):
    h = {"Authorization": f"Bearer {gwc.api_keys[0]}"}
    r = gwc.http.post(gwc.url("/v1/athletes/a1/connections/garmin/authorize"), json={"returnTo": "ftp://x"}, headers=h)
    assert_error(r, 400, "invalid_request")
    r = gwc.http.post(gwc.url("/v1/athletes/a1/connections/garmin/authorize"), json={}, headers=h)
    assert_error(r, 400, "invalid_request")
    r = gwc.http.post(gwc.url("/v1/athletes/a1/connections/polar/authorize"), json={"returnTo": RETURN_TO}, headers=h)
    assert_error(r, 404, "not_found")
    r = gwc.http.post(gwc.url("/v1/athletes/a1/connections/garmin/authorize"), json={"returnTo": RETURN_TO})
    assert_error(r, 401, "unauthorized")


def test_disconnect_revokes_at_the_provider_and_sessions_wait_again(gwc, sandbox):
    athlete, user = uid("ath"), uid("g")
    connect(gwc, athlete, "garmin", user)
    sid = uid("ses")
    gwc.accept(created(sid, athlete))
    before = sandbox.count("DELETE /garmin/wellness-api/rest/user/registration")
    r = gwc.http.delete(
        gwc.url(f"/v1/athletes/{athlete}/connections/garmin"),
        headers={"Authorization": f"Bearer {gwc.api_keys[0]}"}, timeout=30)
    assert r.status_code == 204, describe(r)
    assert sandbox.count("DELETE /garmin/wellness-api/rest/user/registration") == before + 1
    c = by_provider(gwc, athlete)["GARMIN"]
    assert c["status"] == "REVOKED" and c["primary"] is False
    assert gwc.status(sid).json()["exportStatus"] == "NOT_CONNECTED"
    row = gwc.query(
        "SELECT access_token_sealed, refresh_token_sealed FROM connections WHERE athlete_id = ?", (athlete,))
    assert row == [(None, None)]
    r = gwc.http.delete(
        gwc.url(f"/v1/athletes/{athlete}/connections/garmin"),
        headers={"Authorization": f"Bearer {gwc.api_keys[0]}"}, timeout=30)
    assert_error(r, 404, "not_found")


def test_garmin_deregistration_notification_revokes(gwc, sandbox):
    athlete, user = uid("ath"), uid("g")
    connect(gwc, athlete, "garmin", user)
    r = requests.post(
        sandbox.base + "/_sandbox/notify",
        json={"provider": "garmin", "kind": "deregistration", "userId": user,
              "target": gwc.url("/v1/providers/garmin/deregistrations")}, timeout=10)
    assert r.status_code == 200, describe(r)
    assert by_provider(gwc, athlete)["GARMIN"]["status"] == "REVOKED"


def test_garmin_permission_change_without_workout_import_revokes(gwc):
    keep, lose = uid("ath"), uid("ath")
    keep_user, lose_user = uid("g"), uid("g")
    connect(gwc, keep, "garmin", keep_user)
    connect(gwc, lose, "garmin", lose_user)
    r = gwc.http.post(gwc.url("/v1/providers/garmin/permissions"), json={"userPermissionsChange": [
        {"userId": keep_user, "permissions": ["WORKOUT_IMPORT", "ACTIVITY_EXPORT"]},
        {"userId": lose_user, "permissions": ["ACTIVITY_EXPORT"]},
    ]}, timeout=10)
    assert r.status_code == 200, describe(r)
    assert r.json() == {"revoked": 1}
    assert by_provider(gwc, keep)["GARMIN"]["status"] == "CONNECTED"
    assert by_provider(gwc, lose)["GARMIN"]["status"] == "REVOKED"


def test_athlete_deleted_revokes_connections_at_the_providers(gwc, sandbox):
    athlete = uid("ath")
    connect(gwc, athlete, "garmin", uid("g"))
    connect(gwc, athlete, "wahoo", wahoo_user())
    garmin_before = sandbox.count("DELETE /garmin/wellness-api/rest/user/registration")
    wahoo_before = sandbox.count("DELETE /wahoo/v1/permissions")
    gwc.accept({"type": "athlete.deleted", "timestamp": "2026-11-25T08:00:00Z", "data": {"athlete": {"id": athlete}}})
    wait_for(lambda: connections(gwc, athlete) == [], timeout=15, what="connections deleted")
    assert sandbox.count("DELETE /garmin/wellness-api/rest/user/registration") == garmin_before + 1
    assert sandbox.count("DELETE /wahoo/v1/permissions") == wahoo_before + 1
    assert gwc.jobs_for(athlete, "athlete.delete") == []


def test_no_token_in_the_database_file_or_the_log(gwc, sandbox):
    athlete, user = uid("ath"), uid("g")
    connect(gwc, athlete, "garmin", user)
    state = sandbox.user_state("garmin", user)
    # The token values only: other long strings of the state (issuedAt timestamps) may
    # legitimately appear in the log.
    secrets = [t[k] for t in state.get("tokens", []) for k in ("accessToken", "refreshToken") if t.get(k)]
    assert secrets, f"the sandbox state lists no tokens: {state}"
    assert all(len(t) >= 16 for t in secrets), secrets
    raw = b""
    for suffix in ("", "-wal"):
        try:
            raw += open(str(gwc.db_path) + suffix, "rb").read()
        except FileNotFoundError:
            pass
    log = gwc.log_text()
    for secret in secrets:
        assert secret.encode() not in raw, "a provider token is stored in plaintext"
        assert secret not in log, "a provider token is in the log"


def test_token_key_rotation_on_sighup_reencrypts_and_tokens_still_work(fresh_daemon, sandbox):
    import base64
    import hashlib
    import os
    import signal

    gw = fresh_daemon("rotate", extra=sandbox.provider_config())
    athlete, user = uid("ath"), uid("g")
    connect(gw, athlete, "garmin", user)
    old_key = gw.token_key
    new_raw = os.urandom(32)
    new_key = "base64:" + base64.b64encode(new_raw).decode()
    key_id = hashlib.sha256(new_raw).hexdigest()[:8]
    assert gw.query("SELECT token_key_id FROM connections WHERE athlete_id = ?", (athlete,)) != [(key_id,)]

    gw.token_key = new_key
    gw.extra.setdefault("security", {})["previous_token_keys"] = [old_key]
    gw.write_config()
    gw.signal(signal.SIGHUP)
    wait_for(
        lambda: gw.query("SELECT token_key_id FROM connections WHERE athlete_id = ?", (athlete,)) == [(key_id,)],
        timeout=10, what="tokens re-encrypted with the new key")
    # The rows are committed before the rotating thread logs its line.
    wait_for(lambda: "token key rotated" in gw.log_text(), timeout=5, what="the rotation log line")

    # The re-encrypted token is still usable: disconnecting revokes at the provider with it.
    before = sandbox.count("DELETE /garmin/wellness-api/rest/user/registration")
    r = gw.http.delete(
        gw.url(f"/v1/athletes/{athlete}/connections/garmin"),
        headers={"Authorization": f"Bearer {gw.api_keys[0]}"}, timeout=30)
    assert r.status_code == 204, describe(r)
    assert sandbox.count("DELETE /garmin/wellness-api/rest/user/registration") == before + 1
