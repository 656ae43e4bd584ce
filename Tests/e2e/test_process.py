"""Operator-facing process behaviour -- SPEC sections 2 and 7: check-config,
environment overrides, SIGTERM/SIGINT, SIGHUP reload, kill -9 durability."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from conftest import (
    Daemon,
    assert_error,
    created,
    describe,
    free_port,
    json_bytes,
    new_api_key,
    new_token_key,
    new_webhook_secret,
    to_toml,
    uid,
    wait_for,
)


def _clean_env():
    return {k: v for k, v in os.environ.items() if not k.startswith("GATEWAYD_")}


def _run(binary, *args, env=None, timeout=30):
    return subprocess.run([binary, *args], capture_output=True, text=True, timeout=timeout,
                          env=env if env is not None else _clean_env())


def _config_daemon(gatewayd_bin, tmp_path) -> Daemon:
    """A Daemon object used only for its config file (not started)."""
    return Daemon(gatewayd_bin, tmp_path / "cfg", name="cfg")


# --------------------------------------------------------------------------
# check-config
# --------------------------------------------------------------------------


def test_check_config_ok_redacts_secrets(gatewayd_bin, tmp_path):
    d = _config_daemon(gatewayd_bin, tmp_path)
    p = _run(gatewayd_bin, "check-config", "--config", str(d.config_path), env=d.child_env())
    out = p.stdout + p.stderr
    assert p.returncode == 0, out
    assert f"127.0.0.1:{d.port}" in p.stdout, "effective config should show server.listen"
    for s in d.secrets:
        assert s not in out and s[len("whsec_"):] not in out
    for k in d.api_keys:
        assert k not in out
    assert d.token_key.split(":", 1)[1] not in out


def test_check_config_shows_env_override(gatewayd_bin, tmp_path):
    d = _config_daemon(gatewayd_bin, tmp_path)
    env = dict(d.child_env(), GATEWAYD_SERVER_MAX_BODY_BYTES="4321")
    p = _run(gatewayd_bin, "check-config", "--config", str(d.config_path), env=env)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "4321" in p.stdout


def _bad(section, key, value):
    def mutate(cfg):
        cfg[section][key] = value
    return mutate


BAD_CONFIGS = [
    ("max_body_bytes_string", _bad("server", "max_body_bytes", "abc"), "server.max_body_bytes"),
    ("provider_enabled_string", _bad("providers.garmin", "enabled", "yes"), "providers.garmin.enabled"),
    ("provider_rate_limit_string", _bad("providers.wahoo", "rate_limit_per_minute", "lots"),
     "providers.wahoo.rate_limit_per_minute"),
    ("token_key_too_short", _bad("security", "token_key", "base64:AAAA"), "security.token_key"),
    ("token_key_not_base64", _bad("security", "token_key", "base64:!!!not base64!!!"), "security.token_key"),
    ("tolerance_string", _bad("plan_app", "timestamp_tolerance_s", "five minutes"), "plan_app.timestamp_tolerance_s"),
]


@pytest.mark.parametrize("mutate,key", [pytest.param(m, k, id=i) for i, m, k in BAD_CONFIGS])
def test_check_config_rejects_bad_value(gatewayd_bin, tmp_path, mutate, key):
    d = _config_daemon(gatewayd_bin, tmp_path)
    cfg = d.config_dict()
    mutate(cfg)
    d.write_config(to_toml(cfg))
    p = _run(gatewayd_bin, "check-config", "--config", str(d.config_path), env=d.child_env())
    assert p.returncode != 0, p.stdout + p.stderr
    assert key in p.stderr, p.stderr


def test_check_config_rejects_bad_env_override(gatewayd_bin, tmp_path):
    d = _config_daemon(gatewayd_bin, tmp_path)
    env = dict(d.child_env(), GATEWAYD_SERVER_MAX_BODY_BYTES="abc")
    p = _run(gatewayd_bin, "check-config", "--config", str(d.config_path), env=env)
    assert p.returncode != 0, p.stdout + p.stderr
    assert "server.max_body_bytes" in p.stderr, p.stderr


def test_check_config_missing_file_and_invalid_toml(gatewayd_bin, tmp_path):
    p = _run(gatewayd_bin, "check-config", "--config", str(tmp_path / "nope.toml"))
    assert p.returncode != 0 and p.stderr.strip(), p.stdout + p.stderr
    bad = tmp_path / "bad.toml"
    bad.write_text("[server\nlisten = \n")
    p = _run(gatewayd_bin, "check-config", "--config", str(bad))
    assert p.returncode != 0 and p.stderr.strip(), p.stdout + p.stderr


def test_serve_refuses_bad_config(gatewayd_bin, tmp_path):
    d = _config_daemon(gatewayd_bin, tmp_path)
    cfg = d.config_dict()
    cfg["server"]["max_body_bytes"] = "abc"
    d.write_config(to_toml(cfg))
    p = subprocess.Popen([gatewayd_bin, "serve", "--config", str(d.config_path)], env=d.child_env(),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _, err = p.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        p.kill()
        p.communicate()
        pytest.fail("serve kept running with an invalid config")
    assert p.returncode != 0
    assert "server.max_body_bytes" in err, err


# --------------------------------------------------------------------------
# Environment overrides on serve
# --------------------------------------------------------------------------


def test_env_overrides_config_file(fresh_daemon):
    k1, k2 = new_api_key(), new_api_key()
    port = free_port()
    d = fresh_daemon("env", start=False, env={
        "GATEWAYD_PLAN_APP_API_KEYS": f"{k1},{k2}",
        "GATEWAYD_SERVER_LISTEN": f"127.0.0.1:{port}",
        "GATEWAYD_SERVER_MAX_BODY_BYTES": "4096",
    })
    file_port, file_key = d.port, d.api_keys[0]
    d.port = port  # the env listen address wins
    d.start()
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{file_port}/healthz", timeout=2)
    sid, aid = uid("ses"), uid("ath")
    d.accept(created(sid, aid))
    for k in (k1, k2):
        r = d.get(f"/v1/sessions/{sid}", auth=f"Bearer {k}")
        assert r.status_code == 200, describe(r)
    assert_error(d.get(f"/v1/sessions/{sid}", auth=f"Bearer {file_key}"), 401, "unauthorized")
    big = created(uid("ses"), uid("ath"), description="x" * 5000)
    assert_error(d.post_webhook(big), 413, "body_too_large")


# --------------------------------------------------------------------------
# Signals
# --------------------------------------------------------------------------


def _burst(d: Daemon, n: int, workers: int, stop_after: int | None = None, on_stop=None):
    """Send n valid created webhooks from `workers` threads; returns (acked_ids, sid_by_msg).
    When stop_after is set, on_stop() is called (once) after that many 202s."""
    acked: list[str] = []
    sid_by_msg: dict[str, str] = {}
    lock = threading.Lock()
    fired = threading.Event()

    def one(i):
        sid, aid = uid("ses"), uid("ath")
        mid = uid("msg")
        try:
            r = d.post_webhook(created(sid, aid), msg_id=mid)
        except requests.RequestException:
            return
        if r.status_code == 202:
            with lock:
                acked.append(mid)
                sid_by_msg[mid] = sid
                if stop_after is not None and len(acked) == stop_after and not fired.is_set():
                    fired.set()
                    on_stop()
        elif not fired.is_set():
            raise AssertionError(describe(r))

    with ThreadPoolExecutor(max_workers=workers) as ex:
        for f in [ex.submit(one, i) for i in range(n)]:
            f.result()
    return acked, sid_by_msg


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_graceful_shutdown_keeps_every_acknowledged_webhook(fresh_daemon, sig):
    d = fresh_daemon("graceful")
    before = [d.accept(created(uid("ses"), uid("ath"))) for _ in range(20)]
    t0, exited = [], []
    proc = d.proc

    def waiter():
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            return
        exited.append(time.monotonic())

    def stop():
        t0.append(time.monotonic())
        d.signal(sig)
        threading.Thread(target=waiter, daemon=True).start()

    acked, _ = _burst(d, 400, 8, stop_after=100, on_stop=stop)
    rc = d.wait_exit(timeout=20)
    assert rc is not None, f"gatewayd still running 20 s after {sig.name}"
    wait_for(lambda: exited, timeout=2, what="exit time")
    took = exited[0] - t0[0]
    assert took <= 5.0, f"gatewayd took {took:.2f}s to exit after {sig.name} (limit 5 s)"
    assert rc == 0, f"exit status {rc} after {sig.name}"
    stored = d.stored_event_ids()
    missing = [m for m in before + acked if m not in stored]
    assert not missing, f"{len(missing)} acknowledged webhooks lost, e.g. {missing[:3]}"
    conn = sqlite3.connect(str(d.db_path))
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        conn.close()


def test_sighup_reloads_secrets_and_api_keys(fresh_daemon):
    a, b = new_webhook_secret(), new_webhook_secret()
    ka, kb = new_api_key(), new_api_key()
    d = fresh_daemon("hup", webhook_secrets=[a], api_keys=[ka])
    sid = uid("ses")
    d.accept(created(sid, uid("ath")), secret=a)
    assert d.get(f"/v1/sessions/{sid}", auth=f"Bearer {ka}").status_code == 200

    d.secrets, d.api_keys = [b], [kb]
    d.write_config()
    d.signal(signal.SIGHUP)

    def b_works():
        r = d.post_webhook(created(uid("ses"), uid("ath")), secret=b)
        assert r.status_code in (202, 401), describe(r)
        return r.status_code == 202

    wait_for(b_works, timeout=5, interval=0.1, what="secret B accepted after SIGHUP")
    assert_error(d.post_webhook(created(uid("ses"), uid("ath")), secret=a), 401, "invalid_signature")
    assert d.get(f"/v1/sessions/{sid}", auth=f"Bearer {kb}").status_code == 200
    assert_error(d.get(f"/v1/sessions/{sid}", auth=f"Bearer {ka}"), 401, "unauthorized")
    assert d.alive()


@pytest.mark.parametrize("broken", ["invalid_toml", "invalid_value"])
def test_sighup_with_broken_file_keeps_old_config(fresh_daemon, broken):
    a, b = new_webhook_secret(), new_webhook_secret()
    d = fresh_daemon("hupbad", webhook_secrets=[a])
    d.accept(created(uid("ses"), uid("ath")), secret=a)
    good_text = d.config_path.read_text()
    log_len = len(d.log_text())

    if broken == "invalid_toml":
        d.write_config("[plan_app\nwebhook_secrets = [\"" + b + "\"\n")
    else:
        cfg = d.config_dict()
        cfg["plan_app"]["webhook_secrets"] = [b]
        cfg["server"]["max_body_bytes"] = "abc"
        d.write_config(to_toml(cfg))
    d.signal(signal.SIGHUP)
    wait_for(lambda: "reload" in d.log_text()[log_len:].lower(), timeout=5, what="a log line about the failed reload")
    time.sleep(0.3)
    assert d.alive(), "gatewayd died on a bad reload"
    d.accept(created(uid("ses"), uid("ath")), secret=a)
    assert_error(d.post_webhook(created(uid("ses"), uid("ath")), secret=b), 401, "invalid_signature")
    assert d.http.get(d.url("/healthz"), timeout=5).status_code == 200

    # A later good file is picked up.
    d.secrets = [b]
    d.write_config()
    assert good_text != d.config_path.read_text()
    d.signal(signal.SIGHUP)
    wait_for(lambda: d.post_webhook(created(uid("ses"), uid("ath")), secret=b).status_code == 202,
             timeout=5, interval=0.1, what="secret B accepted after fixing the file")


# --------------------------------------------------------------------------
# kill -9 durability
# --------------------------------------------------------------------------


@pytest.mark.parametrize("when", ["after_burst", "mid_burst"])
def test_kill9_loses_no_acknowledged_webhook(fresh_daemon, when):
    d = fresh_daemon("crash")
    if when == "after_burst":
        acked, sid_by_msg = _burst(d, 600, 8)
        d.kill9()
    else:
        acked, sid_by_msg = _burst(d, 900, 8, stop_after=400, on_stop=d.kill9)
        d.kill9()
    assert len(acked) >= 300, f"only {len(acked)} webhooks acknowledged"

    # Restart on the same database (new port, same config otherwise).
    d.port = free_port()
    d.write_config()
    d.start()
    stored = d.stored_event_ids()
    missing = [m for m in acked if m not in stored]
    assert not missing, f"{len(missing)}/{len(acked)} acknowledged webhooks lost after kill -9, e.g. {missing[:3]}"

    # Re-sending acknowledged ids gives 200 duplicate; their sessions are readable.
    sample = acked[-30:] + random.sample(acked, 30)
    for mid in sample:
        r = d.post_webhook(created(sid_by_msg[mid], uid("ath")), msg_id=mid)
        assert r.status_code == 200 and r.json() == {"duplicate": True}, describe(r)
    for mid in sample[:20]:
        r = d.status(sid_by_msg[mid])
        assert r.status_code == 200, describe(r)
    # And the restarted daemon takes new work.
    d.accept(created(uid("ses"), uid("ath")))
