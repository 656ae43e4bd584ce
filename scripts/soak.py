#!/usr/bin/env python3
"""The driver behind `scripts/soak`: a reliability soak of gatewayd against `gatewayd sandbox`.

For --minutes of mixed traffic (a few threads at once):
  - signed session.created / session.updated (new content, date moves, out-of-order
    revisions, ENDURANCE <-> STRENGTH) / session.deleted webhooks for a pool of athletes
    on Garmin and Wahoo, plus re-sent duplicates (same webhook-id and body);
  - new athletes that get sessions first and connect through the sandbox OAuth pages
    later; connected athletes that disconnect (DELETE .../connections/{provider}, or a
    refresh answered invalid_grant at the sandbox) and reconnect to the same account;
  - sandbox faults in waves: 500s, 429 + Retry-After, dropped connections,
    dropAfterHandling (the "outcome unknown" case), slow answers, expired tokens;
  - status reads (GET /v1/sessions/{id}, lists);
  - a SIGHUP that adds a rotated webhook secret (the driver then signs with it), and
    later a `kill -9` and a restart on the same database (webhooks are retried until
    accepted, as a plan app would).
Then the faults are cleared, every athlete is connected, the queue drains (bounded)
and the final check compares the driver's model of every accepted change with the
gateway's status API and with what the sandbox holds. The daemon's RSS is sampled
every 10 s per process life. Exit 0 only when nothing was violated.

Reuses the e2e harness (Tests/e2e/conftest.py: Daemon, signing, events;
Tests/e2e/sandbox_fixture.py: SandboxProcess; Tests/e2e/test_connections.py: the OAuth
browser steps) instead of copying it. Expectations come from SPEC.md §2, §4-§6 and
docs/SANDBOX.md, docs/PUSH.md, docs/CONNECTIONS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import statistics
import sys
import threading
import time
import traceback
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "Tests" / "e2e"))

import requests  # noqa: E402

from conftest import (  # noqa: E402
    WEBHOOK_PATH,
    Daemon,
    created,
    deleted,
    iso_now,
    json_bytes,
    new_webhook_secret,
    sign,
    updated,
)
from sandbox_fixture import SandboxProcess  # noqa: E402
from test_connections import RETURN_TO, authorize, browser_to_callback, follow_callback  # noqa: E402

# ---------------------------------------------------------------- configuration

PUSH_CONFIG = {
    # Short backoff so a wave of faults is retried within the run and the final drain
    # is bounded; max_attempts at the SPEC default.
    "workers": 16,
    "max_attempts": 10,
    "backoff_base_ms": 250,
    "backoff_max_ms": 4000,
    "request_timeout_ms": 5000,
}
SENDER_THREADS = 3
LIVE_SESSIONS_PER_ATHLETE = 15
RSS_INTERVAL_S = 10.0
DELIVERY_BUDGET_S = 120.0  # a webhook not accepted within this is a violation
DOWNTIME_S = 4.0  # between kill -9 and the restart


def log(msg: str) -> None:
    print(f"soak {time.strftime('%H:%M:%S')} {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- the model


@dataclass
class Content:
    """What one accepted revision of a session says."""

    revision: int
    deleted: bool = False
    session_type: str = "ENDURANCE"
    day: str = ""
    sport: str = "BIKE"
    title: str = ""
    warmup_s: int = 0


@dataclass
class Session:
    id: str
    athlete: "Athlete"
    next_revision: int = 1
    accepted: dict[int, Content] = field(default_factory=dict)  # revision -> content
    current: Content | None = None  # the newest content sent (the owner thread's view)

    def latest(self) -> Content | None:
        return self.accepted[max(self.accepted)] if self.accepted else None


@dataclass
class Athlete:
    id: str
    provider: str  # garmin | wahoo
    user: str  # the sandbox account
    index: int
    state: str = "new"  # new (never connected) | connected | revoking | disconnected
    live: list[Session] = field(default_factory=list)
    dead: list[Session] = field(default_factory=list)
    connects: int = 0
    disconnects: int = 0
    history: list[tuple[float, str]] = field(default_factory=list)
    revoke_started: float = 0.0


class Stats:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.c: Counter[str] = Counter()
        self.violations: list[str] = []
        self.notes: list[str] = []

    def inc(self, key: str, n: int = 1) -> None:
        with self.lock:
            self.c[key] += n

    def violation(self, msg: str) -> None:
        with self.lock:
            self.violations.append(msg)
        log("VIOLATION " + msg)

    def note(self, msg: str) -> None:
        with self.lock:
            self.notes.append(msg)
        log("note: " + msg)


# ---------------------------------------------------------------- workouts


def workout(sport: str, revision: int) -> dict:
    """A workout valid for both Garmin and Wahoo (no OPEN durations, no zones).

    The warm-up length (300 s + revision) marks the revision in the provider's copy.
    """
    reps = 2 + revision % 4
    if sport == "BIKE":
        main = {"kind": "INTERVAL", "duration": {"type": "TIME", "seconds": 240},
                "target": {"type": "POWER", "minWatts": 230 + revision % 20, "maxWatts": 260 + revision % 20}}
        if revision % 3 == 0:
            main["secondaryTarget"] = {"type": "CADENCE", "minRpm": 85, "maxRpm": 95}
    else:
        main = {"kind": "INTERVAL", "duration": {"type": "DISTANCE", "meters": 800},
                "target": {"type": "PACE", "minSecondsPerKm": 235, "maxSecondsPerKm": 250}}
        if revision % 2 == 0:
            main = {"kind": "ACTIVE", "duration": {"type": "TIME", "seconds": 300},
                    "target": {"type": "HEART_RATE", "minBpm": 150, "maxBpm": 165}}
    return {
        "sport": sport,
        "steps": [
            {"kind": "WARMUP", "duration": {"type": "TIME", "seconds": 300 + revision}},
            {"repeat": reps, "steps": [main, {"kind": "RECOVERY", "duration": {"type": "TIME", "seconds": 120}}]},
            {"kind": "COOLDOWN", "duration": {"type": "TIME", "seconds": 300}},
        ],
    }


# ---------------------------------------------------------------- the soak


class Soak:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.rng = random.Random(args.seed)
        self.nonce = "%06x" % random.SystemRandom().getrandbits(24)
        self.work = Path(args.workdir)
        self.stats = Stats()
        self.stop = threading.Event()  # traffic threads stop
        self.lock = threading.RLock()  # athletes list, secret
        self.athletes: list[Athlete] = []
        self.session_seq = 0
        self.sessions: dict[str, Session] = {}
        self.secret_lock = threading.Lock()
        self.daemon_up = threading.Event()
        self.rss: list[tuple[float, int, int, int]] = []  # (t, life, gateway kB, sandbox kB)
        self.lives: list[dict] = []
        self.recent: list[tuple[bytes, str]] = []  # (body, webhook-id) of accepted webhooks, for duplicates
        self.faults: Counter[str] = Counter()
        self.fault_steps: Counter[str] = Counter()
        self.events: list[tuple[float, str]] = []
        self.t0 = 0.0
        self.sb: SandboxProcess | None = None
        self.gw: Daemon | None = None
        self.metrics_lives: list[Any] = []
        self.loadavg: list[float] = []  # 1-minute load average, sampled with the RSS
        self.kills = 0

    # ------------------------------------------------------------ setup

    def mark(self, what: str) -> None:
        self.events.append((time.monotonic() - self.t0, what))
        log(what)

    def write_pids(self) -> None:
        pids = [str(p.proc.pid) for p in (self.sb, self.gw) if p is not None and p.proc is not None]
        (self.work / "pids").write_text("\n".join(pids) + "\n")

    def start_processes(self) -> None:
        binary = self.args.bin
        self.sb = SandboxProcess(binary, self.work, extra_args=["--log-level", "info"])
        self.sb.start()
        b = self.sb.base
        extra = {
            "providers.garmin": {
                "enabled": True, "client_id": "sandbox-garmin-client", "client_secret": "sandbox-garmin-secret",
                "authorize_url": f"{b}/garmin/oauth2Confirm",
                "token_url": f"{b}/garmin/di-oauth2-service/oauth/token", "api_base_url": f"{b}/garmin",
            },
            "providers.wahoo": {
                "enabled": True, "client_id": "sandbox-wahoo-client", "client_secret": "sandbox-wahoo-secret",
                "authorize_url": f"{b}/wahoo/oauth/authorize",
                "token_url": f"{b}/wahoo/oauth/token", "api_base_url": f"{b}/wahoo",
            },
            "push": dict(PUSH_CONFIG),
        }
        self.gw = Daemon(binary, self.work / "gw", name="gatewayd", webhook_secrets=[new_webhook_secret()], extra=extra)
        self.signing_secret = self.gw.secrets[0]
        self.start_daemon()

    def start_daemon(self) -> None:
        assert self.gw is not None
        try:
            self.gw.start()
        except BaseException as e:  # pytest.fail raises an OutcomeException
            raise RuntimeError(f"gatewayd did not start: {e}") from None
        self.lives.append({"pid": self.gw.proc.pid, "start": time.monotonic()})
        self.write_pids()
        self.daemon_up.set()

    def stop_processes(self) -> None:
        if self.gw is not None:
            self.gw.stop()
        if self.sb is not None:
            self.sb.stop()

    # ------------------------------------------------------------ athletes

    def new_athlete(self, provider: str) -> Athlete:
        with self.lock:
            i = len(self.athletes)
            user = f"soak-{self.nonce}-{i}" if provider == "garmin" else str(700_000 + int(self.nonce, 16) % 100_000 * 100 + i)
            a = Athlete(id=f"ath_soak_{self.nonce}_{i:03d}", provider=provider, user=user, index=i)
            self.athletes.append(a)
            return a

    def connect(self, a: Athlete, tries: int = 20) -> bool:
        """The athlete's browser through the OAuth flow (authorize -> sandbox page -> callback)."""
        assert self.gw is not None
        for attempt in range(tries):
            if attempt:
                time.sleep(min(5.0, 0.5 * attempt))
            self.stats.inc("connect attempts")
            try:
                url = authorize(self.gw, a.id, a.provider)
                loc = follow_callback(browser_to_callback(url, sandbox_user=a.user))
            except (AssertionError, requests.RequestException, KeyError) as e:
                self.stats.inc("connect errors")
                log(f"connect {a.id} ({a.provider}) try {attempt + 1}: {str(e)[:200]}")
                continue
            where = loc.headers.get("Location", "")
            if loc.status_code == 302 and where == f"{RETURN_TO}?connected={a.provider}":
                a.state = "connected"
                a.connects += 1
                a.history.append((time.monotonic() - self.t0, "connected"))
                self.stats.inc("connects")
                return True
            # e.g. ?error=token_exchange_failed while the sandbox's token URL is faulted
            self.stats.inc("connect errors")
            log(f"connect {a.id} ({a.provider}) try {attempt + 1}: {loc.status_code} {where[:200]}")
        self.stats.violation(f"athlete {a.id} ({a.provider}) could not connect in {tries} tries")
        return False

    def connection_status(self, a: Athlete) -> str | None:
        assert self.gw is not None
        try:
            r = self.gw.get(f"/v1/athletes/{a.id}/connections")
        except requests.RequestException:
            return None
        if r.status_code != 200:
            return None
        for c in r.json().get("connections", []):
            if c.get("provider", "").lower() == a.provider:
                return c.get("status")
        return None

    def disconnect_api(self, a: Athlete) -> bool:
        assert self.gw is not None
        for _ in range(20):
            try:
                r = self.gw.http.delete(self.gw.url(f"/v1/athletes/{a.id}/connections/{a.provider}"),
                                        headers={"Authorization": f"Bearer {self.gw.api_keys[0]}"}, timeout=30)
                if r.status_code == 204:
                    return True
                log(f"disconnect {a.id}: {r.status_code} {r.text[:200]}")
            except requests.RequestException as e:
                log(f"disconnect {a.id}: {e}")
            time.sleep(1)
        return False

    # ------------------------------------------------------------ webhooks

    def deliver(self, body: bytes, msg_id: str, expect_duplicate: bool = False) -> str | None:
        """POSTs one webhook until the gateway accepts it (202, or 200 duplicate after an
        unknown outcome). Returns "accepted", "duplicate" or None (never accepted)."""
        assert self.gw is not None
        deadline = time.monotonic() + DELIVERY_BUDGET_S
        unknown_outcome = False
        delay = 0.1
        while True:
            with self.secret_lock:
                secret = self.signing_secret
            ts = int(time.time())
            headers = {"Content-Type": "application/json", "webhook-id": msg_id, "webhook-timestamp": str(ts),
                       "webhook-signature": sign(secret, msg_id, ts, body)}
            self.stats.inc("webhook POSTs")
            try:
                r = self.gw.http.post(self.gw.url(WEBHOOK_PATH), data=body, headers=headers, timeout=15)
            except requests.RequestException:
                r = None
                unknown_outcome = True
                self.stats.inc("webhook POSTs without answer (retried)")
            if r is not None:
                if r.status_code == 202:
                    if expect_duplicate:
                        self.stats.violation(f"re-sent webhook {msg_id} answered 202, not 200 duplicate: {r.text[:200]}")
                    return "accepted"
                if r.status_code == 200 and r.json().get("duplicate") is True:
                    if not expect_duplicate and not unknown_outcome:
                        self.stats.violation(f"new webhook {msg_id} answered 200 duplicate on its first try")
                    return "duplicate"
                if r.status_code >= 500:
                    self.stats.inc(f"webhook answers {r.status_code} (retried)")
                else:
                    self.stats.violation(f"webhook {msg_id} answered {r.status_code}: {r.text[:300]}")
                    return None
            if time.monotonic() > deadline:
                self.stats.violation(f"webhook {msg_id} not accepted within {DELIVERY_BUDGET_S:.0f} s")
                return None
            time.sleep(delay)
            delay = min(1.0, delay * 2)

    def send_event(self, s: Session, event: dict, content: Content) -> bool:
        body = json_bytes(event)
        msg_id = f"msg_{self.nonce}_{s.id[-6:]}_{content.revision}_{self.rng.getrandbits(32):08x}"
        outcome = self.deliver(body, msg_id)
        self.stats.inc(f"sent {event['type']}")
        if outcome is None:
            return False
        self.stats.inc("webhooks accepted")
        if outcome == "duplicate":
            self.stats.inc("accepted as 200 duplicate after a lost answer")
        s.accepted[content.revision] = content
        with self.lock:
            self.recent.append((body, msg_id))
            if len(self.recent) > 500:
                del self.recent[:250]
        return True

    def event_for(self, s: Session, c: Content, etype: str) -> dict:
        if c.deleted:
            return deleted(s.id, s.athlete.id, c.revision)
        maker = created if etype == "session.created" else updated
        if c.session_type != "ENDURANCE":
            return maker(s.id, s.athlete.id, c.revision, session_type=c.session_type, day=c.day, workout=None,
                         title=c.title)
        return maker(s.id, s.athlete.id, c.revision, day=c.day, workout=workout(c.sport, c.revision), title=c.title,
                     description=f"soak session, revision {c.revision}")

    def next_content(self, s: Session, **changes: Any) -> Content:
        base = s.current
        rev = s.next_revision
        s.next_revision += 1
        c = Content(revision=rev, deleted=False,
                    session_type=base.session_type if base else "ENDURANCE",
                    day=base.day if base else self.random_day(),
                    sport=base.sport if base else self.rng.choice(["BIKE", "RUN"]))
        for k, v in changes.items():
            setattr(c, k, v)
        c.title = f"{s.id} r{rev}"
        c.warmup_s = 300 + rev
        return c

    def random_day(self) -> str:
        return (date.today() + timedelta(days=self.rng.randint(1, 40))).isoformat()

    # one operation on one athlete (the sender thread owns the athlete's sessions)
    def operate(self, a: Athlete) -> None:
        rng = self.rng
        if len(a.live) < 2 or (len(a.live) < LIVE_SESSIONS_PER_ATHLETE and rng.random() < 0.25):
            with self.lock:
                self.session_seq += 1
                sid = f"ses_{self.nonce}_{self.session_seq:06d}"
            s = Session(id=sid, athlete=a)
            with self.lock:
                self.sessions[sid] = s
            kind = "STRENGTH" if rng.random() < 0.1 else "ENDURANCE"
            c = self.next_content(s, session_type=kind)
            s.current = c
            a.live.append(s)
            self.stats.inc("op create" + (" STRENGTH" if kind == "STRENGTH" else ""))
            self.send_event(s, self.event_for(s, c, "session.created"), c)
            return
        r = rng.random()
        s = rng.choice(a.live)
        if r < 0.35:  # new content
            c = self.next_content(s)
            s.current = c
            self.stats.inc("op update")
            self.send_event(s, self.event_for(s, c, "session.updated"), c)
        elif r < 0.50:  # date move
            c = self.next_content(s, day=self.random_day())
            s.current = c
            self.stats.inc("op move date")
            self.send_event(s, self.event_for(s, c, "session.updated"), c)
        elif r < 0.58:  # out of order: r+2 arrives before r+1 (r+1 must change nothing)
            c1 = self.next_content(s)
            c2 = self.next_content(s, day=self.random_day())
            s.current = c2
            self.stats.inc("op out-of-order pair")
            self.send_event(s, self.event_for(s, c2, "session.updated"), c2)
            self.send_event(s, self.event_for(s, c1, "session.updated"), c1)
        elif r < 0.63:  # ENDURANCE <-> STRENGTH
            kind = "STRENGTH" if s.current and s.current.session_type == "ENDURANCE" else "ENDURANCE"
            c = self.next_content(s, session_type=kind)
            s.current = c
            self.stats.inc(f"op type change to {kind}")
            self.send_event(s, self.event_for(s, c, "session.updated"), c)
        elif r < 0.75:  # re-send an earlier webhook: same id, same body
            with self.lock:
                pick = rng.choice(self.recent) if self.recent else None
            if pick:
                self.stats.inc("duplicates re-sent")
                if self.deliver(pick[0], pick[1], expect_duplicate=True) == "duplicate":
                    self.stats.inc("duplicates answered 200 duplicate")
        elif r < 0.88:  # delete
            c = self.next_content(s, deleted=True)
            s.current = c
            a.live.remove(s)
            a.dead.append(s)
            self.stats.inc("op delete")
            self.send_event(s, self.event_for(s, c, "session.deleted"), c)
        elif r < 0.92 and a.dead:  # a late, stale update of a deleted session: changes nothing
            d = rng.choice(a.dead)
            latest = d.latest()
            if latest and latest.deleted and latest.revision > 1:
                old = d.accepted.get(latest.revision - 1) or Content(
                    revision=latest.revision - 1, day=self.random_day(), title=f"{d.id} r{latest.revision - 1}",
                    warmup_s=300 + latest.revision - 1)
                stale = Content(**{**old.__dict__})
                self.stats.inc("op stale update after delete")
                self.send_event(d, self.event_for(d, stale, "session.updated"), stale)
        else:  # another create for the same athlete
            if len(a.live) < LIVE_SESSIONS_PER_ATHLETE:
                with self.lock:
                    self.session_seq += 1
                    sid = f"ses_{self.nonce}_{self.session_seq:06d}"
                s2 = Session(id=sid, athlete=a)
                with self.lock:
                    self.sessions[sid] = s2
                c = self.next_content(s2)
                s2.current = c
                a.live.append(s2)
                self.stats.inc("op create")
                self.send_event(s2, self.event_for(s2, c, "session.created"), c)

    def sender(self, k: int) -> None:
        interval = SENDER_THREADS / self.args.rate
        next_due = time.monotonic()
        while not self.stop.is_set():
            with self.lock:
                mine = [a for a in self.athletes if a.index % SENDER_THREADS == k]
            if mine:
                try:
                    self.operate(self.rng.choice(mine))
                except Exception:
                    self.stats.violation(f"sender {k} crashed: {traceback.format_exc()[-800:]}")
                    return
            next_due += interval
            delay = next_due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            elif delay < -5:
                next_due = time.monotonic()  # fell behind (daemon down): do not burst

    # ------------------------------------------------------------ connections over time

    def connector(self) -> None:
        """New athletes (sessions first, connection ~15 s later) and disconnect/reconnect cycles."""
        duration = self.args.minutes * 60
        new_every = max(10.0, duration / 12)
        cycle_every = max(15.0, duration / 10)
        next_new = time.monotonic() + new_every / 2
        next_cycle = time.monotonic() + cycle_every
        pending_connect: list[tuple[float, Athlete]] = []
        pending_reconnect: list[tuple[float, Athlete, str]] = []
        flip = 0
        while not self.stop.wait(0.5):
            now = time.monotonic()
            if now >= next_new:
                next_new = now + new_every
                a = self.new_athlete("garmin" if len(self.athletes) % 2 == 0 else "wahoo")
                self.stats.inc("new athletes (sessions before their connection)")
                pending_connect.append((now + 15, a))
            for item in [p for p in pending_connect if p[0] <= now]:
                pending_connect.remove(item)
                self.connect(item[1])
            if now >= next_cycle:
                next_cycle = now + cycle_every
                with self.lock:
                    candidates = [a for a in self.athletes if a.state == "connected" and a.connects >= 1]
                if candidates:
                    a = self.rng.choice(candidates)
                    flip += 1
                    how = "api" if flip % 2 == 1 else "invalid_grant"
                    if how == "api":
                        if self.disconnect_api(a):
                            a.state = "disconnected"
                            a.disconnects += 1
                            a.history.append((now - self.t0, "disconnected (API)"))
                            self.stats.inc("disconnects via API")
                            pending_reconnect.append((now + self.rng.uniform(20, 40), a, how))
                    else:
                        # The next refresh answers invalid_grant: the gateway revokes the
                        # connection when a push needs a new token (expired right now).
                        assert self.sb is not None
                        self.sb.admin("POST", "/tokens/invalid-grant", {"provider": a.provider, "userId": a.user})
                        self.sb.admin("POST", "/tokens/expire", {"provider": a.provider, "userId": a.user})
                        a.state = "revoking"
                        a.revoke_started = now
                        a.history.append((now - self.t0, "invalid_grant scripted"))
                        self.stats.inc("disconnects via invalid_grant (scripted)")
                        pending_reconnect.append((now + 25, a, how))
            for item in [p for p in pending_reconnect if p[0] <= now]:
                pending_reconnect.remove(item)
                a = item[1]
                if item[2] == "invalid_grant":
                    st = self.connection_status(a)
                    if st == "CONNECTED":
                        # No push needed a token yet: give it more time (bounded).
                        if now - a.revoke_started < 120:
                            pending_reconnect.append((now + 10, a, item[2]))
                            continue
                        self.stats.note(f"{a.id}: still CONNECTED {now - a.revoke_started:.0f} s after a scripted "
                                        "invalid_grant; finished after the traffic")
                        continue
                    a.disconnects += 1
                    a.history.append((now - self.t0, f"revoked by the gateway ({st})"))
                    self.stats.inc("revoked after invalid_grant")
                self.connect(a)
        # traffic over: connect everyone who is not (the final check expects all connected)
        for _, a in pending_connect:
            self.connect(a)
        for _, a, how in pending_reconnect:
            if how == "invalid_grant" and self.connection_status(a) == "CONNECTED":
                continue  # finish_revoking() after the traffic
            self.connect(a)

    # ------------------------------------------------------------ faults

    WAVES = ["server_errors", "rate_limited", "drops", "drop_after_handling", "expired_tokens", "slow", "mixed"]

    def fault_rule(self, kind: str, path: str, responses: list[dict], method: str | None = None,
                   repeat: bool = False) -> dict | None:
        assert self.sb is not None
        r = self.sb.admin("POST", "/faults", {"method": method, "path": path, "responses": responses, "repeat": repeat})
        if r.status_code != 201:
            self.stats.violation(f"sandbox refused a fault rule: {r.status_code} {r.text[:200]}")
            return None
        rule = r.json()
        rule["_kind"] = kind
        rule["_responses"] = responses
        rule["_repeat"] = repeat
        self.faults[kind] += 1
        return rule

    def interleave(self, step: dict, n: int) -> list[dict]:
        out: list[dict] = []
        for _ in range(n):
            out.append(dict(step))
            out.extend({} for _ in range(self.rng.randint(0, 2)))
        return out

    def wave(self, kind: str) -> list[dict]:
        rules: list[dict | None] = []
        f = self.fault_rule
        if kind in ("server_errors", "mixed"):
            rules.append(f("500", "/garmin/workoutportal/workout/v2", self.interleave({"status": 500}, 6), "POST"))
            rules.append(f("503", "/garmin/training-api/*", self.interleave({"status": 503}, 6)))
            rules.append(f("500", "/wahoo/v1/plans*", self.interleave({"status": 500}, 6)))
            rules.append(f("502", "/wahoo/v1/workouts*", self.interleave({"status": 502}, 4)))
        if kind in ("rate_limited", "mixed"):
            for path in ("/garmin/training-api/*", "/garmin/workoutportal/*", "/wahoo/v1/plans*", "/wahoo/v1/workouts*"):
                rules.append(f("429 + Retry-After", path,
                               self.interleave({"status": 429, "retryAfter": self.rng.randint(1, 3)}, 4)))
        if kind in ("drops", "mixed"):
            rules.append(f("drop (before handling)", "/garmin/training-api/schedule/", self.interleave({"drop": True}, 4), "POST"))
            rules.append(f("drop (before handling)", "/garmin/training-api/workout/v2/*", self.interleave({"drop": True}, 3), "PUT"))
            rules.append(f("drop (before handling)", "/wahoo/v1/workouts", self.interleave({"drop": True}, 4), "POST"))
            rules.append(f("drop (before handling)", "/wahoo/v1/plans/*", self.interleave({"drop": True}, 3)))
        if kind in ("drop_after_handling", "mixed"):
            rules.append(f("dropAfterHandling: Garmin workout create", "/garmin/workoutportal/workout/v2", self.interleave({"dropAfterHandling": True}, 3), "POST"))
            rules.append(f("dropAfterHandling: Garmin schedule create", "/garmin/training-api/schedule/", self.interleave({"dropAfterHandling": True}, 4), "POST"))
            rules.append(f("dropAfterHandling: Garmin schedule delete", "/garmin/training-api/schedule/*", self.interleave({"dropAfterHandling": True}, 3), "DELETE"))
            rules.append(f("dropAfterHandling: Garmin workout update", "/garmin/training-api/workout/v2/*", self.interleave({"dropAfterHandling": True}, 3), "PUT"))
            rules.append(f("dropAfterHandling: Wahoo plan create", "/wahoo/v1/plans", self.interleave({"dropAfterHandling": True}, 4), "POST"))
            rules.append(f("dropAfterHandling: Wahoo workout create", "/wahoo/v1/workouts", self.interleave({"dropAfterHandling": True}, 4), "POST"))
            rules.append(f("dropAfterHandling: Wahoo workout delete", "/wahoo/v1/workouts/*", self.interleave({"dropAfterHandling": True}, 3), "DELETE"))
        if kind in ("slow",):
            for path in ("/garmin/training-api/*", "/garmin/workoutportal/*", "/wahoo/v1/plans*", "/wahoo/v1/workouts*"):
                rules.append(f("slow (delayMs 800)", path, [{"delayMs": 800}, {}], repeat=True))
        if kind in ("expired_tokens", "mixed"):
            assert self.sb is not None
            with self.lock:
                connected = [a for a in self.athletes if a.state == "connected"]
            for a in self.rng.sample(connected, k=max(1, len(connected) // 3)) if connected else []:
                r = self.sb.admin("POST", "/tokens/expire", {"provider": a.provider, "userId": a.user})
                if r.status_code == 200:
                    self.faults["expired access tokens"] += 1
                    self.fault_steps["expired access tokens"] += r.json().get("expired", 0)
            # and the first refresh afterwards fails with a 5xx (retried; never a 400, which revokes)
            rules.append(f("503 on a token refresh", "/garmin/di-oauth2-service/oauth/token", [{"status": 503}], "POST"))
            rules.append(f("503 on a token refresh", "/wahoo/oauth/token", [{"status": 503}], "POST"))
        return [r for r in rules if r]

    def end_wave(self, rules: list[dict]) -> None:
        assert self.sb is not None
        active = {}
        r = self.sb.admin("GET", "/faults")
        if r.status_code == 200:
            body = r.json()
            for rule in body if isinstance(body, list) else body.get("rules", body.get("faults", [])):
                active[rule.get("id")] = rule
        for rule in rules:
            now = active.get(rule.get("id"))
            resp = rule["_responses"]
            if now is None and not rule["_repeat"]:
                consumed = len(resp)  # exhausted: gone
            elif now is None:
                consumed = 0
            elif rule["_repeat"]:
                consumed = int(now.get("hits", 0))
            else:
                consumed = len(resp) - int(now.get("remaining", len(resp)))
            self.fault_steps[rule["_kind"]] += sum(1 for i in range(consumed) if resp[i % len(resp)])
            if now is not None:
                self.sb.admin("DELETE", f"/faults/{rule['id']}")

    def fault_injector(self) -> None:
        duration = self.args.minutes * 60
        period = max(12.0, min(30.0, duration / 14))
        i = 0
        if self.stop.wait(period / 2):
            return
        while not self.stop.is_set():
            kind = self.WAVES[i % len(self.WAVES)]
            i += 1
            self.mark(f"fault wave {i}: {kind}")
            rules = self.wave(kind)
            self.stats.inc("fault waves")
            self.stop.wait(period * 0.6)
            self.end_wave(rules)
            self.stop.wait(period * 0.4)

    # ------------------------------------------------------------ status reads, RSS

    def reader(self) -> None:
        assert self.gw is not None
        while not self.stop.wait(0.25):
            if not self.daemon_up.is_set():
                continue
            with self.lock:
                ids = list(self.sessions)[-3000:]
                aths = list(self.athletes)
            try:
                if ids and self.rng.random() < 0.7:
                    r = self.gw.status(self.rng.choice(ids))
                    ok = r.status_code in (200, 404)  # 404: its create is still being retried
                else:
                    a = self.rng.choice(aths) if aths else None
                    if a is None:
                        continue
                    r = self.gw.get(f"/v1/sessions?athleteId={a.id}&limit=50")
                    ok = r.status_code == 200
                self.stats.inc("status reads")
                if not ok:
                    self.stats.violation(f"status read answered {r.status_code}: {r.text[:200]}")
            except requests.RequestException:
                if self.daemon_up.is_set() and self.gw.alive():
                    self.stats.inc("status reads without answer (daemon up)")

    @staticmethod
    def vmrss_kb(pid: int) -> int | None:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        except (FileNotFoundError, ProcessLookupError, ValueError):
            return None
        return None

    def rss_sampler(self) -> None:
        while True:
            gw, sb = self.gw, self.sb
            if gw and gw.proc and gw.alive():
                kb = self.vmrss_kb(gw.proc.pid)
                sbkb = self.vmrss_kb(sb.proc.pid) if sb and sb.proc else None
                if kb is not None:
                    self.rss.append((time.monotonic() - self.t0, len(self.lives), kb, sbkb or 0))
            try:
                self.loadavg.append(float(Path("/proc/loadavg").read_text().split()[0]))
            except (OSError, ValueError, IndexError):
                pass
            if self.rss_stop.wait(RSS_INTERVAL_S):
                return

    # ------------------------------------------------------------ middle-of-run events

    def sighup_with_rotated_secret(self) -> None:
        assert self.gw is not None
        new = new_webhook_secret()
        self.gw.secrets = [new] + list(self.gw.secrets)
        self.gw.write_config()
        self.gw.signal(signal.SIGHUP)
        self.mark("SIGHUP sent (config: a new webhook secret first, the old one kept)")
        # Probe with an unknown event type (202, ignored) signed with the new secret only.
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            body = json_bytes({"type": "soak.probe", "timestamp": iso_now(), "data": {}})
            msg_id = f"msg_{self.nonce}_probe_{self.rng.getrandbits(32):08x}"
            ts = int(time.time())
            try:
                r = requests.post(self.gw.url(WEBHOOK_PATH), data=body, timeout=5, headers={
                    "Content-Type": "application/json", "webhook-id": msg_id, "webhook-timestamp": str(ts),
                    "webhook-signature": sign(new, msg_id, ts, body)})
                if r.status_code == 202:
                    with self.secret_lock:
                        self.signing_secret = new
                    self.mark("the rotated secret is accepted: the driver signs with it from now on")
                    return
            except requests.RequestException:
                pass
            time.sleep(0.2)
        self.stats.violation("a webhook signed with the rotated secret was not accepted within 15 s of SIGHUP")

    def kill9_and_restart(self) -> None:
        assert self.gw is not None
        # Slow provider answers for a few seconds first, so pushes are in flight (calls
        # sent, answers not yet read) when the process dies: their outcome is unknown
        # to the restarted gateway and must be reconciled, not repeated blindly.
        slow = [self.fault_rule("slow (delayMs 1500) around the kill -9", path, [{"delayMs": 1500}], repeat=True)
                for path in ("/garmin/training-api/*", "/garmin/workoutportal/*", "/wahoo/v1/plans*",
                             "/wahoo/v1/workouts*")]
        time.sleep(4)
        pending = self.pending_count_db()
        try:
            self.metrics_lives.append(self.gw.metrics())  # counters restart with the process
        except Exception as e:  # noqa: BLE001
            self.stats.note(f"no /metrics snapshot before kill -9: {e}")
        self.daemon_up.clear()
        life = self.lives[-1]
        life["end"] = time.monotonic()
        self.gw.kill9()
        self.kills += 1
        self.mark(f"kill -9 (pid {life['pid']}, provider answers slowed by 1.5 s; {pending} sessions PENDING "
                  "at that moment)")
        time.sleep(DOWNTIME_S)
        self.start_daemon()
        self.mark(f"restarted on the same database (pid {self.gw.proc.pid}) after {DOWNTIME_S:.0f} s down")
        time.sleep(2)
        self.end_wave([r for r in slow if r])

    def pending_count_db(self) -> int:
        assert self.gw is not None
        try:
            return self.gw.query("SELECT COUNT(*) FROM sessions WHERE export_status = 'PENDING'")[0][0]
        except Exception:
            return -1

    # ------------------------------------------------------------ run

    def run(self) -> int:
        args = self.args
        self.t0 = time.monotonic()
        self.rss_stop = threading.Event()
        wall0 = time.time()
        self.start_processes()
        assert self.gw is not None and self.sb is not None
        log(f"sandbox on {self.sb.base}, gatewayd on {self.gw.base_url}, work dir {self.work}")
        threading.Thread(target=self.rss_sampler, daemon=True).start()

        # the initial pool, half Garmin, half Wahoo, connected through the OAuth pages
        for i in range(args.athletes):
            a = self.new_athlete("garmin" if i % 2 == 0 else "wahoo")
            self.connect(a)
        self.mark(f"{args.athletes} athletes connected; traffic starts")

        duration = args.minutes * 60
        traffic_start = time.monotonic()
        threads = [threading.Thread(target=self.sender, args=(k,), daemon=True) for k in range(SENDER_THREADS)]
        threads += [threading.Thread(target=t, daemon=True) for t in (self.connector, self.fault_injector, self.reader)]
        for t in threads:
            t.start()

        timeline = [(0.40, self.sighup_with_rotated_secret), (0.60, self.kill9_and_restart)]
        for frac, action in timeline:
            due = traffic_start + frac * duration
            while time.monotonic() < due:
                time.sleep(0.2)
                self.check_alive()
            action()
        while time.monotonic() < traffic_start + duration:
            time.sleep(0.2)
            self.check_alive()
        self.stop.set()
        self.mark("traffic stopped; waiting for the threads (the connector connects everyone left)")
        for t in threads:
            t.join(timeout=600)
            if t.is_alive():
                self.stats.violation(f"thread {t.name} did not stop")
        traffic_s = time.monotonic() - traffic_start

        r = self.sb.admin("DELETE", "/faults")
        if r.status_code != 204:
            self.stats.violation(f"could not clear the sandbox faults: {r.status_code}")
        # athletes whose scripted invalid_grant has not fired yet: a push makes it fire
        for a in self.athletes:
            if a.state == "revoking" and self.connection_status(a) == "CONNECTED":
                self.finish_revoking(a)
        for a in self.athletes:
            st = self.connection_status(a)
            if st != "CONNECTED":
                log(f"{a.id}: connection {st} after the traffic; connecting")
                self.connect(a)

        drain_s = self.drain()
        self.rss_stop.set()
        self.lives[-1]["end"] = time.monotonic()
        calls = self.sb.calls()
        state = self.sb.state()
        final_metrics = self.gw.metrics()
        self.metrics_lives.append(final_metrics)
        (self.work / "metrics.txt").write_text(final_metrics.text)
        (self.work / "sandbox-state.json").write_text(json.dumps(state))
        statuses = self.read_statuses()
        result = self.final_check(statuses, state)
        rss = self.rss_report()
        self.report(result, rss, calls, traffic_s, drain_s, time.time() - wall0)
        return 1 if self.stats.violations else 0

    def finish_revoking(self, a: Athlete) -> None:
        """The sandbox answers this athlete's next refresh with invalid_grant: send an update
        (the senders have stopped, so this thread may own the athlete's sessions) so a push
        needs a token, and wait for the gateway to revoke the connection."""
        deadline = time.monotonic() + 90
        nudged = 0.0
        while time.monotonic() < deadline:
            if self.connection_status(a) != "CONNECTED":
                a.disconnects += 1
                self.stats.inc("revoked after invalid_grant")
                return
            if time.monotonic() - nudged > 20:
                nudged = time.monotonic()
                live = [s for s in a.live if s.current and s.current.session_type == "ENDURANCE"]
                if live:
                    s = live[0]
                    c = self.next_content(s)
                    s.current = c
                    self.stats.inc("op update")
                    self.send_event(s, self.event_for(s, c, "session.updated"), c)
                else:
                    with self.lock:
                        self.session_seq += 1
                        sid = f"ses_{self.nonce}_{self.session_seq:06d}"
                        s = Session(id=sid, athlete=a)
                        self.sessions[sid] = s
                    c = self.next_content(s, session_type="ENDURANCE")
                    s.current = c
                    a.live.append(s)
                    self.stats.inc("op create")
                    self.send_event(s, self.event_for(s, c, "session.created"), c)
            time.sleep(1)
        self.stats.violation(f"{a.id}: the gateway did not revoke the connection after an invalid_grant refresh")

    def check_alive(self) -> None:
        assert self.gw is not None
        if self.daemon_up.is_set() and not self.gw.alive():
            self.stats.violation(f"gatewayd exited by itself (code {self.gw.proc.returncode}); restarting it\n"
                                 + self.gw.log_tail(30))
            self.daemon_up.clear()
            self.lives[-1]["end"] = time.monotonic()
            self.start_daemon()

    def drain(self) -> float:
        """Waits (bounded) until no session is PENDING."""
        assert self.gw is not None
        t = time.monotonic()
        deadline = t + self.args.drain
        last = None
        while True:
            try:
                r = self.gw.get("/v1/sessions?status=PENDING&limit=500")
                n = len(r.json()["sessions"]) if r.status_code == 200 else None
            except requests.RequestException:
                n = None
            if n == 0:
                took = time.monotonic() - t
                self.mark(f"queue drained: no PENDING session {took:.1f} s after the traffic and reconnects")
                return took
            if n != last:
                log(f"drain: {n} sessions PENDING")
                last = n
            if time.monotonic() > deadline:
                self.stats.violation(f"{n} sessions still PENDING {self.args.drain} s after the traffic stopped")
                return time.monotonic() - t
            time.sleep(1)

    # ------------------------------------------------------------ the final check

    def read_statuses(self) -> dict[str, dict]:
        assert self.gw is not None
        out: dict[str, dict] = {}
        for a in self.athletes:
            cursor = None
            while True:
                q = f"/v1/sessions?athleteId={a.id}&limit=500" + (f"&cursor={cursor}" if cursor else "")
                r = self.gw.get(q)
                if r.status_code != 200:
                    self.stats.violation(f"GET {q} answered {r.status_code}")
                    break
                body = r.json()
                for s in body["sessions"]:
                    out[s["sessionId"]] = s
                cursor = body.get("nextCursor")
                if not cursor:
                    break
        return out

    def final_check(self, statuses: dict[str, dict], state: dict) -> dict:
        v = self.stats.violation
        by_status: Counter[str] = Counter()
        failed: list[str] = []
        # What the sandbox holds, per session id.
        garmin_sched: dict[str, list[tuple[str, dict, dict | None]]] = defaultdict(list)  # sid -> [(schedId, sched, workout)]
        garmin_lib_orphans: list[str] = []
        garmin_bad: list[str] = []
        wahoo_plans: dict[str, list[tuple[str, dict]]] = defaultdict(list)
        wahoo_workouts: dict[str, list[tuple[str, dict]]] = defaultdict(list)
        owner: dict[tuple[str, str], Athlete] = {(a.provider, a.user): a for a in self.athletes}
        for user, u in state.get("garmin", {}).items():
            if ("garmin", user) not in owner:
                continue  # not ours
            workouts = u.get("workouts", {})
            scheduled = set()
            for sch_id, sch in u.get("schedules", {}).items():
                w = workouts.get(str(sch.get("workoutId")))
                scheduled.add(str(sch.get("workoutId")))
                name = (w or {}).get("workoutName", "")
                sid = name.split(" ")[0] if name else ""
                if not sid:
                    garmin_bad.append(f"garmin user {user}: schedule {sch_id} for workout {sch.get('workoutId')} "
                                      f"which is not in the library")
                    continue
                garmin_sched[sid].append((sch_id, sch, w))
            for wid, w in workouts.items():
                if wid not in scheduled:
                    garmin_lib_orphans.append(f"{w.get('workoutName', '?')} (workout {wid}, garmin user {user})")
        for user, u in state.get("wahoo", {}).items():
            if ("wahoo", user) not in owner:
                continue
            for pid, p in u.get("plans", {}).items():
                wahoo_plans[p.get("external_id", "")].append((pid, p))
            for wid, w in u.get("workouts", {}).items():
                wahoo_workouts[w.get("workout_token", "")].append((wid, w))
        for msg in garmin_bad:
            v(msg)

        checked_on_device = 0
        checked_empty = 0
        for sid, s in self.sessions.items():
            latest = s.latest()
            if latest is None:
                continue  # nothing of it was ever accepted
            st = statuses.get(sid)
            if st is None:
                v(f"{sid}: accepted (revision {latest.revision}) but missing from the status API")
                continue
            status = st.get("exportStatus")
            by_status[str(status)] += 1
            if st["revision"] != latest.revision:
                v(f"{sid}: status API revision {st['revision']}, newest accepted {latest.revision}")
            if bool(st["deleted"]) != latest.deleted:
                v(f"{sid}: status API deleted={st['deleted']}, newest accepted deleted={latest.deleted}")
            a = s.athlete
            want_provider = a.provider.upper()
            on_device = not latest.deleted and latest.session_type == "ENDURANCE"
            # export status expectations (every athlete is connected at the end)
            if status == "FAILED":
                failed.append(f"{sid} (revision {st['revision']}, {st.get('exportProvider')}): {st.get('lastExportError')}")
                err = st.get("lastExportError") or ""
                if "attempts" not in err:
                    v(f"{sid}: FAILED for a reason the injected faults do not explain: {err}")
                continue
            if status is None:
                # Not exported (never ENDURANCE, or removed and then edited as STRENGTH):
                # fine when nothing is expected on the device.
                if on_device:
                    v(f"{sid}: ENDURANCE (revision {latest.revision}) but has no export status")
                    continue
            elif status != "SENT":
                v(f"{sid}: export status {status} after the drain (athlete {a.id} is connected to {a.provider})")
                continue
            if on_device and st.get("exportProvider") != want_provider:
                v(f"{sid}: exportProvider {st.get('exportProvider')}, athlete is on {want_provider}")
            # the device
            g = garmin_sched.get(sid, [])
            wp, ww = wahoo_plans.get(sid, []), wahoo_workouts.get(sid, [])
            if not on_device:
                checked_empty += 1
                if g:
                    v(f"{sid}: {'deleted' if latest.deleted else latest.session_type} (revision {latest.revision}) "
                      f"but Garmin still schedules {[(x[0], x[1].get('date'), (x[2] or {}).get('workoutName')) for x in g]}")
                if wp or ww:
                    v(f"{sid}: {'deleted' if latest.deleted else latest.session_type} (revision {latest.revision}) "
                      f"but Wahoo still holds {len(wp)} plan(s) and {len(ww)} workout(s)")
                continue
            checked_on_device += 1
            if a.provider == "garmin":
                if wp or ww:
                    v(f"{sid}: Garmin athlete, but Wahoo holds {len(wp)} plan(s), {len(ww)} workout(s)")
                if len(g) != 1:
                    v(f"{sid}: expected exactly one Garmin schedule, found {len(g)}: "
                      f"{[(x[0], x[1].get('date'), x[1].get('workoutId'), (x[2] or {}).get('workoutName')) for x in g]}")
                    continue
                sch_id, sch, w = g[0]
                steps = ((w or {}).get("segments") or [{}])[0].get("steps") or [{}]
                if sch.get("date") != latest.day:
                    v(f"{sid}: Garmin schedule on {sch.get('date')}, session date {latest.day}")
                if w.get("workoutName") != latest.title or steps[0].get("durationValue") != latest.warmup_s:
                    v(f"{sid}: Garmin workout is '{w.get('workoutName')}' (warm-up {steps[0].get('durationValue')} s), "
                      f"expected '{latest.title}' ({latest.warmup_s} s)")
                if str(sch.get("workoutId")) != str(st.get("externalWorkoutId")):
                    v(f"{sid}: Garmin schedules workout {sch.get('workoutId')}, status says {st.get('externalWorkoutId')}")
            else:
                if g:
                    v(f"{sid}: Wahoo athlete, but Garmin schedules {len(g)}")
                if len(wp) != 1 or len(ww) != 1:
                    v(f"{sid}: expected one Wahoo plan and one workout, found {len(wp)} plan(s) {[p[0] for p in wp]} "
                      f"and {len(ww)} workout(s) {[w[0] for w in ww]}")
                    continue
                (pid, plan), (wid, wk) = wp[0], ww[0]
                header = (plan.get("plan") or {}).get("header") or {}
                intervals = (plan.get("plan") or {}).get("intervals") or [{}]
                if str(wk.get("plan_id")) != str(pid):
                    v(f"{sid}: Wahoo workout {wid} uses plan {wk.get('plan_id')}, the session's plan is {pid}")
                if not str(wk.get("starts", "")).startswith(latest.day):
                    v(f"{sid}: Wahoo workout starts {wk.get('starts')}, session date {latest.day}")
                if wk.get("name") != latest.title or header.get("name") != latest.title \
                        or intervals[0].get("exit_trigger_value") != latest.warmup_s:
                    v(f"{sid}: Wahoo workout '{wk.get('name')}', plan '{header.get('name')}' (warm-up "
                      f"{intervals[0].get('exit_trigger_value')}), expected '{latest.title}' ({latest.warmup_s})")
                if str(wid) != str(st.get("externalWorkoutId")):
                    v(f"{sid}: Wahoo workout {wid}, status says {st.get('externalWorkoutId')}")

        # Orphans: provider things no accepted session accounts for.
        known = set(self.sessions)
        for sid, g in garmin_sched.items():
            if sid not in known:
                v(f"Garmin schedules {len(g)} workout(s) named for unknown session '{sid}'")
        for sid in set(wahoo_plans) | set(wahoo_workouts):
            if sid not in known:
                v(f"Wahoo holds plans/workouts for unknown session '{sid}'")
        for sid, st in statuses.items():
            if sid not in known:
                v(f"the status API lists session {sid} the driver never sent")
        # SPEC §4: a Garmin create whose answer is lost cannot be looked up, so its retry
        # creates again and the first copy stays unscheduled in the library. Only a lost
        # answer explains one: a dropAfterHandling on the create, or a create in flight at
        # a kill -9 (at most providers.garmin.max_concurrency = 8 calls in flight).
        allowed = self.fault_steps["dropAfterHandling: Garmin workout create"] + 8 * self.kills
        if len(garmin_lib_orphans) > allowed:
            v(f"{len(garmin_lib_orphans)} Garmin library orphans, more than lost create answers explain ({allowed})")
        return {"by_status": by_status, "failed": failed, "garmin_library_orphans": garmin_lib_orphans,
                "garmin_orphans_allowed": allowed,
                "checked_on_device": checked_on_device, "checked_empty": checked_empty,
                "garmin_schedules": sum(len(x) for x in garmin_sched.values()),
                "wahoo_plans": sum(len(x) for x in wahoo_plans.values()),
                "wahoo_workouts": sum(len(x) for x in wahoo_workouts.values())}

    # ------------------------------------------------------------ RSS

    def rss_report(self) -> list[dict]:
        out = []
        for i, life in enumerate(self.lives, start=1):
            samples = [(t, kb) for t, li, kb, _ in self.rss if li == i]
            if not samples:
                continue
            t_start, t_end = samples[0][0], samples[-1][0]
            mid = t_start + (t_end - t_start) / 2
            half = [(t, kb) for t, kb in samples if t >= mid]
            first = [(t, kb) for t, kb in samples if t <= mid]

            def fit(points: list[tuple[float, int]]) -> float:
                """Least-squares slope in MB per second."""
                if len(points) < 3:
                    return 0.0
                xs = [t for t, _ in points]
                ys = [kb / 1024 for _, kb in points]
                mx, my = statistics.fmean(xs), statistics.fmean(ys)
                den = sum((x - mx) ** 2 for x in xs)
                return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / den if den else 0.0

            slope = fit(half)
            half_span = (half[-1][0] - half[0][0]) if len(half) >= 2 else 0.0
            growth = slope * half_span
            d = {"life": i, "pid": life["pid"], "samples": len(samples), "minutes": (t_end - t_start) / 60,
                 "start_mb": samples[0][1] / 1024, "peak_mb": max(kb for _, kb in samples) / 1024,
                 "end_mb": samples[-1][1] / 1024, "slope_mb_per_min": slope * 60,
                 "first_half_slope_mb_per_min": fit(first) * 60, "growth_2nd_half_mb": growth,
                 "half_minutes": half_span / 60}
            judged = d["minutes"] >= 2 and len(half) >= 6
            d["judged"] = judged
            if judged and (growth > self.args.rss_bound_mb or slope * 60 > self.args.rss_slope_bound):
                self.stats.violation(
                    f"gatewayd RSS grew {growth:.1f} MB over the second half of process life {i} "
                    f"({slope * 60:.2f} MB/min over {half_span / 60:.1f} min; bounds: {self.args.rss_bound_mb:g} MB, "
                    f"{self.args.rss_slope_bound:g} MB/min)")
            out.append(d)
        return out

    # ------------------------------------------------------------ report

    def report(self, res: dict, rss: list[dict], calls: dict, traffic_s: float, drain_s: float, wall_s: float) -> None:
        c = self.stats.c
        p = print
        p("")
        p(f"== scripts/soak — {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
          f"{os.cpu_count()} cores; --minutes {self.args.minutes:g} --rate {self.args.rate:g} "
          f"--athletes {self.args.athletes} (seed {self.args.seed})")
        p("")
        p("| traffic | count |")
        p("|---|---|")
        rows = [
            ("webhooks sent (distinct webhook-ids, excl. re-sent duplicates)", sum(c[k] for k in c if k.startswith("sent "))),
            ("  session.created / session.updated / session.deleted",
             f"{c['sent session.created']} / {c['sent session.updated']} / {c['sent session.deleted']}"),
            ("webhooks accepted (202, or 200 duplicate after a lost answer)", c["webhooks accepted"]),
            ("  of which accepted as 200 duplicate after a lost answer", c["accepted as 200 duplicate after a lost answer"]),
            ("webhook POSTs in all (incl. retries and re-sent duplicates)", c["webhook POSTs"]),
            ("  POSTs without an answer (daemon down / killed), retried", c["webhook POSTs without answer (retried)"]),
            ("duplicates re-sent / answered 200 duplicate", f"{c['duplicates re-sent']} / {c['duplicates answered 200 duplicate']}"),
            ("ops: create / update / date move / out-of-order pair / type change / delete / stale after delete",
             f"{c['op create'] + c['op create STRENGTH']} ({c['op create STRENGTH']} STRENGTH) / {c['op update']} / "
             f"{c['op move date']} / {c['op out-of-order pair']} / "
             f"{c['op type change to STRENGTH'] + c['op type change to ENDURANCE']} / {c['op delete']} / "
             f"{c['op stale update after delete']}"),
            ("athletes (initial + new over time)", f"{len(self.athletes)} ({self.args.athletes} + "
                                                   f"{c['new athletes (sessions before their connection)']})"),
            ("OAuth connects completed (attempts, failed attempts)",
             f"{c['connects']} ({c['connect attempts']}, {c['connect errors']})"),
            ("disconnects: API / scripted invalid_grant (revoked by the gateway)",
             f"{c['disconnects via API']} / {c['disconnects via invalid_grant (scripted)']} "
             f"({c['revoked after invalid_grant']})"),
            ("status reads", c["status reads"]),
            ("fault waves", c["fault waves"]),
        ]
        for k, n in rows:
            p(f"| {k} | {n} |")
        p("")
        p("| fault injected at the sandbox | rules | faulty answers consumed |")
        p("|---|---|---|")
        for k in sorted(set(self.faults) | set(self.fault_steps)):
            p(f"| {k} | {self.faults[k]} | {self.fault_steps[k]} |")
        p("")
        p("| timeline | t (s) |")
        p("|---|---|")
        for t, what in self.events:
            if not what.startswith("fault wave"):
                p(f"| {what} | {t:.0f} |")
        p("")
        table = calls.get("calls", {})
        p("| calls observed at the sandbox | count |")
        p("|---|---|")
        for k in sorted(table):
            if "/_sandbox" in k:
                continue
            p(f"| {k} | {table[k]} |")
        p(f"| total / answered 429 / dropped | {calls.get('total')} / {calls.get('answered429')} / {calls.get('dropped')} |")
        p("")
        pushes: Counter[str] = Counter()
        for m in self.metrics_lives:
            for labels, val in m.select("gatewayd_pushes_total"):
                pushes[f"{labels.get('provider')} {labels.get('outcome')}"] += int(val)
        if pushes:
            p("| gateway push outcomes (gatewayd_pushes_total, summed over the process lives) | count |")
            p("|---|---|")
            for k in sorted(pushes):
                p(f"| {k} | {pushes[k]} |")
            p("")
        p("| final state | value |")
        p("|---|---|")
        labels = {"None": "not exported (null)"}
        by = ", ".join(f"{labels.get(k, k)} {n}" for k, n in sorted(res["by_status"].items()))
        p(f"| sessions by export status | {by} |")
        p(f"| sessions checked on a device: exactly one copy, latest revision (live ENDURANCE) | {res['checked_on_device']} |")
        p(f"| sessions checked to hold nothing on a device (deleted or STRENGTH) | {res['checked_empty']} |")
        p(f"| Garmin schedules / Wahoo plans / Wahoo workouts held | {res['garmin_schedules']} / {res['wahoo_plans']} / "
          f"{res['wahoo_workouts']} |")
        p(f"| Garmin library orphans (unscheduled, allowed by SPEC §4; bound from lost create answers) | "
          f"{len(res['garmin_library_orphans'])} (bound {res['garmin_orphans_allowed']}) |")
        p(f"| FAILED sessions | {len(res['failed'])} |")
        p(f"| exactly-once check | {'PASS' if not self.stats.violations else 'FAIL'} ({len(self.stats.violations)} violations) |")
        p(f"| traffic / drain / wall time | {traffic_s:.0f} s / {drain_s:.1f} s / {wall_s:.0f} s |")
        if self.loadavg:
            p(f"| machine load (1-min load average during the run: mean / max) | "
              f"{statistics.fmean(self.loadavg):.1f} / {max(self.loadavg):.1f} on {os.cpu_count()} cores |")
        p("")
        p("| gatewayd RSS (VmRSS every 10 s) | start | peak | end | slope, 1st half | slope, 2nd half | growth, 2nd half |")
        p("|---|---|---|---|---|---|---|")
        for d in rss:
            p(f"| life {d['life']} ({d['minutes']:.1f} min, {d['samples']} samples{'' if d['judged'] else ', too short to judge'}) "
              f"| {d['start_mb']:.1f} MB | {d['peak_mb']:.1f} MB | {d['end_mb']:.1f} MB | "
              f"{d['first_half_slope_mb_per_min']:+.2f} MB/min | "
              f"{d['slope_mb_per_min']:+.2f} MB/min | {d['growth_2nd_half_mb']:+.1f} MB |")
        sb = [kb for _, _, _, kb in self.rss if kb]
        if sb:
            p(f"| sandbox (for reference) | {sb[0] / 1024:.1f} MB | {max(sb) / 1024:.1f} MB | {sb[-1] / 1024:.1f} MB "
              "| | | |")
        p(f"RSS bounds, over the second half of each process life of >= 2 min: growth <= {self.args.rss_bound_mb:g} MB "
          f"and least-squares slope <= {self.args.rss_slope_bound:g} MB/min")
        if res["failed"]:
            p("")
            p("FAILED sessions:")
            for f in res["failed"]:
                p(f"  {f}")
        if res["garmin_library_orphans"]:
            p("")
            p(f"Garmin library orphans ({len(res['garmin_library_orphans'])}; unscheduled workouts, never on the calendar):")
            for o in res["garmin_library_orphans"][:50]:
                p(f"  {o}")
        if self.stats.notes:
            p("")
            p("notes:")
            for n in self.stats.notes:
                p(f"  {n}")
        p("")
        if self.stats.violations:
            p(f"VIOLATIONS ({len(self.stats.violations)}):")
            for v in self.stats.violations[:200]:
                p(f"  {v}")
            p("soak: FAIL")
        else:
            p("soak: PASS")
        (self.work / "result.json").write_text(json.dumps({
            "counts": dict(c), "faults": dict(self.faults), "fault_steps": dict(self.fault_steps),
            "calls": calls, "rss": rss, "rss_samples": self.rss, "events": self.events,
            "violations": self.stats.violations, "failed": res["failed"],
            "garmin_library_orphans": res["garmin_library_orphans"],
            "by_status": dict(res["by_status"]),
            "athletes": {a.id: {"provider": a.provider, "sandbox_user": a.user, "history": a.history}
                         for a in self.athletes},
        }, indent=1, default=str))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", required=True, help="the gatewayd binary")
    ap.add_argument("--workdir", required=True, help="a fresh temp dir for configs, databases, logs")
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--rate", type=float, default=20.0, help="webhooks per second, all sender threads together")
    ap.add_argument("--athletes", type=int, default=20, help="athletes connected at the start")
    ap.add_argument("--drain", type=float, default=180.0, help="seconds to wait for no PENDING session")
    ap.add_argument("--rss-bound-mb", type=float, default=20.0,
                    help="most RSS growth (MB) allowed over the second half of a process life")
    ap.add_argument("--rss-slope-bound", type=float, default=1.0,
                    help="steepest RSS slope (MB/min, least squares) allowed over that second half")
    ap.add_argument("--seed", type=int, default=int(time.time()) % 100000)
    args = ap.parse_args()
    if args.minutes <= 0 or args.rate <= 0 or args.athletes < 2:
        ap.error("--minutes and --rate must be positive, --athletes at least 2")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    soak = Soak(args)
    try:
        return soak.run()
    except Exception:
        traceback.print_exc()
        return 2
    finally:
        soak.stop.set()
        soak.stop_processes()


if __name__ == "__main__":
    sys.exit(main())
