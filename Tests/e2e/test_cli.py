"""The operator CLI beside a running daemon (issue 6): `gatewayd sessions`,
`gatewayd connections`, `gatewayd backup`, and the daemon's log lines.

Every command runs as the real binary on the same SQLite file while the daemon
ingests and pushes; the effects are observed through the status API, the
sandbox's call counts and state, and the files the commands write.
"""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
import threading
import time

import pytest
import requests

from conftest import Daemon, created, describe, future_date, uid, updated, wait_for
from test_connections import Sandbox, authorize, browser_to_callback, by_provider, connect, follow_callback, wahoo_user

GARMIN_CREATE = "POST /garmin/workoutportal/workout/v2"
WAHOO_WORKOUT = {
    "sport": "BIKE",
    "steps": [
        {"kind": "WARMUP", "duration": {"type": "TIME", "seconds": 600}},
        {"kind": "INTERVAL", "duration": {"type": "TIME", "seconds": 1200},
         "target": {"type": "POWER", "minWatts": 200, "maxWatts": 220}},
        {"kind": "COOLDOWN", "duration": {"type": "TIME", "seconds": 300}},
    ],
}


@pytest.fixture(scope="module")
def csandbox(gatewayd_bin, tmp_path_factory):
    s = Sandbox(gatewayd_bin, tmp_path_factory.mktemp("clisandbox"))
    yield s
    s.stop()


@pytest.fixture(autouse=True)
def _clean_faults(csandbox):
    csandbox.clear_faults()
    yield
    csandbox.clear_faults()


def push_extra(sandbox: Sandbox, **more) -> dict:
    extra = sandbox.provider_config()
    extra["push"] = {"backoff_base_ms": 100, "backoff_max_ms": 400, "max_attempts": 4}
    extra.update(more)
    return extra


@pytest.fixture(scope="module")
def gwcli(daemon_factory, csandbox) -> Daemon:
    return daemon_factory("cli", extra=push_extra(csandbox))


def cli(d: Daemon, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [d.binary, *args, "--config", str(d.config_path)],
        capture_output=True, text=True, env=d.child_env(), cwd=str(d.workdir), timeout=timeout,
    )


def ctx(p: subprocess.CompletedProcess) -> str:
    return f"exit {p.returncode}\n--- stdout ---\n{p.stdout}\n--- stderr ---\n{p.stderr}"


def cli_json(d: Daemon, *args: str) -> dict:
    p = cli(d, *args, "--json")
    assert p.returncode == 0, ctx(p)
    return json.loads(p.stdout)


def status(d: Daemon, sid: str) -> dict:
    r = d.status(sid)
    assert r.status_code == 200, describe(r)
    return r.json()


def wait_status(d: Daemon, sid: str, want: str, timeout: float = 20) -> dict:
    return wait_for(lambda: (s := status(d, sid))["exportStatus"] == want and s, timeout=timeout,
                    what=f"{sid} {want}")


# --------------------------------------------------------------------------
# sessions list / show / retry
# --------------------------------------------------------------------------


def test_failed_sessions_are_listed_and_retried_while_the_daemon_runs(daemon_factory, csandbox):
    # Its own daemon: "--status FAILED" must list exactly this test's sessions.
    d = daemon_factory("clifailed", extra=push_extra(csandbox))
    garmin_a, garmin_b, wahoo_c = uid("ath"), uid("ath"), uid("ath")
    connect(d, garmin_a, "garmin", uid("g"))
    connect(d, garmin_b, "garmin", uid("g"))
    connect(d, wahoo_c, "wahoo", wahoo_user())

    # Three Garmin sessions refused with a permanent 400: FAILED.
    csandbox.fault(method="POST", path="/garmin/workoutportal/workout/v2", responses=[{"status": 400}] * 3)
    failed_garmin = [uid("ses"), uid("ses"), uid("ses")]
    for sid, athlete in zip(failed_garmin, [garmin_a, garmin_a, garmin_b]):
        d.accept(created(sid, athlete, day=future_date(5)))
    for sid in failed_garmin:
        wait_status(d, sid, "FAILED")
    # A Wahoo session whose workout Wahoo cannot take (a lap-button step): FAILED too.
    failed_wahoo = uid("ses")
    d.accept(created(failed_wahoo, wahoo_c, day=future_date(5)))
    wahoo_before = wait_status(d, failed_wahoo, "FAILED")
    assert wahoo_before["lastExportError"].startswith("Validation failed")
    # Sessions that are fine: SENT, never listed as FAILED.
    sent = [uid("ses"), uid("ses")]
    d.accept(created(sent[0], garmin_a, day=future_date(6)))
    d.accept(created(sent[1], wahoo_c, day=future_date(6), workout=WAHOO_WORKOUT))
    for sid in sent:
        wait_status(d, sid, "SENT")

    listed = cli_json(d, "sessions", "list", "--status", "FAILED")
    assert {s["sessionId"] for s in listed["sessions"]} == set(failed_garmin) | {failed_wahoo}, listed
    assert listed["more"] is False
    by_id = {s["sessionId"]: s for s in listed["sessions"]}
    for sid in failed_garmin:
        assert by_id[sid]["provider"] == "GARMIN" and by_id[sid]["exportStatus"] == "FAILED"
        assert by_id[sid]["lastExportError"] and by_id[sid]["attempts"] == 1
    assert by_id[failed_wahoo]["provider"] == "WAHOO"
    garmin_only = cli_json(d, "sessions", "list", "--status", "FAILED", "--provider", "garmin")
    assert {s["sessionId"] for s in garmin_only["sessions"]} == set(failed_garmin)
    # --limit cuts the list and says so.
    cut = cli(d, "sessions", "list", "--status", "FAILED", "--limit", "2", "--json")
    assert cut.returncode == 0, ctx(cut)
    assert len(json.loads(cut.stdout)["sessions"]) == 2 and json.loads(cut.stdout)["more"] is True
    # The table form names the same sessions.
    table = cli(d, "sessions", "list", "--athlete", garmin_a, "--status", "FAILED")
    assert table.returncode == 0, ctx(table)
    assert table.stdout.splitlines()[0].split()[:3] == ["SESSION", "ATHLETE", "STATUS"]
    assert sorted(line.split()[0] for line in table.stdout.splitlines()[1:]) == sorted(failed_garmin[:2])

    # show: status, provider, attempts, last error, dates, no job while FAILED.
    shown = cli_json(d, "sessions", "show", failed_garmin[0])
    assert shown["exportStatus"] == "FAILED" and shown["provider"] == "GARMIN" and shown["attempts"] == 1
    assert shown["lastExportError"] == status(d, failed_garmin[0])["lastExportError"]
    assert shown["date"] == future_date(5) and shown["createdAt"].endswith("Z") and shown["job"] is None
    missing = cli(d, "sessions", "show", uid("ses"))
    assert missing.returncode == 1 and "no session" in missing.stderr, ctx(missing)

    # Retry one by id: the daemon (not restarted, not signalled) pushes it again.
    creates = csandbox.count(GARMIN_CREATE)
    one = cli(d, "sessions", "retry", failed_garmin[0])
    assert one.returncode == 0, ctx(one)
    assert f"queued {failed_garmin[0]}" in one.stdout.splitlines()
    s = wait_status(d, failed_garmin[0], "SENT")
    assert s["attempts"] == 1 and s["lastExportError"] is None and s["externalWorkoutId"]

    # Bulk: every FAILED Garmin session, while webhooks keep arriving.
    extra_sessions = [uid("ses") for _ in range(5)]
    feeder = threading.Thread(
        target=lambda: [d.accept(created(sid, garmin_b, day=future_date(7))) for sid in extra_sessions])
    feeder.start()
    bulk = cli(d, "sessions", "retry", "--status", "FAILED", "--provider", "garmin")
    feeder.join()
    assert bulk.returncode == 0, ctx(bulk)
    queued = [line.split()[1] for line in bulk.stdout.splitlines() if line.startswith("queued ")]
    assert sorted(queued) == sorted(failed_garmin[1:]), ctx(bulk)
    assert bulk.stdout.splitlines()[-1] == "2 sessions queued"
    for sid in failed_garmin[1:] + extra_sessions:
        wait_status(d, sid, "SENT")
    assert csandbox.count(GARMIN_CREATE) == creates + 3 + len(extra_sessions)
    # The Wahoo session was not touched.
    assert status(d, failed_wahoo) == wahoo_before

    # Nothing FAILED at Garmin any more: nothing matches, exit 1.
    again = cli(d, "sessions", "retry", "--status", "FAILED", "--provider", "garmin")
    assert again.returncode == 1 and "no session matches" in again.stderr, ctx(again)
    # A SENT session and an unknown id are refused by id; a retryable one in the same call is queued.
    wahoo_shown = cli_json(d, "sessions", "show", failed_wahoo)
    mixed = cli(d, "sessions", "retry", sent[0], uid("ses"), failed_wahoo)
    assert mixed.returncode == 1, ctx(mixed)
    assert f"{sent[0]}: not retried, it is SENT" in mixed.stderr and "no such session" in mixed.stderr
    assert mixed.stdout.splitlines() == [f"queued {failed_wahoo}", "1 session queued"]
    # ... and the daemon takes its job and fails it again: Wahoo still cannot take the workout
    # (the retry cleared the error; the daemon's new attempt wrote it again).
    def reattempted():
        shown = cli_json(d, "sessions", "show", failed_wahoo)
        return shown["exportStatus"] == "FAILED" and shown["job"] is None and shown
    again_failed = wait_for(reattempted, timeout=20, what="the Wahoo session attempted again")
    assert again_failed["lastExportError"] == wahoo_before["lastExportError"]
    assert again_failed["updatedAt"] > wahoo_shown["updatedAt"] and again_failed["attempts"] == 0


def test_sessions_usage_errors_exit_2(gwcli):
    for args in (
        ["sessions", "list", "--status", "DONE"],
        ["sessions", "list", "--provider", "polar"],
        ["sessions", "list", "--limit", "0"],
        ["sessions", "retry"],
        ["sessions", "retry", "--status", "SENT"],
        ["sessions", "retry", "ses_x", "--status", "FAILED"],
        ["sessions", "frobnicate"],
    ):
        p = cli(gwcli, *args)
        assert p.returncode == 2 and p.stderr.strip() and not p.stdout, (args, ctx(p))


def test_missing_database_is_a_config_error(gwcli, tmp_path):
    cfg = tmp_path / "other.toml"
    cfg.write_text(gwcli.config_path.read_text().replace(str(gwcli.db_path), str(tmp_path / "none.sqlite")))
    p = subprocess.run([gwcli.binary, "sessions", "list", "--config", str(cfg)], capture_output=True, text=True,
                       env=gwcli.child_env(), timeout=30)
    assert p.returncode == 2 and "no database" in p.stderr, ctx(p)
    assert not (tmp_path / "none.sqlite").exists()


# --------------------------------------------------------------------------
# connections list / revoke
# --------------------------------------------------------------------------


def stored_secrets(d: Daemon, sandbox: Sandbox, provider: str, user: str) -> list[str]:
    tokens = sandbox.user_state(provider, user)["tokens"]
    plain = [t[k] for t in tokens for k in ("accessToken", "refreshToken") if t.get(k)]
    sealed = [v for row in d.query("SELECT access_token_sealed, refresh_token_sealed FROM connections") for v in row if v]
    assert plain and sealed
    return plain + sealed


def test_connections_list_never_prints_tokens(gwcli, csandbox):
    athlete, user = uid("ath"), uid("g")
    connect(gwcli, athlete, "garmin", user)
    secrets = stored_secrets(gwcli, csandbox, "garmin", user) + [gwcli.token_key, "sandbox-garmin-secret"]
    listed = cli_json(gwcli, "connections", "list", "--athlete", athlete)
    assert [(c["athleteId"], c["provider"], c["status"], c["primary"], c["providerUserId"], c["hasTokens"])
            for c in listed["connections"]] == [(athlete, "GARMIN", "CONNECTED", True, user, True)]
    everything = cli(gwcli, "connections", "list", "--json")
    table = cli(gwcli, "connections", "list")
    assert everything.returncode == 0 and table.returncode == 0, ctx(everything) + ctx(table)
    assert athlete in table.stdout and athlete in everything.stdout
    for out in (json.dumps(listed), everything.stdout, everything.stderr, table.stdout, table.stderr):
        for secret in secrets:
            assert secret not in out
        assert "token\":\"" not in out.lower().replace(" ", "")
    none = cli(gwcli, "connections", "list", "--athlete", uid("ath"), "--json")
    assert none.returncode == 1 and json.loads(none.stdout) == {"connections": []}, ctx(none)


def test_revoke_marks_revoked_and_sessions_not_connected(gwcli, csandbox):
    athlete, user = uid("ath"), uid("g")
    connect(gwcli, athlete, "garmin", user)
    sid = uid("ses")
    gwcli.accept(created(sid, athlete, day=future_date(4)))
    wait_status(gwcli, sid, "SENT")
    deletes = csandbox.count("DELETE /garmin/wellness-api/rest/user/registration")

    p = cli(gwcli, "connections", "revoke", athlete, "garmin")
    assert p.returncode == 0, ctx(p)
    assert "revoked GARMIN for " + athlete in p.stdout and "at the provider: revoked" in p.stdout, ctx(p)
    assert "sessions: NOT_CONNECTED 1" in p.stdout, ctx(p)
    assert status(gwcli, sid)["exportStatus"] == "NOT_CONNECTED"
    c = by_provider(gwcli, athlete)["GARMIN"]
    assert c["status"] == "REVOKED" and c["revokedReason"] == "revoked_by_operator" and c["revokedAt"]
    assert gwcli.query("SELECT access_token_sealed, refresh_token_sealed FROM connections WHERE athlete_id = ?",
                       (athlete,)) == [(None, None)]
    assert csandbox.count("DELETE /garmin/wellness-api/rest/user/registration") == deletes + 1
    assert csandbox.user_state("garmin", user)["registered"] is False
    # The daemon no longer pushes for this athlete: a change stays NOT_CONNECTED.
    calls = csandbox.calls()["total"]
    gwcli.accept(updated(sid, athlete, revision=2, day=future_date(4)))
    time.sleep(1.0)
    assert status(gwcli, sid)["exportStatus"] == "NOT_CONNECTED"
    assert csandbox.calls()["total"] == calls
    # Not connected any more: exit 1.
    again = cli(gwcli, "connections", "revoke", athlete, "garmin")
    assert again.returncode == 1 and "no connected garmin" in again.stderr, ctx(again)


def test_revoke_moves_sessions_to_the_other_provider(gwcli, csandbox):
    athlete = uid("ath")
    connect(gwcli, athlete, "garmin", uid("g"))
    connect(gwcli, athlete, "wahoo", wahoo_user())
    sid = uid("ses")
    gwcli.accept(created(sid, athlete, day=future_date(4), workout=WAHOO_WORKOUT))
    assert wait_status(gwcli, sid, "SENT")["exportProvider"] == "GARMIN"
    p = cli(gwcli, "connections", "revoke", athlete, "GARMIN", "--local-only")
    assert p.returncode == 0, ctx(p)
    assert "primary now: WAHOO" in p.stdout and "at the provider: skipped (--local-only)" in p.stdout, ctx(p)
    wait_for(lambda: status(gwcli, sid)["exportProvider"] == "WAHOO" and status(gwcli, sid)["exportStatus"] == "SENT",
             timeout=20, what="session moved to Wahoo")
    assert by_provider(gwcli, athlete)["WAHOO"]["primary"] is True


def test_revoke_refreshes_an_expired_token_before_revoking_at_the_provider(gwcli, csandbox):
    athlete, user = uid("ath"), wahoo_user()
    connect(gwcli, athlete, "wahoo", user)
    expired = requests.post(csandbox.base + "/_sandbox/tokens/expire", json={"provider": "wahoo", "userId": user},
                            timeout=5)
    assert expired.status_code == 200 and expired.json()["expired"] >= 1, expired.text
    revokes = csandbox.count("DELETE /wahoo/v1/permissions")
    p = cli(gwcli, "connections", "revoke", athlete, "wahoo")
    assert p.returncode == 0, ctx(p)
    assert "at the provider: revoked (after a token refresh)" in p.stdout, ctx(p)
    assert csandbox.count("DELETE /wahoo/v1/permissions") == revokes + 2
    assert csandbox.user_state("wahoo", user)["liveTokens"] == 0


# --------------------------------------------------------------------------
# backup
# --------------------------------------------------------------------------


def test_backup_while_webhooks_are_ingested(gwcli, tmp_path):
    athlete = uid("ath")  # never connected: sessions stay NOT_CONNECTED, no provider calls
    pre = {r[0] for r in gwcli.query("SELECT id FROM sessions")}
    started: list[str] = []
    acked: list[str] = []
    errors: list[str] = []
    stop = threading.Event()

    def feed():
        while not stop.is_set():
            sid = uid("ses")
            started.append(sid)
            r = gwcli.post_webhook(created(sid, athlete))
            if r.status_code == 202:
                acked.append(sid)
            else:
                errors.append(describe(r))

    threads = [threading.Thread(target=feed) for _ in range(2)]
    for t in threads:
        t.start()
    try:
        wait_for(lambda: len(acked) >= 200, timeout=30, what="200 webhooks before the backup")
        before = set(acked)
        dest = tmp_path / "copy.sqlite"
        p = cli(gwcli, "backup", "--to", str(dest))
        upper = set(started)
        wait_for(lambda: len(acked) >= len(before) + 50, timeout=30, what="ingest continuing after the backup")
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert not errors, errors[:3]
    assert p.returncode == 0, ctx(p)
    m = re.fullmatch(r"backup (.+): (\d+) bytes, (\d+) sessions, (\d+\.\d+) s, integrity_check ok\n", p.stdout)
    assert m and m.group(1) == str(dest), ctx(p)
    assert int(m.group(2)) == dest.stat().st_size

    copy = sqlite3.connect(f"file:{dest}?mode=ro", uri=True)
    try:
        assert copy.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        ids = {r[0] for r in copy.execute("SELECT id FROM sessions")}
        events = copy.execute("SELECT COUNT(*) FROM webhook_events").fetchone()[0]
    finally:
        copy.close()
    assert int(m.group(3)) == len(ids)
    # One snapshot: everything acknowledged before the backup, nothing not yet sent.
    assert pre | before <= ids <= pre | upper
    assert events >= len(pre | before)
    assert not list(tmp_path.glob("copy.sqlite.partial-*"))

    # An existing destination is refused and left alone.
    size = dest.stat().st_size
    again = cli(gwcli, "backup", "--to", str(dest))
    assert again.returncode == 2 and "already exists" in again.stderr, ctx(again)
    assert dest.stat().st_size == size


# --------------------------------------------------------------------------
# Logs
# --------------------------------------------------------------------------


def test_process_up_line_has_versions(gwcli):
    version = subprocess.run([gwcli.binary, "--version"], capture_output=True, text=True, timeout=10).stdout.strip()
    assert re.fullmatch(r"\d+\.\d+\.\d+\S*", version), version
    lines = [line for line in gwcli.log_text().splitlines() if 'msg="process up"' in line]
    assert lines, gwcli.log_tail()
    fields = dict(re.findall(r'(\w+)=("(?:[^"\\]|\\.)*"|\S+)', lines[0]))
    fields = {k: json.loads(v) if v.startswith('"') else v for k, v in fields.items()}
    assert fields["version"] == version
    assert re.match(r"\d+\.\d+\.\d+", fields["libevent"]), fields
    assert re.match(r"OpenSSL \d+\.\d+\.\d+", fields["openssl"]), fields
    assert re.fullmatch(r"\d+\.\d+\.\d+(\.\d+)?", fields["sqlite"]), fields
    assert fields["db"] == str(gwcli.db_path) and fields["log_format"] == "logfmt"
    assert fields["listen"] == f"127.0.0.1:{gwcli.port}"


def test_json_logs_carry_ids_and_no_secrets(daemon_factory, csandbox):
    d = daemon_factory("clijson", extra=push_extra(csandbox, log={"format": "json"}))
    athlete, user = uid("ath"), uid("g")
    callback = follow_callback(browser_to_callback(authorize(d, athlete, "garmin"), sandbox_user=user))
    assert callback.status_code == 302, describe(callback)
    callback_request = callback.headers["X-Request-Id"]
    sid = uid("ses")
    r = d.post_webhook(created(sid, athlete, day=future_date(3)))
    assert r.status_code == 202 and r.headers["X-Request-Id"] not in ("", callback_request), describe(r)
    wait_status(d, sid, "SENT")
    failed = uid("ses")
    d.accept(created(failed, athlete, day="2020-01-01"))
    wait_status(d, failed, "FAILED")
    bad = d.post_webhook(created(uid("ses"), athlete), secret="whsec_" + "A" * 44)
    assert bad.status_code == 401
    p = cli(d, "connections", "revoke", athlete, "garmin")
    assert p.returncode == 0, ctx(p)
    secrets = [t[k] for t in csandbox.user_state("garmin", user)["tokens"] for k in ("accessToken", "refreshToken")]
    d.stop()

    records = []
    for line in d.log_text().splitlines():
        if not line.strip() or line.startswith("===== e2e:"):
            continue
        record = json.loads(line)  # every line is one JSON object
        assert isinstance(record, dict) and {"ts", "level", "msg"} <= set(record), line
        records.append(record)
    up = [r for r in records if r["msg"] == "process up"]
    assert len(up) == 1 and up[0]["log_format"] == "json"
    assert all(up[0][k] for k in ("libevent", "openssl", "sqlite", "version"))
    connected = [r for r in records if r["msg"] == "athlete connected"]
    assert connected and connected[0]["request_id"] == callback_request and connected[0]["athlete_id"] == athlete
    outcomes = {r["session_id"]: r for r in records if r["msg"] == "push outcome"}
    assert outcomes[sid]["athlete_id"] == athlete and outcomes[sid]["outcome"] == "sent"
    assert outcomes[failed]["outcome"] == "failed" and outcomes[failed]["error"] == "session date has passed"

    text = d.log_text()
    assert len(secrets) >= 2
    for secret in secrets + d.secrets + d.api_keys + [d.token_key, "sandbox-garmin-secret"]:
        assert secret not in text
        assert secret not in p.stdout + p.stderr
