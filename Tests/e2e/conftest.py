"""Shared fixtures for the black-box end-to-end tests of `gatewayd`.

Everything here talks to the real binary (path in env GATEWAYD_BIN) over HTTP,
signals and its SQLite file. Expectations come from /work/shared/SPEC.md and the
fixed test interface described in Tests/e2e/README.md -- never from the Swift code.

Nothing in this file is autouse: test modules that do not ask for a daemon
(e.g. test_fit_decode.py) are not affected by it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import signal
import socket
import sqlite3
import subprocess
import threading
import time
import uuid
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable, Iterable

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families
from standardwebhooks.webhooks import Webhook

WEBHOOK_PATH = "/v1/webhooks/plan"
DEFAULT_MAX_BODY = 1048576
READY_TIMEOUT_S = 20.0

# SPEC section 2 public test vector (the only hard-coded secret in this suite).
SPEC_VECTOR = {
    "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    "id": "msg_p5jXN8AQM9LWM0D4loKWxJek",
    "timestamp": 1614265330,
    "body": b'{"test": 2432232314}',
    "signature": "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
}

STATUS_KEYS = {
    "sessionId",
    "athleteId",
    "revision",
    "deleted",
    "exportStatus",
    "exportProvider",
    "exportedAt",
    "externalWorkoutId",
    "lastExportError",
    "attempts",
    "nextAttemptAt",
}


# --------------------------------------------------------------------------
# Generic helpers
# --------------------------------------------------------------------------


def new_webhook_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def new_api_key() -> str:
    return "gk_" + secrets.token_urlsafe(32)


def new_token_key() -> str:
    return "base64:" + base64.b64encode(secrets.token_bytes(32)).decode()


def uid(prefix: str) -> str:
    """Unique id for sessions/athletes/webhooks, so tests never collide."""
    return f"{prefix}_{uuid.uuid4().hex[:16]}"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def now_s() -> int:
    return int(time.time())


def future_date(days: int = 30) -> str:
    return (date.today() + timedelta(days=days)).isoformat()


def iso_now() -> str:
    return datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")


def json_bytes(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode("utf-8")


def wait_for(predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.05, what: str = "condition"):
    """Poll until predicate() is truthy; return its value or fail."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        last = predicate()
        if last:
            return last
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}; last value: {last!r}")
        time.sleep(interval)


def sign(secret: str, msg_id: str, ts: int, body: bytes) -> str:
    """Standard Webhooks signature `v1,<b64>` made by the PyPI `standardwebhooks` package.

    The package only signs `str` payloads (it encodes them as UTF-8). For the
    one case of a body that is not valid UTF-8 we compute the same HMAC by hand
    (`sign_manual`); test_ingest checks that both agree on the SPEC vector.
    """
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return sign_manual(secret, msg_id, ts, body)
    return Webhook(secret).sign(msg_id, datetime.fromtimestamp(ts, tz=timezone.utc), text)


def sign_manual(secret: str, msg_id: str, ts: int, body: bytes) -> str:
    key = base64.b64decode(secret[len("whsec_"):] if secret.startswith("whsec_") else secret)
    mac = hmac.new(key, f"{msg_id}.{ts}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


# --------------------------------------------------------------------------
# Events
# --------------------------------------------------------------------------


def valid_workout(sport: str = "BIKE") -> dict:
    return {
        "sport": sport,
        "steps": [
            {"kind": "WARMUP", "duration": {"type": "TIME", "seconds": 600}},
            {
                "repeat": 5,
                "steps": [
                    {
                        "kind": "INTERVAL",
                        "duration": {"type": "TIME", "seconds": 300},
                        "target": {"type": "POWER", "minWatts": 250, "maxWatts": 270},
                    },
                    {"kind": "RECOVERY", "duration": {"type": "TIME", "seconds": 180}},
                ],
            },
            {"kind": "COOLDOWN", "duration": {"type": "OPEN"}},
        ],
    }


def session_obj(
    sid: str,
    aid: str,
    revision: int = 1,
    session_type: str = "ENDURANCE",
    day: str | None = None,
    workout: Any = "default",
    **extra: Any,
) -> dict:
    s: dict[str, Any] = {
        "id": sid,
        "athleteId": aid,
        "revision": revision,
        "sessionType": session_type,
        "date": day or future_date(),
        "title": "Threshold 5x5",
    }
    if workout == "default":
        if session_type == "ENDURANCE":
            s["workout"] = valid_workout()
    elif workout is not None:
        s["workout"] = workout
    s.update(extra)
    return s


def session_event(etype: str, sid: str, aid: str, revision: int = 1, **kw: Any) -> dict:
    return {"type": etype, "timestamp": iso_now(), "data": {"session": session_obj(sid, aid, revision, **kw)}}


def created(sid: str, aid: str, revision: int = 1, **kw: Any) -> dict:
    return session_event("session.created", sid, aid, revision, **kw)


def updated(sid: str, aid: str, revision: int, **kw: Any) -> dict:
    return session_event("session.updated", sid, aid, revision, **kw)


def deleted(sid: str, aid: str, revision: int) -> dict:
    return {
        "type": "session.deleted",
        "timestamp": iso_now(),
        "data": {"session": {"id": sid, "athleteId": aid, "revision": revision}},
    }


def athlete_deleted(aid: str) -> dict:
    return {"type": "athlete.deleted", "timestamp": iso_now(), "data": {"athlete": {"id": aid}}}


# --------------------------------------------------------------------------
# Assertions
# --------------------------------------------------------------------------


def assert_error(
    resp: requests.Response,
    status: int,
    code: str,
    message_contains: str | None = None,
    message_prefix: str | None = None,
) -> dict:
    ctx = f"{resp.request.method} {resp.request.url} -> {resp.status_code} {resp.text[:500]!r}"
    assert resp.status_code == status, ctx
    assert resp.headers.get("Content-Type", "").startswith("application/json"), ctx
    body = resp.json()
    assert set(body) == {"error"}, ctx
    err = body["error"]
    assert isinstance(err, dict) and isinstance(err.get("code"), str) and isinstance(err.get("message"), str), ctx
    assert err["code"] == code, ctx
    assert err["message"].strip(), ctx
    if message_contains is not None:
        assert message_contains.lower() in err["message"].lower(), ctx
    if message_prefix is not None:
        assert err["message"].startswith(message_prefix), ctx
    return err


def describe(resp: requests.Response) -> str:
    return f"{resp.request.method} {resp.request.url} -> {resp.status_code} {resp.text[:500]!r}"


# --------------------------------------------------------------------------
# Metrics
# --------------------------------------------------------------------------


class Metrics:
    """Snapshot of /metrics: {(sample_name, frozenset(labels.items())): value}."""

    def __init__(self, text: str):
        self.text = text
        self.samples: dict[tuple[str, frozenset], float] = {}
        self.families = list(text_string_to_metric_families(text))
        for fam in self.families:
            for s in fam.samples:
                self.samples[(s.name, frozenset(s.labels.items()))] = s.value

    def get(self, name: str, **labels: str) -> float:
        return self.samples.get((name, frozenset(labels.items())), 0.0)

    def select(self, name: str, **labels: str) -> list[tuple[dict, float]]:
        out = []
        for (n, ls), v in self.samples.items():
            if n != name:
                continue
            d = dict(ls)
            if all(d.get(k) == v2 for k, v2 in labels.items()):
                out.append((d, v))
        return out

    def webhooks(self, outcome: str) -> float:
        return self.get("gatewayd_webhooks_total", outcome=outcome)


# --------------------------------------------------------------------------
# Config
# --------------------------------------------------------------------------


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)  # JSON string escapes are valid TOML basic-string escapes
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    raise TypeError(f"cannot write {v!r} as TOML")


def to_toml(cfg: dict[str, dict[str, Any]]) -> str:
    lines = []
    for section, keys in cfg.items():
        lines.append(f"[{section}]")
        for k, v in keys.items():
            if v is None:
                continue
            lines.append(f"{k} = {_toml_value(v)}")
        lines.append("")
    return "\n".join(lines)


# --------------------------------------------------------------------------
# The daemon
# --------------------------------------------------------------------------

_DAEMONS: list["Daemon"] = []
_ITEM_START = [0.0]


class Daemon:
    """One `gatewayd serve` process with its own config, port, DB and log files."""

    def __init__(
        self,
        binary: str,
        workdir: Path,
        name: str = "gw",
        webhook_secrets: list[str] | None = None,
        api_keys: list[str] | None = None,
        timestamp_tolerance_s: int = 300,
        max_body_bytes: int = DEFAULT_MAX_BODY,
        env: dict[str, str] | None = None,
        extra: dict[str, dict[str, Any]] | None = None,
    ):
        self.binary = binary
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.secrets = webhook_secrets or [new_webhook_secret(), new_webhook_secret()]
        self.api_keys = api_keys or [new_api_key(), new_api_key()]
        self.token_key = new_token_key()
        self.tolerance = timestamp_tolerance_s
        self.max_body_bytes = max_body_bytes
        self.db_path = self.workdir / "gw.sqlite"
        self.config_path = self.workdir / "gatewayd.toml"
        self.env_overrides = dict(env or {})
        self.extra = extra or {}
        self.port = free_port()
        self.proc: subprocess.Popen | None = None
        self.started_at: float | None = None
        self.stopped_at: float | None = None
        self.starts = 0
        self.sent_signatures: list[str] = []
        self._local = threading.local()
        self.write_config()
        _DAEMONS.append(self)

    # ---- config -------------------------------------------------------
    def config_dict(self) -> dict[str, dict[str, Any]]:
        cfg: dict[str, dict[str, Any]] = {
            "server": {
                "listen": f"127.0.0.1:{self.port}",
                "public_url": f"http://127.0.0.1:{self.port}",
                "max_body_bytes": self.max_body_bytes,
            },
            "storage": {"path": str(self.db_path)},
            "plan_app": {
                "webhook_secrets": list(self.secrets),
                "api_keys": list(self.api_keys),
                "timestamp_tolerance_s": self.tolerance,
            },
            "security": {"token_key": self.token_key},
            "providers.garmin": {"enabled": False},
            "providers.wahoo": {"enabled": False},
        }
        for section, keys in self.extra.items():
            cfg.setdefault(section, {}).update(keys)
        return cfg

    def write_config(self, text: str | None = None) -> None:
        self.config_path.write_text(text if text is not None else to_toml(self.config_dict()))

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str) -> str:
        return self.base_url + path

    @property
    def log_path(self) -> Path:
        return self.workdir / f"{self.name}.stderr.log"

    @property
    def stdout_path(self) -> Path:
        return self.workdir / f"{self.name}.stdout.log"

    def child_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAYD_")}
        env.update(self.env_overrides)
        return env

    # ---- lifecycle ----------------------------------------------------
    def start(self, wait: bool = True) -> "Daemon":
        assert self.proc is None or self.proc.poll() is not None, "already running"
        self.starts += 1
        mode = "ab"
        with open(self.log_path, mode) as f:
            f.write(f"\n===== e2e: start #{self.starts} on port {self.port} =====\n".encode())
        self._stderr = open(self.log_path, "ab")
        self._stdout = open(self.stdout_path, "ab")
        self.proc = subprocess.Popen(
            [self.binary, "serve", "--config", str(self.config_path)],
            stdout=self._stdout,
            stderr=self._stderr,
            stdin=subprocess.DEVNULL,
            env=self.child_env(),
            cwd=str(self.workdir),
        )
        self.started_at = time.time()
        self.stopped_at = None
        self._local = threading.local()
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout: float = READY_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(
                    f"gatewayd exited with {self.proc.returncode} before becoming ready\n" + self.log_tail()
                )
            try:
                r = requests.get(self.url("/healthz"), timeout=1)
                if r.status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.05)
        pytest.fail(f"gatewayd not ready (GET /healthz != 200) within {timeout}s\n" + self.log_tail())

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def wait_exit(self, timeout: float) -> int | None:
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
        finally:
            if self.proc.poll() is not None:
                self._closed()

    def kill9(self) -> None:
        if self.alive():
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)
        self._closed()

    def stop(self) -> None:
        """Best-effort teardown: SIGTERM, then SIGKILL."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=8)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self._closed()

    def _closed(self) -> None:
        if self.stopped_at is None:
            self.stopped_at = time.time()
        for f in (getattr(self, "_stderr", None), getattr(self, "_stdout", None)):
            try:
                if f:
                    f.close()
            except Exception:
                pass

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 60) -> str:
        text = self.log_text().splitlines()[-lines:]
        out = self.stdout_path.read_text(errors="replace").splitlines()[-10:] if self.stdout_path.exists() else []
        return (
            f"--- gatewayd[{self.name}] stderr tail ({self.log_path}) ---\n"
            + "\n".join(text)
            + (f"\n--- stdout tail ---\n" + "\n".join(out) if out else "")
        )

    # ---- HTTP ---------------------------------------------------------
    @property
    def http(self) -> requests.Session:
        """A keep-alive requests.Session private to the calling thread."""
        s = getattr(self._local, "s", None)
        if s is None:
            s = requests.Session()
            self._local.s = s
        return s

    def get(self, path: str, auth: bool | str = True, **kw) -> requests.Response:
        headers = dict(kw.pop("headers", {}) or {})
        if auth is True:
            headers["Authorization"] = f"Bearer {self.api_keys[0]}"
        elif isinstance(auth, str):
            headers["Authorization"] = auth
        kw.setdefault("timeout", 10)
        return self.http.get(self.url(path), headers=headers, **kw)

    def signed_headers(
        self,
        body: bytes,
        msg_id: str | None = None,
        ts: int | None = None,
        secret: str | None = None,
        content_type: str | None = "application/json",
    ) -> dict[str, str]:
        msg_id = msg_id or uid("msg")
        ts = now_s() if ts is None else ts
        sig = sign(secret or self.secrets[0], msg_id, ts, body)
        self.sent_signatures.append(sig)
        h = {"webhook-id": msg_id, "webhook-timestamp": str(ts), "webhook-signature": sig}
        if content_type is not None:
            h["Content-Type"] = content_type
        return h

    def post_raw(self, body: bytes, headers: dict[str, str], path: str = WEBHOOK_PATH, **kw) -> requests.Response:
        kw.setdefault("timeout", 30)
        return self.http.post(self.url(path), data=body, headers=headers, **kw)

    def post_webhook(
        self,
        event: Any,
        msg_id: str | None = None,
        ts: int | None = None,
        secret: str | None = None,
        content_type: str | None = "application/json",
    ) -> requests.Response:
        body = event if isinstance(event, bytes) else json_bytes(event)
        h = self.signed_headers(body, msg_id=msg_id, ts=ts, secret=secret, content_type=content_type)
        return self.post_raw(body, h)

    def accept(self, event: Any, msg_id: str | None = None, **kw) -> str:
        """POST a webhook that must be accepted with 202; returns its webhook-id."""
        msg_id = msg_id or uid("msg")
        r = self.post_webhook(event, msg_id=msg_id, **kw)
        assert r.status_code == 202, describe(r)
        assert r.json() == {"accepted": True}, describe(r)
        return msg_id

    def metrics(self) -> Metrics:
        r = self.http.get(self.url("/metrics"), timeout=10)
        assert r.status_code == 200, describe(r)
        return Metrics(r.text)

    def status(self, sid: str) -> requests.Response:
        return self.get(f"/v1/sessions/{sid}")

    # ---- SQLite -------------------------------------------------------
    def query(self, sql: str, params: Iterable[Any] = ()) -> list[tuple]:
        conn = sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True, timeout=10)
        try:
            return conn.execute(sql, tuple(params)).fetchall()
        finally:
            conn.close()

    def event_row(self, msg_id: str) -> tuple | None:
        rows = self.query(
            "SELECT webhook_id, received_at_ms, event_type, outcome, body FROM webhook_events WHERE webhook_id = ?",
            (msg_id,),
        )
        return rows[0] if rows else None

    def stored_event_ids(self) -> set[str]:
        return {r[0] for r in self.query("SELECT webhook_id FROM webhook_events")}

    def session_row(self, sid: str) -> dict | None:
        rows = self.query(
            "SELECT id, athlete_id, revision, session_type, date, deleted, event_id, export_status "
            "FROM sessions WHERE id = ?",
            (sid,),
        )
        if not rows:
            return None
        keys = ["id", "athlete_id", "revision", "session_type", "date", "deleted", "event_id", "export_status"]
        return dict(zip(keys, rows[0]))

    def jobs_for(self, subject: str, kind: str | None = None) -> list[tuple]:
        if kind:
            return self.query("SELECT kind, subject, revision FROM jobs WHERE subject = ? AND kind = ?", (subject, kind))
        return self.query("SELECT kind, subject, revision FROM jobs WHERE subject = ?", (subject,))


# --------------------------------------------------------------------------
# Fixtures
# --------------------------------------------------------------------------


@pytest.fixture(scope="session")
def gatewayd_bin() -> str:
    path = os.environ.get("GATEWAYD_BIN")
    if not path:
        pytest.skip(
            "GATEWAYD_BIN is not set: export GATEWAYD_BIN=/path/to/gatewayd to run the end-to-end tests"
        )
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        pytest.fail(f"GATEWAYD_BIN={path!r} is not an executable file")
    return path


@pytest.fixture(scope="module")
def daemon_factory(gatewayd_bin, tmp_path_factory):
    """Module-scoped factory: make_daemon(**kw) -> started Daemon, all stopped at module end."""
    made: list[Daemon] = []

    def make(name: str = "gw", start: bool = True, **kw) -> Daemon:
        d = Daemon(gatewayd_bin, tmp_path_factory.mktemp(name), name=name, **kw)
        made.append(d)
        if start:
            d.start()
        return d

    yield make
    for d in made:
        d.stop()


@pytest.fixture
def fresh_daemon(gatewayd_bin, tmp_path):
    """Function-scoped factory for destructive tests (signals, kill -9, config reload)."""
    made: list[Daemon] = []

    def make(name: str = "gw", start: bool = True, **kw) -> Daemon:
        d = Daemon(gatewayd_bin, tmp_path / f"{name}{len(made)}", name=name, **kw)
        made.append(d)
        if start:
            d.start()
        return d

    yield make
    for d in made:
        d.stop()


@pytest.fixture(scope="module")
def gw(daemon_factory) -> Daemon:
    """One shared daemon per test module (tests use unique ids so they don't interfere)."""
    return daemon_factory("shared")


# --------------------------------------------------------------------------
# Hooks: attach daemon log tails to failing tests
# --------------------------------------------------------------------------


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    _ITEM_START[0] = time.time()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if not rep.failed or not _DAEMONS:
        return
    for d in _DAEMONS:
        if d.started_at is None:
            continue
        if d.stopped_at is None or d.stopped_at >= _ITEM_START[0] - 1:
            try:
                rep.sections.append((f"gatewayd log [{d.name} port {d.port}]", d.log_tail()))
            except Exception as e:  # never let log collection hide the real failure
                rep.sections.append((f"gatewayd log [{d.name}]", f"<could not read log: {e}>"))
