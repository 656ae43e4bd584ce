"""The `gatewayd sandbox` process (fake Garmin and Wahoo) for end-to-end tests.

A test module gets it with `from sandbox_fixture import sandbox, sandbox_server  # noqa: F401`.
`sandbox_server` is one process per module; `sandbox` is the same process after
`POST /_sandbox/reset`, so every test starts from empty state, no faults and zero counts.
The expectations here come from SPEC.md section 4 and docs/SANDBOX.md.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import signal
import subprocess
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

GARMIN_CLIENT = ("sandbox-garmin-client", "sandbox-garmin-secret")
WAHOO_CLIENT = ("sandbox-wahoo-client", "sandbox-wahoo-secret")
REDIRECT_URI = "http://127.0.0.1:1/v1/oauth/callback"


def free_port() -> int:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pkce_pair() -> tuple[str, str]:
    """(verifier, S256 challenge) computed here, independently of the binary."""
    verifier = base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode()
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


class SandboxProcess:
    def __init__(self, binary: str, workdir: Path, extra_args: list[str] | None = None):
        self.binary = binary
        self.workdir = workdir
        self.port = free_port()
        self.extra_args = extra_args or []
        self.proc: subprocess.Popen | None = None
        self.log_path = workdir / "sandbox.stderr.log"

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str) -> str:
        return self.base + path

    def start(self) -> "SandboxProcess":
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [self.binary, "sandbox", "--listen", f"127.0.0.1:{self.port}", "--log-level", "debug", *self.extra_args],
            stdout=self._log,
            stderr=self._log,
            stdin=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"sandbox exited with {self.proc.returncode}\n{self.log_tail()}")
            try:
                if requests.get(self.url("/_sandbox/health"), timeout=1).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.05)
        pytest.fail("sandbox not healthy within 20 s\n" + self.log_tail())

    def stop(self) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=8)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self._log.close()
        return self.proc.returncode

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return ""

    # ---- admin API ------------------------------------------------------
    def admin(self, method: str, path: str, body: Any = None) -> requests.Response:
        return requests.request(method, self.url("/_sandbox" + path), json=body, timeout=30)

    def reset(self) -> None:
        r = self.admin("POST", "/reset")
        assert r.status_code == 200, r.text

    def state(self, provider: str | None = None, user: str | None = None) -> dict:
        path = "/state" if provider is None else f"/state/{provider}/{user}"
        r = self.admin("GET", path)
        assert r.status_code == 200, r.text
        return r.json()

    def calls(self) -> dict:
        r = self.admin("GET", "/calls")
        assert r.status_code == 200, r.text
        return r.json()

    def fault(self, path: str, responses: list[dict], method: str | None = None, repeat: bool = False) -> dict:
        r = self.admin("POST", "/faults", {"method": method, "path": path, "responses": responses, "repeat": repeat})
        assert r.status_code == 201, r.text
        return r.json()

    # ---- OAuth ------------------------------------------------------------
    def authorize(self, provider: str, user: str | None = None, deny: bool = False, **params: str) -> requests.Response:
        """GET the authorize URL; returns the (unfollowed) response."""
        path = "/garmin/oauth2Confirm" if provider == "garmin" else "/wahoo/oauth/authorize"
        client = GARMIN_CLIENT if provider == "garmin" else WAHOO_CLIENT
        q = {"response_type": "code", "client_id": client[0], "redirect_uri": REDIRECT_URI, "state": "st-" + secrets.token_hex(8)}
        if provider == "wahoo":
            q["scope"] = "user_read workouts_read workouts_write plans_read plans_write offline_data"
        if user is not None:
            q["sandbox_user"] = user
        if deny:
            q["sandbox_deny"] = "1"
        q.update(params)
        return requests.get(self.url(path), params=q, allow_redirects=False, timeout=10)

    def token(self, provider: str, form: dict[str, str], client: tuple[str, str] | None = None) -> requests.Response:
        path = "/garmin/di-oauth2-service/oauth/token" if provider == "garmin" else "/wahoo/oauth/token"
        cid, secret = client or (GARMIN_CLIENT if provider == "garmin" else WAHOO_CLIENT)
        return requests.post(self.url(path), data={"client_id": cid, "client_secret": secret, **form}, timeout=10)

    def connect(self, provider: str, user: str | None = None) -> dict:
        """The whole code flow (PKCE for both); returns the token response JSON plus `userId`."""
        verifier, challenge = pkce_pair()
        r = self.authorize(provider, user, code_challenge=challenge, code_challenge_method="S256")
        assert r.status_code == 302, r.text
        q = parse_qs(urlsplit(r.headers["Location"]).query)
        t = self.token(
            provider,
            {"grant_type": "authorization_code", "code": q["code"][0], "code_verifier": verifier, "redirect_uri": REDIRECT_URI},
        )
        assert t.status_code == 200, t.text
        tokens = t.json()
        who = self.api(provider, "GET", "/wellness-api/rest/user/id" if provider == "garmin" else "/v1/user", tokens["access_token"])
        assert who.status_code == 200, who.text
        tokens["userId"] = str(who.json()["userId"] if provider == "garmin" else who.json()["id"])
        return tokens

    def refresh(self, provider: str, refresh_token: str) -> requests.Response:
        return self.token(provider, {"grant_type": "refresh_token", "refresh_token": refresh_token})

    def api(self, provider: str, method: str, path: str, token: str, **kw) -> requests.Response:
        kw.setdefault("timeout", 30)
        headers = dict(kw.pop("headers", {}) or {})
        headers["Authorization"] = f"Bearer {token}"
        return requests.request(method, self.url(f"/{provider}{path}"), headers=headers, **kw)


@pytest.fixture(scope="module")
def sandbox_server(gatewayd_bin, tmp_path_factory):
    sb = SandboxProcess(gatewayd_bin, tmp_path_factory.mktemp("sandbox")).start()
    yield sb
    sb.stop()


@pytest.fixture
def sandbox(sandbox_server):
    sandbox_server.reset()
    return sandbox_server
